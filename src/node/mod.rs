//! The composition root for `paratime-node --config FILE`: checks the host and the data dir,
//! loads keys and bundles, starts the sandbox launcher (before any self-restriction), the runtime
//! supervisors and the control API, and stops them all on SIGTERM, SIGINT or `control shutdown`.

pub mod launcher_child;

use crate::bundle::{Bundle, RuntimeId};
use crate::config::{self, Config, Provisioner};
use crate::control::{self, ControlState, IdentityStatus, Status};
use crate::host::{state::RuntimeState, supervisor, HostedRuntime};
use crate::identity::{self, Identity, KeyKind};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// Required RLIMIT_NOFILE (oasis-node's minimum).
pub const MIN_NOFILE: u64 = 50_000;

/// Start-up failures, each naming what to fix.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// Config problems.
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    /// Running as root.
    #[error("running with elevated privileges not allowed: run paratime-node as an unprivileged user (e.g. a dedicated `paratime` user), or pass --unsafe-debug for development only")]
    Root,
    /// The unconfined provisioner without the unsafe flag.
    #[error("runtime.provisioner: unconfined provisioner requires use of unsafe debug flags (--unsafe-debug); use the sandboxed provisioner")]
    Unconfined,
    /// Data dir and keys.
    #[error(transparent)]
    Identity(#[from] identity::IdentityError),
    /// A bundle was refused.
    #[error("failed to explode bundles: {path}: {source}")]
    Bundle {
        /// Bundle file.
        path: PathBuf,
        /// Cause.
        source: crate::bundle::BundleError,
    },
    /// Anything else at start-up, with context.
    #[error("{0}")]
    Other(String),
}

/// Raises RLIMIT_NOFILE towards 102400 as far as the hard limit (or CAP_SYS_RESOURCE) allows
/// and returns the soft limit. Below oasis's 50,000 the node warns loudly instead of refusing:
/// some hosts (containers without CAP_SYS_RESOURCE) cap the hard limit lower, and a node that
/// cannot start at all helps nobody; `LimitNOFILE=102400` in the unit avoids the warning.
fn raise_nofile() -> u64 {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    const WANT: u64 = 102_400;
    let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) else {
        return 0;
    };
    if hard < WANT {
        if setrlimit(Resource::RLIMIT_NOFILE, WANT, WANT).is_err() {
            let _ = setrlimit(Resource::RLIMIT_NOFILE, hard, hard);
        }
    } else if soft < WANT {
        let _ = setrlimit(Resource::RLIMIT_NOFILE, WANT, hard);
    }
    getrlimit(Resource::RLIMIT_NOFILE)
        .map(|(s, _)| s)
        .unwrap_or(soft)
}

/// The local configuration for a runtime: `runtime.runtimes[].config`, else legacy `runtime.config`.
fn local_config(cfg: &Config, id: &RuntimeId) -> Result<Option<ciborium::Value>, NodeError> {
    let hex = id.to_string();
    let yaml = cfg
        .runtime
        .runtimes
        .iter()
        .find(|r| r.id == hex)
        .and_then(|r| r.config.clone())
        .or_else(|| cfg.runtime.config.get(&hex).cloned());
    yaml.map(|y| {
        ciborium::Value::serialized(&y).map_err(|e| {
            NodeError::Other(format!(
                "runtime {hex}: local config cannot be encoded: {e}"
            ))
        })
    })
    .transpose()
}

