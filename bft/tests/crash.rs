//! kill -9 at chosen steps, in process: each validator runs on a tokio runtime of its own, and a
//! trap in its chain or signer stops it dead at the chosen step — the trapped thread never
//! returns into the engine and the runtime is dropped without shutdown, so nothing after that
//! point runs or is flushed (what stays is what a killed process leaves: the WAL file, and the
//! chain and signer record, which stand for the node's redb store). The validator is then
//! restarted from them. Several crashes at every step, on rotating validators; afterwards all
//! four agree on every height's block and state root and nobody saw an equivocation.

mod common;
use common::*;
use paratime_bft::chain::{ChainApp, ChainError, CommitCert};
use paratime_bft::engine::{self, Running};
use paratime_state::block::Proposed;
use paratime_state::crypto::{PublicKey, Signature};
use paratime_state::encoding::Hash;
use paratime_state::signing::{KeyRole, SignError, Slot, SlotSigner, Step};
use paratime_state::validators::ValidatorSet;
use paratime_state::Height;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Where a validator is killed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum At {
    /// Its prevote is signed and recorded by the signer; the engine never gets the signature
    /// (so it is neither in the WAL nor sent).
    PrevoteSigned,
    /// Its precommit was signed and handed to the engine: killed as soon as the test hears
    /// of it (the vote is in flight or sent).
    PrecommitSent,
    /// The height is decided; the block is not stored yet.
    DecidedNotStored,
    /// The block is stored; the engine was not told (its WAL still holds the height).
    StoredNotAcknowledged,
}

/// A trap armed for one step: the thread that reaches it reports and, unless the step lets it
/// go on, parks forever.
struct Trap {
    armed: Mutex<Option<At>>,
    hit: Mutex<mpsc::Sender<At>>,
}

impl Trap {
    fn reached(&self, at: At) {
        {
            let mut a = self.armed.lock().expect("trap");
            if *a != Some(at) {
                return;
            }
            *a = None;
        }
        let _ = self.hit.lock().expect("trap").send(at);
        if at != At::PrecommitSent {
            // Dead: this thread never returns into the engine.
            loop {
                std::thread::park();
            }
        }
    }
}

struct TrappedChain {
    chain: Arc<MemChain>,
    trap: Arc<Trap>,
}

impl ChainApp for TrappedChain {
    fn chain_context(&self) -> String {
        self.chain.chain_context()
    }
    fn last_committed(&self) -> Height {
        self.chain.last_committed()
    }
    fn validator_set(&self, height: Height) -> Option<ValidatorSet> {
        self.chain.validator_set(height)
    }
    fn build_block(
        &self,
        height: Height,
        proposer: PublicKey,
        time_ms: u64,
    ) -> Result<Proposed, ChainError> {
        self.chain.build_block(height, proposer, time_ms)
    }
    fn verify_block(&self, height: Height, block: &Proposed) -> Result<(), ChainError> {
        self.chain.verify_block(height, block)
    }
    fn commit(&self, block: &Proposed, cert: &CommitCert) -> Result<(), ChainError> {
        self.trap.reached(At::DecidedNotStored);
        self.chain.commit(block, cert)?;
        self.trap.reached(At::StoredNotAcknowledged);
        Ok(())
    }
    fn committed(&self, height: Height) -> Option<(Proposed, CommitCert)> {
        self.chain.committed(height)
    }
    fn earliest_height(&self) -> Height {
        self.chain.earliest_height()
    }
    fn remember_proposal(&self, height: Height, round: u32, proposer: PublicKey, block: &Proposed) {
        self.chain.remember_proposal(height, round, proposer, block)
    }
    fn proposals_seen(&self, height: Height) -> Vec<(u32, PublicKey, Proposed)> {
        self.chain.proposals_seen(height)
    }
    fn proposal_by_hash(&self, height: Height, hash: &Hash) -> Option<Proposed> {
        self.chain.proposal_by_hash(height, hash)
    }
    fn record_evidence(&self, height: Height, offender: PublicKey, what: &str) {
        self.chain.record_evidence(height, offender, what)
    }
}

struct TrappedSigner {
    signer: Arc<MemSigner>,
    trap: Arc<Trap>,
}

impl SlotSigner for TrappedSigner {
    fn public_key(&self, role: KeyRole) -> PublicKey {
        self.signer.public_key(role)
    }
    fn sign(
        &self,
        role: KeyRole,
        slot: &Slot,
        context: &str,
        message: &[u8],
    ) -> Result<Signature, SignError> {
        let s = self.signer.sign(role, slot, context, message)?;
        match slot {
            Slot::Consensus {
                step: Step::Prevote,
                ..
            } => self.trap.reached(At::PrevoteSigned),
            Slot::Consensus {
                step: Step::Precommit,
                ..
            } => self.trap.reached(At::PrecommitSent),
            _ => {}
        }
        Ok(s)
    }
}

