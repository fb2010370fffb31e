//! The runtime worker: one per hosted ParaTime, on compute and client nodes.
//!
//! - Finalized state ([`follower`]): follows the runtime's blocks in the consensus view and
//!   applies each finalized round's executed batch (gossiped by the committee, or fetched from a
//!   peer), verified against the finalized header, to the store and to the in-memory state the
//!   runtime reads. Queries and transaction results are served from it.
//! - Transactions ([`submissions`], [`pool`]): clients submit through the control API; the
//!   worker checks them with the hosted runtime and gossips them; compute nodes keep a checked
//!   pool.
//! - Committee (compute nodes; [`schedule`], [`executor`]): the round's scheduler proposes a
//!   batch on the committee topic; workers (and backups during discrepancy resolution) execute
//!   it in the sandboxed runtime and submit a signed executor commitment. The commitment is
//!   stored durably before it leaves the node; after a restart the node resubmits that one and
//!   never signs another for the round.
//!
//! The parts decide; [`Run`] only gathers their inputs (the consensus view, the clock, the
//! store) and carries out their answers. Runtime calls (check-tx up to 15 s, execute up to
//! 30 s) run as tasks whose results come back as [`Done`] messages, so a slow runtime never
//! stalls proposing, following or gossip.
//!
//! Owns the runtime's pool and finalized state; changes consensus state only by transactions.

mod executor;
mod follower;
mod judging;
mod pool;
mod schedule;
mod statesync;
mod submissions;

use crate::bundle::RuntimeId;
use crate::consensus::crypto::{self, PublicKey, Signed};
use crate::consensus::engine::{Backend, Handle as Consensus, View};
use crate::consensus::genesis::RuntimeDescriptor;
use crate::consensus::roothash::{self, ExecutorCommit, LastSigned, Proposal};
use crate::encoding::{hash, hash_of, Hash};
use crate::host::rhp::{Connection, RhpError};
use crate::host::state::RuntimeState;
use crate::p2p::{self, CommitteeMessage, RuntimeEvent, RuntimeTxs};
use crate::storage::{Applied, Store};
use executor::Job;
use follower::Follower;
use judging::Judging;
use paratime_sdk::protocol::{Body, RuntimeCheckTxBatchRequest, RuntimeQueryRequest, TxResult};
use paratime_state::signing::{KeyRole, Slot, SlotSigner};
use paratime_state::Round;
use pool::Pool;
use schedule::{Proposals, ProposeInputs, Ranks, RoundClock, Timing};
use serde::Serialize;
use serde_bytes::ByteBuf;
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};
use submissions::{check_batch_len, fitting, Reply, Submissions};
use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;

const MODULE: &str = "worker/compute";
/// Time the runtime gets to execute a batch.
const EXECUTE_TIMEOUT: Duration = Duration::from_secs(30);
/// Time the runtime gets to check a batch of transactions, or to answer a query.
const CHECK_TIMEOUT: Duration = Duration::from_secs(15);
/// Gossiped transactions waiting for check-tx while a check runs; more are dropped (their
/// senders republish them).
const MAX_UNCHECKED: usize = 16_384;
/// Bytes of gossiped transactions waiting for check-tx, at most (a peer's transactions may be
/// large: the count alone does not bound memory).
const MAX_UNCHECKED_BYTES: usize = 32 << 20;
/// Messages taken from one queue before the worker steps.
const DRAIN: usize = 1024;

/// The finalized outcome of one transaction.
#[derive(Clone, Debug, Serialize)]
pub struct TxOutcome {
    /// Hash of the raw transaction (hex).
    pub hash: String,
    /// Round it was finalized in.
    pub round: Round,
    /// Position in the round's batch.
    pub index: u32,
    /// The runtime's result.
    #[serde(skip)]
    pub result: TxResult,
}

/// Why a submitted transaction has no outcome.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SubmitError {
    /// The worker is gone.
    #[error("runtime worker stopped")]
    Stopped,
    /// The node stops.
    #[error("node is shutting down")]
    ShuttingDown,
    /// Not finalized within the caller's timeout (it may still be).
    #[error("transaction not finalized within {}", humantime::format_duration(*.0))]
    Timeout(Duration),
    /// The runtime is not running (yet): worth retrying.
    #[error("cannot check the transaction: {}", crate::host::supervisor::WAITING)]
    NotRunning,
    /// The runtime did not answer the check (or answered the wrong message).
    #[error("cannot check the transaction: {0}")]
    CheckFailed(String),
    /// The runtime refused it.
    #[error("check-tx failed: {0}")]
    Rejected(String),
}

/// Why a query has no answer.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    /// The runtime is not running.
    #[error("the runtime is not running (waiting for hosted runtime provision)")]
    NotRunning,
    /// The runtime answered with an error (its own message).
    #[error("{0}")]
    Runtime(String),
    /// The runtime did not answer, or answered the wrong message.
    #[error("{0}")]
    Failed(String),
}

/// Rounds pruned per run at most.
const PRUNE_BATCH: usize = 64;

/// The lowest round kept when `applied` is the latest round and `num_kept` rounds are kept:
/// rounds at or below `applied - num_kept` go. `None` while nothing is old enough.
pub(crate) fn prune_from(applied: Round, num_kept: u64) -> Option<Round> {
    let keep_from = applied.0.checked_sub(num_kept)?.checked_add(1)?;
    (keep_from > 1).then_some(Round(keep_from))
}

/// One pruning run (see `Run::prune`): the runtime's history, then its state versions, each at
/// most `batch` rounds below `keep_from`, oldest first. Returns the first round still retained
/// (when it could be read) and whether rounds below `keep_from` remain after a run that removed
/// some and met no error.
pub(crate) fn prune_run(
    store: &Store,
    state: &RuntimeState,
    rid: &RuntimeId,
    keep_from: Round,
    batch: usize,
) -> (Option<Round>, bool) {
    let history = store.prune_runtime(rid, keep_from, batch);
    let pruned = state.prune(keep_from.0, batch);
    // Behind only after a run that removed something and met no error: a failing run waits for
    // the next tick, not a loop of failures.
    let progressed = match (&history, &pruned) {
        (Ok(rounds), Ok(s)) if *rounds > 0 || s.versions > 0 => {
            log::info!(target: MODULE, runtime_id:% = rid, rounds = *rounds, state_versions = s.versions, state_nodes = s.nodes; "pruned runtime history");
            true
        }
        _ => false,
    };
    if let Err(e) = history {
        log::error!(target: MODULE, runtime_id:% = rid; "cannot prune runtime history: {e}");
    }
    if let Err(e) = pruned {
        log::error!(target: MODULE, runtime_id:% = rid; "cannot prune runtime state: {e}");
    }
    let retained = store.runtime_retained_from(rid).ok();
    let state_from = state.versions().ok().flatten().map(|(first, _)| first);
    let behind = progressed
        && (retained.is_some_and(|r| r < keep_from) || state_from.is_some_and(|f| f < keep_from.0));
    (retained, behind)
}

