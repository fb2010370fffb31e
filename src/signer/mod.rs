//! The node's one signer. It alone holds the node, P2P-binding and consensus keys for what they
//! sign on chain:
//! - consensus proposals and votes, executor commitments and batch proposals: for each [`Slot`]
//!   it records the digest of what it signed and the signature in the store — in one redb write
//!   transaction, committed before the signature is returned. The same message again gets the
//!   recorded signature; a different message for the same slot is refused; a store error
//!   refuses too (fail closed);
//! - consensus transactions, with the node key's nonces (see [`Signer::transaction`]);
//! - the node descriptor, with the node, P2P and consensus keys (see [`Signer::descriptor`]).
//!
//! The P2P key's other use, the libp2p transport identity, stays with the network layers.

use crate::storage::{SignOnce, Store};
use ed25519_dalek::SigningKey;
use paratime_state::address::Address;
use paratime_state::crypto::{self, MultiSigned, PublicKey, Signature, SignatureBytes, Signed};
use paratime_state::signing::{message_digest, KeyRole, SignError, Slot, SlotSigner};
use paratime_state::state::{Fee, NodeDescriptor, State, Transaction};
use serde::Serialize;
use std::sync::{Arc, Mutex};

/// A transaction body that cannot be encoded as CBOR.
#[derive(Debug, thiserror::Error)]
#[error("transaction {method}: encoding its body: {reason}")]
pub struct EncodeError {
    /// The transaction's method.
    pub method: String,
    /// The encoder's reason.
    pub reason: String,
}

/// The signer. Cheap to share (`Arc`).
pub struct Signer {
    node: SigningKey,
    consensus: SigningKey,
    p2p: SigningKey,
    store: Arc<Store>,
    nonces: Mutex<Nonces>,
}

/// Nonces of the node key's consensus transactions (registration and executor commitments
/// share them, so two transactions never reuse a nonce). When the chain's nonce stops advancing
/// for [`NONCE_STALL_BLOCKS`] while transactions are outstanding (one was lost), it starts again
/// from the chain's nonce: the nonce is the chain's replay protection, so a transaction signed
/// again under a nonce that was never used on chain replaces the lost one.
#[derive(Debug, Default)]
struct Nonces {
    next: u64,
    chain: u64,
    progress_at: u64,
}

/// Blocks without progress of the chain's nonce before outstanding nonces are given up.
pub const NONCE_STALL_BLOCKS: u64 = 10;

impl Nonces {
    fn next(&mut self, chain: u64, height: u64) -> u64 {
        if chain != self.chain {
            self.chain = chain;
            self.progress_at = height;
        }
        if self.next < chain
            || (self.next > chain && height > self.progress_at.saturating_add(NONCE_STALL_BLOCKS))
        {
            self.next = chain;
            self.progress_at = height;
        }
        let n = self.next;
        self.next = self.next.saturating_add(1);
        n
    }
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer")
            .field("node", &PublicKey::of(&self.node))
            .field("consensus", &PublicKey::of(&self.consensus))
            .field("p2p", &PublicKey::of(&self.p2p))
            .finish_non_exhaustive()
    }
}

impl Signer {
    /// A signer over the node's keys, recording into `store`.
    pub fn new(
        node: SigningKey,
        consensus: SigningKey,
        p2p: SigningKey,
        store: Arc<Store>,
    ) -> Self {
        Self {
            node,
            consensus,
            p2p,
            store,
            nonces: Mutex::new(Nonces::default()),
        }
    }

    fn key(&self, role: KeyRole) -> &SigningKey {
        match role {
            KeyRole::Node => &self.node,
            KeyRole::Consensus => &self.consensus,
        }
    }

    /// The P2P key's public half (registered in the node descriptor).
    pub fn p2p_public_key(&self) -> PublicKey {
        PublicKey::of(&self.p2p)
    }

