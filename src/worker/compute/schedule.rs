//! The committee's rules for one round, as decisions on their inputs (time included): who
//! proposes when, which proposal is executed, who executes, when a signed commitment is sent
//! again. No I/O here; the worker gathers the inputs and acts on the answers.

use crate::consensus::crypto::PublicKey;
use crate::consensus::genesis::TxnSchedulerParams;
use crate::consensus::roothash::{self, Proposal};
use crate::encoding::{hash_of, Hash};
use paratime_state::Round;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// Rounds ahead of the applied one whose proposals are kept.
const PROPOSAL_WINDOW: u64 = 16;
/// Proposals kept at most (all rounds, all signers).
const MAX_PROPOSALS: usize = 256;
/// Memory the kept proposals' batches may take at most (each transaction counted with
/// [`crate::encoding::ITEM_COST`]): anyone can sign a proposal of 8 MiB.
const MAX_PROPOSAL_BYTES: usize = 32 << 20;

/// The memory a proposal's batch takes, at most.
fn weight(p: &Proposal) -> usize {
    p.batch
        .iter()
        .map(|t| t.len() + crate::encoding::ITEM_COST)
        .sum()
}
/// A commitment already signed is sent again at most this often while the pool lacks it.
pub(super) const RESUBMIT_EVERY: Duration = Duration::from_secs(2);

/// The runtime's batch parameters, as durations.
#[derive(Clone, Copy, Debug)]
pub(super) struct Timing {
    /// Transactions per batch (at least one).
    pub(super) max_batch: usize,
    /// The scheduler proposes once its oldest transaction waited this long (or the batch is full).
    pub(super) batch_flush: Duration,
    /// The rank-k backup scheduler waits k times this before proposing.
    pub(super) propose_timeout: Duration,
}

impl Timing {
    pub(super) fn of(t: &TxnSchedulerParams) -> Self {
        Self {
            max_batch: usize::try_from(t.max_batch_size.max(1)).unwrap_or(usize::MAX),
            batch_flush: Duration::from_millis(t.batch_flush_timeout_ms),
            propose_timeout: Duration::from_millis(t.propose_batch_timeout_ms),
        }
    }
}

/// What a scheduler knows when it decides whether to propose.
#[derive(Clone, Copy, Debug)]
pub(super) struct ProposeInputs {
    /// This node's scheduler rank in the round (0 = the round's scheduler).
    pub(super) rank: u64,
    /// Transactions in the pool.
    pub(super) pool_len: usize,
    /// Age of the pool's oldest transaction.
    pub(super) oldest_age: Option<Duration>,
    /// The best rank among the proposals seen for the round.
    pub(super) best_seen: Option<u64>,
    /// Whether the consensus already fixed the round to a scheduler (a commitment was accepted).
    pub(super) fixed: bool,
    /// How long this node has seen the round open.
    pub(super) open_for: Duration,
}

/// Whether this node proposes a batch now.
///
/// The round's scheduler (rank 0) proposes when the batch is full or its oldest transaction
/// waited the flush timeout. A backup of rank k steps in when the better-ranked ones stay
/// silent: no proposal of a better rank seen, the round not fixed, transactions waiting, and
/// both the round and its oldest transaction older than k × the propose timeout.
pub(super) fn propose_now(t: &Timing, i: &ProposeInputs) -> bool {
    if i.rank == 0 {
        return i.pool_len >= t.max_batch || i.oldest_age.is_some_and(|a| a >= t.batch_flush);
    }
    let wait = backup_wait(t, i.rank);
    i.best_seen.is_none_or(|b| b > i.rank)
        && !i.fixed
        && i.pool_len > 0
        && i.open_for >= wait
        && i.oldest_age.is_some_and(|a| a >= wait)
}

/// How long the rank-`rank` backup scheduler waits (saturating: a huge timeout from the genesis
/// means "never", not an overflow).
fn backup_wait(t: &Timing, rank: u64) -> Duration {
    let ms = u64::try_from(t.propose_timeout.as_millis())
        .unwrap_or(u64::MAX)
        .saturating_mul(rank);
    Duration::from_millis(ms)
}

/// Whether this node executes the round's batch: the workers do, unless the round is in
/// discrepancy resolution, when only the backup workers do.
pub(super) fn executes(is_worker: bool, is_backup: bool, discrepancy: bool) -> bool {
    if discrepancy {
        is_backup
    } else {
        is_worker
    }
}

