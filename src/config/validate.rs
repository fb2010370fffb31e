//! Mode rules and value checks (oasis-facts §1), plus warnings for unsupported components.

use super::schema::{Config, Mode, Provisioner};
use super::{parse_size, Problem};
use crate::bundle::RuntimeId;
use std::path::Path;
use std::time::Duration;

/// What `genesis.file` holds.
#[derive(Clone, Debug)]
pub enum GenesisFile {
    /// `{}`: the node hosts runtimes without consensus.
    Empty,
    /// A genesis document: the node runs the network.
    Document(Box<crate::consensus::genesis::Genesis>),
}

/// The values the node runs with, parsed once while the config is validated: the node never
/// parses a setting again (and so has no fallback for one that does not parse).
#[derive(Clone, Debug)]
pub struct Settings {
    /// `genesis.file`, read and checked.
    pub genesis: GenesisFile,
    /// The owning entity: `registration.entity_id`, or the `id` of `registration.entity`.
    pub entity: Option<crate::consensus::crypto::PublicKey>,
    /// `runtime.max_bundle_size` in bytes.
    pub max_bundle_size: u64,
    /// `runtime.ping_interval`.
    pub ping_interval: Duration,
    /// `runtime.ping_timeout`.
    pub ping_timeout: Duration,
    /// `runtime.download_timeout`.
    pub download_timeout: Duration,
    /// `runtime.limits`.
    pub limits: crate::host::limits::Limits,
    /// `consensus.listen_address`.
    pub consensus_listen: std::net::SocketAddr,
    /// `consensus.p2p.persistent_peers`.
    pub consensus_peers: Vec<std::net::SocketAddr>,
    /// `p2p.seeds`: peer ID and address.
    pub seeds: Vec<(libp2p::PeerId, libp2p::Multiaddr)>,
    /// `storage.max_cache_size` in bytes: the memory each hosted runtime's state tree may
    /// hold (decoded nodes, and the database's page cache as much again).
    pub state_cache_size: u64,
    /// `runtime.prune`: `None` for strategy `none`.
    pub prune: Option<Prune>,
    /// `consensus.prune`: `None` for strategy `none`.
    pub consensus_prune: Option<Prune>,
    /// The upgrade halt, if one is set.
    pub halt: Option<Halt>,
    /// `metrics.address` when `metrics.mode` is `pull`: where Prometheus scrapes.
    pub metrics: Option<std::net::SocketAddr>,
}

/// `runtime.prune` with strategy `keep_last`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Prune {
    /// Rounds kept: rounds at or below `latest - num_kept` are removed.
    pub num_kept: u64,
    /// How often the pruner runs.
    pub interval: Duration,
}

/// Values parsed so far; complete when the config has no errors.
#[derive(Default)]
pub(super) struct Parsed {
    genesis: Option<GenesisFile>,
    entity: Option<Option<crate::consensus::crypto::PublicKey>>,
    max_bundle_size: Option<u64>,
    ping_interval: Option<Duration>,
    ping_timeout: Option<Duration>,
    download_timeout: Option<Duration>,
    limits: Option<crate::host::limits::Limits>,
    consensus_listen: Option<std::net::SocketAddr>,
    consensus_peers: Option<Vec<std::net::SocketAddr>>,
    seeds: Option<Vec<(libp2p::PeerId, libp2p::Multiaddr)>>,
    state_cache_size: Option<u64>,
    prune: Option<Option<Prune>>,
    consensus_prune: Option<Option<Prune>>,
    halt: Option<Option<Halt>>,
    metrics: Option<Option<std::net::SocketAddr>>,
}

pub use crate::consensus::engine::Halt;

impl Parsed {
    /// The settings, or the first key that did not parse.
    pub(super) fn settings(self) -> Result<Settings, &'static str> {
        Ok(Settings {
            genesis: self.genesis.ok_or("genesis.file")?,
            entity: self.entity.ok_or("registration.entity")?,
            max_bundle_size: self.max_bundle_size.ok_or("runtime.max_bundle_size")?,
            ping_interval: self.ping_interval.ok_or("runtime.ping_interval")?,
            ping_timeout: self.ping_timeout.ok_or("runtime.ping_timeout")?,
            download_timeout: self.download_timeout.ok_or("runtime.download_timeout")?,
            limits: self.limits.ok_or("runtime.limits")?,
            consensus_listen: self.consensus_listen.ok_or("consensus.listen_address")?,
            consensus_peers: self
                .consensus_peers
                .ok_or("consensus.p2p.persistent_peers")?,
            seeds: self.seeds.ok_or("p2p.seeds")?,
            state_cache_size: self.state_cache_size.ok_or("storage.max_cache_size")?,
            prune: self.prune.ok_or("runtime.prune")?,
            consensus_prune: self.consensus_prune.ok_or("consensus.prune")?,
            halt: self.halt.ok_or("consensus.halt_height")?,
            metrics: self.metrics.ok_or("metrics.address")?,
        })
    }
}

/// `storage.max_cache_size` when unset (oasis's default is 256mb; this node's state tree
/// needs less to stay fast, and a node's memory stays bounded).
pub(crate) const DEFAULT_STATE_CACHE: u64 = 64 << 20;
const MIN_STATE_CACHE: u64 = 2 << 20;

