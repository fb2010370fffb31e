//! Verdicts on gossiped messages of transactions: a message is relayed only when the
//! transactions in it that were new to this node and passed check-tx make at least half of its
//! transactions' bytes. A peer padding one new transaction with known ones (up to 8 MiB of
//! them) gets nothing relayed: what a relay carries for nothing is at most what it carries of
//! new, valid transactions. Its transactions are checked in batches with other messages'
//! ones, so the verdict comes when the last of them is resolved.

use crate::encoding::{hash, Hash};
use crate::p2p::Verdict;
use std::collections::{HashMap, HashSet};

/// Messages whose transactions wait for their check. At most one entry per message with a
/// transaction in the check queue (a message whose transactions were all turned away is judged
/// at once), so the queue's bound is this one's.
pub(super) struct Judging<R> {
    next: u64,
    open: HashMap<u64, Open<R>>,
}

struct Open<R> {
    origin: R,
    /// Transactions not resolved yet.
    left: usize,
    /// Bytes of all the message's transactions (queued or not).
    bytes: usize,
    /// Bytes of those that were new and passed check-tx.
    fresh: usize,
}

/// A message's place in [`Judging`], carried by each of its queued transactions.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(super) struct Key(u64);

impl<R> Default for Judging<R> {
    fn default() -> Self {
        Self {
            next: 0,
            open: HashMap::new(),
        }
    }
}

impl<R> Judging<R> {
    /// A message whose transactions take `bytes` in all, `queued` of them queued for check
    /// (those turned away count as not new). With none queued, its verdict is returned at once
    /// instead.
    pub(super) fn open(
        &mut self,
        origin: R,
        queued: usize,
        bytes: usize,
    ) -> Result<Key, (R, Verdict)> {
        if queued == 0 {
            return Err((origin, Verdict::Drop));
        }
        let key = Key(self.next);
        self.next = self.next.wrapping_add(1);
        self.open.insert(
            key.0,
            Open {
                origin,
                left: queued,
                bytes,
                fresh: 0,
            },
        );
        Ok(key)
    }

    /// One of `key`'s transactions is resolved: `fresh_bytes` is its length when it was new
    /// to this node and passed check-tx, else 0. The message's verdict once it was the last.
    pub(super) fn resolve(&mut self, key: Key, fresh_bytes: usize) -> Option<(R, Verdict)> {
        let open = self.open.get_mut(&key.0)?;
        open.fresh = open.fresh.saturating_add(fresh_bytes);
        open.left = open.left.saturating_sub(1);
        if open.left > 0 {
            return None;
        }
        let open = self.open.remove(&key.0)?;
        let verdict = if open.fresh > 0 && open.fresh.saturating_mul(2) >= open.bytes {
            Verdict::Relay
        } else {
            Verdict::Drop
        };
        Some((open.origin, verdict))
    }

    /// Messages waiting for a verdict.
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.open.len()
    }
}

/// Splits a check's worth of gossiped transactions into the fresh ones to check (with their
/// messages' keys) and the keys of the others: those `known` says this node has, and copies of
/// one earlier in the batch (a peer re-salting a batch sends the same transactions again).
#[allow(clippy::type_complexity)]
pub(super) fn split_fresh(
    batch: Vec<(Vec<u8>, Key)>,
    known: impl Fn(&Hash) -> bool,
) -> (Vec<Vec<u8>>, Vec<Key>, Vec<Key>) {
    let mut seen = HashSet::with_capacity(batch.len());
    let (mut fresh, mut keys, mut others) = (Vec::new(), Vec::new(), Vec::new());
    for (tx, key) in batch {
        let h = hash(&tx);
        if !seen.insert(h) || known(&h) {
            others.push(key);
        } else {
            fresh.push(tx);
            keys.push(key);
        }
    }
    (fresh, keys, others)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_is_relayed_when_one_of_its_transactions_was_new_and_valid() {
        let mut j = Judging::default();
        let a = j.open("a", 3, 30).expect("queued");
        let b = j.open("b", 2, 20).expect("queued");
        assert_eq!(j.resolve(a, 0), None);
        assert_eq!(j.resolve(b, 0), None);
        assert_eq!(j.resolve(a, 15), None);
        assert_eq!(j.resolve(b, 0), Some(("b", Verdict::Drop)));
        assert_eq!(j.resolve(a, 0), Some(("a", Verdict::Relay)));
        assert_eq!(j.len(), 0);
        // Resolved once more (never, by the worker): nothing.
        assert_eq!(j.resolve(a, 10), None);
    }

    /// A peer pads one new transaction with known ones: relayed only if the new bytes are at
    /// least half the message's (counting transactions turned away by a full queue as not
    /// new), so a relay never carries more than twice what is new in it.
    #[test]
    fn a_new_transaction_padded_with_known_ones_is_not_relayed() {
        let mut j = Judging::default();
        // 100 bytes new, 8 MiB known.
        let padded = j.open("padded", 2, 100 + (8 << 20)).expect("queued");
        assert_eq!(j.resolve(padded, 0), None);
        assert_eq!(j.resolve(padded, 100), Some(("padded", Verdict::Drop)));
        // Half new by bytes, though one of three transactions.
        let half = j.open("half", 3, 200).expect("queued");
        for fresh in [0, 100] {
            assert_eq!(j.resolve(half, fresh), None);
        }
        assert_eq!(j.resolve(half, 0), Some(("half", Verdict::Relay)));
        // Of four transactions of 100 bytes, two turned away (queue full), one known: 100 new.
        let crowded = j.open("crowded", 2, 400).expect("queued");
        assert_eq!(j.resolve(crowded, 100), None);
        assert_eq!(j.resolve(crowded, 0), Some(("crowded", Verdict::Drop)));
    }

    /// A peer re-salting one batch 300 times: its transactions are checked once, the copies
    /// resolve their messages as nothing new (so only the first message can be relayed), and a
    /// transaction the node has is not checked at all.
    #[test]
    fn copies_and_known_transactions_are_not_checked() {
        let mut j = Judging::default();
        let pooled = b"pooled".to_vec();
        let tx = b"a new transaction".to_vec();
        let mut batch = Vec::new();
        let mut messages = Vec::new();
        for m in 0..300 {
            let key = j.open(m, 2, tx.len() + pooled.len()).expect("queued");
            messages.push(key);
            batch.push((tx.clone(), key));
            batch.push((pooled.clone(), key));
        }
        let (fresh, keys, known) = split_fresh(batch, |h| *h == hash(&pooled));
        assert_eq!(fresh, vec![tx.clone()]);
        assert_eq!(keys, vec![messages[0]]);
        assert_eq!(known.len(), 599);
        let mut verdicts: Vec<(i32, Verdict)> =
            known.into_iter().filter_map(|k| j.resolve(k, 0)).collect();
        // The first message waits for its fresh transaction's check; the 299 copies are done.
        assert_eq!(verdicts.len(), 299);
        assert!(verdicts.iter().all(|(_, v)| *v == Verdict::Drop));
        verdicts.extend(j.resolve(keys[0], tx.len()));
        assert_eq!(verdicts.last(), Some(&(0, Verdict::Relay)));
        assert_eq!(j.len(), 0);
    }

    #[test]
    fn a_message_with_nothing_queued_is_dropped_at_once_and_not_kept() {
        let mut j: Judging<&str> = Judging::default();
        assert_eq!(j.open("x", 0, 10).err(), Some(("x", Verdict::Drop)));
        assert_eq!(j.len(), 0);
    }
}
