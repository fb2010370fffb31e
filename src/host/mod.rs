//! Runtime hosting: bundles become sandboxed, supervised runtime processes.
//!
//! Owns: the sandbox launcher (its own process), the bwrap invocation and seccomp policy, the RHP
//! connection to each runtime, the supervisor that restarts runtimes with backoff and pings them,
//! and the host-owned ParaTime state. Never passes a path or bwrap argument from a caller to the
//! launcher: runtimes are named by their bundle's manifest hash.

pub mod bwrap;
pub mod cgroup;
pub mod launcher;
pub mod limits;
pub mod rhp;
pub mod runtime_log;
pub mod seccomp;
pub mod state;
pub mod supervisor;

use crate::bundle::RuntimeId;
use paratime_sdk::protocol::{Body, RuntimeInfoRequest, PROTOCOL_VERSION};
use paratime_sdk::Version;
use std::os::fd::OwnedFd;
use std::sync::Arc;
use std::time::Duration;

/// A runtime the node hosts.
#[derive(Clone, Debug)]
pub struct HostedRuntime {
    /// Runtime ID.
    pub id: RuntimeId,
    /// Bundle name (manifest `name`).
    pub name: String,
    /// Manifest hash: the exploded bundle's directory name.
    pub bundle: String,
    /// The version the runtime must report.
    pub version: Version,
    /// Local configuration passed at the handshake.
    pub local_config: Option<ciborium::Value>,
    /// The network's chain context (empty without consensus), passed at the handshake: with the
    /// runtime ID it is the signature domain of the runtime's transactions.
    pub chain_context: String,
}

/// A runtime that completed the handshake.
pub struct Provisioned {
    /// The sandbox (dropping it stops the runtime).
    pub sandbox: launcher::Sandbox,
    /// The RHP connection.
    pub conn: rhp::Connection,
}

/// Timeout of the handshake (spawn to `RuntimeInfoResponse`).
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// How the launcher runs ParaTimes (`provisioner` in the status and on every runtime log line).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Provisioner {
    /// In a bubblewrap sandbox.
    Sandbox,
    /// As a plain child process (`runtime.provisioner: unconfined`, `--unsafe-debug` only).
    Unconfined,
}

impl Provisioner {
    /// The name shown to operators.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sandbox => "sandbox",
            Self::Unconfined => "unconfined",
        }
    }
}

impl std::fmt::Display for Provisioner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How one runtime is started: its limits and how its output is bounded.
#[derive(Clone, Debug)]
pub struct StartOptions {
    /// For logs.
    pub provisioner: Provisioner,
    /// Resource limits.
    pub limits: limits::Limits,
    /// Output bounds.
    pub log: runtime_log::Settings,
    /// Output counters.
    pub log_stats: Arc<runtime_log::Stats>,
}

impl StartOptions {
    /// Options with the default limits and output bounds, no tee file (tools, benchmarks).
    pub fn defaults(provisioner: Provisioner) -> Self {
        Self {
            provisioner,
            limits: limits::Limits::default(),
            log: runtime_log::Settings {
                lines_per_second: 1000,
                burst: 10_000,
                file: None,
                max_file_size: 1 << 20,
            },
            log_stats: Arc::default(),
        }
    }
}

fn forward_logs(read: OwnedFd, rt: &HostedRuntime, opts: &StartOptions) {
    let tags = vec![
        ("runtime_id", rt.id.to_string()),
        (
            "runtime_name",
            crate::logging::escape_controls(&rt.name)
                .chars()
                .take(64)
                .collect(),
        ),
        ("component", "ronl".to_string()),
        ("provisioner", opts.provisioner.to_string()),
    ];
    runtime_log::forward(read, tags, opts.log.clone(), opts.log_stats.clone());
}

