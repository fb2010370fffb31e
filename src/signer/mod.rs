//! The node's one signer for everything that could equivocate: consensus proposals and votes,
//! executor commitments and batch proposals. It holds the node and consensus keys and, for each
//! [`Slot`], records the digest of what it signed and the signature in the store — in one redb
//! write transaction, committed before the signature is returned. The same message again gets the
//! recorded signature; a different message for the same slot is refused; a store error refuses
//! too (fail closed).

use crate::consensus::crypto::{PublicKey, Signature, SignatureBytes};
use crate::storage::{SignOnce, Store};
use ed25519_dalek::SigningKey;
use paratime_state::signing::{message_digest, KeyRole, SignError, Slot, SlotSigner};
use std::sync::Arc;

/// The signer. Cheap to share (`Arc`).
pub struct Signer {
    node: SigningKey,
    consensus: SigningKey,
    store: Arc<Store>,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer")
            .field("node", &PublicKey::of(&self.node))
            .field("consensus", &PublicKey::of(&self.consensus))
            .finish_non_exhaustive()
    }
}

impl Signer {
    /// A signer over the node's keys, recording into `store`.
    pub fn new(node: SigningKey, consensus: SigningKey, store: Arc<Store>) -> Self {
        Self {
            node,
            consensus,
            store,
        }
    }

    fn key(&self, role: KeyRole) -> &SigningKey {
        match role {
            KeyRole::Node => &self.node,
            KeyRole::Consensus => &self.consensus,
        }
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
            round: 1,
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
}
