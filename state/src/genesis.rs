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
}