/// The longest pruning interval: a timer far in the future overflows the clock.
const MAX_PRUNE_INTERVAL: Duration = Duration::from_secs(7 * 24 * 3600);

/// The keep window of a pruning section: `interval` (below 1s an error, or 1s when `clamp`)
/// up to [`MAX_PRUNE_INTERVAL`], and `num_kept` at least 1.
fn prune_window(
    p: &mut Vec<Problem>,
    section: &str,
    (interval, num_kept): (&str, u64),
    clamp: bool,
) -> Option<Prune> {
    let key = format!("{section}.interval");
    let mut interval = check_duration(p, &key, interval)?;
    if interval < Duration::from_secs(1) {
        if !clamp {
            p.push(Problem::error(&key, "prune.interval must be >= 1 second"));
            return None;
        }
        interval = Duration::from_secs(1);
    }
    if interval > MAX_PRUNE_INTERVAL {
        p.push(Problem::error(
            &key,
            "prune.interval must be at most 168h (a week)",
        ));
        return None;
    }
    if num_kept == 0 {
        p.push(Problem::error(
            format!("{section}.num_kept"),
            "must be at least 1: the latest is always kept",
        ));
        return None;
    }
    Some(Prune { num_kept, interval })
}

/// `consensus.prune`, with oasis's message; the interval is clamped to at least 1s, as oasis.
fn check_consensus_prune(
    pr: &super::schema::ConsensusPrune,
    p: &mut Vec<Problem>,
) -> Option<Option<Prune>> {
    match pr.strategy.to_ascii_lowercase().as_str() {
        "none" => Some(None),
        "keep_n" => prune_window(p, "consensus.prune", (&pr.interval, pr.num_kept), true).map(Some),
        _ => {
            p.push(Problem::error(
                "consensus.prune.strategy",
                format!(
                    "abci/pruner: unknown pruning strategy: '{}' (use none or keep_n)",
                    pr.strategy
                ),
            ));
            None
        }
    }
}

/// `runtime.prune`, with oasis's messages.
fn check_prune(pr: &super::schema::RuntimePrune, p: &mut Vec<Problem>) -> Option<Option<Prune>> {
    match pr.strategy.as_str() {
        "none" => Some(None),
        "keep_last" => {
            prune_window(p, "runtime.prune", (&pr.interval, pr.num_kept), false).map(Some)
        }
        other => {
            p.push(Problem::error(
                "runtime.prune.strategy",
                format!("unknown runtime history pruner strategy: {other} (use none or keep_last)"),
            ));
            None
        }
    }
}

/// Longest `consensus.upgrade_stop_delay`.
const MAX_STOP_DELAY: Duration = Duration::from_secs(3600);

fn check_halt(c: &Config, p: &mut Vec<Problem>) -> Option<Option<Halt>> {
    let k = &c.consensus;
    let delay = check_duration_range(
        p,
        "consensus.upgrade_stop_delay",
        &k.upgrade_stop_delay,
        (Duration::ZERO, MAX_STOP_DELAY),
        "1m",
    )?;
    if k.halt_height != 0 && k.halt_epoch != 0 {
        p.push(Problem::error(
            "consensus.halt_height",
            "only one of {halt_epoch, halt_height} can be set",
        ));
        return None;
    }
    Some((k.halt_height != 0 || k.halt_epoch != 0).then_some(Halt {
        height: k.halt_height,
        epoch: k.halt_epoch,
        stop_delay: delay,
    }))
}

fn has_entity(c: &Config) -> bool {
    !c.registration.entity.is_empty() || !c.registration.entity_id.is_empty()
}

fn check_duration(problems: &mut Vec<Problem>, key: &str, value: &str) -> Option<Duration> {
    match humantime::parse_duration(value) {
        Ok(d) => Some(d),
        Err(e) => {
            problems.push(Problem::error(
                key,
                format!("invalid duration '{value}': {e} (e.g. 15s, 2m)"),
            ));
            None
        }
    }
}

/// A duration that must lie in `min..=max`: the runtime watchdog's settings, where 0s would ping
/// in a busy loop (interval) or fail every ping at once (timeout) and kill healthy runtimes.
fn check_duration_range(
    problems: &mut Vec<Problem>,
    key: &str,
    value: &str,
    (min, max): (Duration, Duration),
    default: &str,
) -> Option<Duration> {
    let d = check_duration(problems, key, value)?;
    if d < min || d > max {
        problems.push(Problem::error(
            key,
            format!(
                "'{value}' is out of range: must be between {} and {} (default {default})",
                humantime::format_duration(min),
                humantime::format_duration(max)
            ),
        ));
        return None;
    }
    Some(d)
}

/// `runtime.ping_interval`: how long the watchdog waits between pings.
pub(super) const PING_INTERVAL_RANGE: (Duration, Duration) =
    (Duration::from_millis(100), Duration::from_secs(3600));
/// `runtime.ping_timeout`: how long one ping may take (pings are sequential, so a timeout longer
/// than the interval only delays the next ping).
pub(super) const PING_TIMEOUT_RANGE: (Duration, Duration) =
    (Duration::from_millis(100), Duration::from_secs(600));

/// `runtime.download_timeout`: one registry request, connect to last byte.
pub(super) const DOWNLOAD_TIMEOUT_RANGE: (Duration, Duration) =
    (Duration::from_secs(1), Duration::from_secs(3600));

