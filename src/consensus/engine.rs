//! The node's consensus: the chain (committed state, store, mempool) behind
//! [`paratime_bft::chain::ChainApp`], ordered by Malachite (Tendermint) on the consensus port.
//! Validators propose and vote; every other node runs the engine as a full node and follows the
//! decided blocks (by gossip, or by value sync when it was away).
//!
//! Owns the committed state; others get read-only [`View`]s and submit transactions.

use super::block::{CommitCert, Proposed, TxOutcome};
use super::crypto::{PublicKey, Signed};
use super::genesis::Genesis;
use super::recent::Recent;
use super::state::State;
use crate::encoding::{hash_of, Hash};
use crate::p2p;
use crate::signer::Signer;
use crate::storage::Store;
use paratime_bft::chain::{ChainApp, ChainError};
use paratime_state::signing::{KeyRole, SlotSigner};
use paratime_state::Height;
use paratime_state::RuntimeId;
use std::collections::{BTreeSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, watch};

/// MESSAGE_ID: this node's consensus key joined the validator set.
pub const MSG_BECAME_VALIDATOR: &str = "2b1e7a5c0d6f4e8a9c3b1d2e4f6a8c21";
/// MESSAGE_ID: this node's consensus key left the validator set.
pub const MSG_LEFT_VALIDATORS: &str = "2b1e7a5c0d6f4e8a9c3b1d2e4f6a8c22";
/// MESSAGE_ID: a block was decided that another validator proposed in a later round than 0
/// (the round-0 proposer missed its proposal).
pub const MSG_MISSED_PROPOSAL: &str = "2b1e7a5c0d6f4e8a9c3b1d2e4f6a8c23";
/// MESSAGE_ID: the engine reported equivocation evidence.
pub const MSG_EQUIVOCATION: &str = "2b1e7a5c0d6f4e8a9c3b1d2e4f6a8c24";
/// MESSAGE_ID: the node reached its upgrade halt (`consensus.halt_height` / `halt_epoch`).
pub const MSG_HALTED: &str = "2b1e7a5c0d6f4e8a9c3b1d2e4f6a8c25";
/// MESSAGE_ID: under `consensus_pubsub: broadcast`, this validator has no connection to another
/// validator (or has them all again).
pub const MSG_VALIDATOR_UNREACHABLE: &str = "2b1e7a5c0d6f4e8a9c3b1d2e4f6a8c26";

/// How often a validator on a broadcast network checks that it is connected to every other one.
const REACH_EVERY: Duration = Duration::from_secs(30);

/// The current validators known on the consensus port, as (consensus key, node ID, peer ID):
/// each registered validator node's P2P key is its consensus network identity (a validator
/// whose node has not registered yet is not known by its peer ID, and is not listed).
pub fn validator_peers(state: &State) -> impl Iterator<Item = (PublicKey, PublicKey, String)> + '_ {
    state.validators.validators.iter().filter_map(|v| {
        let node = v.node_id?;
        let peer = crate::p2p::peer_id_of(&state.nodes.get(&node)?.p2p.id)?;
        Some((v.consensus_id, node, peer.to_string()))
    })
}

/// The other validators this node has no consensus connection to, as (node ID, peer ID)
/// ([`validator_peers`]).
pub fn validators_not_connected(
    state: &State,
    me: &PublicKey,
    peers: &[paratime_bft::engine::Peer],
) -> Vec<(PublicKey, String)> {
    let connected: BTreeSet<&str> = peers.iter().map(|p| p.peer_id.as_str()).collect();
    validator_peers(state)
        .filter(|(consensus, _, peer)| consensus != me && !connected.contains(peer.as_str()))
        .map(|(_, node, peer)| (node, peer))
        .collect()
}

/// A read-only snapshot of the consensus layer.
#[derive(Clone, Debug)]
pub struct View {
    /// Latest state (height, epoch, registry, committees, accounts, validators).
    pub state: Arc<State>,
    /// Hash of the latest block header.
    pub latest_hash: Hash,
    /// Time of the latest block (unix ms; genesis time at height 0).
    pub latest_time_ms: u64,
    /// Synced with the network.
    pub synced: bool,
    /// This node's consensus key is in the current validator set.
    pub is_validator: bool,
    /// Outcomes of the transactions in the latest block.
    pub last_outcomes: Vec<TxOutcome>,
    /// Round in which the latest block was decided.
    pub last_commit_round: i64,
    /// Validators whose precommits are in the latest block's commit certificate.
    pub last_commit_signers: Vec<PublicKey>,
    /// Equivocations the engine reported: (height, offender, what).
    pub evidence: Vec<(u64, PublicKey, String)>,
    /// Over the last [`STATS_WINDOW`] blocks committed live (not synced): time from the
    /// proposer building a block to this node committing it, p50 and p99 (ms).
    pub finality_ms: (u64, u64),
    /// Over the same blocks: time between consecutive block headers, p50 (ms).
    pub block_interval_ms: u64,
    /// The lowest height whose block this node keeps (`consensus.prune`).
    pub last_retained_height: u64,
}

/// Blocks the status figures are computed over.
pub const STATS_WINDOW: usize = 1024;

fn percentile(sorted: &[u64], p: usize) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    sorted[(sorted.len() - 1) * p / 100]
}

/// What the rest of the node needs from a consensus engine.
pub trait Backend: Send + Sync {
    /// The latest view.
    fn view(&self) -> watch::Receiver<View>;
    /// Submits a signed transaction (gossiped, and ordered by the validators).
    fn submit(&self, tx: Signed) -> Result<(), SubmitError>;
}

/// Handle of the running consensus.
#[derive(Clone)]
pub struct Handle {
    view: watch::Receiver<View>,
    submit: mpsc::Sender<Signed>,
    progress: watch::Receiver<paratime_bft::engine::Progress>,
    store: Arc<Store>,
    outcomes: Arc<Mutex<Outcomes>>,
}

/// Outcomes (the error, if one failed) of the transactions this node committed in the latest
/// [`OUTCOME_BLOCKS`] blocks, at most [`RECENT_OUTCOMES`]: what a client that submitted one asks
/// to learn whether it failed.
type Outcomes = Recent<Option<String>>;

/// Transaction outcomes remembered at most (about a minute of full 500-transaction blocks at
/// 200 ms).
pub const RECENT_OUTCOMES: usize = 100_000;
/// Blocks a transaction's outcome is remembered for (10 minutes at 200 ms).
pub const OUTCOME_BLOCKS: u64 = 3_000;

impl Handle {
    /// The height and error (if it failed) of a recently committed transaction; `None` while
    /// it is pending, or when it is unknown or too old.
    pub fn tx_outcome(&self, hash: &Hash) -> Option<(u64, Option<String>)> {
        let o = self
            .outcomes
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        o.get(hash).cloned()
    }

    /// Bytes of the consensus store's page cache now (bounded by [`crate::storage::CACHE_BYTES`]).
    pub fn store_cache_bytes(&self) -> usize {
        self.store.cache_bytes()
    }

