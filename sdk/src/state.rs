//! State commitments shared by the runtime and the host.
//!
//! The sandbox is stateless, so the runtime cannot hash the whole state. Instead the state root
//! chains write logs: `next = H("paratime/state" ‖ prev ‖ CBOR(sorted write log))`. Both sides
//! compute it; the host checks the runtime's value after applying the write log. Two honest
//! executions of the same batch on the same state produce the same root, which is what committee
//! votes compare. It is a history commitment, not a Merkle structure: it supports no inclusion
//! proofs (clients trust the node they query).

use crate::protocol::{Hash, TxResult, WriteLogEntry};
use serde_bytes::ByteBuf;
use sha2::{Digest, Sha512_256};

/// The state root of an empty state.
pub const EMPTY_STATE_ROOT: Hash = [0u8; 32];

/// SHA-512/256 of `data`.
pub fn hash(data: &[u8]) -> Hash {
    Sha512_256::digest(data).into()
}

fn cbor<T: serde::Serialize>(v: &T) -> Vec<u8> {
    let mut out = Vec::new();
    // Serializing plain data structures into a Vec cannot fail.
    ciborium::into_writer(v, &mut out).expect("CBOR encoding of in-memory data cannot fail");
    out
}

/// The state root after applying `write_log` (sorted by key, one entry per key) on `prev`.
pub fn next_state_root(prev: &Hash, write_log: &[WriteLogEntry]) -> Hash {
    if write_log.is_empty() {
        return *prev;
    }
    let mut h = Sha512_256::new();
    h.update(b"paratime/state");
    h.update(prev);
    h.update(cbor(&write_log));
    h.finalize().into()
}

/// Commitment to a batch's inputs and outputs.
pub fn io_root(round: u64, inputs: &[ByteBuf], results: &[TxResult]) -> Hash {
    let mut h = Sha512_256::new();
    h.update(b"paratime/io");
    h.update(round.to_be_bytes());
    h.update(cbor(&inputs));
    h.update(cbor(&results));
    h.finalize().into()
}

/// Converts a byte buffer into a hash, if it is 32 bytes long.
pub fn to_hash(b: &[u8]) -> Option<Hash> {
    b.try_into().ok()
}
