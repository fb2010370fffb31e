//! Property tests of the state machine's invariants, without any I/O.

use ed25519_dalek::SigningKey;
use paratime_state::address::Address;
use paratime_state::block::execute;
use paratime_state::crypto::{self, PublicKey, Signed};
use paratime_state::genesis::{
    Genesis, GenesisValidator, RegistryGenesis, StakingGenesis, Thresholds,
};
use paratime_state::state::{Allow, Escrow, Fee, State, Transaction, Transfer, Withdraw};
use proptest::prelude::*;

const ACCOUNTS: u8 = 4;

fn key(i: u8) -> SigningKey {
    SigningKey::from_bytes(&[i + 1; 32])
}

fn addr(i: u8) -> Address {
    Address::from_public_key(&PublicKey::of(&key(i)))
}

fn genesis(balances: &[u64], escrows: &[u64]) -> Genesis {
    Genesis {
        chain_id: "proptest".into(),
        genesis_time: "2026-01-01T00:00:00Z".into(),
        epoch_interval: 3,
        block_interval_ms: 100,
        validators: vec![GenesisValidator {
            consensus_id: PublicKey([9; 32]),
            entity_id: PublicKey([9; 32]),
        }],
        staking: StakingGenesis {
            thresholds: Thresholds::default(),
            debonding_interval: 2,
            accounts: (0..ACCOUNTS)
                .map(|i| (addr(i), balances[usize::from(i)]))
                .collect(),
            escrow: (0..ACCOUNTS)
                .map(|i| (addr(i), escrows[usize::from(i)]))
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

/// A transaction a test generates: signer, kind, counterparty, amount, fee, nonce offset.
#[derive(Clone, Debug)]
struct Op {
    signer: u8,
    kind: u8,
    to: u8,
    amount: u64,
    fee: u64,
    nonce_skew: u8,
}

fn op() -> impl Strategy<Value = Op> {
    (
        0..ACCOUNTS,
        0u8..6,
        0..ACCOUNTS,
        prop_oneof![0u64..2_000, Just(u64::MAX), Just(u64::MAX / 2)],
        prop_oneof![Just(0u64), 0u64..50],
        prop_oneof![8 => Just(0u8), 1 => 1u8..3],
    )
        .prop_map(|(signer, kind, to, amount, fee, nonce_skew)| Op {
            signer,
            kind,
            to,
            amount,
            fee,
            nonce_skew,
        })
}

fn sign(state: &State, op: &Op) -> Signed {
    let (method, body) = match op.kind {
        0 => (
            "staking.Transfer",
            ciborium::Value::serialized(&Transfer {
                to: addr(op.to),
                amount: op.amount,
            }),
        ),
        1 => (
            "staking.AddEscrow",
            ciborium::Value::serialized(&Escrow {
                account: addr(op.to),
                amount: op.amount,
            }),
        ),
        2 => (
            "staking.ReclaimEscrow",
            ciborium::Value::serialized(&Escrow {
                account: addr(op.to),
                amount: op.amount,
            }),
        ),
        3 => (
            "staking.Allow",
            ciborium::Value::serialized(&Allow {
                beneficiary: addr(op.to),
                negative: op.amount % 2 == 1,
                amount_change: op.amount,
            }),
        ),
        4 => (
            "staking.Withdraw",
            ciborium::Value::serialized(&Withdraw {
                from: addr(op.to),
                amount: op.amount,
            }),
        ),
        _ => ("staking.NoSuchMethod", ciborium::Value::serialized(&0u8)),
    };
    let nonce = state
        .account(&addr(op.signer))
        .nonce
        .wrapping_add(u64::from(op.nonce_skew));
    let tx = Transaction {
        nonce,
        fee: Fee {
            amount: op.fee,
            gas: 0,
        },
        method: method.into(),
        body: body.expect("body"),
    };
    let ctx = crypto::context(crypto::CONTEXT_TX, Some(&state.chain_context));
    Signed::sign(&key(op.signer), &ctx, &tx)
}

/// Everything that counts towards the total supply: balances, escrow and debonding amounts.
fn supply(s: &State) -> u128 {
    s.accounts
        .values()
        .map(|a| {
            u128::from(a.balance)
                + u128::from(a.escrow)
                + a.debonding
                    .iter()
                    .map(|d| u128::from(d.amount))
                    .sum::<u128>()
        })
        .sum()
}

fn amounts() -> impl Strategy<Value = Vec<u64>> {
    prop::collection::vec(
        prop_oneof![0u64..5_000, Just(u64::MAX / 8)],
        usize::from(ACCOUNTS),
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// Transfers, escrow, reclaims and debonding over epoch boundaries never create or destroy
    /// tokens: the supply only falls by the fees paid. Nothing panics, even with amounts near
    /// u64::MAX (a debug build would panic on overflow).
    #[test]
    fn supply_is_conserved(
        balances in amounts(),
        escrows in amounts(),
        blocks in prop::collection::vec(prop::collection::vec(op(), 0..6), 1..12),
    ) {
        let g = genesis(&balances, &escrows);
        let mut s = State::from_genesis(&g);
        let start = supply(&s);
        let mut fees: u128 = 0;
        for ops in blocks {
            let height = s.height.next();
            s.begin_block(height);
            for op in &ops {
                let tx = sign(&s, op);
                let before = s.account(&addr(op.signer));
                let _ = s.apply_tx(&tx);
                let after = s.account(&addr(op.signer));
                if after.nonce != before.nonce {
                    fees += u128::from(op.fee);
                }
            }
            s.height = height;
            prop_assert_eq!(supply(&s) + fees, start);
        }
    }

    /// A transaction whose body fails changes exactly the signer's nonce (+1) and balance (−fee).
    #[test]
    fn a_failed_transaction_changes_only_nonce_and_fee(
        balances in amounts(),
        escrows in amounts(),
        warmup in prop::collection::vec(op(), 0..8),
        probe in op(),
    ) {
        let g = genesis(&balances, &escrows);
        let mut s = State::from_genesis(&g);
        s.begin_block(paratime_state::Height(1));
        for op in &warmup {
            let tx = sign(&s, op);
            let _ = s.apply_tx(&tx);
        }
        let before = s.clone();
        let tx = sign(&s, &probe);
        let result = s.apply_tx(&tx);
        let a = addr(probe.signer);
        let (b, n) = (before.account(&a), s.account(&a));
        if result.is_err() {
            if n.nonce == b.nonce {
                // Refused before the nonce and fee were taken: nothing changed at all.
                prop_assert_eq!(&s, &before);
            } else {
                prop_assert_eq!(n.nonce, b.nonce + 1);
                prop_assert_eq!(n.balance, b.balance - probe.fee);
                let mut expected = before.clone();
                let acct = expected.accounts.entry(a).or_default();
                acct.nonce += 1;
                acct.balance -= probe.fee;
                prop_assert_eq!(&s, &expected);
            }
        }
    }

    /// The state root depends on what the state holds, not on the order it was built in:
    /// independent transfers applied in any order give the same root.
    #[test]
    fn the_state_root_is_independent_of_insertion_order(
        amounts in prop::collection::vec(1u64..100, usize::from(ACCOUNTS)),
        order in Just((0..ACCOUNTS).collect::<Vec<_>>()).prop_shuffle(),
    ) {
        let g = genesis(&[1_000; ACCOUNTS as usize], &[0; ACCOUNTS as usize]);
        let base = State::from_genesis(&g);
        let ops: Vec<Op> = (0..ACCOUNTS)
            .map(|i| Op {
                signer: i,
                kind: 0,
                to: (i + 1) % ACCOUNTS,
                amount: amounts[usize::from(i)],
                fee: 1,
                nonce_skew: 0,
            })
            .collect();
        let txs: Vec<Signed> = ops.iter().map(|o| sign(&base, o)).collect();
        let mut a = base.clone();
        let outcomes = execute(&mut a, paratime_state::Height(1), &txs);
        prop_assert!(outcomes.iter().all(|o| o.error.is_none()));
        let shuffled: Vec<Signed> = order.iter().map(|&i| txs[usize::from(i)].clone()).collect();
        let mut b = base.clone();
        execute(&mut b, paratime_state::Height(1), &shuffled);
        prop_assert_eq!(a.root(), b.root());

        // And the tree built whole from the entries, in another order, has the root maintained
        // block by block.
        let mut items: Vec<(Vec<u8>, Vec<u8>)> = paratime_state::tree::entries(&a)
            .into_iter()
            .filter_map(|(k, v)| v.map(|v| (k, v)))
            .rev()
            .collect();
        let n = items.len();
        items.rotate_left(usize::from(order[0]) % n);
        let rebuilt = paratime_state::tree::from_entries(&a.genesis, items, 7).expect("entries");
        prop_assert_eq!(rebuilt.root(), a.root());
        prop_assert_eq!(&rebuilt.accounts, &a.accounts);
    }
}

#[test]
fn a_genesis_with_a_threshold_typo_is_refused() {
    let g = genesis(&[1; 4], &[1; 4]);
    let mut json: serde_json::Value = serde_json::to_value(&g).expect("json");
    json["staking"]["thresholds"] = serde_json::json!({"node_compute": 100});
    let err = Genesis::from_json(&serde_json::to_vec(&json).expect("bytes"))
        .expect_err("typo must be refused")
        .to_string();
    assert!(err.contains("node_compute"), "{err}");
}

#[test]
fn a_genesis_whose_supply_overflows_is_refused() {
    let g = genesis(&[u64::MAX, 1, 0, 0], &[0; 4]);
    let err = g.check().expect_err("overflow").to_string();
    assert!(err.contains("total supply"), "{err}");
}

#[test]
fn genesis_validators_get_power_from_their_entitys_escrow() {
    let mut g = genesis(&[0; 4], &[300, 0, 0, 0]);
    let e = PublicKey::of(&key(0));
    g.validators = (0..3u8)
        .map(|i| GenesisValidator {
            consensus_id: PublicKey([20 + i; 32]),
            entity_id: e,
        })
        .collect();
    let s = State::from_genesis(&g);
    assert_eq!(s.validators.validators.len(), 3);
    assert!(s
        .validators
        .validators
        .iter()
        .all(|v| v.voting_power == 100));
    assert_eq!(s.validators.quorum(), 201);
}
