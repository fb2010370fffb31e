//! The genesis document (JSON, read by every node) and the chain context derived from it.

use crate::address::Address;
use crate::crypto::PublicKey;
use crate::runtime_id::RuntimeId;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Executor committee parameters of a ParaTime.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExecutorParams {
    /// Workers per committee.
    pub group_size: u16,
    /// Backup workers per committee.
    #[serde(default)]
    pub group_backup_size: u16,
    /// Workers that may be missing without a discrepancy.
    #[serde(default)]
    pub allowed_stragglers: u16,
    /// Round timeout, in consensus blocks.
    pub round_timeout: u64,
}

/// Transaction scheduling parameters of a ParaTime.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TxnSchedulerParams {
    /// Transactions per batch.
    pub max_batch_size: u64,
    /// Time to wait for a batch to fill, in milliseconds.
    pub batch_flush_timeout_ms: u64,
    /// A worker of scheduler rank k > 0 proposes a batch for a round that has none after
    /// k × this many milliseconds (backup schedulers).
    #[serde(default = "default_propose_batch_timeout_ms")]
    pub propose_batch_timeout_ms: u64,
}

fn default_propose_batch_timeout_ms() -> u64 {
    2000
}

/// A ParaTime registered at genesis.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuntimeDescriptor {
    /// Runtime ID.
    pub id: RuntimeId,
    /// `compute`.
    pub kind: String,
    /// Executor committee.
    pub executor: ExecutorParams,
    /// Scheduling.
    pub txn_scheduler: TxnSchedulerParams,
    /// Extra per-runtime stake thresholds (`node-compute`).
    #[serde(default)]
    pub staking_thresholds: RuntimeThresholds,
    /// The ParaTime's versions and the bundles that carry them (oasis's `deployments`): what a
    /// node that follows this runtime by id downloads from its bundle registries. Empty: nodes
    /// must install the bundle themselves (`runtime.paths`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deployments: Vec<Deployment>,
}

/// One version of a ParaTime (oasis `VersionInfo`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Deployment {
    /// The version its bundle's RONL component reports.
    pub version: paratime_sdk::Version,
    /// The first epoch this version is the active one.
    pub valid_from: u64,
    /// The bundle's manifest hash (`bundle inspect`; 64 hex digits).
    pub bundle_checksum: BundleChecksum,
}

/// A bundle's manifest hash: 64 hex digits in JSON (as `bundle inspect` prints it and as
/// registries name their metadata files), 32 bytes in CBOR.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BundleChecksum(pub [u8; 32]);

impl std::fmt::Display for BundleChecksum {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl std::fmt::Debug for BundleChecksum {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "BundleChecksum({self})")
    }
}

impl std::str::FromStr for BundleChecksum {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let mut b = [0u8; 32];
        hex::decode_to_slice(s.trim(), &mut b).map_err(|_| {
            format!("bundle_checksum '{s}' is not 64 hex digits (a manifest hash, as `paratime-node bundle inspect` prints it)")
        })?;
        Ok(Self(b))
    }
}

crate::crypto::text_or_bytes_serde!(BundleChecksum, 32);

impl RuntimeDescriptor {
    /// The deployment active at `epoch`: among those valid from `epoch` or earlier, the one
    /// valid from the latest epoch (oasis `ActiveDeployment`).
    pub fn active_deployment(&self, epoch: u64) -> Option<&Deployment> {
        self.deployments
            .iter()
            .filter(|d| d.valid_from <= epoch)
            .max_by_key(|d| d.valid_from)
    }

    /// The bundles a node needs at `epoch`, newest version first: every future deployment, then
    /// the active one (oasis's download queue).
    pub fn wanted_deployments(&self, epoch: u64) -> Vec<&Deployment> {
        let mut ds: Vec<&Deployment> = self.deployments.iter().collect();
        ds.sort_by_key(|d| std::cmp::Reverse(d.version));
        let mut out = Vec::new();
        for d in ds {
            out.push(d);
            if d.valid_from <= epoch {
                break;
            }
        }
        out
    }
}

/// Stake thresholds by kind (oasis `staking.params.thresholds`). A kind this node does not know
/// (a typo such as `node_compute`) is a load error, never a silent zero.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Thresholds {
    /// Held by every registered entity.
    #[serde(default)]
    pub entity: u64,
    /// Per registered node with the compute role, per runtime it serves.
    #[serde(default, rename = "node-compute")]
    pub node_compute: u64,
    /// Per registered node with the validator role.
    #[serde(default, rename = "node-validator")]
    pub node_validator: u64,
}

