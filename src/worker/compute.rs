//! The runtime worker: one per hosted ParaTime, on compute and client nodes.
//!
//! - Finalized state: follows the runtime's blocks in the consensus view and applies each
//!   finalized round's executed batch (gossiped by the committee, or fetched from a peer),
//!   verified against the finalized header, to the store and to the in-memory state the runtime
//!   reads. Queries and transaction results are served from it.
//! - Transactions: clients submit through the control API; the worker checks them with the
//!   hosted runtime and gossips them; compute nodes keep a checked pool.
//! - Committee (compute nodes): the round's scheduler proposes a batch on the committee topic;
//!   workers (and backups during discrepancy resolution) execute it in the sandboxed runtime and
//!   submit a signed executor commitment. The commitment is stored durably before it leaves the
//!   node; after a restart the node resubmits that one and never signs another for the round.
//!
//! Owns the runtime's pool and finalized state; changes consensus state only by transactions.

use crate::bundle::RuntimeId;
use crate::consensus::crypto::{self, PublicKey, Signed};
use crate::consensus::engine::{Backend, Handle as Consensus, View};
use crate::consensus::genesis::RuntimeDescriptor;
use crate::consensus::roothash::{
    self, failure, header_type, BlockHeader, CommitmentHeader, ComputeResultsHeader, ExecutedBatch,
    ExecutorCommit, LastSigned, Proposal,
};
use crate::encoding::{hash, hash_of, Hash};
use crate::host::rhp::Connection;
use crate::host::state::RuntimeState;
use crate::p2p::{self, CommitteeMessage, RuntimeEvent, RuntimeTxs};
use crate::storage::{Applied, Store};
use paratime_sdk::protocol::{
    Body, RuntimeCheckTxBatchRequest, RuntimeExecuteTxBatchRequest, RuntimeQueryRequest, TxResult,
};
use paratime_state::signing::{KeyRole, Slot, SlotSigner};
use serde::Serialize;
use serde_bytes::ByteBuf;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot, watch};

const MODULE: &str = "worker/compute";
/// Transactions a node keeps in its pool.
const MAX_POOL: usize = 100_000;
/// Pool transactions older than this are gossiped again.
const REPUBLISH_AFTER: Duration = Duration::from_secs(2);
/// Submitted transactions are gossiped together at most this often.
const FLUSH_EVERY: Duration = Duration::from_millis(10);
/// Time the runtime gets to execute a batch.
const EXECUTE_TIMEOUT: Duration = Duration::from_secs(30);

/// The finalized outcome of one transaction.
#[derive(Clone, Debug, Serialize)]
pub struct TxOutcome {
    /// Hash of the raw transaction (hex).
    pub hash: String,
    /// Round it was finalized in.
    pub round: u64,
    /// Position in the round's batch.
    pub index: u32,
    /// The runtime's result.
    #[serde(skip)]
    pub result: TxResult,
}

/// What the worker publishes for `control status`.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Status {
    /// Last round whose state this node applied.
    pub latest_round: u64,
    /// Its state root (hex).
    pub latest_state_root: String,
    /// Transactions waiting in the pool.
    pub pool_size: usize,
    /// Last round this node signed a commitment for.
    pub last_signed_round: Option<u64>,
    /// Rounds this node committed to since it started.
    pub commitments: u64,
    /// Batches this node proposed since it started.
    pub proposals: u64,
    /// Why the worker is not executing, if it is not.
    pub waiting: Option<String>,
}

