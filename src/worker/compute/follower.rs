//! The finalized-state follower: applies each round the consensus finalized, with the executed
//! batch gossiped by the committee (or fetched from a peer) once it verifies against the
//! finalized header, to the runtime's state tree (which must reach the finalized state root) and
//! then to the store.

use crate::bundle::RuntimeId;
use crate::consensus::roothash::{BlockHeader, ExecutedBatch, HeaderType};
use crate::encoding::Hash;
use crate::host::state::RuntimeState;
use crate::storage::{Applied, Store};
use paratime_state::Round;
use std::collections::HashMap;
use std::time::{Duration, Instant};

const MODULE: &str = "worker/compute";
/// Executed batches kept while their rounds are not finalized.
const MAX_EXECUTED: usize = 256;
/// A missing batch is asked of the peers again after this long.
pub(super) const FETCH_EVERY: Duration = Duration::from_millis(500);

/// What one catch-up did.
#[derive(Debug, Default)]
pub(super) struct Progress {
    /// The rounds applied with a batch, in order.
    pub(super) batches: Vec<ExecutedBatch>,
    /// A round whose batch is to be fetched from the peers.
    pub(super) fetch: Option<Round>,
    /// A round whose block header is not in this node's store: pruned with the consensus
    /// blocks while the node did not host the runtime, or behind a consensus state sync. It
    /// can only be followed from a state sync.
    pub(super) missing_header: Option<Round>,
}

/// Executed batches seen for rounds not yet applied, and the fetch clock.
pub(super) struct Follower {
    rid: RuntimeId,
    executed: HashMap<(Round, Hash, Hash), ExecutedBatch>,
    last_fetch: Option<(Round, Instant)>,
}

/// Whether the batch of `round` is asked of the peers at `now`, given the last request.
pub(super) fn fetch_due(last: Option<(Round, Instant)>, round: Round, now: Instant) -> bool {
    last.is_none_or(|(r, t)| r != round || now.saturating_duration_since(t) > FETCH_EVERY)
}

impl Follower {
    pub(super) fn new(rid: RuntimeId) -> Self {
        Self {
            rid,
            executed: HashMap::new(),
            last_fetch: None,
        }
    }

    /// Keeps an executed batch (gossiped, fetched or executed here) for a round after
    /// `applied_round`, while there is room; the first one per (round, roots) stays.
    pub(super) fn offer(&mut self, b: ExecutedBatch, applied_round: Round) {
        if b.runtime != self.rid || b.round <= applied_round || self.executed.len() > MAX_EXECUTED {
            return;
        }
        self.executed
            .entry((b.round, b.state_root, b.io_root))
            .or_insert(b);
    }