/// Extra per-runtime thresholds.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuntimeThresholds {
    /// Added to `node-compute` for nodes serving this runtime.
    #[serde(default, rename = "node-compute")]
    pub node_compute: u64,
}

/// Staking parameters and initial balances.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StakingGenesis {
    /// Stake thresholds.
    pub thresholds: Thresholds,
    /// Epochs a reclaimed escrow debonds for.
    pub debonding_interval: u64,
    /// General balances.
    #[serde(default)]
    pub accounts: BTreeMap<Address, u64>,
    /// Escrow (stake) balances.
    #[serde(default)]
    pub escrow: BTreeMap<Address, u64>,
}

/// A validator at genesis. Its voting power comes from its entity's escrow at genesis (split
/// evenly between the entity's genesis validators); from the first epoch on, validators are
/// elected from registered nodes with the validator role (see [`crate::validators`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenesisValidator {
    /// Consensus public key (signs proposals and votes).
    pub consensus_id: PublicKey,
    /// The entity whose stake backs it; must be registered at genesis.
    pub entity_id: PublicKey,
}

/// Registry parameters.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegistryGenesis {
    /// A node descriptor may expire at most this many epochs ahead.
    pub max_node_expiration: u64,
    /// Registered ParaTimes.
    #[serde(default)]
    pub runtimes: Vec<RuntimeDescriptor>,
    /// Entities registered at genesis (signed descriptors).
    #[serde(default)]
    pub entities: Vec<crate::crypto::Signed>,
}

/// The genesis document.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Genesis {
    /// Chain name.
    pub chain_id: String,
    /// Genesis time (RFC 3339).
    pub genesis_time: String,
    /// Blocks per epoch.
    pub epoch_interval: u64,
    /// Target time between blocks, milliseconds.
    pub block_interval_ms: u64,
    /// Validators of the first epoch.
    pub validators: Vec<GenesisValidator>,
    /// Staking.
    pub staking: StakingGenesis,
    /// Registry.
    pub registry: RegistryGenesis,
    /// How validators spread proposals and votes (network-wide: nodes using the other one do
    /// not hear them). Absent means gossipsub, and a genesis with the default is written (and
    /// hashed into the chain context) without it.
    #[serde(default, skip_serializing_if = "ConsensusPubSub::is_default")]
    pub consensus_pubsub: ConsensusPubSub,
}

/// How consensus messages (proposals, votes) travel between validators.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ConsensusPubSub {
    /// libp2p gossipsub: messages are relayed, so a validator needs a path to every other one,
    /// not a connection (sentry nodes work). Each message carries a libp2p signature that
    /// every receiver checks, on top of the consensus signature.
    #[default]
    Gossipsub,
    /// Each message is sent directly to every connected peer and never relayed: every
    /// validator must be connected to every other one (no sentry nodes). About a quarter less
    /// CPU per block on each validator.
    Broadcast,
}

impl ConsensusPubSub {
    /// Whether this is the default (gossipsub).
    pub fn is_default(&self) -> bool {
        *self == Self::Gossipsub
    }

    /// The name in genesis.json and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Gossipsub => "gossipsub",
            Self::Broadcast => "broadcast",
        }
    }
}

impl std::str::FromStr for ConsensusPubSub {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "gossipsub" => Ok(Self::Gossipsub),
            "broadcast" => Ok(Self::Broadcast),
            other => Err(format!(
                "consensus pub-sub '{other}': expected 'gossipsub' or 'broadcast'"
            )),
        }
    }
}

/// Most deployments a runtime may list (oasis allows `max(2, max_runtime_deployments)`).
pub const MAX_DEPLOYMENTS: usize = 8;