/// Where a submission's outcome goes.
type Reply = oneshot::Sender<Result<TxOutcome, String>>;

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
    /// Submits a raw transaction and waits until it is finalized (or `timeout`).
    pub async fn submit(&self, tx: Vec<u8>, timeout: Duration) -> Result<TxOutcome, String> {
        let (reply, rx) = oneshot::channel();
        self.requests
            .send(Request::Submit { tx, reply })
            .await
            .map_err(|_| "runtime worker stopped".to_string())?;
        match tokio::time::timeout(timeout, rx).await {
            Err(_) => Err(format!(
                "transaction not finalized within {}",
                humantime::format_duration(timeout)
            )),
            Ok(Err(_)) => Err("runtime worker stopped".into()),
            Ok(Ok(r)) => r,
        }
    }

    /// Runs a query against the finalized state; returns the round and the CBOR result.
    pub async fn query(
        &self,
        method: &str,
        args: ciborium::Value,
    ) -> Result<(u64, ciborium::Value), String> {
        let conn = self
            .conn
            .borrow()
            .clone()
            .ok_or("the runtime is not running (waiting for hosted runtime provision)")?;
        let round = self.status.borrow().latest_round;
        let req = RuntimeQueryRequest {
            state_root: ByteBuf::from(self.state.root().to_vec()),
            method: method.to_string(),
            args,
        };
        match conn
            .call(Body::RuntimeQueryRequest(req), Duration::from_secs(15))
            .await
        {
            Ok(Body::RuntimeQueryResponse(r)) => Ok((round, r.data)),
            Ok(other) => Err(format!("unexpected response {}", other.name())),
            Err(crate::host::rhp::RhpError::Runtime(e)) => Err(e.to_string()),
            Err(e) => Err(e.to_string()),
        }
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
}

/// Loads the runtime's finalized state from the store.
pub fn load_state(store: &Store, rid: &RuntimeId) -> Result<(Applied, RuntimeState), String> {
    let applied = store
        .runtime_applied(rid)
        .map_err(|e| e.to_string())?
        .unwrap_or(Applied {
            round: 0,
            state_root: paratime_sdk::state::EMPTY_STATE_ROOT,
        });
    let entries = store.runtime_entries(rid).map_err(|e| e.to_string())?;
    Ok((
        applied.clone(),
        RuntimeState::from_entries(applied.state_root, entries),
    ))
}

struct Pool {
    order: VecDeque<Hash>,
    txs: HashMap<Hash, (Vec<u8>, Instant)>,
}

impl Pool {
    fn insert(&mut self, h: Hash, tx: Vec<u8>) -> bool {
        if self.txs.contains_key(&h) || self.txs.len() >= MAX_POOL {
            return false;
        }
        self.order.push_back(h);
        self.txs.insert(h, (tx, Instant::now()));
        true
    }

    fn remove(&mut self, h: &Hash) {
        self.txs.remove(h);
    }

    /// Drops stale order entries and returns the oldest transaction's age.
    fn oldest_age(&mut self) -> Option<Duration> {
        while let Some(h) = self.order.front() {
            match self.txs.get(h) {
                Some((_, t)) => return Some(t.elapsed()),
                None => {
                    self.order.pop_front();
                }
            }
        }
        None
    }

    fn batch(&self, max: usize) -> Vec<ByteBuf> {
        self.order
            .iter()
            .filter_map(|h| self.txs.get(h))
            .take(max)
            .map(|(tx, _)| ByteBuf::from(tx.clone()))
            .collect()
    }
}

struct Run {
    w: Worker,
    rid: RuntimeId,
    me: PublicKey,
    consensus: Consensus,
    net: mpsc::Sender<p2p::Command>,
    conn: watch::Receiver<Option<Connection>>,
    status: watch::Sender<Status>,
    applied: Applied,
    pool: Pool,
    waiters: HashMap<Hash, Vec<Reply>>,
    /// Transactions submitted here that are not finalized yet (republished on a stall).
    submitted: HashMap<Hash, Vec<u8>>,
    /// Proposals by (round, signer): a proposal signed by someone other than the round's
    /// scheduler can never displace the scheduler's.
    proposals: BTreeMap<(u64, PublicKey), Proposal>,
    executed: HashMap<(u64, Hash, Hash), ExecutedBatch>,
    last_signed: Option<LastSigned>,
    proposed: Option<u64>,
    last_fetch: Option<(u64, Instant)>,
    last_submit: Option<Instant>,
    last_republish: Instant,
    /// When the applied round last advanced.
    last_progress: Instant,
    /// Transactions to gossip with the next flush.
    outbox: Vec<ByteBuf>,
    last_flush: Instant,
    /// The open round and since when this node has seen it open.
    round_opened: (u64, Instant),
}

