//! A Byzantine validator (one of four) that equivocates on every proposal and vote, through
//! Malachite's Byzantine network proxy: the honest three keep deciding the same blocks, and they
//! record the equivocation as evidence against it. Needs `--features byzantine` (scripts/test.sh).
#![cfg(feature = "byzantine")]

mod common;
use common::*;
use malachitebft_engine_byzantine::{ByzantineConfig, Trigger};
use paratime_bft::chain::ChainApp;
use paratime_bft::engine;
use paratime_state::crypto::PublicKey;
use paratime_state::Height;
use std::sync::Arc;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_equivocating_validator_breaks_no_safety_and_is_reported() {
    an_equivocating_validator_breaks_no_safety_and_is_reported_with(ConsensusPubSub::Gossipsub)
        .await;
}

/// The same with proposals and votes sent directly to each validator, never relayed: the
/// equivocator can now send each honest validator its own version.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_equivocating_validator_breaks_no_safety_and_is_reported_over_broadcast() {
    an_equivocating_validator_breaks_no_safety_and_is_reported_with(ConsensusPubSub::Broadcast)
        .await;
}

async fn an_equivocating_validator_breaks_no_safety_and_is_reported_with(pubsub: ConsensusPubSub) {
    let dir = tempfile::tempdir().expect("tempdir");
    let g = genesis(4);
    let ports: Vec<u16> = (0..4).map(|_| free_port()).collect();
    let chains: Vec<Arc<MemChain>> = (0..4).map(|_| Arc::new(MemChain::new(&g))).collect();
    let mut running = Vec::new();
    for i in 0..3u8 {
        running.push(
            engine::start(
                chains[usize::from(i)].clone(),
                Arc::new(MemSigner::new(i)),
                options_with(dir.path(), &ports, i, pubsub),
            )
            .await
            .expect("honest validator starts"),
        );
    }
    let mut double = MemSigner::new(3);
    double.guard = false;
    let attack = ByzantineConfig::default()
        .with_equivocate_votes(Trigger::Always)
        .with_equivocate_proposals(Trigger::Always);
    running.push(
        engine::start_byzantine(
            chains[3].clone(),
            Arc::new(MemSigner::new(3)),
            Arc::new(double),
            attack,
            options_with(dir.path(), &ports, 3, pubsub),
        )
        .await
        .expect("Byzantine validator starts"),
    );
    let honest: Vec<&Arc<MemChain>> = chains[..3].iter().collect();
    wait_for(&honest, 8, Duration::from_secs(120)).await;

    let top = honest
        .iter()
        .map(|c| c.last_committed().0)
        .min()
        .unwrap_or(0);
    for h in 1..=top {
        let hashes: Vec<_> = honest
            .iter()
            .map(|c| c.committed(Height(h)).expect("committed").0.hash())
            .collect();
        assert!(hashes.iter().all(|x| *x == hashes[0]), "height {h} differs");
    }
    let byzantine = PublicKey::of(&key(3));
    let reported: usize = honest
        .iter()
        .map(|c| {
            let e = &c.lock().evidence;
            assert!(
                e.iter().all(|(_, who, _)| *who == byzantine),
                "an honest validator was reported: {e:?}"
            );
            e.len()
        })
        .sum();
    assert!(reported > 0, "nobody recorded the equivocation");
    for r in running {
        r.stop().await;
    }
}
