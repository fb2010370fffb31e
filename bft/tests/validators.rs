//! Four Malachite validators in one process, on loopback TCP, each driving its own copy of the
//! real state machine: they agree on every block, keep going with one validator stopped (f = 1),
//! and every commit certificate verifies against the validator set.

use ed25519_dalek::SigningKey;
use paratime_bft::chain::{verify_commit, ChainApp, CommitCert};
use paratime_bft::engine::{self, Options, Running};
use paratime_state::address::Address;
use paratime_state::block::Proposed;
use paratime_state::crypto::{PublicKey, Signature};
use paratime_state::encoding::Hash;
use paratime_state::genesis::{
    Genesis, GenesisValidator, RegistryGenesis, StakingGenesis, Thresholds,
};
use paratime_state::signing::{message_digest, KeyRole, SignError, Slot, SlotSigner};
use paratime_state::state::State;
use paratime_state::validators::ValidatorSet;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A chain in memory: the real state machine and blocks, no store.
struct MemChain {
    inner: Mutex<Inner>,
}

struct Inner {
    state: State,
    sets: BTreeMap<u64, ValidatorSet>,
    blocks: BTreeMap<u64, (Proposed, CommitCert)>,
    proposals: BTreeMap<u64, Vec<(u32, PublicKey, Proposed)>>,
    evidence: Vec<(u64, PublicKey, String)>,
}

impl MemChain {
    fn new(g: &Genesis) -> Self {
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
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().expect("chain lock")
    }
}

impl ChainApp for MemChain {
    fn chain_context(&self) -> String {
        self.lock().state.chain_context.clone()
    }
    fn last_committed(&self) -> u64 {
        self.lock().state.height
    }
    fn validator_set(&self, height: u64) -> Option<ValidatorSet> {
        self.lock().sets.get(&height).cloned()
    }
    fn build_block(
        &self,
        height: u64,
        proposer: PublicKey,
        time_ms: u64,
    ) -> Result<Proposed, String> {
        let i = self.lock();
        if height != i.state.height + 1 {
            return Err(format!("asked to build {height} at {}", i.state.height));
        }
        Ok(Proposed::build(&i.state, Vec::new(), time_ms, proposer).0)
    }
    fn verify_block(&self, height: u64, block: &Proposed) -> Result<(), String> {
        let i = self.lock();
        if height != i.state.height + 1 {
            return Err(format!("block {height} at height {}", i.state.height));
        }
        block.apply(&i.state).map(|_| ())
    }
    fn commit(&self, block: &Proposed, cert: &CommitCert) -> Result<(), String> {
        let mut i = self.lock();
        let (next, _) = block.apply(&i.state)?;
        let h = next.height;
        i.sets.insert(h + 1, next.validators.clone());
        i.state = next;
        i.blocks.insert(h, (block.clone(), cert.clone()));
        i.proposals.remove(&h);
        Ok(())
    }
    fn committed(&self, height: u64) -> Option<(Proposed, CommitCert)> {
        self.lock().blocks.get(&height).cloned()
    }
    fn earliest_height(&self) -> u64 {
        1
    }
    fn remember_proposal(&self, height: u64, round: u32, proposer: PublicKey, block: &Proposed) {
        let mut i = self.lock();
        let list = i.proposals.entry(height).or_default();
        if !list
            .iter()
            .any(|(r, p, b)| *r == round && *p == proposer && b == block)
        {
            list.push((round, proposer, block.clone()));
        }
    }
    fn proposals_seen(&self, height: u64) -> Vec<(u32, PublicKey, Proposed)> {
        self.lock()
            .proposals
            .get(&height)
            .cloned()
            .unwrap_or_default()
    }
    fn record_evidence(&self, height: u64, offender: PublicKey, what: &str) {
        self.lock()
            .evidence
            .push((height, offender, what.to_string()));
    }
}

