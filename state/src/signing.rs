//! What the node may sign, and the rule that it never signs two different things for the same
//! slot. The node has exactly one implementation of [`SlotSigner`]; it owns the keys and
//! records every signature durably before returning it.

use crate::crypto::{PublicKey, Signature, Signed};
use crate::encoding::{canonical_cbor, hash, Hash};
use crate::runtime_id::RuntimeId;
use serde::{Deserialize, Serialize};

/// Which of the node's keys signs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum KeyRole {
    /// The node (identity) key: executor commitments, batch proposals, transactions.
    Node,
    /// The consensus key: block proposals and votes.
    Consensus,
}

/// A consensus step.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Step {
    /// The proposal of a round.
    Propose,
    /// A prevote.
    Prevote,
    /// A precommit.
    Precommit,
}

/// A slot: for each, the node signs at most one message (repeats of the same message are fine).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Slot {
    /// A consensus proposal or vote.
    Consensus {
        /// Height.
        height: u64,
        /// Round.
        round: u32,
        /// Step.
        step: Step,
    },
    /// The executor commitment for a ParaTime round.
    ExecutorCommitment {
        /// ParaTime.
        runtime: RuntimeId,
        /// Runtime round.
        round: crate::Round,
    },
    /// The batch proposal (as transaction scheduler) for a ParaTime round.
    BatchProposal {
        /// ParaTime.
        runtime: RuntimeId,
        /// Runtime round.
        round: crate::Round,
    },
    /// A binding of the consensus key to a network peer, named by its digest (so the same
    /// binding can be signed again, and nothing else can be signed for it).
    PeerBinding {
        /// Digest of the binding.
        digest: Hash,
    },
}

impl Slot {
    /// The slot's key in the signer's record: role ‖ kind ‖ [runtime] ‖ height or round
    /// (big-endian) ‖ [round ‖ step]. Keys of one kind sort by height or round, so old slots
    /// can be pruned by range (see [`Slot::record_prefix`]).
    pub fn record_key(&self, role: KeyRole) -> Vec<u8> {
        let mut k = Self::record_prefix(role, self.kind(), self.runtime());
        match self {
            Self::Consensus {
                height,
                round,
                step,
            } => {
                k.extend_from_slice(&height.to_be_bytes());
                k.extend_from_slice(&round.to_be_bytes());
                k.push(*step as u8);
            }
            Self::ExecutorCommitment { round, .. } | Self::BatchProposal { round, .. } => {
                k.extend_from_slice(&round.0.to_be_bytes());
            }
            Self::PeerBinding { digest } => k.extend_from_slice(digest),
        }
        k
    }

    /// The key prefix of all slots of one kind (and runtime): role ‖ kind ‖ [runtime].
    pub fn record_prefix(role: KeyRole, kind: u8, runtime: Option<&RuntimeId>) -> Vec<u8> {
        let mut k = vec![role as u8, kind];
        if let Some(r) = runtime {
            k.extend_from_slice(&r.0);
        }
        k
    }

    /// 0 consensus, 1 executor commitment, 2 batch proposal, 3 peer binding.
    pub fn kind(&self) -> u8 {
        match self {
            Self::Consensus { .. } => 0,
            Self::ExecutorCommitment { .. } => 1,
            Self::BatchProposal { .. } => 2,
            Self::PeerBinding { .. } => 3,
        }
    }

    fn runtime(&self) -> Option<&RuntimeId> {
        match self {
            Self::Consensus { .. } | Self::PeerBinding { .. } => None,
            Self::ExecutorCommitment { runtime, .. } | Self::BatchProposal { runtime, .. } => {
                Some(runtime)
            }
        }
    }

    /// Human-readable, for errors and logs.
    pub fn describe(&self) -> String {
        match self {
            Self::Consensus {
                height,
                round,
                step,
            } => format!("consensus height {height} round {round} {step:?}"),
            Self::ExecutorCommitment { runtime, round } => {
                format!("executor commitment for runtime {runtime} round {round}")
            }
            Self::BatchProposal { runtime, round } => {
                format!("batch proposal for runtime {runtime} round {round}")
            }
            Self::PeerBinding { .. } => "the consensus peer binding".to_string(),
        }
    }
}

/// What is recorded per slot: the digest of (context, message) and the signature.
pub fn message_digest(context: &str, message: &[u8]) -> Hash {
    hash(&canonical_cbor(&(
        context,
        serde_bytes::Bytes::new(message),
    )))
}

/// Why the signer refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignError {
    /// Something else was already signed for this slot.
    #[error("refusing to sign: a different message was already signed for {0} (this would be equivocation)")]
    Conflict(String),
    /// The record could not be read or written: nothing was signed (fail closed).
    #[error("refusing to sign {slot}: the signer's record is unavailable: {message}")]
    Store {
        /// The slot.
        slot: String,
        /// The store error.
        message: String,
    },
}

/// The node's one signer.
pub trait SlotSigner: Send + Sync {
    /// A key's public half.
    fn public_key(&self, role: KeyRole) -> PublicKey;

    /// Signs `message` under `context` with `role`'s key for `slot`: the first time, records the
    /// digest and the signature durably and then returns the signature; for the same message
    /// again, returns the recorded signature; for a different message, refuses.
    fn sign(
        &self,
        role: KeyRole,
        slot: &Slot,
        context: &str,
        message: &[u8],
    ) -> Result<Signature, SignError>;

    /// [`SlotSigner::sign`] over the canonical CBOR of `v`, as a [`Signed`].
    fn sign_value<T: Serialize>(
        &self,
        role: KeyRole,
        slot: &Slot,
        context: &str,
        v: &T,
    ) -> Result<Signed, SignError>
    where
        Self: Sized,
    {
        let raw = canonical_cbor(v);
        let signature = self.sign(role, slot, context, &raw)?;
        Ok(Signed {
            untrusted_raw_value: serde_bytes::ByteBuf::from(raw),
            signature,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_keys_sort_by_height_within_a_kind() {
        let k = |h: u64, r: u32, step| {
            Slot::Consensus {
                height: h,
                round: r,
                step,
            }
            .record_key(KeyRole::Consensus)
        };
        assert!(k(1, 9, Step::Precommit) < k(2, 0, Step::Propose));
        assert!(k(256, 0, Step::Propose) > k(255, u32::MAX, Step::Precommit));
        assert_ne!(k(1, 0, Step::Prevote), k(1, 0, Step::Precommit));
        let rt = RuntimeId([7; 32]);
        let c = Slot::ExecutorCommitment {
            runtime: rt,
            round: crate::Round(3),
        }
        .record_key(KeyRole::Node);
        let p = Slot::BatchProposal {
            runtime: rt,
            round: crate::Round(3),
        }
        .record_key(KeyRole::Node);
        assert_ne!(c, p);
        assert!(c.starts_with(&Slot::record_prefix(KeyRole::Node, 1, Some(&rt))));
    }

    #[test]
    fn the_digest_binds_context_and_message() {
        assert_ne!(message_digest("a", b"bc"), message_digest("ab", b"c"));
        assert_eq!(message_digest("a", b"b"), message_digest("a", b"b"));
    }
}
