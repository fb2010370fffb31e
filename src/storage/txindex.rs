//! Where the recently finalized transactions of each hosted runtime are: transaction hash →
//! (round, index in its batch), in memory, bounded by a number of entries.
//!
//! The index answers two questions, both about recent transactions: whether a gossiped
//! transaction is finalized already (so it is not checked again), and what a client that
//! resubmits a finalized transaction is told (its outcome, read from the stored batch). It used
//! to be a redb table keyed by hash: a round of 500 transactions inserted 500 keys on ~400
//! random pages of that table and pruning deleted them again on as many, which cost the
//! hosting nodes ~15 % of their throughput (docs/testing.md, stop 40). The stored batches hold
//! everything the index is made of, so it is rebuilt from the newest of them when a runtime's
//! index is first used after a start.
//!
//! Bounded: at most [`TxIndex::max_entries`] entries per runtime, oldest rounds out first, so
//! neither a long history (`runtime.prune.strategy: none`) nor large batches grow it further.
//! A transaction older than that is not known here: gossip of it goes to check-tx again (where
//! a signed transaction's nonce turns it away) and a resubmission is checked like a new one.

use crate::bundle::RuntimeId;
use crate::encoding::Hash;
use paratime_state::Round;
use std::collections::{HashMap, VecDeque};

/// Entries kept per runtime by default: ~7 MB at most (~56 bytes per entry in the map), about
/// a minute of transactions at 2,000 per second, 262 full rounds of 500.
pub const MAX_ENTRIES: usize = 1 << 17;

/// The indexes of all hosted runtimes.
#[derive(Debug)]
pub(crate) struct TxIndex {
    runtimes: HashMap<RuntimeId, Recent>,
    max_entries: usize,
}

/// One runtime's recent transactions.
#[derive(Debug, Default)]
struct Recent {
    at: HashMap<Hash, (Round, u32)>,
    /// Rounds indexed, oldest first, with the number of transactions each added (a transaction
    /// finalized again in a later round counts in both: the counts bound the map from above).
    rounds: VecDeque<(Round, usize)>,
}

impl TxIndex {
    pub(crate) fn new(max_entries: usize) -> Self {
        Self {
            runtimes: HashMap::new(),
            max_entries,
        }
    }

    /// Entries kept per runtime at most.
    pub(crate) fn max_entries(&self) -> usize {
        self.max_entries
    }

    /// Whether `rid`'s index was built since the start.
    pub(crate) fn is_loaded(&self, rid: &RuntimeId) -> bool {
        self.runtimes.contains_key(rid)
    }

    /// Builds `rid`'s index from its newest stored rounds, given newest first as (round, hashes
    /// of its inputs); takes rounds while they fit within the bound.
    pub(crate) fn load(
        &mut self,
        rid: &RuntimeId,
        newest_first: impl IntoIterator<Item = (Round, Vec<Hash>)>,
    ) {
        let mut taken = Vec::new();
        let mut total = 0usize;
        for (round, hashes) in newest_first {
            if total + hashes.len() > self.target() {
                break;
            }
            total += hashes.len();
            taken.push((round, hashes));
        }
        let recent = self.runtimes.entry(*rid).or_default();
        for (round, hashes) in taken.into_iter().rev() {
            recent.add(round, &hashes);
        }
    }

    /// Where `h` was finalized, if it is among `rid`'s recent transactions.
    pub(crate) fn get(&self, rid: &RuntimeId, h: &Hash) -> Option<(Round, u32)> {
        self.runtimes.get(rid)?.at.get(h).copied()
    }

    /// Indexes a finalized round's inputs (their hashes, in batch order). A round older than
    /// the newest indexed one is not indexed (rounds are applied in order; one applied again
    /// after a restart is in the index already or older than it).
    pub(crate) fn add(&mut self, rid: &RuntimeId, round: Round, hashes: &[Hash]) {
        let target = self.target();
        let max = self.max_entries;
        let recent = self.runtimes.entry(*rid).or_default();
        recent.add(round, hashes);
        if recent.at.len() > max {
            recent.shrink_to(target);
        }
    }

    /// Forgets `rid`'s rounds at or below `round` (pruned).
    pub(crate) fn forget_through(&mut self, rid: &RuntimeId, round: Round) {
        if let Some(recent) = self.runtimes.get_mut(rid) {
            recent.forget_through(round);
        }
    }

    /// Entries held for `rid`.
    #[cfg(test)]
    pub(crate) fn len(&self, rid: &RuntimeId) -> usize {
        self.runtimes.get(rid).map_or(0, |r| r.at.len())
    }

    /// What the index is brought back to when it outgrows its bound: 7/8 of it, so that a
    /// full index sheds rounds once per eighth of its size, not at every round.
    fn target(&self) -> usize {
        self.max_entries - self.max_entries / 8
    }
}