/// The never-sign-twice rule in memory (the node's signer keeps it in redb).
struct MemSigner {
    key: SigningKey,
    record: Mutex<HashMap<Vec<u8>, (Hash, Signature)>>,
    /// Requests refused as equivocation (the engine's WAL should make this never happen).
    conflicts: std::sync::atomic::AtomicUsize,
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

fn key(i: u8) -> SigningKey {
    SigningKey::from_bytes(&[i + 1; 32])
}

fn genesis(n: u8) -> Genesis {
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
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

async fn wait_for(chains: &[&Arc<MemChain>], height: u64, limit: Duration) {
    let start = Instant::now();
    loop {
        let heights: Vec<u64> = chains.iter().map(|c| c.last_committed()).collect();
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

fn options(dir: &std::path::Path, ports: &[u16], i: u8) -> Options {
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
    }
}

/// Kills a validator the hard way: the engine's actors are killed, nothing is flushed.
async fn kill(r: Running) {
    r.engine.actor.kill();
    let _ = r.engine.handle.await;
    r.app.abort();
    let _ = r.app.await;
}

/// Validators killed without warning — two at once (the chain halts safely), then each restarted
/// from its WAL, its store and its signer's record — never equivocate, catch up by value sync,
/// and agree on every block.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_validators_restart_from_their_wal_and_catch_up() {
    let dir = tempfile::tempdir().expect("tempdir");
    let g = genesis(4);
    let ports: Vec<u16> = (0..4).map(|_| free_port()).collect();
    let chains: Vec<Arc<MemChain>> = (0..4).map(|_| Arc::new(MemChain::new(&g))).collect();
    let signers: Vec<Arc<MemSigner>> = (0..4u8)
        .map(|i| {
            Arc::new(MemSigner {
                key: key(i),
                record: Mutex::new(HashMap::new()),
                conflicts: Default::default(),
            })
        })
        .collect();
    let start = |i: u8| {
        let chain = chains[usize::from(i)].clone();
        let signer = signers[usize::from(i)].clone();
        let opts = options(dir.path(), &ports, i);
        async move {
            engine::start(chain, signer, opts)
                .await
                .expect("engine starts")
        }
    };
    let mut running: Vec<Option<Running>> = Vec::new();
    for i in 0..4u8 {
        running.push(Some(start(i).await));
    }
    let all: Vec<&Arc<MemChain>> = chains.iter().collect();
    wait_for(&all, 3, Duration::from_secs(90)).await;

    // Two of four down: no quorum, so no block is decided (safety over liveness).
    for i in [2usize, 3] {
        if let Some(r) = running[i].take() {
            kill(r).await;
        }
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let halted = chains[0].last_committed().max(chains[1].last_committed());
    tokio::time::sleep(Duration::from_secs(4)).await;
    let after = chains[0].last_committed().max(chains[1].last_committed());
    assert!(
        after <= halted + 1,
        "blocks were decided without a quorum: {halted} -> {after}"
    );

    // One returns: three of four, the chain resumes; the returning one catches up.
    running[2] = Some(start(2).await);
    let three: Vec<&Arc<MemChain>> = chains[..3].iter().collect();
    wait_for(&three, after + 3, Duration::from_secs(90)).await;

    // Kill and restart validators one after another, several times.
    for round in 0..3usize {
        let i = round % 3;
        if let Some(r) = running[i].take() {
            kill(r).await;
        }
        tokio::time::sleep(Duration::from_millis(300 * (round as u64 + 1))).await;
        running[i] = Some(start(i as u8).await);
    }
    // The fourth returns last and must catch up by value sync.
    running[3] = Some(start(3).await);
    let top = chains.iter().map(|c| c.last_committed()).max().unwrap_or(0);
    wait_for(&all, top + 2, Duration::from_secs(120)).await;

    let top = chains.iter().map(|c| c.last_committed()).min().unwrap_or(0);
    for h in 1..=top {
        let hashes: Vec<Hash> = chains
            .iter()
            .map(|c| c.committed(h).expect("committed").0.hash())
            .collect();
        assert!(hashes.iter().all(|x| *x == hashes[0]), "height {h} differs");
        let roots: Vec<Hash> = chains
            .iter()
            .map(|c| c.committed(h).expect("committed").0.header.state_root)
            .collect();
        assert!(
            roots.iter().all(|x| *x == roots[0]),
            "state root at {h} differs"
        );
    }
    for c in &chains {
        let e = &c.lock().evidence;
        assert!(e.is_empty(), "an honest validator was reported: {e:?}");
    }
    for s in &signers {
        let n = s.conflicts.load(std::sync::atomic::Ordering::SeqCst);
        assert_eq!(
            n, 0,
            "a restarted validator asked to sign a conflicting message"
        );
    }
    for r in running.into_iter().flatten() {
        r.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_validators_agree_and_survive_one_stopped() {
    let dir = tempfile::tempdir().expect("tempdir");
    let g = genesis(4);
    let ports: Vec<u16> = (0..4).map(|_| free_port()).collect();
    let mut chains = Vec::new();
    let mut running: Vec<Option<Running>> = Vec::new();
    for i in 0..4u8 {
        let chain = Arc::new(MemChain::new(&g));
        let signer = Arc::new(MemSigner {
            key: key(i),
            record: Mutex::new(HashMap::new()),
            conflicts: Default::default(),
        });
        let opts = options(dir.path(), &ports, i);
        running.push(Some(
            engine::start(chain.clone(), signer, opts)
                .await
                .expect("engine starts"),
        ));
        chains.push(chain);
    }
    let all: Vec<&Arc<MemChain>> = chains.iter().collect();
    wait_for(&all, 5, Duration::from_secs(90)).await;

    // One validator stops (f = 1 of 4 equal powers): the others keep deciding blocks.
    if let Some(r) = running[3].take() {
        r.stop().await;
    }
    let stopped_at = chains[3].last_committed();
    let three: Vec<&Arc<MemChain>> = chains[..3].iter().collect();
    wait_for(&three, stopped_at + 5, Duration::from_secs(90)).await;

    // Every validator holds the same block at every height it has, and every certificate
    // verifies against the validator set of its height.
    let top = chains.iter().map(|c| c.last_committed()).min().unwrap_or(0);
    for h in 1..=top {
        let blocks: Vec<(Proposed, CommitCert)> = chains
            .iter()
            .map(|c| c.committed(h).expect("committed"))
            .collect();
        let hash = blocks[0].0.hash();
        assert!(
            blocks.iter().all(|(b, _)| b.hash() == hash),
            "height {h} differs"
        );
        let set = chains[0].validator_set(h).expect("set");
        for (b, cert) in &blocks {
            verify_commit(&chains[0].chain_context(), h, &b.hash(), cert, &set)
                .await
                .expect("certificate verifies");
        }
        // A certificate does not verify for another block or another validator set.
        let (b, cert) = &blocks[0];
        assert!(
            verify_commit(&chains[0].chain_context(), h, &[0; 32], cert, &set)
                .await
                .is_err()
        );
        let mut other = set.clone();
        for v in &mut other.validators {
            v.consensus_id = PublicKey([7; 32]);
        }
        assert!(
            verify_commit(&chains[0].chain_context(), h, &b.hash(), cert, &other)
                .await
                .is_err()
        );
    }
    for r in running.into_iter().flatten() {
        r.stop().await;
    }
}
