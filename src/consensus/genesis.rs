//! The genesis document (JSON, read by every node) and the chain context derived from it.

use super::address::Address;
use super::crypto::PublicKey;
use crate::bundle::RuntimeId;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

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
    pub staking_thresholds: BTreeMap<String, u64>,
}

/// Staking parameters and initial balances.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StakingGenesis {
    /// Threshold kind (`entity`, `node-compute`, `node-validator`) → amount.
    pub thresholds: BTreeMap<String, u64>,
    /// Epochs a reclaimed escrow debonds for.
    pub debonding_interval: u64,
    /// General balances.
    #[serde(default)]
    pub accounts: BTreeMap<Address, u64>,
    /// Escrow (stake) balances.
    #[serde(default)]
    pub escrow: BTreeMap<Address, u64>,
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
    pub entities: Vec<super::crypto::Signed>,
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
    /// Consensus keys of the validators (v1: exactly one produces blocks).
    pub validators: Vec<PublicKey>,
    /// Staking.
    pub staking: StakingGenesis,
    /// Registry.
    pub registry: RegistryGenesis,
}

impl Genesis {
    /// Loads and checks a genesis file.
    pub fn load(path: &Path) -> Result<Self, String> {
        let bytes = crate::system::files::read_bounded(path, crate::system::files::GENESIS_LIMIT)
            .map_err(|e| format!("genesis file {e}"))?;
        let g: Genesis = serde_json::from_slice(&bytes)
            .map_err(|e| format!("genesis file '{}': {e}", path.display()))?;
        g.check()
            .map_err(|e| format!("genesis file '{}': {e}", path.display()))?;
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
        if self.validators.len() != 1 {
            return Err(format!(
                "the v1 engine needs exactly one validator, found {}",
                self.validators.len()
            ));
        }
        if humantime::parse_rfc3339(&self.genesis_time).is_err() {
            return Err(format!(
                "genesis_time '{}' is not RFC 3339",
                self.genesis_time
            ));
        }
        for (i, e) in self.registry.entities.iter().enumerate() {
            let entity: super::state::Entity = e
                .open(super::crypto::CONTEXT_REGISTER_ENTITY)
                .map_err(|err| format!("registry.entities[{i}]: {err}"))?;
            if entity.id != e.signature.public_key {
                return Err(format!(
                    "registry.entities[{i}]: not signed by the entity itself"
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

    /// A threshold by kind (0 when absent).
    pub fn threshold(&self, kind: &str) -> u64 {
        self.staking.thresholds.get(kind).copied().unwrap_or(0)
    }
}
