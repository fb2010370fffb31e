//! Prometheus metrics counted as events happen (RHP calls, executed batches), in one registry
//! per process as oasis-node keeps its metrics in Prometheus's default registry. Everything the
//! node already tracks for `control status` (rounds, roles, registration, peers, sandbox and log
//! counters) is read from the status at each scrape instead: see `control::metrics`, which
//! serves both on `metrics.address`.
//!
//! Names are oasis-node's where the same thing exists. oasis-node's counters (client_golang)
//! have no `_total` suffix and OpenMetrics would add one to a counter, so they are written with
//! type `unknown`: the series keep oasis's names and `rate()` works on them as before. Our own
//! counters are OpenMetrics counters (`…_total`). oasis's summaries are histograms here: their
//! `_sum` and `_count` series are the same.

use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::metrics::MetricType;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{LazyLock, Mutex};
use std::time::Duration;

/// Labels of one series: `(name, value)` pairs.
pub type Labels = Vec<(&'static str, String)>;

/// Latency buckets in seconds: 100 µs to about 52 s.
fn seconds() -> Histogram {
    Histogram::new(exponential_buckets(0.0001, 2.0, 20))
}

/// Size buckets (transactions per batch): 1 to 32,768.
fn sizes() -> Histogram {
    Histogram::new(exponential_buckets(1.0, 2.0, 16))
}

/// One RHP call type's figures.
#[derive(Debug)]
struct RhpCall {
    successes: u64,
    failures: u64,
    latency: Histogram,
}

/// One runtime's executed batches.
#[derive(Debug)]
struct Batches {
    size: Histogram,
    runtime_processing: Histogram,
    processing: Histogram,
    aborted: u64,
}

/// The event metrics of this process.
#[derive(Debug, Default)]
pub struct Events {
    rhp: Mutex<BTreeMap<&'static str, RhpCall>>,
    rhp_timeouts: AtomicU64,
    batches: Mutex<BTreeMap<String, Batches>>,
}

static EVENTS: LazyLock<Events> = LazyLock::new(Events::default);

/// This process's event metrics.
pub fn events() -> &'static Events {
    &EVENTS
}

impl Events {
    /// An RHP call `call` (the request body's name) ended after `elapsed`: answered (`ok`), or
    /// failed (an error answer, a closed connection, or a timeout).
    pub fn rhp_call(&self, call: &'static str, elapsed: Duration, ok: bool, timed_out: bool) {
        if timed_out {
            self.rhp_timeouts.fetch_add(1, Ordering::Relaxed);
        }
        let mut m = self
            .rhp
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let c = m.entry(call).or_insert_with(|| RhpCall {
            successes: 0,
            failures: 0,
            latency: seconds(),
        });
        if ok {
            c.successes += 1;
        } else {
            c.failures += 1;
        }
        c.latency.observe(elapsed.as_secs_f64());
    }

    /// The compute worker executed a batch of `txs` transactions of `runtime`: the runtime took
    /// `runtime_time`, the whole round's work (judging and committing included) `total`;
    /// `aborted` when it was committed as a failure.
    pub fn batch(
        &self,
        runtime: &str,
        txs: usize,
        runtime_time: Duration,
        total: Duration,
        aborted: bool,
    ) {
        let mut m = self
            .batches
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let b = m.entry(runtime.to_string()).or_insert_with(|| Batches {
            size: sizes(),
            runtime_processing: seconds(),
            processing: seconds(),
            aborted: 0,
        });
        b.size.observe(txs as f64);
        b.runtime_processing.observe(runtime_time.as_secs_f64());
        b.processing.observe(total.as_secs_f64());
        if aborted {
            b.aborted += 1;
        }
    }

