//! The v1 consensus engine: the validator produces a block every `block_interval_ms`; every other
//! node fetches blocks from peers (gossip and request-response sync), verifies the validator's
//! signature and the parent hash, re-executes them and checks the state root, then commits block
//! and state atomically. It sits behind [`Backend`] so a BFT engine can replace it.
//!
//! Owns the consensus state (one task); others get read-only [`View`]s and submit transactions.

use super::block::{Block, Header, TxOutcome};
use super::crypto::{PublicKey, Signed};
use super::genesis::Genesis;
use super::state::State;
use crate::encoding::{hash_of, Hash};
use crate::p2p;
use crate::storage::Store;
use ed25519_dalek::SigningKey;
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch};

/// A read-only snapshot of the consensus layer.
#[derive(Clone, Debug)]
pub struct View {
    /// Latest state (height, epoch, registry, committees, accounts).
    pub state: Arc<State>,
    /// Hash of the latest block header.
    pub latest_hash: Hash,
    /// Time of the latest block (unix ms; genesis time at height 0).
    pub latest_time_ms: u64,
    /// Synced with the network.
    pub synced: bool,
    /// This node produces blocks.
    pub is_validator: bool,
    /// Outcomes of the transactions in the latest block.
    pub last_outcomes: Vec<TxOutcome>,
}

/// What the rest of the node needs from a consensus engine.
pub trait Backend: Send + Sync {
    /// The latest view.
    fn view(&self) -> watch::Receiver<View>;
    /// Submits a signed transaction (gossiped, and ordered by the validator).
    fn submit(&self, tx: Signed) -> Result<(), String>;
}

/// Handle of the running single-validator engine.
#[derive(Clone)]
pub struct Handle {
    view: watch::Receiver<View>,
    submit: mpsc::Sender<Signed>,
}

impl Backend for Handle {
    fn view(&self) -> watch::Receiver<View> {
        self.view.clone()
    }