    /// Applies finalized rounds up to `latest` (the consensus view's runtime block), advancing
    /// `applied`. Stops at the first round whose batch is missing or does not verify.
    pub(super) fn catch_up(
        &mut self,
        latest: &BlockHeader,
        applied: &mut Applied,
        store: &Store,
        state: &RuntimeState,
        now: Instant,
    ) -> Progress {
        let rid = self.rid;
        let mut progress = Progress::default();
        while applied.round < latest.round {
            let round = applied.round.next();
            let header: Option<BlockHeader> = if round == latest.round {
                Some(latest.clone())
            } else {
                store.runtime_block(&rid, round).ok().flatten()
            };
            let Some(header) = header else {
                progress.missing_header = Some(round);
                break;
            };
            if header.header_type != HeaderType::Normal {
                if let Err(e) = store.apply_round(&rid, round, None, &applied.state_root) {
                    log::error!(target: MODULE, runtime_id:% = rid, round = round.0; "cannot record round: {e}");
                    break;
                }
                if header.header_type == HeaderType::RoundFailed {
                    log::warn!(target: MODULE, runtime_id:% = rid, round = round.0; "runtime round failed");
                }
                applied.round = round;
                continue;
            }
            let key = (round, header.state_root, header.io_root);
            let Some(batch) = self.executed.remove(&key) else {
                if fetch_due(self.last_fetch, round, now) {
                    self.last_fetch = Some((round, now));
                    progress.fetch = Some(round);
                }
                break;
            };
            if let Err(e) = batch.verify(&header, &applied.state_root) {
                log::warn!(target: MODULE, runtime_id:% = rid, round = round.0; "discarding executed batch: {e}");
                break;
            }
            // The state tree first: a crash before the store records the round re-applies it,
            // which the tree takes as a no-op.
            if let Err(e) = state.apply(
                round.0,
                &applied.state_root,
                &batch.write_log,
                &header.state_root,
            ) {
                log::warn!(target: MODULE, runtime_id:% = rid, round = round.0; "discarding executed batch: {e}");
                break;
            }
            if let Err(e) = store.apply_round(&rid, round, Some(&batch), &header.state_root) {
                log::error!(target: MODULE, runtime_id:% = rid, round = round.0; "cannot apply round: {e}");
                break;
            }
            *applied = Applied {
                round,
                state_root: header.state_root,
            };
            log::info!(target: MODULE, runtime_id:% = rid, round = round.0, txs = batch.inputs.len(), state_root = hex::encode(header.state_root).as_str(); "runtime round finalized");
            progress.batches.push(batch);
        }
        let applied_round = applied.round;
        self.executed.retain(|(r, _, _), _| *r > applied_round);
        progress
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use paratime_sdk::protocol::{TxResult, WriteLogEntry};
    use serde_bytes::ByteBuf;

    const RID: RuntimeId = RuntimeId([1; 32]);

    fn batch(round: u64, prev_root: Hash, key: &[u8]) -> ExecutedBatch {
        let round = Round(round);
        let inputs = vec![ByteBuf::from(key.to_vec())];
        let results = vec![TxResult {
            error: None,
            output: None,
            sender: None,
        }];
        let write_log = vec![WriteLogEntry {
            key: ByteBuf::from(key.to_vec()),
            value: Some(ByteBuf::from(b"v".to_vec())),
        }];
        ExecutedBatch {
            runtime: RID,
            round,
            previous_state_root: prev_root,
            state_root: root_after(prev_root, &write_log),
            io_root: paratime_sdk::state::io_root(round.0, &inputs, &results),
            inputs,
            results,
            write_log,
        }
    }

    /// The tree root `log` gives on the empty tree (zeros on another root: tests that do not
    /// apply the batch).
    fn root_after(prev: Hash, log: &[WriteLogEntry]) -> Hash {
        let src = paratime_mkvs::tree::MemSource::default();
        let mut c = paratime_mkvs::Changes::new(
            &src,
            paratime_mkvs::node::Ptr {
                hash: prev,
                version: 0,
            },
            1,
        );
        for e in log {
            let value = e.value.as_ref().map(|v| v.as_slice()).unwrap_or_default();
            if c.insert(&e.key, value).is_err() {
                return [0; 32];
            }
        }
        c.root().hash
    }

    fn header(b: &ExecutedBatch, kind: HeaderType) -> BlockHeader {
        BlockHeader {
            round: b.round,
            header_type: kind,
            state_root: b.state_root,
            io_root: b.io_root,
            ..BlockHeader::genesis(RID)
        }
    }

    struct Fixture {
        _dir: tempfile::TempDir,
        store: Store,
        state: RuntimeState,
        applied: Applied,
        f: Follower,
    }

    fn fixture() -> Fixture {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(&dir.path().join("s.redb")).expect("store");
        let state = RuntimeState::open(&dir.path().join("mkvs.redb"), 1 << 20).expect("state tree");
        Fixture {
            _dir: dir,
            store,
            state,
            applied: Applied {
                round: paratime_state::Round(0),
                state_root: paratime_sdk::state::EMPTY_STATE_ROOT,
            },
            f: Follower::new(RID),
        }
    }

    impl Fixture {
        fn catch_up(&mut self, latest: &BlockHeader, now: Instant) -> Progress {
            self.f
                .catch_up(latest, &mut self.applied, &self.store, &self.state, now)
        }
    }

    #[test]
    fn a_batch_matching_the_finalized_header_is_applied_to_store_and_state() {
        let mut x = fixture();
        let b = batch(1, x.applied.state_root, b"k");
        x.f.offer(b.clone(), Round(0));
        let p = x.catch_up(&header(&b, HeaderType::Normal), Instant::now());
        assert_eq!((p.batches.len(), p.fetch), (1, None));
        assert_eq!(x.applied.round, paratime_state::Round(1));
        assert_eq!(x.state.root(), b.state_root);
        let stored = x
            .store
            .runtime_applied(&RID)
            .expect("read")
            .expect("applied");
        assert_eq!((stored.round, stored.state_root), (Round(1), b.state_root));
        assert_eq!(
            x.store
                .tx_location(&RID, &crate::encoding::hash(b"k"))
                .expect("read"),
            Some((Round(1), 0))
        );
    }

    #[test]
    fn a_round_whose_header_is_not_stored_is_reported_not_fetched() {
        let mut x = fixture();
        // Round 1's header is not in the store (pruned), round 2 is the latest finalized.
        let b1 = batch(1, x.applied.state_root, b"k");
        let b2 = batch(2, b1.state_root, b"l");
        x.f.offer(b1, Round(0));
        x.f.offer(b2.clone(), Round(0));
        let p = x.catch_up(&header(&b2, HeaderType::Normal), Instant::now());
        assert_eq!(p.missing_header, Some(Round(1)));
        assert!(p.batches.is_empty() && p.fetch.is_none(), "{p:?}");
        assert_eq!(x.applied.round, Round(0));
    }

    #[test]
    fn a_missing_batch_is_fetched_at_most_every_half_second() {
        let mut x = fixture();
        let b = batch(1, x.applied.state_root, b"k");
        let h = header(&b, HeaderType::Normal);
        let t0 = Instant::now();
        assert_eq!(x.catch_up(&h, t0).fetch, Some(Round(1)));
        assert_eq!(x.catch_up(&h, t0 + FETCH_EVERY).fetch, None);
        assert_eq!(
            x.catch_up(&h, t0 + FETCH_EVERY + Duration::from_millis(1))
                .fetch,
            Some(Round(1))
        );
        assert_eq!(x.applied.round, paratime_state::Round(0));
        assert!(
            fetch_due(Some((Round(1), t0)), Round(2), t0),
            "another round waits for the first's clock"
        );
    }

    #[test]
    fn a_batch_that_does_not_lead_to_the_finalized_roots_is_never_applied() {
        let mut x = fixture();
        let good = batch(1, x.applied.state_root, b"k");
        // Same round and claimed roots, different write log: a peer lying about its batch.
        let mut forged = batch(1, x.applied.state_root, b"other");
        forged.state_root = good.state_root;
        forged.io_root = good.io_root;
        x.f.offer(forged, Round(0));
        let p = x.catch_up(&header(&good, HeaderType::Normal), Instant::now());
        assert!(p.batches.is_empty());
        assert_eq!(x.applied.round, paratime_state::Round(0));
        assert_eq!(x.store.runtime_applied(&RID).expect("read"), None);
        assert_eq!(x.state.root(), paratime_sdk::state::EMPTY_STATE_ROOT);
        // The honest batch, arriving later, is applied.
        x.f.offer(good.clone(), Round(0));
        assert_eq!(
            x.catch_up(&header(&good, HeaderType::Normal), Instant::now())
                .batches
                .len(),
            1
        );
    }

    #[test]
    fn failed_rounds_advance_without_a_batch_and_keep_the_state() {
        let mut x = fixture();
        let b = batch(1, x.applied.state_root, b"k");
        let p = x.catch_up(&header(&b, HeaderType::RoundFailed), Instant::now());
        assert!(p.batches.is_empty() && p.fetch.is_none());
        assert_eq!(x.applied.round, paratime_state::Round(1));
        assert_eq!(x.applied.state_root, paratime_sdk::state::EMPTY_STATE_ROOT);
    }

    #[test]
    fn batches_for_other_runtimes_applied_rounds_or_beyond_the_cap_are_not_kept() {
        let mut x = fixture();
        let mut other = batch(1, [0; 32], b"k");
        other.runtime = RuntimeId([2; 32]);
        x.f.offer(other, Round(0));
        x.f.offer(batch(3, [0; 32], b"k"), Round(3));
        assert_eq!(x.f.executed.len(), 0);
        for i in 0..1000u32 {
            x.f.offer(batch(5, [0; 32], &i.to_le_bytes()), Round(0));
        }
        assert_eq!(x.f.executed.len(), MAX_EXECUTED + 1);
    }
}