/// What the worker publishes for `control status`.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Status {
    /// Last round whose state this node applied.
    pub latest_round: Round,
    /// Its state root (hex).
    pub latest_state_root: String,
    /// Transactions waiting in the pool.
    pub pool_size: usize,
    /// Last round this node signed a commitment for.
    pub last_signed_round: Option<Round>,
    /// Rounds this node committed to since it started.
    pub commitments: u64,
    /// Batches this node proposed since it started.
    pub proposals: u64,
    /// Gossiped transactions check-tx refused here since the node started (e.g. a nonce too
    /// far ahead of this node's state); they are not pooled.
    pub gossip_refused: u64,
    /// Why the worker is not executing, if it is not.
    pub waiting: Option<String>,
    /// The lowest round whose history (block, batch, transaction index, state) is kept.
    pub last_retained_round: Round,
    /// oasis's committee status (shown as `committee.status`).
    #[serde(skip)]
    pub committee_status: crate::host::supervisor::CommitteeState,
    /// A state sync is under way (`storage.status`).
    #[serde(skip)]
    pub state_syncing: bool,
    /// This node executes rounds (`executor` in the status).
    #[serde(skip)]
    pub compute: bool,
}

/// How often a node that is not ready says why at info level.
const WAITING_LOG_EVERY: Duration = Duration::from_secs(30);

enum Request {
    Submit { tx: Vec<u8>, reply: Reply },
}

/// The control API's handle on a runtime worker.
#[derive(Clone)]
pub struct Handle {
    /// Runtime.
    pub runtime: RuntimeId,
    requests: mpsc::Sender<Request>,
    /// Worker status.
    pub status: watch::Receiver<Status>,
    conn: watch::Receiver<Option<Connection>>,
    state: Arc<RuntimeState>,
}

impl Handle {
    /// What the runtime's state tree holds in memory now.
    pub fn state_memory(&self) -> crate::host::state::StateMemory {
        self.state.memory()
    }

    /// Submits a raw transaction and waits until it is finalized (or `timeout`).
    pub async fn submit(&self, tx: Vec<u8>, timeout: Duration) -> Result<TxOutcome, SubmitError> {
        let (reply, rx) = oneshot::channel();
        self.request(tx, Reply::Finalized(reply), rx, timeout).await
    }

    /// Submits a raw transaction and returns its hash once check-tx accepted it and it was
    /// handed to the committee, without waiting for its round (oasis's `SubmitTxNoWait`).
    pub async fn submit_no_wait(
        &self,
        tx: Vec<u8>,
        timeout: Duration,
    ) -> Result<Hash, SubmitError> {
        let (reply, rx) = oneshot::channel();
        self.request(tx, Reply::Accepted(reply), rx, timeout).await
    }

    /// Hands a submission to the worker and waits up to `timeout` for its answer on `rx`.
    async fn request<T>(
        &self,
        tx: Vec<u8>,
        reply: Reply,
        rx: oneshot::Receiver<Result<T, SubmitError>>,
        timeout: Duration,
    ) -> Result<T, SubmitError> {
        self.requests
            .send(Request::Submit { tx, reply })
            .await
            .map_err(|_| SubmitError::Stopped)?;
        match tokio::time::timeout(timeout, rx).await {
            Err(_) => Err(SubmitError::Timeout(timeout)),
            Ok(Err(_)) => Err(SubmitError::Stopped),
            Ok(Ok(r)) => r,
        }
    }

    /// Runs a query against the finalized state; returns the round and the CBOR result.
    pub async fn query(
        &self,
        method: &str,
        args: ciborium::Value,
    ) -> Result<(Round, ciborium::Value), QueryError> {
        let conn = self.conn.borrow().clone().ok_or(QueryError::NotRunning)?;
        let round = self.status.borrow().latest_round;
        let req = RuntimeQueryRequest {
            state_root: ByteBuf::from(self.state.root().to_vec()),
            method: method.to_string(),
            args,
        };
        match conn
            .call(Body::RuntimeQueryRequest(req), CHECK_TIMEOUT)
            .await
        {
            Ok(Body::RuntimeQueryResponse(r)) => Ok((round, r.data)),
            Ok(other) => Err(QueryError::Failed(format!(
                "unexpected response {}",
                other.name()
            ))),
            Err(RhpError::Runtime(e)) => Err(QueryError::Runtime(e.to_string())),
            Err(e) => Err(QueryError::Failed(e.to_string())),
        }
    }
}

impl Handle {
    /// A handle on no worker, serving only the state's reads (control API tests).
    #[cfg(test)]
    pub(crate) fn detached(runtime: RuntimeId, state: Arc<RuntimeState>) -> Self {
        let (requests, _) = mpsc::channel(1);
        Self {
            runtime,
            requests,
            status: watch::channel(Status::default()).1,
            conn: watch::channel(None).1,
            state,
        }
    }

    /// One key of the finalized state with a proof against its root: (round, root, value,
    /// proof). The value is the one the proof proves.
    pub async fn state_proof(
        &self,
        key: Vec<u8>,
    ) -> Result<(Round, Hash, Option<Vec<u8>>, paratime_mkvs::Proof), QueryError> {
        let state = self.state.clone();
        let proved = tokio::task::spawn_blocking(move || {
            let (round, root, proof) = state.prove(&key).map_err(|e| e.to_string())?;
            let value = proof.verify(&root, &key).map_err(|e| e.to_string())?;
            Ok::<_, String>((Round(round), root, value, proof))
        })
        .await
        .map_err(|e| QueryError::Failed(e.to_string()))?;
        proved.map_err(QueryError::Failed)
    }
}

/// What the worker needs.
pub struct Worker {
    /// Runtime parameters from the genesis.
    pub descriptor: RuntimeDescriptor,
    /// The signer of batch proposals, executor commitments (never two per round) and of the
    /// consensus transactions that carry them.
    pub signer: Arc<crate::signer::Signer>,
    /// Store.
    pub store: Arc<Store>,
    /// The runtime's finalized state (read by the runtime through the host).
    pub state: Arc<RuntimeState>,
    /// Whether this node serves on committees (compute mode).
    pub compute: bool,
    /// `runtime.prune` (keep_last), if set.
    pub prune: Option<crate::config::Prune>,
    /// The tree lacks the finalized state the store recorded: sync it from peers first.
    pub needs_sync: bool,
    /// Cancelled as soon as the node begins to stop: a batch whose runtime went with the node
    /// is not committed as a failure.
    pub node_stopping: CancellationToken,
}

/// The round and state root the store recorded as finalized and applied (round 0, the empty
/// state, before the first).
pub fn applied(store: &Store, rid: &RuntimeId) -> Result<Applied, crate::storage::StoreError> {
    Ok(store.runtime_applied(rid)?.unwrap_or(Applied {
        round: paratime_state::Round(0),
        state_root: paratime_sdk::state::EMPTY_STATE_ROOT,
    }))
}

/// A runtime call's result, back in the worker's loop.
enum Done {
    /// Gossiped transactions checked: the passing ones are pooled.
    Gossiped {
        txs: Vec<Vec<u8>>,
        /// The message each came in.
        keys: Vec<judging::Key>,
        results: Result<Vec<TxResult>, CheckError>,
    },
    /// Client submissions checked.
    Submitted {
        fresh: Vec<(Vec<u8>, Reply)>,
        results: Result<Vec<TxResult>, CheckError>,
    },
    /// A batch executed (or not).
    Executed {
        job: Box<Job>,
        resp: Result<Body, RhpError>,
        elapsed: Duration,
    },
    /// A pruning run ended: the first round still retained, when it could be read, and
    /// whether rounds below the kept window remain after a run that removed some.
    Pruned {
        retained: Option<Round>,
        behind: bool,
    },
}

