//! The config.yml schema: oasis-node's keys and defaults (oasis-facts §1).
//!
//! Every struct is strict through the loader (unknown keys are collected and reported with their
//! full path). Keys for components this node does not have (CometBFT tuning, IAS, SGX, TDX,
//! metrics, pprof, sentry, key manager) are accepted so oasis configs load, and [`super::validate`]
//! reports each one that is set.

use serde::Deserialize;
use serde_yaml_ng::Value;
use std::collections::BTreeMap;

/// Node mode (`mode`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Orders the consensus layer.
    Validator,
    /// Hosts ParaTimes and serves on their compute committees.
    Compute,
    /// Follows the chain without serving committees (oasis: needs runtimes and an entity).
    Observer,
    /// Key manager (not supported by this node).
    Keymanager,
    /// Follows the chain, hosts ParaTimes for queries (the default).
    #[default]
    Client,
    /// Peer discovery only.
    Seed,
    /// Read-only archive (not supported by this node).
    Archive,
}

impl Mode {
    /// The mode's name as written in config.yml.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Validator => "validator",
            Self::Compute => "compute",
            Self::Observer => "observer",
            Self::Keymanager => "keymanager",
            Self::Client => "client",
            Self::Seed => "seed",
            Self::Archive => "archive",
        }
    }
}

/// The whole file.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct Config {
    /// Node mode.
    pub mode: Mode,
    /// Data dir, logging, control socket.
    pub common: Common,
    /// Genesis document.
    pub genesis: Genesis,
    /// Consensus layer.
    pub consensus: Consensus,
    /// ParaTime hosting.
    pub runtime: RuntimeConfig,
    /// libp2p.
    pub p2p: P2p,
    /// Intel Attestation Service (not supported).
    pub ias: Ias,
    /// pprof (not supported).
    pub pprof: Pprof,
    /// Prometheus metrics (not supported yet).
    pub metrics: Metrics,
    /// Node registration.
    pub registration: Registration,
    /// Key manager (not supported).
    pub keymanager: Option<Value>,
    /// Storage tuning.
    pub storage: Storage,
    /// Sentry (not supported).
    pub sentry: Option<Value>,
}

/// `common`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct Common {
    /// Node state directory (required to run).
    pub data_dir: String,
    /// Control socket; empty means `<data_dir>/internal.sock`.
    pub internal_socket_path: String,
    /// Logging.
    pub log: Log,
    /// Debug switches (need the unsafe flag).
    pub debug: CommonDebug,
    /// UNSAFE: skip Landlock, capability dropping and no_new_privs after start-up.
    pub unsafe_disable_self_confinement: bool,
}

/// `common.log`.
#[derive(Clone, Debug, Deserialize)]
#[serde(default)]
pub struct Log {
    /// Log file; empty means stderr. Relative paths are joined to the data dir.
    pub file: String,
    /// `logfmt` (default), `JSON` or `text`, case-insensitive.
    pub format: String,
    /// Module prefix → level; `default` sets the fallback.
    pub level: BTreeMap<String, String>,
}

