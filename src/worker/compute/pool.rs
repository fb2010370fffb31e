//! The checked transaction pool of a compute node: first in, first proposed, except that one
//! sender's transactions are proposed in the order of their sequence numbers, and only from the
//! one that is next in line (the runtime's check-tx names a signed transaction's sender, its
//! number and the sender's next number in the checked state). Gossip reaches the compute
//! nodes in different orders: proposing nonce n + 1 before n executed fails n + 1 (and every
//! later one of the sender).

use crate::encoding::Hash;
use paratime_sdk::protocol::{TxSender, MAX_SENDER_LEN};
use serde_bytes::ByteBuf;
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

/// Transactions a node keeps in its pool.
pub(super) const MAX_POOL: usize = 100_000;
/// Bytes of transactions a node keeps in its pool (check-tx may accept large transactions:
/// the count alone does not bound memory).
pub(super) const MAX_POOL_BYTES: usize = 64 << 20;

/// A sender's lowest pooled transaction that is not known to be next in line (its predecessor
/// was finalized from another node's pool, or is lost) is proposed anyway once it has waited
/// this long.
pub(super) const SEQ_GRACE: Duration = Duration::from_secs(2);

/// A pooled transaction.
struct Entry {
    tx: Vec<u8>,
    arrived: Instant,
    /// Its sender, sequence number and the sender's next number when it was checked.
    sender: Option<(Vec<u8>, u64, u64)>,
}

/// One sender's pooled transactions.
#[derive(Default)]
struct SenderTxs {
    /// By sequence number (the first transaction to arrive with each number); empty once all
    /// were finalized.
    seqs: BTreeMap<u64, Hash>,
    /// The number after the last of this sender's transactions finalized from this pool.
    next: Option<u64>,
}

/// Transactions that passed check-tx, in arrival order, each with its arrival time.
#[derive(Default)]
pub(super) struct Pool {
    /// Arrival order; may hold hashes already removed (dropped lazily, compacted when they
    /// outnumber the live ones).
    order: VecDeque<Hash>,
    txs: HashMap<Hash, Entry>,
    /// Bytes of the transactions in `txs`.
    bytes: usize,
    senders: HashMap<Vec<u8>, SenderTxs>,
}

impl Pool {
    /// Adds a transaction that arrived at `now`, with the sender check-tx named (an id longer
    /// than [`MAX_SENDER_LEN`] is ignored); false if it is there already or the pool is full
    /// ([`MAX_POOL`] transactions or [`MAX_POOL_BYTES`]).
    pub(super) fn insert(
        &mut self,
        h: Hash,
        tx: Vec<u8>,
        now: Instant,
        sender: Option<&TxSender>,
    ) -> bool {
        if self.txs.contains_key(&h)
            || self.txs.len() >= MAX_POOL
            || self.bytes.saturating_add(tx.len()) > MAX_POOL_BYTES
        {
            return false;
        }
        self.bytes += tx.len();
        let mut sender = sender
            .filter(|s| s.id.len() <= MAX_SENDER_LEN)
            .map(|s| (s.id.to_vec(), s.seq, s.state_seq));
        if let Some((id, seq, _)) = &sender {
            let seqs = &mut self.senders.entry(id.clone()).or_default().seqs;
            if seqs.contains_key(seq) {
                // A second transaction with a taken number: proposed in arrival order (it
                // fails then, unless the first one is gone), never left behind.
                sender = None;
            } else {
                seqs.insert(*seq, h);
            }
        }
        self.order.push_back(h);
        self.txs.insert(
            h,
            Entry {
                tx,
                arrived: now,
                sender,
            },
        );
        true
    }

