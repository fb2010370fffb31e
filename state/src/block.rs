//! Blocks: a header signed by the validator's consensus key, and the transactions it orders.
//! Followers accept a block only if the validator signed it, it extends their chain and
//! re-executing it reproduces the state root in the header.

use crate::chain_time::Height;
use crate::crypto::{PublicKey, Signed};
use crate::encoding::{hash_of, Hash};
use crate::state::State;
use serde::{Deserialize, Serialize};

/// Why a block does not follow a state: every case is the proposer's fault.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BlockError {
    /// The block's height is not the next one.
    #[error("block {block} does not follow height {committed}")]
    NotNext {
        /// The block's height.
        block: Height,
        /// The state's height.
        committed: Height,
    },
    /// The parent hash is not the last block's.
    #[error("block {0}: parent hash does not match")]
    Parent(Height),
    /// The proposer is not in the validator set.
    #[error("block {block}: proposer {proposer} is not a validator")]
    Proposer {
        /// The block's height.
        block: Height,
        /// Who proposed it.
        proposer: PublicKey,
    },
    /// The transactions do not hash to the header's.
    #[error("block {0}: transactions do not match the header")]
    Transactions(Height),
    /// Re-execution gives another state root or epoch.
    #[error("block {0}: state root mismatch after re-execution")]
    StateRoot(Height),
}

/// A block header.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Header {
    /// Height (1 = first block after genesis).
    pub height: crate::Height,
    /// Hash of the previous header (zero for the first block).
    pub parent_hash: Hash,
    /// Producer's clock, unix milliseconds (informational; not in the state).
    pub time_ms: u64,
    /// Epoch after this block.
    pub epoch: crate::Epoch,
    /// Hash of the ordered transactions.
    pub txs_hash: Hash,
    /// State root after this block.
    pub state_root: Hash,
    /// Validator that produced it.
    pub proposer: PublicKey,
}

/// Outcome of executing one transaction, kept with the block.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TxOutcome {
    /// Hash of the signed transaction.
    pub hash: Hash,
    /// Error, if it failed.
    pub error: Option<crate::state::TxError>,
}

/// Executes `txs` on top of `state` as block `height`; returns the outcomes.
pub fn execute(state: &mut State, height: crate::Height, txs: &[Signed]) -> Vec<TxOutcome> {
    let before = state.clone();
    state.begin_block(height);
    let out = txs
        .iter()
        .map(|t| TxOutcome {
            hash: hash_of(t),
            error: state.apply_tx(t).err(),
        })
        .collect();
    state.height = height;
    state.commit_changes(&before);
    out
}

/// A commit certificate, opaque to everything but the consensus engine that made it (the engine
/// crate verifies it); stored with each committed block.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommitCert {
    /// The engine and its certificate format (`malachite-0.8`).
    pub engine: String,
    /// The engine's encoding of the certificate.
    #[serde(with = "serde_bytes")]
    pub bytes: Vec<u8>,
}

/// A block ordered by BFT consensus: not signed by its proposer (the commit certificate of
/// the validators is its authority), checked by re-execution.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Proposed {
    /// Header.
    pub header: Header,
    /// Ordered transactions.
    pub txs: Vec<Signed>,
}

impl Proposed {
    /// Builds the block after `state` with `txs` (executed on a copy); returns the block, the
    /// state after it and the outcomes.
    pub fn build(
        state: &State,
        txs: Vec<Signed>,
        time_ms: u64,
        proposer: PublicKey,
    ) -> (Self, State, Vec<TxOutcome>) {
        let mut next = state.clone();
        let height = state.height.saturating_add(1);
        let outcomes = execute(&mut next, height, &txs);
        let header = Header {
            height,
            parent_hash: state.last_block_hash,
            time_ms,
            epoch: next.epoch,
            txs_hash: hash_of(&txs),
            state_root: next.root(),
            proposer,
        };
        next.last_block_hash = hash_of(&header);
        (Self { header, txs }, next, outcomes)
    }