impl Worker {
    /// Starts the worker; returns the control API's handle.
    #[allow(clippy::too_many_arguments)]
    pub fn start(
        self,
        applied: Applied,
        consensus: Consensus,
        net: mpsc::Sender<p2p::Command>,
        events: mpsc::Receiver<RuntimeEvent>,
        conn: watch::Receiver<Option<Connection>>,
        shutdown: watch::Receiver<bool>,
    ) -> Result<Handle, String> {
        let rid = self.descriptor.id;
        let last_signed = self.store.last_signed(&rid).map_err(|e| e.to_string())?;
        let (status_tx, status_rx) = watch::channel(Status {
            latest_round: applied.round,
            latest_state_root: hex::encode(applied.state_root),
            last_signed_round: last_signed.as_ref().map(|l| l.round),
            ..Default::default()
        });
        let (req_tx, req_rx) = mpsc::channel(4096);
        let handle = Handle {
            runtime: rid,
            requests: req_tx,
            status: status_rx,
            conn: conn.clone(),
            state: self.state.clone(),
        };
        let run = Run {
            me: self.signer.public_key(KeyRole::Node),
            w: self,
            rid,
            consensus,
            net,
            conn,
            status: status_tx,
            applied,
            pool: Pool {
                order: VecDeque::new(),
                txs: HashMap::new(),
            },
            waiters: HashMap::new(),
            submitted: HashMap::new(),
            proposals: BTreeMap::new(),
            executed: HashMap::new(),
            last_signed,
            proposed: None,
            last_fetch: None,
            last_submit: None,
            last_republish: Instant::now(),
            last_progress: Instant::now(),
            outbox: Vec::new(),
            last_flush: Instant::now(),
            round_opened: (0, Instant::now()),
        };
        tokio::spawn(run.main(events, req_rx, shutdown));
        Ok(handle)
    }
}

impl Run {
    async fn main(
        mut self,
        mut events: mpsc::Receiver<RuntimeEvent>,
        mut requests: mpsc::Receiver<Request>,
        shutdown: watch::Receiver<bool>,
    ) {
        let mut views = self.consensus.view();
        let mut tick = tokio::time::interval(FLUSH_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            tokio::select! {
                _ = crate::host::supervisor::stopped(shutdown.clone()) => break,
                r = views.changed() => if r.is_err() { break },
                _ = tick.tick() => {}
                ev = events.recv() => match ev {
                    None => break,
                    Some(ev) => {
                        let mut txs = Vec::new();
                        self.on_event(ev, &mut txs);
                        while txs.len() < 1024 {
                            match events.try_recv() {
                                Ok(ev) => self.on_event(ev, &mut txs),
                                Err(_) => break,
                            }
                        }
                        self.check_and_pool(txs).await;
                    }
                },
                req = requests.recv() => match req {
                    None => break,
                    Some(Request::Submit { tx, reply }) => {
                        // Submissions waiting behind this one are checked in the same batch.
                        let mut batch = vec![(tx, reply)];
                        while batch.len() < 1024 {
                            match requests.try_recv() {
                                Ok(Request::Submit { tx, reply }) => batch.push((tx, reply)),
                                Err(_) => break,
                            }
                        }
                        self.submit(batch).await;
                    }
                },
            }
            let view = views.borrow_and_update().clone();
            self.step(&view).await;
        }
        for (_, ws) in self.waiters.drain() {
            for w in ws {
                let _ = w.send(Err("node is shutting down".into()));
            }
        }
    }

    fn on_event(&mut self, ev: RuntimeEvent, txs: &mut Vec<Vec<u8>>) {
        match ev {
            RuntimeEvent::Tx(_, data) => {
                if let Ok(t) = crate::encoding::from_cbor::<RuntimeTxs>(&data) {
                    txs.extend(t.txs.into_iter().map(ByteBuf::into_vec));
                }
            }
            RuntimeEvent::Committee(_, data) => {
                match crate::encoding::from_cbor::<CommitteeMessage>(&data) {
                    Ok(CommitteeMessage::Proposal(s)) => self.on_proposal(&s),
                    Ok(CommitteeMessage::Executed(b)) => self.on_executed(*b),
                    Err(e) => log::debug!(target: MODULE, "malformed committee message: {e}"),
                }
            }
            RuntimeEvent::Round(_, b) => self.on_executed(*b),
        }
    }

