//! The load generator of `localnet`: keeps N `kv.Put` transactions in flight through a node's
//! control socket, each waiting for its round to be finalized, and reports throughput and
//! submit → finalized latency, with a progress bar on a terminal. Each in-flight slot signs
//! from its own account (Ed25519, with its nonce), so the runtime checks a signature and a
//! nonce for every transaction, as a real ParaTime does.

use paratime_node::cli::paratime::{encode_signed_call, next_nonce, signature_domain, submit};
use serde::Serialize;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// Latency percentiles in milliseconds.
#[derive(Clone, Debug, Default, Serialize)]
pub(crate) struct Latency {
    /// Median.
    pub p50: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Worst.
    pub max: f64,
}

/// What a load run measured.
#[derive(Clone, Debug, Default, Serialize)]
pub(crate) struct Report {
    /// Runtime rounds finalized with a batch while the load ran.
    pub rounds_finalized: u64,
    /// Rounds that failed meanwhile.
    pub rounds_failed: u64,
    /// Discrepancies detected meanwhile.
    pub discrepancies: u64,
    /// Transactions whose finalization the generator saw.
    pub txs_finalized: u64,
    /// Submissions that failed or timed out.
    pub errors: u64,
    /// The last of those errors (empty without errors).
    pub last_error: String,
    /// Finalized transactions per second over the load phase.
    pub tx_per_s: f64,
    /// Submit → finalized latency.
    pub latency_ms: Latency,
    /// Length of the load phase in seconds.
    pub seconds: f64,
    /// Transactions kept in flight.
    pub concurrency: usize,
    /// Executor committee size (workers).
    pub committee_size: usize,
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

async fn roothash(address: &str, runtime: &str) -> Option<serde_json::Value> {
    let v = paratime_node::control::client::Client::new(address)
        .status()
        .await
        .ok()?;
    Some(v["runtimes"][runtime].clone())
}

/// Waits until the runtime has an executor committee as seen by the node at `address`, or
/// `stop` turns true. Returns the committee size.
pub(crate) async fn wait_for_committee(
    address: &str,
    runtime: &str,
    mut stop: watch::Receiver<bool>,
) -> Option<usize> {
    loop {
        if let Some(rt) = roothash(address, runtime).await {
            let workers = rt["committee"]["members"]
                .as_array()
                .map(|m| m.iter().filter(|x| x["role"] == "worker").count())
                .unwrap_or(0);
            if workers > 0 && rt["worker"]["waiting"].is_null() {
                return Some(workers);
            }
        }
        if *stop.borrow() {
            return None;
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(250)) => {}
            r = stop.changed() => if r.is_err() { return None },
        }
    }
}

