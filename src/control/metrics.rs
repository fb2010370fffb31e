//! The Prometheus endpoint (`metrics.mode: pull`, `metrics.address`): OpenMetrics text on every
//! path, as oasis-node's promhttp handler answers on every path. At each scrape the node's
//! status (the document `control status` prints) is read and written as metrics, with the event
//! metrics of [`crate::metrics`] and this process's CPU, memory and disk figures from /proc.
//! The metric names and what each one means are listed in docs/metrics.md.

use super::{snapshot, ControlState, Limits, Status};
use crate::consensus::state::Role;
use crate::metrics::{values, Labels};
use prometheus_client::encoding::DescriptorEncoder;
use prometheus_client::metrics::MetricType::{Counter, Gauge, Unknown};
use std::path::{Path, PathBuf};

/// Scrapes served at once; more are answered 503 at once.
const MAX_CONNECTIONS: usize = 16;

/// What a scrape reads.
#[derive(Clone)]
pub struct Scrape {
    /// The node's status.
    pub state: ControlState,
    /// `common.data_dir` (its size is `oasis_node_disk_usage_bytes`).
    pub data_dir: PathBuf,
    /// Directory sizes walked recently: a walk is at most once per [`DISK_WALK_EVERY`] per
    /// directory, however often or concurrently Prometheus (or anyone) scrapes.
    pub disk: std::sync::Arc<std::sync::Mutex<DiskCache>>,
}

/// Directory → when it was walked and its size.
pub type DiskCache = std::collections::HashMap<PathBuf, (std::time::Instant, u64)>;

/// How long a directory's size is reused.
const DISK_WALK_EVERY: std::time::Duration = std::time::Duration::from_secs(30);

impl Scrape {
    /// What a scrape of `state` reads, with `data_dir` for the disk figures.
    pub fn new(state: ControlState, data_dir: PathBuf) -> Self {
        Self {
            state,
            data_dir,
            disk: Default::default(),
        }
    }

    /// Bytes under `dir`, walked at most once per [`DISK_WALK_EVERY`]; the lock is held over the
    /// walk, so concurrent scrapes wait for one walk instead of each doing their own.
    fn usage(&self, dir: &Path) -> u64 {
        let mut cache = self
            .disk
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let now = std::time::Instant::now();
        match cache.get(dir) {
            Some((at, size)) if now.duration_since(*at) < DISK_WALK_EVERY => *size,
            _ => {
                let size = disk_usage(dir);
                cache.insert(dir.to_path_buf(), (now, size));
                size
            }
        }
    }
}

impl std::fmt::Debug for Scrape {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scrape")
            .field("data_dir", &self.data_dir)
            .finish_non_exhaustive()
    }
}

impl prometheus_client::collector::Collector for Scrape {
    fn encode(&self, mut enc: DescriptorEncoder<'_>) -> std::fmt::Result {
        let st = snapshot(&self.state);
        encode_status(&mut enc, &st)?;
        encode_stores(&mut enc, &st, &self.data_dir, &|d| self.usage(d))?;
        encode_process(&mut enc, &self.data_dir, &|d| self.usage(d))?;
        crate::metrics::events().encode(&mut enc)
    }
}

/// The OpenMetrics text of one scrape, or `None` when a collector failed (the text would be
/// cut short: the endpoint answers 500 instead of a page Prometheus would refuse).
pub fn render(scrape: &Scrape) -> Option<String> {
    let mut reg = prometheus_client::registry::Registry::default();
    reg.register_collector(Box::new(scrape.clone()));
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &reg).ok()?;
    Some(text)
}

fn flag(b: bool) -> f64 {
    if b {
        1.0
    } else {
        0.0
    }
}

/// One family read from the status: name, help, type and rows.
type Family = (
    &'static str,
    &'static str,
    prometheus_client::metrics::MetricType,
    Vec<(Labels, f64)>,
);

/// Rows of one runtime-labelled family.
fn per_runtime(st: &Status, f: impl Fn(&super::RuntimeEntry) -> Option<f64>) -> Vec<(Labels, f64)> {
    st.runtimes
        .iter()
        .filter_map(|(id, rt)| Some((vec![("runtime", id.clone())], f(rt)?)))
        .collect()
}

