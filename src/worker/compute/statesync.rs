//! State sync of a runtime: a node that joins late, or was offline past its peers' pruning
//! window, cannot replay the rounds it missed (the peers answer that they pruned them). It
//! fetches the state of the latest finalized round instead, in chunks of tree nodes, each node
//! checked against the finalized state root ([`paratime_mkvs::sync`]), and then follows rounds
//! from there.

use paratime_mkvs::Restore;
use paratime_state::Round;
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

/// A request without an answer is sent again (to the next peer) after this long.
pub(super) const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// After an answer without a wanted node (a peer that does not host the runtime, or was busy),
/// the next request waits this long.
pub(super) const RETRY_EMPTY: Duration = Duration::from_millis(250);
/// One peer saying it pruned the round this node needs starts a sync only if it still says so
/// after this long (two peers saying so start it at once).
pub(super) const PRUNED_CONFIRM: Duration = Duration::from_secs(10);
/// A sync that stored nothing for this long starts again at the then latest finalized round
/// (its round may have been pruned by every peer meanwhile).
pub(super) const STALL: Duration = Duration::from_secs(30);

/// Peers' claims that they pruned the rounds this node needs (`SyncReply::Pruned`, counted only
/// as the answer to this node's own request). A sync throws the node's history away, so one
/// peer cannot start it at once: two distinct peers must say so about the same applied round,
/// or one must keep saying so for [`PRUNED_CONFIRM`] while the node applies nothing.
#[derive(Debug, Default)]
pub(super) struct PrunedClaims {
    /// The applied round the claims are about, the peers that made them, the first claim's time.
    current: Option<(Round, BTreeSet<String>, Instant)>,
}

/// Distinct peers remembered per applied round (more cannot confirm anything more).
const MAX_CLAIMANTS: usize = 16;

impl PrunedClaims {
    /// Records `peer`'s claim that it keeps rounds only from `retained_from` on while this node
    /// has applied `applied`; true once the claim is confirmed. A claim that the next round is
    /// still kept is no claim.
    pub(super) fn claim(
        &mut self,
        applied: Round,
        retained_from: Round,
        peer: String,
        now: Instant,
    ) -> bool {
        if retained_from <= applied.next() {
            return false;
        }
        let seen = match &mut self.current {
            Some(c) if c.0 == applied => c,
            other => other.insert((applied, BTreeSet::new(), now)),
        };
        if seen.1.len() < MAX_CLAIMANTS {
            seen.1.insert(peer);
        }
        seen.1.len() >= 2 || now.saturating_duration_since(seen.2) >= PRUNED_CONFIRM
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

    fn p(n: u8) -> String {
        format!("peer-{n}")
    }

    #[test]
    fn one_peer_claiming_pruned_rounds_starts_nothing_until_it_persists() {
        let t0 = Instant::now();
        let mut c = PrunedClaims::default();
        // A claim that the next round is still kept is no claim, whatever the peer.
        assert!(!c.claim(Round(10), Round(11), p(1), t0));
        assert!(!c.claim(Round(10), Round(3), p(2), t0));
        // One peer, repeating itself: not before PRUNED_CONFIRM.
        assert!(!c.claim(Round(10), Round(50), p(1), t0));
        assert!(!c.claim(Round(10), Round(50), p(1), t0 + Duration::from_secs(9)));
        assert!(c.claim(Round(10), Round(50), p(1), t0 + PRUNED_CONFIRM));
        // The node applied a round meanwhile (another peer sent it): the count starts again.
        let t1 = t0 + PRUNED_CONFIRM;
        assert!(!c.claim(Round(11), Round(50), p(1), t1));
        assert!(!c.claim(Round(11), Round(50), p(1), t1 + Duration::from_secs(5)));
        // A second, distinct peer confirms at once.
        assert!(c.claim(Round(11), Round(50), p(2), t1 + Duration::from_secs(5)));
    }

    #[test]
    fn a_flood_of_claims_is_bounded_and_a_clock_going_back_confirms_nothing() {
        let t0 = Instant::now() + Duration::from_secs(60);
        let mut c = PrunedClaims::default();
        for n in 0..=255u8 {
            c.claim(Round(7), Round(9), p(n), t0);
        }
        let seen = c.current.as_ref().expect("claims");
        assert_eq!(seen.1.len(), MAX_CLAIMANTS);
        // An earlier `now` than the first claim (saturating): one peer still needs the wait.
        let mut c = PrunedClaims::default();
        assert!(!c.claim(Round(7), Round(9), p(1), t0));
        assert!(!c.claim(Round(7), Round(9), p(1), t0 - Duration::from_secs(30)));
    }
}