    fn submit(&self, tx: Signed) -> Result<(), String> {
        self.submit
            .try_send(tx)
            .map_err(|e| format!("transaction queue: {e}"))
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

struct Engine {
    store: Arc<Store>,
    state: State,
    validator: PublicKey,
    key: Option<SigningKey>,
    /// Pending transactions with the height at which they arrived.
    mempool: Vec<(Signed, u64)>,
    /// Hashes of recently accepted transactions (gossip delivers some twice), oldest first.
    seen: BTreeSet<Hash>,
    seen_order: std::collections::VecDeque<Hash>,
    view: watch::Sender<View>,
    net: mpsc::Sender<p2p::Command>,
    latest_time_ms: u64,
    genesis_time_ms: u64,
}

impl Engine {
    fn publish_view(&self, outcomes: Vec<TxOutcome>, synced: bool) {
        let latest_hash = self.state.last_block_hash;
        self.view.send_modify(|v| {
            v.state = Arc::new(self.state.clone());
            v.latest_hash = latest_hash;
            v.latest_time_ms = if self.state.height == 0 {
                self.genesis_time_ms
            } else {
                self.latest_time_ms
            };
            v.synced = v.synced || synced;
            v.last_outcomes = outcomes;
        });
    }

    fn accept_tx(&mut self, tx: Signed) {
        let h = hash_of(&tx);
        if self.key.is_none() || self.mempool.len() >= 10_000 || !self.seen.insert(h) {
            return;
        }
        self.seen_order.push_back(h);
        while self.seen_order.len() > 100_000 {
            if let Some(old) = self.seen_order.pop_front() {
                self.seen.remove(&old);
            }
        }
        self.mempool.push((tx, self.state.height));
    }

    /// Picks the next block's transactions: per signer in nonce order, at most 500. A
    /// transaction whose nonce is ahead waits (gossip may reorder a signer's transactions) for
    /// up to 20 blocks; one whose nonce is behind is dropped.
    fn select(&mut self) -> Vec<Signed> {
        use super::address::Address;
        use super::state::Transaction;
        let nonce = |t: &Signed| {
            crate::encoding::from_cbor::<Transaction>(&t.untrusted_raw_value)
                .map(|x| x.nonce)
                .unwrap_or(u64::MAX)
        };
        let mut pending: Vec<(u64, Signed, u64)> = std::mem::take(&mut self.mempool)
            .into_iter()
            .map(|(t, h)| (nonce(&t), t, h))
            .collect();
        pending.sort_by_key(|(n, _, _)| *n);
        let mut expected: std::collections::HashMap<Address, u64> = Default::default();
        let mut out = Vec::new();
        for (n, t, h) in pending {
            let addr = Address::from_public_key(&t.signature.public_key);
            let exp = expected
                .entry(addr)
                .or_insert_with(|| self.state.account(&addr).nonce);
            if out.len() < 500 && n == *exp {
                *exp += 1;
                out.push(t);
            } else if n >= *exp && self.state.height < h + 20 {
                self.mempool.push((t, h));
            }
        }
        out
    }

    fn produce(&mut self) {
        let Some(key) = self.key.clone() else { return };
        let txs = self.select();
        let parent = self.state.last_block_hash;
        let time = now_ms();
        let (block, outcomes) = Block::produce(&mut self.state, parent, txs, time, &key);
        self.latest_time_ms = time;
        if let Err(e) = self.store.commit_block(&block, &self.state) {
            log::error!(target: "consensus", "cannot commit block {}: {e}", self.state.height);
            return;
        }
        for o in &outcomes {
            if let Some(e) = &o.error {
                log::info!(target: "consensus", tx = hex::encode(o.hash).as_str(); "transaction failed: {e}");
            }
        }
        let _ = self.net.try_send(p2p::Command::PublishBlock(block));
        self.publish_view(outcomes, true);
    }

    /// Applies `block` if it is the next one; returns whether it was applied.
    fn apply(&mut self, block: &Block) -> Result<bool, String> {
        let header: Header = block.header(&self.state.chain_context, &self.validator)?;
        if header.height <= self.state.height {
            return Ok(false);
        }
        if header.height > self.state.height + 1 {
            let _ = self.net.try_send(p2p::Command::Sync(self.state.height + 1));
            return Ok(false);
        }
        let (next, header, outcomes) = block.apply(&self.state, &self.validator)?;
        self.store
            .commit_block(block, &next)
            .map_err(|e| e.to_string())?;
        self.state = next;
        self.latest_time_ms = header.time_ms;
        self.publish_view(outcomes, false);
        Ok(true)
    }
}

/// Starts the engine. `key` is this node's consensus key; it produces blocks only if it is the
/// genesis validator.
pub fn start(
    genesis: &Genesis,
    store: Arc<Store>,
    key: SigningKey,
    net: mpsc::Sender<p2p::Command>,
    mut events: mpsc::Receiver<p2p::Event>,
    shutdown: watch::Receiver<bool>,
) -> Result<Handle, String> {
    let chain = genesis.chain_context();
    let state = match store.state().map_err(|e| e.to_string())? {
        Some(s) if s.chain_context != chain => {
            return Err(format!("the consensus store belongs to chain {}, not to this genesis ({chain}); use another data dir", s.chain_context))
        }
        Some(s) => s,
        None => State::from_genesis(genesis),
    };
    // The v1 engine: the first genesis validator produces every block.
    let validator = genesis
        .validators
        .first()
        .map(|v| v.consensus_id)
        .ok_or("genesis lists no validator")?;
    let is_validator = PublicKey::of(&key) == validator;
    let genesis_time_ms = genesis.genesis_time_ms();
    let initial = View {
        state: Arc::new(state.clone()),
        latest_hash: state.last_block_hash,
        latest_time_ms: genesis_time_ms,
        synced: is_validator,
        is_validator,
        last_outcomes: Vec::new(),
    };
    let (view_tx, view_rx) = watch::channel(initial);
    let (submit_tx, mut submit_rx) = mpsc::channel::<Signed>(1024);
    let interval = Duration::from_millis(genesis.block_interval_ms);
    let mut engine = Engine {
        store,
        state,
        validator,
        key: is_validator.then_some(key),
        mempool: Vec::new(),
        seen: BTreeSet::new(),
        seen_order: Default::default(),
        view: view_tx,
        net,
        latest_time_ms: genesis_time_ms,
        genesis_time_ms,
    };
    tokio::spawn(async move {
        let mut produce = tokio::time::interval(interval);
        let mut sync = tokio::time::interval(Duration::from_millis(1000));
        loop {
            tokio::select! {
                _ = crate::host::supervisor::stopped(shutdown.clone()) => break,
                _ = produce.tick(), if is_validator => engine.produce(),
                _ = sync.tick(), if !is_validator => {
                    let _ = engine.net.try_send(p2p::Command::Sync(engine.state.height + 1));
                }
                tx = submit_rx.recv() => match tx {
                    Some(tx) => {
                        let _ = engine.net.try_send(p2p::Command::PublishTx(tx.clone()));
                        engine.accept_tx(tx);
                    }
                    None => break,
                },
                ev = events.recv() => match ev {
                    None => break,
                    Some(p2p::Event::Tx(tx)) => engine.accept_tx(tx),
                    Some(p2p::Event::Block(b)) => {
                        if let Err(e) = engine.apply(&b) {
                            log::warn!(target: "consensus", "rejected gossiped block: {e}");
                        }
                    }
                    Some(p2p::Event::Blocks(resp)) => {
                        let mut ok = true;
                        for b in &resp.blocks {
                            if let Err(e) = engine.apply(b) {
                                log::warn!(target: "consensus", "rejected synced block: {e}");
                                ok = false;
                                break;
                            }
                        }
                        if ok && engine.state.height >= resp.height {
                            engine.view.send_if_modified(|v| { let was = v.synced; v.synced = true; !was });
                        }
                        if ok && !resp.blocks.is_empty() && engine.state.height < resp.height {
                            let _ = engine.net.try_send(p2p::Command::Sync(engine.state.height + 1));
                        }
                    }
                },
            }
        }
    });
    Ok(Handle {
        view: view_rx,
        submit: submit_tx,
    })
}