/// Opens, verifies and explodes every configured bundle.
pub fn install_bundles(cfg: &Config, bundles_dir: &Path) -> Result<Vec<HostedRuntime>, NodeError> {
    let max = config::parse_size(&cfg.runtime.max_bundle_size).map_err(NodeError::Other)?;
    let mut out: Vec<HostedRuntime> = Vec::new();
    for p in &cfg.runtime.paths {
        let path = PathBuf::from(p);
        let b = Bundle::open(&path, max).map_err(|source| NodeError::Bundle {
            path: path.clone(),
            source,
        })?;
        b.explode(bundles_dir).map_err(|source| NodeError::Bundle {
            path: path.clone(),
            source,
        })?;
        let id = b.manifest.id;
        if out.iter().any(|r| r.id == id) {
            return Err(NodeError::Other(format!(
                "runtime.paths: two bundles for runtime {id}; keep one"
            )));
        }
        log::info!(target: "runtime/bundle/manager", runtime_id:% = id, bundle = b.manifest.hash_hex().as_str(), path = p.as_str(); "bundle installed");
        out.push(HostedRuntime {
            id,
            name: b.manifest.name.clone(),
            bundle: b.manifest.hash_hex(),
            version: b.ronl.version,
            local_config: local_config(cfg, &id)?,
        });
    }
    for r in &cfg.runtime.runtimes {
        if !out.iter().any(|h| h.id.to_string() == r.id) {
            return Err(NodeError::Other(format!(
                "runtime.runtimes: no bundle for runtime {} (bundle hot-loading is not supported yet: add its .orc file to runtime.paths)",
                r.id
            )));
        }
    }
    Ok(out)
}

async fn wait_for_signal(mut shutdown: watch::Receiver<bool>) -> &'static str {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        let _ = shutdown.wait_for(|s| *s).await;
        return "shutdown";
    };
    tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
        _ = shutdown.wait_for(|s| *s) => "control shutdown",
    }
}