    /// Hash and time (unix ms) of the committed block at `height`, if this node keeps it.
    pub fn block_summary(&self, height: u64) -> Option<(Hash, u64)> {
        self.store
            .block(height)
            .ok()
            .flatten()
            .map(|(b, _)| (b.hash(), b.header.time_ms))
    }

    /// Hash of a runtime's block at `round`, if this node keeps it (round 0: the genesis block).
    pub fn runtime_block_hash(
        &self,
        rid: &paratime_state::RuntimeId,
        round: paratime_state::Round,
    ) -> Option<Hash> {
        if round.0 == 0 {
            return Some(paratime_state::roothash::BlockHeader::genesis(*rid).hash());
        }
        self.store
            .runtime_block(rid, round)
            .ok()
            .flatten()
            .map(|b| b.hash())
    }

    /// Where the engine is: height, round and step being decided, and its consensus peers.
    pub fn progress(&self) -> paratime_bft::engine::Progress {
        self.progress.borrow().clone()
    }
}

impl Backend for Handle {
    fn view(&self) -> watch::Receiver<View> {
        self.view.clone()
    }

    fn submit(&self, tx: Signed) -> Result<(), SubmitError> {
        let size = tx_size(&tx);
        if size > MAX_TX_BYTES {
            return Err(SubmitError::TooLarge(size));
        }
        self.submit.try_send(tx).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => SubmitError::QueueFull,
            mpsc::error::TrySendError::Closed(_) => SubmitError::Stopped,
        })
    }
}

/// Why a consensus transaction was not taken.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SubmitError {
    /// Larger than [`MAX_TX_BYTES`]: never accepted.
    #[error("transaction of {0} bytes: consensus transactions are at most {MAX_TX_BYTES} bytes")]
    TooLarge(usize),
    /// The engine's queue is full: retry.
    #[error("transaction queue: no available capacity")]
    QueueFull,
    /// The engine stopped.
    #[error("transaction queue: channel closed")]
    Stopped,
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

pub use paratime_state::MAX_TX_BYTES;
/// Transactions the mempool holds at most.
const MEMPOOL_MAX_TXS: usize = 10_000;
/// Bytes of transaction bodies the mempool holds at most.
const MEMPOOL_MAX_BYTES: usize = 64 << 20;

fn tx_size(t: &Signed) -> usize {
    t.untrusted_raw_value.len()
}

/// Blocks a transaction waits in the mempool for a missing earlier nonce of its signer.
const MEMPOOL_WAIT_BLOCKS: u64 = 20;
/// Blocks after which a node gossips its own still-pending transactions again.
const REGOSSIP_AFTER_BLOCKS: u64 = 5;
/// Accepted transactions' hashes the duplicate filter holds at most.
const SEEN_MAX: usize = 100_000;
/// Blocks an accepted transaction's hash stays in the duplicate filter: longer than one waits
/// in the mempool, and than gossip redelivers (its own duplicate cache keeps a minute). A
/// transaction delivered again after that is dropped by its nonce.
const SEEN_BLOCKS: u64 = 600;
const _: () = assert!(SEEN_BLOCKS > 2 * MEMPOOL_WAIT_BLOCKS);

struct Inner {
    state: State,
    /// The validator set of the latest committed height (for a restarted height).
    previous_validators: paratime_state::validators::ValidatorSet,
    /// Pending transactions with the height at which they arrived.
    mempool: Vec<(Signed, u64)>,
    /// Their bodies' total size.
    mempool_bytes: usize,
    /// Hashes of recently accepted transactions (gossip delivers some twice).
    seen: Recent<()>,
    /// (finality, interval) of recent live commits, oldest first.
    stats: VecDeque<(u64, u64)>,
    last_block_time_ms: u64,
    /// The last block built or verified here, with the state after it: its commit does not
    /// execute it again.
    executed: Option<(Hash, State, Vec<TxOutcome>)>,
    /// Runtimes whose round the last committed block moved: closed it (the committee is
    /// executing the next one now) or added a commitment to it (the other workers' are on
    /// their way). Derived from committed blocks alone, so every validator waits for the same
    /// rounds, at most once per commitment that lands: a worker that never commits cannot slow
    /// every block down.
    moved_last: BTreeSet<RuntimeId>,
    /// Executor commitments waiting in the mempool, as (runtime, round, node), unverified: only
    /// a hint of when to propose (see [`ChainApp::ready_to_propose`]), never used by the state.
    commit_hints: Vec<(RuntimeId, paratime_state::Round, PublicKey)>,
}

/// Commitment hints kept at most (a round's commitments are a few per runtime: more is a
/// flood, which only makes a proposer wait less).
const MAX_COMMIT_HINTS: usize = 4_096;

/// The (runtime, round, node) of each commitment a transaction carries, when it is a
/// `roothash.ExecutorCommit`; nothing verified.
fn commit_hints(tx: &Signed) -> Vec<(RuntimeId, paratime_state::Round, PublicKey)> {
    use paratime_state::roothash::{CommitmentHeader, ExecutorCommit};
    let Ok(t) = crate::encoding::from_cbor::<super::state::Transaction>(&tx.untrusted_raw_value)
    else {
        return Vec::new();
    };
    if t.method != "roothash.ExecutorCommit" {
        return Vec::new();
    }
    let Ok(body) = t.body.deserialized::<ExecutorCommit>() else {
        return Vec::new();
    };
    body.commits
        .iter()
        .filter_map(|s| {
            let h = crate::encoding::from_cbor::<CommitmentHeader>(&s.untrusted_raw_value).ok()?;
            Some((body.id, h.header.round, s.signature.public_key))
        })
        .collect()
}

/// The node's chain, as the engine sees it.
struct Chain {
    inner: Mutex<Inner>,
    store: Arc<Store>,
    signer: Arc<Signer>,
    me: PublicKey,
    view: watch::Sender<View>,
    halt: Option<Halting>,
    outcomes: Arc<Mutex<Outcomes>>,
}

/// An upgrade halt (`consensus.halt_height` / `halt_epoch`).
struct Halting {
    at: Halt,
    epoch_interval: u64,
    /// Cancelled when the node halts; the node then stops after the delay.
    halted: tokio_util::sync::CancellationToken,
    /// Set by the first [`Halting::halt`]: proposals for the halt height keep coming while
    /// the node waits out its stop delay, and the halt is logged and timed once.
    started: std::sync::atomic::AtomicBool,
}

impl Halting {
    /// Why block `height` must not be voted for or committed, if it must not. A block's epoch
    /// is its height divided by the epoch interval (epochs begin at their first block).
    fn refuses(&self, height: u64) -> Option<String> {
        if self.at.height != 0 && height >= self.at.height {
            return Some(format!("consensus.halt_height is {}", self.at.height));
        }
        let epoch = height / self.epoch_interval.max(1);
        (self.at.epoch != 0 && epoch >= self.at.epoch).then(|| {
            format!(
                "consensus.halt_epoch is {} and block {height} is in epoch {epoch}",
                self.at.epoch
            )
        })
    }