/// Whether a commitment this node signed for the open round is sent again.
///
/// It is while the round's commitment pool does not show it (lost, or signed before a restart)
/// and at most every [`RESUBMIT_EVERY`]; never once the consensus fixed the round to another
/// scheduler than the one whose proposal it executed (it can never be accepted then).
pub(super) fn resubmit_now(
    signed_for: Option<PublicKey>,
    fixed: Option<PublicKey>,
    in_pool: bool,
    since_last_submit: Option<Duration>,
) -> bool {
    let other = matches!((signed_for, fixed), (Some(mine), Some(f)) if mine != f);
    let due = since_last_submit.is_none_or(|d| d > RESUBMIT_EVERY);
    !in_pool && !other && due
}

/// Scheduler ranks of a round's workers.
pub(super) struct Ranks<'a> {
    workers: &'a [PublicKey],
    round: Round,
}

impl<'a> Ranks<'a> {
    pub(super) fn new(workers: &'a [PublicKey], round: Round) -> Self {
        Self { workers, round }
    }

    /// The rank of `k`, if it is a worker.
    pub(super) fn of(&self, k: &PublicKey) -> Option<u64> {
        self.workers
            .iter()
            .position(|w| w == k)
            .map(|i| roothash::rank_of(i, self.workers.len(), self.round))
    }
}

/// Since when this node has seen the open round open.
pub(super) struct RoundClock {
    round: Round,
    opened: Instant,
}

impl RoundClock {
    pub(super) fn new(now: Instant) -> Self {
        Self {
            round: Round(0),
            opened: now,
        }
    }

    /// Notes that `round` is open at `now`; returns how long it has been open.
    pub(super) fn open_for(&mut self, round: Round, now: Instant) -> Duration {
        if self.round != round {
            self.round = round;
            self.opened = now;
        }
        now.saturating_duration_since(self.opened)
    }
}

/// Batch proposals seen, by (round, signer). A proposal signed by someone other than the
/// round's scheduler can never displace the scheduler's: the first one per signer and round
/// stays.
#[derive(Default)]
pub(super) struct Proposals {
    by: BTreeMap<(Round, PublicKey), Proposal>,
    /// Sum of the kept proposals' weights.
    bytes: usize,
}

impl Proposals {
    /// Keeps a gossiped proposal (its signature already checked) if it is for one of the next
    /// [`PROPOSAL_WINDOW`] rounds after `applied_round`, its batch matches its hash, and there is
    /// room ([`MAX_PROPOSALS`], [`MAX_PROPOSAL_BYTES`]); returns whether it was kept.
    ///
    /// Anyone can sign a proposal, so a full book makes room for a signer of the current
    /// committee (`is_member`) by dropping ones from signers outside it: throwaway keys cannot
    /// crowd out the committee. Outsiders are still kept while there is room (the next epoch's
    /// committee may propose before this node sees it elected).
    pub(super) fn offer(
        &mut self,
        signer: PublicKey,
        p: Proposal,
        applied_round: Round,
        is_member: impl Fn(&PublicKey) -> bool,
    ) -> bool {
        if p.round <= applied_round
            || p.round > applied_round.saturating_add(PROPOSAL_WINDOW)
            || p.batch_hash != hash_of(&p.batch)
            || self.by.contains_key(&(p.round, signer))
        {
            return false;
        }
        let w = weight(&p);
        if w > MAX_PROPOSAL_BYTES {
            return false;
        }
        while self.by.len() >= MAX_PROPOSALS || self.bytes + w > MAX_PROPOSAL_BYTES {
            if !is_member(&signer) {
                return false;
            }
            let Some(outsider) = self.by.keys().find(|(_, k)| !is_member(k)).copied() else {
                return false;
            };
            if let Some(gone) = self.by.remove(&outsider) {
                self.bytes -= weight(&gone);
            }
        }
        self.bytes += w;
        self.by.insert((p.round, signer), p);
        true
    }

    /// Records this node's own proposal.
    pub(super) fn insert_own(&mut self, me: PublicKey, p: Proposal) {
        self.bytes += weight(&p);
        if let Some(old) = self.by.insert((p.round, me), p) {
            self.bytes -= weight(&old);
        }
    }

