//! The finalized-state follower: applies each round the consensus finalized, with the executed
//! batch gossiped by the committee (or fetched from a peer) once it verifies against the
//! finalized header, to the runtime's state tree (which must reach the finalized state root) and
//! then to the store.

use crate::bundle::RuntimeId;
use crate::consensus::roothash::{BlockHeader, ExecutedBatch, HeaderType};
use crate::encoding::Hash;
use crate::host::state::RuntimeState;
use crate::p2p::{Gossiped, Verdict};
use crate::storage::{Applied, Store};
use paratime_state::Round;
use std::collections::HashMap;
use std::time::{Duration, Instant};

const MODULE: &str = "worker/compute";
/// Executed batches kept while their rounds are not finalized, at most.
const MAX_EXECUTED: usize = 256;
/// Only batches of the next this many rounds are kept: a committee gossips the batch of the
/// round it executes, the applied round's next or the one after; a node further behind
/// fetches each round's batch once it is finalized.
pub(super) const MAX_AHEAD: u64 = 16;
/// Memory the kept batches may take at most (each counted by the bound of its decoded size,
/// [`crate::encoding::decoded_size_bound`]): a peer gossiping made-up batches for future
/// rounds fills this, not the node's memory. A full budget makes room for a nearer round by
/// dropping the farthest rounds' batches; a batch that still does not fit is not kept (its
/// round is fetched once finalized).
pub(super) const MAX_KEPT_BYTES: usize = 32 << 20;
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
    /// What the network does with the gossiped batches this catch-up used or let go: the ones
    /// applied are relayed, the rest not.
    pub(super) verdicts: Vec<(Gossiped, Verdict)>,
}

/// An executed batch kept for a round not applied yet.
struct Kept {
    batch: ExecutedBatch,
    /// Its memory, at most ([`crate::encoding::decoded_size_bound`] of its encoding).
    weight: usize,
    /// The gossip message it came in, held unrelayed until the batch proves itself.
    origin: Option<Gossiped>,
}