/// Runs the load until `stop` turns true.
pub(crate) async fn run(
    address: String,
    runtime: String,
    concurrency: usize,
    committee_size: usize,
    stop: watch::Receiver<bool>,
    show_progress: bool,
    done: Arc<AtomicU64>,
) -> Report {
    let before = roothash(&address, &runtime).await;
    let count = |v: &Option<serde_json::Value>, k: &str| {
        v.as_ref()
            .and_then(|r| r["roothash"][k].as_u64())
            .unwrap_or(0)
    };
    let latencies = Arc::new(Mutex::new(Vec::<f64>::new()));
    let errors = Arc::new(AtomicU64::new(0));
    let last_error = Arc::new(Mutex::new(String::new()));
    let domain = match signature_domain(&address, &runtime).await {
        Ok(d) => d,
        Err(e) => {
            return Report {
                errors: 1,
                last_error: format!("signature domain: {e}"),
                concurrency,
                committee_size,
                ..Report::default()
            }
        }
    };
    let started = Instant::now();
    let done_before = done.load(Ordering::Relaxed);
    let mut tasks = Vec::new();
    for worker in 0..concurrency {
        let (address, runtime) = (address.clone(), runtime.clone());
        let (latencies, done, errors, last_error) = (
            latencies.clone(),
            done.clone(),
            errors.clone(),
            last_error.clone(),
        );
        let stop = stop.clone();
        tasks.push(tokio::spawn(async move {
            let key = ed25519_dalek::SigningKey::from_bytes(&paratime_sdk::state::hash(
                format!("paratime-dev load account {worker}").as_bytes(),
            ));
            let signer = key.verifying_key().to_bytes();
            let mut nonce = None;
            let mut n = 0u64;
            while !*stop.borrow() {
                let current = match nonce {
                    Some(x) => x,
                    None => match next_nonce(&address, &runtime, &signer).await {
                        Ok(x) => x,
                        Err(e) => {
                            errors.fetch_add(1, Ordering::Relaxed);
                            if let Ok(mut le) = last_error.lock() {
                                *le = format!("nonce query: {e}");
                            }
                            tokio::time::sleep(Duration::from_millis(200)).await;
                            continue;
                        }
                    },
                };
                n += 1;
                let body = serde_json::json!({
                    "key": format!("load-{worker}-{n}"),
                    "value": format!("{}", started.elapsed().as_micros()),
                })
                .to_string();
                let Ok(call) = encode_signed_call(&key, &domain, "kv.Put", &body, current) else {
                    return;
                };
                let t = Instant::now();
                match submit(&address, &runtime, &call, Duration::from_secs(30)).await {
                    Ok(v) if v["result"]["error"].is_null() => {
                        let ms = t.elapsed().as_secs_f64() * 1000.0;
                        if let Ok(mut l) = latencies.lock() {
                            l.push(ms);
                        }
                        done.fetch_add(1, Ordering::Relaxed);
                        nonce = Some(current + 1);
                    }
                    Ok(v) => {
                        errors.fetch_add(1, Ordering::Relaxed);
                        if let Ok(mut e) = last_error.lock() {
                            *e = v["result"]["error"].to_string();
                        }
                        // Executed and failed (nonce spent) or refused (not): ask.
                        nonce = None;
                    }
                    Err(e) => {
                        errors.fetch_add(1, Ordering::Relaxed);
                        if let Ok(mut le) = last_error.lock() {
                            *le = e.to_string();
                        }
                        nonce = None;
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                }
            }
        }));
    }
    let bar = if show_progress {
        indicatif::ProgressBar::new_spinner()
    } else {
        indicatif::ProgressBar::hidden()
    };
    bar.set_style(
        indicatif::ProgressStyle::with_template("{spinner} [{elapsed_precise}] {msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
    );
    let mut stop_rx = stop.clone();
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    loop {
        if *stop_rx.borrow() {
            break;
        }
        tokio::select! {
            r = stop_rx.changed() => if r.is_err() { break },
            _ = tick.tick() => {
                let n = done.load(Ordering::Relaxed);
                let secs = started.elapsed().as_secs_f64().max(0.001);
                let round = roothash(&address, &runtime).await.and_then(|r| r["latest_round"].as_u64()).unwrap_or(0);
                let e = errors.load(Ordering::Relaxed);
                let mut msg = format!("round {round} · {n} txs finalized · {:.0} tx/s · {concurrency} in flight", n as f64 / secs);
                if e > 0 {
                    msg.push_str(&format!(" · {e} errors (last: {})", last_error.lock().map(|l| l.clone()).unwrap_or_default()));
                }
                bar.set_message(msg);
                bar.tick();
            }
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    bar.finish_and_clear();
    for t in tasks {
        t.abort();
    }
    let after = roothash(&address, &runtime).await;
    let mut l = latencies.lock().map(|l| l.clone()).unwrap_or_default();
    l.sort_by(|a, b| a.total_cmp(b));
    let txs = done.load(Ordering::Relaxed).saturating_sub(done_before);
    let round2 = |x: f64| (x * 10.0).round() / 10.0;
    Report {
        rounds_finalized: count(&after, "rounds_finalized")
            .saturating_sub(count(&before, "rounds_finalized")),
        rounds_failed: count(&after, "rounds_failed")
            .saturating_sub(count(&before, "rounds_failed")),
        discrepancies: count(&after, "discrepancies")
            .saturating_sub(count(&before, "discrepancies")),
        txs_finalized: txs,
        errors: errors.load(Ordering::Relaxed),
        last_error: last_error.lock().map(|l| l.clone()).unwrap_or_default(),
        tx_per_s: round2(txs as f64 / seconds.max(0.001)),
        latency_ms: Latency {
            p50: round2(percentile(&l, 0.50)),
            p99: round2(percentile(&l, 0.99)),
            max: round2(l.last().copied().unwrap_or(0.0)),
        },
        seconds: round2(seconds),
        concurrency,
        committee_size,
    }
}
