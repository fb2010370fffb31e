//! Helpers of the in-process validator tests: a chain in memory over the real state machine,
//! a signer in memory with the never-sign-twice rule, and network plumbing.
#![allow(dead_code)]

use ed25519_dalek::SigningKey;
use paratime_bft::chain::{ChainApp, ChainError, CommitCert};
use paratime_bft::engine::{Options, Running};
use paratime_state::address::Address;
use paratime_state::block::Proposed;
use paratime_state::crypto::{PublicKey, Signature};
use paratime_state::encoding::Hash;
pub(crate) use paratime_state::genesis::ConsensusPubSub;
use paratime_state::genesis::{
    Genesis, GenesisValidator, RegistryGenesis, StakingGenesis, Thresholds,
};
use paratime_state::signing::{message_digest, KeyRole, SignError, Slot, SlotSigner};
use paratime_state::state::State;
use paratime_state::validators::ValidatorSet;
use paratime_state::Height;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A chain in memory: the real state machine and blocks, no store.
pub(crate) struct MemChain {
    pub inner: Mutex<Inner>,
    pub gate: Mutex<Gate>,
}

/// When [`MemChain`] says it is ready to propose: after `asks_needed` refusals per block.
#[derive(Default)]
pub(crate) struct Gate {
    /// Refusals before the chain is ready (0: always ready; `u32::MAX`: never).
    pub asks_needed: u32,
    /// Times asked since the last block was built.
    pub asks: u32,
    /// For each block built: (height, times the proposer had asked before building it).
    pub builds: Vec<(u64, u32)>,
}

pub(crate) struct Inner {
    pub state: State,
    pub sets: BTreeMap<u64, ValidatorSet>,
    pub blocks: BTreeMap<u64, (Proposed, CommitCert)>,
    pub proposals: BTreeMap<u64, Vec<(u32, PublicKey, Proposed)>>,
    pub evidence: Vec<(u64, PublicKey, String)>,
}

impl MemChain {
    pub(crate) fn new(g: &Genesis) -> Self {
        let state = State::from_genesis(g);
        let mut sets = BTreeMap::new();
        sets.insert(1, state.validators.clone());
        Self {
            inner: Mutex::new(Inner {
                state,
                sets,
                blocks: BTreeMap::new(),
                proposals: BTreeMap::new(),
                evidence: Vec::new(),
            }),
            gate: Mutex::new(Gate::default()),
        }
    }

    pub(crate) fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().expect("chain lock")
    }
}

impl ChainApp for MemChain {
    fn chain_context(&self) -> String {
        self.lock().state.chain_context.clone()
    }
    fn last_committed(&self) -> Height {
        self.lock().state.height
    }
    fn validator_set(&self, height: Height) -> Option<ValidatorSet> {
        self.lock().sets.get(&height.0).cloned()
    }
    fn ready_to_propose(&self) -> bool {
        let mut g = self.gate.lock().expect("gate");
        g.asks = g.asks.saturating_add(1);
        g.asks > g.asks_needed
    }
    fn build_block(
        &self,
        height: Height,
        proposer: PublicKey,
        time_ms: u64,
    ) -> Result<Proposed, ChainError> {
        {
            let mut g = self.gate.lock().expect("gate");
            let asks = std::mem::take(&mut g.asks);
            g.builds.push((height.0, asks));
        }
        let i = self.lock();
        if height != i.state.height.saturating_add(1) {
            return Err(ChainError::NotNext {
                asked: height,
                committed: i.state.height,
            });
        }
        Ok(Proposed::build(&i.state, Vec::new(), time_ms, proposer).0)
    }
    fn verify_block(&self, height: Height, block: &Proposed) -> Result<(), ChainError> {
        let i = self.lock();
        if height != i.state.height.saturating_add(1) {
            return Err(ChainError::NotNext {
                asked: height,
                committed: i.state.height,
            });
        }
        block.apply(&i.state)?;
        Ok(())
    }
    fn commit(&self, block: &Proposed, cert: &CommitCert) -> Result<(), ChainError> {
        let mut i = self.lock();
        let (next, _) = block.apply(&i.state)?;
        let h = next.height.0;
        i.sets.insert(h + 1, next.validators.clone());
        i.state = next;
        i.blocks.insert(h, (block.clone(), cert.clone()));
        i.proposals.remove(&h);
        Ok(())
    }
    fn committed(&self, height: Height) -> Option<(Proposed, CommitCert)> {
        self.lock().blocks.get(&height.0).cloned()
    }
    fn earliest_height(&self) -> Height {
        Height(1)
    }
    fn remember_proposal(&self, height: Height, round: u32, proposer: PublicKey, block: &Proposed) {
        let mut i = self.lock();
        let list = i.proposals.entry(height.0).or_default();
        if !list
            .iter()
            .any(|(r, p, b)| *r == round && *p == proposer && b == block)
        {
            list.push((round, proposer, block.clone()));
        }
    }
    fn proposals_seen(&self, height: Height) -> Vec<(u32, PublicKey, Proposed)> {
        self.lock()
            .proposals
            .get(&height.0)
            .cloned()
            .unwrap_or_default()
    }
    fn record_evidence(&self, height: Height, offender: PublicKey, what: &str) {
        self.lock()
            .evidence
            .push((height.0, offender, what.to_string()));
    }
}

