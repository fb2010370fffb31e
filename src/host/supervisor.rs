//! Keeps one runtime running: start, handshake, ping, restart with exponential backoff
//! (oasis numbers: 500 ms initial, ×1.5, ±50 % jitter, at most 1 h; reset after 15 min up).
//! Publishes the runtime's status on a watch channel; it is the status's only writer.

use super::{launcher, provision, runtime_log, state::RuntimeState, HostedRuntime, StartOptions};
use paratime_sdk::protocol::{Body, Empty};
use paratime_sdk::Version;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;

const FAILED: &str = crate::system::notify::message_id::RUNTIME_FAILED;

/// `committee.status` before the runtime is up (oasis's wording).
pub const WAITING: &str = "waiting for hosted runtime provision";

/// `runtimes.<id>.components[]`.
#[derive(Clone, Debug, Serialize)]
pub struct ComponentStatus {
    /// `ronl`.
    pub kind: String,
    /// Bundle version.
    pub version: Version,
}

/// `runtimes.<id>.committee.host`.
#[derive(Clone, Debug, Default, Serialize)]
pub struct HostVersions {
    /// Versions of the hosted runtime that are running.
    pub versions: Vec<Version>,
}

/// `runtimes.<id>.committee.status`: whether the runtime can serve (oasis's wording).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Readiness {
    /// The runtime completed the handshake and answers.
    #[serde(rename = "ready")]
    Ready,
    /// Not (yet, or no longer) running: [`WAITING`].
    #[serde(rename = "waiting for hosted runtime provision")]
    Waiting,
}

/// `runtimes.<id>.committee.status`: oasis-node's committee node states
/// (`go/worker/common/api/api.go`), in the order oasis evaluates them: the first condition not
/// met is the status.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum CommitteeState {
    /// The consensus layer has not caught up with the network (no decided block is recent).
    #[default]
    #[serde(rename = "waiting for consensus sync")]
    WaitingForConsensusSync,
    /// The runtime is not in the network's registry (the genesis document's runtimes): this
    /// node hosts a ParaTime its network does not run.
    #[serde(rename = "waiting for runtime registry descriptor")]
    WaitingForDescriptor,
    /// oasis: the runtime needs a key manager that is not available. Never shown here: key
    /// manager runtimes are not supported (this network's runtime descriptors name none).
    #[serde(rename = "waiting for available keymanager")]
    WaitingForKeymanager,
    /// oasis: the runtime's block history is being reindexed from consensus. Never shown here:
    /// the runtime's blocks are part of the consensus state and read from it directly.
    #[serde(rename = "waiting for history reindex")]
    WaitingForHistoryReindex,
    /// The storage worker is restoring the runtime's state from peers (state sync).
    #[serde(rename = "waiting for workers to initialize")]
    WaitingForWorkers,
    /// The runtime is not running (starting, restarting after a failure, or refused).
    #[serde(rename = "waiting for hosted runtime provision")]
    WaitingForProvision,
    /// oasis: the runtime is suspended by the roothash. Never shown here: runtimes are not
    /// suspended (no runtime staking or maintenance fees).
    #[serde(rename = "runtime suspended")]
    Suspended,
    /// Serving.
    #[serde(rename = "ready")]
    Ready,
}

impl CommitteeState {
    /// The status string.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::WaitingForConsensusSync => "waiting for consensus sync",
            Self::WaitingForDescriptor => "waiting for runtime registry descriptor",
            Self::WaitingForKeymanager => "waiting for available keymanager",
            Self::WaitingForHistoryReindex => "waiting for history reindex",
            Self::WaitingForWorkers => "waiting for workers to initialize",
            Self::WaitingForProvision => "waiting for hosted runtime provision",
            Self::Suspended => "runtime suspended",
            Self::Ready => "ready",
        }
    }
}

/// `runtimes.<id>.committee`.
#[derive(Clone, Debug, Serialize)]
pub struct CommitteeStatus {
    /// Waiting until the handshake, then ready. The control status shows the committee status
    /// derived from it (`control::api::CommitteeState`), not this field.
    #[serde(skip)]
    pub status: Readiness,
    /// The running version.
    pub active_version: Option<Version>,
    /// Host view.
    pub host: HostVersions,
}