fn check_mode(c: &Config, p: &mut Vec<Problem>) {
    let runtimes = c.runtime.runtimes.len() + c.runtime.paths.len();
    match c.mode {
        Mode::Keymanager | Mode::Archive | Mode::Observer => p.push(Problem::error(
            "mode",
            format!("mode `{}` is not supported by paratime-node (supported: validator, compute, client, seed)", c.mode.as_str()),
        )),
        Mode::Compute if runtimes == 0 => p.push(Problem::error(
            "runtime",
            "at least one runtime must be configured when in compute, keymanager, or observer modes (set runtime.paths to your .orc bundles)",
        )),
        Mode::Validator | Mode::Seed if runtimes > 0 => p.push(Problem::error(
            "runtime",
            format!("no runtimes may be configured in {} mode (remove runtime.paths and runtime.runtimes)", c.mode.as_str()),
        )),
        _ => {}
    }
    let needs_entity = matches!(c.mode, Mode::Validator | Mode::Compute) || c.consensus.validator;
    if needs_entity && !has_entity(c) {
        p.push(Problem::error(
            "registration",
            "node has no entity configured but expects one (set registration.entity to your entity.json or registration.entity_id)",
        ));
    }
    if c.mode == Mode::Client && has_entity(c) {
        p.push(Problem::error(
            "registration",
            "client node must not have entity configured, try using compute mode instead (or remove registration.entity/entity_id)",
        ));
    }
    if !c.consensus.local_storage && (c.mode == Mode::Validator || c.consensus.validator) {
        p.push(Problem::error(
            "consensus.local_storage",
            "local storage not available in specified mode",
        ));
    }
}

fn check_common(c: &Config, p: &mut Vec<Problem>) {
    if c.common.data_dir.is_empty() {
        p.push(Problem::error(
            "common.data_dir",
            "data directory not configured (set it to the node's data directory, e.g. /node/data)",
        ));
    }
    match c.common.log.format.to_ascii_lowercase().as_str() {
        "logfmt" | "json" | "text" => {}
        other => p.push(Problem::error(
            "common.log.format",
            format!("unknown log format '{other}' (use logfmt, JSON or text)"),
        )),
    }
    for (module, level) in &c.common.log.level {
        if crate::logging::parse_level(level).is_none() {
            p.push(Problem::error(
                format!("common.log.level.{module}"),
                format!("unknown log level '{level}' (use debug, info, warn or error)"),
            ));
        }
    }
}

fn check_runtime(c: &Config, p: &mut Vec<Problem>, parsed: &mut Parsed) {
    let r = &c.runtime;
    if r.provisioner == Provisioner::Mock {
        p.push(Problem::error(
            "runtime.provisioner",
            "the mock provisioner is not supported (use sandboxed)",
        ));
    }
    if r.provisioner == Provisioner::Sandboxed && r.sandbox_binary.is_empty() {
        p.push(Problem::error(
            "runtime.sandbox_binary",
            "sandbox binary must be set for the sandboxed provisioner (e.g. /usr/bin/bwrap)",
        ));
    }
    for (i, path) in r.paths.iter().enumerate() {
        if !Path::new(path).is_file() {
            p.push(Problem::error(
                format!("runtime.paths[{i}]"),
                format!("bundle '{path}' does not exist or is not a file"),
            ));
        }
    }
    for (i, rt) in r.runtimes.iter().enumerate() {
        if let Err(e) = rt.id.parse::<RuntimeId>() {
            p.push(Problem::error(
                format!("runtime.runtimes[{i}].id"),
                e.to_string(),
            ));
        }
        for (j, u) in rt.registries.iter().enumerate() {
            if let Err(e) = crate::bundle::registry::check_url(u) {
                p.push(Problem::error(
                    format!("runtime.runtimes[{i}].registries[{j}]"),
                    format!("'{u}': {e}"),
                ));
            }
        }
    }
    for id in r.config.keys() {
        if let Err(e) = id.parse::<RuntimeId>() {
            p.push(Problem::error(
                format!("runtime.config.{id}"),
                e.to_string(),
            ));
        }
    }
    match parse_size(&r.max_bundle_size) {
        Ok(n) => parsed.max_bundle_size = Some(n),
        Err(e) => p.push(Problem::error("runtime.max_bundle_size", e)),
    }
    parsed.prune = check_prune(&r.prune, p);
    parsed.consensus_prune = check_consensus_prune(&c.consensus.prune, p);
    parsed.halt = check_halt(c, p);
    let cache = &c.storage.max_cache_size;
    let size = if cache.is_empty() {
        Ok(DEFAULT_STATE_CACHE)
    } else {
        parse_size(cache)
    };
    match size {
        Ok(n) if n >= MIN_STATE_CACHE => parsed.state_cache_size = Some(n),
        Ok(_) => p.push(Problem::error(
            "storage.max_cache_size",
            format!("'{cache}' is below the minimum of 2mb"),
        )),
        Err(e) => p.push(Problem::error("storage.max_cache_size", e)),
    }
    parsed.ping_interval = check_duration_range(
        p,
        "runtime.ping_interval",
        &r.ping_interval,
        PING_INTERVAL_RANGE,
        "15s",
    );
    parsed.ping_timeout = check_duration_range(
        p,
        "runtime.ping_timeout",
        &r.ping_timeout,
        PING_TIMEOUT_RANGE,
        "5s",
    );
    match r.environment.as_str() {
        "auto" | "" => {}
        "sgx" | "sgx-mock" => p.push(Problem::error(
            "runtime.environment",
            format!("TEE environment `{}` is not supported: paratime-node runs non-TEE ParaTimes only (set it to auto)", r.environment),
        )),
        other => p.push(Problem::error("runtime.environment", format!("unknown environment '{other}' (use auto)"))),
    }
    if !r.sgx_loader.is_empty() || r.sgx.is_some() {
        p.push(Problem::warning(
            "runtime.sgx_loader",
            "SGX is not supported: the SGX loader is ignored and SGX bundles are refused",
        ));
    }
    if r.tdx.is_some() {
        p.push(Problem::warning(
            "runtime.tdx",
            "TDX is not supported: the setting is ignored and TDX bundles are refused",
        ));
    }
    if r.debug_mock_tee {
        p.push(Problem::error(
            "runtime.debug_mock_tee",
            "mock TEE is not supported",
        ));
    }
    if r.load_balancer.is_some() {
        p.push(Problem::warning(
            "runtime.load_balancer",
            "the runtime load balancer is not supported: one instance per runtime is run",
        ));
    }
    for (j, u) in r.registries.iter().enumerate() {
        if let Err(e) = crate::bundle::registry::check_url(u) {
            p.push(Problem::error(
                format!("runtime.registries[{j}]"),
                format!("'{u}': {e}"),
            ));
        }
    }
    parsed.download_timeout = check_duration_range(
        p,
        "runtime.download_timeout",
        &r.download_timeout,
        DOWNLOAD_TIMEOUT_RANGE,
        "1m",
    );
    if !r.sentry_addresses.is_empty() {
        p.push(Problem::warning(
            "runtime.sentry_addresses",
            "sentry nodes are not supported: ignored",
        ));
    }
}