    /// Signs `method(body)` as a consensus transaction of the node key, with its next nonce
    /// after the committed `state`, for `state`'s chain.
    pub fn transaction<T: Serialize>(
        &self,
        state: &State,
        method: &str,
        body: &T,
    ) -> Result<Signed, EncodeError> {
        let body = ciborium::Value::serialized(body).map_err(|e| EncodeError {
            method: method.to_string(),
            reason: e.to_string(),
        })?;
        let me = Address::from_public_key(&PublicKey::of(&self.node));
        let nonce = self
            .nonces
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .next(state.account(&me).nonce, state.height.0);
        let t = Transaction {
            nonce,
            fee: Fee::default(),
            method: method.into(),
            body,
        };
        Ok(Signed::sign(
            &self.node,
            &crypto::context(crypto::CONTEXT_TX, Some(&state.chain_context)),
            &t,
        ))
    }

    /// Signs a node descriptor with the node, P2P and consensus keys (registration).
    pub fn descriptor(&self, desc: &NodeDescriptor) -> MultiSigned {
        MultiSigned::sign(
            &[&self.node, &self.p2p, &self.consensus],
            crypto::CONTEXT_REGISTER_NODE,
            desc,
        )
    }

    /// Forgets consensus slots below `height` (the engine never signs for a committed height).
    pub fn prune_consensus_below(&self, height: u64) -> Result<(), SignError> {
        self.store
            .prune_signed(&Slot::record_prefix(KeyRole::Consensus, 0, None), height)
            .map_err(|e| SignError::Store {
                slot: format!("consensus slots below height {height}"),
                message: e.to_string(),
            })
    }
}

impl SlotSigner for Signer {
    fn public_key(&self, role: KeyRole) -> PublicKey {
        PublicKey::of(self.key(role))
    }