/// One validator on its own runtime.
struct Validator {
    rt: tokio::runtime::Runtime,
    running: Running,
}

fn heights(chains: &[Arc<MemChain>]) -> Vec<u64> {
    chains.iter().map(|c| c.last_committed().0).collect()
}

fn wait_all(chains: &[Arc<MemChain>], height: u64, limit: Duration) {
    let start = Instant::now();
    while heights(chains).iter().any(|h| *h < height) {
        assert!(
            start.elapsed() < limit,
            "validators stuck at heights {:?}, waiting for {height}",
            heights(chains)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn validators_killed_at_every_step_restart_and_all_agree() {
    let dir = tempfile::tempdir().expect("tempdir");
    let g = genesis(4);
    let ports: Vec<u16> = (0..4).map(|_| free_port()).collect();
    let chains: Vec<Arc<MemChain>> = (0..4).map(|_| Arc::new(MemChain::new(&g))).collect();
    let signers: Vec<Arc<MemSigner>> = (0..4u8).map(|i| Arc::new(MemSigner::new(i))).collect();
    let (hit_tx, hit_rx) = mpsc::channel();
    let traps: Vec<Arc<Trap>> = (0..4)
        .map(|_| {
            Arc::new(Trap {
                armed: Mutex::new(None),
                hit: Mutex::new(hit_tx.clone()),
            })
        })
        .collect();
    let start = |i: usize| {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let chain = Arc::new(TrappedChain {
            chain: chains[i].clone(),
            trap: traps[i].clone(),
        });
        let signer = Arc::new(TrappedSigner {
            signer: signers[i].clone(),
            trap: traps[i].clone(),
        });
        let opts = options(dir.path(), &ports, i as u8);
        let running = rt
            .block_on(engine::start(chain, signer, opts))
            .expect("engine starts");
        Validator { rt, running }
    };
    let mut validators: Vec<Option<Validator>> = (0..4).map(|i| Some(start(i))).collect();
    wait_all(&chains, 3, Duration::from_secs(90));

    let steps = [
        At::PrevoteSigned,
        At::PrecommitSent,
        At::DecidedNotStored,
        At::StoredNotAcknowledged,
    ];
    let mut crashes = Vec::new();
    for (n, at) in steps.iter().chain(steps.iter()).enumerate() {
        let victim = n % 4;
        *traps[victim].armed.lock().expect("trap") = Some(*at);
        let hit = hit_rx
            .recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|_| panic!("validator-{victim} never reached {at:?}"));
        assert_eq!(hit, *at);
        // kill -9: the runtime goes without shutting anything down.
        if let Some(v) = validators[victim].take() {
            let height = chains[victim].last_committed();
            v.rt.shutdown_background();
            drop(v.running);
            crashes.push((victim, *at, height));
        }
        std::thread::sleep(Duration::from_millis(200));
        validators[victim] = Some(start(victim));
        let top = heights(&chains).into_iter().max().unwrap_or(0);
        wait_all(&chains, top + 2, Duration::from_secs(120));
    }
    eprintln!("crashes (validator, step, committed height): {crashes:?}");

    let top = heights(&chains).into_iter().min().unwrap_or(0);
    for h in 1..=top {
        let blocks: Vec<Proposed> = chains
            .iter()
            .map(|c| c.committed(Height(h)).expect("committed").0)
            .collect();
        assert!(
            blocks.iter().all(|b| b.hash() == blocks[0].hash()),
            "height {h} differs"
        );
        assert!(
            blocks
                .iter()
                .all(|b| b.header.state_root == blocks[0].header.state_root),
            "state root at {h} differs"
        );
    }
    for c in &chains {
        let e = &c.lock().evidence;
        assert!(e.is_empty(), "an honest validator was reported: {e:?}");
    }
    // A restarted validator may ask to sign something else for a slot it signed just before it
    // was killed (the signature never reached its WAL): the signer refuses, and that is the
    // point. Report how often.
    let refused: usize = signers
        .iter()
        .map(|s| s.conflicts.load(std::sync::atomic::Ordering::SeqCst))
        .sum();
    eprintln!(
        "{} crashes, top height {top}, conflicting signing requests refused: {refused}",
        crashes.len()
    );
    for v in validators.into_iter().flatten() {
        v.rt.block_on(v.running.stop());
    }
}
