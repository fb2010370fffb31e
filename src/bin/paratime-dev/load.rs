//! The load generator of `localnet`: keeps N `kv.Put` transactions in flight through a node's
//! control socket and reports throughput and submit → finalized latency, with a progress bar
//! on a terminal. Every transaction is signed (Ed25519, with its account's nonce), so the
//! runtime checks a signature and a nonce for each, as a real ParaTime does. Up to 16 in
//! flight come from probe accounts that wait for each round (the latency samples); the rest
//! from bulk accounts keeping up to 48 each in flight through submit-no-wait (a control
//! connection is not held per transaction) and counting them finalized as their nonces pass.
//! A bulk account reads its nonce when the node applied a new round (one task watches the
//! node's status for all of them), not on a timer: the generator shares the machine with the
//! network it measures, and a query is a runtime call.

use paratime_node::cli::paratime::{
    encode_signed_call, next_nonce, signature_domain, submit, submit_no_wait,
};
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
    /// Of those, sent by bulk accounts (submit-no-wait, seen through their nonces).
    pub bulk_finalized: u64,
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

/// The value at fraction `p` of `sorted` (nearest rank; 0 for none).
pub(crate) fn percentile(sorted: &[f64], p: f64) -> f64 {
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

/// Transactions kept in flight by waiting submissions: the latency figures come from them.
const PROBES: usize = 16;
/// Transactions one bulk account keeps in flight (below the runtime's nonce window of
/// [`paratime_sdk::auth::MAX_NONCE_AHEAD`]).
pub(crate) const ACCOUNT_WINDOW: usize = 48;
/// Bulk accounts' control calls (submissions and nonce queries) in flight at once: the node
/// serves 128 control connections, and the probes hold up to 16 while they wait for their
/// rounds.
const BULK_CALLS: usize = 48;
/// Connections the generator keeps: as many as its calls in flight (bulk, probes, the round
/// watcher), so that none is closed and opened again.
const KEPT: usize = BULK_CALLS + PROBES + 2;
/// Attempts at one submission (the same bytes: a duplicate is harmless) before its account
/// starts again from its nonce.
const ATTEMPTS: usize = 3;
/// How often the generator reads the round the client node applied (its status: no runtime
/// call).
const ROUND_POLL: Duration = Duration::from_millis(50);
/// A bulk account asks for its nonce (its finalized transactions) after each round the node
/// applies, and at least this often.
const POLL: Duration = Duration::from_secs(1);
/// A bulk account whose nonce did not move for this long submits again from its nonce (a
/// transaction was lost: dropped from a full pool, or its round failed).
const STALLED: Duration = Duration::from_secs(10);

/// What the generator's tasks share.
struct Shared {
    /// The client node's control API (its clones share kept connections).
    client: paratime_node::control::client::Client,
    runtime: String,
    domain: [u8; 32],
    started: Instant,
    latencies: Mutex<Vec<f64>>,
    done: Arc<AtomicU64>,
    bulk_done: AtomicU64,
    errors: AtomicU64,
    last_error: Mutex<String>,
    stop: watch::Receiver<bool>,
    /// Distinct keys written (None: a new key per transaction).
    keys: Option<u64>,
    /// The latest round the client node applied ([`watch_rounds`]).
    applied: watch::Receiver<u64>,
    /// Bounds the bulk accounts' calls in flight ([`BULK_CALLS`]).
    calls: tokio::sync::Semaphore,
}

impl Shared {
    fn error(&self, e: String) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut le) = self.last_error.lock() {
            *le = e;
        }
    }

    /// A bulk account's nonce, within the bound on bulk calls in flight.
    async fn nonce(
        &self,
        signer: &[u8; 32],
    ) -> Result<u64, paratime_node::cli::paratime::CallError> {
        let _permit = self.calls.acquire().await;
        next_nonce(&self.client, &self.runtime, signer).await
    }

    fn stopped(&self) -> bool {
        *self.stop.borrow()
    }

    fn account(n: usize) -> ed25519_dalek::SigningKey {
        ed25519_dalek::SigningKey::from_bytes(&paratime_sdk::state::hash(
            format!("paratime-dev load account {n}").as_bytes(),
        ))
    }

    fn call(
        &self,
        key: &ed25519_dalek::SigningKey,
        n: usize,
        seq: u64,
        nonce: u64,
    ) -> Option<Vec<u8>> {
        let key_name = match self.keys {
            // Accounts start at different keys and walk the whole set.
            Some(keys) => format!(
                "load-{}",
                (n as u64).wrapping_mul(7919).wrapping_add(seq) % keys
            ),
            None => format!("load-{n}-{seq}"),
        };
        let body = serde_json::json!({
            "key": key_name,
            "value": format!("{}", self.started.elapsed().as_micros()),
        })
        .to_string();
        encode_signed_call(key, &self.domain, "kv.Put", &body, nonce).ok()
    }
}