impl Default for Log {
    fn default() -> Self {
        let level = [
            ("cometbft/context", "error"),
            ("cometbft/db", "info"),
            ("common/persistent", "info"),
            ("mkvs/db", "info"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        Self {
            file: String::new(),
            format: "logfmt".into(),
            level,
        }
    }
}

/// `common.debug`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct CommonDebug {
    /// Allow running as root (only with `--unsafe-debug`).
    pub allow_root: bool,
    /// RLIMIT_NOFILE to set (only with `--unsafe-debug`).
    pub rlimit: u64,
}

/// `genesis`.
#[derive(Clone, Debug, Deserialize)]
#[serde(default)]
pub struct Genesis {
    /// Path of the genesis document.
    pub file: String,
}

impl Default for Genesis {
    fn default() -> Self {
        Self {
            file: "genesis.json".into(),
        }
    }
}

/// `consensus` (CometBFT keys are accepted for compatibility; see validate.rs).
#[derive(Clone, Debug, Deserialize)]
#[serde(default)]
pub struct Consensus {
    /// Participate as a validator.
    pub validator: bool,
    /// Consensus listen address.
    pub listen_address: String,
    /// Advertised consensus address.
    pub external_address: String,
    /// Keep local consensus state.
    pub local_storage: bool,
    /// Stop at this epoch.
    pub halt_epoch: u64,
    /// Stop at this height.
    pub halt_height: u64,
    /// Delay before stopping for an upgrade.
    pub upgrade_stop_delay: String,
    /// Minimum gas price.
    pub min_gas_price: u64,
    /// CometBFT debug logging.
    pub log_debug: bool,
    /// Sentry upstreams.
    pub sentry_upstream_addresses: Vec<String>,
    /// Consensus p2p tuning (CometBFT; accepted, unused).
    pub p2p: Option<Value>,
    /// Transaction submission: `gas_price`, `max_fee`.
    pub submission: Option<Value>,
    /// Pruning of consensus blocks (oasis's keys).
    pub prune: ConsensusPrune,
    /// Checkpointer (accepted, unused).
    pub checkpointer: Option<Value>,
    /// State sync (accepted, unused).
    pub state_sync: Option<Value>,
    /// Light client (accepted, unused).
    pub light_client: Option<Value>,
    /// Light client providers (accepted, unused).
    pub providers: Option<Value>,
    /// Extra sanity checks (accepted, unused).
    pub supplementary_sanity: Option<Value>,
    /// CometBFT debug switches, as oasis's own test runner writes them (accepted, unused).
    pub debug: Option<Value>,
}

impl Default for Consensus {
    fn default() -> Self {
        Self {
            validator: false,
            listen_address: "tcp://0.0.0.0:26656".into(),
            external_address: String::new(),
            local_storage: true,
            halt_epoch: 0,
            halt_height: 0,
            upgrade_stop_delay: "1m".into(),
            min_gas_price: 0,
            log_debug: false,
            sentry_upstream_addresses: Vec::new(),
            p2p: None,
            submission: None,
            prune: ConsensusPrune::default(),
            checkpointer: None,
            state_sync: None,
            light_client: None,
            providers: None,
            supplementary_sanity: None,
            debug: None,
        }
    }
}

/// `runtime.provisioner`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Provisioner {
    /// bubblewrap sandbox (the default).
    #[default]
    Sandboxed,
    /// Plain child process, no sandbox (needs `--unsafe-debug`).
    Unconfined,
    /// Mock runtime (not supported).
    Mock,
}

/// One entry of `runtime.runtimes`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct RuntimeEntry {
    /// Runtime ID (64 hex characters).
    pub id: String,
    /// Components (`ronl`, `rofl.<name>` or maps).
    pub components: Vec<Value>,
    /// Local configuration passed to the runtime at the handshake.
    pub config: Option<Value>,
    /// Bundle registries for this runtime (base URLs), tried before `runtime.registries`.
    pub registries: Vec<String>,
}

