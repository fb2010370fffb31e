//! Four Malachite validators in one process, on loopback TCP, each driving its own copy of the
//! real state machine: they agree on every block, keep going with one validator stopped (f = 1),
//! and every commit certificate verifies against the validator set.

mod common;
use common::*;
use paratime_bft::chain::{verify_commit, ChainApp, CommitCert};
use paratime_bft::engine::{self, Running};
use paratime_state::block::Proposed;
use paratime_state::crypto::PublicKey;
use paratime_state::encoding::Hash;
use paratime_state::Height;
use std::sync::Arc;
use std::time::Duration;

/// Validators killed without warning — two at once (the chain halts safely), then each restarted
/// from its WAL, its store and its signer's record — never equivocate, catch up by value sync,
/// and agree on every block.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_validators_restart_from_their_wal_and_catch_up() {
    let dir = tempfile::tempdir().expect("tempdir");
    let g = genesis(4);
    let ports: Vec<u16> = (0..4).map(|_| free_port()).collect();
    let chains: Vec<Arc<MemChain>> = (0..4).map(|_| Arc::new(MemChain::new(&g))).collect();
    let signers: Vec<Arc<MemSigner>> = (0..4u8).map(|i| Arc::new(MemSigner::new(i))).collect();
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
    let halted = chains[0]
        .last_committed()
        .0
        .max(chains[1].last_committed().0);
    tokio::time::sleep(Duration::from_secs(4)).await;
    let after = chains[0]
        .last_committed()
        .0
        .max(chains[1].last_committed().0);
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
    let top = chains
        .iter()
        .map(|c| c.last_committed().0)
        .max()
        .unwrap_or(0);
    wait_for(&all, top + 2, Duration::from_secs(120)).await;

    let top = chains
        .iter()
        .map(|c| c.last_committed().0)
        .min()
        .unwrap_or(0);
    for h in 1..=top {
        let hashes: Vec<Hash> = chains
            .iter()
            .map(|c| c.committed(Height(h)).expect("committed").0.hash())
            .collect();
        assert!(hashes.iter().all(|x| *x == hashes[0]), "height {h} differs");
        let roots: Vec<Hash> = chains
            .iter()
            .map(|c| {
                c.committed(Height(h))
                    .expect("committed")
                    .0
                    .header
                    .state_root
            })
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
    four_validators_agree_and_survive_one_stopped_with(ConsensusPubSub::Gossipsub).await;
}

/// The same with proposals and votes sent directly, never relayed (every validator is connected
/// to every other one here).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_validators_agree_and_survive_one_stopped_over_broadcast() {
    four_validators_agree_and_survive_one_stopped_with(ConsensusPubSub::Broadcast).await;
}

async fn four_validators_agree_and_survive_one_stopped_with(pubsub: ConsensusPubSub) {
    let dir = tempfile::tempdir().expect("tempdir");
    let g = genesis(4);
    let ports: Vec<u16> = (0..4).map(|_| free_port()).collect();
    let mut chains = Vec::new();
    let mut running: Vec<Option<Running>> = Vec::new();
    for i in 0..4u8 {
        let chain = Arc::new(MemChain::new(&g));
        let signer = Arc::new(MemSigner::new(i));
        let opts = options_with(dir.path(), &ports, i, pubsub);
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
    let stopped_at = chains[3].last_committed().0;
    let three: Vec<&Arc<MemChain>> = chains[..3].iter().collect();
    wait_for(&three, stopped_at + 5, Duration::from_secs(90)).await;

    // Every validator holds the same block at every height it has, and every certificate
    // verifies against the validator set of its height.
    let top = chains
        .iter()
        .map(|c| c.last_committed().0)
        .min()
        .unwrap_or(0);
    for h in 1..=top {
        let blocks: Vec<(Proposed, CommitCert)> = chains
            .iter()
            .map(|c| c.committed(Height(h)).expect("committed"))
            .collect();
        let hash = blocks[0].0.hash();
        assert!(
            blocks.iter().all(|(b, _)| b.hash() == hash),
            "height {h} differs"
        );
        let set = chains[0].validator_set(Height(h)).expect("set");
        for (b, cert) in &blocks {
            verify_commit(&chains[0].chain_context(), Height(h), &b.hash(), cert, &set)
                .await
                .expect("certificate verifies");
        }
        // A certificate does not verify for another block or another validator set.
        let (b, cert) = &blocks[0];
        assert!(
            verify_commit(&chains[0].chain_context(), Height(h), &[0; 32], cert, &set)
                .await
                .is_err()
        );
        let mut other = set.clone();
        for v in &mut other.validators {
            v.consensus_id = PublicKey([7; 32]);
        }
        assert!(verify_commit(
            &chains[0].chain_context(),
            Height(h),
            &b.hash(),
            cert,
            &other
        )
        .await
        .is_err());
    }
    for r in running.into_iter().flatten() {
        r.stop().await;
    }
}

/// A proposer builds its block once the chain says it is ready (a runtime round's commitments
/// are in), asking again while it is not; a chain that is never ready still gets its blocks,
/// each after at most one block interval of waiting.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proposer_waits_for_the_chain_to_be_ready_but_not_forever() {
    let dir = tempfile::tempdir().expect("tempdir");
    let g = genesis(1);
    let ports = vec![free_port()];
    let chain = Arc::new(MemChain::new(&g));
    chain.gate.lock().expect("gate").asks_needed = 3;
    let running = engine::start(
        chain.clone(),
        Arc::new(MemSigner::new(0)),
        options(dir.path(), &ports, 0),
    )
    .await
    .expect("engine starts");
    wait_for(&[&chain], 4, Duration::from_secs(60)).await;
    {
        let gate = chain.gate.lock().expect("gate");
        assert!(gate.builds.len() >= 4, "{:?}", gate.builds);
        for (h, asks) in &gate.builds {
            assert!(
                *asks > 3,
                "block {h} was built after {asks} asks: the proposer did not wait for the chain"
            );
        }
    }
    // Never ready: the chain goes on.
    chain.gate.lock().expect("gate").asks_needed = u32::MAX;
    let at = chain.last_committed().0;
    wait_for(&[&chain], at + 3, Duration::from_secs(60)).await;
    {
        let gate = chain.gate.lock().expect("gate");
        let last: Vec<_> = gate.builds.iter().rev().take(2).collect();
        for (h, asks) in last {
            assert!(*asks >= 2, "block {h} was built after {asks} asks");
        }
    }
    running.stop().await;
}