    /// Halts (once): the node commits nothing more and stops after the stop delay, randomised
    /// ×0.5–1.5 as oasis does, so that not every node leaves at once and peers get the last
    /// block first.
    fn halt(&self, last: u64, why: &str) {
        if self.started.swap(true, std::sync::atomic::Ordering::SeqCst) {
            return;
        }
        let mut r = [0u8; 2];
        let _ = getrandom::fill(&mut r);
        let factor = 0.5 + f64::from(u16::from_le_bytes(r)) / f64::from(u16::MAX);
        let delay = self.at.stop_delay.mul_f64(factor);
        log::error!(target: "consensus", message_id = MSG_HALTED, height = last, stop_in:% = humantime::format_duration(Duration::from_secs(delay.as_secs())); "upgrade halt: {why}: the last committed block is {last}; stopping the node for upgrade (upgrade the node, remove the halt from config.yml, start it again)");
        let token = self.halted.clone();
        // A token already cancelled means the node is stopping anyway.
        std::thread::spawn(move || {
            std::thread::sleep(delay);
            log::info!(target: "consensus", "stopping the node for upgrade");
            token.cancel();
        });
    }

    fn check(&self, height: u64, committed: u64) -> Result<(), ChainError> {
        match self.refuses(height) {
            Some(why) => {
                self.halt(committed, &why);
                Err(ChainError::Halted(why))
            }
            None => Ok(()),
        }
    }
}

impl Chain {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave the state half-applied: commits replace
        // it whole. So a poisoned lock is still consistent.
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn accept_tx(&self, tx: Signed) {
        Self::admit(&mut self.lock(), tx);
    }

    /// Whether no runtime round is about to complete: for every runtime whose round the last
    /// block closed or added a commitment to, every worker's commitment is pooled or waiting
    /// in the mempool. A round finalizes only once every worker committed, and its
    /// commitments arrive within one execution of the batch: a block built before they are
    /// all in leaves the round for the block after, a whole block interval later.
    fn round_covered(i: &Inner) -> bool {
        i.state.roothash.iter().all(|(rid, chain)| {
            let running = i.moved_last.contains(rid);
            let Some(committee) = i.state.committees.get(rid) else {
                return true;
            };
            if !running || chain.pool.discrepancy {
                return true;
            }
            let open = chain.block.round.saturating_add(1);
            paratime_state::roothash::workers(committee)
                .iter()
                .all(|w| {
                    chain.pool.commits.contains_key(w)
                        || i.commit_hints
                            .iter()
                            .any(|(r, round, node)| r == rid && *round == open && node == w)
                })
        })
    }

    /// Takes a transaction into the mempool unless it is too large, already seen, or the
    /// mempool is full (by count or by bytes): a peer's flood costs at most
    /// [`MEMPOOL_MAX_BYTES`] of memory, whatever its transactions claim to be.
    fn admit(i: &mut Inner, tx: Signed) -> bool {
        let size = tx_size(&tx);
        if size > MAX_TX_BYTES
            || i.mempool.len() >= MEMPOOL_MAX_TXS
            || i.mempool_bytes.saturating_add(size) > MEMPOOL_MAX_BYTES
        {
            return false;
        }
        let height = i.state.height.0;
        if !i.seen.insert(hash_of(&tx), height, ()) {
            return false;
        }
        let room = MAX_COMMIT_HINTS.saturating_sub(i.commit_hints.len());
        i.commit_hints
            .extend(commit_hints(&tx).into_iter().take(room));
        i.mempool.push((tx, height));
        i.mempool_bytes += size;
        true
    }

    /// Picks the next block's transactions: per signer in nonce order, at most 500. A
    /// transaction whose nonce is ahead waits (gossip may reorder a signer's transactions) for
    /// up to 20 blocks; one whose nonce is behind is dropped. Of two transactions of one
    /// signer with one nonce, the later arrival wins: a signer reuses a nonce only after giving
    /// up on its earlier transaction (the earlier one is stale, e.g. a registration whose
    /// expiration has passed).
    fn select(i: &mut Inner) -> Vec<Signed> {
        use super::address::Address;
        use super::state::Transaction;
        let nonce = |t: &Signed| {
            crate::encoding::from_cbor::<Transaction>(&t.untrusted_raw_value)
                .map(|x| x.nonce)
                .unwrap_or(u64::MAX)
        };
        let mut pending: Vec<(u64, usize, Signed)> = i
            .mempool
            .iter()
            .enumerate()
            .map(|(arrival, (t, _))| (nonce(t), arrival, t.clone()))
            .collect();
        pending.sort_by_key(|(n, arrival, _)| (*n, std::cmp::Reverse(*arrival)));
        let mut expected: std::collections::HashMap<Address, u64> = Default::default();
        let mut out = Vec::new();
        for (n, _, t) in pending {
            let addr = Address::from_public_key(&t.signature.public_key);
            let exp = expected
                .entry(addr)
                .or_insert_with(|| i.state.account(&addr).nonce);
            if out.len() < 500 && n == *exp {
                *exp += 1;
                out.push(t);
            }
        }
        out
    }

    /// Removes blocks older than the `num_kept` latest (up to 1,000 per run), off the async
    /// threads, and publishes the lowest height kept. The block headers of the runtimes this
    /// node does not host go with them: it stores them with every block (a round's header is
    /// in the block that finalized it) and, without a worker to prune them (`runtime.prune`
    /// runs in a hosting node's worker), they grew for ever — about 1 MB an hour per runtime at
    /// a round every 200 ms. At most one round of a runtime is finalized per block, so keeping
    /// its `num_kept` latest rounds keeps every round of the blocks kept. (A node that starts
    /// hosting such a runtime later finds the older headers missing and syncs the runtime's
    /// state instead of replaying rounds.)
    async fn prune(self: &Arc<Self>, num_kept: u64, hosted: &Arc<BTreeSet<RuntimeId>>) {
        let (height, rounds): (u64, Vec<(RuntimeId, u64)>) = {
            let i = self.lock();
            let rounds = i.state.roothash.iter();
            let rounds = rounds.filter(|(rid, _)| !hosted.contains(*rid));
            (
                i.state.height.0,
                rounds.map(|(rid, c)| (*rid, c.block.round.0)).collect(),
            )
        };
        let Some(keep_from) = height.checked_sub(num_kept).map(|h| h + 1) else {
            return;
        };
        let me = self.clone();
        let pruned = tokio::task::spawn_blocking(move || {
            let n = me.store.prune_blocks(keep_from, 1000)?;
            let mut headers = Vec::new();
            for (rid, latest) in rounds {
                if let Some(from) = latest.checked_sub(num_kept).map(|r| r + 1) {
                    let round = paratime_state::Round(from);
                    let k = me.store.prune_runtime_headers(&rid, round, 1000)?;
                    if k > 0 {
                        headers.push((rid, k, from));
                    }
                }
            }
            Ok::<_, crate::storage::StoreError>((n, me.store.retained_from()?, headers))
        })
        .await;
        match pruned {
            Ok(Ok((n, from, headers))) => {
                if n > 0 {
                    log::info!(target: "consensus", blocks = n, retained_from = from; "pruned consensus blocks");
                }
                for (rid, k, from) in headers {
                    log::info!(target: "consensus", runtime_id:% = rid, rounds = k, retained_from = from; "pruned the block headers of a runtime this node does not host");
                }
                self.view.send_modify(|v| v.last_retained_height = from);
            }
            Ok(Err(e)) => log::error!(target: "consensus", "cannot prune blocks: {e}"),
            Err(e) => log::error!(target: "consensus", "block pruner failed: {e}"),
        }
    }