/// oasis's registry rules: versions strictly increase with `valid_from`, no version or epoch
/// twice, at most one deployment in the future of any other (so at most one pending upgrade).
fn check_deployments(rt: &RuntimeDescriptor) -> Result<(), String> {
    let ds = &rt.deployments;
    if ds.len() > MAX_DEPLOYMENTS {
        return Err(format!(
            "runtime {}: {} deployments listed, at most {MAX_DEPLOYMENTS} allowed",
            rt.id,
            ds.len()
        ));
    }
    let mut sorted: Vec<&Deployment> = ds.iter().collect();
    sorted.sort_by_key(|d| d.valid_from);
    for w in sorted.windows(2) {
        let (a, b) = (w[0], w[1]);
        if a.valid_from == b.valid_from {
            return Err(format!(
                "runtime {}: two deployments are valid from epoch {}",
                rt.id, a.valid_from
            ));
        }
        if b.version <= a.version {
            return Err(format!(
                "runtime {}: deployment {} (valid from epoch {}) is not newer than {} (valid from epoch {}): versions must increase with valid_from",
                rt.id, b.version, b.valid_from, a.version, a.valid_from
            ));
        }
    }
    let mut hashes = std::collections::BTreeSet::new();
    for d in ds {
        if !hashes.insert(d.bundle_checksum) {
            return Err(format!(
                "runtime {}: bundle_checksum {} is listed twice",
                rt.id, d.bundle_checksum
            ));
        }
    }
    Ok(())
}

/// Why a genesis document is refused.
#[derive(Debug, thiserror::Error)]
pub enum GenesisError {
    /// Not JSON of the genesis shape (names the key or value).
    #[error("{0}")]
    Parse(String),
    /// Well-formed but inconsistent.
    #[error("{0}")]
    Invalid(String),
}

/// The chain ID of an oasis-node genesis document (its top level has `height`, `chain_id` and
/// oasis's module sections), without parsing more than the top level's keys.
fn oasis_chain_id(bytes: &[u8]) -> Option<String> {
    #[derive(Deserialize)]
    struct Top {
        height: Option<serde_json::Value>,
        chain_id: Option<String>,
        beacon: Option<serde_json::Value>,
        scheduler: Option<serde_json::Value>,
        governance: Option<serde_json::Value>,
    }
    let t: Top = serde_json::from_slice(bytes).ok()?;
    let oasis = t.height.is_some()
        && (t.beacon.is_some() || t.scheduler.is_some() || t.governance.is_some());
    oasis.then(|| {
        t.chain_id
            .unwrap_or_default()
            .chars()
            .filter(|c| !c.is_control())
            .take(64)
            .collect()
    })
}

impl Genesis {
    /// Parses and checks a genesis document (JSON).
    pub fn from_json(bytes: &[u8]) -> Result<Self, GenesisError> {
        let g: Self = serde_json::from_slice(bytes).map_err(|e| {
            GenesisError::Parse(match oasis_chain_id(bytes) {
                Some(chain) => format!(
                    "this is an Oasis Network genesis document (chain_id '{chain}'): paratime-node \
                     runs its own network and cannot join the Oasis Mainnet or Testnet; use this \
                     network's genesis.json (`paratime-node genesis init` creates one)"
                ),
                None => e.to_string(),
            })
        })?;
        g.check().map_err(GenesisError::Invalid)?;
        Ok(g)
    }

    /// Sanity checks.
    pub fn check(&self) -> Result<(), String> {
        if self.chain_id.is_empty() {
            return Err("chain_id is empty".into());
        }
        if self.epoch_interval == 0 || self.block_interval_ms == 0 {
            return Err("epoch_interval and block_interval_ms must be positive".into());
        }
        if humantime::parse_rfc3339(&self.genesis_time).is_err() {
            return Err(format!(
                "genesis_time '{}' is not RFC 3339",
                self.genesis_time
            ));
        }
        // Every later sum of balances fits in a u64 because the total supply does.
        let mut supply: u64 = 0;
        for (a, v) in self.staking.accounts.iter().chain(&self.staking.escrow) {
            supply = supply.checked_add(*v).ok_or_else(|| {
                format!("staking: the total supply overflows a u64 (at account {a})")
            })?;
        }
        let mut entities = BTreeMap::new();
        for (i, e) in self.registry.entities.iter().enumerate() {
            let entity: crate::state::Entity = e
                .open(crate::crypto::CONTEXT_REGISTER_ENTITY)
                .map_err(|err| format!("registry.entities[{i}]: {err}"))?;
            if entity.id != e.signature.public_key {
                return Err(format!(
                    "registry.entities[{i}]: not signed by the entity itself"
                ));
            }
            entities.insert(entity.id, entity);
        }
        if self.validators.is_empty() {
            return Err("validators: at least one validator is needed".into());
        }
        if self.validators.len() > crate::validators::MAX_VALIDATORS {
            return Err(format!(
                "validators: {} listed, at most {} allowed",
                self.validators.len(),
                crate::validators::MAX_VALIDATORS
            ));
        }
        let mut seen = std::collections::BTreeSet::new();
        for (i, v) in self.validators.iter().enumerate() {
            if !seen.insert(v.consensus_id) {
                return Err(format!(
                    "validators[{i}]: consensus_id {} is listed twice",
                    v.consensus_id
                ));
            }
            if !entities.contains_key(&v.entity_id) {
                return Err(format!(
                    "validators[{i}]: entity {} is not registered in registry.entities",
                    v.entity_id
                ));
            }
            let escrow = self
                .staking
                .escrow
                .get(&Address::from_public_key(&v.entity_id))
                .copied()
                .unwrap_or(0);
            if escrow == 0 {
                return Err(format!(
                    "validators[{i}]: entity {} has no escrow, so no voting power",
                    v.entity_id
                ));
            }
        }
        for rt in &self.registry.runtimes {
            if rt.executor.group_size == 0 {
                return Err(format!(
                    "runtime {}: executor.group_size must be positive",
                    rt.id
                ));
            }
            check_deployments(rt)?;
        }
        Ok(())
    }