/// Reads `genesis.file` once: `{}` (runtime hosting only) or a genesis document.
fn genesis_file(path: &str) -> Result<GenesisFile, String> {
    if path.is_empty() {
        return Err("missing genesis file path".into());
    }
    let bytes =
        crate::system::files::read_bounded(Path::new(path), crate::system::files::GENESIS_LIMIT)
            .map_err(|e| format!("cannot read genesis file {e}"))?;
    let v: serde_json::Value = serde_json::from_slice(&bytes)
        .map_err(|e| format!("genesis file '{path}' is not valid JSON: {e}"))?;
    // `{}` runs the node as a runtime host only; anything else must be a genesis document.
    if v.as_object().is_some_and(|o| o.is_empty()) {
        return Ok(GenesisFile::Empty);
    }
    crate::consensus::genesis::Genesis::from_json(&bytes)
        .map(|g| GenesisFile::Document(Box::new(g)))
        .map_err(|e| format!("genesis file '{path}': {e}"))
}

/// The entity ID in the entity descriptor at `path` (its `id`).
fn entity_file_id(path: &str) -> Result<crate::consensus::crypto::PublicKey, String> {
    let text = crate::system::files::read_bounded_to_string(
        Path::new(path),
        crate::system::files::ENTITY_LIMIT,
    )
    .map_err(|e| format!("entity descriptor {e}"))?;
    let v: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| format!("entity descriptor '{path}': {e}"))?;
    v["id"]
        .as_str()
        .ok_or_else(|| format!("entity descriptor '{path}': no `id`"))?
        .parse()
        .map_err(|e| format!("entity descriptor '{path}': {e}"))
}

fn check_network(c: &Config, p: &mut Vec<Problem>, parsed: &mut Parsed) {
    match genesis_file(&c.genesis.file) {
        Ok(g) => parsed.genesis = Some(g),
        Err(e) => p.push(Problem::error("genesis.file", e)),
    }
    let reg = &c.registration;
    if !reg.entity.is_empty() && !reg.entity_id.is_empty() {
        p.push(Problem::error(
            "registration",
            "only one of `entity` and `entity_id` must be set",
        ));
    }
    if !reg.entity_id.is_empty() {
        match reg.entity_id.parse() {
            Ok(id) => parsed.entity = Some(Some(id)),
            Err(_) => p.push(Problem::error("registration.entity_id", format!("malformed entity ID '{}': expected a base64 Ed25519 public key (44 characters)", reg.entity_id))),
        }
    } else if reg.entity.is_empty() {
        parsed.entity = Some(None);
    }
    if !reg.entity.is_empty() {
        if !Path::new(&reg.entity).is_file() {
            p.push(Problem::error(
                "registration.entity",
                format!("entity descriptor '{}' does not exist", reg.entity),
            ));
        } else if reg.entity_id.is_empty() {
            match entity_file_id(&reg.entity) {
                Ok(id) => parsed.entity = Some(Some(id)),
                Err(e) => p.push(Problem::error("registration.entity", e)),
            }
        }
    }
    for (i, a) in c.p2p.registration.addresses.iter().enumerate() {
        if a.parse::<std::net::SocketAddr>().is_err() {
            p.push(Problem::error(
                format!("p2p.registration.addresses[{i}]"),
                format!("malformed ip address '{a}': expected IP:port with a literal IP"),
            ));
        }
    }
    let mut seeds = Vec::new();
    for (i, s) in c.p2p.seeds.iter().enumerate() {
        match crate::p2p::parse_seed(s) {
            Ok(seed) => seeds.push(seed),
            Err(e) => p.push(Problem::error(format!("p2p.seeds[{i}]"), e.to_string())),
        }
    }
    parsed.seeds = Some(seeds);
}

