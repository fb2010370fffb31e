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

/// What one CBOR data item may cost in memory once decoded, besides its content: a `Vec`
/// element of the types peers' messages decode into (24–48 bytes: `ByteBuf`, a write log
/// entry, `ciborium::Value`), doubled by the growth of the `Vec` it lands in, or an
/// allocation's overhead. A one-byte item (an empty byte string) in a list is thus 64× its
/// size on the wire.
pub const ITEM_COST: usize = 64;

/// An upper bound of the memory `bytes` take once decoded: [`ITEM_COST`] per CBOR data item
/// plus the length of every byte and text string. Reads the items' headers only (no
/// allocation, one pass). Fails on bytes that are not CBOR items or that end inside one.
pub fn decoded_size_bound(bytes: &[u8]) -> Result<usize, CborError> {
    use ciborium_ll::Header;
    let mut pos = 0usize;
    let mut total = 0usize;
    while pos < bytes.len() {
        let mut d = ciborium_ll::Decoder::from(&bytes[pos..]);
        let header = d
            .pull()
            .map_err(|_| CborError(format!("no CBOR item at byte {pos}")))?;
        pos += d.offset();
        let content = match header {
            Header::Bytes(Some(n)) | Header::Text(Some(n)) => n,
            _ => 0,
        };
        if content > bytes.len() - pos {
            return Err(CborError(format!(
                "a string of {content} bytes at byte {pos} runs past the end ({} bytes)",
                bytes.len()
            )));
        }
        pos += content;
        total = total.saturating_add(ITEM_COST + content);
    }
    Ok(total)
}

/// Decodes CBOR that came from outside (a peer, a client) only if it cannot take more than
/// `limit` bytes of memory decoded ([`decoded_size_bound`]): a message of many tiny items
/// would otherwise decode into many times its own size.
pub fn from_cbor_within<T: serde::de::DeserializeOwned>(
    bytes: &[u8],
    limit: usize,
) -> Result<T, CborError> {
    from_cbor_weighed(bytes, limit).map(|(v, _)| v)
}

/// [`from_cbor_within`], with the bound of the decoded value's memory (for a caller that
/// keeps it within a budget).
pub fn from_cbor_weighed<T: serde::de::DeserializeOwned>(
    bytes: &[u8],
    limit: usize,
) -> Result<(T, usize), CborError> {
    let bound = decoded_size_bound(bytes)?;
    if bound > limit {
        return Err(CborError(format!(
            "{} bytes that could take {bound} bytes decoded, more than the {limit} allowed",
            bytes.len()
        )));
    }
    Ok((from_cbor(bytes)?, bound))
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
    fn many_tiny_items_are_refused_before_they_are_decoded() {
        // 1 MiB of empty byte strings: 1M items, 24+ MiB as `Vec<ByteBuf>` (up to twice that
        // while the Vec grows); the bound is computed from the headers alone.
        let many = vec![serde_bytes::ByteBuf::new(); 1 << 20];
        let bytes = canonical_cbor(&many);
        assert!(bytes.len() < (1 << 20) + 16, "{}", bytes.len());
        let bound = decoded_size_bound(&bytes).expect("CBOR");
        assert!(bound >= (1 << 20) * 48, "{bound}");
        let e =
            from_cbor_within::<Vec<serde_bytes::ByteBuf>>(&bytes, 32 << 20).expect_err("refused");
        assert!(
            e.0.contains("more than the 33554432 allowed"),
            "the error names the limit: {e}"
        );
        // The same bytes in few items (one large string) pass, and decode.
        let one = canonical_cbor(&vec![serde_bytes::ByteBuf::from(vec![7u8; 4 << 20])]);
        let back: Vec<serde_bytes::ByteBuf> = from_cbor_within(&one, 32 << 20).expect("decodes");
        assert_eq!(back[0].len(), 4 << 20);
    }

    #[test]
    fn a_string_that_claims_more_bytes_than_follow_is_refused() {
        // A byte string header claiming 2^32 bytes, followed by three.
        let lying = [0x5a, 0xff, 0xff, 0xff, 0xff, 1, 2, 3];
        let e = decoded_size_bound(&lying).expect_err("refused");
        assert!(e.0.contains("runs past the end"), "{e}");
        assert!(
            decoded_size_bound(&[0x1c]).is_err(),
            "a reserved additional value"
        );
        assert_eq!(decoded_size_bound(&[]).expect("empty"), 0);
        // An array that claims 2^32 - 1 items and holds three: the bound counts what is there,
        // and decoding fails at the end without reserving room for the claim.
        let claims = [0x9a, 0xff, 0xff, 0xff, 0xff, 0x40, 0x40, 0x40];
        assert_eq!(decoded_size_bound(&claims).expect("headers"), 4 * ITEM_COST);
        assert!(from_cbor_within::<Vec<serde_bytes::ByteBuf>>(&claims, 1 << 20).is_err());
        // Nesting deeper than the decoder's limit is an error, not a stack overflow.
        let deep = [vec![0x81u8; 100_000], vec![0x40]].concat();
        assert!(from_cbor_within::<ciborium::Value>(&deep, 32 << 20).is_err());
    }

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
