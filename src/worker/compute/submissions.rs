//! Client submissions and the gossip outbox: who waits for which transaction, what is gossiped
//! with the next flush, and what is gossiped again when rounds stop advancing.

use super::pool::{Pool, MAX_POOL};
use super::{SubmitError, TxOutcome};
use crate::encoding::Hash;
use serde_bytes::ByteBuf;
use std::collections::HashMap;
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

/// Pool transactions are gossiped again when no round was applied for this long.
pub(super) const REPUBLISH_AFTER: Duration = Duration::from_secs(2);
/// Submitted transactions are gossiped together at most this often.
pub(super) const FLUSH_EVERY: Duration = Duration::from_millis(10);
/// An outbox this full is gossiped without waiting for [`FLUSH_EVERY`].
const FLUSH_AT: usize = 512;

/// Transactions checked in one runtime call at most.
pub(super) const CHECK_BATCH: usize = 1024;
/// Bytes of transactions checked in one runtime call at most (a call is one RHP frame, at most
/// 16 MiB).
pub(super) const CHECK_BATCH_BYTES: usize = 4 << 20;

/// How many of the transactions (given by their sizes, in order) go into one check: at most
/// [`CHECK_BATCH`] and [`CHECK_BATCH_BYTES`], and at least one when there is one (a single
/// transaction larger than the byte bound is checked alone).
pub(super) fn check_batch_len(sizes: impl IntoIterator<Item = usize>) -> usize {
    let mut bytes = 0usize;
    let mut n = 0;
    for size in sizes.into_iter().take(CHECK_BATCH) {
        bytes = bytes.saturating_add(size);
        if n > 0 && bytes > CHECK_BATCH_BYTES {
            break;
        }
        n += 1;
    }
    n
}

/// How many of the transactions (given by their sizes, in order) fit in a queue with room for
/// `room` more transactions and `bytes_room` more bytes.
pub(super) fn fitting(
    sizes: impl IntoIterator<Item = usize>,
    room: usize,
    bytes_room: usize,
) -> usize {
    let mut left = bytes_room;
    sizes
        .into_iter()
        .take(room)
        .take_while(|size| match left.checked_sub(*size) {
            Some(l) => {
                left = l;
                true
            }
            None => false,
        })
        .count()
}

/// Where a waiting submitter's outcome goes.
pub(super) type Waiter = oneshot::Sender<Result<TxOutcome, SubmitError>>;

/// Where a submission's answer goes: its finalized outcome, or (a submitter that does not
/// wait) that it passed check-tx and was sent to the committee.
pub(super) enum Reply {
    Finalized(Waiter),
    Accepted(oneshot::Sender<Result<Hash, SubmitError>>),
}

impl Reply {
    pub(super) fn fail(self, e: SubmitError) {
        match self {
            Self::Finalized(w) => {
                let _ = w.send(Err(e));
            }
            Self::Accepted(a) => {
                let _ = a.send(Err(e));
            }
        }
    }
}

/// Submissions waiting for their round, and the outbox.
pub(super) struct Submissions {
    waiters: HashMap<Hash, Vec<Waiter>>,
    /// Transactions submitted here that are not finalized yet (republished on a stall).
    submitted: HashMap<Hash, Vec<u8>>,
    /// Transactions to gossip with the next flush.
    outbox: Vec<ByteBuf>,
    last_flush: Instant,
    last_republish: Instant,
    /// When the applied round last advanced.
    last_progress: Instant,
}

impl Submissions {
    pub(super) fn new(now: Instant) -> Self {
        Self {
            waiters: HashMap::new(),
            submitted: HashMap::new(),
            outbox: Vec::new(),
            last_flush: now,
            last_republish: now,
            last_progress: now,
        }
    }

    /// A checked transaction whose submitter waits for its round: it is gossiped with the next
    /// flush and remembered for republishing (up to [`MAX_POOL`] of them).
    /// A checked transaction whose submitter does not wait: gossiped with the next flush only
    /// (the submitter submits it again if it is lost).
    pub(super) fn send(&mut self, tx: Vec<u8>) {
        self.outbox.push(ByteBuf::from(tx));
    }

    pub(super) fn wait(&mut self, h: Hash, tx: Vec<u8>, reply: Waiter) {
        self.outbox.push(ByteBuf::from(tx.clone()));
        self.waiters.entry(h).or_default().push(reply);
        if self.submitted.len() < MAX_POOL {
            self.submitted.insert(h, tx);
        }
    }