impl Recent {
    fn add(&mut self, round: Round, hashes: &[Hash]) {
        match self.rounds.back_mut() {
            Some((last, _)) if round < *last => return,
            Some((last, n)) if round == *last => *n += hashes.len(),
            _ => self.rounds.push_back((round, hashes.len())),
        }
        for (i, h) in hashes.iter().enumerate() {
            // u32: a batch's index, as in the executed batch's results (its length is bounded
            // far below by the batch size and the message bounds).
            self.at.insert(*h, (round, i as u32));
        }
    }

    /// Drops the oldest rounds until the newest ones' counts add up to at most `target`.
    fn shrink_to(&mut self, target: usize) {
        let mut kept = 0usize;
        let mut newest_dropped = None;
        for (round, n) in self.rounds.iter().rev() {
            if kept + n > target {
                newest_dropped = Some(*round);
                break;
            }
            kept += n;
        }
        if let Some(round) = newest_dropped {
            self.forget_through(round);
        }
    }

    fn forget_through(&mut self, round: Round) {
        let before = self.rounds.len();
        while self.rounds.front().is_some_and(|(r, _)| *r <= round) {
            self.rounds.pop_front();
        }
        if self.rounds.len() != before {
            self.at.retain(|_, (r, _)| *r > round);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RID: RuntimeId = RuntimeId([7; 32]);

    fn hashes(round: u64, n: usize) -> Vec<Hash> {
        (0..n)
            .map(|i| crate::encoding::hash(format!("{round}/{i}").as_bytes()))
            .collect()
    }

    #[test]
    fn a_flood_of_finalized_transactions_stays_within_the_bound_newest_rounds_kept() {
        let mut ix = TxIndex::new(1_000);
        for round in 1..=100u64 {
            ix.add(&RID, Round(round), &hashes(round, 37));
            assert!(ix.len(&RID) <= 1_000, "round {round}: {}", ix.len(&RID));
        }
        // The newest rounds are there, the oldest are not.
        assert_eq!(ix.get(&RID, &hashes(100, 37)[36]), Some((Round(100), 36)));
        assert_eq!(ix.get(&RID, &hashes(1, 37)[0]), None);
        // A round larger than the bound is not kept (nothing else is lost beyond the bound).
        ix.add(&RID, Round(101), &hashes(101, 5_000));
        assert!(ix.len(&RID) <= 1_000, "{}", ix.len(&RID));
    }

    #[test]
    fn a_transaction_finalized_again_keeps_its_newest_place_when_the_older_round_goes() {
        let mut ix = TxIndex::new(1_000);
        let h = hashes(1, 3);
        ix.add(&RID, Round(1), &h);
        ix.add(&RID, Round(3), &[hashes(3, 1)[0], h[2]]);
        assert_eq!(ix.get(&RID, &h[2]), Some((Round(3), 1)));
        ix.forget_through(&RID, Round(1));
        assert_eq!(ix.get(&RID, &h[0]), None);
        assert_eq!(ix.get(&RID, &h[2]), Some((Round(3), 1)));
        // An older round arriving late is not indexed over the newer place.
        ix.add(&RID, Round(2), &[h[2]]);
        assert_eq!(ix.get(&RID, &h[2]), Some((Round(3), 1)));
    }

    #[test]
    fn runtimes_have_their_own_index() {
        let mut ix = TxIndex::new(100);
        let other = RuntimeId([8; 32]);
        ix.add(&RID, Round(1), &hashes(1, 90));
        ix.add(&other, Round(1), &hashes(2, 90));
        assert_eq!(ix.get(&RID, &hashes(1, 90)[0]), Some((Round(1), 0)));
        assert_eq!(ix.get(&other, &hashes(1, 90)[0]), None);
        ix.forget_through(&other, Round(1));
        assert_eq!(ix.len(&other), 0);
        assert_eq!(ix.len(&RID), 90);
    }

    #[test]
    fn a_load_takes_the_newest_rounds_that_fit() {
        let mut ix = TxIndex::new(100);
        // 7/8 of 100 = 87: rounds 9, 8 and 7 of 25 each fit (75), round 6 does not.
        ix.load(&RID, (1..=9u64).rev().map(|r| (Round(r), hashes(r, 25))));
        assert_eq!(ix.len(&RID), 75);
        assert!(ix.get(&RID, &hashes(7, 25)[24]).is_some());
        assert!(ix.get(&RID, &hashes(6, 25)[0]).is_none());
        // Round 10 brings 101 entries, over the bound: back to at most 87, newest first.
        ix.add(&RID, Round(10), &hashes(10, 26));
        assert_eq!(ix.len(&RID), 76, "round 7 went to make room");
        assert!(ix.get(&RID, &hashes(7, 25)[24]).is_none());
        assert!(ix.get(&RID, &hashes(8, 25)[0]).is_some());
    }
}