    fn chain_context(&self) -> String {
        self.consensus.view().borrow().state.chain_context.clone()
    }

    fn on_proposal(&mut self, s: &Signed) {
        let ctx = crypto::context(roothash::CONTEXT_PROPOSAL, Some(&self.chain_context()));
        let p: Proposal = match s.open(&ctx) {
            Ok(p) => p,
            Err(e) => {
                log::warn!(target: MODULE, "dropping proposal: {e}");
                return;
            }
        };
        if p.runtime != self.rid
            || p.round <= self.applied.round
            || p.round > self.applied.round + 16
            || p.batch_hash != hash_of(&p.batch)
        {
            return;
        }
        if self.proposals.len() < 256 {
            self.proposals
                .entry((p.round, s.signature.public_key))
                .or_insert(p);
        }
    }

    fn on_executed(&mut self, b: ExecutedBatch) {
        if b.runtime != self.rid || b.round <= self.applied.round || self.executed.len() > 256 {
            return;
        }
        self.executed
            .entry((b.round, b.state_root, b.io_root))
            .or_insert(b);
    }

    /// Checks transactions with the runtime and pools those that pass (compute nodes).
    async fn check_and_pool(&mut self, txs: Vec<Vec<u8>>) {
        if !self.w.compute || txs.is_empty() {
            return;
        }
        let fresh: Vec<Vec<u8>> = txs
            .into_iter()
            .filter(|t| {
                let h = hash(t);
                !self.pool.txs.contains_key(&h)
                    && !matches!(self.w.store.tx_location(&self.rid, &h), Ok(Some(_)))
            })
            .collect();
        if fresh.is_empty() {
            return;
        }
        let results = match self.check(&fresh).await {
            Ok(r) => r,
            Err(e) => {
                log::warn!(target: MODULE, runtime_id:% = self.rid; "cannot check transactions: {e}");
                return;
            }
        };
        for (tx, r) in fresh.into_iter().zip(results) {
            if r.error.is_none() {
                self.pool.insert(hash(&tx), tx);
            }
        }
    }

