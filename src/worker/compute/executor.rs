//! Executing a round's batch: what the runtime is asked, and what the node commits to given its
//! answer. The runtime is hosted but untrusted: the node recomputes the state root from the
//! write log and the io root from the inputs and results, and commits a failure when the
//! runtime's claims do not match.

use crate::bundle::RuntimeId;
use crate::consensus::crypto::PublicKey;
use crate::consensus::roothash::{
    CommitmentHeader, ComputeResultsHeader, ExecutedBatch, Failure, Proposal,
};
use crate::encoding::Hash;
use crate::host::rhp::RhpError;
use paratime_sdk::protocol::{Body, RuntimeExecuteTxBatchRequest, WriteLogEntry};
use serde_bytes::ByteBuf;

/// Why the runtime's answer to a batch is not committed to: the node commits a failure.
#[derive(Debug, thiserror::Error)]
pub(super) enum BadAnswer {
    /// No answer (timeout, connection lost) or an error.
    #[error("batch execution failed: {0}")]
    Failed(#[from] RhpError),
    /// Another message than the execute response.
    #[error("unexpected response {0} to a batch")]
    Unexpected(&'static str),
    /// An io root or result count that does not follow from the runtime's own results, or a
    /// write log that is not sorted with one entry per key.
    #[error("the runtime's results are inconsistent (io root, result count or write log order)")]
    Inconsistent,
    /// The write log cannot be applied to the state tree (a key or value over the limits, or
    /// the node's own store failing).
    #[error("the runtime's write log cannot be applied to the state: {0}")]
    State(String),
    /// The executed batch could not reach the other nodes: its encoding is larger than a gossip
    /// message, or would decode into more than a node accepts from a peer. Every honest
    /// executor computes the same batch, so every one fails the round alike.
    #[error(
        "the executed batch cannot travel: {bytes} bytes encoded (at most {}), up to {bound} \
         bytes decoded (at most {})",
        crate::p2p::MAX_MESSAGE,
        crate::p2p::MAX_DECODED
    )]
    TooLarge {
        /// Its encoding's size.
        bytes: usize,
        /// The bound of its decoded size.
        bound: usize,
    },
}

/// The executed batch as the committee topic carries it, with the bound of its decoded size —
/// or [`BadAnswer::TooLarge`] when the other nodes could not take it (larger than a gossip
/// message, or over the decoded bound a node accepts from a peer).
pub(super) fn travels(b: ExecutedBatch) -> Result<(ExecutedBatch, Vec<u8>, usize), BadAnswer> {
    let data = crate::encoding::canonical_cbor(&crate::p2p::CommitteeMessage::Executed(Box::new(
        b.clone(),
    )));
    let bound = crate::encoding::decoded_size_bound(&data).unwrap_or(usize::MAX);
    if data.len() > crate::p2p::MAX_MESSAGE || bound > crate::p2p::MAX_DECODED {
        return Err(BadAnswer::TooLarge {
            bytes: data.len(),
            bound,
        });
    }
    Ok((b, data, bound))
}

/// One batch to execute: the proposal of `scheduler` for `proposal.round`, on top of the
/// runtime block `prev_hash` whose state root is `prev_root`.
#[derive(Clone, Debug)]
pub(super) struct Job {
    pub(super) scheduler: PublicKey,
    pub(super) prev_hash: Hash,
    pub(super) prev_root: Hash,
    pub(super) proposal: Proposal,
}

impl Job {
    pub(super) fn round(&self) -> paratime_state::Round {
        self.proposal.round
    }

    /// The request for the runtime.
    pub(super) fn request(&self) -> Body {
        Body::RuntimeExecuteTxBatchRequest(RuntimeExecuteTxBatchRequest {
            round: self.proposal.round.0,
            state_root: ByteBuf::from(self.prev_root.to_vec()),
            inputs: self.proposal.batch.clone(),
        })
    }