/// A probe: one transaction at a time from account `n`, each waiting for its round (its
/// submit → finalized time is a latency sample).
async fn probe(sh: Arc<Shared>, n: usize) {
    let key = Shared::account(n);
    let signer = key.verifying_key().to_bytes();
    let mut nonce = None;
    let mut seq = 0u64;
    while !sh.stopped() {
        let current = match nonce {
            Some(x) => x,
            None => match next_nonce(&sh.client, &sh.runtime, &signer).await {
                Ok(x) => x,
                Err(e) => {
                    sh.error(format!("nonce query: {e}"));
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    continue;
                }
            },
        };
        seq += 1;
        let Some(call) = sh.call(&key, n, seq, current) else {
            return;
        };
        let t = Instant::now();
        match submit(&sh.client, &sh.runtime, &call, Duration::from_secs(30)).await {
            Ok(v) if v["result"]["error"].is_null() => {
                let ms = t.elapsed().as_secs_f64() * 1000.0;
                if let Ok(mut l) = sh.latencies.lock() {
                    l.push(ms);
                }
                sh.done.fetch_add(1, Ordering::Relaxed);
                nonce = Some(current + 1);
            }
            Ok(v) => {
                sh.error(v["result"]["error"].to_string());
                // Executed and failed (nonce spent) or refused (not): ask.
                nonce = None;
            }
            Err(e) => {
                sh.error(e.to_string());
                nonce = None;
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
}

/// Publishes the round the node at `address` applied (`storage.last_finalized_round` of the
/// runtime) every [`ROUND_POLL`], until `stop`.
async fn watch_rounds(
    address: String,
    runtime: String,
    applied: watch::Sender<u64>,
    stop: watch::Receiver<bool>,
) {
    let client = paratime_node::control::client::Client::new(address);
    while !*stop.borrow() {
        if let Ok(v) = client.status().await {
            let rt = &v["runtimes"][&runtime];
            if let Some(r) = rt["storage"]["last_finalized_round"].as_u64() {
                applied.send_if_modified(|x| std::mem::replace(x, r) != r);
            }
        }
        tokio::time::sleep(ROUND_POLL).await;
    }
}

/// A bulk account: keeps `window` transactions from account `n` in flight without waiting on
/// a control connection for each (submit-no-wait), and counts them finalized as its nonce
/// (read from the finalized state after each applied round, at least every [`POLL`]) passes
/// them.
async fn bulk(sh: Arc<Shared>, n: usize, window: usize) {
    let mut applied = sh.applied.clone();
    let key = Shared::account(n);
    let signer = key.verifying_key().to_bytes();
    // Next nonce to use; submitted nonces not seen finalized yet.
    let mut next: Option<u64> = None;
    let mut outstanding = std::collections::VecDeque::<u64>::new();
    let mut last_progress = Instant::now();
    let mut seq = 0u64;
    while !sh.stopped() {
        let Some(mut nonce) = next else {
            match sh.nonce(&signer).await {
                Ok(x) => {
                    next = Some(x);
                    outstanding.clear();
                    last_progress = Instant::now();
                }
                Err(e) => {
                    sh.error(format!("nonce query: {e}"));
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
            continue;
        };
        // The window's free places, submitted at once (within the generator's bound on
        // calls in flight): one at a time, an account's refill took a check-tx wait per
        // transaction and capped the load below what the network takes.
        let room = window.saturating_sub(outstanding.len());
        if room > 0 && !sh.stopped() {
            let mut calls = Vec::with_capacity(room);
            for i in 0..room as u64 {
                seq += 1;
                let Some(call) = sh.call(&key, n, seq, nonce + i) else {
                    return;
                };
                calls.push(call);
            }
            let results = futures::future::join_all(calls.iter().map(|call| async {
                let mut attempt = 1;
                loop {
                    let r = {
                        let _permit = sh.calls.acquire().await;
                        submit_no_wait(&sh.client, &sh.runtime, call, Duration::from_secs(30)).await
                    };
                    match r {
                        Err(e) if attempt < ATTEMPTS && !sh.stopped() => {
                            sh.error(e.to_string());
                            attempt += 1;
                            tokio::time::sleep(Duration::from_millis(200)).await;
                        }
                        r => break r,
                    }
                }
            }))
            .await;
            for r in results {
                match r {
                    Ok(_) if next.is_some() => {
                        outstanding.push_back(nonce);
                        nonce += 1;
                        next = Some(nonce);
                    }
                    Ok(_) => {}
                    Err(e) => {
                        // Later nonces wait behind the missing one: start again from the
                        // account's nonce.
                        sh.error(e.to_string());
                        next = None;
                    }
                }
            }
            if next.is_none() {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
        if next.is_none() {
            continue;
        }
        match tokio::time::timeout(POLL, applied.changed()).await {
            Ok(Ok(())) | Err(_) => {}
            // The watcher is gone (the run is stopping): poll on the timer.
            Ok(Err(_)) => tokio::time::sleep(POLL).await,
        }
        match sh.nonce(&signer).await {
            Ok(current) => {
                let before = outstanding.len();
                while outstanding.front().is_some_and(|&x| x < current) {
                    outstanding.pop_front();
                }
                let finalized = before - outstanding.len();
                if finalized > 0 {
                    sh.done.fetch_add(finalized as u64, Ordering::Relaxed);
                    sh.bulk_done.fetch_add(finalized as u64, Ordering::Relaxed);
                    last_progress = Instant::now();
                } else if !outstanding.is_empty() && last_progress.elapsed() > STALLED {
                    sh.error(format!(
                        "{} transactions of load account {n} not finalized within {}s: submitting again from nonce {current}",
                        outstanding.len(),
                        STALLED.as_secs()
                    ));
                    next = None;
                }
            }
            Err(e) => sh.error(format!("nonce query: {e}")),
        }
    }
}

/// Runs the load until `stop` turns true: `concurrency` transactions in flight, the first
/// [`PROBES`] from accounts that wait for each round (latency), the rest from accounts that
/// keep up to [`ACCOUNT_WINDOW`] each in flight without waiting.
pub(crate) async fn run(
    address: String,
    runtime: String,
    (concurrency, keys): (usize, Option<u64>),
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
    let (applied_tx, applied) = watch::channel(0);
    let watcher = tokio::spawn(watch_rounds(
        address.clone(),
        runtime.clone(),
        applied_tx,
        stop.clone(),
    ));
    let sh = Arc::new(Shared {
        client: paratime_node::control::client::Client::new(address.clone()).keeping(KEPT),
        runtime: runtime.clone(),
        domain,
        started,
        latencies: Mutex::new(Vec::new()),
        done: done.clone(),
        bulk_done: AtomicU64::new(0),
        errors: AtomicU64::new(0),
        last_error: Mutex::new(String::new()),
        stop: stop.clone(),
        keys,
        applied,
        calls: tokio::sync::Semaphore::new(BULK_CALLS),
    });
    let probes = concurrency.min(PROBES);
    let rest = concurrency - probes;
    let accounts = rest.div_ceil(ACCOUNT_WINDOW);
    let mut tasks = Vec::new();
    for n in 0..probes {
        tasks.push(tokio::spawn(probe(sh.clone(), n)));
    }
    for a in 0..accounts {
        // The rest spread evenly: windows differ by at most one.
        let window = rest / accounts + usize::from(a < rest % accounts);
        tasks.push(tokio::spawn(bulk(sh.clone(), PROBES + a, window)));
    }
    let (errors, last_error) = (&sh.errors, &sh.last_error);
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
    watcher.abort();
    let after = roothash(&address, &runtime).await;
    let mut l = sh.latencies.lock().map(|l| l.clone()).unwrap_or_default();
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
        bulk_finalized: sh.bulk_done.load(Ordering::Relaxed),
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