fn check_unsupported(c: &Config, p: &mut Vec<Problem>, parsed: &mut Parsed) {
    if !c.ias.proxy_addresses.is_empty() || c.ias.debug_skip_verify {
        p.push(Problem::warning(
            "ias.proxy_addresses",
            "IAS is not used: paratime-node runs no SGX ParaTimes, so the IAS proxy is ignored",
        ));
    }
    if !c.pprof.bind_address.is_empty() {
        p.push(Problem::warning(
            "pprof.bind_address",
            "pprof is not supported: ignored",
        ));
    }
    check_metrics(c, p, parsed);
    if c.keymanager.is_some() {
        p.push(Problem::warning(
            "keymanager",
            "key managers are not supported: ignored",
        ));
    }
    if c.sentry.is_some() {
        p.push(Problem::warning(
            "sentry",
            "sentry nodes are not supported: ignored",
        ));
    }
    check_ignored(c, p);
    match consensus_listen(c) {
        Ok(a) => parsed.consensus_listen = Some(a),
        Err(e) => p.push(Problem::error("consensus.listen_address", e)),
    }
    match consensus_peers(c) {
        Ok(a) => parsed.consensus_peers = Some(a),
        Err(e) => p.push(Problem::error("consensus.p2p.persistent_peers", e)),
    }
    if !c.consensus.external_address.is_empty() {
        if let Err(e) = tcp_addr(&c.consensus.external_address) {
            p.push(Problem::error("consensus.external_address", e));
        }
    }
    let other_p2p_keys = c
        .consensus
        .p2p
        .as_ref()
        .and_then(|v| v.as_mapping())
        .is_some_and(|m| m.keys().any(|k| k.as_str() != Some("persistent_peers")));
    let cometbft = [
        ("consensus.p2p", other_p2p_keys),
        ("consensus.checkpointer", c.consensus.checkpointer.is_some()),
        ("consensus.state_sync", c.consensus.state_sync.is_some()),
        ("consensus.light_client", c.consensus.light_client.is_some()),
        ("consensus.providers", c.consensus.providers.is_some()),
        (
            "consensus.supplementary_sanity",
            c.consensus.supplementary_sanity.is_some(),
        ),
        ("consensus.debug", c.consensus.debug.is_some()),
    ];
    for (key, set) in cometbft {
        if set {
            p.push(Problem::warning(key, "CometBFT setting accepted for oasis-node compatibility; paratime-node does not run CometBFT, so it is ignored"));
        }
    }
    if c.common.unsafe_disable_self_confinement {
        p.push(Problem::warning("common.unsafe_disable_self_confinement", "UNSAFE: the node will not confine itself (no Landlock, capabilities kept, no no_new_privs)"));
    }
    if c.common.debug.allow_root {
        p.push(Problem::warning(
            "common.debug.allow_root",
            "only takes effect with the --unsafe-debug flag",
        ));
    }
}

/// oasis-node keys this node accepts but does not act on: one warning each, naming the key and
/// what the operator must do instead, so that none is ignored silently.
fn check_ignored(c: &Config, p: &mut Vec<Problem>) {
    let r = &c.runtime;
    let mut ignored: Vec<(&str, bool, String)> = vec![
        (
            "consensus.min_gas_price",
            c.consensus.min_gas_price != 0,
            "consensus transactions pay no gas on this network: ignored".into(),
        ),
        (
            "consensus.submission",
            c.consensus.submission.is_some(),
            "the node's own consensus transactions (registrations, commitments) pay no fee on this \
             network: ignored"
                .into(),
        ),
        (
            "consensus.log_debug",
            c.consensus.log_debug,
            "CometBFT debug logging: no CometBFT here; raise `common.log.level` of `consensus` instead".into(),
        ),
        (
            "consensus.sentry_upstream_addresses",
            !c.consensus.sentry_upstream_addresses.is_empty(),
            "sentry nodes are not supported: ignored".into(),
        ),
        (
            "runtime.tx_pool",
            r.tx_pool.is_some(),
            "the transaction pool's limits are built in: ignored".into(),
        ),
        (
            "runtime.indexer",
            r.indexer.is_some(),
            "recent transactions are always indexed, in memory (the newest 131,072 per runtime, within the pruning window): ignored".into(),
        ),
        (
            "runtime.sentry_addresses",
            !r.sentry_addresses.is_empty(),
            "sentry nodes are not supported: ignored".into(),
        ),
        (
            "runtime.runtimes[].components",
            r.runtimes.iter().any(|e| !e.components.is_empty()),
            "every bundle's one RONL component runs; ROFL components are not supported: ignored".into(),
        ),
    ];
    for (key, v) in [
        ("p2p.discovery", &c.p2p.discovery),
        ("p2p.gossipsub", &c.p2p.gossipsub),
        ("p2p.peer_manager", &c.p2p.peer_manager),
        ("p2p.connection_manager", &c.p2p.connection_manager),
        ("p2p.connection_gater", &c.p2p.connection_gater),
    ] {
        ignored.push((
            key,
            v.is_some(),
            "libp2p tuning: this node uses its built-in values, ignored".into(),
        ));
    }
    for (key, set, why) in ignored {
        if set {
            p.push(Problem::warning(key, why));
        }
    }
}