/// The metrics read from the status.
fn encode_status(enc: &mut DescriptorEncoder<'_>, st: &Status) -> std::fmt::Result {
    values(
        enc,
        "paratime_node_info",
        "This node: software version and mode (always 1).",
        Gauge,
        [(
            vec![
                ("version", st.software_version.clone()),
                ("mode", st.mode.clone()),
            ],
            1.0,
        )],
    )?;
    // Per runtime: the committee worker's view (oasis `go/worker/common/committee`).
    let chain = |rt: &super::RuntimeEntry| rt.committee.chain.clone();
    let role = |r: Role| {
        move |rt: &super::RuntimeEntry| {
            let c = rt.committee.chain.as_ref()?;
            Some(flag(
                c.executor_roles.as_ref().is_some_and(|v| v.contains(&r)),
            ))
        }
    };
    let liveness = |rt: &super::RuntimeEntry| chain(rt).and_then(|c| c.liveness);
    let roothash = |rt: &super::RuntimeEntry| rt.roothash.clone();
    let worker = |rt: &super::RuntimeEntry| rt.worker.clone();
    let families: Vec<Family> = vec![
        (
            "oasis_worker_epoch_number",
            "Current epoch as the runtime's committee worker sees it.",
            Gauge,
            per_runtime(st, |rt| Some(chain(rt)?.epoch.0 as f64)),
        ),
        (
            "oasis_worker_executor_is_worker",
            "1 if this node is a worker of the runtime's executor committee.",
            Gauge,
            per_runtime(st, role(Role::Worker)),
        ),
        (
            "oasis_worker_executor_is_backup_worker",
            "1 if this node is a backup worker of the runtime's executor committee.",
            Gauge,
            per_runtime(st, role(Role::BackupWorker)),
        ),
        (
            "oasis_worker_executor_committee_p2p_peers",
            "Connected peers of the runtime's executor committee (other members).",
            Gauge,
            per_runtime(st, |rt| Some(chain(rt)?.peers.len() as f64)),
        ),
        (
            "oasis_worker_executor_liveness_total_rounds",
            "Rounds of this epoch in which this node was a committee worker.",
            Gauge,
            per_runtime(st, |rt| Some(liveness(rt)?.total_rounds as f64)),
        ),
        (
            "oasis_worker_executor_liveness_live_rounds",
            "Of those, rounds this node's commitment was counted in.",
            Gauge,
            per_runtime(st, |rt| Some(liveness(rt)?.live_rounds as f64)),
        ),
        (
            "oasis_worker_executor_liveness_live_ratio",
            "live_rounds / total_rounds (1 when not in the committee).",
            Gauge,
            per_runtime(st, |rt| {
                chain(rt)?;
                Some(match liveness(rt) {
                    Some(l) if l.total_rounds > 0 => l.live_rounds as f64 / l.total_rounds as f64,
                    _ => 1.0,
                })
            }),
        ),
        (
            "oasis_worker_processed_block_count",
            "Runtime blocks (rounds finalized or failed) in the consensus state (counter).",
            Unknown,
            per_runtime(st, |rt| {
                roothash(rt).map(|r| (r.rounds_finalized + r.rounds_failed) as f64)
            }),
        ),
        (
            "oasis_worker_failed_round_count",
            "Runtime rounds that failed (counter).",
            Unknown,
            per_runtime(st, |rt| roothash(rt).map(|r| r.rounds_failed as f64)),
        ),
        (
            "oasis_worker_execution_discrepancy_detected_count",
            "Execution discrepancies detected in the runtime's rounds (counter).",
            Unknown,
            per_runtime(st, |rt| roothash(rt).map(|r| r.discrepancies as f64)),
        ),
        (
            "oasis_worker_storage_full_round",
            "Last runtime round whose state this node applied.",
            Gauge,
            per_runtime(st, |rt| Some(worker(rt)?.latest_round.0 as f64)),
        ),
        (
            "oasis_txpool_pending_schedule_size",
            "Transactions waiting in this node's pool to be scheduled.",
            Gauge,
            per_runtime(st, |rt| Some(worker(rt)?.pool_size as f64)),
        ),
        (
            "paratime_runtime_latest_round",
            "Latest runtime round in the consensus state.",
            Gauge,
            per_runtime(st, |rt| Some(rt.latest_round.0 as f64)),
        ),
        (
            "paratime_runtime_last_retained_round",
            "Lowest runtime round whose history and state this node keeps (runtime.prune).",
            Gauge,
            per_runtime(st, |rt| Some(rt.last_retained_round.0 as f64)),
        ),
        (
            "paratime_runtime_ready",
            "1 if the hosted runtime is ready (committee.status ready).",
            Gauge,
            per_runtime(st, |rt| {
                Some(flag(
                    rt.committee.status == super::api::CommitteeState::Ready,
                ))
            }),
        ),
        (
            "paratime_worker_commitments",
            "Executor commitments this node signed since it started.",
            Counter,
            per_runtime(st, |rt| Some(worker(rt)?.commitments as f64)),
        ),
        (
            "paratime_worker_proposals",
            "Batches this node proposed as scheduler since it started.",
            Counter,
            per_runtime(st, |rt| Some(worker(rt)?.proposals as f64)),
        ),
        (
            "paratime_txpool_gossip_refused",
            "Gossiped transactions refused by check-tx here since the node started.",
            Counter,
            per_runtime(st, |rt| Some(worker(rt)?.gossip_refused as f64)),
        ),
        (
            "paratime_sandbox_restarts",
            "Restarts of the runtime's sandbox after a failure or exit.",
            Counter,
            per_runtime(st, |rt| Some(rt.sandbox.restart_count as f64)),
        ),
        (
            "paratime_sandbox_limit_kills",
            "Times the runtime was killed for exceeding a resource limit (runtime.limits).",
            Counter,
            per_runtime(st, |rt| Some(rt.sandbox.limit_kills as f64)),
        ),
        (
            "paratime_runtime_log_lines",
            "Lines of the runtime's output re-logged by the node.",
            Counter,
            per_runtime(st, |rt| Some(rt.sandbox.log.lines as f64)),
        ),
        (
            "paratime_runtime_log_dropped_lines",
            "Lines of the runtime's output dropped by the rate limit.",
            Counter,
            per_runtime(st, |rt| Some(rt.sandbox.log.dropped as f64)),
        ),
        (
            "paratime_runtime_log_truncated_lines",
            "Lines of the runtime's output cut at the line cap.",
            Counter,
            per_runtime(st, |rt| Some(rt.sandbox.log.truncated as f64)),
        ),
        (
            "paratime_storage_cache_bytes",
            "Memory the runtime's state tree holds now (decoded nodes and page cache).",
            Gauge,
            per_runtime(st, |rt| {
                rt.state_memory
                    .as_ref()
                    .map(|m| (m.node_cache_bytes + m.page_cache_bytes) as f64)
            }),
        ),
        (
            "paratime_storage_node_cache_misses",
            "State tree nodes read from the store because the node cache did not hold them.",
            Counter,
            per_runtime(st, |rt| {
                rt.state_memory.as_ref().map(|m| m.node_cache_misses as f64)
            }),
        ),
        (
            "paratime_storage_node_cache_miss_seconds",
            "Time spent reading those nodes from the store.",
            Counter,
            per_runtime(st, |rt| {
                rt.state_memory.as_ref().map(|m| m.node_cache_miss_seconds)
            }),
        ),
        (
            "paratime_storage_cache_limit_bytes",
            "storage.max_cache_size, per runtime.",
            Gauge,
            per_runtime(st, |rt| {
                rt.state_memory.as_ref().map(|m| m.cache_limit_bytes as f64)
            }),
        ),
    ];
    for (name, help, kind, rows) in families {
        values(enc, name, help, kind, rows)?;
    }
    let finalized: u64 = st
        .runtimes
        .values()
        .filter_map(|rt| rt.roothash.as_ref())
        .map(|r| r.rounds_finalized)
        .sum();
    values(
        enc,
        "oasis_finalized_rounds",
        "Runtime rounds finalized, all runtimes (counter).",
        Unknown,
        [(Labels::new(), finalized as f64)],
    )?;
    if let Some(reg) = &st.registration {
        let registered = reg.last_registration.is_some()
            && reg
                .node_status
                .as_ref()
                .is_some_and(|n| !n.expiration_processed);
        values(
            enc,
            "oasis_worker_node_registered",
            "1 if this node is registered in the consensus state.",
            Gauge,
            [(Labels::new(), flag(registered))],
        )?;
        values(
            enc,
            "paratime_registration_last_attempt_successful",
            "1 if the last registration attempt succeeded.",
            Gauge,
            [(Labels::new(), flag(reg.last_attempt_successful))],
        )?;
    }
    if let Some(p) = &st.p2p {
        values(
            enc,
            "oasis_p2p_peers",
            "Connected libp2p peers.",
            Gauge,
            [(Labels::new(), p.num_peers as f64)],
        )?;
        values(
            enc,
            "oasis_p2p_topics",
            "Gossip topics this node has joined.",
            Gauge,
            [(Labels::new(), p.topics.len() as f64)],
        )?;
    }
    if let Some(c) = &st.consensus {
        let syncing = c.status != super::api::Readiness::Ready;
        for (name, help, v) in [
            ("cometbft_consensus_height", "Latest consensus height (named as oasis-node exports its CometBFT's; the engine here is Malachite).", c.latest_height.0 as f64),
            ("cometbft_consensus_validators", "Validators in the current set.", c.validators.len() as f64),
            ("cometbft_p2p_peers", "Consensus engine peers.", c.p2p.num_peers as f64),
            ("cometbft_blocksync_syncing", "1 while the node catches up with the network's blocks.", flag(syncing)),
            ("paratime_consensus_last_retained_height", "Lowest consensus height whose block this node keeps (consensus.prune).", c.last_retained_height as f64),
            ("paratime_consensus_epoch", "Current consensus epoch.", c.latest_epoch.0 as f64),
            ("paratime_consensus_block_interval_seconds", "Mean interval between recent blocks.", c.block_interval_ms as f64 / 1000.0),
            ("paratime_consensus_store_cache_bytes", "Memory the consensus state store's cache holds now.", c.store_cache_bytes as f64),
        ] {
            values(enc, name, help, Gauge, [(Labels::new(), v)])?;
        }
    }
    Ok(())
}