/// Executed batches seen for rounds not yet applied, and the fetch clock.
pub(super) struct Follower {
    rid: RuntimeId,
    executed: HashMap<(Round, Hash, Hash), Kept>,
    /// Sum of the kept batches' weights.
    kept_bytes: usize,
    /// The next round's (round, state root, io root) once it is finalized and its batch is
    /// missing: only that batch is kept for that round then, and it gets room whatever else
    /// is kept.
    expect: Option<(Round, Hash, Hash)>,
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
            kept_bytes: 0,
            expect: None,
            last_fetch: None,
        }
    }

    /// Keeps an executed batch (gossiped, fetched or executed here; `weight` bounds its
    /// memory) for one of the [`MAX_AHEAD`] rounds after `applied_round`, within
    /// [`MAX_EXECUTED`] batches and [`MAX_KEPT_BYTES`]; the first one per (round, roots) stays.
    /// A batch makes room by displacing farther rounds' batches; the batch of a finalized round
    /// this node waits for displaces any, and other batches of that round are not kept — so
    /// made-up batches cost at most a fetch of the real one. Returns the gossip messages of
    /// the batches not kept — this one, or the ones it displaced — which are not relayed.
    pub(super) fn offer(
        &mut self,
        b: ExecutedBatch,
        weight: usize,
        origin: Option<Gossiped>,
        applied_round: Round,
    ) -> Vec<Gossiped> {
        let key = (b.round, b.state_root, b.io_root);
        if b.runtime != self.rid
            || b.round <= applied_round
            || b.round.0 - applied_round.0 > MAX_AHEAD
            || weight > MAX_KEPT_BYTES
            || self.executed.contains_key(&key)
            || self.expect.is_some_and(|e| e.0 == b.round && e != key)
        {
            return origin.into_iter().collect();
        }
        let expected = self.expect == Some(key);
        // What it may displace, farthest rounds first: farther rounds' batches (any, for the
        // batch this node waits for). Nothing goes unless enough can go.
        let mut movable: Vec<((Round, Hash, Hash), usize)> = self
            .executed
            .iter()
            .filter(|(k, _)| expected || k.0 > b.round)
            .map(|(k, v)| (*k, v.weight))
            .collect();
        let movable_bytes: usize = movable.iter().map(|(_, w)| w).sum();
        if self.executed.len() - movable.len() >= MAX_EXECUTED
            || (self.kept_bytes - movable_bytes).saturating_add(weight) > MAX_KEPT_BYTES
        {
            return origin.into_iter().collect();
        }
        movable.sort_by_key(|(k, _)| std::cmp::Reverse(k.0));
        let mut displaced = Vec::new();
        let mut movable = movable.into_iter();
        while self.executed.len() >= MAX_EXECUTED
            || self.kept_bytes.saturating_add(weight) > MAX_KEPT_BYTES
        {
            let Some((far, _)) = movable.next() else {
                break;
            };
            displaced.extend(self.take(&far).and_then(|k| k.origin));
        }
        self.kept_bytes += weight;
        self.executed.insert(
            key,
            Kept {
                batch: b,
                weight,
                origin,
            },
        );
        displaced
    }

    /// Memory the kept batches take at most, and how many there are.
    #[cfg(test)]
    fn kept(&self) -> (usize, usize) {
        (self.kept_bytes, self.executed.len())
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
            let Some(Kept { batch, origin, .. }) = self.take(&key) else {
                // The round is final: its other batches can never be applied, and only its
                // own is kept from now on.
                self.expect = Some(key);
                for o in self.drop_where(|k| k.0 == round) {
                    progress.verdicts.push((o, Verdict::Drop));
                }
                if fetch_due(self.last_fetch, round, now) {
                    self.last_fetch = Some((round, now));
                    progress.fetch = Some(round);
                }
                break;
            };
            // A batch that claims the finalized roots and does not lead to them is a lie: its
            // sender is refused (honest nodes relay only batches that did).
            if let Err(e) = batch.verify(&header, &applied.state_root) {
                log::warn!(target: MODULE, runtime_id:% = rid, round = round.0; "discarding executed batch: {e}");
                progress
                    .verdicts
                    .extend(origin.map(|o| (o, Verdict::Refuse)));
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
                // A lie (roots it does not lead to), or this node's store failing: not relayed,
                // not counted against the sender.
                log::warn!(target: MODULE, runtime_id:% = rid, round = round.0; "discarding executed batch: {e}");
                progress.verdicts.extend(origin.map(|o| (o, Verdict::Drop)));
                break;
            }
            if let Err(e) = store.apply_round(&rid, round, Some(&batch), &header.state_root) {
                log::error!(target: MODULE, runtime_id:% = rid, round = round.0; "cannot apply round: {e}");
                progress.verdicts.extend(origin.map(|o| (o, Verdict::Drop)));
                break;
            }
            progress
                .verdicts
                .extend(origin.map(|o| (o, Verdict::Relay)));
            *applied = Applied {
                round,
                state_root: header.state_root,
            };
            log::info!(target: MODULE, runtime_id:% = rid, round = round.0, txs = batch.inputs.len(), state_root = hex::encode(header.state_root).as_str(); "runtime round finalized");
            progress.batches.push(batch);
        }
        let applied_round = applied.round;
        for o in self.drop_where(|k| k.0 <= applied_round) {
            progress.verdicts.push((o, Verdict::Drop));
        }
        progress
    }

    /// Removes a kept batch.
    fn take(&mut self, key: &(Round, Hash, Hash)) -> Option<Kept> {
        let k = self.executed.remove(key)?;
        self.kept_bytes -= k.weight;
        Some(k)
    }

    /// Removes the kept batches whose (round, roots) match; returns their gossip messages.
    fn drop_where(&mut self, matches: impl Fn(&(Round, Hash, Hash)) -> bool) -> Vec<Gossiped> {
        let keys: Vec<_> = self
            .executed
            .keys()
            .filter(|k| matches(k))
            .copied()
            .collect();
        keys.iter()
            .filter_map(|k| self.take(k).and_then(|k| k.origin))
            .collect()
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
        x.f.offer(b.clone(), 1000, None, Round(0));
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
        x.f.offer(b1, 1000, None, Round(0));
        x.f.offer(b2.clone(), 1000, None, Round(0));
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
        // Made up by the peer that sent it: its message is refused (never relayed, counted
        // against the peer).
        x.f.offer(forged, 1000, Some(Gossiped::for_test(7)), Round(0));
        let p = x.catch_up(&header(&good, HeaderType::Normal), Instant::now());
        assert_eq!(p.verdicts, vec![(Gossiped::for_test(7), Verdict::Refuse)]);
        assert_eq!(x.f.kept(), (0, 0));
        assert!(p.batches.is_empty());
        assert_eq!(x.applied.round, paratime_state::Round(0));
        assert_eq!(x.store.runtime_applied(&RID).expect("read"), None);
        assert_eq!(x.state.root(), paratime_sdk::state::EMPTY_STATE_ROOT);
        // The honest batch, arriving later, is applied.
        x.f.offer(good.clone(), 1000, None, Round(0));
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
    fn batches_for_other_runtimes_applied_or_far_rounds_or_beyond_the_cap_are_not_kept() {
        let mut x = fixture();
        let mut other = batch(1, [0; 32], b"k");
        other.runtime = RuntimeId([2; 32]);
        let o = |n| Some(Gossiped::for_test(n));
        assert_eq!(x.f.offer(other, 1000, o(1), Round(0)).len(), 1);
        assert_eq!(
            x.f.offer(batch(3, [0; 32], b"k"), 1000, o(2), Round(3))
                .len(),
            1
        );
        let far = batch(MAX_AHEAD + 1, [0; 32], b"k");
        assert_eq!(
            x.f.offer(far, 1000, o(3), Round(0)),
            vec![Gossiped::for_test(3)]
        );
        assert_eq!(x.f.kept(), (0, 0));
        for i in 0..1000u32 {
            x.f.offer(batch(5, [0; 32], &i.to_le_bytes()), 1000, None, Round(0));
        }
        assert_eq!(x.f.kept(), (MAX_EXECUTED * 1000, MAX_EXECUTED));
        // The same batch again is not kept twice.
        let first = x.f.executed.values().next().map(|k| k.batch.clone());
        let again = x.f.offer(first.expect("kept"), 1000, o(4), Round(0));
        assert_eq!(again, vec![Gossiped::for_test(4)]);
    }

    /// A peer gossiping made-up batches of the maximum decoded size for every future round
    /// fills [`MAX_KEPT_BYTES`], not memory; a batch of a nearer round still gets in by
    /// displacing the farthest ones, whose messages are then not relayed; a batch of a round as
    /// far as the junk does not.
    #[test]
    fn made_up_batches_fill_a_byte_budget_and_nearer_rounds_displace_them() {
        let mut x = fixture();
        let big = MAX_KEPT_BYTES / 4;
        let mut n = 0;
        for round in 2..=MAX_AHEAD {
            for i in 0..100u32 {
                n += 1;
                x.f.offer(
                    batch(round, [0; 32], &i.to_le_bytes()),
                    big,
                    Some(Gossiped::for_test(n)),
                    Round(0),
                );
            }
        }
        let (bytes, count) = x.f.kept();
        assert!(
            bytes <= MAX_KEPT_BYTES && count == 4,
            "{bytes} bytes, {count} batches"
        );
        // The nearest junk rounds stayed.
        assert!(
            x.f.executed.keys().all(|k| k.0 == Round(2)),
            "{:?}",
            x.f.executed.keys()
        );
        // Round 1's honest batch displaces one of them…
        let honest = batch(1, x.applied.state_root, b"k");
        let displaced =
            x.f.offer(honest.clone(), big, Some(Gossiped::for_test(0)), Round(0));
        assert_eq!(displaced.len(), 1);
        assert_eq!(x.f.kept(), (MAX_KEPT_BYTES, 4));
        // …one more of round 2 does not get in, and is not relayed.
        let late = batch(2, [0; 32], b"late");
        assert_eq!(
            x.f.offer(late, big, Some(Gossiped::for_test(9999)), Round(0)),
            vec![Gossiped::for_test(9999)]
        );
        // Applying round 1 relays the honest batch's message; the junk of round 2 goes when
        // round 2 is applied with another batch, unrelayed.
        let p = x.catch_up(&header(&honest, HeaderType::Normal), Instant::now());
        assert_eq!(p.verdicts, vec![(Gossiped::for_test(0), Verdict::Relay)]);
        assert_eq!(x.f.kept(), (3 * big, 3));
        let failed = header(&batch(2, [0; 32], b"x"), HeaderType::RoundFailed);
        let p = x.catch_up(&failed, Instant::now());
        assert_eq!(p.verdicts.len(), 3);
        assert!(
            p.verdicts.iter().all(|(_, v)| *v == Verdict::Drop),
            "{:?}",
            p.verdicts
        );
        assert_eq!(x.f.kept(), (0, 0));
    }

    /// Made-up batches of the very next round fill the budget before the honest one arrives
    /// (the honest gossiped copy is turned away); once the round is finalized they go, more of
    /// them are not kept, and the honest batch — fetched — gets in and is applied.
    #[test]
    fn made_up_batches_of_the_next_round_cost_a_fetch_not_the_round() {
        let mut x = fixture();
        let big = MAX_KEPT_BYTES / 4;
        for i in 0..4u32 {
            x.f.offer(
                batch(1, [0; 32], &i.to_le_bytes()),
                big,
                Some(Gossiped::for_test(i)),
                Round(0),
            );
        }
        // Tiny ones of round 2 as well: the count limit is full too.
        for i in 0..300u32 {
            x.f.offer(batch(2, [0; 32], &i.to_le_bytes()), 0, None, Round(0));
        }
        assert_eq!(x.f.kept().1, MAX_EXECUTED);
        let honest = batch(1, x.applied.state_root, b"k");
        let turned_away = x.f.offer(
            honest.clone(),
            1000,
            Some(Gossiped::for_test(100)),
            Round(0),
        );
        assert_eq!(turned_away, vec![Gossiped::for_test(100)]);
        // Round 1 is finalized: its made-up batches go, and it is fetched.
        let h = header(&honest, HeaderType::Normal);
        let p = x.catch_up(&h, Instant::now());
        assert_eq!(p.fetch, Some(Round(1)));
        assert_eq!(p.verdicts.len(), 4);
        assert!(
            p.verdicts.iter().all(|(_, v)| *v == Verdict::Drop),
            "{:?}",
            p.verdicts
        );
        // More made-up batches of round 1 are not kept; round 2's fill the count again; the
        // fetched honest one gets in all the same, displacing one of those.
        let junk = batch(1, [0; 32], b"more");
        assert_eq!(
            x.f.offer(junk, big, Some(Gossiped::for_test(200)), Round(0))
                .len(),
            1
        );
        for i in 300..310u32 {
            x.f.offer(batch(2, [0; 32], &i.to_le_bytes()), 0, None, Round(0));
        }
        assert_eq!(x.f.kept().1, MAX_EXECUTED);
        assert!(x.f.offer(honest, 1000, None, Round(0)).is_empty());
        assert_eq!(x.f.kept().1, MAX_EXECUTED);
        let p = x.catch_up(&h, Instant::now());
        assert_eq!((p.batches.len(), x.applied.round), (1, Round(1)));
    }
}