/// `runtime`.
#[derive(Clone, Debug, Deserialize)]
#[serde(default)]
pub struct RuntimeConfig {
    /// Configured runtimes.
    pub runtimes: Vec<RuntimeEntry>,
    /// `.orc` bundles to install.
    pub paths: Vec<String>,
    /// `sandboxed` or `unconfined`.
    pub provisioner: Provisioner,
    /// bubblewrap binary.
    pub sandbox_binary: String,
    /// SGX loader (legacy key; SGX is not supported).
    pub sgx_loader: String,
    /// SGX settings (not supported).
    pub sgx: Option<Value>,
    /// TEE environment (`auto`, `sgx`, `sgx-mock`).
    pub environment: String,
    /// Legacy per-runtime local config: runtime ID → map.
    pub config: BTreeMap<String, Value>,
    /// Largest accepted bundle (`20mb`, `1GB`, …).
    pub max_bundle_size: String,
    /// Epochs to pre-warm the next version (compute mode).
    pub pre_warm_epochs: u64,
    /// Bundle registries (base URLs) for every runtime configured by id; empty by default
    /// (oasis's default registry serves the Oasis Mainnet's bundles, not this network's).
    pub registries: Vec<String>,
    /// How long one registry request (metadata or bundle, connect to last byte) may take
    /// (paratime-node addition; oasis uses 1 minute).
    pub download_timeout: String,
    /// Sentry addresses (not supported).
    pub sentry_addresses: Vec<String>,
    /// Transaction pool tuning.
    pub tx_pool: Option<Value>,
    /// Pruning of runtime history and state.
    pub prune: RuntimePrune,
    /// Indexer.
    pub indexer: Option<Value>,
    /// Re-attestation interval (TEE only).
    pub attest_interval: String,
    /// Load balancer (not supported).
    pub load_balancer: Option<Value>,
    /// Mock TEE (not supported).
    pub debug_mock_tee: bool,
    /// TDX (not supported).
    pub tdx: Option<Value>,
    /// Runtime log limits.
    pub log: RuntimeLog,
    /// Resource limits of each runtime.
    pub limits: RuntimeLimits,
    /// Watchdog ping interval (paratime-node addition; oasis uses 15s).
    pub ping_interval: String,
    /// Watchdog ping timeout (paratime-node addition; oasis uses 5s).
    pub ping_timeout: String,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        Self {
            runtimes: Vec::new(),
            paths: Vec::new(),
            provisioner: Provisioner::Sandboxed,
            sandbox_binary: "/usr/bin/bwrap".into(),
            sgx_loader: String::new(),
            sgx: None,
            environment: "auto".into(),
            config: BTreeMap::new(),
            max_bundle_size: "20mb".into(),
            pre_warm_epochs: 3,
            registries: Vec::new(),
            sentry_addresses: Vec::new(),
            tx_pool: None,
            prune: RuntimePrune::default(),
            indexer: None,
            attest_interval: String::new(),
            load_balancer: None,
            debug_mock_tee: false,
            tdx: None,
            log: RuntimeLog::default(),
            limits: RuntimeLimits::default(),
            ping_interval: "15s".into(),
            ping_timeout: "5s".into(),
            download_timeout: "1m".into(),
        }
    }
}

/// `runtime.log`.
#[derive(Clone, Debug, Deserialize)]
#[serde(default)]
pub struct RuntimeLog {
    /// Largest size of each runtime's log file (`<data_dir>/runtimes/logs/<id>.log`, rotated
    /// once to `.log.1`), in bytes, at least 1024 (oasis's key and default).
    pub max_log_size: u64,
    /// Runtime log lines re-logged per second on average; more are dropped and counted
    /// (paratime-node addition).
    pub max_lines_per_second: u32,
    /// Runtime log lines re-logged at once before the rate applies (paratime-node addition).
    pub burst: u32,
}

impl Default for RuntimeLog {
    fn default() -> Self {
        Self {
            max_log_size: 1024 * 1024,
            max_lines_per_second: 200,
            burst: 2000,
        }
    }
}

/// `runtime.limits`: resource limits of each hosted runtime (paratime-node addition).
#[derive(Clone, Debug, Deserialize)]
#[serde(default)]
pub struct RuntimeLimits {
    /// Memory: data segment of each process and resident memory of the whole sandbox.
    pub memory: String,
    /// Processes and threads in the sandbox.
    pub pids: u64,
    /// Largest file the runtime may write.
    pub file_size: String,
    /// Size of the sandbox's `/tmp`.
    pub tmpfs_size: String,
    /// Niceness of the runtime's processes (0–19).
    pub nice: u8,
    /// CPU quota in CPUs (e.g. 0.5, 2); enforced with a delegated cgroup v2 cpu controller.
    pub cpu: f64,
}