/// A `Key:  123 kB` line of /proc/self/status, in bytes.
fn status_kb(text: &str, key: &str) -> Option<f64> {
    let v = text.lines().find_map(|l| l.strip_prefix(key))?;
    let kb: f64 = v
        .trim_start_matches(':')
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    Some(kb * 1024.0)
}

/// Bytes allocated on disk under `dir` (files and directories, symlinks not followed), walking
/// at most `MAX_ENTRIES` entries.
fn disk_usage(dir: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    const MAX_ENTRIES: usize = 100_000;
    let mut todo = vec![dir.to_path_buf()];
    let (mut total, mut seen) = (0u64, 0usize);
    while let Some(d) = todo.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            seen += 1;
            if seen > MAX_ENTRIES {
                return total;
            }
            let Ok(md) = e.path().symlink_metadata() else {
                continue;
            };
            total += md.blocks() * 512;
            if md.is_dir() {
                todo.push(e.path());
            }
        }
    }
    total
}

/// Disk space of the stores: each runtime's state and history, and the consensus store.
fn encode_stores(
    enc: &mut DescriptorEncoder<'_>,
    st: &Status,
    data_dir: &Path,
    usage: &dyn Fn(&Path) -> u64,
) -> std::fmt::Result {
    values(
        enc,
        "paratime_storage_disk_bytes",
        "Disk space of the runtime's store (state tree versions and history) under the data dir.",
        Gauge,
        st.runtimes.keys().map(|id| {
            (
                vec![("runtime", id.clone())],
                usage(&data_dir.join("runtimes").join(id)) as f64,
            )
        }),
    )?;
    if st.consensus.is_some() {
        use std::os::unix::fs::MetadataExt;
        let size =
            std::fs::metadata(data_dir.join("consensus.redb")).map_or(0, |m| m.blocks() * 512);
        values(
            enc,
            "paratime_consensus_store_disk_bytes",
            "Disk space of the consensus store (consensus.redb).",
            Gauge,
            [(Labels::new(), size as f64)],
        )?;
    }
    Ok(())
}