    fn sign(
        &self,
        role: KeyRole,
        slot: &Slot,
        context: &str,
        message: &[u8],
    ) -> Result<Signature, SignError> {
        let key = self.key(role);
        let digest = message_digest(context, message);
        let outcome = self
            .store
            .sign_once(&slot.record_key(role), &digest, || {
                Signature::sign(key, context, message).signature.0
            })
            .map_err(|e| SignError::Store {
                slot: slot.describe(),
                message: e.to_string(),
            })?;
        if let (KeyRole::Consensus, Slot::Consensus { height, step, .. }) = (role, slot) {
            use crate::crashpoint::{reached, Point};
            match step {
                paratime_state::signing::Step::Prevote => reached(Point::Prevote, *height),
                paratime_state::signing::Step::Precommit => reached(Point::Precommit, *height),
                _ => {}
            }
        }
        match outcome {
            SignOnce::Signed(sig) => Ok(Signature {
                public_key: PublicKey::of(key),
                signature: SignatureBytes(sig),
            }),
            SignOnce::Conflict => Err(SignError::Conflict(slot.describe())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use paratime_state::signing::Step;
    use paratime_state::RuntimeId;

    fn signer(dir: &std::path::Path) -> Signer {
        let store = Store::open(&dir.join("consensus.redb")).expect("store");
        Signer::new(
            SigningKey::from_bytes(&[1; 32]),
            SigningKey::from_bytes(&[2; 32]),
            SigningKey::from_bytes(&[3; 32]),
            Arc::new(store),
        )
    }

    #[test]
    fn never_two_different_messages_for_one_slot_even_after_a_restart() {
        let t = tempfile::tempdir().expect("tempdir");
        let slot = Slot::Consensus {
            height: 5,
            round: 0,
            step: Step::Prevote,
        };
        let first = {
            let s = signer(t.path());
            let a = s
                .sign(KeyRole::Consensus, &slot, "ctx", b"block A")
                .expect("first");
            assert!(a.verify("ctx", b"block A"));
            // The same message again: the recorded signature.
            let again = s
                .sign(KeyRole::Consensus, &slot, "ctx", b"block A")
                .expect("again");
            assert_eq!(a, again);
            // Another message, or the same bytes under another context: refused.
            let e = s
                .sign(KeyRole::Consensus, &slot, "ctx", b"block B")
                .expect_err("conflict");
            assert!(matches!(e, SignError::Conflict(_)), "{e}");
            assert!(e.to_string().contains("height 5 round 0 Prevote"), "{e}");
            assert!(s
                .sign(KeyRole::Consensus, &slot, "ctx2", b"block A")
                .is_err());
            // Other slots and the other key are independent.
            let next = Slot::Consensus {
                height: 5,
                round: 1,
                step: Step::Prevote,
            };
            s.sign(KeyRole::Consensus, &next, "ctx", b"block B")
                .expect("next round");
            s.sign(KeyRole::Node, &slot, "ctx", b"block B")
                .expect("node key");
            a
        };
        // The record is durable: a restarted node still refuses, and repeats the old signature.
        let s = signer(t.path());
        assert!(s
            .sign(KeyRole::Consensus, &slot, "ctx", b"block B")
            .is_err());
        assert_eq!(
            s.sign(KeyRole::Consensus, &slot, "ctx", b"block A")
                .expect("repeat"),
            first
        );
    }

    #[test]
    fn pruning_forgets_only_committed_heights_and_only_consensus_slots() {
        let t = tempfile::tempdir().expect("tempdir");
        let s = signer(t.path());
        let at = |h| Slot::Consensus {
            height: h,
            round: 0,
            step: Step::Precommit,
        };
        let rt = RuntimeId([3; 32]);
        let commit = Slot::ExecutorCommitment {
            runtime: rt,
            round: paratime_state::Round(1),
        };
        for h in [1, 2, 3] {
            s.sign(KeyRole::Consensus, &at(h), "c", b"x").expect("sign");
        }
        s.sign(KeyRole::Node, &commit, "c", b"x").expect("commit");
        s.prune_consensus_below(3).expect("prune");
        // Heights 1 and 2 are forgotten (a different message is accepted), 3 is kept.
        s.sign(KeyRole::Consensus, &at(1), "c", b"y")
            .expect("pruned");
        assert!(s.sign(KeyRole::Consensus, &at(3), "c", b"y").is_err());
        assert!(s.sign(KeyRole::Node, &commit, "c", b"y").is_err());
    }

    #[test]
    fn nonces_follow_the_chain_and_restart_from_it_after_a_stall() {
        let mut n = Nonces::default();
        // Two transactions in flight at height 1: 0 and 1.
        assert_eq!((n.next(0, 1), n.next(0, 1)), (0, 1));
        // The chain took the first: the next is 2, not 1.
        assert_eq!(n.next(1, 2), 2);
        // The chain ran ahead (another signer, a restart): follow it.
        assert_eq!(n.next(7, 3), 7);
        // 8 is signed and lost; until the stall is over, 9 comes next...
        assert_eq!(n.next(8, 4), 8);
        assert_eq!(n.next(8, 4 + NONCE_STALL_BLOCKS), 9);
        // ...then the chain's nonce again.
        assert_eq!(n.next(8, 5 + NONCE_STALL_BLOCKS), 8);
    }

    #[test]
    fn transactions_and_descriptors_are_signed_by_the_nodes_keys() {
        let t = tempfile::tempdir().expect("tempdir");
        let s = signer(t.path());
        let g = crate::cli::network::empty_genesis("signer-test");
        let state = State::from_genesis(&g);
        let a = s.transaction(&state, "staking.Transfer", &()).expect("tx");
        let b = s.transaction(&state, "staking.Transfer", &()).expect("tx");
        let ctx = crypto::context(crypto::CONTEXT_TX, Some(&state.chain_context));
        let ta: Transaction = a.open(&ctx).expect("opens");
        let tb: Transaction = b.open(&ctx).expect("opens");
        assert_eq!((ta.nonce, tb.nonce), (0, 1));
        assert_eq!(a.signature.public_key, s.public_key(KeyRole::Node));
        let desc = NodeDescriptor {
            v: 3,
            id: s.public_key(KeyRole::Node),
            entity_id: s.public_key(KeyRole::Node),
            expiration: paratime_state::Epoch(2),
            p2p: paratime_state::state::P2pInfo {
                id: s.p2p_public_key(),
                addresses: vec!["127.0.0.1:1".into()],
            },
            consensus: paratime_state::state::ConsensusInfo {
                id: s.public_key(KeyRole::Consensus),
                addresses: Vec::new(),
            },
            runtimes: Vec::new(),
            roles: paratime_state::state::RoleMask::VALIDATOR,
            software_version: String::new(),
        };
        let signed = s.descriptor(&desc);
        let keys: Vec<PublicKey> = signed.signatures.iter().map(|x| x.public_key).collect();
        assert_eq!(
            keys,
            vec![
                s.public_key(KeyRole::Node),
                s.p2p_public_key(),
                s.public_key(KeyRole::Consensus)
            ]
        );
    }
}
