//! Every message the node decodes from a peer, chosen by the first input byte (the rest is the
//! message):
//!
//! | byte % 8 | type | decoder, as in the node |
//! |---|---|---|
//! | 0 | consensus `Proposed` block (reassembled from the BFT engine's proposal parts) | ciborium (`encoding::from_cbor`) |
//! | 1 | `Signed` transaction (transactions gossip topic) | ciborium |
//! | 2 | `RuntimeTxs` (a runtime's transactions topic) | ciborium |
//! | 3 | `CommitteeMessage` (a runtime's committee topic) | ciborium |
//! | 4 | `SyncRequest` (executed-batch and state sync, served) | cbor4ii (libp2p's request-response CBOR codec) |
//! | 5 | `SyncReply` (executed batches, pruned rounds, state nodes; received) | cbor4ii |
//! | 6 | `Transaction` (inside `Signed`; the mempool reads its nonce before verifying) | ciborium |
//! | 7 | `Proposal` (inside a committee `Signed`) | ciborium |
//!
//! A decoded value is then used the way the node uses it first: hashed (canonical CBOR), its
//! signature checked and decoded, an executed batch verified against a header built to match it
//! (which must then be accepted).
#![no_main]

use libfuzzer_sys::fuzz_target;
use paratime_node::consensus::block::Proposed;
use paratime_node::consensus::crypto::{context, Signed, CONTEXT_TX};
use paratime_node::consensus::roothash::{BlockHeader, ExecutedBatch, Proposal};
use paratime_node::consensus::state::Transaction;
use paratime_node::encoding::{from_cbor, hash_of};
use paratime_node::p2p::{CommitteeMessage, RuntimeTxs, SyncReply, SyncRequest};

const CHAIN: &str = "fuzz";

/// libp2p's request-response CBOR codec decodes with `cbor4ii::serde::from_slice`.
fn from_cbor4ii<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Option<T> {
    cbor4ii::serde::from_slice(bytes).ok()
}

fn block(b: &Proposed) {
    let _ = hash_of(&b.txs);
    let _ = b.hash();
    for tx in &b.txs {
        signed_tx(tx);
    }
}

fn signed_tx(s: &Signed) {
    let _ = hash_of(s);
    let _ = from_cbor::<Transaction>(&s.untrusted_raw_value).map(|t| hash_of(&t));
    let _ = s.open::<Transaction>(&context(CONTEXT_TX, Some(CHAIN)));
}

/// The state tree's root after a peer's write log on the empty state (hostile keys and values
/// go through the tree as a follower applies them); `None` when the tree refuses an entry.
fn tree_root(log: &[paratime_sdk::protocol::WriteLogEntry]) -> Option<[u8; 32]> {
    let src = paratime_mkvs::tree::MemSource::default();
    let mut c = paratime_mkvs::Changes::new(&src, paratime_mkvs::node::Ptr::NONE, 1);
    for e in log {
        match &e.value {
            Some(v) => c.insert(&e.key, v).ok()?,
            None => c.remove(&e.key).ok()?,
        }
    }
    let root = c.root();
    let nodes = paratime_mkvs::tree::MemSource(c.created().clone());
    for e in log {
        let got = paratime_mkvs::tree::get(&nodes, &root, &e.key);
        assert!(got.is_ok(), "a key just written cannot be read back");
    }
    Some(root.hash)
}

fn executed(b: &ExecutedBatch) {
    let _ = hash_of(b);
    let Some(root) = tree_root(&b.write_log) else {
        return;
    };
    let mut b = b.clone();
    b.state_root = root;
    let b = &b;
    let mut header = BlockHeader::genesis(b.runtime);
    header.round = b.round;
    header.state_root = root;
    header.io_root = paratime_sdk::state::io_root(b.round.0, &b.inputs, &b.results);
    let result = b.verify(&header, &b.previous_state_root);
    let sorted = b.write_log.windows(2).all(|w| w[0].key < w[1].key);
    if sorted && b.inputs.len() == b.results.len() {
        assert!(result.is_ok(), "a batch matching its header is refused: {result:?}");
    } else {
        assert!(result.is_err(), "an unsorted or mismatched batch is accepted");
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&which, msg)) = data.split_first() else {
        return;
    };
    match which % 8 {
        0 => {
            if let Ok(b) = from_cbor::<Proposed>(msg) {
                block(&b);
            }
        }
        1 => {
            if let Ok(s) = from_cbor::<Signed>(msg) {
                signed_tx(&s);
            }
        }
        2 => {
            if let Ok(t) = from_cbor::<RuntimeTxs>(msg) {
                let _ = hash_of(&t);
            }
        }
        3 => match from_cbor::<CommitteeMessage>(msg) {
            Ok(CommitteeMessage::Proposal(s)) => {
                let _ = hash_of(&s);
                let _ = from_cbor::<Proposal>(&s.untrusted_raw_value);
            }
            Ok(CommitteeMessage::Executed(b)) => executed(&b),
            Err(_) => {}
        },
        4 => {
            if let Some(r) = from_cbor4ii::<SyncRequest>(msg) {
                let _ = hash_of(&r);
            }
        }
        5 => match from_cbor4ii::<SyncReply>(msg) {
            Some(SyncReply::Round(Some(b))) => executed(&b),
            Some(SyncReply::StateNodes { nodes, .. }) => {
                // What a state sync does with each node before deciding whether it is wanted.
                for n in &nodes {
                    if let Ok(node) = paratime_mkvs::Node::decode(n) {
                        let _ = node.hash();
                    }
                }
            }
            Some(SyncReply::Round(None) | SyncReply::Pruned { .. }) | None => {}
        },
        6 => {
            if let Ok(t) = from_cbor::<Transaction>(msg) {
                let _ = hash_of(&t);
            }
        }
        _ => {
            if let Ok(p) = from_cbor::<Proposal>(msg) {
                let _ = hash_of(&p);
            }
        }
    }
});