/// This process's CPU, memory and I/O (oasis `go/oasis-node/cmd/common/metrics`), and the data
/// dir's size.
fn encode_process(
    enc: &mut DescriptorEncoder<'_>,
    data_dir: &Path,
    usage: &dyn Fn(&Path) -> u64,
) -> std::fmt::Result {
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name, which is in parentheses and may hold spaces.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let tick_field = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok());
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let io = std::fs::read_to_string("/proc/self/io").unwrap_or_default();
    let io_field = |k: &str| {
        io.lines()
            .find_map(|l| l.strip_prefix(k))
            .and_then(|v| v.trim().parse::<f64>().ok())
    };
    // utime and stime are the 14th and 15th fields of stat: 12th and 13th after the name.
    let rows: [(&str, &str, Option<f64>); 9] = [
        (
            "oasis_node_cpu_utime_seconds",
            "CPU time this process spent in user mode.",
            tick_field(11).map(|t| t / ticks),
        ),
        (
            "oasis_node_cpu_stime_seconds",
            "CPU time this process spent in kernel mode.",
            tick_field(12).map(|t| t / ticks),
        ),
        (
            "oasis_node_mem_vm_size_bytes",
            "Virtual memory size of this process.",
            status_kb(&status, "VmSize"),
        ),
        (
            "oasis_node_mem_rss_anon_bytes",
            "Resident anonymous memory of this process.",
            status_kb(&status, "RssAnon"),
        ),
        (
            "oasis_node_mem_rss_file_bytes",
            "Resident file-backed memory of this process.",
            status_kb(&status, "RssFile"),
        ),
        (
            "oasis_node_mem_rss_shmem_bytes",
            "Resident shared memory of this process.",
            status_kb(&status, "RssShmem"),
        ),
        (
            "oasis_node_disk_usage_bytes",
            "Disk space used by the data directory.",
            Some(usage(data_dir) as f64),
        ),
        (
            "oasis_node_disk_read_bytes",
            "Bytes this process read from storage.",
            io_field("read_bytes:"),
        ),
        (
            "oasis_node_disk_written_bytes",
            "Bytes this process wrote to storage.",
            io_field("write_bytes:"),
        ),
    ];
    for (name, help, v) in rows {
        if let Some(v) = v {
            values(enc, name, help, Gauge, [(Labels::new(), v)])?;
        }
    }
    Ok(())
}