    /// The best-ranked proposal seen for `round` that builds on `prev_hash` (only `fixed`'s once
    /// the consensus fixed the round's scheduler): (rank, scheduler).
    pub(super) fn best(
        &self,
        round: Round,
        prev_hash: &Hash,
        fixed: Option<PublicKey>,
        ranks: &Ranks<'_>,
    ) -> Option<(u64, PublicKey)> {
        self.by
            .range((round, PublicKey([0; 32]))..=(round, PublicKey([0xff; 32])))
            .filter(|((_, signer), p)| {
                &p.previous_hash == prev_hash && fixed.is_none_or(|s| s == *signer)
            })
            .filter_map(|((_, signer), _)| ranks.of(signer).map(|k| (k, *signer)))
            .min()
    }

    pub(super) fn get(&self, round: Round, signer: &PublicKey) -> Option<&Proposal> {
        self.by.get(&(round, *signer))
    }

    /// Forgets proposals for rounds up to `applied_round`.
    pub(super) fn prune(&mut self, applied_round: Round) {
        let mut freed = 0;
        self.by.retain(|(r, _), p| {
            let keep = *r > applied_round;
            if !keep {
                freed += weight(p);
            }
            keep
        });
        self.bytes -= freed;
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.by.len()
    }

    #[cfg(test)]
    fn offer_any(&mut self, signer: PublicKey, p: Proposal, applied_round: Round) -> bool {
        self.offer(signer, p, applied_round, |_| false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bundle::RuntimeId;
    use serde_bytes::ByteBuf;

    const MS: Duration = Duration::from_millis(1);

    fn timing() -> Timing {
        Timing {
            max_batch: 10,
            batch_flush: 100 * MS,
            propose_timeout: 2000 * MS,
        }
    }

    fn inputs(rank: u64) -> ProposeInputs {
        ProposeInputs {
            rank,
            pool_len: 1,
            oldest_age: Some(Duration::ZERO),
            best_seen: None,
            fixed: false,
            open_for: Duration::ZERO,
        }
    }

    fn key(i: u8) -> PublicKey {
        PublicKey([i; 32])
    }

    fn proposal(round: u64, prev: Hash, txs: &[&[u8]]) -> Proposal {
        let round = Round(round);
        let batch: Vec<ByteBuf> = txs.iter().map(|t| ByteBuf::from(t.to_vec())).collect();
        Proposal {
            runtime: RuntimeId([1; 32]),
            round,
            previous_hash: prev,
            batch_hash: hash_of(&batch),
            batch,
        }
    }

    #[test]
    fn the_scheduler_proposes_when_the_batch_is_full_or_its_oldest_transaction_waited_the_flush_timeout(
    ) {
        let t = timing();
        let mut i = inputs(0);
        i.oldest_age = Some(99 * MS);
        assert!(!propose_now(&t, &i), "proposed before the flush timeout");
        i.oldest_age = Some(100 * MS);
        assert!(propose_now(&t, &i));
        i.oldest_age = Some(Duration::ZERO);
        i.pool_len = 10;
        assert!(propose_now(&t, &i), "a full batch waits for nothing");
        i.pool_len = 0;
        i.oldest_age = None;
        assert!(!propose_now(&t, &i), "proposed an empty batch");
    }

    #[test]
    fn a_rank_k_backup_proposes_after_k_propose_timeouts_of_silence() {
        let t = timing();
        for k in 1..4u64 {
            let wait = Duration::from_millis(2000 * k);
            let mut i = inputs(k);
            i.open_for = wait - MS;
            i.oldest_age = Some(wait);
            assert!(
                !propose_now(&t, &i),
                "rank {k} proposed before the round was open long enough"
            );
            i.open_for = wait;
            i.oldest_age = Some(wait - MS);
            assert!(
                !propose_now(&t, &i),
                "rank {k} proposed for a transaction that came late"
            );
            i.oldest_age = Some(wait);
            assert!(propose_now(&t, &i), "rank {k} did not step in");
            // A full pool does not make a backup hurry.
            i.pool_len = 1000;
            i.open_for = wait - MS;
            assert!(!propose_now(&t, &i));
        }
    }

    #[test]
    fn a_backup_stays_silent_when_a_better_rank_proposed_or_the_round_is_fixed_or_nothing_waits() {
        let t = timing();
        let mut i = inputs(2);
        i.open_for = Duration::from_secs(60);
        i.oldest_age = Some(Duration::from_secs(60));
        assert!(propose_now(&t, &i));
        for best in [0, 1] {
            assert!(!propose_now(
                &t,
                &ProposeInputs {
                    best_seen: Some(best),
                    ..i
                }
            ));
        }
        // Its own (or a worse rank's) proposal does not hold it back.
        assert!(propose_now(
            &t,
            &ProposeInputs {
                best_seen: Some(3),
                ..i
            }
        ));
        assert!(!propose_now(&t, &ProposeInputs { fixed: true, ..i }));
        assert!(!propose_now(
            &t,
            &ProposeInputs {
                pool_len: 0,
                oldest_age: None,
                ..i
            }
        ));
    }

    #[test]
    fn a_huge_propose_timeout_saturates_instead_of_overflowing() {
        let t = Timing {
            propose_timeout: Duration::from_millis(u64::MAX),
            ..timing()
        };
        let mut i = inputs(u64::MAX);
        i.open_for = Duration::from_secs(1 << 40);
        i.oldest_age = Some(Duration::from_secs(1 << 40));
        assert!(!propose_now(&t, &i));
    }

    #[test]
    fn workers_execute_and_only_backups_do_during_discrepancy_resolution() {
        assert!(executes(true, false, false));
        assert!(!executes(false, true, false));
        assert!(!executes(false, false, false));
        assert!(executes(false, true, true));
        assert!(!executes(true, false, true));
        assert!(executes(true, true, true));
    }

    #[test]
    fn a_signed_commitment_is_resent_while_missing_from_the_pool_at_most_every_two_seconds() {
        let s = Some(key(1));
        assert!(
            resubmit_now(s, None, false, None),
            "not sent after a restart"
        );
        assert!(
            !resubmit_now(s, None, true, None),
            "sent again though the pool has it"
        );
        assert!(!resubmit_now(s, None, false, Some(RESUBMIT_EVERY)));
        assert!(resubmit_now(s, None, false, Some(RESUBMIT_EVERY + MS)));
        // Fixed to the scheduler it executed for: still useful.
        assert!(resubmit_now(s, s, false, None));
        // Fixed to another scheduler: it can never be accepted.
        assert!(!resubmit_now(s, Some(key(2)), false, None));
        // A record from before schedulers were recorded is still sent.
        assert!(resubmit_now(None, Some(key(2)), false, None));
    }

    #[test]
    fn ranks_rotate_with_the_round_and_non_workers_have_none() {
        let w = [key(1), key(2), key(3)];
        let r0 = Ranks::new(&w, Round(0));
        assert_eq!(
            [r0.of(&key(1)), r0.of(&key(2)), r0.of(&key(3))],
            [Some(0), Some(1), Some(2)]
        );
        let r1 = Ranks::new(&w, Round(1));
        assert_eq!(r1.of(&key(3)), Some(0));
        assert_eq!(r1.of(&key(9)), None);
    }

    #[test]
    fn the_round_clock_restarts_when_a_new_round_opens() {
        let t0 = Instant::now();
        let mut c = RoundClock::new(t0);
        assert_eq!(c.open_for(Round(5), t0 + 10 * MS), Duration::ZERO);
        assert_eq!(c.open_for(Round(5), t0 + 30 * MS), 20 * MS);
        assert_eq!(c.open_for(Round(6), t0 + 40 * MS), Duration::ZERO);
    }

    #[test]
    fn the_first_proposal_per_signer_and_round_stays_and_the_best_rank_wins() {
        let prev = [7; 32];
        let w = [key(1), key(2), key(3)];
        let ranks = Ranks::new(&w, Round(1)); // ranks: key(3)=0, key(1)=1, key(2)=2
        let mut ps = Proposals::default();
        assert!(ps.offer_any(key(2), proposal(1, prev, &[b"a"]), Round(0)));
        assert!(
            !ps.offer_any(key(2), proposal(1, prev, &[b"b"]), Round(0)),
            "a second proposal replaced the first"
        );
        assert_eq!(ps.get(Round(1), &key(2)).map(|p| p.batch.len()), Some(1));
        assert_eq!(ps.best(Round(1), &prev, None, &ranks), Some((2, key(2))));
        assert!(ps.offer_any(key(1), proposal(1, prev, &[]), Round(0)));
        assert_eq!(ps.best(Round(1), &prev, None, &ranks), Some((1, key(1))));
        // Once the round is fixed to a scheduler, only its proposal counts.
        assert_eq!(
            ps.best(Round(1), &prev, Some(key(2)), &ranks),
            Some((2, key(2)))
        );
        assert_eq!(ps.best(Round(1), &prev, Some(key(3)), &ranks), None);
        // Proposals building on another block, or signed by non-workers, never count.
        assert_eq!(ps.best(Round(1), &[8; 32], None, &ranks), None);
        assert!(ps.offer_any(key(9), proposal(1, prev, &[]), Round(0)));
        assert_eq!(ps.best(Round(1), &prev, None, &ranks), Some((1, key(1))));
    }

    #[test]
    fn proposals_outside_the_window_or_with_a_lying_hash_are_dropped_and_the_book_is_bounded() {
        let prev = [7; 32];
        let mut ps = Proposals::default();
        assert!(
            !ps.offer_any(key(1), proposal(5, prev, &[]), Round(5)),
            "applied round kept"
        );
        assert!(
            !ps.offer_any(key(1), proposal(22, prev, &[]), Round(5)),
            "round too far ahead kept"
        );
        assert!(ps.offer_any(key(1), proposal(21, prev, &[]), Round(5)));
        let mut lying = proposal(6, prev, &[b"x"]);
        lying.batch_hash = [0; 32];
        assert!(!ps.offer_any(key(1), lying, Round(5)));
        for i in 0..=255u8 {
            ps.offer_any(PublicKey([i; 32]), proposal(6, prev, &[]), Round(5));
        }
        assert_eq!(ps.len(), MAX_PROPOSALS);
        ps.prune(Round(20));
        assert_eq!(ps.len(), 1, "only the round-21 proposal stays");
        // The window saturates at the last round instead of overflowing.
        assert!(ps.offer_any(key(1), proposal(u64::MAX, prev, &[]), Round(u64::MAX - 1)));
    }

    #[test]
    fn throwaway_keys_cannot_crowd_the_committee_out_of_a_full_book() {
        let prev = [7; 32];
        let mut ps = Proposals::default();
        let member = |k: &PublicKey| *k == key(1) || *k == key(2);
        // 256 proposals signed by outsiders fill the book.
        for i in 0..=255u8 {
            let outsider = PublicKey([
                i, 0xee, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
                0, 0, 0, 0, 0,
            ]);
            assert!(ps.offer(outsider, proposal(6, prev, &[]), Round(5), member));
        }
        assert_eq!(ps.len(), MAX_PROPOSALS);
        assert!(!ps.offer(PublicKey([9; 32]), proposal(6, prev, &[]), Round(5), member));
        // A committee member still gets in, in place of an outsider.
        assert!(ps.offer(key(1), proposal(6, prev, &[]), Round(5), member));
        assert!(ps.offer(key(2), proposal(7, prev, &[]), Round(5), member));
        assert_eq!(ps.len(), MAX_PROPOSALS);
        assert!(ps.get(Round(6), &key(1)).is_some() && ps.get(Round(7), &key(2)).is_some());
    }

    /// Outsiders signing proposals of large batches fill [`MAX_PROPOSAL_BYTES`], not memory;
    /// a member's large proposal still gets in by displacing them.
    #[test]
    fn large_proposals_fill_a_byte_budget_that_members_can_always_enter() {
        let prev = [7; 32];
        let mut ps = Proposals::default();
        let member = |k: &PublicKey| *k == key(1);
        let mb = vec![0u8; 1 << 20];
        let big = |round| proposal(round, prev, &[&mb, &mb, &mb, &mb]);
        let mut kept = 0;
        for i in 0..64u8 {
            kept += usize::from(ps.offer(PublicKey([i; 32]), big(6), Round(5), member));
        }
        assert!(ps.bytes <= MAX_PROPOSAL_BYTES, "{}", ps.bytes);
        assert_eq!(kept, MAX_PROPOSAL_BYTES / weight(&big(6)), "outsiders kept");
        assert!(
            ps.offer(key(1), big(7), Round(5), member),
            "the member gets in"
        );
        assert!(ps.bytes <= MAX_PROPOSAL_BYTES, "{}", ps.bytes);
        let too_big = proposal(8, prev, &vec![&mb[..]; 33]);
        assert!(
            !ps.offer(key(1), too_big, Round(5), member),
            "larger than the whole budget"
        );
        ps.prune(Round(7));
        assert_eq!((ps.len(), ps.bytes), (0, 0));
    }
}