/// The resource limits of each runtime (`runtime.limits`), or every key that is wrong.
pub fn runtime_limits(c: &Config) -> Result<crate::host::limits::Limits, Vec<Problem>> {
    let l = &c.runtime.limits;
    let mut p = Vec::new();
    let mut size = |key: &str, v: &str, min: u64| match parse_size(v) {
        Ok(n) if n >= min => n,
        Ok(n) => {
            p.push(Problem::error(
                key,
                format!("{n} bytes is too small: at least {min} (e.g. 256mb)"),
            ));
            0
        }
        Err(e) => {
            p.push(Problem::error(key, e));
            0
        }
    };
    let limits = crate::host::limits::Limits {
        memory: size("runtime.limits.memory", &l.memory, 64 << 20),
        file_size: size("runtime.limits.file_size", &l.file_size, 1 << 20),
        tmpfs_size: size("runtime.limits.tmpfs_size", &l.tmpfs_size, 1 << 20),
        pids: l.pids,
        nice: l.nice,
        cpu_millis: (l.cpu * 1000.0).round() as u32,
    };
    if !(l.cpu.is_finite() && (0.01..=1024.0).contains(&l.cpu)) {
        p.push(Problem::error(
            "runtime.limits.cpu",
            format!(
                "{} is out of range: 0.01 to 1024 CPUs (e.g. 0.5 or 2)",
                l.cpu
            ),
        ));
    }
    if !(8..=1_000_000).contains(&l.pids) {
        p.push(Problem::error(
            "runtime.limits.pids",
            format!("{} is out of range: 8 to 1000000", l.pids),
        ));
    }
    if l.nice > 19 {
        p.push(Problem::error(
            "runtime.limits.nice",
            format!(
                "{} is out of range: 0 (normal) to 19 (lowest priority)",
                l.nice
            ),
        ));
    }
    let log = &c.runtime.log;
    if log.max_log_size < 1024 {
        p.push(Problem::error(
            "runtime.log.max_log_size",
            format!("{} is too small: at least 1024 bytes", log.max_log_size),
        ));
    }
    if log.max_lines_per_second == 0 || log.burst == 0 {
        p.push(Problem::error(
            if log.burst == 0 {
                "runtime.log.burst"
            } else {
                "runtime.log.max_lines_per_second"
            },
            "must be at least 1 (runtime output is otherwise never logged)",
        ));
    }
    if p.is_empty() {
        Ok(limits)
    } else {
        Err(p)
    }
}

/// Every rule violation and warning of a parsed config.
pub(super) fn validate(c: &Config) -> (Vec<Problem>, Parsed) {
    let mut p = Vec::new();
    let mut parsed = Parsed::default();
    check_mode(c, &mut p);
    check_common(c, &mut p);
    check_runtime(c, &mut p, &mut parsed);
    match runtime_limits(c) {
        Ok(l) => parsed.limits = Some(l),
        Err(e) => p.extend(e),
    }
    check_network(c, &mut p, &mut parsed);
    check_unsupported(c, &mut p, &mut parsed);
    (p, parsed)
}

/// `consensus.listen_address` (`tcp://IP:PORT`) as a socket address.
pub fn consensus_listen(c: &Config) -> Result<std::net::SocketAddr, String> {
    tcp_addr(&c.consensus.listen_address)
}

/// `metrics.address` when unset (oasis's default).
pub(crate) const DEFAULT_METRICS_ADDRESS: &str = "127.0.0.1:3000";

/// `metrics.*`: oasis's modes; `pull` serves Prometheus on `metrics.address`.
fn check_metrics(c: &Config, p: &mut Vec<Problem>, parsed: &mut Parsed) {
    let m = &c.metrics;
    let pull = match m.mode.as_str() {
        "" | "none" => false,
        "pull" => true,
        "push" => {
            p.push(Problem::error(
                "metrics.mode",
                "push (to a Pushgateway) is not supported: use 'pull' and let Prometheus scrape metrics.address",
            ));
            parsed.metrics = Some(None);
            return;
        }
        other => {
            p.push(Problem::error(
                "metrics.mode",
                format!("unknown metrics mode: '{other}' (none, pull)"),
            ));
            parsed.metrics = Some(None);
            return;
        }
    };
    for (key, set) in [
        ("metrics.job_name", !m.job_name.is_empty()),
        ("metrics.labels", !m.labels.is_empty()),
        ("metrics.interval", !m.interval.is_empty()),
    ] {
        if set {
            p.push(Problem::warning(
                key,
                if key == "metrics.interval" {
                    "ignored: figures are read at each scrape (set the interval in Prometheus's scrape_interval)"
                } else {
                    "ignored: used by push mode only"
                },
            ));
        }
    }
    if !pull {
        if !m.address.is_empty() {
            p.push(Problem::warning(
                "metrics.address",
                "ignored: metrics.mode is not 'pull'",
            ));
        }
        parsed.metrics = Some(None);
        return;
    }
    let a = if m.address.is_empty() {
        DEFAULT_METRICS_ADDRESS
    } else {
        m.address.as_str()
    };
    // Go's ":3000" (every interface) is accepted as oasis-node accepts it.
    let full = match a.strip_prefix(':') {
        Some(port) => format!("0.0.0.0:{port}"),
        None => a.to_string(),
    };
    match full.parse::<std::net::SocketAddr>() {
        Ok(addr) if addr.port() != 0 => parsed.metrics = Some(Some(addr)),
        Ok(_) => p.push(Problem::error(
            "metrics.address",
            format!("'{a}': port 0 is not a port Prometheus can be told to scrape: give one (e.g. 127.0.0.1:3000)"),
        )),
        Err(_) => p.push(Problem::error(
            "metrics.address",
            format!("'{a}' is not IP:PORT with an IP literal (e.g. 127.0.0.1:3000, or 0.0.0.0:3000 for every interface)"),
        )),
    }
}