/// The reply to a scrape over the connection limit.
fn overloaded_reply() -> Vec<u8> {
    let body = format!("too many metrics connections (limit {MAX_CONNECTIONS})\n");
    format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain\r\nretry-after: 1\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// Serves the metrics on `listener` (every path, GET or HEAD) until `stop` is cancelled: at most
/// 16 scrapes at once, 5 s for a request's headers (oasis's ReadTimeout), bodies ignored.
pub async fn serve(
    listener: tokio::net::TcpListener,
    scrape: Scrape,
    stop: tokio_util::sync::CancellationToken,
) -> std::io::Result<()> {
    use axum::http::header::CONTENT_TYPE;
    use axum::http::StatusCode;
    let app = axum::Router::new().fallback(move || {
        let scrape = scrape.clone();
        async move {
            // The status snapshot and the data dir walk are blocking reads.
            match tokio::task::spawn_blocking(move || render(&scrape)).await {
                Ok(Some(text)) => (
                    StatusCode::OK,
                    [(
                        CONTENT_TYPE,
                        "application/openmetrics-text; version=1.0.0; charset=utf-8",
                    )],
                    text,
                ),
                _ => {
                    log::warn!(target: "metrics", "a scrape failed: answered 500");
                    (
                        StatusCode::INTERNAL_SERVER_ERROR,
                        [(CONTENT_TYPE, "text/plain")],
                        "the metrics could not be collected: see the node's log\n".to_string(),
                    )
                }
            }
        }
    });
    // One request per connection, and a connection lives 30 s at most: a client that never
    // reads its replies cannot hold a slot. Request bodies are never read.
    let limits = Limits {
        max_connections: MAX_CONNECTIONS,
        header_read_timeout: std::time::Duration::from_secs(5),
        body_read_timeout: std::time::Duration::from_secs(5),
        max_body: 0,
        keep_alive: false,
        max_connection_time: Some(std::time::Duration::from_secs(30)),
    };
    super::serve_router("metrics", listener, app, limits, overloaded_reply(), stop).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_figures_are_read() {
        let dir = std::env::temp_dir().join(format!("pt-metrics-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("a")).expect("test");
        std::fs::write(dir.join("a/f"), vec![1u8; 100_000]).expect("test");
        assert!(disk_usage(&dir) >= 100_000, "{}", disk_usage(&dir));
        let mut reg = prometheus_client::registry::Registry::default();
        #[derive(Debug)]
        struct P(PathBuf);
        impl prometheus_client::collector::Collector for P {
            fn encode(&self, mut enc: DescriptorEncoder<'_>) -> std::fmt::Result {
                encode_process(&mut enc, &self.0, &disk_usage)
            }
        }
        reg.register_collector(Box::new(P(dir.clone())));
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &reg).expect("test");
        let _ = std::fs::remove_dir_all(&dir);
        for (name, positive) in [
            ("oasis_node_cpu_utime_seconds ", false),
            ("oasis_node_mem_rss_anon_bytes ", true),
            ("oasis_node_disk_usage_bytes ", true),
        ] {
            let v: f64 = text
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .unwrap_or_else(|| panic!("no {name} in {text}"))
                .parse()
                .expect("test");
            assert!(v >= 0.0 && (v > 0.0 || !positive), "{name}{v}");
        }
    }
}
