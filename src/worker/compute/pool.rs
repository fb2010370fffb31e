//! The checked transaction pool of a compute node: first in, first proposed.

use crate::encoding::Hash;
use serde_bytes::ByteBuf;
use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

/// Transactions a node keeps in its pool.
pub(super) const MAX_POOL: usize = 100_000;

/// Transactions that passed check-tx, in arrival order, each with its arrival time.
#[derive(Default)]
pub(super) struct Pool {
    /// Arrival order; may hold hashes already removed (dropped lazily, compacted when they
    /// outnumber the live ones).
    order: VecDeque<Hash>,
    txs: HashMap<Hash, (Vec<u8>, Instant)>,
}

impl Pool {
    /// Adds a transaction that arrived at `now`; false if it is there already or the pool is full.
    pub(super) fn insert(&mut self, h: Hash, tx: Vec<u8>, now: Instant) -> bool {
        if self.txs.contains_key(&h) || self.txs.len() >= MAX_POOL {
            return false;
        }
        self.order.push_back(h);
        self.txs.insert(h, (tx, now));
        true
    }

    /// Removes a transaction (finalized in a round).
    pub(super) fn remove(&mut self, h: &Hash) {
        if self.txs.remove(h).is_some() && self.order.len() > 2 * self.txs.len() + 1024 {
            // Removed hashes behind a transaction that stays at the front would otherwise
            // accumulate for as long as it stays.
            let txs = &self.txs;
            self.order.retain(|h| txs.contains_key(h));
        }
    }

    pub(super) fn contains(&self, h: &Hash) -> bool {
        self.txs.contains_key(h)
    }

    pub(super) fn len(&self) -> usize {
        self.txs.len()
    }

    pub(super) fn is_empty(&self) -> bool {
        self.txs.is_empty()
    }

    /// The age at `now` of the oldest transaction (dropping removed ones from the front).
    pub(super) fn oldest_age(&mut self, now: Instant) -> Option<Duration> {
        while let Some(h) = self.order.front() {
            match self.txs.get(h) {
                Some((_, t)) => return Some(now.saturating_duration_since(*t)),
                None => {
                    self.order.pop_front();
                }
            }
        }
        None
    }

    /// The oldest `max` transactions, oldest first.
    pub(super) fn batch(&self, max: usize) -> Vec<ByteBuf> {
        self.order
            .iter()
            .filter_map(|h| self.txs.get(h))
            .take(max)
            .map(|(tx, _)| ByteBuf::from(tx.clone()))
            .collect()
    }

    #[cfg(test)]
    fn order_len(&self) -> usize {
        self.order.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(i: u32) -> Hash {
        let mut h = [0u8; 32];
        h[..4].copy_from_slice(&i.to_le_bytes());
        h
    }

    #[test]
    fn batches_are_the_oldest_transactions_in_arrival_order() {
        let t0 = Instant::now();
        let mut p = Pool::default();
        for i in 0..5u32 {
            assert!(p.insert(h(i), vec![i as u8], t0 + Duration::from_millis(i.into())));
        }
        p.remove(&h(1));
        let b: Vec<Vec<u8>> = p.batch(3).into_iter().map(ByteBuf::into_vec).collect();
        assert_eq!(b, vec![vec![0], vec![2], vec![3]]);
        assert_eq!(p.len(), 4);
    }

    #[test]
    fn a_transaction_is_pooled_once_and_a_full_pool_refuses_more() {
        let now = Instant::now();
        let mut p = Pool::default();
        assert!(p.insert(h(0), vec![0], now));
        assert!(!p.insert(h(0), vec![0], now), "duplicate accepted");
        for i in 1..MAX_POOL as u32 {
            assert!(p.insert(h(i), Vec::new(), now));
        }
        assert!(
            !p.insert(h(MAX_POOL as u32), Vec::new(), now),
            "pool grew past its cap"
        );
        assert_eq!(p.len(), MAX_POOL);
    }

    #[test]
    fn the_oldest_age_skips_removed_transactions_and_uses_the_given_clock() {
        let t0 = Instant::now();
        let mut p = Pool::default();
        assert_eq!(p.oldest_age(t0), None);
        p.insert(h(0), Vec::new(), t0);
        p.insert(h(1), Vec::new(), t0 + Duration::from_secs(1));
        assert_eq!(
            p.oldest_age(t0 + Duration::from_secs(3)),
            Some(Duration::from_secs(3))
        );
        p.remove(&h(0));
        assert_eq!(
            p.oldest_age(t0 + Duration::from_secs(3)),
            Some(Duration::from_secs(2))
        );
        // A clock behind the arrival (never in practice) gives zero, not a panic.
        assert_eq!(p.oldest_age(t0), Some(Duration::ZERO));
    }

    #[test]
    fn churn_behind_a_transaction_that_stays_does_not_grow_the_order() {
        let now = Instant::now();
        let mut p = Pool::default();
        p.insert(h(0), Vec::new(), now);
        for i in 1..50_000u32 {
            p.insert(h(i), Vec::new(), now);
            p.remove(&h(i));
        }
        assert_eq!(p.len(), 1);
        assert!(p.order_len() <= 1026, "order kept {} hashes", p.order_len());
        assert_eq!(p.batch(10).len(), 1);
    }
}