fn tcp_addr(a: &str) -> Result<std::net::SocketAddr, String> {
    let rest = a
        .strip_prefix("tcp://")
        .ok_or_else(|| format!("'{a}' must start with tcp:// (e.g. tcp://0.0.0.0:26656)"))?;
    rest.parse().map_err(|_| {
        format!("'{a}' is not tcp://IP:PORT with an IP literal (e.g. tcp://0.0.0.0:26656)")
    })
}

/// The consensus address a validator registers: `consensus.external_address`, else the listen
/// address, with an unspecified IP (0.0.0.0, ::) replaced by the IP of the first advertised P2P
/// address (`IP:port`), as other validators must dial it.
pub fn consensus_external(
    c: &Config,
    p2p_addresses: &[String],
) -> Result<std::net::SocketAddr, String> {
    if !c.consensus.external_address.is_empty() {
        return tcp_addr(&c.consensus.external_address);
    }
    let mut a = consensus_listen(c)?;
    if a.ip().is_unspecified() {
        let ip = p2p_addresses
            .iter()
            .find_map(|x| x.parse::<std::net::SocketAddr>().ok())
            .map(|x| x.ip())
            .ok_or_else(|| {
                format!(
                    "consensus.listen_address '{}' has no specific IP and no P2P address says which to advertise: set consensus.external_address",
                    c.consensus.listen_address
                )
            })?;
        a.set_ip(ip);
    }
    Ok(a)
}