/// The never-sign-twice rule in memory (the node's signer keeps it in redb).
pub(crate) struct MemSigner {
    pub key: SigningKey,
    pub record: Mutex<HashMap<Vec<u8>, (Hash, Signature)>>,
    /// Requests refused as equivocation (the engine's WAL should make this never happen).
    pub conflicts: std::sync::atomic::AtomicUsize,
    /// False for a Byzantine validator's second signer: it signs anything.
    pub guard: bool,
}

impl MemSigner {
    /// A guarded signer for validator `i`.
    pub(crate) fn new(i: u8) -> Self {
        Self {
            key: key(i),
            record: Mutex::new(HashMap::new()),
            conflicts: Default::default(),
            guard: true,
        }
    }
}

impl SlotSigner for MemSigner {
    fn public_key(&self, _role: KeyRole) -> PublicKey {
        PublicKey::of(&self.key)
    }
    fn sign(
        &self,
        role: KeyRole,
        slot: &Slot,
        context: &str,
        message: &[u8],
    ) -> Result<Signature, SignError> {
        let digest = message_digest(context, message);
        if !self.guard {
            return Ok(Signature::sign(&self.key, context, message));
        }
        let mut r = self.record.lock().expect("signer lock");
        match r.get(&slot.record_key(role)) {
            Some((d, s)) if *d == digest => Ok(s.clone()),
            Some(_) => {
                self.conflicts
                    .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                Err(SignError::Conflict(slot.describe()))
            }
            None => {
                let s = Signature::sign(&self.key, context, message);
                r.insert(slot.record_key(role), (digest, s.clone()));
                Ok(s)
            }
        }
    }
}

pub(crate) fn key(i: u8) -> SigningKey {
    SigningKey::from_bytes(&[i + 1; 32])
}

pub(crate) fn genesis(n: u8) -> Genesis {
    let entity = PublicKey::of(&SigningKey::from_bytes(&[99; 32]));
    Genesis {
        chain_id: "bft-test".into(),
        genesis_time: "2026-01-01T00:00:00Z".into(),
        epoch_interval: 1000,
        block_interval_ms: 200,
        validators: (0..n)
            .map(|i| GenesisValidator {
                consensus_id: PublicKey::of(&key(i)),
                entity_id: entity,
            })
            .collect(),
        staking: StakingGenesis {
            thresholds: Thresholds::default(),
            debonding_interval: 1,
            accounts: BTreeMap::new(),
            escrow: [(Address::from_public_key(&entity), 4000)]
                .into_iter()
                .collect(),
        },
        registry: RegistryGenesis {
            max_node_expiration: 2,
            runtimes: vec![],
            entities: vec![],
        },
        consensus_pubsub: Default::default(),
    }
}

pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

pub(crate) async fn wait_for(chains: &[&Arc<MemChain>], height: u64, limit: Duration) {
    let start = Instant::now();
    loop {
        let heights: Vec<u64> = chains.iter().map(|c| c.last_committed().0).collect();
        if heights.iter().all(|h| *h >= height) {
            return;
        }
        assert!(
            start.elapsed() < limit,
            "validators stuck at heights {heights:?}, waiting for {height}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub(crate) fn options(dir: &std::path::Path, ports: &[u16], i: u8) -> Options {
    options_with(dir, ports, i, ConsensusPubSub::Gossipsub)
}

/// [`options`] with the given pub-sub protocol.
pub(crate) fn options_with(
    dir: &std::path::Path,
    ports: &[u16],
    i: u8,
    pubsub: ConsensusPubSub,
) -> Options {
    let addr = |p: u16| {
        format!("/ip4/127.0.0.1/tcp/{p}")
            .parse()
            .expect("multiaddr")
    };
    Options {
        moniker: format!("validator-{i}"),
        listen: addr(ports[usize::from(i)]),
        peers: ports
            .iter()
            .enumerate()
            .filter(|(j, _)| *j != usize::from(i))
            .map(|(_, p)| addr(*p))
            .collect(),
        wal: dir.join(format!("v{i}/wal/consensus.wal")),
        network_secret: [50 + i; 32],
        block_interval: Duration::from_millis(200),
        propose_timeout: Duration::from_secs(1),
        pubsub,
    }
}

/// Kills a validator the hard way: the engine's actors are killed, nothing is flushed.
pub(crate) async fn kill(r: Running) {
    r.kill().await;
}