    /// Drops what the committed state made stale: nonces behind, and waits over 20 blocks. A
    /// transaction dropped for waiting is forgotten as seen, so that its signer's re-gossip
    /// (once the missing nonce arrives) brings it back. Old hashes leave the duplicate filter.
    fn prune_mempool(i: &mut Inner) {
        use super::address::Address;
        use super::state::Transaction;
        let mut waited_out = Vec::new();
        let pending = std::mem::take(&mut i.mempool);
        for (t, h) in pending {
            let n = crate::encoding::from_cbor::<Transaction>(&t.untrusted_raw_value)
                .map(|x| x.nonce)
                .unwrap_or(0);
            let addr = Address::from_public_key(&t.signature.public_key);
            if n < i.state.account(&addr).nonce {
                continue;
            }
            if i.state.height.0 >= h.saturating_add(MEMPOOL_WAIT_BLOCKS) {
                waited_out.push(hash_of(&t));
                continue;
            }
            i.mempool.push((t, h));
        }
        for h in waited_out {
            i.seen.remove(&h);
        }
        i.seen.trim(i.state.height.0);
        i.mempool_bytes = i.mempool.iter().map(|(t, _)| tx_size(t)).sum();
        // Hints of rounds still open (or ahead) stay; the mempool's waiting commitments are
        // among them.
        let Inner {
            commit_hints,
            state,
            ..
        } = i;
        commit_hints.retain(|(rid, round, _)| {
            state
                .roothash
                .get(rid)
                .is_some_and(|c| *round > c.block.round)
        });
    }

    /// This node's own transactions that have waited `REGOSSIP_AFTER_BLOCKS` or more: gossip
    /// loses a message now and then (a full queue, a dropped connection), and one lost
    /// transaction would hold back every later nonce of its signer.
    fn own_waiting(&self, limit: usize) -> Vec<Signed> {
        let i = self.lock();
        let me = self.signer.public_key(KeyRole::Node);
        i.mempool
            .iter()
            .filter(|(t, h)| {
                t.signature.public_key == me
                    && i.state.height.0 >= h.saturating_add(REGOSSIP_AFTER_BLOCKS)
            })
            .take(limit)
            .map(|(t, _)| t.clone())
            .collect()
    }

    fn publish_view(
        &self,
        i: &Inner,
        outcomes: Vec<TxOutcome>,
        block: Option<(&Proposed, &CommitCert)>,
    ) {
        let is_validator = i.state.validators.contains(&self.me);
        let was = self.view.borrow().is_validator;
        if is_validator && !was {
            log::info!(target: "consensus", message_id = MSG_BECAME_VALIDATOR, height = i.state.height.0; "this node is now a validator");
        } else if was && !is_validator {
            let why = paratime_state::validators::ValidatorSet::why_not_elected(&i.state, &self.me);
            log::warn!(target: "consensus", message_id = MSG_LEFT_VALIDATORS, height = i.state.height.0; "this node is no longer a validator: {why}");
        }
        let (round, signers) = block
            .and_then(|(_, c)| paratime_bft::chain::cert_summary(c))
            .unwrap_or((-1, Vec::new()));
        if round > 0 {
            log::info!(target: "consensus", message_id = MSG_MISSED_PROPOSAL, height = i.state.height.0, round = round; "block decided in round {round}: the earlier rounds' proposers missed their proposals");
        }
        let time = block.map(|(b, _)| b.header.time_ms);
        let mut fin: Vec<u64> = i.stats.iter().map(|(f, _)| *f).collect();
        fin.sort_unstable();
        let mut ivl: Vec<u64> = i.stats.iter().map(|(_, b)| *b).collect();
        ivl.sort_unstable();
        self.view.send_modify(|v| {
            v.finality_ms = (percentile(&fin, 50), percentile(&fin, 99));
            v.block_interval_ms = percentile(&ivl, 50);
            v.state = Arc::new(i.state.clone());
            v.latest_hash = i.state.last_block_hash;
            if let Some(t) = time {
                v.latest_time_ms = t;
                // Synced once the latest block is recent (a node catching up commits old ones).
                v.synced = v.synced || now_ms().saturating_sub(t) < 10_000;
            }
            v.is_validator = is_validator;
            v.last_outcomes = outcomes;
            v.last_commit_round = round;
            v.last_commit_signers = signers;
        });
    }
}

impl ChainApp for Chain {
    fn chain_context(&self) -> String {
        self.lock().state.chain_context.clone()
    }

    fn last_committed(&self) -> Height {
        self.lock().state.height
    }

    fn validator_set(&self, height: Height) -> Option<paratime_state::validators::ValidatorSet> {
        let i = self.lock();
        if height == i.state.height.saturating_add(1) {
            Some(i.state.validators.clone())
        } else if height == i.state.height && height > Height(0) {
            Some(i.previous_validators.clone())
        } else {
            None
        }
    }

    fn build_block(
        &self,
        height: Height,
        proposer: PublicKey,
        time_ms: u64,
    ) -> Result<Proposed, ChainError> {
        let mut i = self.lock();
        if let Some(h) = &self.halt {
            h.check(height.0, i.state.height.0)?;
        }
        if height != i.state.height.saturating_add(1) {
            return Err(ChainError::NotNext {
                asked: height,
                committed: i.state.height,
            });
        }
        let txs = Self::select(&mut i);
        let (block, next, outcomes) = Proposed::build(&i.state, txs, time_ms, proposer);
        i.executed = Some((block.hash(), next, outcomes));
        Ok(block)
    }

    fn verify_block(&self, height: Height, block: &Proposed) -> Result<(), ChainError> {
        let mut i = self.lock();
        if let Some(h) = &self.halt {
            h.check(height.0, i.state.height.0)?;
        }
        if height != i.state.height.saturating_add(1) {
            return Err(ChainError::NotNext {
                asked: height,
                committed: i.state.height,
            });
        }
        let (next, outcomes) = block.apply(&i.state)?;
        i.executed = Some((block.hash(), next, outcomes));
        Ok(())
    }

