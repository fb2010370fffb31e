//! Blocks: a header signed by the validator's consensus key, and the transactions it orders.
//! Followers accept a block only if the validator signed it, it extends their chain and
//! re-executing it reproduces the state root in the header.

use crate::crypto::{self, PublicKey, Signed};
use crate::encoding::{hash_of, Hash};
use crate::state::State;
use ed25519_dalek::SigningKey;
use serde::{Deserialize, Serialize};

/// A block header.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Header {
    /// Height (1 = first block after genesis).
    pub height: u64,
    /// Hash of the previous header (zero for the first block).
    pub parent_hash: Hash,
    /// Producer's clock, unix milliseconds (informational; not in the state).
    pub time_ms: u64,
    /// Epoch after this block.
    pub epoch: u64,
    /// Hash of the ordered transactions.
    pub txs_hash: Hash,
    /// State root after this block.
    pub state_root: Hash,
    /// Validator that produced it.
    pub proposer: PublicKey,
}

/// A block.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Block {
    /// Header, signed.
    pub header: Signed,
    /// Ordered transactions (each a signed transaction).
    pub txs: Vec<Signed>,
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
pub fn execute(state: &mut State, height: u64, txs: &[Signed]) -> Vec<TxOutcome> {
    state.begin_block(height);
    let out = txs
        .iter()
        .map(|t| TxOutcome {
            hash: hash_of(t),
            error: state.apply_tx(t).err(),
        })
        .collect();
    state.height = height;
    out
}

impl Block {
    /// Produces the next block on `state` (which is advanced) and signs it.
    pub fn produce(
        state: &mut State,
        parent_hash: Hash,
        txs: Vec<Signed>,
        time_ms: u64,
        key: &SigningKey,
    ) -> (Self, Vec<TxOutcome>) {
        let height = state.height + 1;
        let outcomes = execute(state, height, &txs);
        let header = Header {
            height,
            parent_hash,
            time_ms,
            epoch: state.epoch,
            txs_hash: hash_of(&txs),
            state_root: [0u8; 32],
            proposer: PublicKey::of(key),
        };
        // The state root covers the block hash chain only through `last_block_hash` of the
        // parent; set it after computing the root so the header can commit to it.
        let root = state.root();
        let header = Header {
            state_root: root,
            ..header
        };
        let ctx = crypto::context(crypto::CONTEXT_BLOCK, Some(&state.chain_context));
        let signed = Signed::sign(key, &ctx, &header);
        state.last_block_hash = hash_of(&header);
        (
            Self {
                header: signed,
                txs,
            },
            outcomes,
        )
    }

    /// Verifies the validator's signature and decodes the header.
    pub fn header(&self, chain_context: &str, validator: &PublicKey) -> Result<Header, String> {
        if &self.header.signature.public_key != validator {
            return Err(format!(
                "block signed by {}, not by the validator {validator}",
                self.header.signature.public_key
            ));
        }
        let h: Header = self
            .header
            .open(&crypto::context(crypto::CONTEXT_BLOCK, Some(chain_context)))?;
        if h.txs_hash != hash_of(&self.txs) {
            return Err(format!(
                "block {}: transactions do not match the header",
                h.height
            ));
        }
        Ok(h)
    }

    /// Verifies and applies this block on a copy of `state`; returns the new state.
    pub fn apply(
        &self,
        state: &State,
        validator: &PublicKey,
    ) -> Result<(State, Header, Vec<TxOutcome>), String> {
        let h = self.header(&state.chain_context, validator)?;
        if h.height != state.height + 1 {
            return Err(format!(
                "block {} does not follow height {}",
                h.height, state.height
            ));
        }
        if h.parent_hash != state.last_block_hash {
            return Err(format!("block {}: parent hash does not match", h.height));
        }
        let mut next = state.clone();
        let outcomes = execute(&mut next, h.height, &self.txs);
        if next.root() != h.state_root {
            return Err(format!(
                "block {}: state root mismatch after re-execution",
                h.height
            ));
        }
        next.last_block_hash = hash_of(&h);
        Ok((next, h, outcomes))
    }
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
    pub fn apply(&self, state: &State) -> Result<(State, Vec<TxOutcome>), String> {
        let h = &self.header;
        if h.height != state.height.saturating_add(1) {
            return Err(format!(
                "block {} does not follow height {}",
                h.height, state.height
            ));
        }
        if h.parent_hash != state.last_block_hash {
            return Err(format!("block {}: parent hash does not match", h.height));
        }
        if !state.validators.contains(&h.proposer) {
            return Err(format!(
                "block {}: proposer {} is not a validator",
                h.height, h.proposer
            ));
        }
        if h.txs_hash != hash_of(&self.txs) {
            return Err(format!(
                "block {}: transactions do not match the header",
                h.height
            ));
        }
        let mut next = state.clone();
        let outcomes = execute(&mut next, h.height, &self.txs);
        if next.epoch != h.epoch || next.root() != h.state_root {
            return Err(format!(
                "block {}: state root mismatch after re-execution",
                h.height
            ));
        }
        next.last_block_hash = hash_of(h);
        Ok((next, outcomes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::genesis::{Genesis, RegistryGenesis, StakingGenesis};

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
        }
    }

    #[test]
    fn followers_accept_only_the_validators_consistent_blocks() {
        let v = SigningKey::from_bytes(&[1; 32]);
        let g = genesis(&v);
        let mut producer = State::from_genesis(&g);
        let follower = State::from_genesis(&g);
        let (b1, _) = Block::produce(&mut producer, [0u8; 32], vec![], 1, &v);
        let (next, h, _) = b1
            .apply(&follower, &PublicKey::of(&v))
            .expect("valid block");
        assert_eq!(h.height, 1);
        assert_eq!(next.last_block_hash, producer.last_block_hash);

        // Signed by someone else.
        let mallory = SigningKey::from_bytes(&[2; 32]);
        let mut other = State::from_genesis(&g);
        let (forged, _) = Block::produce(&mut other, [0u8; 32], vec![], 1, &mallory);
        assert!(forged
            .apply(&follower, &PublicKey::of(&v))
            .expect_err("forged")
            .contains("not by the validator"));

        // Transactions swapped after signing.
        let mut tampered = b1.clone();
        tampered.txs.push(Signed::sign(&mallory, "x", &1u8));
        assert!(tampered
            .apply(&follower, &PublicKey::of(&v))
            .expect_err("tampered")
            .contains("do not match"));

        // A header whose signature was re-made over a wrong state root by someone else fails too,
        // and a valid signature over a wrong root fails re-execution.
        let mut wrong = State::from_genesis(&g);
        wrong.epoch = 99;
        let (bad_root, _) = Block::produce(&mut wrong, [0u8; 32], vec![], 1, &v);
        assert!(bad_root
            .apply(&follower, &PublicKey::of(&v))
            .expect_err("root")
            .contains("state root mismatch"));

        // Out of order.
        let (b2, _) = Block::produce(&mut producer, b1_hash(&b1, &g, &v), vec![], 2, &v);
        assert!(b2
            .apply(&follower, &PublicKey::of(&v))
            .expect_err("gap")
            .contains("does not follow"));
    }

    fn b1_hash(b: &Block, g: &Genesis, v: &SigningKey) -> Hash {
        hash_of(
            &b.header(&g.chain_context(), &PublicKey::of(v))
                .expect("header"),
        )
    }
}