    /// Judges the runtime's answer: the executed batch when its claims hold, else why not.
    /// `state_root` gives the root a write log leads to from `prev_root` (the state tree); the
    /// runtime's own `state_root` field is ignored.
    pub(super) fn judge(
        &self,
        rid: RuntimeId,
        resp: Result<Body, RhpError>,
        state_root: impl FnOnce(&Hash, &[WriteLogEntry]) -> Result<Hash, String>,
    ) -> Result<ExecutedBatch, BadAnswer> {
        let round = self.round();
        let r = match resp? {
            Body::RuntimeExecuteTxBatchResponse(r) => r,
            other => return Err(BadAnswer::Unexpected(other.name())),
        };
        let inputs = &self.proposal.batch;
        let claimed_io: Option<Hash> = paratime_sdk::state::to_hash(&r.io_root);
        let sorted = r.write_log.windows(2).all(|w| w[0].key < w[1].key);
        let io_root = paratime_sdk::state::io_root(round.0, inputs, &r.results);
        if !sorted || claimed_io != Some(io_root) || r.results.len() != inputs.len() {
            return Err(BadAnswer::Inconsistent);
        }
        let root = state_root(&self.prev_root, &r.write_log).map_err(BadAnswer::State)?;
        Ok(ExecutedBatch {
            runtime: rid,
            round,
            previous_state_root: self.prev_root,
            state_root: root,
            io_root,
            inputs: inputs.clone(),
            results: r.results,
            write_log: r.write_log,
        })
    }