    fn commit(&self, block: &Proposed, cert: &CommitCert) -> Result<(), ChainError> {
        use crate::crashpoint::{reached, Point};
        let mut i = self.lock();
        if let Some(h) = &self.halt {
            h.check(block.header.height.0, i.state.height.0)?;
        }
        reached(Point::Decided, block.header.height.0);
        let hash = block.hash();
        let (next, outcomes) = match i.executed.take() {
            // Executed on the committed state (the parent: the height follows it).
            // The header commits to the transactions: check that this copy carries them.
            Some((h, next, outcomes))
                if h == hash
                    && next.height == i.state.height.saturating_add(1)
                    && block.header.parent_hash == i.state.last_block_hash
                    && hash_of(&block.txs) == block.header.txs_hash =>
            {
                (next, outcomes)
            }
            _ => block.apply(&i.state)?,
        };
        self.store
            .commit_block(block, cert, &next)
            .map_err(|e| ChainError::Storage(e.to_string()))?;
        reached(Point::Stored, block.header.height.0);
        {
            let mut recent = self
                .outcomes
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            for o in &outcomes {
                if let Some(e) = &o.error {
                    log::info!(target: "consensus", tx = hex::encode(o.hash).as_str(); "transaction failed: {e}");
                }
                recent.insert(
                    o.hash,
                    block.header.height.0,
                    o.error.as_ref().map(ToString::to_string),
                );
            }
            recent.trim(block.header.height.0);
        }
        let h = next.height.0;
        let now = now_ms();
        let finality = now.saturating_sub(block.header.time_ms);
        let interval = block.header.time_ms.saturating_sub(i.last_block_time_ms);
        i.last_block_time_ms = block.header.time_ms;
        // A block older than a minute was synced, not committed live: it says nothing about
        // finality.
        if finality < 60_000 {
            i.stats.push_back((finality, interval));
            if i.stats.len() > STATS_WINDOW {
                i.stats.pop_front();
            }
        }
        i.moved_last = next
            .roothash
            .iter()
            .filter(|(rid, c)| {
                i.state.roothash.get(*rid).is_none_or(|o| {
                    o.block.round != c.block.round || c.pool.commits.len() > o.pool.commits.len()
                })
            })
            .map(|(rid, _)| *rid)
            .collect();
        i.previous_validators = std::mem::replace(&mut i.state, next).validators;
        Self::prune_mempool(&mut i);
        if let Err(e) = self.signer.prune_consensus_below(h) {
            log::warn!(target: "consensus", "{e}");
        }
        self.publish_view(&i, outcomes, Some((block, cert)));
        // Halting at the next height now, not when it is proposed: the node stops even if the
        // network (without the halt) goes on.
        if let Some(hl) = &self.halt {
            if let Some(why) = hl.refuses(h + 1) {
                hl.halt(h, &why);
            }
        }
        Ok(())
    }

    fn committed(&self, height: Height) -> Option<(Proposed, CommitCert)> {
        self.store.block(height.0).ok().flatten()
    }

    fn ready_to_propose(&self) -> bool {
        Self::round_covered(&self.lock())
    }

    fn earliest_height(&self) -> Height {
        Height(self.store.retained_from().unwrap_or(1))
    }

    fn remember_proposal(&self, height: Height, round: u32, proposer: PublicKey, block: &Proposed) {
        if let Err(e) = self
            .store
            .remember_proposal(height.0, round, &proposer, block)
        {
            log::error!(target: "consensus", height = height.0; "cannot remember a proposal: {e}");
        }
    }

    fn proposals_seen(&self, height: Height) -> Vec<(u32, PublicKey, Proposed)> {
        match self.store.proposals(height.0) {
            Ok(p) => p,
            Err(e) => {
                log::error!(target: "consensus", height = height.0; "cannot read remembered proposals: {e}");
                Vec::new()
            }
        }
    }

    fn record_evidence(&self, height: Height, offender: PublicKey, what: &str) {
        log::warn!(target: "consensus", message_id = MSG_EQUIVOCATION, height = height.0, offender:% = offender; "equivocation evidence: {what}");
        self.view.send_modify(|v| {
            if v.evidence.len() < 1000 {
                v.evidence.push((height.0, offender, what.to_string()));
            }
        });
    }
}

/// Where and how the engine runs.
pub struct Options {
    /// Consensus listen address (from `consensus.listen_address`).
    pub listen: std::net::SocketAddr,
    /// Consensus peers (from `consensus.p2p.persistent_peers`).
    pub peers: Vec<std::net::SocketAddr>,
    /// The engine's WAL file.
    pub wal: std::path::PathBuf,
    /// Secret of the consensus network identity (the node's P2P key).
    pub network_secret: [u8; 32],
    /// `consensus.prune` (keep_n), if set.
    pub prune: Option<BlockPruning>,
    /// The upgrade halt, if set: cancelled (after its stop delay) once the node halted.
    pub halt: Option<(Halt, tokio_util::sync::CancellationToken)>,
    /// The runtimes this node hosts: their workers prune their history (`runtime.prune`).
    /// Block pruning takes the block headers of every other runtime with it.
    pub hosted: BTreeSet<RuntimeId>,
}

/// `consensus.halt_height` / `halt_epoch` with `consensus.upgrade_stop_delay`: the node commits
/// no block at or past the halt and stops after the delay (an upgrade runbook step).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Halt {
    /// The first height not committed (0: no height halt).
    pub height: u64,
    /// The first epoch none of whose blocks is committed (0: no epoch halt).
    pub epoch: u64,
    /// How long the node waits after halting before it stops (×0.5–1.5 at random, as oasis),
    /// so that its peers get the last block.
    pub stop_delay: Duration,
}

/// Keep the `num_kept` latest blocks, pruning every `interval`.
#[derive(Clone, Copy, Debug)]
pub struct BlockPruning {
    /// Blocks kept.
    pub num_kept: u64,
    /// How often.
    pub interval: Duration,
}