/// The worker's state, owned by its task.
struct Run {
    w: Worker,
    rid: RuntimeId,
    me: PublicKey,
    timing: Timing,
    consensus: Consensus,
    net: mpsc::Sender<p2p::Command>,
    conn: watch::Receiver<Option<Connection>>,
    status: watch::Sender<Status>,
    applied: Applied,
    pool: Pool,
    submissions: Submissions,
    follower: Follower,
    proposals: Proposals,
    round_clock: RoundClock,
    last_signed: Option<LastSigned>,
    proposed: Option<Round>,
    last_submit: Option<Instant>,
    /// Gossiped transactions waiting for the next check, with the message each came in.
    unchecked: Vec<(Vec<u8>, judging::Key)>,
    /// Bytes of the transactions in `unchecked`.
    unchecked_bytes: usize,
    /// Gossiped messages waiting for their transactions' check before they are relayed.
    judging: Judging<p2p::Gossiped>,
    /// Client submissions waiting for the next check.
    queued: VecDeque<(Vec<u8>, Reply)>,
    /// Runtime calls in flight (at most one of each kind).
    checking_gossip: bool,
    checking_submissions: bool,
    executing: Option<Round>,
    done: mpsc::Sender<Done>,
    /// A state sync to start (the peers pruned the rounds this node needs, or its tree lacks
    /// the state its store recorded).
    sync_wanted: bool,
    /// The state sync in progress.
    sync: Option<statesync::StateSync>,
    /// Since when a sync is wanted.
    sync_wanted_since: Instant,
    /// The highest round a peer said its history starts at.
    peers_retain_from: Round,
    /// The peers that said they pruned the rounds this node needs.
    pruned: statesync::PrunedClaims,
    /// The tree lacks the state the store recorded (sync even when no round is missing).
    tree_missing: bool,
    /// A pruning run is under way (off this task: it writes all over the store).
    pruning: bool,
    /// Pruning is catching up on rounds below the kept window (logged when it starts and ends).
    prune_behind: bool,
    /// The committee status last logged, and when.
    status_logged: Option<(crate::host::supervisor::CommitteeState, Instant)>,
}

impl Worker {
    /// Starts the worker; returns the control API's handle. It stops when `stop` is cancelled.
    pub fn start(
        self,
        applied: Applied,
        consensus: Consensus,
        net: mpsc::Sender<p2p::Command>,
        events: mpsc::Receiver<RuntimeEvent>,
        conn: watch::Receiver<Option<Connection>>,
        stop: CancellationToken,
    ) -> Result<Handle, crate::storage::StoreError> {
        let rid = self.descriptor.id;
        let self_needs_sync = self.needs_sync;
        let last_signed = self.store.last_signed(&rid)?;
        let (status_tx, status_rx) = watch::channel(Status {
            latest_round: applied.round,
            latest_state_root: hex::encode(applied.state_root),
            last_signed_round: last_signed.as_ref().map(|l| l.round),
            ..Default::default()
        });
        let (req_tx, req_rx) = mpsc::channel(4096);
        let (done_tx, done_rx) = mpsc::channel(8);
        let handle = Handle {
            runtime: rid,
            requests: req_tx,
            status: status_rx,
            conn: conn.clone(),
            state: self.state.clone(),
        };
        let now = Instant::now();
        let run = Run {
            me: self.signer.public_key(KeyRole::Node),
            timing: Timing::of(&self.descriptor.txn_scheduler),
            w: self,
            rid,
            consensus,
            net,
            conn,
            status: status_tx,
            applied,
            pool: Pool::default(),
            submissions: Submissions::new(now),
            follower: Follower::new(rid),
            proposals: Proposals::default(),
            round_clock: RoundClock::new(now),
            last_signed,
            proposed: None,
            last_submit: None,
            unchecked: Vec::new(),
            unchecked_bytes: 0,
            judging: Judging::default(),
            queued: VecDeque::new(),
            checking_gossip: false,
            checking_submissions: false,
            executing: None,
            done: done_tx,
            sync_wanted: self_needs_sync,
            sync: None,
            sync_wanted_since: now,
            peers_retain_from: Round(0),
            pruned: statesync::PrunedClaims::default(),
            tree_missing: self_needs_sync,
            pruning: false,
            prune_behind: false,
            status_logged: None,
        };
        tokio::spawn(run.main(events, req_rx, done_rx, stop));
        Ok(handle)
    }
}