    /// Removes a transaction finalized in a round: its sender's next number is the one after.
    pub(super) fn remove(&mut self, h: &Hash) {
        let Some(e) = self.txs.remove(h) else {
            return;
        };
        self.bytes -= e.tx.len();
        if let Some((id, seq, _)) = e.sender {
            if let Some(s) = self.senders.get_mut(&id) {
                if s.seqs.get(&seq) == Some(h) {
                    s.seqs.remove(&seq);
                }
                s.next = s.next.max(seq.checked_add(1));
            }
            // A sender without pooled transactions keeps its next number (its next transaction
            // may have been checked on the state before this one's round); those are dropped
            // once they outnumber the pool's capacity.
            if self.senders.len() > 2 * MAX_POOL {
                self.senders.retain(|_, s| !s.seqs.is_empty());
            }
        }
        if self.order.len() > 2 * self.txs.len() + 1024 {
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
                Some(e) => return Some(now.saturating_duration_since(e.arrived)),
                None => {
                    self.order.pop_front();
                }
            }
        }
        None
    }

    /// Up to `max` transactions, oldest first; where a sender's transaction comes first, that
    /// sender's pooled transactions follow from its lowest sequence number up, as long as the
    /// numbers are consecutive, and only if the lowest is next in line: the sender's next
    /// number when it was checked, or after this pool's last finalized one of the sender, or
    /// waiting for [`SEQ_GRACE`].
    pub(super) fn batch(&self, max: usize, now: Instant) -> Vec<ByteBuf> {
        let mut out = Vec::new();
        let mut senders_seen: HashSet<&[u8]> = HashSet::new();
        for h in &self.order {
            if out.len() >= max {
                break;
            }
            let Some(e) = self.txs.get(h) else { continue };
            let Some((id, _, _)) = &e.sender else {
                out.push(ByteBuf::from(e.tx.clone()));
                continue;
            };
            if !senders_seen.insert(id.as_slice()) {
                continue;
            }
            let Some(s) = self.senders.get(id) else {
                continue;
            };
            let Some((&low, first)) = s.seqs.first_key_value() else {
                continue;
            };
            let ready = s.next == Some(low)
                || self.txs.get(first).is_some_and(|f| {
                    f.sender.as_ref().is_some_and(|x| x.2 == low)
                        || now.saturating_duration_since(f.arrived) >= SEQ_GRACE
                });
            if !ready {
                continue;
            }
            let mut prev: Option<u64> = None;
            for (&seq, h) in &s.seqs {
                if out.len() >= max || prev.is_some_and(|p| p.checked_add(1) != Some(seq)) {
                    break;
                }
                if let Some(e) = self.txs.get(h) {
                    out.push(ByteBuf::from(e.tx.clone()));
                }
                prev = Some(seq);
            }
        }
        out
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
            assert!(p.insert(
                h(i),
                vec![i as u8],
                t0 + Duration::from_millis(i.into()),
                None
            ));
        }
        p.remove(&h(1));
        let b: Vec<Vec<u8>> = p.batch(3, t0).into_iter().map(ByteBuf::into_vec).collect();
        assert_eq!(b, vec![vec![0], vec![2], vec![3]]);
        assert_eq!(p.len(), 4);
    }

    #[test]
    fn a_transaction_is_pooled_once_and_a_full_pool_refuses_more() {
        let now = Instant::now();
        let mut p = Pool::default();
        assert!(p.insert(h(0), vec![0], now, None));
        assert!(!p.insert(h(0), vec![0], now, None), "duplicate accepted");
        for i in 1..MAX_POOL as u32 {
            assert!(p.insert(h(i), Vec::new(), now, None));
        }
        assert!(
            !p.insert(h(MAX_POOL as u32), Vec::new(), now, None),
            "pool grew past its cap"
        );
        assert_eq!(p.len(), MAX_POOL);
    }

    #[test]
    fn large_transactions_fill_the_pool_by_bytes() {
        let mut p = Pool::default();
        let now = Instant::now();
        let mb = vec![0u8; 1 << 20];
        for i in 0..64u32 {
            assert!(p.insert(h(i), mb.clone(), now, None), "{i}");
        }
        assert!(!p.insert(h(64), mb.clone(), now, None), "64 MiB held");
        assert!(!p.insert(h(65), vec![0], now, None), "not one byte more");
        p.remove(&h(3));
        assert!(p.insert(h(64), mb, now, None), "room again");
        assert_eq!((p.len(), p.bytes), (64, 64 << 20));
    }

    #[test]
    fn the_oldest_age_skips_removed_transactions_and_uses_the_given_clock() {
        let t0 = Instant::now();
        let mut p = Pool::default();
        assert_eq!(p.oldest_age(t0), None);
        p.insert(h(0), Vec::new(), t0, None);
        p.insert(h(1), Vec::new(), t0 + Duration::from_secs(1), None);
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
        p.insert(h(0), Vec::new(), now, None);
        for i in 1..50_000u32 {
            p.insert(h(i), Vec::new(), now, None);
            p.remove(&h(i));
        }
        assert_eq!(p.len(), 1);
        assert!(p.order_len() <= 1026, "order kept {} hashes", p.order_len());
        assert_eq!(p.batch(10, now).len(), 1);
    }

    fn from(id: u8, seq: u64, state_seq: u64) -> TxSender {
        TxSender {
            id: ByteBuf::from(vec![id; 32]),
            seq,
            state_seq,
        }
    }

    fn txs(b: Vec<ByteBuf>) -> Vec<u8> {
        b.into_iter().map(|t| t[0]).collect()
    }

    #[test]
    fn one_senders_transactions_are_proposed_in_sequence_order_whatever_their_arrival() {
        let now = Instant::now();
        let mut p = Pool::default();
        // Sender A (next: 0) has its 2 arrive before its 0 and 1; B's 5 (next: 5) and an
        // unsigned one in between.
        p.insert(h(1), vec![12], now, Some(&from(0xa, 2, 0)));
        p.insert(h(2), vec![25], now, Some(&from(0xb, 5, 5)));
        p.insert(h(3), vec![99], now, None);
        p.insert(h(4), vec![10], now, Some(&from(0xa, 0, 0)));
        p.insert(h(5), vec![11], now, Some(&from(0xa, 1, 0)));
        assert_eq!(txs(p.batch(10, now)), vec![10, 11, 12, 25, 99]);
        // The cap holds inside a sender's run.
        assert_eq!(txs(p.batch(2, now)), vec![10, 11]);
        // A gap: A's 4 waits for its 3.
        p.insert(h(6), vec![14], now, Some(&from(0xa, 4, 0)));
        assert_eq!(txs(p.batch(10, now)), vec![10, 11, 12, 25, 99]);
        p.insert(h(7), vec![13], now, Some(&from(0xa, 3, 0)));
        assert_eq!(txs(p.batch(10, now)), vec![10, 11, 12, 13, 14, 25, 99]);
        // 0..=2 finalized here: A's next is 3, its run goes on.
        for x in [4, 5, 1] {
            p.remove(&h(x));
        }
        assert_eq!(txs(p.batch(10, now)), vec![25, 99, 13, 14]);
        for x in [2, 3, 6, 7] {
            p.remove(&h(x));
        }
        assert!(p.is_empty() && p.senders.values().all(|s| s.seqs.is_empty()));
        // A's next (5) is remembered: its 5, checked on a state before 4's round, is next.
        p.insert(h(8), vec![15], now, Some(&from(0xa, 5, 4)));
        assert_eq!(txs(p.batch(10, now)), vec![15]);
    }

    #[test]
    fn a_sender_whose_next_transaction_is_not_here_waits_for_the_grace_period() {
        let t0 = Instant::now();
        let mut p = Pool::default();
        // Checked while the sender's next was 7: 8 and 9 wait for 7 (finalized elsewhere, or
        // still on its way); an unsigned one goes ahead.
        p.insert(h(8), vec![8], t0, Some(&from(0xa, 8, 7)));
        p.insert(h(9), vec![9], t0, Some(&from(0xa, 9, 7)));
        p.insert(h(1), vec![1], t0, None);
        assert_eq!(txs(p.batch(10, t0)), vec![1]);
        assert_eq!(
            txs(p.batch(10, t0 + SEQ_GRACE - Duration::from_millis(1))),
            vec![1]
        );
        assert_eq!(txs(p.batch(10, t0 + SEQ_GRACE)), vec![8, 9, 1]);
        // 7 arrives and is finalized from this pool: 8 is next at once.
        let mut p = Pool::default();
        p.insert(h(7), vec![7], t0, Some(&from(0xa, 7, 7)));
        p.insert(h(8), vec![8], t0, Some(&from(0xa, 8, 7)));
        assert_eq!(txs(p.batch(10, t0)), vec![7, 8]);
        p.remove(&h(7));
        assert_eq!(txs(p.batch(10, t0)), vec![8]);
    }

    #[test]
    fn a_second_transaction_with_a_taken_number_and_oversized_senders_are_not_ordered() {
        let now = Instant::now();
        let mut p = Pool::default();
        p.insert(h(1), vec![1], now, Some(&from(0xa, 0, 0)));
        // Same sender and number, another transaction: pooled in arrival order, not indexed.
        p.insert(h(2), vec![2], now, Some(&from(0xa, 0, 0)));
        assert_eq!(txs(p.batch(10, now)), vec![1, 2]);
        assert_eq!(p.senders[&vec![0xa; 32]].seqs.get(&0), Some(&h(1)));
        p.remove(&h(1));
        assert_eq!(txs(p.batch(10, now)), vec![2]);
        // A sender id longer than MAX_SENDER_LEN: treated as unsigned (arrival order).
        let long = TxSender {
            id: ByteBuf::from(vec![7; MAX_SENDER_LEN + 1]),
            seq: 5,
            state_seq: 0,
        };
        p.insert(h(3), vec![3], now, Some(&long));
        assert_eq!(txs(p.batch(10, now)), vec![2, 3]);
        assert_eq!(p.senders.len(), 1, "only A");
    }

    #[test]
    fn a_flood_of_senders_is_bounded_by_the_pool_and_leaves_nothing_behind() {
        let now = Instant::now();
        let mut p = Pool::default();
        for i in 0..MAX_POOL as u32 + 10 {
            let s = TxSender {
                id: ByteBuf::from(i.to_le_bytes().to_vec()),
                seq: u64::MAX,
                state_seq: u64::MAX,
            };
            p.insert(h(i), vec![0], now, Some(&s));
        }
        assert_eq!(p.len(), MAX_POOL);
        assert_eq!(p.senders.len(), MAX_POOL);
        assert_eq!(p.batch(5, now).len(), 5);
        for i in 0..MAX_POOL as u32 + 10 {
            p.remove(&h(i));
        }
        assert!(p.is_empty());
        // Senders done with keep their next number, up to twice the pool's capacity.
        for i in MAX_POOL as u32..3 * MAX_POOL as u32 + 10 {
            let s = TxSender {
                id: ByteBuf::from(i.to_le_bytes().to_vec()),
                seq: 1,
                state_seq: 1,
            };
            p.insert(h(i), vec![0], now, Some(&s));
            p.remove(&h(i));
        }
        assert!(p.senders.len() <= 2 * MAX_POOL + 1, "{}", p.senders.len());
    }
}