/// paratime-node's sandbox details (`runtimes.<id>.sandbox`).
#[derive(Clone, Debug, Default, Serialize)]
pub struct SandboxStatus {
    /// Manifest hash of the bundle.
    pub bundle: String,
    /// Pid of the sandbox's first process, while running.
    pub pid: Option<i32>,
    /// The sandbox's network namespace.
    pub network_namespace: Option<String>,
    /// The node's own network namespace, for comparison.
    pub host_network_namespace: Option<String>,
    /// Start attempts so far.
    pub attempts: u64,
    /// Restarts after a failure or exit.
    pub restart_count: u64,
    /// The last failure.
    pub last_error: Option<String>,
    /// When the current instance became ready (RFC 3339).
    pub ready_since: Option<String>,
    /// The resource limits in force.
    pub limits: Option<super::limits::Limits>,
    /// How each limit is enforced on this host (from the launcher).
    pub limits_enforced: std::collections::BTreeMap<String, String>,
    /// Times the runtime was killed for exceeding a resource limit.
    pub limit_kills: u64,
    /// The runtime's output: lines re-logged, dropped by the rate limit, cut at the line cap.
    pub log: LogCounters,
}

/// `runtimes.<id>.sandbox.log`.
#[derive(Clone, Debug, Default, Serialize)]
pub struct LogCounters {
    /// Lines re-logged.
    pub lines: u64,
    /// Lines dropped by the rate limit.
    pub dropped: u64,
    /// Lines cut at the line cap.
    pub truncated: u64,
}

impl LogCounters {
    fn read(s: &runtime_log::Stats) -> Self {
        use std::sync::atomic::Ordering::Relaxed;
        Self {
            lines: s.lines.load(Relaxed),
            dropped: s.dropped.load(Relaxed),
            truncated: s.truncated.load(Relaxed),
        }
    }
}

/// `runtimes.<id>` in `control status`.
#[derive(Clone, Debug, Serialize)]
pub struct RuntimeStatus {
    /// On-chain descriptor (none without consensus).
    pub descriptor: Option<serde_json::Value>,
    /// Sandbox or unconfined.
    pub provisioner: super::Provisioner,
    /// Bundle components.
    pub components: Vec<ComponentStatus>,
    /// Committee view.
    pub committee: CommitteeStatus,
    /// Sandbox details.
    pub sandbox: SandboxStatus,
    /// State root of the host-owned state (hex).
    pub latest_state_root: String,
}

/// Supervisor settings.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Ping interval.
    pub ping_interval: Duration,
    /// Ping timeout.
    pub ping_timeout: Duration,
    /// Provisioner for status and logs.
    pub provisioner: super::Provisioner,
    /// Resource limits of each runtime.
    pub limits: super::limits::Limits,
    /// Bounds of each runtime's output (the tee file is per runtime: `<logs_dir>/<id>.log`).
    pub log: runtime_log::Settings,
    /// How the launcher enforces the limits (its `info`).
    pub limits_enforced: std::collections::BTreeMap<String, String>,
    /// Cancelled as soon as the node begins to stop (before its runtimes are told to): a
    /// runtime that exits then went with the node, it did not fail.
    pub node_stopping: tokio_util::sync::CancellationToken,
}

/// Exponential backoff with jitter.
#[derive(Debug)]
pub struct Backoff {
    next: Duration,
}

impl Backoff {
    const INITIAL: Duration = Duration::from_millis(500);
    const MAX: Duration = Duration::from_secs(3600);

    /// A fresh backoff.
    pub fn new() -> Self {
        Self {
            next: Self::INITIAL,
        }
    }

    /// The next delay (±50 % jitter) and grows the base by 1.5.
    pub fn next_delay(&mut self) -> Duration {
        let base = self.next;
        self.next = (self.next.mul_f64(1.5)).min(Self::MAX);
        let mut r = [0u8; 2];
        let _ = getrandom::fill(&mut r);
        let jitter = f64::from(u16::from_le_bytes(r)) / f64::from(u16::MAX); // 0..1
        base.mul_f64(0.5 + jitter)
    }
}

impl Default for Backoff {
    fn default() -> Self {
        Self::new()
    }
}

fn own_net_ns() -> Option<String> {
    std::fs::read_link("/proc/self/ns/net")
        .ok()
        .map(|p| p.to_string_lossy().into_owned())
}

/// Whether the node starts stopping within a second of a runtime's exit: a stop signal sent
/// to the whole process group or cgroup (Ctrl-C, systemd's default `KillMode`) reaches the
/// sandbox as early as the node, and that exit is no failure to warn about.
async fn stopping_with_the_node(shutdown: &tokio_util::sync::CancellationToken) -> bool {
    tokio::time::timeout(Duration::from_secs(1), shutdown.cancelled())
        .await
        .is_ok()
}