    /// A round was applied at `now`; `outcomes` are its transactions, answered to their waiters.
    pub(super) fn finalized(
        &mut self,
        now: Instant,
        outcomes: impl IntoIterator<Item = (Hash, TxOutcome)>,
    ) {
        self.last_progress = now;
        for (h, o) in outcomes {
            self.submitted.remove(&h);
            if let Some(ws) = self.waiters.remove(&h) {
                for w in ws {
                    let _ = w.send(Ok(o.clone()));
                }
            }
        }
    }

    /// The outbox, when it is due at `now`: every [`FLUSH_EVERY`], or at once when it is full.
    pub(super) fn flush(&mut self, now: Instant) -> Option<Vec<ByteBuf>> {
        if self.outbox.is_empty()
            || (self.outbox.len() < FLUSH_AT
                && now.saturating_duration_since(self.last_flush) < FLUSH_EVERY)
        {
            return None;
        }
        self.last_flush = now;
        Some(std::mem::take(&mut self.outbox))
    }

    /// Puts the oldest waiting transactions in the outbox again when no round was applied for
    /// [`REPUBLISH_AFTER`] while transactions wait (and not more often than that): a scheduler
    /// that restarted (or joined late) lost them, and without them the committee would wait for
    /// new transactions. Transactions submitted here are republished the same way (compute
    /// nodes that were not ready when they were first gossiped dropped them). Returns how many.
    pub(super) fn republish(&mut self, now: Instant, pool: &Pool, max: usize) -> usize {
        if (pool.is_empty() && self.submitted.is_empty())
            || now.saturating_duration_since(self.last_progress) < REPUBLISH_AFTER
            || now.saturating_duration_since(self.last_republish) < REPUBLISH_AFTER
        {
            return 0;
        }
        self.last_republish = now;
        // Forget submissions whose callers gave up (here, not on every step: it walks them all).
        self.waiters.retain(|_, ws| {
            ws.retain(|w| !w.is_closed());
            !ws.is_empty()
        });
        let waiters = &self.waiters;
        self.submitted.retain(|h, _| waiters.contains_key(h));
        let mut stale = pool.batch(max, now);
        stale.extend(
            self.submitted
                .iter()
                .filter(|(h, _)| !pool.contains(h))
                .take(max)
                .map(|(_, tx)| ByteBuf::from(tx.clone())),
        );
        let n = stale.len();
        self.outbox.extend(stale);
        n
    }

    /// Answers every waiter with `why` (the worker stops).
    pub(super) fn close(&mut self, why: SubmitError) {
        for (_, ws) in self.waiters.drain() {
            for w in ws {
                let _ = w.send(Err(why.clone()));
            }
        }
    }