impl Run {
    /// The loop: take what arrived, then step.
    async fn main(
        mut self,
        mut events: mpsc::Receiver<RuntimeEvent>,
        mut requests: mpsc::Receiver<Request>,
        mut done: mpsc::Receiver<Done>,
        stop: CancellationToken,
    ) {
        let mut views = self.consensus.view();
        let mut tick = tokio::time::interval(submissions::FLUSH_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let prune_every = self
            .w
            .prune
            .map_or(Duration::from_secs(3600), |p| p.interval);
        let mut prune_tick = tokio::time::interval(prune_every);
        prune_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = stop.cancelled() => break,
                r = views.changed() => if r.is_err() { break },
                _ = tick.tick() => {}
                _ = prune_tick.tick(), if self.w.prune.is_some() && !self.pruning => self.prune(),
                Some(d) = done.recv() => self.on_done(d).await,
                ev = events.recv() => match ev {
                    None => break,
                    Some(ev) => {
                        self.on_event(ev);
                        for _ in 1..DRAIN {
                            match events.try_recv() {
                                Ok(ev) => self.on_event(ev),
                                Err(_) => break,
                            }
                        }
                    }
                },
                // Submissions waiting behind the ones being checked stay in the channel (it is
                // bounded: submitters wait), then are checked together.
                req = requests.recv(), if !self.checking_submissions && self.queued.is_empty() => match req {
                    None => break,
                    Some(Request::Submit { tx, reply }) => {
                        self.queued.push_back((tx, reply));
                        while self.queued.len() < DRAIN {
                            match requests.try_recv() {
                                Ok(Request::Submit { tx, reply }) => self.queued.push_back((tx, reply)),
                                Err(_) => break,
                            }
                        }
                    }
                },
            }
            let view = views.borrow_and_update().clone();
            self.step(&view, Instant::now()).await;
        }
        for (_, reply) in self.queued.drain(..) {
            reply.fail(SubmitError::ShuttingDown);
        }
        self.submissions.close(SubmitError::ShuttingDown);
    }

    /// Removes history and state versions of rounds at or below `applied - num_kept`, at most
    /// [`PRUNE_BATCH`] rounds per run (oasis's pace), oldest first; a run that leaves such
    /// rounds behind is followed by another at once instead of at the next `interval` (oasis
    /// drains a backlog at 64 rounds per interval: with rounds every few hundred ms and the
    /// default 2m that never catches up, and the disk grows with pruning enabled). Runs on a
    /// blocking thread: on a large state, removing a round's replaced nodes costs a page write
    /// each (100+ ms per round at a million keys), which must not hold up this loop; the tree
    /// hands its writer lock to a round being stored between chunks.
    fn prune(&mut self) {
        let Some(p) = self.w.prune else {
            return;
        };
        let Some(keep_from) = prune_from(self.applied.round, p.num_kept) else {
            return;
        };
        let (rid, store, state, done) = (
            self.rid,
            self.w.store.clone(),
            self.w.state.clone(),
            self.done.clone(),
        );
        self.pruning = true;
        let run = move || prune_run(&store, &state, &rid, keep_from, PRUNE_BATCH);
        tokio::spawn(async move {
            // A panic ends this run only: the next tick starts another.
            let (retained, behind) = tokio::task::spawn_blocking(run)
                .await
                .unwrap_or((None, false));
            let _ = done.send(Done::Pruned { retained, behind }).await;
        });
    }

    fn on_event(&mut self, ev: RuntimeEvent) {
        match ev {
            RuntimeEvent::Tx(_, data, origin) => {
                let t = match crate::encoding::from_cbor_within::<RuntimeTxs>(
                    &data,
                    p2p::MAX_DECODED,
                ) {
                    Ok(t) if !t.txs.is_empty() => t,
                    _ => return self.judged(origin, p2p::Verdict::Refuse),
                };
                drop(data);
                // Transactions without room are turned away (not relayed either).
                let queued = fitting(
                    t.txs.iter().map(|tx| tx.len()),
                    MAX_UNCHECKED.saturating_sub(self.unchecked.len()),
                    MAX_UNCHECKED_BYTES.saturating_sub(self.unchecked_bytes),
                );
                if t.txs.len() > queued {
                    log::debug!(target: MODULE, runtime_id:% = self.rid, dropped = t.txs.len() - queued; "check-tx queue full: dropping gossiped transactions");
                }
                let bytes = t.txs.iter().map(|tx| tx.len()).sum();
                match self.judging.open(origin, queued, bytes) {
                    Ok(key) => {
                        for tx in t.txs.into_iter().take(queued) {
                            self.unchecked_bytes += tx.len();
                            self.unchecked.push((tx.into_vec(), key));
                        }
                    }
                    Err((origin, verdict)) => self.judged(origin, verdict),
                }
            }
            RuntimeEvent::Committee(_, data, origin) => {
                let message =
                    crate::encoding::from_cbor_weighed::<CommitteeMessage>(&data, p2p::MAX_DECODED);
                drop(data);
                match message {
                    Ok((CommitteeMessage::Proposal(s), _)) => {
                        let verdict = self.on_proposal(&s);
                        self.judged(origin, verdict);
                    }
                    // Relayed once its round is finalized and applied with it.
                    Ok((CommitteeMessage::Executed(b), weight)) => {
                        let applied = self.applied.round;
                        for o in self.follower.offer(*b, weight, Some(origin), applied) {
                            self.judged(o, p2p::Verdict::Drop);
                        }
                    }
                    Err(e) => {
                        log::debug!(target: MODULE, "malformed committee message: {e}");
                        self.judged(origin, p2p::Verdict::Refuse);
                    }
                }
            }
            RuntimeEvent::Round(_, b, weight) => {
                for o in self.follower.offer(*b, weight, None, self.applied.round) {
                    self.judged(o, p2p::Verdict::Drop);
                }
            }
            RuntimeEvent::Pruned(_, retained_from, peer) => {
                let now = Instant::now();
                if !self.pruned.claim(self.applied.round, retained_from, now) {
                    log::debug!(target: MODULE, runtime_id:% = self.rid, round = self.applied.round.0, peer_retained_from = retained_from.0, peer:% = peer; "a peer pruned the rounds this node needs");
                    return;
                }
                self.peers_retain_from = self.peers_retain_from.max(retained_from);
                if self.sync.is_none() && !self.sync_wanted {
                    self.sync_wanted_since = now;
                    log::info!(target: MODULE, runtime_id:% = self.rid, round = self.applied.round.0, peer_retained_from = retained_from.0; "peers pruned the rounds this node needs: syncing the state of the latest finalized round");
                    self.sync_wanted = true;
                }
            }
            RuntimeEvent::StateNodes(_, peer, nodes) => {
                self.on_state_nodes(peer, &nodes, Instant::now());
            }
        }
    }

    /// Starts, continues, restarts or completes a state sync to the latest finalized round.
    fn state_sync(&mut self, view: &View, now: Instant) {
        let Some(chain) = view.state.roothash.get(&self.rid) else {
            return;
        };
        if self.sync.is_none() {
            // The latest round a syncing consensus knows of may be pruned already: wait for a
            // round the peers still keep (for a while: a peer may lie about its window).
            let latest = &chain.block;
            let waited = now.saturating_duration_since(self.sync_wanted_since);
            if !view.synced || (latest.round < self.peers_retain_from && waited < statesync::STALL)
            {
                return;
            }
            if latest.round <= self.applied.round && !self.tree_missing {
                self.sync_wanted = false;
                return;
            }
            match self.w.state.begin_sync(latest.round.0, latest.state_root) {
                Ok(r) => {
                    log::info!(target: MODULE, runtime_id:% = self.rid, round = latest.round.0, state_root = hex::encode(latest.state_root).as_str(); "state sync started");
                    self.sync = Some(statesync::StateSync::new(r, now));
                    self.sync_wanted = false;
                }
                Err(e) => {
                    log::error!(target: MODULE, runtime_id:% = self.rid; "cannot start a state sync: {e}");
                    return;
                }
            }
        }
        let Some(s) = self.sync.as_mut() else { return };
        if s.restore.is_complete() {
            self.finish_sync();
            return;
        }
        match s.next(now) {
            statesync::Next::Wait => {}
            statesync::Next::Request => {
                let wants = s
                    .restore
                    .wants()
                    .into_iter()
                    .map(|p| (p.hash, p.version))
                    .collect();
                let _ =
                    self.net
                        .try_send(p2p::Command::FetchState(self.rid, wants, s.peer.clone()));
            }
            statesync::Next::Restart => {
                let (round, _) = s.restore.target();
                log::warn!(target: MODULE, runtime_id:% = self.rid, round = round, nodes = s.restore.nodes(); "state sync stalled (no peer sent a wanted node for {}s): starting again at the latest finalized round", statesync::STALL.as_secs());
                self.sync = None;
                self.sync_wanted = true;
            }
        }
    }

    fn on_state_nodes(&mut self, peer: String, nodes: &[Vec<u8>], now: Instant) {
        let Some(s) = self.sync.as_mut() else { return };
        match self.w.state.sync_chunk(&mut s.restore, nodes) {
            Ok(got) => {
                // The first peer that sends wanted nodes serves the rest: the wants carry the
                // versions it stores them under.
                if got.nodes > 0 && s.peer.is_none() {
                    s.peer = Some(peer);
                }
                if got.ignored > 0 {
                    log::debug!(target: MODULE, runtime_id:% = self.rid, ignored = got.ignored; "state sync: nodes not wanted were ignored");
                }
                s.answered(got.nodes, now);
                if s.restore.is_complete() {
                    self.finish_sync();
                }
            }
            Err(e) => {
                log::error!(target: MODULE, runtime_id:% = self.rid; "state sync: cannot store nodes: {e}");
                self.sync = None;
                self.sync_wanted = true;
            }
        }
    }

    /// Makes the synced round the applied one.
    fn finish_sync(&mut self) {
        let Some(s) = self.sync.take() else { return };
        let nodes = s.restore.nodes();
        let secs = s.started.elapsed().as_secs_f64();
        let done = self
            .w
            .state
            .finish_sync(s.restore)
            .map_err(|e| e.to_string())
            .and_then(|(round, root)| {
                self.w
                    .store
                    .state_synced(&self.rid, Round(round), &root)
                    .map_err(|e| e.to_string())
                    .map(|()| (round, root))
            });
        match done {
            Ok((round, root)) => {
                self.applied = Applied {
                    round: Round(round),
                    state_root: root,
                };
                self.tree_missing = false;
                // The history now starts after the synced round: say so at once, not at the
                // next pruning run (which may find nothing to prune for a while).
                if let Ok(r) = self.w.store.runtime_retained_from(&self.rid) {
                    self.status.send_modify(|s| s.last_retained_round = r);
                }
                log::info!(target: MODULE, runtime_id:% = self.rid, round = round, nodes = nodes, secs = secs, state_root = hex::encode(root).as_str(); "runtime state synced");
            }
            Err(e) => {
                log::error!(target: MODULE, runtime_id:% = self.rid; "state sync: cannot complete: {e}");
                self.sync_wanted = true;
            }
        }
    }

    /// Takes a gossiped proposal; says whether the network relays it: a new one signed by a
    /// member of this runtime's committee is, a badly signed one is refused, the rest dropped
    /// (outsiders' are kept while there is room — the next epoch's committee may propose
    /// before this node sees it elected — but not relayed).
    fn on_proposal(&mut self, s: &Signed) -> p2p::Verdict {
        // The state only (an Arc), not the whole view: a peer decides how many proposals arrive.
        let state = self.consensus.view().borrow().state.clone();
        let ctx = crypto::context(roothash::CONTEXT_PROPOSAL, Some(&state.chain_context));
        let p: Proposal = match s.open_within(&ctx, p2p::MAX_DECODED) {
            Ok(p) => p,
            Err(e) => {
                log::debug!(target: MODULE, "dropping proposal: {e}");
                return p2p::Verdict::Refuse;
            }
        };
        if p.runtime != self.rid {
            return p2p::Verdict::Drop;
        }
        let members: Vec<PublicKey> = state
            .committees
            .get(&self.rid)
            .map(|c| c.members.iter().map(|m| m.public_key).collect())
            .unwrap_or_default();
        let is_member = |k: &PublicKey| members.contains(k);
        let kept = self
            .proposals
            .offer(s.signature.public_key, p, self.applied.round, is_member);
        if kept && is_member(&s.signature.public_key) {
            p2p::Verdict::Relay
        } else {
            p2p::Verdict::Drop
        }
    }

    async fn on_done(&mut self, d: Done) {
        match d {
            Done::Pruned { retained, behind } => {
                self.pruning = false;
                if let Some(r) = retained {
                    self.status.send_modify(|s| s.last_retained_round = r);
                }
                if behind != self.prune_behind {
                    self.prune_behind = behind;
                    let kept = self.w.prune.map_or(0, |p| p.num_kept);
                    if behind {
                        log::info!(target: MODULE, runtime_id:% = self.rid, last_retained_round = retained.map_or(0, |r| r.0), latest_round = self.applied.round.0, num_kept = kept; "pruning is behind the kept window (runtime.prune.num_kept): pruning on at once, {PRUNE_BATCH} rounds per run, until it catches up");
                    } else {
                        log::info!(target: MODULE, runtime_id:% = self.rid, last_retained_round = retained.map_or(0, |r| r.0), latest_round = self.applied.round.0, num_kept = kept; "pruning caught up with the kept window");
                    }
                }
                if behind {
                    self.prune();
                }
            }
            Done::Gossiped { txs, keys, results } => {
                self.checking_gossip = false;
                match results {
                    Ok(results) => {
                        let now = Instant::now();
                        let mut refused = 0;
                        for ((tx, key), r) in txs.into_iter().zip(keys).zip(results) {
                            let len = tx.len();
                            let pooled = match &r.error {
                                None => self.pool.insert(hash(&tx), tx, now, r.sender.as_ref()),
                                Some(e) => {
                                    refused += 1;
                                    log::debug!(target: MODULE, runtime_id:% = self.rid; "gossiped transaction refused by check-tx: {e}");
                                    false
                                }
                            };
                            self.resolve(key, if pooled { len } else { 0 });
                        }
                        if refused > 0 {
                            self.status.send_modify(|s| s.gossip_refused += refused);
                        }
                    }
                    Err(e) => {
                        log::warn!(target: MODULE, runtime_id:% = self.rid; "cannot check transactions: {e}");
                        for key in keys {
                            self.resolve(key, 0);
                        }
                    }
                }
            }
            Done::Submitted { fresh, results } => {
                self.checking_submissions = false;
                let results = match results {
                    Ok(r) => r,
                    Err(e) => {
                        let e = match e {
                            CheckError::NotRunning => SubmitError::NotRunning,
                            CheckError::Failed(e) => SubmitError::CheckFailed(e),
                        };
                        for (_, reply) in fresh {
                            reply.fail(e.clone());
                        }
                        return;
                    }
                };
                let now = Instant::now();
                for ((tx, reply), r) in fresh.into_iter().zip(results) {
                    if let Some(e) = r.error {
                        reply.fail(SubmitError::Rejected(e.to_string()));
                        continue;
                    }
                    let h = hash(&tx);
                    // Finalized while it was being checked (someone else submitted it too).
                    if let Some(o) = self.outcome_of(&h) {
                        Self::answer_finalized(reply, h, o);
                        continue;
                    }
                    if self.w.compute {
                        self.pool.insert(h, tx.clone(), now, r.sender.as_ref());
                    }
                    match reply {
                        Reply::Finalized(w) => self.submissions.wait(h, tx, w),
                        Reply::Accepted(a) => {
                            self.submissions.send(tx);
                            let _ = a.send(Ok(h));
                        }
                    }
                }
            }
            Done::Executed { job, resp, elapsed } => {
                self.executing = None;
                self.commit(*job, resp, elapsed).await;
            }
        }
    }

    /// Checks `txs` with the runtime in a task; the results come back as a [`Done`] built by
    /// `done`. False (and nothing started) when the runtime is not running.
    fn spawn_check(
        &self,
        txs: Vec<Vec<u8>>,
        done: impl FnOnce(Vec<Vec<u8>>, Result<Vec<TxResult>, CheckError>) -> Done + Send + 'static,
    ) {
        let conn = self.conn.borrow().clone();
        let state_root = self.applied.state_root;
        let out = self.done.clone();
        tokio::spawn(async move {
            let results = match conn {
                None => Err(CheckError::NotRunning),
                Some(conn) => check(&conn, state_root, &txs).await,
            };
            let _ = out.send(done(txs, results)).await;
        });
    }

    /// Starts checking the gossiped transactions that are new to this node (compute nodes).
    /// The others — pooled, finalized, or a copy of one in the same check (a peer re-salting a
    /// batch sends the same transactions again) — resolve their message as nothing new.
    fn check_gossiped(&mut self) {
        if self.checking_gossip || self.unchecked.is_empty() {
            return;
        }
        if !self.w.compute {
            // A client node neither pools nor relays others' transactions.
            self.unchecked_bytes = 0;
            for (_, key) in std::mem::take(&mut self.unchecked) {
                self.resolve(key, 0);
            }
            return;
        }
        let n = check_batch_len(self.unchecked.iter().map(|(t, _)| t.len()));
        let batch: Vec<(Vec<u8>, judging::Key)> = self.unchecked.drain(..n).collect();
        self.unchecked_bytes -= batch.iter().map(|(t, _)| t.len()).sum::<usize>();
        let (pool, store, rid) = (&self.pool, &self.w.store, &self.rid);
        let (fresh, keys, known) = judging::split_fresh(batch, |h| {
            pool.contains(h) || matches!(store.tx_location(rid, h), Ok(Some(_)))
        });
        for key in known {
            self.resolve(key, 0);
        }
        if fresh.is_empty() {
            return;
        }
        self.checking_gossip = true;
        self.spawn_check(fresh, move |txs, results| Done::Gossiped {
            txs,
            keys,
            results,
        });
    }

    /// One of a gossiped message's transactions is resolved (`fresh_bytes`: its length when
    /// it was new and passed check-tx, else 0); sends the message's verdict once it was the
    /// last.
    fn resolve(&mut self, key: judging::Key, fresh_bytes: usize) {
        if let Some((origin, verdict)) = self.judging.resolve(key, fresh_bytes) {
            self.judged(origin, verdict);
        }
    }

    /// Tells the network whether a gossiped message is relayed. A verdict that does not fit in
    /// the channel is lost: the message is then not relayed (the safe side).
    fn judged(&self, origin: p2p::Gossiped, verdict: p2p::Verdict) {
        let _ = self.net.try_send(p2p::Command::Judged(origin, verdict));
    }

    /// Answers a submission of a transaction that is finalized already.
    fn answer_finalized(reply: Reply, h: Hash, o: TxOutcome) {
        match reply {
            Reply::Finalized(w) => {
                let _ = w.send(Ok(o));
            }
            Reply::Accepted(a) => {
                let _ = a.send(Ok(h));
            }
        }
    }

    fn outcome_of(&self, h: &Hash) -> Option<TxOutcome> {
        let (round, index) = self.w.store.tx_location(&self.rid, h).ok().flatten()?;
        let batch = self
            .w
            .store
            .executed_batch(&self.rid, round)
            .ok()
            .flatten()?;
        let result = batch.results.get(index as usize)?.clone();
        Some(TxOutcome {
            hash: hex::encode(h),
            round,
            index,
            result,
        })
    }

    /// Takes queued client submissions (one check's worth): finalized ones are answered at
    /// once, the others are checked by the runtime in one batch, then gossiped, pooled (compute
    /// nodes) and wait for their round.
    fn submit(&mut self) {
        while !self.checking_submissions && !self.queued.is_empty() {
            let n = check_batch_len(self.queued.iter().map(|(tx, _)| tx.len()));
            let batch: Vec<(Vec<u8>, Reply)> = self.queued.drain(..n).collect();
            let mut fresh = Vec::new();
            for (tx, reply) in batch {
                let h = hash(&tx);
                match self.outcome_of(&h) {
                    Some(o) => Self::answer_finalized(reply, h, o),
                    None => fresh.push((tx, reply)),
                }
            }
            if fresh.is_empty() {
                continue;
            }
            self.checking_submissions = true;
            let txs: Vec<Vec<u8>> = fresh.iter().map(|(tx, _)| tx.clone()).collect();
            self.spawn_check(txs, move |_, results| Done::Submitted { fresh, results });
        }
    }

    async fn step(&mut self, view: &View, now: Instant) {
        if self.sync_wanted || self.sync.is_some() {
            self.state_sync(view, now);
        }
        if self.sync_wanted || self.sync.is_some() {
            self.publish_status(view);
            return;
        }
        self.follow(view, now);
        self.submit();
        self.check_gossiped();
        if self.w.compute && view.synced && self.conn.borrow().is_some() {
            self.committee(view, now).await;
        }
        let republished = self
            .submissions
            .republish(now, &self.pool, self.timing.max_batch);
        if republished > 0 {
            log::debug!(target: MODULE, runtime_id:% = self.rid, txs = republished; "no progress: republishing waiting transactions");
        }
        if let Some(txs) = self.submissions.flush(now) {
            self.gossip_txs(txs).await;
        }
        self.publish_status(view);
    }

    /// Applies the finalized rounds and answers their submitters.
    fn follow(&mut self, view: &View, now: Instant) {
        let Some(chain) = view.state.roothash.get(&self.rid) else {
            return;
        };
        let progress = self.follower.catch_up(
            &chain.block,
            &mut self.applied,
            &self.w.store,
            &self.w.state,
            now,
        );
        for (origin, verdict) in progress.verdicts {
            self.judged(origin, verdict);
        }
        if let Some(round) = progress.fetch {
            let _ = self.net.try_send(p2p::Command::FetchRound(self.rid, round));
        }
        if let Some(round) = progress.missing_header {
            if self.sync.is_none() && !self.sync_wanted {
                log::info!(target: MODULE, runtime_id:% = self.rid, round = round.0; "the block header of the next round is not in this node's store (pruned with the consensus blocks while the node did not host this runtime, or before a consensus state sync): syncing the state of the latest finalized round");
                self.sync_wanted_since = now;
                self.sync_wanted = true;
            }
        }
        for batch in &progress.batches {
            let outcomes = batch.inputs.iter().enumerate().map(|(i, input)| {
                let h = hash(input);
                self.pool.remove(&h);
                let o = TxOutcome {
                    hash: hex::encode(h),
                    round: batch.round,
                    index: u32::try_from(i).unwrap_or(u32::MAX),
                    result: batch.results[i].clone(),
                };
                (h, o)
            });
            let outcomes: Vec<(Hash, TxOutcome)> = outcomes.collect();
            self.submissions.finalized(now, outcomes);
        }
        self.proposals.prune(self.applied.round);
    }

    /// oasis's committee status: the first of its conditions that is not met.
    fn committee_state(&self, view: &View) -> crate::host::supervisor::CommitteeState {
        use crate::host::supervisor::CommitteeState as S;
        if !view.synced {
            S::WaitingForConsensusSync
        } else if !view.state.roothash.contains_key(&self.rid) {
            S::WaitingForDescriptor
        } else if self.sync.is_some() || self.sync_wanted {
            S::WaitingForWorkers
        } else if self.conn.borrow().is_none() {
            S::WaitingForProvision
        } else {
            S::Ready
        }
    }

    /// Logs the committee status when it changes, and every [`WAITING_LOG_EVERY`] while the
    /// node is not ready, with what it is waiting for.
    fn log_committee_state(
        &mut self,
        view: &View,
        state: crate::host::supervisor::CommitteeState,
        waiting: Option<&str>,
        now: Instant,
    ) {
        use crate::host::supervisor::CommitteeState as S;
        let due = match self.status_logged {
            None => true,
            Some((last, at)) => {
                last != state || (state != S::Ready && now.duration_since(at) >= WAITING_LOG_EVERY)
            }
        };
        if !due {
            return;
        }
        self.status_logged = Some((state, now));
        let detail = match state {
            S::WaitingForConsensusSync if view.state.height.0 == 0 => {
                "no block decided since genesis yet (are the validators up and reachable?)".into()
            }
            S::WaitingForConsensusSync => format!(
                "consensus at height {}, its block from {}",
                view.state.height,
                humantime::format_rfc3339_seconds(
                    std::time::UNIX_EPOCH + Duration::from_millis(view.latest_time_ms)
                )
            ),
            S::WaitingForDescriptor => format!(
                "runtime {} is not in the network's registry (genesis runtimes: {})",
                self.rid,
                view.state
                    .roothash
                    .keys()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            // The worker's own reason, unless it only repeats the status.
            _ => waiting
                .filter(|w| *w != state.as_str())
                .unwrap_or_default()
                .to_string(),
        };
        log::info!(target: MODULE, runtime_id:% = self.rid, status = state.as_str(), detail = detail.as_str(); "committee status: {}{}{}", state.as_str(), if detail.is_empty() { "" } else { ": " }, detail);
    }

    fn publish_status(&mut self, view: &View) {
        let committee_status = self.committee_state(view);
        let state_syncing = self.sync.is_some() || self.sync_wanted;
        let compute = self.w.compute;
        let pool_size = self.pool.len();
        let waiting = if let Some(s) = &self.sync {
            let (round, _) = s.restore.target();
            Some(format!(
                "state sync: {} nodes of round {round} stored, {} known missing",
                s.restore.nodes(),
                s.restore.missing()
            ))
        } else if self.sync_wanted {
            Some("state sync: waiting for the latest finalized round".to_string())
        } else if self.conn.borrow().is_none() {
            Some(crate::host::supervisor::WAITING.to_string())
        } else {
            view.state
                .roothash
                .get(&self.rid)
                .filter(|c| c.block.round > self.applied.round)
                .map(|c| {
                    format!(
                        "catching up: round {} applied of {}",
                        self.applied.round, c.block.round
                    )
                })
        };
        let (round, root) = (self.applied.round, self.applied.state_root);
        let signed = self.last_signed.as_ref().map(|l| l.round);
        self.status.send_if_modified(|s| {
            let root = hex::encode(root);
            let changed = s.latest_round != round
                || s.pool_size != pool_size
                || s.waiting != waiting
                || s.last_signed_round != signed
                || s.latest_state_root != root;
            s.latest_round = round;
            s.latest_state_root = root;
            s.pool_size = pool_size;
            let changed = changed
                || s.committee_status != committee_status
                || s.state_syncing != state_syncing
                || s.compute != compute;
            s.waiting = waiting.clone();
            s.last_signed_round = signed;
            s.committee_status = committee_status;
            s.state_syncing = state_syncing;
            s.compute = compute;
            changed
        });
        self.log_committee_state(view, committee_status, waiting.as_deref(), Instant::now());
    }

    /// Gossips transactions as one message.
    async fn gossip_txs(&self, txs: Vec<ByteBuf>) {
        let mut salt = [0u8; 8];
        let _ = getrandom::fill(&mut salt);
        let msg = RuntimeTxs {
            txs,
            salt: u64::from_le_bytes(salt),
        };
        self.publish(false, crate::encoding::canonical_cbor(&msg))
            .await;
    }

    async fn publish(&self, committee: bool, data: Vec<u8>) {
        let _ = self
            .net
            .send(p2p::Command::PublishRuntime {
                runtime: self.rid,
                committee,
                data,
            })
            .await;
    }

    /// The committee duties for the open round.
    async fn committee(&mut self, view: &View, now: Instant) {
        let Some(chain) = view.state.roothash.get(&self.rid) else {
            return;
        };
        let Some(committee) = view.state.committees.get(&self.rid) else {
            return;
        };
        if self.applied.round != chain.block.round {
            return;
        }
        let round = chain.block.round.next();
        let open_for = self.round_clock.open_for(round, now);
        let prev_hash = chain.block.hash();
        let workers = roothash::workers(committee);
        let is_worker = workers.contains(&self.me);
        let is_backup = roothash::backups(committee).contains(&self.me);
        if !is_worker && !is_backup {
            return;
        }
        let ranks = Ranks::new(&workers, round);
        let fixed = chain.pool.scheduler;
        // A commitment signed for this round is resubmitted as it is; nothing new is signed.
        if let Some(l) = self
            .last_signed
            .as_ref()
            .filter(|l| l.round == round && l.previous_hash == prev_hash)
        {
            let in_pool = chain.pool.commits.contains_key(&self.me);
            let since = self.last_submit.map(|t| now.saturating_duration_since(t));
            if schedule::resubmit_now(l.scheduler, fixed, in_pool, since) {
                let commit = l.commit.clone();
                log::info!(target: MODULE, runtime_id:% = self.rid, round = round.0; "resubmitting the commitment already signed for this round");
                self.send_commit(view, commit, now);
            }
            return;
        }
        if let Some(rank) = ranks.of(&self.me).filter(|_| self.proposed != Some(round)) {
            let inputs = ProposeInputs {
                rank,
                pool_len: self.pool.len(),
                oldest_age: self.pool.oldest_age(now),
                best_seen: self
                    .proposals
                    .best(round, &prev_hash, fixed, &ranks)
                    .map(|(k, _)| k),
                fixed: fixed.is_some(),
                open_for,
            };
            if schedule::propose_now(&self.timing, &inputs) {
                self.propose(view, round, prev_hash, rank).await;
            }
        }
        if !schedule::executes(is_worker, is_backup, chain.pool.discrepancy)
            || self.executing.is_some()
        {
            return;
        }
        let Some((_, scheduler)) = self.proposals.best(round, &prev_hash, fixed, &ranks) else {
            return;
        };
        let Some(proposal) = self.proposals.get(round, &scheduler).cloned() else {
            return;
        };
        let Some(conn) = self.conn.borrow().clone() else {
            return;
        };
        let job = Job {
            scheduler,
            prev_hash,
            prev_root: self.applied.state_root,
            proposal,
        };
        self.executing = Some(round);
        let out = self.done.clone();
        let stopping = self.w.node_stopping.clone();
        tokio::spawn(async move {
            let started = Instant::now();
            let resp = conn.call(job.request(), EXECUTE_TIMEOUT).await;
            let elapsed = started.elapsed();
            // A closed connection may be the node stopping: a stop signal reaches the sandbox
            // as early as the node. Wait up to a second for the node's own stop here, in this
            // task, so that the worker's loop keeps serving meanwhile (a crashed runtime's
            // failure commitment waits that second, not the loop).
            if matches!(resp, Err(RhpError::Closed(_))) {
                let _ = tokio::time::timeout(Duration::from_secs(1), stopping.cancelled()).await;
            }
            let job = Box::new(job);
            let _ = out.send(Done::Executed { job, resp, elapsed }).await;
        });
    }

    async fn propose(&mut self, view: &View, round: Round, prev_hash: Hash, rank: u64) {
        // A batch already proposed for this round (before a restart) is sent again, never
        // replaced by another: the proposal is stored durably before it leaves the node.
        let stored = match self.w.store.runtime_record::<Signed>(&self.rid, "proposal") {
            Ok(s) => s,
            Err(e) => {
                // Fail closed: without the record we cannot know what was proposed before.
                log::error!(target: MODULE, runtime_id:% = self.rid, round = round.0; "cannot read the stored proposal, not proposing: {e}");
                return;
            }
        };
        let stored = stored.and_then(|s| {
            let p: Proposal = crate::encoding::from_cbor(&s.untrusted_raw_value).ok()?;
            (p.round == round && p.previous_hash == prev_hash).then_some((s, p))
        });
        let (signed, p) = match stored {
            Some(x) => x,
            None => {
                let batch = self.pool.batch(self.timing.max_batch, Instant::now());
                if batch.is_empty() {
                    // Every pooled transaction waits for its sender's previous one.
                    return;
                }
                let p = Proposal {
                    runtime: self.rid,
                    round,
                    previous_hash: prev_hash,
                    batch_hash: hash_of(&batch),
                    batch,
                };
                let ctx =
                    crypto::context(roothash::CONTEXT_PROPOSAL, Some(&view.state.chain_context));
                let slot = Slot::BatchProposal {
                    runtime: self.rid,
                    round,
                };
                let signed = match self.w.signer.sign_value(KeyRole::Node, &slot, &ctx, &p) {
                    Ok(s) => s,
                    Err(e) => {
                        log::error!(target: MODULE, runtime_id:% = self.rid, round = round.0; "{e}");
                        return;
                    }
                };
                if let Err(e) = self
                    .w
                    .store
                    .set_runtime_record(&self.rid, "proposal", &signed)
                {
                    log::error!(target: MODULE, runtime_id:% = self.rid, round = round.0; "cannot persist the proposal, not sending it: {e}");
                    return;
                }
                (signed, p)
            }
        };
        self.publish(
            true,
            crate::encoding::canonical_cbor(&CommitteeMessage::Proposal(signed)),
        )
        .await;
        if rank > 0 {
            log::info!(target: MODULE, runtime_id:% = self.rid, round = round.0, rank = rank, txs = p.batch.len(); "no proposal from the better-ranked schedulers: proposing as backup scheduler");
        } else {
            log::debug!(target: MODULE, runtime_id:% = self.rid, round = round.0, txs = p.batch.len(); "proposed batch");
        }
        self.proposed = Some(round);
        self.status.send_modify(|s| s.proposals += 1);
        self.proposals.insert_own(self.me, p);
    }

    /// Signs, stores and sends the commitment for an executed batch (or its failure), then
    /// gossips the batch for the nodes that follow the round.
    async fn commit(&mut self, job: Job, resp: Result<Body, RhpError>, elapsed: Duration) {
        let round = job.round();
        // The runtime's connection ended: if that is the node stopping (a stop signal reaches
        // the sandbox as early as the node), the round is not this node's to fail.
        if resp.is_err() && self.w.node_stopping.is_cancelled() {
            log::info!(target: MODULE, runtime_id:% = self.rid, round = round.0; "the node is stopping: round left uncommitted");
            return;
        }
        let judging = Instant::now();
        let state = self.w.state.clone();
        let outcome = job.judge(self.rid, resp, |prev, log| {
            state.compute(prev, log).map_err(|e| e.to_string())
        });
        // What the other nodes will receive, and whether they can take it.
        let outcome = outcome.and_then(executor::travels);
        if let Err(e) = &outcome {
            log::error!(target: MODULE, runtime_id:% = self.rid, round = round.0; "{e}: committing a failure");
        }
        let commit = job.commitment(outcome.as_ref().map(|(b, _, _)| b));
        let view = self.consensus.view().borrow().clone();
        let ctx = crypto::context(
            roothash::CONTEXT_EXECUTOR_COMMITMENT,
            Some(&view.state.chain_context),
        );
        let slot = Slot::ExecutorCommitment {
            runtime: self.rid,
            round,
        };
        let signed = match self
            .w
            .signer
            .sign_value(KeyRole::Node, &slot, &ctx, &commit)
        {
            Ok(s) => s,
            Err(e) => {
                log::error!(target: MODULE, runtime_id:% = self.rid, round = round.0; "{e}");
                return;
            }
        };
        let record = LastSigned {
            round,
            previous_hash: job.prev_hash,
            scheduler: Some(job.scheduler),
            commit: signed.clone(),
        };
        // Durable before it leaves the node: after a crash the node resubmits this one.
        if let Err(e) = self.w.store.set_last_signed(&self.rid, &record) {
            log::error!(target: MODULE, runtime_id:% = self.rid, round = round.0; "cannot persist the commitment, not sending it: {e}");
            return;
        }
        self.last_signed = Some(record);
        log::debug!(target: MODULE, runtime_id:% = self.rid, round = round.0, txs = job.proposal.batch.len(), execute_ms = u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX); "executed batch, submitting commitment");
        self.send_commit(&view, signed, Instant::now());
        self.status.send_modify(|s| s.commitments += 1);
        crate::metrics::events().batch(
            &self.rid.to_string(),
            job.proposal.batch.len(),
            elapsed,
            elapsed + judging.elapsed(),
            outcome.is_err(),
        );
        if let Ok((b, data, weight)) = outcome {
            self.publish(true, data).await;
            for o in self.follower.offer(b, weight, None, self.applied.round) {
                self.judged(o, p2p::Verdict::Drop);
            }
        }
    }

    fn send_commit(&mut self, view: &View, commit: Signed, now: Instant) {
        let body = ExecutorCommit {
            id: self.rid,
            commits: vec![commit],
        };
        let tx = match self
            .w
            .signer
            .transaction(&view.state, "roothash.ExecutorCommit", &body)
        {
            Ok(tx) => tx,
            Err(e) => {
                log::error!(target: MODULE, runtime_id:% = self.rid; "cannot sign the commitment's transaction: {e}");
                return;
            }
        };
        self.last_submit = Some(now);
        if let Err(e) = self.consensus.submit(tx) {
            log::warn!(target: MODULE, runtime_id:% = self.rid; "cannot submit the commitment: {e}");
        }
    }
}

