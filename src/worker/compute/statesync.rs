//! State sync of a runtime: a node that joins late, or was offline past its peers' pruning
//! window, cannot replay the rounds it missed (the peers answer that they pruned them). It
//! fetches the state of the latest finalized round instead, in chunks of tree nodes, each node
//! checked against the finalized state root ([`paratime_mkvs::sync`]), and then follows rounds
//! from there.

use paratime_mkvs::Restore;
use paratime_state::Round;
use std::time::{Duration, Instant};

/// A request without an answer is sent again (to the next peer) after this long.
pub(super) const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// After an answer without a wanted node (a peer that does not host the runtime, or was busy),
/// the next request waits this long.
pub(super) const RETRY_EMPTY: Duration = Duration::from_millis(250);
/// Peers saying they pruned the round this node needs start a sync only if they still say so
/// after this long, while the node applied nothing (however many peers say so).
pub(super) const PRUNED_CONFIRM: Duration = Duration::from_secs(10);
/// A sync that stored nothing for this long starts again at the then latest finalized round
/// (its round may have been pruned by every peer meanwhile).
pub(super) const STALL: Duration = Duration::from_secs(30);

/// Peers' claims that they pruned the rounds this node needs (`SyncReply::Pruned`, counted only
/// as the answer to this node's own request). A sync throws the node's history away, so claims
/// start it only once they have gone on for [`PRUNED_CONFIRM`] while the node applied nothing:
/// the node keeps asking its peers in turn meanwhile, and one round from any honest peer that
/// still has it resets the count — colluding peers, however many, cannot force a sync on a node
/// that another peer can serve.
#[derive(Debug, Default)]
pub(super) struct PrunedClaims {
    /// The applied round the claims are about, and the first claim's time.
    current: Option<(Round, Instant)>,
}

impl PrunedClaims {
    /// Records a peer's claim that it keeps rounds only from `retained_from` on while this node
    /// has applied `applied`; true once the claims are confirmed. A claim that the next round is
    /// still kept is no claim.
    pub(super) fn claim(&mut self, applied: Round, retained_from: Round, now: Instant) -> bool {
        if retained_from <= applied.next() {
            return false;
        }
        let first = match &mut self.current {
            Some(c) if c.0 == applied => c.1,
            other => other.insert((applied, now)).1,
        };
        now.saturating_duration_since(first) >= PRUNED_CONFIRM
    }
}

/// A sync in progress.
pub(super) struct StateSync {
    pub(super) restore: Restore,
    pub(super) started: Instant,
    pub(super) last_progress: Instant,
    /// When to send the next request.
    pub(super) next_request: Instant,
    /// The peer serving the sync (the first that sent wanted nodes).
    pub(super) peer: Option<String>,
}

/// What to do now.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Next {
    /// Nothing before the next request time.
    Wait,
    /// Send a request.
    Request,
    /// Nothing was stored for [`STALL`]: start again.
    Restart,
}

impl StateSync {
    pub(super) fn new(restore: Restore, now: Instant) -> Self {
        Self {
            restore,
            started: now,
            last_progress: now,
            next_request: now,
            peer: None,
        }
    }

    /// Whether to send a request, wait, or give up on this round.
    pub(super) fn next(&mut self, now: Instant) -> Next {
        if now.saturating_duration_since(self.last_progress) > STALL {
            return Next::Restart;
        }
        if now < self.next_request {
            return Next::Wait;
        }
        self.next_request = now + REQUEST_TIMEOUT;
        Next::Request
    }

    /// Records an answer that stored `nodes` nodes.
    pub(super) fn answered(&mut self, nodes: usize, now: Instant) {
        if nodes > 0 {
            self.last_progress = now;
            self.next_request = now;
        } else {
            self.next_request = self.next_request.min(now + RETRY_EMPTY);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_follow_answers_retry_after_timeouts_and_restart_when_stalled() {
        let d = tempfile::tempdir().expect("tmp");
        let db = paratime_mkvs::NodeDb::open(&d.path().join("t"), 1 << 20).expect("open");
        let t0 = Instant::now();
        let mut s = StateSync::new(Restore::begin(&db, 5, [1; 32]).expect("begin"), t0);
        assert_eq!(s.next(t0), Next::Request);
        // One request at a time: the next waits for an answer or the timeout.
        assert_eq!(s.next(t0 + Duration::from_secs(1)), Next::Wait);
        assert_eq!(s.next(t0 + REQUEST_TIMEOUT), Next::Request);
        // A useful answer: ask again at once; a useless one: shortly.
        let t1 = t0 + REQUEST_TIMEOUT + Duration::from_secs(1);
        s.answered(10, t1);
        assert_eq!(s.next(t1), Next::Request);
        s.answered(0, t1);
        assert_eq!(s.next(t1), Next::Wait);
        assert_eq!(s.next(t1 + RETRY_EMPTY), Next::Request);
        // Nothing stored for longer than STALL.
        assert_eq!(s.next(t1 + STALL + Duration::from_secs(1)), Next::Restart);
    }

    #[test]
    fn claims_of_pruned_rounds_start_nothing_until_they_persist_while_nothing_is_applied() {
        let t0 = Instant::now();
        let mut c = PrunedClaims::default();
        // A claim that the next round is still kept is no claim.
        assert!(!c.claim(Round(10), Round(11), t0));
        assert!(!c.claim(Round(10), Round(3), t0));
        // Claims (from one peer or many: colluders gain nothing): not before PRUNED_CONFIRM.
        assert!(!c.claim(Round(10), Round(50), t0));
        for _ in 0..100 {
            assert!(!c.claim(Round(10), Round(50), t0 + Duration::from_secs(9)));
        }
        assert!(c.claim(Round(10), Round(50), t0 + PRUNED_CONFIRM));
        // The node applied a round meanwhile (a peer that has it sent it): the wait starts again.
        let t1 = t0 + PRUNED_CONFIRM;
        assert!(!c.claim(Round(11), Round(50), t1));
        assert!(!c.claim(Round(11), Round(50), t1 + Duration::from_secs(5)));
        assert!(c.claim(Round(11), Round(50), t1 + PRUNED_CONFIRM));
    }

    #[test]
    fn a_clock_going_back_confirms_nothing() {
        let t0 = Instant::now() + Duration::from_secs(60);
        let mut c = PrunedClaims::default();
        assert!(!c.claim(Round(7), Round(9), t0));
        assert!(!c.claim(Round(7), Round(9), t0 - Duration::from_secs(30)));
    }
}