/// Initial status of a runtime.
pub fn initial_status(rt: &HostedRuntime, provisioner: super::Provisioner) -> RuntimeStatus {
    RuntimeStatus {
        descriptor: None,
        provisioner,
        components: vec![ComponentStatus {
            kind: "ronl".into(),
            version: rt.version,
        }],
        committee: CommitteeStatus {
            status: Readiness::Waiting,
            active_version: None,
            host: HostVersions::default(),
        },
        sandbox: SandboxStatus {
            bundle: rt.bundle.clone(),
            host_network_namespace: own_net_ns(),
            ..Default::default()
        },
        latest_state_root: hex::encode(paratime_sdk::state::EMPTY_STATE_ROOT),
    }
}

/// Runs the runtime until `shutdown` turns true; then asks it to shut down and stops it.
pub async fn run(
    rt: HostedRuntime,
    launcher: launcher::Client,
    settings: Settings,
    state: Arc<RuntimeState>,
    status: watch::Sender<RuntimeStatus>,
    conn: watch::Sender<Option<super::rhp::Connection>>,
    shutdown: tokio_util::sync::CancellationToken,
) {
    let mut backoff = Backoff::new();
    let module = "runtime/host/sandbox";
    let log_stats = Arc::new(runtime_log::Stats::default());
    let mut log = settings.log.clone();
    log.file = log.file.map(|dir| dir.join(format!("{}.log", rt.id)));
    let opts = StartOptions {
        provisioner: settings.provisioner,
        limits: settings.limits,
        log,
        log_stats: log_stats.clone(),
    };
    status.send_modify(|s| {
        s.sandbox.limits = Some(settings.limits);
        s.sandbox.limits_enforced = settings.limits_enforced.clone();
    });
    loop {
        let attempt = status.borrow().sandbox.attempts + 1;
        status.send_modify(|s| s.sandbox.attempts = attempt);
        log::info!(target: module, runtime_id:% = rt.id, attempt = attempt; "starting runtime");
        let provisioned = tokio::select! {
            p = provision(&launcher, &rt, &opts, state.clone()) => p,
            _ = shutdown.cancelled() => return,
        };
        match provisioned {
            Err(e) => {
                let e = e.to_string();
                log::error!(target: module, runtime_id:% = rt.id, attempt = attempt, err = e.as_str(), message_id = FAILED; "failed to start runtime");
                status.send_modify(|s| s.sandbox.last_error = Some(e));
            }
            Ok(p) => {
                let up_since = Instant::now();
                status.send_modify(|s| {
                    s.committee.status = Readiness::Ready;
                    s.committee.active_version = Some(rt.version);
                    s.committee.host.versions = vec![rt.version];
                    s.sandbox.pid = Some(p.sandbox.started.pid);
                    s.sandbox.network_namespace = p.sandbox.started.net_ns.clone();
                    s.sandbox.ready_since = Some(
                        humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
                    );
                    s.latest_state_root = hex::encode(state.root());
                });
                conn.send_replace(Some(p.conn.clone()));
                let mut exited = tokio::task::spawn_blocking(p.sandbox.exit_watcher());
                let report_exit = |exit: Result<launcher::Exit, tokio::task::JoinError>| {
                    let exit = exit.unwrap_or_else(|e| launcher::Exit {
                        reason: e.to_string(),
                        limit_exceeded: false,
                    });
                    let why = exit.reason;
                    if exit.limit_exceeded {
                        status.send_modify(|s| s.sandbox.limit_kills += 1);
                        log::warn!(target: module, runtime_id:% = rt.id, err = why.as_str(), message_id = crate::system::notify::message_id::RUNTIME_LIMIT_EXCEEDED; "runtime killed: it exceeded a resource limit");
                    } else {
                        log::warn!(target: module, runtime_id:% = rt.id, err = why.as_str(), message_id = FAILED; "runtime process has terminated unexpectedly");
                    }
                    why
                };
                let pinger = async {
                    loop {
                        // Output counters are published every second between pings.
                        let next_ping = tokio::time::Instant::now() + settings.ping_interval;
                        while tokio::time::Instant::now() < next_ping {
                            let step = next_ping
                                .saturating_duration_since(tokio::time::Instant::now())
                                .min(Duration::from_secs(1));
                            tokio::time::sleep(step).await;
                            status.send_modify(|s| s.sandbox.log = LogCounters::read(&log_stats));
                        }
                        if let Err(e) = p
                            .conn
                            .call(Body::RuntimePingRequest(Empty {}), settings.ping_timeout)
                            .await
                        {
                            return e.to_string();
                        }
                    }
                };
                let why = tokio::select! {
                    why = &mut exited => {
                        if stopping_with_the_node(&settings.node_stopping).await {
                            conn.send_replace(None);
                            log::info!(target: module, runtime_id:% = rt.id; "runtime stopped with the node");
                            status.send_modify(|s| { s.sandbox.pid = None; s.committee.status = Readiness::Waiting; });
                            return;
                        }
                        report_exit(why)
                    }
                    why = pinger => {
                        log::warn!(target: module, runtime_id:% = rt.id, err = why.as_str(), message_id = FAILED; "watchdog ping failed, terminating runtime");
                        p.sandbox.kill();
                        format!("watchdog ping failed: {why}")
                    }
                    why = p.conn.closed() => {
                        if stopping_with_the_node(&settings.node_stopping).await {
                            conn.send_replace(None);
                            log::info!(target: module, runtime_id:% = rt.id; "runtime stopped with the node");
                            p.sandbox.kill();
                            status.send_modify(|s| { s.sandbox.pid = None; s.committee.status = Readiness::Waiting; });
                            return;
                        }
                        // A sandbox the kernel or the launcher killed closes this connection
                        // before the launcher says why (e.g. a resource limit): the launcher
                        // first reaps every process of the sandbox, which takes seconds for a
                        // fork bomb on a loaded host.
                        match tokio::time::timeout(Duration::from_secs(5), &mut exited).await {
                            Ok(exit) => report_exit(exit),
                            Err(_) => {
                                log::warn!(target: module, runtime_id:% = rt.id, err = why.as_str(), message_id = FAILED; "runtime connection failed, terminating runtime");
                                p.sandbox.kill();
                                format!("runtime connection failed: {why}")
                            }
                        }
                    }
                    _ = shutdown.cancelled() => {
                        conn.send_replace(None);
                        log::info!(target: module, runtime_id:% = rt.id; "terminating runtime");
                        p.conn.notify(Body::RuntimeShutdownRequest(Empty {})).await;
                        let exit = tokio::task::spawn_blocking(p.sandbox.exit_watcher());
                        let _ = tokio::time::timeout(Duration::from_secs(2), exit).await;
                        p.sandbox.kill();
                        status.send_modify(|s| { s.sandbox.pid = None; s.committee.status = Readiness::Waiting; });
                        return;
                    }
                };
                conn.send_replace(None);
                drop(p);
                if up_since.elapsed() > Duration::from_secs(15 * 60) {
                    backoff = Backoff::new();
                }
                status.send_modify(|s| {
                    s.sandbox.log = LogCounters::read(&log_stats);
                    s.committee.status = Readiness::Waiting;
                    s.committee.host.versions.clear();
                    s.sandbox.pid = None;
                    s.sandbox.network_namespace = None;
                    s.sandbox.ready_since = None;
                    s.sandbox.last_error = Some(why);
                });
            }
        }
        let delay = backoff.next_delay();
        status.send_modify(|s| s.sandbox.restart_count += 1);
        log::info!(target: module, runtime_id:% = rt.id, delay_ms = delay.as_millis() as u64, message_id = crate::system::notify::message_id::RUNTIME_RESTARTED; "restarting runtime after backoff");
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = shutdown.cancelled() => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_with_jitter() {
        let mut b = Backoff::new();
        let d1 = b.next_delay();
        assert!(d1 >= Duration::from_millis(250) && d1 <= Duration::from_millis(750));
        for _ in 0..100 {
            b.next_delay();
        }
        assert!(b.next_delay() <= Duration::from_secs(5400));
    }

    #[test]
    fn readiness_and_provisioner_show_oasis_and_operator_wording() {
        let json = |v: serde_json::Value| v.as_str().map(str::to_string);
        let ser = |r: Readiness| json(serde_json::json!(r));
        assert_eq!(ser(Readiness::Waiting).as_deref(), Some(WAITING));
        assert_eq!(ser(Readiness::Ready).as_deref(), Some("ready"));
        let p = |p: super::super::Provisioner| json(serde_json::json!(p));
        assert_eq!(
            p(super::super::Provisioner::Sandbox).as_deref(),
            Some("sandbox")
        );
        assert_eq!(
            p(super::super::Provisioner::Unconfined).as_deref(),
            Some("unconfined")
        );
    }
}