/// Why consensus could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The consensus store cannot be read.
    #[error(transparent)]
    Store(#[from] crate::storage::StoreError),
    /// The data dir holds another chain.
    #[error("the consensus store belongs to chain {store}, not to this genesis ({genesis}); use another data dir")]
    OtherChain {
        /// The store's chain context.
        store: String,
        /// The genesis document's.
        genesis: String,
    },
    /// A consensus address has no multiaddr form.
    #[error("consensus address {address}: {reason}")]
    Address {
        /// The address.
        address: std::net::SocketAddr,
        /// Why.
        reason: String,
    },
    /// The engine did not start.
    #[error(transparent)]
    Engine(#[from] paratime_bft::engine::StartError),
}

fn multiaddr(a: &std::net::SocketAddr) -> Result<paratime_bft::engine::Multiaddr, StartError> {
    let proto = if a.is_ipv4() { "ip4" } else { "ip6" };
    format!("/{proto}/{}/tcp/{}", a.ip(), a.port())
        .parse::<paratime_bft::engine::Multiaddr>()
        .map_err(|e| StartError::Address {
            address: *a,
            reason: e.to_string(),
        })
}

/// Starts consensus: loads the committed state (or genesis), starts Malachite and the task that
/// feeds it transactions. Validators are the consensus keys in the committed validator set.
pub async fn start(
    genesis: &Genesis,
    store: Arc<Store>,
    signer: Arc<Signer>,
    net: mpsc::Sender<p2p::Command>,
    mut events: mpsc::Receiver<p2p::Event>,
    shutdown: tokio_util::sync::CancellationToken,
    opts: Options,
) -> Result<Handle, StartError> {
    let chain_context = genesis.chain_context();
    let state = match store.state(genesis)? {
        Some(s) if s.chain_context != chain_context => {
            return Err(StartError::OtherChain {
                store: s.chain_context,
                genesis: chain_context,
            })
        }
        Some(s) => s,
        None => State::from_genesis(genesis),
    };
    let me = signer.public_key(KeyRole::Consensus);
    let genesis_time_ms = genesis.genesis_time_ms();
    let latest_time_ms = match store.block(state.height.0)? {
        Some((b, _)) => b.header.time_ms,
        None => genesis_time_ms,
    };
    let initial = View {
        state: Arc::new(state.clone()),
        latest_hash: state.last_block_hash,
        latest_time_ms,
        synced: false,
        is_validator: state.validators.contains(&me),
        last_outcomes: Vec::new(),
        last_commit_round: -1,
        last_commit_signers: Vec::new(),
        evidence: Vec::new(),
        finality_ms: (0, 0),
        block_interval_ms: 0,
        last_retained_height: store.retained_from()?,
    };
    if initial.is_validator {
        log::info!(target: "consensus", message_id = MSG_BECAME_VALIDATOR, height = state.height.0; "this node is a validator");
    }
    let (view_tx, view_rx) = watch::channel(initial);
    let chain = Arc::new(Chain {
        inner: Mutex::new(Inner {
            previous_validators: state.validators.clone(),
            state,
            mempool: Vec::new(),
            mempool_bytes: 0,
            moved_last: BTreeSet::new(),
            commit_hints: Vec::new(),
            seen: Recent::new(SEEN_MAX, SEEN_BLOCKS),
            stats: VecDeque::new(),
            last_block_time_ms: latest_time_ms,
            executed: None,
        }),
        store: store.clone(),
        signer: signer.clone(),
        me,
        view: view_tx,
        outcomes: Arc::new(Mutex::new(Recent::new(RECENT_OUTCOMES, OUTCOME_BLOCKS))),
        halt: opts.halt.clone().map(|(at, halted)| Halting {
            at,
            epoch_interval: genesis.epoch_interval,
            halted,
            started: std::sync::atomic::AtomicBool::new(false),
        }),
    });
    // Restarted at the halt (with the halt still in config.yml): halted again at once.
    if let Some(hl) = &chain.halt {
        let committed = chain.lock().state.height.0;
        if let Some(why) = hl.refuses(committed + 1) {
            hl.halt(committed, &why);
        }
    }
    let block_interval = Duration::from_millis(genesis.block_interval_ms);
    let bopts = paratime_bft::engine::Options {
        moniker: format!("node-{me}"),
        listen: multiaddr(&opts.listen)?,
        peers: opts.peers.iter().map(multiaddr).collect::<Result<_, _>>()?,
        wal: opts.wal,
        network_secret: opts.network_secret,
        block_interval,
        propose_timeout: (block_interval * 5).clamp(Duration::from_secs(1), Duration::from_secs(3)),
        pubsub: genesis.consensus_pubsub,
    };
    let outcomes = chain.outcomes.clone();
    let running = paratime_bft::engine::start(chain.clone(), signer, bopts).await?;
    let progress = running.progress.clone();
    let progress_rx = running.progress.clone();
    let (submit_tx, mut submit_rx) = mpsc::channel::<Signed>(1024);
    let prune = opts.prune;
    let hosted = Arc::new(opts.hosted);
    let mut prune_tick =
        tokio::time::interval(prune.map_or(Duration::from_secs(3600), |p| p.interval));
    prune_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // A genesis chain with nothing to catch up on is synced from the start.
    let broadcast = genesis.consensus_pubsub == paratime_state::genesis::ConsensusPubSub::Broadcast;
    let view = chain.view.subscribe();
    tokio::spawn(async move {
        let mut running = Some(running);
        let mut regossip = tokio::time::interval(block_interval * 5);
        regossip.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut reach =
            tokio::time::interval_at(tokio::time::Instant::now() + REACH_EVERY, REACH_EVERY);
        reach.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut unreachable: Vec<(PublicKey, String)> = Vec::new();
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = reach.tick(), if broadcast => {
                    let v = view.borrow().clone();
                    let now = if v.is_validator {
                        validators_not_connected(&v.state, &me, &progress_rx.borrow().peers)
                    } else {
                        Vec::new()
                    };
                    if now != unreachable {
                        for (node, peer) in now.iter().filter(|x| !unreachable.contains(x)) {
                            log::warn!(target: "consensus", message_id = MSG_VALIDATOR_UNREACHABLE, node:% = node, peer = peer.as_str(); "no consensus connection to validator node {node} (peer {peer}): the genesis's consensus_pubsub is broadcast, so its proposals and votes do not reach this validator, nor this validator's it; list it in consensus.p2p.persistent_peers");
                        }
                        if now.is_empty() {
                            log::info!(target: "consensus", message_id = MSG_VALIDATOR_UNREACHABLE; "connected to every other validator again");
                        }
                        unreachable = now;
                    }
                }
                _ = prune_tick.tick(), if prune.is_some() => {
                    if let Some(p) = prune {
                        chain.prune(p.num_kept, &hosted).await;
                    }
                }
                _ = regossip.tick() => {
                    for tx in chain.own_waiting(64) {
                        if net.try_send(p2p::Command::PublishTx(tx)).is_err() {
                            break;
                        }
                    }
                }
                tx = submit_rx.recv() => match tx {
                    Some(tx) => {
                        let _ = net.try_send(p2p::Command::PublishTx(tx.clone()));
                        chain.accept_tx(tx);
                    }
                    None => break,
                },
                ev = events.recv() => match ev {
                    None => break,
                    Some(p2p::Event::Tx(tx)) => chain.accept_tx(tx),
                },
            }
        }
        if let Some(r) = running.take() {
            r.stop().await;
        }
    });
    Ok(Handle {
        view: view_rx,
        submit: submit_tx,
        progress,
        store,
        outcomes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Under broadcast a validator names the validators it is not connected to: by their
    /// registered P2P keys, never itself, and not a validator whose node has not registered.
    #[test]
    fn validators_not_connected_names_the_missing_ones_by_their_registered_p2p_key() {
        use paratime_state::state::{
            ConsensusInfo, NodeDescriptor, NodeRuntime, P2pInfo, RoleMask,
        };
        use paratime_state::validators::Validator;
        let key = |i: u32| {
            let mut seed = [0u8; 32];
            seed[..4].copy_from_slice(&i.to_be_bytes());
            PublicKey::of(&ed25519_dalek::SigningKey::from_bytes(&seed))
        };
        let mut state = State::from_genesis(&crate::cli::network::empty_genesis("reach-test"));
        // Validators 1..=4 (consensus keys 100+i, nodes i, P2P keys 200+i); 4 never registered.
        for i in 1..=4u32 {
            state.validators.validators.push(Validator {
                consensus_id: key(100 + i),
                entity_id: key(0),
                node_id: (i != 4).then(|| key(i)),
                voting_power: 1,
            });
            if i != 4 {
                state.nodes.insert(
                    key(i),
                    NodeDescriptor {
                        v: 3,
                        id: key(i),
                        entity_id: key(0),
                        expiration: paratime_state::Epoch(10),
                        p2p: P2pInfo {
                            id: key(200 + i),
                            addresses: Vec::new(),
                        },
                        consensus: ConsensusInfo {
                            id: key(100 + i),
                            addresses: Vec::new(),
                        },
                        runtimes: Vec::<NodeRuntime>::new(),
                        roles: RoleMask(4),
                        software_version: String::new(),
                    },
                );
            }
        }
        let peer = |i: u32| paratime_bft::engine::Peer {
            peer_id: p2p::peer_id_of(&key(200 + i)).expect("peer id").to_string(),
            address: "/ip4/127.0.0.1/tcp/1".into(),
            direction: None,
        };
        // Validator 1, connected to 2 and to an unrelated peer: 3 is missing.
        let other = paratime_bft::engine::Peer {
            peer_id: p2p::peer_id_of(&key(999)).expect("peer id").to_string(),
            ..peer(2)
        };
        assert_eq!(
            validators_not_connected(&state, &key(101), &[peer(2), other.clone()]),
            vec![(key(3), peer(3).peer_id)]
        );
        // Connected to both: nothing missing (4 is unknown, 1 is itself).
        assert!(validators_not_connected(&state, &key(101), &[peer(3), peer(2)]).is_empty());
        // Validator 2 with no peers: 1 and 3.
        assert_eq!(
            validators_not_connected(&state, &key(102), &[]),
            vec![(key(1), peer(1).peer_id), (key(3), peer(3).peer_id)]
        );
    }

    #[test]
    fn a_halt_refuses_its_height_and_every_block_of_its_epoch_on() {
        let halting = |height, epoch| Halting {
            at: Halt {
                height,
                epoch,
                stop_delay: Duration::ZERO,
            },
            epoch_interval: 10,
            halted: tokio_util::sync::CancellationToken::new(),
            started: std::sync::atomic::AtomicBool::new(false),
        };
        let h = halting(40, 0);
        assert_eq!(h.refuses(39), None);
        assert!(h
            .refuses(40)
            .is_some_and(|w| w.contains("halt_height is 40")));
        assert!(h.refuses(41).is_some());
        let e = halting(0, 3);
        assert_eq!(e.refuses(29), None, "block 29 is in epoch 2");
        assert!(e
            .refuses(30)
            .is_some_and(|w| w.contains("block 30 is in epoch 3")));
        assert_eq!(halting(0, u64::MAX).refuses(u64::MAX - 1), None);
        // Refusing halts once; the token is cancelled after the (zero) delay.
        assert!(e.check(30, 29).is_err());
        assert!(e.check(30, 29).is_err(), "still refused while stopping");
        assert!(e.started.load(std::sync::atomic::Ordering::SeqCst));
        let t0 = std::time::Instant::now();
        while !e.halted.is_cancelled() && t0.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(e.halted.is_cancelled());
    }
    use crate::consensus::state::{Fee, Transaction};
    use ed25519_dalek::SigningKey;

    fn state() -> State {
        State::from_genesis(&crate::cli::network::empty_genesis("mempool-test"))
    }

    fn tx(state: &State, key: &SigningKey, nonce: u64, method: &str) -> Signed {
        tx_with(state, key, nonce, method, ciborium::Value::Null)
    }

    fn tx_with(
        state: &State,
        key: &SigningKey,
        nonce: u64,
        method: &str,
        body: ciborium::Value,
    ) -> Signed {
        Signed::sign(
            key,
            &crate::consensus::crypto::context(
                crate::consensus::crypto::CONTEXT_TX,
                Some(&state.chain_context),
            ),
            &Transaction {
                nonce,
                fee: Fee::default(),
                method: method.into(),
                body,
            },
        )
    }

    fn inner(state: State, mempool: Vec<Signed>) -> Inner {
        Inner {
            state,
            previous_validators: Default::default(),
            mempool: mempool.into_iter().map(|t| (t, 0)).collect(),
            mempool_bytes: 0,
            seen: Recent::new(SEEN_MAX, SEEN_BLOCKS),
            stats: VecDeque::new(),
            last_block_time_ms: 0,
            executed: None,
            moved_last: BTreeSet::new(),
            commit_hints: Vec::new(),
        }
    }

    fn methods(txs: &[Signed]) -> Vec<String> {
        txs.iter()
            .map(|t| {
                crate::encoding::from_cbor::<Transaction>(&t.untrusted_raw_value)
                    .expect("tx")
                    .method
            })
            .collect()
    }

    /// A state with runtime `rid` whose committee has workers 11, 12, 13 (backup 14).
    fn with_committee(rid: RuntimeId) -> State {
        use crate::consensus::state::{Committee, CommitteeKind, CommitteeMember, Role};
        let mut s = state();
        let member = |role, b: u8| CommitteeMember {
            role,
            public_key: PublicKey::of(&SigningKey::from_bytes(&[b; 32])),
        };
        s.committees.insert(
            rid,
            Committee {
                kind: CommitteeKind::Executor,
                members: vec![
                    member(Role::Worker, 11),
                    member(Role::Worker, 12),
                    member(Role::Worker, 13),
                    member(Role::BackupWorker, 14),
                ],
                runtime_id: rid,
                valid_for: paratime_state::Epoch(0),
            },
        );
        s.roothash
            .insert(rid, crate::consensus::roothash::RuntimeChain::genesis(rid));
        s
    }

    /// A `roothash.ExecutorCommit` of `rid` signed by node `by` with `nonce`, carrying the
    /// commitments of (node, round) (signed, but nothing here checks them: hints are not
    /// verified).
    fn commitments(s: &State, rid: RuntimeId, by: u8, nonce: u64, of: &[(u8, u64)]) -> Signed {
        use crate::consensus::roothash::{
            CommitmentHeader, ComputeResultsHeader, ExecutorCommit, Failure,
        };
        let commits = of
            .iter()
            .map(|&(b, round)| {
                let key = SigningKey::from_bytes(&[b; 32]);
                let h = CommitmentHeader {
                    scheduler_id: PublicKey::of(&key),
                    header: ComputeResultsHeader {
                        round: paratime_state::Round(round),
                        previous_hash: [0; 32],
                        io_root: [0; 32],
                        state_root: [0; 32],
                    },
                    failure: Failure::None,
                };
                Signed::sign(&key, "test", &h)
            })
            .collect();
        let body = ciborium::Value::serialized(&ExecutorCommit { id: rid, commits }).expect("body");
        tx_with(
            s,
            &SigningKey::from_bytes(&[by; 32]),
            nonce,
            "roothash.ExecutorCommit",
            body,
        )
    }

    fn commitment(s: &State, rid: RuntimeId, b: u8, round: u64) -> Signed {
        commitments(s, rid, b, round, &[(b, round)])
    }

    #[test]
    fn a_proposer_waits_for_every_workers_commitment_to_a_round_in_progress() {
        let rid: RuntimeId = "8000000000000000000000000000000000000000000000000000000000000001"
            .parse()
            .expect("rid");
        let s = with_committee(rid);
        let mut i = inner(s.clone(), Vec::new());
        // Nothing running: propose at once.
        assert!(Chain::round_covered(&i));
        // A commitment transaction lying about its body, or whose commitments are not
        // commitment headers, gives no hint (and is still only a mempool entry).
        let liar = SigningKey::from_bytes(&[16; 32]);
        assert!(Chain::admit(
            &mut i,
            tx_with(
                &s,
                &liar,
                0,
                "roothash.ExecutorCommit",
                ciborium::Value::Null
            )
        ));
        let not_headers =
            ciborium::Value::serialized(&crate::consensus::roothash::ExecutorCommit {
                id: rid,
                commits: vec![Signed::sign(&liar, "test", &7u64)],
            })
            .expect("body");
        assert!(Chain::admit(
            &mut i,
            tx_with(&s, &liar, 1, "roothash.ExecutorCommit", not_headers)
        ));
        assert!(i.commit_hints.is_empty(), "{:?}", i.commit_hints);
        // The last block closed round 0: round 1 is being executed.
        i.moved_last.insert(rid);
        assert!(!Chain::round_covered(&i));
        // Commitments to another round, or from a backup worker, do not count.
        assert!(Chain::admit(&mut i, commitment(&s, rid, 11, 2)));
        assert!(Chain::admit(&mut i, commitment(&s, rid, 14, 1)));
        assert!(Chain::admit(&mut i, commitment(&s, rid, 11, 1)));
        assert!(Chain::admit(&mut i, commitment(&s, rid, 12, 1)));
        assert!(!Chain::round_covered(&i), "worker 13 has not committed");
        assert!(Chain::admit(&mut i, commitment(&s, rid, 13, 1)));
        assert!(Chain::round_covered(&i));

        // A round the last block added a commitment to waits for the others too, wherever
        // they are.
        let mut i = inner(s.clone(), Vec::new());
        let w11 = PublicKey::of(&SigningKey::from_bytes(&[11; 32]));
        let header = crate::encoding::from_cbor::<crate::consensus::state::Transaction>(
            &commitment(&s, rid, 11, 1).untrusted_raw_value,
        )
        .expect("tx")
        .body
        .deserialized::<crate::consensus::roothash::ExecutorCommit>()
        .expect("body")
        .commits[0]
            .untrusted_raw_value
            .clone();
        i.state
            .roothash
            .get_mut(&rid)
            .expect("chain")
            .pool
            .commits
            .insert(w11, crate::encoding::from_cbor(&header).expect("header"));
        // A round the last block did not move holds no block: a worker that never commits
        // costs a wait per commitment that lands, not one per block.
        assert!(Chain::round_covered(&i));
        i.moved_last.insert(rid);
        assert!(!Chain::round_covered(&i));
        assert!(Chain::admit(&mut i, commitment(&s, rid, 12, 1)));
        assert!(Chain::admit(&mut i, commitment(&s, rid, 13, 1)));
        assert!(Chain::round_covered(&i));
        // Once the round is closed its hints go with the mempool's pruning.
        i.state.roothash.get_mut(&rid).expect("chain").block.round = paratime_state::Round(1);
        Chain::prune_mempool(&mut i);
        assert!(i.commit_hints.is_empty(), "{:?}", i.commit_hints);

        // A flood of commitments leaves the hints bounded.
        let mut i = inner(s.clone(), Vec::new());
        let many: Vec<(u8, u64)> = (0..50).map(|r| (15, r)).collect();
        for n in 0..100 {
            assert!(Chain::admit(&mut i, commitments(&s, rid, 15, n, &many)));
        }
        assert_eq!(i.commit_hints.len(), MAX_COMMIT_HINTS);
    }

    #[test]
    fn a_block_takes_each_signers_nonces_in_order_and_the_latest_of_a_reused_nonce() {
        let s = state();
        let a = SigningKey::from_bytes(&[1; 32]);
        let b = SigningKey::from_bytes(&[2; 32]);
        let mut i = inner(
            s.clone(),
            vec![
                // Arrived out of order; 3 waits for the missing 2.
                tx(&s, &a, 1, "a1"),
                tx(&s, &a, 0, "a0-stale"),
                tx(&s, &a, 3, "a3"),
                tx(&s, &b, 0, "b0"),
                // `a` gave up on its first nonce 0 and signed another.
                tx(&s, &a, 0, "a0"),
            ],
        );
        let picked = methods(&Chain::select(&mut i));
        assert_eq!(picked, ["a0", "b0", "a1"], "{picked:?}");
    }

    #[test]
    fn the_mempool_refuses_oversized_duplicate_and_overflowing_transactions() {
        let s = state();
        let a = SigningKey::from_bytes(&[1; 32]);
        let mut i = inner(s.clone(), Vec::new());
        let blob = |n: usize| ciborium::Value::Bytes(vec![7; n]);
        // One byte over the limit is refused; just under it is taken, once.
        let big = tx_with(&s, &a, 0, "x", blob(MAX_TX_BYTES));
        assert!(tx_size(&big) > MAX_TX_BYTES);
        assert!(!Chain::admit(&mut i, big));
        let ok = tx_with(&s, &a, 0, "x", blob(MAX_TX_BYTES - 200));
        assert!(tx_size(&ok) <= MAX_TX_BYTES);
        assert!(Chain::admit(&mut i, ok.clone()));
        assert!(!Chain::admit(&mut i, ok), "a duplicate");
        // A flood of the largest transactions stops at the byte budget, far below the count.
        let mut n = 1u64;
        while Chain::admit(&mut i, tx_with(&s, &a, n, "x", blob(MAX_TX_BYTES - 200))) {
            n += 1;
        }
        assert!(i.mempool_bytes <= MEMPOOL_MAX_BYTES, "{}", i.mempool_bytes);
        assert!(i.mempool.len() < MEMPOOL_MAX_TXS, "{}", i.mempool.len());
        assert!(i.mempool_bytes > MEMPOOL_MAX_BYTES - MAX_TX_BYTES);
        // Pruning recounts: nonce 0 committed (the account's nonce moves on) frees its bytes.
        let before = i.mempool_bytes;
        let addr = crate::consensus::address::Address::from_public_key(
            &crate::consensus::crypto::PublicKey::of(&a),
        );
        i.state.accounts.entry(addr).or_default().nonce = 1;
        Chain::prune_mempool(&mut i);
        assert_eq!(i.mempool_bytes, before - tx_size(&i.mempool[0].0));
    }

    #[test]
    fn a_committed_transaction_gossiped_again_is_refused_then_dropped_by_its_nonce() {
        let s = state();
        let a = SigningKey::from_bytes(&[1; 32]);
        let mut i = inner(s.clone(), Vec::new());
        let t = tx(&s, &a, 0, "a0");
        assert!(Chain::admit(&mut i, t.clone()));
        // Committed: the account's nonce moves on, the mempool lets it go.
        let addr = crate::consensus::address::Address::from_public_key(
            &crate::consensus::crypto::PublicKey::of(&a),
        );
        i.state.accounts.entry(addr).or_default().nonce = 1;
        i.state.height.0 += 1;
        Chain::prune_mempool(&mut i);
        assert!(i.mempool.is_empty());
        assert!(
            !Chain::admit(&mut i, t.clone()),
            "still in the duplicate filter"
        );
        // Long after, the filter has let it go (it does not keep every hash for ever); a late
        // copy is taken and dropped at the next prune, by its nonce.
        i.state.height.0 += SEEN_BLOCKS;
        Chain::prune_mempool(&mut i);
        assert!(i.seen.is_empty());
        assert!(Chain::admit(&mut i, t));
        Chain::prune_mempool(&mut i);
        assert!(i.mempool.is_empty() && i.mempool_bytes == 0);
    }
}