    /// The commitment for the judged outcome: its roots, or a failure with zero roots.
    pub(super) fn commitment(
        &self,
        outcome: Result<&ExecutedBatch, &BadAnswer>,
    ) -> CommitmentHeader {
        let (state_root, io_root, failure) = match outcome {
            Ok(b) => (b.state_root, b.io_root, Failure::None),
            Err(_) => ([0; 32], [0; 32], Failure::Unknown),
        };
        CommitmentHeader {
            scheduler_id: self.scheduler,
            header: ComputeResultsHeader {
                round: self.round(),
                previous_hash: self.prev_hash,
                io_root,
                state_root,
            },
            failure,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encoding::hash_of;
    use paratime_sdk::protocol::{RuntimeExecuteTxBatchResponse, TxResult};

    fn job() -> Job {
        let batch = vec![
            ByteBuf::from(b"tx-1".to_vec()),
            ByteBuf::from(b"tx-2".to_vec()),
        ];
        Job {
            scheduler: PublicKey([3; 32]),
            prev_hash: [4; 32],
            prev_root: paratime_sdk::state::EMPTY_STATE_ROOT,
            proposal: Proposal {
                runtime: RuntimeId([1; 32]),
                round: paratime_state::Round(9),
                previous_hash: [4; 32],
                batch_hash: hash_of(&batch),
                batch,
            },
        }
    }

    fn entry(k: &[u8], v: &[u8]) -> WriteLogEntry {
        WriteLogEntry {
            key: ByteBuf::from(k.to_vec()),
            value: Some(ByteBuf::from(v.to_vec())),
        }
    }

    /// An honest runtime's answer to `j`.
    fn honest(j: &Job) -> RuntimeExecuteTxBatchResponse {
        let write_log = vec![entry(b"a", b"1"), entry(b"b", b"2")];
        let results = vec![TxResult::default(), TxResult::default()];
        let io_root = paratime_sdk::state::io_root(j.round().0, &j.proposal.batch, &results);
        RuntimeExecuteTxBatchResponse {
            results,
            write_log,
            state_root: ByteBuf::new(),
            io_root: ByteBuf::from(io_root.to_vec()),
        }
    }

    /// The state tree's root after `log` on the empty state (the job's `prev_root`).
    fn tree_root(prev: &Hash, log: &[WriteLogEntry]) -> Result<Hash, String> {
        let src = paratime_mkvs::tree::MemSource::default();
        let mut c = paratime_mkvs::Changes::new(
            &src,
            paratime_mkvs::node::Ptr {
                hash: *prev,
                version: 0,
            },
            1,
        );
        for e in log {
            match &e.value {
                Some(v) => c.insert(&e.key, v),
                None => c.remove(&e.key),
            }
            .map_err(|e| e.to_string())?;
        }
        Ok(c.root().hash)
    }

    fn judge(j: &Job, r: RuntimeExecuteTxBatchResponse) -> Result<ExecutedBatch, BadAnswer> {
        j.judge(
            RuntimeId([1; 32]),
            Ok(Body::RuntimeExecuteTxBatchResponse(r)),
            tree_root,
        )
    }

    #[test]
    fn a_batch_the_other_nodes_could_not_take_fails_the_round() {
        let j = job();
        let b = judge(&j, honest(&j)).expect("honest");
        let (_, data, bound) = travels(b.clone()).expect("an ordinary batch travels");
        assert!(bound < crate::p2p::MAX_DECODED && data.len() < crate::p2p::MAX_MESSAGE);
        // 400,000 writes of four-byte keys: under the gossip limit encoded, but more than a
        // peer's message may take decoded.
        let mut many = b.clone();
        many.write_log = (0..400_000u32)
            .map(|i| WriteLogEntry {
                key: serde_bytes::ByteBuf::from(i.to_be_bytes().to_vec()),
                value: None,
            })
            .collect();
        let e = travels(many).expect_err("refused");
        assert!(
            matches!(e, BadAnswer::TooLarge { bytes, bound } if bytes < crate::p2p::MAX_MESSAGE && bound > crate::p2p::MAX_DECODED),
            "{e}"
        );
        assert_eq!(j.commitment(Err(&e)).failure, Failure::Unknown);
        // 9 MiB of one value: over the gossip limit.
        let mut large = b;
        large.write_log = vec![WriteLogEntry {
            key: serde_bytes::ByteBuf::from(b"k".to_vec()),
            value: Some(serde_bytes::ByteBuf::from(vec![0; 9 << 20])),
        }];
        assert!(
            matches!(travels(large), Err(BadAnswer::TooLarge { bytes, .. }) if bytes > 9 << 20)
        );
    }

    #[test]
    fn an_honest_answer_is_committed_with_the_recomputed_roots() {
        let j = job();
        let r = honest(&j);
        let b = judge(&j, r.clone()).expect("honest answer refused");
        assert_eq!(Ok(b.state_root), tree_root(&j.prev_root, &r.write_log));
        assert_ne!(b.state_root, j.prev_root);
        assert_eq!(b.previous_state_root, j.prev_root);
        let c = j.commitment(Ok(&b));
        assert_eq!(c.failure, Failure::None);
        assert_eq!(c.scheduler_id, j.scheduler);
        assert_eq!(
            (
                c.header.round,
                c.header.previous_hash,
                c.header.state_root,
                c.header.io_root
            ),
            (
                paratime_state::Round(9),
                j.prev_hash,
                b.state_root,
                b.io_root
            )
        );
    }

    #[test]
    fn a_runtime_lying_about_its_roots_or_results_gets_a_failure_committed() {
        let j = job();
        let mut lies = Vec::new();
        let mut r = honest(&j);
        r.io_root = ByteBuf::from(vec![0; 32]);
        lies.push(("io root", r));
        let mut r = honest(&j);
        r.io_root = ByteBuf::from(vec![1; 31]);
        lies.push(("short io root", r));
        // An unsorted write log (the tree would give the same root: the order is the lie).
        let mut r = honest(&j);
        r.write_log.reverse();
        lies.push(("unsorted write log", r));
        // The same key twice.
        let mut r = honest(&j);
        r.write_log[1].key = r.write_log[0].key.clone();
        lies.push(("duplicate key", r));
        // One result for two inputs, with an io root computed over it.
        let mut r = honest(&j);
        r.results.pop();
        r.io_root = ByteBuf::from(
            paratime_sdk::state::io_root(j.round().0, &j.proposal.batch, &r.results).to_vec(),
        );
        lies.push(("result count", r));
        for (what, r) in lies {
            let out = judge(&j, r);
            assert!(
                matches!(out, Err(BadAnswer::Inconsistent)),
                "{what}: a lie was accepted"
            );
            let c = j.commitment(out.as_ref());
            assert_eq!(c.failure, Failure::Unknown, "{what}");
            assert_eq!(
                (c.header.state_root, c.header.io_root),
                ([0; 32], [0; 32]),
                "{what}"
            );
        }
    }

    #[test]
    fn no_answer_or_a_wrong_answer_gets_a_failure_committed() {
        let j = job();
        let timeout = j.judge(
            RuntimeId([1; 32]),
            Err(RhpError::Timeout(
                "execute",
                std::time::Duration::from_secs(30),
            )),
            tree_root,
        );
        assert!(matches!(
            timeout.expect_err("accepted"),
            BadAnswer::Failed(RhpError::Timeout(..))
        ));
        let wrong = j.judge(
            RuntimeId([1; 32]),
            Ok(Body::RuntimeCheckTxBatchResponse(
                paratime_sdk::protocol::RuntimeCheckTxBatchResponse { results: vec![] },
            )),
            tree_root,
        );
        assert!(matches!(
            wrong.expect_err("accepted"),
            BadAnswer::Unexpected(_)
        ));
    }

    #[test]
    fn the_request_carries_the_proposal_on_the_previous_state() {
        let j = job();
        let Body::RuntimeExecuteTxBatchRequest(r) = j.request() else {
            panic!("not an execute request");
        };
        assert_eq!(
            (r.round, r.state_root.to_vec(), r.inputs),
            (9, j.prev_root.to_vec(), j.proposal.batch)
        );
    }
}