/// Runs the node until it is asked to stop. `unsafe_debug` is the one escape flag.
pub async fn run(loaded: config::Loaded, unsafe_debug: bool) -> Result<(), NodeError> {
    let cfg = loaded.config;
    for w in &loaded.warnings {
        log::warn!(target: "cmd/node", key = w.key.as_str(); "config: {}", w.message);
    }
    let euid = nix::unistd::geteuid();
    if euid.is_root() && !unsafe_debug {
        return Err(NodeError::Root);
    }
    if euid.is_root() {
        log::warn!(target: "cmd/node", "UNSAFE: running as root because --unsafe-debug was given");
    }
    let unconfined = cfg.runtime.provisioner == Provisioner::Unconfined;
    if unconfined && !unsafe_debug {
        return Err(NodeError::Unconfined);
    }
    let nofile = raise_nofile();
    if nofile < MIN_NOFILE {
        log::warn!(target: "cmd/node", "too low RLIMIT_NOFILE, current: {nofile} required: {MIN_NOFILE} (raise the hard limit: LimitNOFILE=102400 in the unit, or `ulimit -Hn 102400` as root); continuing, but the node may run out of file descriptors");
    }
    let data_dir = PathBuf::from(&cfg.common.data_dir);
    identity::ensure_dir(&data_dir)?;
    let _lock = identity::lock_data_dir(&data_dir)?;
    let id = Identity::load(&data_dir, true)?;
    log::info!(target: "cmd/node", node_pk = id.public_b64(KeyKind::Node).as_str(), p2p_pk = id.public_b64(KeyKind::P2p).as_str(), consensus_pk = id.public_b64(KeyKind::Consensus).as_str(), rlimit_nofile = nofile;
        "{} node identity", if id.generated { "generated" } else { "loaded" });

    let runtimes_dir = data_dir.join("runtimes");
    identity::ensure_dir(&runtimes_dir)?;
    let bundles_dir = runtimes_dir.join("bundles");
    identity::ensure_dir(&bundles_dir)?;
    let hosted = install_bundles(&cfg, &bundles_dir)?;

    // The launcher starts before the node restricts itself in any way (DESIGN §2).
    let log_level = cfg
        .common
        .log
        .level
        .get("default")
        .map(String::as_str)
        .unwrap_or("warn");
    let launcher = launcher_child::LauncherChild::start(
        &runtimes_dir.join("sandbox.sock"),
        &bundles_dir,
        Path::new(&cfg.runtime.sandbox_binary),
        unconfined,
        (&cfg.common.log.format, log_level),
    )
    .map_err(NodeError::Other)?;
    let info = {
        let client = launcher.client();
        tokio::task::spawn_blocking(move || client.info())
            .await
            .map_err(|e| NodeError::Other(e.to_string()))?
            .map_err(|e| NodeError::Other(format!("sandbox launcher: {e}")))?
    };
    let provisioner = info.provisioner.clone();
    match &info.trial_error {
        None if unconfined => {
            log::warn!(target: "runtime/host/sandbox", "UNSAFE: starting ParaTimes UNSANDBOXED (runtime.provisioner: unconfined)")
        }
        None => {
            log::info!(target: "runtime/host/sandbox", bwrap_version = info.bwrap_version.as_str(), sandbox_binary = info.sandbox_binary.as_str(); "sandbox available")
        }
        Some(e) => log::error!(target: "runtime/host/sandbox", "refusing to host ParaTimes: {e}"),
    }

    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let (synced_tx, synced_rx) = watch::channel(false);
    let settings = supervisor::Settings {
        ping_interval: humantime::parse_duration(&cfg.runtime.ping_interval)
            .unwrap_or(Duration::from_secs(15)),
        ping_timeout: humantime::parse_duration(&cfg.runtime.ping_timeout)
            .unwrap_or(Duration::from_secs(5)),
        provisioner: provisioner.clone(),
    };
    let mut channels = Vec::new();
    let mut tasks = Vec::new();
    for rt in hosted {
        let mut initial = supervisor::initial_status(&rt, &provisioner);
        if let Some(e) = &info.trial_error {
            initial.sandbox.last_error = Some(format!("sandbox unavailable: {e}"));
        }
        let (tx, rx) = watch::channel(initial);
        channels.push((rt.id.to_string(), rx));
        if info.trial_error.is_none() {
            let state = Arc::new(RuntimeState::default());
            tasks.push(tokio::spawn(supervisor::run(
                rt,
                launcher.client(),
                settings.clone(),
                state,
                tx,
                shutdown_rx.clone(),
            )));
        }
    }

    let socket = if cfg.common.internal_socket_path.is_empty() {
        data_dir.join("internal.sock")
    } else {
        PathBuf::from(&cfg.common.internal_socket_path)
    };
    let state = ControlState {
        base: Status {
            software_version: crate::SOFTWARE_VERSION.to_string(),
            mode: cfg.mode.as_str().to_string(),
            identity: IdentityStatus {
                node: id.public_b64(KeyKind::Node),
                p2p: id.public_b64(KeyKind::P2p),
                consensus: id.public_b64(KeyKind::Consensus),
            },
            runtimes: BTreeMap::new(),
            sandbox: Some(info),
        },
        runtimes: channels,
        synced: synced_rx,
        shutdown: shutdown_tx.clone(),
    };
    let listener_check = control::bind(&socket)
        .map_err(|e| NodeError::Other(format!("control socket {}: {e}", socket.display())))?;
    drop(listener_check);
    let server = tokio::spawn({
        let socket = socket.clone();
        let stop = shutdown_rx.clone();
        async move { control::serve(&socket, state, stop).await }
    });
    synced_tx.send_replace(true);
    log::info!(target: "cmd/node", socket:% = socket.display(); "node started, control API listening");

    let why = wait_for_signal(shutdown_rx.clone()).await;
    log::info!(target: "cmd/node", reason = why; "shutting down");
    shutdown_tx.send_replace(true);
    for t in tasks {
        let _ = tokio::time::timeout(Duration::from_secs(5), t).await;
    }
    let _ = tokio::time::timeout(Duration::from_secs(2), server).await;
    drop(launcher);
    let _ = std::fs::remove_file(&socket);
    log::info!(target: "cmd/node", "node stopped");
    Ok(())
}
