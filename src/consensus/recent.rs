//! What the engine remembers of recent transactions, by hash: the mempool's duplicate filter
//! and the committed outcomes clients ask for (`control tx-status`). Both were a ring of up to
//! 100,000 hashes searched or trimmed by count alone: at a validator's real rate (tens of
//! consensus transactions a second, not the 2,500 the count assumed) a ring took about an hour
//! to fill, so the node's memory grew for an hour (~15 MB), and every status query scanned the
//! whole ring under the lock the commit path takes. Now a hash map for lookups, and entries
//! leave by age (in blocks) as well as by count.

use crate::encoding::Hash;
use std::collections::{HashMap, VecDeque};

/// Values keyed by transaction hash, each with the height it was recorded at; kept for
/// `blocks` heights and at most `max` at once, the oldest leaving first.
pub(crate) struct Recent<V> {
    /// Hash → (the record's sequence number, (height, value)).
    map: HashMap<Hash, (u64, (u64, V))>,
    /// Insertion order, oldest first: (sequence number, height, hash). An entry whose hash was
    /// removed (or recorded again later) stays here until it is trimmed; it counts towards
    /// `max`, so memory stays bounded. The sequence number tells a record from a later one of
    /// the same hash, even at the same height.
    order: VecDeque<(u64, u64, Hash)>,
    next: u64,
    max: usize,
    blocks: u64,
}

impl<V> Recent<V> {
    /// Empty; keeps at most `max` entries, none older than `blocks` heights.
    pub(crate) fn new(max: usize, blocks: u64) -> Self {
        Self {
            map: HashMap::new(),
            order: VecDeque::new(),
            next: 0,
            max,
            blocks,
        }
    }

    /// Records `hash` at `height` unless it is already there (the first record stays), and
    /// trims to the bounds as of `height`. Returns whether it was recorded.
    pub(crate) fn insert(&mut self, hash: Hash, height: u64, value: V) -> bool {
        if self.map.contains_key(&hash) {
            return false;
        }
        let seq = self.next;
        self.next += 1;
        self.map.insert(hash, (seq, (height, value)));
        self.order.push_back((seq, height, hash));
        self.trim(height);
        true
    }

    /// The height and value recorded for `hash`, if still remembered.
    pub(crate) fn get(&self, hash: &Hash) -> Option<&(u64, V)> {
        self.map.get(hash).map(|(_, r)| r)
    }

    /// Forgets `hash` (it may be recorded again).
    pub(crate) fn remove(&mut self, hash: &Hash) {
        self.map.remove(hash);
    }

    /// Drops entries recorded `blocks` or more heights before `height`, and the oldest beyond
    /// `max`.
    pub(crate) fn trim(&mut self, height: u64) {
        while let Some(&(seq, at, hash)) = self.order.front() {
            if self.order.len() <= self.max && at.saturating_add(self.blocks) > height {
                break;
            }
            self.order.pop_front();
            // Only the record this order entry made: the hash may have been removed and
            // recorded again since (at a later height or the same one).
            if self.map.get(&hash).is_some_and(|(s, _)| *s == seq) {
                self.map.remove(&hash);
            }
        }
    }

    /// Entries remembered.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether nothing is remembered.
    #[cfg(test)]
    pub(crate) fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(i: u32) -> Hash {
        let mut out = [0u8; 32];
        out[..4].copy_from_slice(&i.to_be_bytes());
        out
    }

    #[test]
    fn a_hash_is_recorded_once_and_found() {
        let mut r = Recent::new(10, 100);
        assert!(r.insert(h(1), 5, "first"));
        assert!(!r.insert(h(1), 6, "again"), "a duplicate is refused");
        assert_eq!(r.get(&h(1)), Some(&(5, "first")));
        assert_eq!(r.get(&h(2)), None);
    }

    #[test]
    fn entries_leave_by_age_even_without_new_ones() {
        let mut r = Recent::new(1_000, 10);
        for i in 0..5 {
            r.insert(h(i), u64::from(i), ());
        }
        r.trim(12); // heights 0, 1 and 2 are 10 or more blocks old
        assert_eq!(r.len(), 2);
        assert!(r.get(&h(2)).is_none() && r.get(&h(3)).is_some());
        r.trim(1_000);
        assert!(r.is_empty());
        assert!(r.order.is_empty(), "the order ring is emptied too");
    }

    #[test]
    fn a_flood_in_one_block_is_held_to_the_count() {
        let mut r = Recent::new(100, 1_000);
        for i in 0..10_000 {
            r.insert(h(i), 7, ());
        }
        assert_eq!((r.len(), r.order.len()), (100, 100));
        assert!(r.get(&h(9_999)).is_some() && r.get(&h(9_899)).is_none());
    }

    #[test]
    fn removed_then_recorded_again_outlives_its_first_record() {
        let mut r = Recent::new(1_000, 10);
        r.insert(h(1), 0, "old");
        r.remove(&h(1));
        assert!(r.get(&h(1)).is_none());
        assert!(r.insert(h(1), 8, "new"));
        // The first record's order entry leaves at height 10; the new record stays.
        r.trim(10);
        assert_eq!(r.get(&h(1)), Some(&(8, "new")));
        r.trim(18);
        assert!(r.get(&h(1)).is_none());
    }

    #[test]
    fn removals_do_not_let_the_order_ring_grow() {
        // A peer that gets its transactions admitted and dropped again (waited out) over and
        // over: the ring stays within `max` even though the map stays small.
        let mut r = Recent::new(50, u64::MAX);
        for i in 0..10_000 {
            r.insert(h(i), 1, ());
            r.remove(&h(i));
        }
        assert!(r.order.len() <= 50 && r.is_empty());
    }

    #[test]
    fn removed_then_recorded_again_at_the_same_height_keeps_its_place() {
        // The first record's order entry is trimmed by count before the second one's: that
        // must not take the second record with it.
        let mut r = Recent::new(2, u64::MAX);
        r.insert(h(1), 5, "old");
        r.remove(&h(1));
        assert!(r.insert(h(1), 5, "new"));
        r.insert(h(2), 5, "other");
        r.trim(5);
        assert_eq!(
            r.get(&h(1)),
            Some(&(5, "new")),
            "the old entry was trimmed, not the new"
        );
    }
}
