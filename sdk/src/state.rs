//! State commitments shared by the runtime and the host.
//!
//! The sandbox is stateless: the host keeps the ParaTime's state as an authenticated tree
//! (oasis's MKVS hashing) and computes each round's state root from the write log the runtime
//! returns. The runtime commits only to its batch's inputs and outputs ([`io_root`]); two honest
//! executions of the same batch on the same state give the same write log, hence the same tree
//! root, which is what committee votes compare.

use crate::protocol::{Hash, TxResult};
use serde_bytes::ByteBuf;
use sha2::{Digest, Sha512_256};

/// The state root of an empty state: the root of the empty tree (SHA-512/256 of nothing).
pub const EMPTY_STATE_ROOT: Hash = [
    0xc6, 0x72, 0xb8, 0xd1, 0xef, 0x56, 0xed, 0x28, 0xab, 0x87, 0xc3, 0x62, 0x2c, 0x51, 0x14, 0x06,
    0x9b, 0xdd, 0x3a, 0xd7, 0xb8, 0xf9, 0x73, 0x74, 0x98, 0xd0, 0xc0, 0x1e, 0xce, 0xf0, 0x96, 0x7a,
];

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