    /// Writes the event metrics (every family, with no series before its first event).
    pub fn encode(&self, enc: &mut DescriptorEncoder<'_>) -> std::fmt::Result {
        {
            let rhp = self
                .rhp
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let rows = |f: fn(&RhpCall) -> u64| -> Vec<(Labels, f64)> {
                rhp.iter()
                    .map(|(call, c)| (vec![("call", call.to_string())], f(c) as f64))
                    .collect()
            };
            values(
                enc,
                "oasis_rhp_successes",
                "Number of successful RHP calls, by call (counter).",
                MetricType::Unknown,
                rows(|c| c.successes),
            )?;
            values(
                enc,
                "oasis_rhp_failures",
                "Number of failed RHP calls (error answers, closed connections, timeouts), by call (counter).",
                MetricType::Unknown,
                rows(|c| c.failures),
            )?;
            histograms(
                enc,
                "oasis_rhp_latency",
                "RHP call latency in seconds, by call.",
                rhp.iter()
                    .map(|(call, c)| (vec![("call", call.to_string())], &c.latency)),
            )?;
        }
        values(
            enc,
            "oasis_rhp_timeouts",
            "Number of timed out RHP calls (counter).",
            MetricType::Unknown,
            [(
                Labels::new(),
                self.rhp_timeouts.load(Ordering::Relaxed) as f64,
            )],
        )?;
        let batches = self
            .batches
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let by_runtime = |f: fn(&Batches) -> &Histogram| {
            batches
                .iter()
                .map(move |(rt, b)| (vec![("runtime", rt.clone())], f(b)))
        };
        histograms(
            enc,
            "oasis_worker_batch_size",
            "Number of transactions in an executed batch.",
            by_runtime(|b| &b.size),
        )?;
        histograms(
            enc,
            "oasis_worker_batch_runtime_processing_time",
            "Time the runtime took to execute a batch, in seconds.",
            by_runtime(|b| &b.runtime_processing),
        )?;
        histograms(
            enc,
            "oasis_worker_batch_processing_time",
            "Time to execute a batch and commit to its results, in seconds.",
            by_runtime(|b| &b.processing),
        )?;
        values(
            enc,
            "oasis_worker_aborted_batch_count",
            "Number of executed batches committed as failures (counter).",
            MetricType::Unknown,
            batches
                .iter()
                .map(|(rt, b)| (vec![("runtime", rt.clone())], b.aborted as f64)),
        )
    }
}

/// Writes one family of plain values: gauges, or counters (typed `unknown` for oasis's names,
/// `counter` for ours, whose names then end in `_total`). Whole numbers are written as integers.
pub fn values(
    enc: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    kind: MetricType,
    rows: impl IntoIterator<Item = (Labels, f64)>,
) -> std::fmt::Result {
    fn write(
        m: &mut prometheus_client::encoding::MetricEncoder<'_>,
        kind: MetricType,
        v: f64,
    ) -> std::fmt::Result {
        let whole = v.fract() == 0.0 && v.abs() < 9.0e15;
        match (kind, whole) {
            (MetricType::Counter, true) => {
                m.encode_counter::<Labels, u64, f64>(&(v.max(0.0) as u64), None)
            }
            (MetricType::Counter, false) => m.encode_counter::<Labels, f64, f64>(&v, None),
            (_, true) => m.encode_gauge(&(v as i64)),
            (_, false) => m.encode_gauge(&v),
        }
    }
    let mut family = enc.encode_descriptor(name, help, None, kind)?;
    for (labels, v) in rows {
        if labels.is_empty() {
            write(&mut family, kind, v)?;
        } else {
            write(&mut family.encode_family(&labels)?, kind, v)?;
        }
    }
    Ok(())
}

/// Writes one family of histograms.
fn histograms<'h>(
    enc: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    rows: impl IntoIterator<Item = (Labels, &'h Histogram)>,
) -> std::fmt::Result {
    let mut family = enc.encode_descriptor(name, help, None, MetricType::Histogram)?;
    for (labels, h) in rows {
        h.encode(family.encode_family(&labels)?)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Only(&'static Events);

    impl prometheus_client::collector::Collector for Only {
        fn encode(&self, mut enc: DescriptorEncoder<'_>) -> std::fmt::Result {
            self.0.encode(&mut enc)
        }
    }

    #[test]
    fn events_are_written_with_oasis_names_and_labels() {
        let ev: &'static Events = Box::leak(Box::default());
        ev.rhp_call(
            "RuntimeExecuteTxBatchRequest",
            Duration::from_millis(3),
            true,
            false,
        );
        ev.rhp_call("RuntimePingRequest", Duration::from_secs(2), false, true);
        ev.batch(
            "00ff",
            7,
            Duration::from_millis(2),
            Duration::from_millis(5),
            false,
        );
        ev.batch("00ff", 0, Duration::ZERO, Duration::from_millis(1), true);
        let mut reg = prometheus_client::registry::Registry::default();
        reg.register_collector(Box::new(Only(ev)));
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &reg).expect("test");
        for line in [
            "oasis_rhp_successes{call=\"RuntimeExecuteTxBatchRequest\"} 1",
            "oasis_rhp_failures{call=\"RuntimePingRequest\"} 1",
            "oasis_rhp_timeouts 1",
            "oasis_rhp_latency_count{call=\"RuntimeExecuteTxBatchRequest\"} 1",
            "oasis_worker_batch_size_sum{runtime=\"00ff\"} 7",
            "oasis_worker_batch_size_count{runtime=\"00ff\"} 2",
            "oasis_worker_aborted_batch_count{runtime=\"00ff\"} 1",
            "# TYPE oasis_rhp_successes unknown",
            "# TYPE oasis_worker_batch_size histogram",
        ] {
            assert!(
                text.lines().any(|l| l.starts_with(line)),
                "no line '{line}' in:\n{text}"
            );
        }
        assert!(text.ends_with("# EOF\n"), "{text}");
    }
}
