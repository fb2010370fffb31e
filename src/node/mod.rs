//! The composition root for `paratime-node --config FILE`: checks the host and the data dir,
//! loads keys and bundles, starts the sandbox launcher (before any self-restriction), the runtime
//! supervisors and the control API, and stops them all on SIGTERM, SIGINT or `control shutdown`.

pub mod hotload;
pub mod launcher_child;

use crate::bundle::{Bundle, RuntimeId};
use crate::config::{self, Config, Provisioner};
use crate::consensus::crypto::PublicKey;
use crate::consensus::genesis::Genesis;
use crate::control::{self, ControlState, IdentityStatus, Status};
use crate::host::launcher::Client;
use crate::host::{state::RuntimeState, supervisor, HostedRuntime};
use crate::identity::{self, Identity, KeyKind};
use crate::storage::Store;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

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
    /// A runtime's local config (`runtime.runtimes[].config`) cannot be encoded for it.
    #[error("runtime {runtime}: local config cannot be encoded: {reason}")]
    LocalConfig {
        /// Runtime ID (hex).
        runtime: String,
        /// Why.
        reason: String,
    },
    /// Two bundles in `runtime.paths` are for the same runtime.
    #[error("runtime.paths: two bundles for runtime {0}; keep one")]
    DuplicateRuntime(crate::bundle::RuntimeId),
    /// A `runtime.runtimes` entry has no bundle in `runtime.paths` and no registry.
    #[error("{key}: runtime {runtime}: no bundle for it in runtime.paths and no bundle registry to download one from: add its .orc file to runtime.paths, or set runtime.runtimes[].registries (or runtime.registries) to the registry this network's bundles are published in (paratime-node does not use oasis's default registry: it serves the Oasis Mainnet's bundles, not this network's)")]
    NoBundle {
        /// `runtime.runtimes[i]`.
        key: String,
        /// Runtime ID (hex).
        runtime: String,
    },
    /// A runtime configured by id cannot be hot-loaded as configured.
    #[error("{key}: runtime {runtime}: {reason}")]
    HotLoad {
        /// `runtime.runtimes[i]`.
        key: String,
        /// Runtime ID (hex).
        runtime: String,
        /// Why.
        reason: String,
    },
    /// The sandbox launcher cannot be started or asked.
    #[error(transparent)]
    Launcher(#[from] crate::host::launcher::LaunchError),
    /// The control socket cannot be bound or served.
    #[error("control socket {path}: {source}")]
    ControlSocket {
        /// The socket.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The metrics port cannot be bound.
    #[error("metrics.address {address}: cannot listen: {source} (another process on that port? set metrics.address to a free IP:PORT)")]
    MetricsListen {
        /// The address.
        address: std::net::SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The consensus store.
    #[error(transparent)]
    Store(#[from] crate::storage::StoreError),
    /// A hosted runtime's state tree.
    #[error(transparent)]
    State(#[from] crate::host::state::StateError),
    /// Self-confinement (Landlock, capabilities).
    #[error(transparent)]
    Confine(#[from] crate::system::confine::ConfineError),
    /// libp2p cannot start.
    #[error(transparent)]
    P2p(#[from] crate::p2p::P2pError),
    /// `PARATIME_NODE_TEST_CRASH_AT` (debug builds).
    #[error(transparent)]
    CrashPoints(#[from] crate::crashpoint::CrashPointError),
    /// The consensus engine cannot start.
    #[error("consensus: {0}")]
    Consensus(#[from] crate::consensus::engine::StartError),
    /// `consensus.external_address`.
    #[error("consensus.external_address: {0}")]
    ExternalAddress(String),
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
        ciborium::Value::serialized(&y).map_err(|e| NodeError::LocalConfig {
            runtime: hex.clone(),
            reason: e.to_string(),
        })
    })
    .transpose()
}

/// Opens and verifies every configured bundle and matches them to `runtime.runtimes`, without
/// writing anything itself: what the node does with its config's bundles at start, and what `config
/// check` runs. A bundle that fails verification (a hostile or broken one) is refused and
/// reported, and the node runs on without it: what a bundle contains must never stop the node
/// (DESIGN §2).
///
/// Each verified bundle goes to `each` (with its `runtime.paths` entry) and is dropped before the
/// next one is opened: one bundle in memory at a time, however many the config names.
pub fn verify_bundles(
    cfg: &Config,
    max: u64,
    mut each: impl FnMut(&str, &Bundle, &HostedRuntime) -> Result<(), NodeError>,
) -> Result<(Vec<HostedRuntime>, Vec<crate::control::RefusedBundle>), NodeError> {
    let mut out: Vec<HostedRuntime> = Vec::new();
    let mut refused = Vec::new();
    for p in &cfg.runtime.paths {
        let path = PathBuf::from(p);
        let b = match Bundle::open(&path, max) {
            Ok(b) => b,
            Err(source) => {
                let error = NodeError::Bundle {
                    path: path.clone(),
                    source,
                }
                .to_string();
                refused.push(crate::control::RefusedBundle {
                    path: p.clone(),
                    error,
                });
                continue;
            }
        };
        let id = b.manifest.id;
        if out.iter().any(|r| r.id == id) {
            return Err(NodeError::DuplicateRuntime(id));
        }
        let hosted = HostedRuntime {
            id,
            name: b.manifest.name.clone(),
            bundle: b.manifest.hash_hex(),
            version: b.ronl.version,
            local_config: local_config(cfg, &id)?,
            chain_context: String::new(),
        };
        each(p, &b, &hosted)?;
        out.push(hosted);
    }
    Ok((out, refused))
}

/// [`verify_bundles`], exploding each bundle into `bundles_dir`.
pub fn install_bundles(
    cfg: &Config,
    max: u64,
    bundles_dir: &Path,
) -> Result<(Vec<HostedRuntime>, Vec<crate::control::RefusedBundle>), NodeError> {
    let (out, refused) = verify_bundles(cfg, max, |p, b, hosted| {
        b.explode(bundles_dir).map_err(|source| NodeError::Bundle {
            path: PathBuf::from(p),
            source,
        })?;
        log::info!(target: "runtime/bundle/manager", runtime_id:% = hosted.id, bundle = hosted.bundle.as_str(), path = p; "bundle installed");
        Ok(())
    })?;
    for r in &refused {
        log::error!(target: "runtime/bundle/manager", path = r.path.as_str(), err = r.error.as_str(), message_id = crate::system::notify::message_id::RUNTIME_FAILED; "bundle refused: not hosted");
    }
    Ok((out, refused))
}

/// The start-up checks that depend only on the config (not on the host or the data dir): run
/// by the node and by `config check`, so the two cannot disagree.
pub fn check_config_start(cfg: &Config, unsafe_debug: bool) -> Result<(), NodeError> {
    if cfg.runtime.provisioner == Provisioner::Unconfined && !unsafe_debug {
        return Err(NodeError::Unconfined);
    }
    Ok(())
}

/// Resolves with the reason the node stops: a signal, or `requested` (`control shutdown`).
async fn wait_for_signal(requested: CancellationToken, halted: CancellationToken) -> &'static str {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tokio::select! {
            _ = requested.cancelled() => return "control shutdown",
            _ = halted.cancelled() => return UPGRADE_HALT,
        }
    };
    tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
        _ = requested.cancelled() => "control shutdown",
        _ = halted.cancelled() => UPGRADE_HALT,
    }
}

/// The stop reason of an upgrade halt.
const UPGRADE_HALT: &str = "upgrade halt";

/// In the data dir while a deregistration asked for by `control shutdown` has not completed
/// (oasis's persisted "deregistration requested"): the node's next start deregisters and stops
/// again, until `control clear-deregister` removes it.
pub const DEREGISTER_FLAG: &str = "deregistration-requested";

/// The node's parts stop in this order, whatever asked it to stop: registration first
/// (deregistering needs the consensus layer), then the runtimes and the control API, then the
/// network (consensus, p2p, runtime workers).
#[derive(Default)]
struct Stops {
    /// `control shutdown` asked the node to stop.
    requested: CancellationToken,
    /// The consensus layer reached the upgrade halt (and its stop delay passed).
    halted: CancellationToken,
    /// Cancelled as soon as the node begins to stop, whatever the reason.
    stopping: CancellationToken,
    registration: CancellationToken,
    runtimes: CancellationToken,
    network: CancellationToken,
}

/// How the node reaches its sandbox launcher.
enum Launcher {
    /// Started by the node (standalone).
    Child(launcher_child::LauncherChild),
    /// A launcher of its own (the socket-activated `paratime-node-sandbox` unit).
    External(Client),
}

impl Launcher {
    fn client(&self) -> Client {
        match self {
            Self::Child(c) => c.client(),
            Self::External(c) => c.clone(),
        }
    }
}

/// Start-up options from the command line.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// The one escape flag: root and the unconfined provisioner.
    pub unsafe_debug: bool,
    /// Use the launcher listening here instead of starting one.
    pub sandbox_socket: Option<PathBuf>,
    /// The group that may read exploded bundles (the launcher's, when it is another user).
    pub bundles_group: Option<String>,
}

/// Everything set up before the node confines itself and starts its threads.
pub struct Prepared {
    cfg: Config,
    /// The config's parsed values (its genesis document moved to `network`).
    settings: config::Settings,
    _lock: identity::DataDirLock,
    id: Identity,
    hosted: Vec<HostedRuntime>,
    launcher: Launcher,
    info: crate::host::launcher::Info,
    control: std::os::unix::net::UnixListener,
    /// The Prometheus endpoint (`metrics.mode: pull`).
    metrics: Option<std::net::TcpListener>,
    socket: PathBuf,
    socket_activated: bool,
    confinement: Option<crate::system::confine::Report>,
    network: Option<Network>,
    logs_dir: PathBuf,
    bundles_refused: Vec<crate::control::RefusedBundle>,
    /// Runtimes whose bundles come from registries (also in `hosted`).
    downloads: Vec<hotload::Download>,
    installer: hotload::Installer,
}

/// The consensus side of a node whose genesis is a full document.
struct Network {
    genesis: Genesis,
    store: Arc<Store>,
    seeds: Vec<(libp2p::PeerId, libp2p::Multiaddr)>,
    entity: Option<PublicKey>,
}

/// What the node may read and write once confined.
pub fn confinement_paths(
    cfg: &Config,
    loaded_file: &Path,
    data_dir: &Path,
    socket: &Path,
) -> crate::system::confine::Paths {
    let abs = |p: &str| std::fs::canonicalize(p).unwrap_or_else(|_| PathBuf::from(p));
    let mut read = vec![
        abs(&loaded_file.to_string_lossy()),
        abs(&cfg.genesis.file),
        PathBuf::from("/proc/self"),
        // The consensus engine's libp2p builds a DNS resolver from these at start.
        PathBuf::from("/etc/resolv.conf"),
        PathBuf::from("/etc/hosts"),
    ];
    if !cfg.registration.entity.is_empty() {
        read.push(abs(&cfg.registration.entity));
    }
    read.extend(cfg.runtime.paths.iter().map(|p| abs(p)));
    let mut write = vec![data_dir.to_path_buf()];
    if let Some(parent) = socket.parent() {
        write.push(parent.to_path_buf());
    }
    if !cfg.common.log.file.is_empty() {
        let f = data_dir.join(&cfg.common.log.file);
        if let Some(parent) = f.parent() {
            write.push(parent.to_path_buf());
        }
    }
    crate::system::confine::Paths { read, write }
}

/// Checks the host and the data dir, loads keys and bundles, starts (or reaches) the sandbox
/// launcher, takes the control socket, and finally confines the process. Runs before any thread
/// exists, so that Landlock covers every thread the node will have.
pub fn prepare(loaded: config::Loaded, opts: &Options) -> Result<Prepared, NodeError> {
    use crate::system::notify;
    let cfg = loaded.config;
    let mut settings = loaded.settings;
    for w in &loaded.warnings {
        log::warn!(target: "cmd/node", key = w.key.as_str(); "config: {}", w.message);
    }
    let euid = nix::unistd::geteuid();
    if euid.is_root() && !opts.unsafe_debug {
        return Err(NodeError::Root);
    }
    if euid.is_root() {
        log::warn!(target: "cmd/node", "UNSAFE: running as root because --unsafe-debug was given");
    }
    check_config_start(&cfg, opts.unsafe_debug)?;
    let unconfined = cfg.runtime.provisioner == Provisioner::Unconfined;
    let nofile = raise_nofile();
    if nofile < MIN_NOFILE {
        log::warn!(target: "cmd/node", "too low RLIMIT_NOFILE, current: {nofile} required: {MIN_NOFILE} (raise the hard limit: LimitNOFILE=102400 in the unit, or `ulimit -Hn 102400` as root); continuing, but the node may run out of file descriptors");
    }
    let data_dir = PathBuf::from(&cfg.common.data_dir);
    identity::ensure_dir(&data_dir)?;
    let lock = identity::lock_data_dir(&data_dir)?;
    let id = Identity::load(&data_dir, true)?;
    log::info!(target: "cmd/node", node_pk = id.public_b64(KeyKind::Node).as_str(), p2p_pk = id.public_b64(KeyKind::P2p).as_str(), consensus_pk = id.public_b64(KeyKind::Consensus).as_str(), rlimit_nofile = nofile;
        "{} node identity", if id.generated { "generated" } else { "loaded" });

    let runtimes_dir = data_dir.join("runtimes");
    identity::ensure_dir(&runtimes_dir)?;
    let bundles_dir = runtimes_dir.join("bundles");
    identity::ensure_bundles_dir(&bundles_dir)?;
    if let Some(group) = &opts.bundles_group {
        identity::share_bundles_dir(&bundles_dir, group)?;
    }
    let logs_dir = runtimes_dir.join("logs");
    identity::ensure_dir(&logs_dir)?;
    let tmp_dir = hotload::tmp_dir(&runtimes_dir);
    hotload::reset_tmp_dir(&tmp_dir).map_err(|e| {
        NodeError::Identity(identity::IdentityError::Io {
            path: tmp_dir.clone(),
            source: e,
        })
    })?;
    notify::extend_timeout(Duration::from_secs(60), "installing bundles");
    let (mut hosted, bundles_refused) =
        install_bundles(&cfg, settings.max_bundle_size, &bundles_dir)?;

    // The launcher starts before the node restricts itself in any way (DESIGN §2).
    notify::extend_timeout(Duration::from_secs(60), "starting the sandbox launcher");
    let launcher = match &opts.sandbox_socket {
        Some(path) => Launcher::External(Client::new(path)),
        None => {
            let log_level = cfg
                .common
                .log
                .level
                .get("default")
                .map(String::as_str)
                .unwrap_or("warn");
            Launcher::Child(launcher_child::LauncherChild::start(
                &runtimes_dir.join("sandbox.sock"),
                &bundles_dir,
                Path::new(&cfg.runtime.sandbox_binary),
                unconfined,
                (&cfg.common.log.format, log_level),
            )?)
        }
    };
    let info =
        launcher
            .client()
            .info()
            .map_err(|source| crate::host::launcher::LaunchError::Setup {
                what: "sandbox launcher",
                source,
            })?;
    match &info.trial_error {
        None if info.provisioner == crate::host::Provisioner::Unconfined => {
            log::warn!(target: "runtime/host/sandbox", "UNSAFE: starting ParaTimes UNSANDBOXED (runtime.provisioner: unconfined)")
        }
        None => {
            log::info!(target: "runtime/host/sandbox", bwrap_version = info.bwrap_version.as_str(), sandbox_binary = info.sandbox_binary.as_str(); "sandbox available")
        }
        Some(e) => {
            log::error!(target: "runtime/host/sandbox", message_id = notify::message_id::SANDBOX_UNAVAILABLE; "refusing to host ParaTimes: {e}")
        }
    }

    let socket = if cfg.common.internal_socket_path.is_empty() {
        data_dir.join("internal.sock")
    } else {
        PathBuf::from(&cfg.common.internal_socket_path)
    };
    let (control, socket_activated) = match crate::system::listen::take("control") {
        Some(fd) => (std::os::unix::net::UnixListener::from(fd), true),
        None => (
            control::bind_std(&socket).map_err(|source| NodeError::ControlSocket {
                path: socket.clone(),
                source,
            })?,
            false,
        ),
    };

    // Bound before the node confines itself and starts: a taken port stops the start, naming
    // the key.
    let metrics = match settings.metrics {
        Some(address) => Some(
            std::net::TcpListener::bind(address)
                .and_then(|l| l.set_nonblocking(true).map(|()| l))
                .map_err(|source| NodeError::MetricsListen { address, source })?,
        ),
        None => None,
    };

    let genesis = std::mem::replace(&mut settings.genesis, config::GenesisFile::Empty);
    let mut downloads = Vec::new();
    let network = match genesis {
        config::GenesisFile::Empty => {
            log::warn!(target: "cmd/node", "genesis document {} is empty: running without consensus (runtime hosting only)", cfg.genesis.file);
            hotload::plan(&cfg, None, (&hosted, !bundles_refused.is_empty()), 0)?;
            None
        }
        config::GenesisFile::Document(genesis) => {
            let genesis = *genesis;
            let store = Store::open(&data_dir.join("consensus.redb"))?;
            // The deployment to host is the one active at the epoch of the node's latest block.
            let epoch = store.latest_height()? / genesis.epoch_interval.max(1);
            downloads = hotload::plan(
                &cfg,
                Some(&genesis),
                (&hosted, !bundles_refused.is_empty()),
                epoch,
            )?;
            for d in &downloads {
                log::info!(target: "runtime/bundle/manager", runtime_id:% = d.id, manifest_hash:% = d.active.bundle_checksum, version:% = d.active.version, epoch = epoch, registries:? = d.registries; "runtime configured by id: its bundle comes from a registry");
                hosted.push(d.hosted(local_config(&cfg, &d.id)?, String::new()));
            }
            for h in &mut hosted {
                h.chain_context = genesis.chain_context();
            }
            let seeds = std::mem::take(&mut settings.seeds);
            log::info!(target: "consensus", chain_context = genesis.chain_context().as_str(), chain_id = genesis.chain_id.as_str(); "genesis loaded");
            Some(Network {
                genesis,
                store: Arc::new(store),
                seeds,
                entity: settings.entity,
            })
        }
    };

    let confinement = if cfg.common.unsafe_disable_self_confinement {
        log::warn!(target: "system/confine", "UNSAFE: self-confinement disabled (common.unsafe_disable_self_confinement)");
        None
    } else {
        let paths = confinement_paths(&cfg, &loaded.file, &data_dir, &socket);
        let report = crate::system::confine::confine(&paths, true)?;
        log::info!(target: "system/confine", message_id = notify::message_id::CONFINED; "self-confinement: {report}");
        Some(report)
    };
    // Bundle URLs are usually https (a registry's metadata names a release download): the
    // host's CA certificates are read now, before the node confines itself.
    let tls = (!downloads.is_empty()).then(|| {
        let (tls, n, errors) = crate::bundle::registry::host_tls();
        for e in &errors {
            log::warn!(target: "runtime/bundle/manager", "reading the host's CA certificates: {e}");
        }
        if n == 0 {
            log::error!(target: "runtime/bundle/manager", "no CA certificates found (install ca-certificates, or set SSL_CERT_FILE): downloads over https will fail");
        } else {
            log::info!(target: "runtime/bundle/manager", certificates = n; "CA certificates loaded for https downloads");
        }
        tls
    });
    Ok(Prepared {
        bundles_refused,
        downloads,
        installer: hotload::Installer {
            bundles_dir,
            tmp_dir,
            limits: crate::bundle::registry::Limits {
                timeout: settings.download_timeout,
                max_bundle_size: settings.max_bundle_size,
                tls,
            },
        },
        logs_dir,
        network,
        cfg,
        settings,
        _lock: lock,
        id,
        hosted,
        launcher,
        info,
        control,
        metrics,
        socket,
        socket_activated,
        confinement,
    })
}

/// The one-line STATUS for systemd.
fn status_line(channels: &[(String, watch::Receiver<supervisor::RuntimeStatus>)]) -> String {
    let total = channels.len();
    let ready = channels
        .iter()
        .filter(|(_, rx)| rx.borrow().committee.status == supervisor::Readiness::Ready)
        .count();
    match (total, ready) {
        (0, _) => "ready: no runtimes configured".into(),
        (t, r) if r == t => format!("ready: {r} runtime{}", if r == 1 { "" } else { "s" }),
        (t, r) => format!("{} ({r}/{t} runtimes ready)", supervisor::WAITING),
    }
}

/// Runs the prepared node until SIGTERM, SIGINT or `control shutdown`.
pub async fn serve(p: Prepared) -> Result<(), NodeError> {
    use crate::system::notify;
    let cfg = &p.cfg;
    let stops = Stops::default();
    let (synced_tx, synced_rx) = watch::channel(false);
    let settings = supervisor::Settings {
        ping_interval: p.settings.ping_interval,
        ping_timeout: p.settings.ping_timeout,
        provisioner: p.info.provisioner,
        limits: p.settings.limits,
        log: crate::host::runtime_log::Settings {
            lines_per_second: cfg.runtime.log.max_lines_per_second,
            burst: cfg.runtime.log.burst,
            file: Some(p.logs_dir.clone()),
            max_file_size: cfg.runtime.log.max_log_size,
        },
        limits_enforced: p.info.limits_enforced.clone(),
        node_stopping: stops.stopping.clone(),
    };
    let mut channels = Vec::new();
    let mut tasks = Vec::new();
    // Senders of runtimes that are not started stay alive so their channels never close.
    let mut idle = Vec::new();
    let hosted_runtimes: Vec<crate::consensus::state::NodeRuntime> = p
        .hosted
        .iter()
        .map(|h| crate::consensus::state::NodeRuntime {
            id: h.id,
            version: h.version,
        })
        .collect();
    // Runtime state: the tree in runtimes/<id>/, at the round the store recorded as applied.
    let mut states: BTreeMap<
        crate::bundle::RuntimeId,
        (Arc<RuntimeState>, Option<crate::storage::Applied>, bool),
    > = BTreeMap::new();
    let cache = usize::try_from(p.settings.state_cache_size).unwrap_or(usize::MAX);
    for rt in &p.hosted {
        let dir = Path::new(&cfg.common.data_dir)
            .join("runtimes")
            .join(rt.id.to_string());
        identity::ensure_dir(&dir)?;
        let state = RuntimeState::open(&dir.join(crate::host::state::FILE_NAME), cache)?;
        let (applied, needs_sync) = match &p.network {
            Some(net) => {
                let a = crate::worker::compute::applied(&net.store, &rt.id)?;
                match state.resume(a.round.0, a.state_root) {
                    Ok(()) => (Some(a), false),
                    // An interrupted state sync, or a tree removed by hand: fetch it again.
                    Err(e @ crate::host::state::StateError::Missing { .. }) => {
                        log::warn!(target: "worker/compute", runtime_id:% = rt.id; "{e}: syncing it from peers");
                        (Some(a), true)
                    }
                    Err(e) => return Err(e.into()),
                }
            }
            None => (None, false),
        };
        states.insert(rt.id, (Arc::new(state), applied, needs_sync));
    }
    let mut conns = BTreeMap::new();
    let mut idle_conns = Vec::new();
    for rt in p.hosted {
        let mut initial = supervisor::initial_status(&rt, settings.provisioner);
        if let Some(e) = &p.info.trial_error {
            initial.sandbox.last_error = Some(format!("sandbox unavailable: {e}"));
        }
        let (tx, rx) = watch::channel(initial);
        channels.push((rt.id.to_string(), rx));
        let (conn_tx, conn_rx) = watch::channel(None);
        conns.insert(rt.id, conn_rx);
        if p.info.trial_error.is_none() {
            let state = states[&rt.id].0.clone();
            let (launcher, settings, stop) = (
                p.launcher.client(),
                settings.clone(),
                stops.runtimes.clone(),
            );
            match p.downloads.iter().find(|d| d.id == rt.id).cloned() {
                None => tasks.push(tokio::spawn(supervisor::run(
                    rt, launcher, settings, state, tx, conn_tx, stop,
                ))),
                // The runtime starts once its bundle is downloaded and verified.
                Some(dl) => {
                    let installer = p.installer.clone();
                    tasks.push(tokio::spawn(async move {
                        let mut rt = rt;
                        let installed = hotload::install_with_retry(&installer, &dl, &stop, |e| {
                            tx.send_modify(|s| s.sandbox.last_error = Some(e.to_string()));
                        })
                        .await;
                        if let Some(name) = installed {
                            rt.name = name;
                            tx.send_modify(|s| s.sandbox.last_error = None);
                            supervisor::run(rt, launcher, settings, state, tx, conn_tx, stop).await;
                        }
                    }));
                }
            }
        } else {
            idle.push(tx);
            idle_conns.push(conn_tx);
        }
    }
    // Consensus, p2p, registration and the runtime workers, when the genesis is a full document.
    let mut reg_task = None;
    let mut network = control::NetworkState::default();
    if let Some(net) = p.network {
        let pcfg = crate::p2p::Config {
            keypair: crate::p2p::keypair(p.id.key(KeyKind::P2p)),
            port: cfg.p2p.port,
            listen_ip: "0.0.0.0".into(),
            seeds: net.seeds,
            chain_context: net.genesis.chain_context(),
            // Only the runtimes this node runs a worker for: a node subscribed to a runtime's
            // topics verifies and relays every message on them, and validators (which host
            // none) relayed every ParaTime transaction only to drop it. The runtime's nodes
            // find each other in the registry instead (`RuntimePeers` below).
            runtimes: net
                .genesis
                .registry
                .runtimes
                .iter()
                .map(|r| r.id)
                .filter(|id| states.contains_key(id))
                .collect(),
            state_server: Some(state_server(&states)),
        };
        let (cmd, events, mut rt_events, pstatus) = crate::p2p::spawn(
            pcfg,
            net.store.clone(),
            p.id.public_b64(KeyKind::P2p),
            stops.network.clone(),
        )?;
        let signer = Arc::new(crate::signer::Signer::new(
            p.id.key(KeyKind::Node).clone(),
            p.id.key(KeyKind::Consensus).clone(),
            p.id.key(KeyKind::P2p).clone(),
            net.store.clone(),
        ));
        let copts = crate::consensus::engine::Options {
            listen: p.settings.consensus_listen,
            peers: p.settings.consensus_peers.clone(),
            wal: Path::new(&cfg.common.data_dir)
                .join("consensus")
                .join("wal")
                .join("consensus.wal"),
            network_secret: p.id.key(KeyKind::P2p).to_bytes(),
            prune: p
                .settings
                .consensus_prune
                .map(|c| crate::consensus::engine::BlockPruning {
                    num_kept: c.num_kept,
                    interval: c.interval,
                }),
            halt: p.settings.halt.map(|h| (h, stops.halted.clone())),
            hosted: states.keys().copied().collect(),
        };
        crate::crashpoint::init(Path::new(&cfg.common.data_dir))?;
        let handle = crate::consensus::engine::start(
            &net.genesis,
            net.store.clone(),
            signer.clone(),
            cmd.clone(),
            events,
            stops.network.clone(),
            copts,
        )
        .await?;
        network.p2p = Some(pstatus);
        network.consensus = Some(handle.clone());
        if !states.is_empty() {
            tokio::spawn(dial_runtime_peers(
                handle.clone(),
                cmd.clone(),
                states.keys().copied().collect(),
                crate::p2p::keypair(p.id.key(KeyKind::P2p))
                    .public()
                    .to_peer_id(),
                stops.network.clone(),
            ));
        }
        // One worker per hosted ParaTime registered in the genesis; p2p messages are routed
        // to it by runtime ID.
        let mut routes = BTreeMap::new();
        for (rid, (state, applied, needs_sync)) in &states {
            let Some(descriptor) = net.genesis.registry.runtimes.iter().find(|r| r.id == *rid)
            else {
                log::warn!(target: "worker/compute", runtime_id:% = rid; "runtime is not registered in the genesis document: hosting it without a committee");
                continue;
            };
            let (tx, rx) = tokio::sync::mpsc::channel(16384);
            routes.insert(*rid, tx);
            let worker = crate::worker::compute::Worker {
                descriptor: descriptor.clone(),
                signer: signer.clone(),
                store: net.store.clone(),
                state: state.clone(),
                compute: cfg.mode == config::Mode::Compute,
                prune: p.settings.prune,
                needs_sync: *needs_sync,
                node_stopping: stops.stopping.clone(),
            };
            let h = worker.start(
                applied.clone().unwrap_or(crate::storage::Applied {
                    round: paratime_state::Round(0),
                    state_root: paratime_sdk::state::EMPTY_STATE_ROOT,
                }),
                handle.clone(),
                cmd.clone(),
                rx,
                conns[rid].clone(),
                stops.network.clone(),
            )?;
            network.workers.insert(*rid, h);
        }
        tokio::spawn(async move {
            while let Some(ev) = rt_events.recv().await {
                let rid = match &ev {
                    crate::p2p::RuntimeEvent::Tx(r, _, _)
                    | crate::p2p::RuntimeEvent::Committee(r, _, _)
                    | crate::p2p::RuntimeEvent::Round(r, _, _)
                    | crate::p2p::RuntimeEvent::Pruned(r, _, _)
                    | crate::p2p::RuntimeEvent::StateNodes(r, _, _) => *r,
                };
                if let Some(tx) = routes.get(&rid) {
                    let _ = tx.try_send(ev);
                }
            }
        });
        let mut roles = crate::consensus::state::RoleMask::NONE;
        if cfg.mode == config::Mode::Compute {
            roles |= crate::consensus::state::RoleMask::COMPUTE;
        }
        if cfg.mode == config::Mode::Validator || cfg.consensus.validator {
            roles |= crate::consensus::state::RoleMask::VALIDATOR;
        }
        if !roles.is_empty() {
            if let Some(entity) = net.entity {
                let (rs_tx, rs_rx) = watch::channel(crate::worker::registration::Status::default());
                network.registration = Some(rs_rx);
                let (ready_tx, ready_rx) = watch::channel(false);
                let mut rxs: Vec<watch::Receiver<supervisor::RuntimeStatus>> =
                    channels.iter().map(|(_, rx)| rx.clone()).collect();
                tokio::spawn(async move {
                    loop {
                        let all = !rxs.is_empty()
                            && rxs.iter().all(|rx| {
                                rx.borrow().committee.status == supervisor::Readiness::Ready
                            });
                        ready_tx.send_if_modified(|v| std::mem::replace(v, all) != all);
                        if rxs.is_empty() {
                            return;
                        }
                        let _ = futures::future::select_all(
                            rxs.iter_mut().map(|rx| Box::pin(rx.changed())),
                        )
                        .await;
                    }
                });
                let addresses = if cfg.p2p.registration.addresses.is_empty() {
                    log::warn!(target: "worker/registration", "p2p.registration.addresses is empty: advertising 127.0.0.1:{}", cfg.p2p.port);
                    vec![format!("127.0.0.1:{}", cfg.p2p.port)]
                } else {
                    cfg.p2p.registration.addresses.clone()
                };
                let consensus_addresses =
                    if roles.contains(crate::consensus::state::RoleMask::VALIDATOR) {
                        let a = config::consensus_external(cfg, &addresses)
                            .map_err(NodeError::ExternalAddress)?;
                        vec![format!("{}@{a}", p.id.public_b64(KeyKind::P2p))]
                    } else {
                        Vec::new()
                    };
                let worker = crate::worker::registration::Worker {
                    signer: signer.clone(),
                    entity,
                    roles,
                    runtimes: hosted_runtimes.clone(),
                    p2p_addresses: addresses,
                    consensus_addresses,
                };
                reg_task = Some(tokio::spawn(worker.run(
                    handle,
                    rs_tx,
                    ready_rx,
                    stops.registration.clone(),
                )));
                let flag = Path::new(&cfg.common.data_dir).join(DEREGISTER_FLAG);
                if flag.exists() {
                    log::warn!(target: "worker/registration", path:% = flag.display(); "a deregistration requested by control shutdown did not complete: waiting for node to deregister, then stopping (`paratime-node control clear-deregister --datadir DIR` forgets the request)");
                    stops.requested.cancel();
                }
            }
        }
    }
    let control_error = |source| NodeError::ControlSocket {
        path: p.socket.clone(),
        source,
    };
    p.control.set_nonblocking(true).map_err(control_error)?;
    let listener = tokio::net::UnixListener::from_std(p.control).map_err(control_error)?;
    let state = ControlState {
        base: Status {
            software_version: crate::SOFTWARE_VERSION.to_string(),
            mode: cfg.mode.as_str().to_string(),
            identity: IdentityStatus {
                node: p.id.public_b64(KeyKind::Node),
                p2p: p.id.public_b64(KeyKind::P2p),
                consensus: p.id.public_b64(KeyKind::Consensus),
            },
            runtimes: BTreeMap::new(),
            sandbox: Some(p.info),
            confinement: p.confinement,
            bundles_refused: p.bundles_refused,
            consensus: None,
            p2p: None,
            registration: None,
        },
        runtimes: channels.clone(),
        synced: synced_rx,
        shutdown: stops.requested.clone(),
        network,
        node_id: PublicKey::of(p.id.key(KeyKind::Node)),
    };
    let metrics = match p.metrics {
        Some(l) => {
            let address = l.local_addr().ok();
            let l = tokio::net::TcpListener::from_std(l).map_err(|source| {
                NodeError::MetricsListen {
                    address: address.unwrap_or_else(|| ([0, 0, 0, 0], 0).into()),
                    source,
                }
            })?;
            let scrape =
                control::metrics::Scrape::new(state.clone(), PathBuf::from(&cfg.common.data_dir));
            if let Some(a) = address {
                log::info!(target: "cmd/node", address:% = a; "metrics: serving Prometheus on http://{a}/metrics");
            }
            Some(tokio::spawn(control::metrics::serve(
                l,
                scrape,
                stops.runtimes.clone(),
            )))
        }
        None => None,
    };
    let server = tokio::spawn(control::serve(listener, state, stops.runtimes.clone()));
    synced_tx.send_replace(true);
    let mut line = status_line(&channels);
    notify::ready(&line);
    log::info!(target: "cmd/node", socket:% = p.socket.display(), socket_activated = p.socket_activated, message_id = notify::message_id::NODE_READY; "node started, control API listening");

    // The main loop: signals, status changes, and the watchdog's health tick.
    let period = notify::watchdog_period().unwrap_or(Duration::from_secs(3600));
    let mut tick = tokio::time::interval(period);
    let mut changes: Vec<watch::Receiver<supervisor::RuntimeStatus>> =
        channels.iter().map(|(_, rx)| rx.clone()).collect();
    let signal = wait_for_signal(stops.requested.clone(), stops.halted.clone());
    tokio::pin!(signal);
    let why = loop {
        let changed = async {
            if changes.is_empty() {
                std::future::pending::<()>().await;
            }
            let futs = changes.iter_mut().map(|rx| Box::pin(rx.changed()));
            let _ = futures::future::select_all(futs).await;
        };
        tokio::select! {
            why = &mut signal => break why,
            _ = tick.tick() => notify::watchdog(),
            _ = changed => {
                let now = status_line(&channels);
                if now != line {
                    line = now;
                    notify::status(&line);
                }
            }
        }
    };
    stops.stopping.cancel();
    notify::stopping("stopping: terminating runtimes");
    log::info!(target: "cmd/node", reason = why, message_id = notify::message_id::NODE_STOPPING; "shutting down");
    // Deregister first (the consensus layer must still run for that); at an upgrade halt the
    // chain commits nothing more, so the node stays registered and just stops. A deregistration
    // asked for by `control shutdown` is remembered until it completed.
    let flag = Path::new(&cfg.common.data_dir).join(DEREGISTER_FLAG);
    if why == "control shutdown" && reg_task.is_some() {
        if let Err(e) = std::fs::write(&flag, "deregistration requested by control shutdown\n") {
            log::warn!(target: "worker/registration", path:% = flag.display(); "cannot persist the deregistration request: {e}");
        }
    }
    stops.registration.cancel();
    if let Some(t) = reg_task {
        if why == UPGRADE_HALT {
            t.abort();
        } else {
            let done = tokio::time::timeout(Duration::from_secs(15), t).await;
            if matches!(done, Ok(Ok(true))) && flag.exists() {
                let _ = std::fs::remove_file(&flag);
            } else if flag.exists() {
                log::warn!(target: "worker/registration", path:% = flag.display(); "the node's deregistration did not complete: its next start deregisters and stops again (`paratime-node control clear-deregister --datadir DIR` forgets the request)");
            }
        }
    }
    stops.runtimes.cancel();
    for t in tasks {
        let _ = tokio::time::timeout(Duration::from_secs(5), t).await;
    }
    let _ = tokio::time::timeout(Duration::from_secs(2), server).await;
    if let Some(m) = metrics {
        let _ = tokio::time::timeout(Duration::from_secs(2), m).await;
    }
    drop(p.launcher);
    if !p.socket_activated {
        let _ = std::fs::remove_file(&p.socket);
    }
    drop(idle);
    drop(idle_conns);
    stops.network.cancel();
    log::info!(target: "cmd/node", "node stopped");
    Ok(())
}

/// Keeps the p2p layer told which registered nodes host this node's runtimes (checked every
/// 5 s against the latest consensus view), so that it dials them: the runtimes' gossip and
/// history run among those nodes only.
async fn dial_runtime_peers(
    consensus: crate::consensus::engine::Handle,
    net: tokio::sync::mpsc::Sender<crate::p2p::Command>,
    runtimes: std::collections::BTreeSet<RuntimeId>,
    me: libp2p::PeerId,
    stop: CancellationToken,
) {
    use crate::consensus::engine::Backend;
    let views = consensus.view();
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(5));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut sent = None;
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        let state = views.borrow().state.clone();
        let peers = crate::p2p::runtime_peers(&state, &runtimes, &me);
        if sent.as_ref() != Some(&peers) {
            if net
                .send(crate::p2p::Command::RuntimePeers(peers.clone()))
                .await
                .is_err()
            {
                return;
            }
            sent = Some(peers);
        }
    }
}

/// Serves peers' state sync requests from the hosted runtimes' trees.
fn state_server(
    states: &BTreeMap<
        crate::bundle::RuntimeId,
        (Arc<RuntimeState>, Option<crate::storage::Applied>, bool),
    >,
) -> crate::p2p::StateServer {
    let trees: BTreeMap<crate::bundle::RuntimeId, Arc<RuntimeState>> = states
        .iter()
        .map(|(id, (s, _, _))| (*id, s.clone()))
        .collect();
    Arc::new(move |rid, wants| {
        let Some(tree) = trees.get(rid) else {
            return Vec::new();
        };
        let wants: Vec<paratime_mkvs::node::Ptr> = wants
            .iter()
            .map(|(hash, version)| paratime_mkvs::node::Ptr {
                hash: *hash,
                version: *version,
            })
            .collect();
        tree.export(&wants).unwrap_or_else(|e| {
            log::warn!(target: "p2p", runtime_id:% = rid; "cannot serve state sync: {e}");
            Vec::new()
        })
    })
}