    async fn check(&self, txs: &[Vec<u8>]) -> Result<Vec<TxResult>, String> {
        let conn = self
            .conn
            .borrow()
            .clone()
            .ok_or("waiting for hosted runtime provision")?;
        let req = RuntimeCheckTxBatchRequest {
            state_root: ByteBuf::from(self.applied.state_root.to_vec()),
            inputs: txs.iter().map(|t| ByteBuf::from(t.clone())).collect(),
        };
        match conn
            .call(
                Body::RuntimeCheckTxBatchRequest(req),
                Duration::from_secs(15),
            )
            .await
        {
            Ok(Body::RuntimeCheckTxBatchResponse(r)) if r.results.len() == txs.len() => {
                Ok(r.results)
            }
            Ok(other) => Err(format!("unexpected response {}", other.name())),
            Err(e) => Err(e.to_string()),
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

    /// Takes client submissions: finalized ones are answered at once, the others are checked
    /// by the runtime in one batch, gossiped, pooled (compute nodes) and wait for their round.
    async fn submit(&mut self, batch: Vec<(Vec<u8>, Reply)>) {
        let mut fresh = Vec::new();
        for (tx, reply) in batch {
            match self.outcome_of(&hash(&tx)) {
                Some(o) => {
                    let _ = reply.send(Ok(o));
                }
                None => fresh.push((tx, reply)),
            }
        }
        if fresh.is_empty() {
            return;
        }
        let txs: Vec<Vec<u8>> = fresh.iter().map(|(tx, _)| tx.clone()).collect();
        let results = match self.check(&txs).await {
            Ok(r) => r,
            Err(e) => {
                for (_, reply) in fresh {
                    let _ = reply.send(Err(format!("cannot check the transaction: {e}")));
                }
                return;
            }
        };
        for ((tx, reply), r) in fresh.into_iter().zip(results) {
            if let Some(e) = r.error {
                let _ = reply.send(Err(format!("check-tx failed: {e}")));
                continue;
            }
            let h = hash(&tx);
            self.outbox.push(ByteBuf::from(tx.clone()));
            if self.w.compute {
                self.pool.insert(h, tx.clone());
            }
            self.waiters.entry(h).or_default().push(reply);
            if self.submitted.len() < MAX_POOL {
                self.submitted.insert(h, tx);
            }
        }
    }

    async fn step(&mut self, view: &View) {
        self.catch_up(view);
        if self.w.compute && view.synced && self.conn.borrow().is_some() {
            self.committee(view).await;
        }
        self.republish();
        self.flush().await;
        let pool_size = self.pool.txs.len();
        let waiting = if self.conn.borrow().is_none() {
            Some(crate::host::supervisor::WAITING.to_string())
        } else if view
            .state
            .roothash
            .get(&self.rid)
            .is_some_and(|c| c.block.round > self.applied.round)
        {
            Some(format!(
                "catching up: round {} applied of {}",
                self.applied.round, view.state.roothash[&self.rid].block.round
            ))
        } else {
            None
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
            s.waiting = waiting;
            s.last_signed_round = signed;
            changed
        });
    }

    /// Applies finalized rounds up to the consensus view's latest runtime block.
    fn catch_up(&mut self, view: &View) {
        let Some(chain) = view.state.roothash.get(&self.rid) else {
            return;
        };
        while self.applied.round < chain.block.round {
            let round = self.applied.round + 1;
            let header: Option<BlockHeader> = if round == chain.block.round {
                Some(chain.block.clone())
            } else {
                self.w.store.runtime_block(&self.rid, round).ok().flatten()
            };
            let Some(header) = header else {
                log::warn!(target: MODULE, runtime_id:% = self.rid, round = round; "runtime block missing from the store");
                return;
            };
            if header.header_type != header_type::NORMAL {
                if let Err(e) =
                    self.w
                        .store
                        .apply_round(&self.rid, round, None, &self.applied.state_root)
                {
                    log::error!(target: MODULE, runtime_id:% = self.rid, round = round; "cannot record round: {e}");
                    return;
                }
                if header.header_type == header_type::ROUND_FAILED {
                    log::warn!(target: MODULE, runtime_id:% = self.rid, round = round; "runtime round failed");
                }
                self.applied.round = round;
                continue;
            }
            let key = (round, header.state_root, header.io_root);
            let Some(batch) = self.executed.remove(&key) else {
                let due = self
                    .last_fetch
                    .is_none_or(|(r, t)| r != round || t.elapsed() > Duration::from_millis(500));
                if due {
                    self.last_fetch = Some((round, Instant::now()));
                    let _ = self.net.try_send(p2p::Command::FetchRound(self.rid, round));
                }
                return;
            };
            if let Err(e) = batch.verify(&header, &self.applied.state_root) {
                log::warn!(target: MODULE, runtime_id:% = self.rid, round = round; "discarding executed batch: {e}");
                return;
            }
            if let Err(e) =
                self.w
                    .store
                    .apply_round(&self.rid, round, Some(&batch), &header.state_root)
            {
                log::error!(target: MODULE, runtime_id:% = self.rid, round = round; "cannot apply round: {e}");
                return;
            }
            if let Err(e) = self.w.state.apply(
                &self.applied.state_root,
                &batch.write_log,
                &header.state_root,
            ) {
                log::error!(target: MODULE, runtime_id:% = self.rid, round = round; "in-memory state diverged from the store: {e}");
            }
            self.applied = Applied {
                round,
                state_root: header.state_root,
            };
            self.last_progress = Instant::now();
            for (i, input) in batch.inputs.iter().enumerate() {
                let h = hash(input);
                self.pool.remove(&h);
                self.submitted.remove(&h);
                if let Some(ws) = self.waiters.remove(&h) {
                    for w in ws {
                        let _ = w.send(Ok(TxOutcome {
                            hash: hex::encode(h),
                            round,
                            index: i as u32,
                            result: batch.results[i].clone(),
                        }));
                    }
                }
            }
            log::info!(target: MODULE, runtime_id:% = self.rid, round = round, txs = batch.inputs.len(), state_root = hex::encode(header.state_root).as_str(); "runtime round finalized");
        }
        let applied_round = self.applied.round;
        self.proposals.retain(|(r, _), _| *r > applied_round);
        self.executed.retain(|(r, _, _), _| *r > applied_round);
    }

    /// Gossips again the oldest pool transactions when no round was applied for
    /// [`REPUBLISH_AFTER`] while transactions wait: a scheduler that restarted (or joined late)
    /// lost them, and without them the committee would wait for new transactions.
    ///
    /// Transactions submitted through this node are republished the same way (compute nodes
    /// that were not ready when they were first gossiped dropped them).
    fn republish(&mut self) {
        if (self.pool.txs.is_empty() && self.submitted.is_empty())
            || self.last_progress.elapsed() < REPUBLISH_AFTER
            || self.last_republish.elapsed() < REPUBLISH_AFTER
        {
            return;
        }
        self.last_republish = Instant::now();
        // Forget submissions whose callers gave up (here, not on every step: it walks them all).
        self.waiters.retain(|_, ws| {
            ws.retain(|w| !w.is_closed());
            !ws.is_empty()
        });
        let waiters = &self.waiters;
        self.submitted.retain(|h, _| waiters.contains_key(h));
        let max = self.w.descriptor.txn_scheduler.max_batch_size.max(1) as usize;
        let mut stale = self.pool.batch(max);
        stale.extend(
            self.submitted
                .iter()
                .filter(|(h, _)| !self.pool.txs.contains_key(*h))
                .take(max)
                .map(|(_, tx)| ByteBuf::from(tx.clone())),
        );
        log::debug!(target: MODULE, runtime_id:% = self.rid, txs = stale.len(); "no progress: republishing waiting transactions");
        self.outbox.extend(stale);
    }

    /// Gossips the outbox as one message, every [`FLUSH_EVERY`] or when it is full.
    async fn flush(&mut self) {
        if self.outbox.is_empty()
            || (self.outbox.len() < 512 && self.last_flush.elapsed() < FLUSH_EVERY)
        {
            return;
        }
        self.last_flush = Instant::now();
        let mut salt = [0u8; 8];
        let _ = getrandom::fill(&mut salt);
        let msg = RuntimeTxs {
            txs: std::mem::take(&mut self.outbox),
            salt: u64::from_le_bytes(salt),
        };
        let _ = self
            .net
            .send(p2p::Command::PublishRuntime {
                runtime: self.rid,
                committee: false,
                data: crate::encoding::canonical_cbor(&msg),
            })
            .await;
    }

    async fn committee(&mut self, view: &View) {
        let Some(chain) = view.state.roothash.get(&self.rid) else {
            return;
        };
        let Some(committee) = view.state.committees.get(&self.rid) else {
            return;
        };
        if self.applied.round != chain.block.round {
            return;
        }
        let round = chain.block.round + 1;
        if self.round_opened.0 != round {
            self.round_opened = (round, Instant::now());
        }
        let prev_hash = chain.block.hash();
        let workers = roothash::workers(committee);
        let is_worker = workers.contains(&self.me);
        let is_backup = roothash::backups(committee).contains(&self.me);
        if !is_worker && !is_backup {
            return;
        }
        let rank = |k: &PublicKey| {
            workers
                .iter()
                .position(|w| w == k)
                .map(|i| roothash::rank_of(i, workers.len(), round))
        };
        let signed = self
            .last_signed
            .as_ref()
            .filter(|l| l.round == round && l.previous_hash == prev_hash);
        // A commitment signed for this round that the pool does not show yet (lost, or signed
        // before a restart) is resubmitted as it is; nothing new is signed. Once the round is
        // fixed to another scheduler's proposal, it can never be accepted: stop sending it.
        if let Some(l) = signed {
            let in_pool = chain.pool.commits.contains_key(&self.me);
            let other = chain
                .pool
                .scheduler
                .is_some_and(|s| l.scheduler.is_some_and(|mine| mine != s));
            let due = self
                .last_submit
                .is_none_or(|t| t.elapsed() > Duration::from_secs(2));
            if !in_pool && !other && due {
                let commit = l.commit.clone();
                log::info!(target: MODULE, runtime_id:% = self.rid, round = round; "resubmitting the commitment already signed for this round");
                self.send_commit(view, commit);
            }
            return;
        }
        // The best-ranked proposal seen for the round (the one the consensus fixed, once a
        // commitment was accepted).
        let best = self.best_proposal(round, &prev_hash, chain.pool.scheduler, &rank);
        let my_rank = rank(&self.me);
        if let Some(k) = my_rank.filter(|_| self.proposed != Some(round)) {
            let t = &self.w.descriptor.txn_scheduler;
            let max = t.max_batch_size.max(1) as usize;
            let ready = if k == 0 {
                let flush = Duration::from_millis(t.batch_flush_timeout_ms);
                self.pool.txs.len() >= max || self.pool.oldest_age().is_some_and(|age| age >= flush)
            } else {
                // A backup scheduler steps in when the better-ranked ones stay silent.
                let wait = Duration::from_millis(t.propose_batch_timeout_ms.saturating_mul(k));
                best.is_none_or(|(b, _)| b > k)
                    && chain.pool.scheduler.is_none()
                    && !self.pool.txs.is_empty()
                    && self.round_opened.1.elapsed() >= wait
                    && self.pool.oldest_age().is_some_and(|age| age >= wait)
            };
            if ready {
                self.propose(view, round, prev_hash, max, k).await;
            }
        }
        let executes = is_worker || (is_backup && chain.pool.discrepancy);
        if !executes || (chain.pool.discrepancy && !is_backup) {
            return;
        }
        let best = self.best_proposal(round, &prev_hash, chain.pool.scheduler, &rank);
        let Some((_, sched)) = best else {
            return;
        };
        let Some(p) = self.proposals.get(&(round, sched)).cloned() else {
            return;
        };
        self.execute(view, sched, prev_hash, p).await;
    }

    /// The best-ranked proposal seen for `round` that builds on `prev_hash` (only `fixed`'s
    /// once the consensus fixed the round's scheduler): (rank, scheduler).
    fn best_proposal(
        &self,
        round: u64,
        prev_hash: &Hash,
        fixed: Option<PublicKey>,
        rank: &dyn Fn(&PublicKey) -> Option<u64>,
    ) -> Option<(u64, PublicKey)> {
        self.proposals
            .iter()
            .filter(|((r, signer), p)| {
                *r == round && &p.previous_hash == prev_hash && fixed.is_none_or(|s| s == *signer)
            })
            .filter_map(|((_, signer), _)| rank(signer).map(|k| (k, *signer)))
            .min()
    }

    async fn propose(&mut self, view: &View, round: u64, prev_hash: Hash, max: usize, rank: u64) {
        // A batch already proposed for this round (before a restart) is sent again, never
        // replaced by another: the proposal is stored durably before it leaves the node.
        let stored = match self.w.store.runtime_record::<Signed>(&self.rid, "proposal") {
            Ok(s) => s,
            Err(e) => {
                // Fail closed: without the record we cannot know what was proposed before.
                log::error!(target: MODULE, runtime_id:% = self.rid, round = round; "cannot read the stored proposal, not proposing: {e}");
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
                let batch = self.pool.batch(max);
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
                        log::error!(target: MODULE, runtime_id:% = self.rid, round = round; "{e}");
                        return;
                    }
                };
                if let Err(e) = self
                    .w
                    .store
                    .set_runtime_record(&self.rid, "proposal", &signed)
                {
                    log::error!(target: MODULE, runtime_id:% = self.rid, round = round; "cannot persist the proposal, not sending it: {e}");
                    return;
                }
                (signed, p)
            }
        };
        let _ = self
            .net
            .send(p2p::Command::PublishRuntime {
                runtime: self.rid,
                committee: true,
                data: crate::encoding::canonical_cbor(&CommitteeMessage::Proposal(signed)),
            })
            .await;
        if rank > 0 {
            log::info!(target: MODULE, runtime_id:% = self.rid, round = round, rank = rank, txs = p.batch.len(); "no proposal from the better-ranked schedulers: proposing as backup scheduler");
        } else {
            log::debug!(target: MODULE, runtime_id:% = self.rid, round = round, txs = p.batch.len(); "proposed batch");
        }
        self.proposed = Some(round);
        self.status.send_modify(|s| s.proposals += 1);
        self.proposals.insert((round, self.me), p);
    }

    async fn execute(&mut self, view: &View, sched: PublicKey, prev_hash: Hash, p: Proposal) {
        let round = p.round;
        let prev_root = self.applied.state_root;
        let Some(conn) = self.conn.borrow().clone() else {
            return;
        };
        let req = RuntimeExecuteTxBatchRequest {
            round,
            state_root: ByteBuf::from(prev_root.to_vec()),
            inputs: p.batch.clone(),
        };
        let started = Instant::now();
        let resp = conn
            .call(Body::RuntimeExecuteTxBatchRequest(req), EXECUTE_TIMEOUT)
            .await;
        let (header, failure, batch) = match resp {
            Ok(Body::RuntimeExecuteTxBatchResponse(r)) => {
                let claimed: Option<Hash> = paratime_sdk::state::to_hash(&r.state_root);
                let io: Option<Hash> = paratime_sdk::state::to_hash(&r.io_root);
                let sorted = r.write_log.windows(2).all(|w| w[0].key < w[1].key);
                let root = paratime_sdk::state::next_state_root(&prev_root, &r.write_log);
                let io_root = paratime_sdk::state::io_root(round, &p.batch, &r.results);
                if !sorted
                    || claimed != Some(root)
                    || io != Some(io_root)
                    || r.results.len() != p.batch.len()
                {
                    log::error!(target: MODULE, runtime_id:% = self.rid, round = round; "the runtime's results are inconsistent (state root or io root does not match its write log and results): committing a failure");
                    (None, failure::UNKNOWN, None)
                } else {
                    let batch = ExecutedBatch {
                        runtime: self.rid,
                        round,
                        previous_state_root: prev_root,
                        state_root: root,
                        io_root,
                        inputs: p.batch.clone(),
                        results: r.results,
                        write_log: r.write_log,
                    };
                    (Some((root, io_root)), failure::NONE, Some(batch))
                }
            }
            Ok(other) => {
                log::error!(target: MODULE, runtime_id:% = self.rid, round = round; "unexpected response {} to a batch: committing a failure", other.name());
                (None, failure::UNKNOWN, None)
            }
            Err(e) => {
                log::error!(target: MODULE, runtime_id:% = self.rid, round = round, err:% = e; "batch execution failed: committing a failure");
                (None, failure::UNKNOWN, None)
            }
        };
        let (state_root, io_root) = header.unwrap_or(([0; 32], [0; 32]));
        let commit = CommitmentHeader {
            scheduler_id: sched,
            header: ComputeResultsHeader {
                round,
                previous_hash: prev_hash,
                io_root,
                state_root,
            },
            failure,
        };
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
                log::error!(target: MODULE, runtime_id:% = self.rid, round = round; "{e}");
                return;
            }
        };
        let record = LastSigned {
            round,
            previous_hash: prev_hash,
            scheduler: Some(sched),
            commit: signed.clone(),
        };
        // Durable before it leaves the node: after a crash the node resubmits this one.
        if let Err(e) = self.w.store.set_last_signed(&self.rid, &record) {
            log::error!(target: MODULE, runtime_id:% = self.rid, round = round; "cannot persist the commitment, not sending it: {e}");
            return;
        }
        self.last_signed = Some(record);
        log::debug!(target: MODULE, runtime_id:% = self.rid, round = round, txs = p.batch.len(), execute_ms = started.elapsed().as_millis() as u64; "executed batch, submitting commitment");
        self.send_commit(view, signed);
        self.status.send_modify(|s| s.commitments += 1);
        if let Some(b) = batch {
            let _ = self
                .net
                .send(p2p::Command::PublishRuntime {
                    runtime: self.rid,
                    committee: true,
                    data: crate::encoding::canonical_cbor(&CommitteeMessage::Executed(Box::new(
                        b.clone(),
                    ))),
                })
                .await;
            self.on_executed(b);
        }
    }

    fn send_commit(&mut self, view: &View, commit: Signed) {
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
        self.last_submit = Some(Instant::now());
        if let Err(e) = self.consensus.submit(tx) {
            log::warn!(target: MODULE, runtime_id:% = self.rid; "cannot submit the commitment: {e}");
        }
    }
}