/// Why a runtime could not be started. The message is the runtime's `last_error`.
#[derive(Debug, thiserror::Error)]
pub enum ProvisionError {
    /// A socket or pipe to the runtime could not be created.
    #[error("failed to create {0}: {1}")]
    Channel(&'static str, std::io::Error),
    /// The launcher refused or failed to start the sandbox.
    #[error(transparent)]
    Launch(#[from] launcher::LaunchError),
    /// The blocking launcher call panicked or was cancelled.
    #[error("launcher task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
    /// The runtime did not answer the handshake.
    #[error("failed to initialize connection: {0}")]
    Handshake(rhp::RhpError),
    /// The runtime answered the handshake with another message.
    #[error("failed to initialize connection: unexpected handshake response {0}")]
    UnexpectedHandshake(&'static str),
    /// The runtime speaks another major protocol version.
    #[error("rhp: incompatible protocol version (expected: {expected} got: {got})")]
    Protocol {
        /// Ours.
        expected: paratime_sdk::protocol::Version,
        /// The runtime's.
        got: paratime_sdk::protocol::Version,
    },
    /// The runtime's version is not the bundle's.
    #[error("version mismatch (runtime reported: {runtime} bundle: {bundle})")]
    VersionMismatch {
        /// What the runtime reported.
        runtime: paratime_sdk::protocol::Version,
        /// What the bundle's manifest says.
        bundle: paratime_sdk::protocol::Version,
    },
}

/// Starts `rt` through the launcher and performs the handshake: protocol major versions must
/// match and the runtime's version must equal the bundle's.
pub async fn provision(
    launcher: &launcher::Client,
    rt: &HostedRuntime,
    opts: &StartOptions,
    state: Arc<state::RuntimeState>,
) -> Result<Provisioned, ProvisionError> {
    let (host, peer) = std::os::unix::net::UnixStream::pair()
        .map_err(|e| ProvisionError::Channel("host socket", e))?;
    let (log_r, log_w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
        .map_err(|e| ProvisionError::Channel("log pipe", e.into()))?;
    forward_logs(log_r, rt, opts);
    let (client, bundle, limits) = (launcher.clone(), rt.bundle.clone(), opts.limits);
    let sandbox = tokio::task::spawn_blocking(move || {
        client.spawn(&bundle, limits, OwnedFd::from(peer), log_w)
    })
    .await??;
    log::info!(target: "runtime/host/sandbox", runtime_id:% = rt.id, pid = sandbox.started.pid; "waiting for runtime to connect");
    let stream = host
        .set_nonblocking(true)
        .and_then(|()| tokio::net::UnixStream::from_std(host))
        .map_err(|e| ProvisionError::Channel("host socket", e))?;
    let conn = rhp::Connection::start(stream, state);
    let req = Body::RuntimeInfoRequest(RuntimeInfoRequest {
        runtime_id: serde_bytes::ByteBuf::from(rt.id.0.to_vec()),
        host_protocol_version: PROTOCOL_VERSION,
        local_config: rt.local_config.clone(),
        chain_context: rt.chain_context.clone(),
    });
    let info = match conn.call(req, HANDSHAKE_TIMEOUT).await {
        Ok(Body::RuntimeInfoResponse(i)) => i,
        Ok(other) => return Err(ProvisionError::UnexpectedHandshake(other.name())),
        Err(e) => return Err(ProvisionError::Handshake(e)),
    };
    if info.protocol_version.major != PROTOCOL_VERSION.major {
        return Err(ProvisionError::Protocol {
            expected: PROTOCOL_VERSION,
            got: info.protocol_version,
        });
    }
    if info.runtime_version != rt.version {
        return Err(ProvisionError::VersionMismatch {
            runtime: info.runtime_version,
            bundle: rt.version,
        });
    }
    log::info!(target: "runtime/host/sandbox", runtime_id:% = rt.id, runtime_version:% = info.runtime_version, message_id = crate::system::notify::message_id::RUNTIME_READY; "runtime host protocol initialized");
    Ok(Provisioned { sandbox, conn })
}