/// `consensus.p2p.persistent_peers`: a list (or CometBFT's comma-separated string) of
/// `[ID@]IP:PORT`, the consensus ports of the validators to stay connected to.
pub fn consensus_peers(c: &Config) -> Result<Vec<std::net::SocketAddr>, String> {
    let Some(v) = c
        .consensus
        .p2p
        .as_ref()
        .and_then(|v| v.get("persistent_peers"))
    else {
        return Ok(Vec::new());
    };
    let items: Vec<String> = match v {
        serde_yaml_ng::Value::Sequence(s) => s
            .iter()
            .map(|x| {
                x.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| "every entry must be a string ID@IP:PORT".to_string())
            })
            .collect::<Result<_, _>>()?,
        serde_yaml_ng::Value::String(s) => s
            .split(',')
            .map(|x| x.trim().to_string())
            .filter(|x| !x.is_empty())
            .collect(),
        serde_yaml_ng::Value::Null => Vec::new(),
        _ => return Err("must be a list of ID@IP:PORT".into()),
    };
    if items.len() > 200 {
        return Err(format!("{} peers listed, at most 200", items.len()));
    }
    items
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let addr = s.rsplit_once('@').map_or(s.as_str(), |(_, a)| a);
            addr.parse().map_err(|_| {
                let shown: String = s.chars().take(80).collect();
                format!("[{i}] '{shown}' is not [ID@]IP:PORT with an IP literal")
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ping_problems(interval: &str, timeout: &str) -> Vec<String> {
        let mut c = Config::default();
        c.runtime.ping_interval = interval.into();
        c.runtime.ping_timeout = timeout.into();
        validate(&c)
            .0
            .into_iter()
            .filter(|p| p.key.starts_with("runtime.ping_"))
            .map(|p| p.to_string())
            .collect()
    }

    /// Keys oasis-node acts on and this node does not are never silent: one warning each.
    #[test]
    fn accepted_but_ignored_keys_are_each_named() {
        let mut c = Config::default();
        c.consensus.halt_height = 1234;
        c.consensus.min_gas_price = 1;
        c.runtime.tx_pool = Some(serde_yaml_ng::Value::Null);
        c.p2p.gossipsub = Some(serde_yaml_ng::Value::Null);
        let (p, _) = validate(&c);
        let warned = |key: &str| {
            p.iter()
                .filter(|p| p.key == key && p.severity == super::super::Severity::Warning)
                .map(|p| p.message.clone())
                .collect::<Vec<_>>()
        };
        // The halt is acted on now: no warning.
        assert!(warned("consensus.halt_height").is_empty(), "{p:?}");
        for key in [
            "consensus.min_gas_price",
            "runtime.tx_pool",
            "p2p.gossipsub",
        ] {
            assert_eq!(warned(key).len(), 1, "{key}: {p:?}");
        }
        // Defaults warn about nothing of the kind.
        let (p, _) = validate(&Config::default());
        assert!(!p.iter().any(|p| p.message.contains("ignored")), "{p:?}");
    }

    #[test]
    fn one_halt_at_most_with_a_stop_delay_in_range() {
        let mut c = Config::default();
        c.consensus.halt_epoch = 3;
        c.consensus.upgrade_stop_delay = "2s".into();
        let mut p = Vec::new();
        assert_eq!(
            check_halt(&c, &mut p),
            Some(Some(Halt {
                height: 0,
                epoch: 3,
                stop_delay: Duration::from_secs(2)
            }))
        );
        c.consensus.halt_height = 10;
        assert_eq!(check_halt(&c, &mut p), None);
        assert!(
            p[0].to_string()
                .contains("only one of {halt_epoch, halt_height} can be set"),
            "{p:?}"
        );
        assert_eq!(check_halt(&Config::default(), &mut Vec::new()), Some(None));
        let mut c = Config::default();
        c.consensus.upgrade_stop_delay = "2h".into();
        let mut p = Vec::new();
        assert_eq!(check_halt(&c, &mut p), None);
        assert!(
            p[0].to_string()
                .starts_with("consensus.upgrade_stop_delay: '2h' is out of range"),
            "{p:?}"
        );
    }

    #[test]
    fn zero_ping_interval_or_timeout_is_refused_with_the_range() {
        assert_eq!(
            ping_problems("0s", "5s"),
            vec!["runtime.ping_interval: '0s' is out of range: must be between 100ms and 1h (default 15s)"]
        );
        assert_eq!(
            ping_problems("15s", "0s"),
            vec!["runtime.ping_timeout: '0s' is out of range: must be between 100ms and 10m (default 5s)"]
        );
        assert_eq!(ping_problems("1000h", "1ms").len(), 2);
        assert!(ping_problems("15s", "5s").is_empty());
        assert!(ping_problems("500ms", "500ms").is_empty());
        // A timeout longer than the interval only delays the next ping (pings are sequential).
        assert!(ping_problems("1s", "30s").is_empty());
        assert!(ping_problems("soon", "5s")[0].contains("invalid duration 'soon'"));
    }

    #[test]
    fn the_cpu_quota_is_in_cpus_and_bounded() {
        let with_cpu = |cpu: f64| {
            let mut c = Config::default();
            c.runtime.limits.cpu = cpu;
            runtime_limits(&c)
        };
        assert_eq!(with_cpu(1.0).expect("default").cpu_millis, 1000);
        assert_eq!(with_cpu(0.25).expect("a quarter").cpu_millis, 250);
        assert_eq!(with_cpu(16.0).expect("sixteen").cpu_millis, 16_000);
        for bad in [0.0, -1.0, 0.001, 2000.0, f64::NAN, f64::INFINITY] {
            let problems = with_cpu(bad).expect_err("out of range");
            assert_eq!(problems.len(), 1, "{bad}: {problems:?}");
            assert_eq!(problems[0].key, "runtime.limits.cpu");
            assert!(
                problems[0].message.contains("0.01 to 1024 CPUs"),
                "{}",
                problems[0].message
            );
        }
    }

    /// `metrics.*` as oasis-node reads them: none/pull/push, an IP:PORT address (default
    /// 127.0.0.1:3000, Go's ":PORT" for every interface); push and unknown modes are refused
    /// by name, push-only keys warned about.
    #[test]
    fn metrics_modes_and_addresses() {
        let run = |mode: &str, address: &str, job: &str| {
            let mut c = Config::default();
            c.metrics.mode = mode.into();
            c.metrics.address = address.into();
            c.metrics.job_name = job.into();
            let (p, parsed) = validate(&c);
            let p: Vec<String> = p
                .into_iter()
                .filter(|p| p.key.starts_with("metrics."))
                .map(|p| p.to_string())
                .collect();
            (p, parsed.metrics)
        };
        let ok = |addr: &str| Some(Some(addr.parse::<std::net::SocketAddr>().expect("test")));
        assert_eq!(run("", "", ""), (vec![], Some(None)));
        assert_eq!(run("none", "", ""), (vec![], Some(None)));
        assert_eq!(run("pull", "", ""), (vec![], ok("127.0.0.1:3000")));
        assert_eq!(run("pull", ":9100", ""), (vec![], ok("0.0.0.0:9100")));
        assert_eq!(run("pull", "[::1]:9100", ""), (vec![], ok("[::1]:9100")));
        for (mode, addr, says) in [
            (
                "push",
                "http://gw:9091",
                "push (to a Pushgateway) is not supported",
            ),
            ("PULL", "", "unknown metrics mode: 'PULL'"),
            ("pull", "localhost:3000", "'localhost:3000' is not IP:PORT"),
            ("pull", "127.0.0.1", "'127.0.0.1' is not IP:PORT"),
            ("pull", "127.0.0.1:0", "port 0"),
            ("pull", "127.0.0.1:70000", "is not IP:PORT"),
        ] {
            let (p, _) = run(mode, addr, "");
            assert!(p.len() == 1 && p[0].contains(says), "{mode} {addr}: {p:?}");
        }
        let (p, parsed) = run("pull", "", "job");
        assert!(p.len() == 1 && p[0].contains("metrics.job_name"), "{p:?}");
        assert_eq!(parsed, ok("127.0.0.1:3000"));
        let (p, _) = run("none", "127.0.0.1:3000", "");
        assert!(p.len() == 1 && p[0].contains("not 'pull'"), "{p:?}");
    }
}