    /// The chain context: hex SHA-512/256 of the canonical CBOR of the document.
    pub fn chain_context(&self) -> String {
        hex::encode(crate::encoding::hash_of(self))
    }

    /// Genesis time in unix milliseconds (0 if unparsable; [`Genesis::check`] refuses that).
    pub fn genesis_time_ms(&self) -> u64 {
        humantime::parse_rfc3339(&self.genesis_time)
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn runtime(deployments: &[(u16, u64, u8)]) -> RuntimeDescriptor {
        let json = serde_json::json!({
            "id": "0000000000000000000000000000000000000000000000000000000000000001",
            "kind": "compute",
            "executor": {"group_size": 1, "round_timeout": 10},
            "txn_scheduler": {"max_batch_size": 10, "batch_flush_timeout_ms": 100},
            "deployments": deployments.iter().map(|(minor, from, h)| serde_json::json!({
                "version": {"major": 1, "minor": minor},
                "valid_from": from,
                "bundle_checksum": hex::encode([*h; 32]),
            })).collect::<Vec<_>>(),
        });
        serde_json::from_value(json).expect("descriptor")
    }

    #[test]
    fn the_active_deployment_is_the_latest_valid_one_and_upgrades_are_wanted_first() {
        let r = runtime(&[(0, 0, 1), (1, 10, 2), (2, 20, 3)]);
        assert_eq!(check_deployments(&r), Ok(()));
        let minor = |d: Option<&Deployment>| d.map(|d| d.version.minor);
        assert_eq!(minor(r.active_deployment(0)), Some(0));
        assert_eq!(minor(r.active_deployment(9)), Some(0));
        assert_eq!(minor(r.active_deployment(10)), Some(1));
        assert_eq!(minor(r.active_deployment(1000)), Some(2));
        let wanted = |e| -> Vec<u16> {
            r.wanted_deployments(e)
                .iter()
                .map(|d| d.version.minor)
                .collect()
        };
        assert_eq!(wanted(0), [2, 1, 0]);
        assert_eq!(wanted(15), [2, 1]);
        assert_eq!(wanted(25), [2]);
        assert_eq!(runtime(&[(0, 5, 1)]).active_deployment(4), None);
        // Checksums are hex in JSON, bytes in CBOR.
        let j = serde_json::to_value(&r).expect("json");
        assert_eq!(
            j["deployments"][0]["bundle_checksum"],
            hex::encode([1u8; 32])
        );
        let back: RuntimeDescriptor =
            crate::encoding::from_cbor(&crate::encoding::canonical_cbor(&r)).expect("cbor");
        assert_eq!(back, r);
    }

    #[test]
    fn deployments_that_break_oasis_rules_are_refused_by_name() {
        let e = check_deployments(&runtime(&[(1, 0, 1), (0, 10, 2)])).expect_err("older");
        assert!(e.contains("versions must increase with valid_from"), "{e}");
        let e = check_deployments(&runtime(&[(0, 0, 1), (1, 0, 2)])).expect_err("same epoch");
        assert!(e.contains("two deployments are valid from epoch 0"), "{e}");
        let e = check_deployments(&runtime(&[(0, 0, 1), (1, 5, 1)])).expect_err("same bundle");
        assert!(e.contains("listed twice"), "{e}");
        let many: Vec<(u16, u64, u8)> = (0..9u8).map(|i| (u16::from(i), u64::from(i), i)).collect();
        let e = check_deployments(&runtime(&many)).expect_err("too many");
        assert!(e.contains("at most 8"), "{e}");
        let bad = serde_json::from_value::<RuntimeDescriptor>(serde_json::json!({
            "id": "0000000000000000000000000000000000000000000000000000000000000001",
            "kind": "compute",
            "executor": {"group_size": 1, "round_timeout": 10},
            "txn_scheduler": {"max_batch_size": 10, "batch_flush_timeout_ms": 100},
            "deployments": [{"version": {}, "valid_from": 0, "bundle_checksum": "xyz"}],
        }))
        .expect_err("not hex");
        assert!(bad.to_string().contains("is not 64 hex digits"), "{bad}");
    }

    /// The top level of the Oasis Mainnet's genesis document (its sections cut short).
    #[test]
    fn an_oasis_mainnet_genesis_is_named_as_such() {
        let doc = br#"{"height": 16817956, "genesis_time": "2023-11-29T10:00:00Z",
            "chain_id": "oasis-3", "registry": {"params": {}}, "roothash": {}, "staking": {},
            "keymanager": {}, "scheduler": {}, "beacon": {}, "governance": {}, "consensus": {},
            "halt_epoch": 18446744073709551615, "extra_data": null}"#;
        let e = Genesis::from_json(doc).expect_err("oasis genesis");
        let e = e.to_string();
        assert!(
            e.contains("Oasis Network genesis document (chain_id 'oasis-3')")
                && e.contains("cannot join the Oasis Mainnet"),
            "{e}"
        );
        // Anything else keeps serde's message, which names the key.
        let e = Genesis::from_json(br#"{"chain_id": "x", "bogus": 1}"#).expect_err("bogus");
        assert!(!e.to_string().contains("Oasis Network"), "{e}");
    }

    /// The default pub-sub is not written, so every genesis made before the field existed keeps
    /// its chain context; broadcast is written and changes it; an unknown value is refused by
    /// name.
    #[test]
    fn consensus_pubsub_defaults_to_gossipsub_without_changing_the_chain_context() {
        let doc = serde_json::json!({
            "chain_id": "x", "genesis_time": "2026-01-01T00:00:00Z", "epoch_interval": 10,
            "block_interval_ms": 200, "validators": [],
            "staking": {"thresholds": {"entity": 0, "node-compute": 0, "node-validator": 0},
                        "debonding_interval": 1, "accounts": {}, "escrow": {}},
            "registry": {"max_node_expiration": 2},
        });
        let bytes = serde_json::to_vec(&doc).expect("json");
        // (Parsed only: a checked genesis needs registered validators.)
        let g: Genesis = serde_json::from_slice(&bytes).expect("genesis");
        assert_eq!(g.consensus_pubsub, ConsensusPubSub::Gossipsub);
        let written = serde_json::to_value(&g).expect("json");
        assert!(written.get("consensus_pubsub").is_none(), "{written}");

        let mut b = doc.clone();
        b["consensus_pubsub"] = "broadcast".into();
        let gb: Genesis = serde_json::from_value(b).expect("genesis");
        assert_eq!(gb.consensus_pubsub, ConsensusPubSub::Broadcast);
        assert_eq!(
            serde_json::to_value(&gb).expect("json")["consensus_pubsub"],
            "broadcast"
        );
        assert_ne!(gb.chain_context(), g.chain_context());
        let mut same = g.clone();
        same.consensus_pubsub = ConsensusPubSub::Gossipsub;
        assert_eq!(same.chain_context(), g.chain_context());

        let mut bad = doc;
        bad["consensus_pubsub"] = "flood".into();
        let e = Genesis::from_json(&serde_json::to_vec(&bad).expect("json"))
            .expect_err("unknown protocol")
            .to_string();
        assert!(e.contains("flood") && e.contains("broadcast"), "{e}");
        assert_eq!(
            "flood".parse::<ConsensusPubSub>().expect_err("parse"),
            "consensus pub-sub 'flood': expected 'gossipsub' or 'broadcast'"
        );
    }
}