    /// The block hash (of the header).
    pub fn hash(&self) -> Hash {
        hash_of(&self.header)
    }

    /// Verifies this block on `state` (height, parent, proposer in the validator set,
    /// transactions, state root by re-execution); returns the state after it.
    pub fn apply(&self, state: &State) -> Result<(State, Vec<TxOutcome>), BlockError> {
        let h = &self.header;
        if h.height != state.height.saturating_add(1) {
            return Err(BlockError::NotNext {
                block: h.height,
                committed: state.height,
            });
        }
        if h.parent_hash != state.last_block_hash {
            return Err(BlockError::Parent(h.height));
        }
        if !state.validators.contains(&h.proposer) {
            return Err(BlockError::Proposer {
                block: h.height,
                proposer: h.proposer,
            });
        }
        if h.txs_hash != hash_of(&self.txs) {
            return Err(BlockError::Transactions(h.height));
        }
        let mut next = state.clone();
        let outcomes = execute(&mut next, h.height, &self.txs);
        if next.epoch != h.epoch || next.root() != h.state_root {
            return Err(BlockError::StateRoot(h.height));
        }
        next.last_block_hash = hash_of(h);
        Ok((next, outcomes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::genesis::{Genesis, RegistryGenesis, StakingGenesis};
    use ed25519_dalek::SigningKey;

    fn genesis(validator: &SigningKey) -> Genesis {
        Genesis {
            chain_id: "t".into(),
            genesis_time: "2026-01-01T00:00:00Z".into(),
            epoch_interval: 3,
            block_interval_ms: 10,
            validators: vec![crate::genesis::GenesisValidator {
                consensus_id: PublicKey::of(validator),
                entity_id: PublicKey::of(validator),
            }],
            staking: StakingGenesis {
                thresholds: Default::default(),
                debonding_interval: 1,
                accounts: Default::default(),
                escrow: Default::default(),
            },
            registry: RegistryGenesis {
                max_node_expiration: 2,
                runtimes: vec![],
                entities: vec![],
            },
            consensus_pubsub: Default::default(),
        }
    }

    #[test]
    fn followers_accept_only_consistent_blocks_of_a_validator() {
        let v = SigningKey::from_bytes(&[1; 32]);
        let g = genesis(&v);
        let s0 = State::from_genesis(&g);
        let (b1, s1, _) = Proposed::build(&s0, vec![], 1, PublicKey::of(&v));
        let (next, _) = b1.apply(&s0).expect("valid block");
        assert_eq!(next, s1);
        assert_eq!(next.last_block_hash, b1.hash());

        // Proposed by someone outside the validator set.
        let mallory = SigningKey::from_bytes(&[2; 32]);
        let (forged, _, _) = Proposed::build(&s0, vec![], 1, PublicKey::of(&mallory));
        assert!(forged
            .apply(&s0)
            .expect_err("forged")
            .to_string()
            .contains("not a validator"));

        // Transactions swapped after building.
        let mut tampered = b1.clone();
        tampered.txs.push(Signed::sign(&mallory, "x", &1u8));
        assert!(tampered
            .apply(&s0)
            .expect_err("tampered")
            .to_string()
            .contains("do not match"));

        // A header claiming another state root.
        let mut wrong = b1.clone();
        wrong.header.state_root = [9; 32];
        assert!(wrong
            .apply(&s0)
            .expect_err("root")
            .to_string()
            .contains("state root mismatch"));

        // Out of order, or on another parent.
        let (b2, _, _) = Proposed::build(&s1, vec![], 2, PublicKey::of(&v));
        assert!(matches!(
            b2.apply(&s0).expect_err("gap"),
            BlockError::NotNext { .. }
        ));
        let mut other_parent = b2.clone();
        other_parent.header.parent_hash = [7; 32];
        assert!(other_parent
            .apply(&s1)
            .expect_err("parent")
            .to_string()
            .contains("parent hash"));
        b2.apply(&s1).expect("the next block");
    }
}
