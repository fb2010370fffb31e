//! `paratime-dev bench-consensus`: the cost of a consensus block on a large state. Builds a
//! genesis with N accounts, then proposes, verifies and stores `--blocks` blocks of `--txs`
//! signed transfers (each from its own signer, to random accounts) and prints the per-block
//! times next to the same figures on a small state: a block's cost should follow its
//! transactions, not the state's size (floor 1x).

use crate::bench_state::rss_mb;
use paratime_node::storage::Store;
use paratime_state::address::Address;
use paratime_state::block::{CommitCert, Proposed};
use paratime_state::crypto::{self, PublicKey, Signed};
use paratime_state::genesis::{Genesis, GenesisValidator, RegistryGenesis, StakingGenesis};
use paratime_state::state::{Fee, State, Transaction, Transfer};
use std::time::{Duration, Instant};

/// `bench-consensus` arguments.
#[derive(clap::Args, Debug)]
pub(crate) struct Args {
    /// Accounts in the large state.
    #[arg(long, default_value_t = 1_000_000)]
    accounts: u64,
    /// Accounts in the small state it is compared with.
    #[arg(long, default_value_t = 10_000)]
    small: u64,
    /// Measured blocks.
    #[arg(long, default_value_t = 20)]
    blocks: u64,
    /// Transfers per block (one signer each).
    #[arg(long, default_value_t = 500)]
    txs: u64,
}

fn address(i: u64) -> Address {
    let mut a = [0u8; 21];
    a[1..9].copy_from_slice(&i.to_be_bytes());
    a[9..].copy_from_slice(&paratime_state::encoding::hash(&i.to_le_bytes())[..12]);
    Address(a)
}

/// Per-block medians: (propose, verify, store).
fn measure(a: &Args, n: u64, label: &str) -> anyhow::Result<[Duration; 3]> {
    let validator = ed25519_dalek::SigningKey::from_bytes(&[1; 32]);
    let signers: Vec<ed25519_dalek::SigningKey> = (0..a.txs)
        .map(|i| {
            let mut seed = [2u8; 32];
            seed[..8].copy_from_slice(&i.to_be_bytes());
            ed25519_dalek::SigningKey::from_bytes(&seed)
        })
        .collect();
    let mut accounts: std::collections::BTreeMap<Address, u64> =
        (0..n).map(|i| (address(i), 1)).collect();
    for s in &signers {
        accounts.insert(Address::from_public_key(&PublicKey::of(s)), 1 << 40);
    }
    let id = PublicKey::of(&validator);
    let g = Genesis {
        chain_id: "bench".into(),
        genesis_time: "2026-01-01T00:00:00Z".into(),
        epoch_interval: 1_000_000,
        block_interval_ms: 1000,
        validators: vec![GenesisValidator {
            consensus_id: id,
            entity_id: id,
        }],
        staking: StakingGenesis {
            thresholds: Default::default(),
            debonding_interval: 1,
            accounts,
            escrow: Default::default(),
        },
        registry: RegistryGenesis {
            max_node_expiration: 2,
            runtimes: vec![],
            entities: vec![],
        },
        consensus_pubsub: Default::default(),
    };
    let state = State::from_genesis(&g);
    let dir = nix::unistd::mkdtemp(&std::env::temp_dir().join("paratime-bench-XXXXXX"))?;
    let result = blocks(a, n, label, &signers, &validator, &g, state, &dir);
    let _ = std::fs::remove_dir_all(&dir);
    result
}

#[allow(clippy::too_many_arguments)]
fn blocks(
    a: &Args,
    n: u64,
    label: &str,
    signers: &[ed25519_dalek::SigningKey],
    validator: &ed25519_dalek::SigningKey,
    _g: &Genesis,
    mut state: State,
    dir: &std::path::Path,
) -> anyhow::Result<[Duration; 3]> {
    let id = PublicKey::of(validator);
    let t = Instant::now();
    let store = Store::open(&dir.join("consensus.redb"))?;
    let cert = CommitCert {
        engine: "bench".into(),
        bytes: Vec::new(),
    };
    // The first block writes every entry: not measured.
    let (b, next, _) = Proposed::build(&state, Vec::new(), 1, id);
    store.commit_block(&b, &cert, &next)?;
    state = next;
    eprintln!(
        "{label}: {n} accounts: first block (every entry) stored in {:.1}s, RSS {:.0} MB",
        t.elapsed().as_secs_f64(),
        rss_mb()
    );
    let ctx = crypto::context(crypto::CONTEXT_TX, Some(&state.chain_context));
    let mut rng = 0x9e37_79b9_7f4a_7c15u64;
    let mut times: [Vec<Duration>; 3] = Default::default();
    for block in 0..a.blocks {
        let txs: Vec<Signed> = signers
            .iter()
            .map(|s| {
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                let tx = Transaction {
                    nonce: block,
                    fee: Fee::default(),
                    method: "staking.Transfer".into(),
                    body: ciborium::Value::serialized(&Transfer {
                        to: address(rng % n.max(1)),
                        amount: 1,
                    })
                    .expect("body"),
                };
                Signed::sign(s, &ctx, &tx)
            })
            .collect();
        let t = Instant::now();
        let (b, next, outcomes) = Proposed::build(&state, txs, block + 2, id);
        times[0].push(t.elapsed());
        if let Some(e) = outcomes.iter().find_map(|o| o.error.as_ref()) {
            anyhow::bail!("a transfer failed: {e}");
        }
        let t = Instant::now();
        let (verified, _) = b.apply(&state)?;
        times[1].push(t.elapsed());
        anyhow::ensure!(verified.root() == next.root(), "verification disagrees");
        let t = Instant::now();
        store.commit_block(&b, &cert, &next)?;
        times[2].push(t.elapsed());
        state = next;
    }
    let p50 = |v: &mut Vec<Duration>| {
        v.sort();
        v[v.len() / 2]
    };
    let [mut p, mut v, mut s] = times;
    let out = [p50(&mut p), p50(&mut v), p50(&mut s)];
    println!(
        "{label:>6}: {n:>9} accounts  propose p50 {:>7.2} ms  verify {:>7.2} ms  store {:>6.2} ms  ({} txs/block)  RSS {:>5.0} MB",
        out[0].as_secs_f64() * 1e3,
        out[1].as_secs_f64() * 1e3,
        out[2].as_secs_f64() * 1e3,
        a.txs,
        rss_mb()
    );
    Ok(out)
}

/// Runs the benchmark; exit code 1 on error.
pub(crate) fn run(a: Args) -> i32 {
    println!(
        "consensus block benchmark: {} signed transfers per block, {} blocks",
        a.txs, a.blocks
    );
    let run = || -> anyhow::Result<()> {
        let small = measure(&a, a.small, "small")?;
        let large = measure(&a, a.accounts, "large")?;
        let total = |x: &[Duration; 3]| x.iter().map(Duration::as_secs_f64).sum::<f64>();
        println!(
            "large/small block time (propose + verify + store): {:.2}x (floor: 1x; the state size should not show)",
            total(&large) / total(&small).max(1e-9)
        );
        Ok(())
    };
    match run() {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("error: {e:#}");
            1
        }
    }
}