impl Default for RuntimeLimits {
    fn default() -> Self {
        Self {
            memory: "2gb".into(),
            pids: 128,
            file_size: "256mb".into(),
            tmpfs_size: "256mb".into(),
            nice: 10,
            cpu: 1.0,
        }
    }
}

/// `p2p`.
#[derive(Clone, Debug, Deserialize)]
#[serde(default)]
pub struct P2p {
    /// libp2p port.
    pub port: u16,
    /// Seeds, `PUBKEY@IP:port`.
    pub seeds: Vec<String>,
    /// Advertised addresses.
    pub registration: P2pRegistration,
    /// Discovery tuning.
    pub discovery: Option<Value>,
    /// Gossipsub tuning.
    pub gossipsub: Option<Value>,
    /// Peer manager tuning.
    pub peer_manager: Option<Value>,
    /// Connection manager tuning.
    pub connection_manager: Option<Value>,
    /// Connection gater.
    pub connection_gater: Option<Value>,
}

impl Default for P2p {
    fn default() -> Self {
        Self {
            port: 9200,
            seeds: Vec::new(),
            registration: P2pRegistration::default(),
            discovery: None,
            gossipsub: None,
            peer_manager: None,
            connection_manager: None,
            connection_gater: None,
        }
    }
}

/// `p2p.registration`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct P2pRegistration {
    /// `IP:port` addresses advertised in the node descriptor.
    pub addresses: Vec<String>,
}

/// `ias`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct Ias {
    /// IAS proxies, `ID@HOST:PORT`.
    pub proxy_addresses: Vec<String>,
    /// Skip AVR verification.
    pub debug_skip_verify: bool,
}

/// `pprof`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct Pprof {
    /// pprof listen address.
    pub bind_address: String,
}

/// `metrics`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct Metrics {
    /// `none`, `pull` or `push`.
    pub mode: String,
    /// Listen or push address.
    pub address: String,
    /// Push job name.
    pub job_name: String,
    /// Push interval.
    pub interval: String,
    /// Push labels.
    pub labels: BTreeMap<String, String>,
}

/// `registration`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct Registration {
    /// Path of entity.json.
    pub entity: String,
    /// Entity public key, base64.
    pub entity_id: String,
}

/// `consensus.prune` (oasis's keys and defaults).
#[derive(Clone, Debug, Deserialize)]
#[serde(default)]
pub struct ConsensusPrune {
    /// `none` or `keep_n` (case-insensitive).
    pub strategy: String,
    /// Blocks kept (keep_n).
    pub num_kept: u64,
    /// How often the pruner runs (at least 1s).
    pub interval: String,
}

impl Default for ConsensusPrune {
    fn default() -> Self {
        Self {
            strategy: "none".into(),
            num_kept: 250_000,
            interval: "2m".into(),
        }
    }
}

/// `runtime.prune` (oasis's keys and defaults).
#[derive(Clone, Debug, Deserialize)]
#[serde(default)]
pub struct RuntimePrune {
    /// `none` or `keep_last`.
    pub strategy: String,
    /// How often the pruner runs (at least 1s with keep_last).
    pub interval: String,
    /// Rounds kept (keep_last).
    pub num_kept: u64,
}

impl Default for RuntimePrune {
    fn default() -> Self {
        Self {
            strategy: "none".into(),
            interval: "2m".into(),
            num_kept: 250_000,
        }
    }
}

/// `storage`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct Storage {
    /// Storage backend.
    pub backend: String,
    /// Cache size.
    pub max_cache_size: String,
    /// Fetchers.
    pub fetcher_count: u64,
    /// Public storage RPC.
    pub public_rpc_enabled: bool,
    /// Disable checkpoint sync.
    pub checkpoint_sync_disabled: bool,
    /// Checkpointer.
    pub checkpointer: Option<Value>,
}
