//! Canonical CBOR for everything hashed or signed (RFC 7049 canonical: map keys sorted by their
//! encoded length, then bytewise), and SHA-512/256 over it.

use serde::Serialize;
use sha2::{Digest, Sha512_256};

/// A 32-byte SHA-512/256 hash.
pub type Hash = [u8; 32];

fn canonicalize(v: &mut ciborium::Value) {
    match v {
        ciborium::Value::Map(entries) => {
            for (k, val) in entries.iter_mut() {
                canonicalize(k);
                canonicalize(val);
            }
            let key_bytes = |k: &ciborium::Value| {
                let mut b = Vec::new();
                ciborium::into_writer(k, &mut b).expect("CBOR encoding into memory cannot fail");
                b
            };
            entries.sort_by(|(a, _), (b, _)| {
                let (a, b) = (key_bytes(a), key_bytes(b));
                a.len().cmp(&b.len()).then(a.cmp(&b))
            });
        }
        ciborium::Value::Array(items) => items.iter_mut().for_each(canonicalize),
        ciborium::Value::Tag(_, inner) => canonicalize(inner),
        _ => {}
    }
}

/// Canonical CBOR encoding of `v`.
pub fn canonical_cbor<T: Serialize + ?Sized>(v: &T) -> Vec<u8> {
    let mut value = ciborium::Value::serialized(v).expect("in-memory data maps to CBOR");
    canonicalize(&mut value);
    let mut bytes = Vec::new();
    ciborium::into_writer(&value, &mut bytes).expect("CBOR encoding into memory cannot fail");
    bytes
}

/// SHA-512/256 of raw bytes.
pub fn hash(data: &[u8]) -> Hash {
    Sha512_256::digest(data).into()
}

/// SHA-512/256 of the canonical CBOR of `v`.
pub fn hash_of<T: Serialize + ?Sized>(v: &T) -> Hash {
    hash(&canonical_cbor(v))
}

/// Decodes CBOR.
pub fn from_cbor<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, CborError> {
    ciborium::from_reader(bytes).map_err(|e| CborError(e.to_string()))
}

/// Bytes that do not decode as the expected CBOR.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("malformed CBOR: {0}")]
pub struct CborError(pub String);

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn map_order_does_not_change_the_encoding() {
        let mut a = HashMap::new();
        let mut b = HashMap::new();
        for i in 0..50u32 {
            a.insert(format!("k{i}"), i);
        }
        for i in (0..50u32).rev() {
            b.insert(format!("k{i}"), i);
        }
        assert_eq!(canonical_cbor(&a), canonical_cbor(&b));
    }
}