    #[cfg(test)]
    fn waiting(&self) -> (usize, usize) {
        (self.waiters.len(), self.submitted.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use paratime_sdk::protocol::TxResult;

    #[test]
    fn gossiped_transactions_fit_the_queue_by_count_and_bytes() {
        assert_eq!(fitting([10, 10, 10], 2, 1000), 2, "by count");
        assert_eq!(fitting([10, 10, 10], 5, 25), 2, "by bytes");
        assert_eq!(fitting([10, 10, 10], 5, 30), 3, "exactly full");
        // A peer's one huge transaction takes no room from the small ones behind it either:
        // the queue keeps order, so nothing after the first that does not fit is taken.
        assert_eq!(fitting([8 << 20, 10], 5, 1 << 20), 0);
        assert_eq!(fitting([], 5, 100), 0);
    }

    const MS: Duration = Duration::from_millis(1);

    fn outcome(h: Hash) -> TxOutcome {
        TxOutcome {
            hash: hex::encode(h),
            round: paratime_state::Round(3),
            index: 0,
            result: TxResult::default(),
        }
    }

    #[test]
    fn the_outbox_is_gossiped_every_flush_interval_or_at_once_when_full() {
        let t0 = Instant::now();
        let mut s = Submissions::new(t0);
        assert_eq!(
            s.flush(t0 + Duration::from_secs(1)),
            None,
            "flushed an empty outbox"
        );
        let (reply, _rx) = oneshot::channel();
        s.wait([1; 32], b"tx".to_vec(), reply);
        assert_eq!(s.flush(t0 + FLUSH_EVERY - MS), None);
        assert_eq!(s.flush(t0 + FLUSH_EVERY).map(|o| o.len()), Some(1));
        let t1 = t0 + FLUSH_EVERY;
        for i in 0..FLUSH_AT {
            let (reply, _rx) = oneshot::channel();
            s.wait([2; 32], vec![i as u8], reply);
        }
        assert_eq!(
            s.flush(t1).map(|o| o.len()),
            Some(FLUSH_AT),
            "a full outbox waited"
        );
    }

    #[test]
    fn finalized_transactions_answer_every_waiter_and_are_not_republished() {
        let t0 = Instant::now();
        let mut s = Submissions::new(t0);
        let (r1, mut rx1) = oneshot::channel();
        let (r2, mut rx2) = oneshot::channel();
        s.wait([1; 32], b"tx".to_vec(), r1);
        s.wait([1; 32], b"tx".to_vec(), r2);
        s.finalized(t0, [([1; 32], outcome([1; 32]))]);
        for rx in [&mut rx1, &mut rx2] {
            assert_eq!(
                rx.try_recv().expect("answered").expect("ok").round,
                paratime_state::Round(3)
            );
        }
        s.flush(t0 + FLUSH_EVERY);
        assert_eq!(
            s.republish(t0 + Duration::from_secs(10), &Pool::default(), 10),
            0
        );
    }

    #[test]
    fn waiting_transactions_are_republished_after_two_seconds_without_a_round() {
        let t0 = Instant::now();
        let mut s = Submissions::new(t0);
        let (reply, _rx) = oneshot::channel();
        s.wait([1; 32], b"mine".to_vec(), reply);
        let mut pool = Pool::default();
        pool.insert([2; 32], b"pooled".to_vec(), t0, None);
        s.flush(t0 + FLUSH_EVERY);
        assert_eq!(
            s.republish(t0 + REPUBLISH_AFTER - MS, &pool, 10),
            0,
            "too early"
        );
        // A round was applied meanwhile: the clock restarts.
        s.finalized(t0 + Duration::from_secs(1), []);
        assert_eq!(s.republish(t0 + REPUBLISH_AFTER, &pool, 10), 0);
        let t1 = t0 + Duration::from_secs(3);
        assert_eq!(s.republish(t1, &pool, 10), 2);
        let sent: Vec<Vec<u8>> = s
            .flush(t1)
            .expect("due")
            .into_iter()
            .map(ByteBuf::into_vec)
            .collect();
        assert_eq!(sent, vec![b"pooled".to_vec(), b"mine".to_vec()]);
        // Not again before another two seconds.
        assert_eq!(s.republish(t1 + REPUBLISH_AFTER - MS, &pool, 10), 0);
        assert_eq!(s.republish(t1 + REPUBLISH_AFTER, &pool, 10), 2);
    }

    #[test]
    fn submissions_whose_callers_gave_up_are_forgotten_at_the_next_republish() {
        let t0 = Instant::now();
        let mut s = Submissions::new(t0);
        let (reply, rx) = oneshot::channel();
        s.wait([1; 32], b"tx".to_vec(), reply);
        drop(rx);
        assert_eq!(s.waiting(), (1, 1));
        assert_eq!(
            s.republish(t0 + Duration::from_secs(3), &Pool::default(), 10),
            0
        );
        assert_eq!(s.waiting(), (0, 0));
    }

    #[test]
    fn closing_answers_every_waiter_with_the_reason() {
        let mut s = Submissions::new(Instant::now());
        let (reply, mut rx) = oneshot::channel();
        s.wait([1; 32], b"tx".to_vec(), reply);
        s.close(SubmitError::ShuttingDown);
        assert!(matches!(rx.try_recv(), Ok(Err(SubmitError::ShuttingDown))));
    }

    #[test]
    fn a_check_takes_at_most_1024_transactions_and_4_mib_but_always_one() {
        assert_eq!(check_batch_len([]), 0);
        assert_eq!(check_batch_len(vec![10; 5000]), CHECK_BATCH);
        assert_eq!(check_batch_len(vec![1 << 20; 10]), 4);
        assert_eq!(
            check_batch_len([64 << 20, 1]),
            1,
            "a huge transaction is checked alone"
        );
        assert_eq!(
            check_batch_len([1, 64 << 20]),
            1,
            "and after the ones before it"
        );
        assert_eq!(check_batch_len([usize::MAX, usize::MAX]), 1);
    }
}
