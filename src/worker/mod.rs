//! Node workers: registration, and the runtime worker (transaction pool, executor committee
//! rounds, finalized runtime state, client transactions and queries).

pub mod compute;
pub mod registration;

use crate::consensus::address::Address;
use crate::consensus::crypto::{self, PublicKey, Signed};
use crate::consensus::engine::View;
use crate::consensus::state::{Fee, Transaction};
use ed25519_dalek::SigningKey;
use serde::Serialize;
use std::sync::{Arc, Mutex};

#[derive(Debug, Default)]
struct NonceInner {
    next: u64,
    chain: u64,
    progress_at: u64,
}

/// Nonces of the node key's consensus transactions, shared by every worker that signs with it
/// (registration and executor commitments), so that two transactions never reuse a nonce.
/// When the chain's nonce stops advancing for 10 blocks while transactions are outstanding
/// (one was lost), it starts again from the chain's nonce.
#[derive(Clone, Debug, Default)]
pub struct Nonces(Arc<Mutex<NonceInner>>);

impl Nonces {
    /// The nonce for the next transaction of `addr`.
    pub fn next(&self, view: &View, addr: &Address) -> u64 {
        let chain = view.state.account(addr).nonce;
        let height = view.state.height;
        let mut g = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if chain != g.chain {
            g.chain = chain;
            g.progress_at = height;
        }
        if g.next < chain || (g.next > chain && height > g.progress_at + 10) {
            g.next = chain;
            g.progress_at = height;
        }
        let n = g.next;
        g.next += 1;
        n
    }

    /// Signs `method(body)` as a consensus transaction of `key` with the next nonce.
    pub fn sign<T: Serialize>(
        &self,
        key: &SigningKey,
        view: &View,
        method: &str,
        body: &T,
    ) -> Signed {
        let addr = Address::from_public_key(&PublicKey::of(key));
        let t = Transaction {
            nonce: self.next(view, &addr),
            fee: Fee::default(),
            method: method.into(),
            body: ciborium::Value::serialized(body).expect("transaction bodies map to CBOR"),
        };
        Signed::sign(
            key,
            &crypto::context(crypto::CONTEXT_TX, Some(&view.state.chain_context)),
            &t,
        )
    }
}