/// Why transactions were not checked.
#[derive(Debug, thiserror::Error)]
enum CheckError {
    #[error("{}", crate::host::supervisor::WAITING)]
    NotRunning,
    #[error("{0}")]
    Failed(String),
}

/// Asks the runtime to check `txs` against `state_root`.
async fn check(
    conn: &Connection,
    state_root: Hash,
    txs: &[Vec<u8>],
) -> Result<Vec<TxResult>, CheckError> {
    let req = RuntimeCheckTxBatchRequest {
        state_root: ByteBuf::from(state_root.to_vec()),
        inputs: txs.iter().map(|t| ByteBuf::from(t.clone())).collect(),
    };
    match conn
        .call(Body::RuntimeCheckTxBatchRequest(req), CHECK_TIMEOUT)
        .await
    {
        Ok(Body::RuntimeCheckTxBatchResponse(r)) if r.results.len() == txs.len() => Ok(r.results),
        Ok(other) => Err(CheckError::Failed(format!(
            "unexpected response {}",
            other.name()
        ))),
        Err(e) => Err(CheckError::Failed(e.to_string())),
    }
}

#[cfg(test)]
mod prune_tests {
    use super::*;

    #[test]
    fn a_pruning_run_that_leaves_rounds_below_the_window_says_so_until_they_are_gone() {
        use paratime_sdk::protocol::WriteLogEntry;
        let d = tempfile::tempdir().expect("tmp");
        let store = Store::open(&d.path().join("node.redb")).expect("store");
        let state = RuntimeState::open(&d.path().join("state.redb"), 1 << 20).expect("state");
        let rid: RuntimeId = format!("{:064x}", 7).parse().expect("rid");
        for round in 1..=150u64 {
            store.insert_runtime_header(&rid, Round(round));
            let log = vec![WriteLogEntry {
                key: serde_bytes::ByteBuf::from(format!("key {round}").into_bytes()),
                value: Some(serde_bytes::ByteBuf::from(b"v".to_vec())),
            }];
            let prev = state.root();
            let next = state.compute(&prev, &log).expect("compute");
            state.apply(round, &prev, &log, &next).expect("apply");
        }
        // 140 rounds below a window of 10, 64 per run: two runs leave some behind, the third
        // removes the last 12, and a fourth has nothing to do.
        let keep_from = Round(141);
        let runs: Vec<_> = (0..4)
            .map(|_| prune_run(&store, &state, &rid, keep_from, 64))
            .collect();
        assert_eq!(
            runs,
            [
                (Some(Round(65)), true),
                (Some(Round(129)), true),
                (Some(Round(141)), false),
                (Some(Round(141)), false),
            ]
        );
        assert_eq!(state.versions().expect("versions"), Some((141, 150)));
    }

    #[test]
    fn the_pruner_keeps_num_kept_rounds_and_never_the_latest() {
        assert_eq!(prune_from(Round(10), 3), Some(Round(8)));
        assert_eq!(prune_from(Round(10), 1), Some(Round(10)));
        assert_eq!(prune_from(Round(3), 3), None);
        assert_eq!(prune_from(Round(2), 250_000), None);
        assert_eq!(prune_from(Round(u64::MAX), 0), None);
    }
}
