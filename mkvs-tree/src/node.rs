//! Tree nodes: their hashes (oasis's MKVS hashing, so roots match oasis's test vectors) and
//! their stored form.
//!
//! - leaf = H(`0x00` ‖ u32le(len key) ‖ key ‖ u32le(len value) ‖ value)
//! - internal = H(`0x01` ‖ u16le(label bits) ‖ label ‖ H(leaf) ‖ H(left) ‖ H(right)), a missing
//!   pointer hashing as [`EMPTY`].
//!
//! Proof form: leaf `0x00` ‖ u16le(len key) ‖ key ‖ u32le(len value) ‖ value; internal `0x01` ‖
//! u16le(label bits) ‖ label ‖ leaf hash ‖ left hash ‖ right hash. The stored form adds, after
//! each child hash, the u64le version under which that child is stored (where to find it; not
//! part of any hash). Decoding treats the bytes as hostile: every length is checked and nothing
//! may follow the node.

use sha2::{Digest, Sha512_256};

/// A SHA-512/256 digest.
pub type Hash = [u8; 32];

/// The hash of nothing: a missing child, and the root of the empty tree.
pub const EMPTY: Hash = [
    0xc6, 0x72, 0xb8, 0xd1, 0xef, 0x56, 0xed, 0x28, 0xab, 0x87, 0xc3, 0x62, 0x2c, 0x51, 0x14, 0x06,
    0x9b, 0xdd, 0x3a, 0xd7, 0xb8, 0xf9, 0x73, 0x74, 0x98, 0xd0, 0xc0, 0x1e, 0xce, 0xf0, 0x96, 0x7a,
];

/// The longest key: bit positions are u16.
pub const MAX_KEY_LEN: usize = (u16::MAX as usize) / 8;

/// The largest value: lengths are u32, and a round's write log is far smaller in practice.
pub const MAX_VALUE_LEN: usize = 64 << 20;

/// A pointer to a node: its hash, and where it is stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Ptr {
    /// The node's hash ([`EMPTY`] for none).
    pub hash: Hash,
    /// Where the store keeps it: the version that stored it, and the store's own place within
    /// that version in the high bits (see `paratime_mkvs::store`); 0 for none, and in proofs.
    /// Opaque to the tree.
    pub version: u64,
}

impl Ptr {
    /// No node.
    pub const NONE: Self = Self {
        hash: EMPTY,
        version: 0,
    };

    /// Whether this points to no node.
    pub fn is_none(&self) -> bool {
        self.hash == EMPTY
    }
}

/// A tree node. Internal nodes point to their children by hash and version.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Node {
    /// A key and its value.
    Leaf {
        /// The full key.
        key: Vec<u8>,
        /// Its value (never absent: a deleted key has no leaf).
        value: Vec<u8>,
    },
    /// A branch: the label (compressed path bits from the parent's depth), the leaf of the key
    /// that ends exactly here, and the subtrees whose next bit is 0 (left) or 1 (right).
    Internal {
        /// Label bits, left-aligned in `ceil(label_bits / 8)` bytes, trailing bits zero.
        label: Vec<u8>,
        /// Number of label bits.
        label_bits: u16,
        /// The leaf of the key ending here, or none.
        leaf: Ptr,
        /// Subtree with next bit 0, or none.
        left: Ptr,
        /// Subtree with next bit 1, or none.
        right: Ptr,
    },
}

/// Bytes that are not a stored node.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// Shorter than its own lengths say.
    #[error("node truncated")]
    Truncated,
    /// Neither a leaf nor an internal node.
    #[error("unknown node kind {0}")]
    Kind(u8),
    /// Bytes after the node.
    #[error("{0} trailing bytes after the node")]
    Trailing(usize),
    /// A key or value over the limits.
    #[error("node field too large")]
    TooLarge,
    /// A label with bits set past its length.
    #[error("label has bits set past its length")]
    Label,
}

/// SHA-512/256 of `parts`, concatenated.
pub fn hash_parts(parts: &[&[u8]]) -> Hash {
    let mut h = Sha512_256::new();
    for p in parts {
        h.update(p);
    }
    h.finalize().into()
}

fn len_u32(n: usize) -> [u8; 4] {
    u32::try_from(n).unwrap_or(u32::MAX).to_le_bytes()
}

impl Node {
    /// The node's hash.
    pub fn hash(&self) -> Hash {
        match self {
            Self::Leaf { key, value } => hash_parts(&[
                &[0x00],
                &len_u32(key.len()),
                key,
                &len_u32(value.len()),
                value,
            ]),
            Self::Internal {
                label,
                label_bits,
                leaf,
                left,
                right,
            } => hash_parts(&[
                &[0x01],
                &label_bits.to_le_bytes(),
                label,
                &leaf.hash,
                &left.hash,
                &right.hash,
            ]),
        }
    }

    /// The stored form (child versions included).
    pub fn encode(&self) -> Vec<u8> {
        self.encode_as(true)
    }

    /// The length of [`Self::encode`]'s output, without encoding.
    pub fn stored_len(&self) -> usize {
        match self {
            Self::Leaf { key, value } => 7 + key.len() + value.len(),
            Self::Internal { label, .. } => 3 + label.len() + 3 * 40,
        }
    }

    /// The proof form (hashes only).
    pub fn encode_proof(&self) -> Vec<u8> {
        self.encode_as(false)
    }

    /// Appends [`Self::encode`]'s output to `b` (a page of nodes is written in one buffer).
    pub fn encode_into(&self, b: &mut Vec<u8>) {
        self.write_as(true, b);
    }

    fn encode_as(&self, stored: bool) -> Vec<u8> {
        let mut b = Vec::with_capacity(self.stored_len());
        self.write_as(stored, &mut b);
        b
    }

    fn write_as(&self, stored: bool, b: &mut Vec<u8>) {
        match self {
            Self::Leaf { key, value } => {
                b.push(0x00);
                b.extend_from_slice(&u16::try_from(key.len()).unwrap_or(u16::MAX).to_le_bytes());
                b.extend_from_slice(key);
                b.extend_from_slice(&len_u32(value.len()));
                b.extend_from_slice(value);
            }
            Self::Internal {
                label,
                label_bits,
                leaf,
                left,
                right,
            } => {
                b.push(0x01);
                b.extend_from_slice(&label_bits.to_le_bytes());
                b.extend_from_slice(label);
                for p in [leaf, left, right] {
                    b.extend_from_slice(&p.hash);
                    if stored {
                        b.extend_from_slice(&p.version.to_le_bytes());
                    }
                }
            }
        }
    }

    /// Parses the stored form; hostile bytes give an error, never a panic.
    pub fn decode(b: &[u8]) -> Result<Self, DecodeError> {
        Self::decode_as(b, true)
    }

    /// Parses the proof form (pointers get version 0).
    pub fn decode_proof(b: &[u8]) -> Result<Self, DecodeError> {
        Self::decode_as(b, false)
    }

    fn decode_as(b: &[u8], stored: bool) -> Result<Self, DecodeError> {
        let mut r = Reader(b);
        let node = match r.u8()? {
            0x00 => {
                let klen = usize::from(r.u16()?);
                if klen > MAX_KEY_LEN {
                    return Err(DecodeError::TooLarge);
                }
                let key = r.take(klen)?.to_vec();
                let vlen = usize::try_from(r.u32()?).map_err(|_| DecodeError::TooLarge)?;
                if vlen > MAX_VALUE_LEN {
                    return Err(DecodeError::TooLarge);
                }
                let value = r.take(vlen)?.to_vec();
                Self::Leaf { key, value }
            }
            0x01 => {
                let label_bits = r.u16()?;
                let label = r.take(usize::from(label_bits).div_ceil(8))?.to_vec();
                if crate::bits::extract(&label, 0, usize::from(label_bits)) != label {
                    return Err(DecodeError::Label);
                }
                let mut ptr = || -> Result<Ptr, DecodeError> {
                    let hash = r.hash()?;
                    let version = if stored { r.u64()? } else { 0 };
                    Ok(Ptr { hash, version })
                };
                let (leaf, left, right) = (ptr()?, ptr()?, ptr()?);
                Self::Internal {
                    label,
                    label_bits,
                    leaf,
                    left,
                    right,
                }
            }
            k => return Err(DecodeError::Kind(k)),
        };
        if !r.0.is_empty() {
            return Err(DecodeError::Trailing(r.0.len()));
        }
        Ok(node)
    }

    /// The child pointers of an internal node (leaf, left, right); `None` for a leaf.
    pub fn children(&self) -> Option<[Ptr; 3]> {
        match self {
            Self::Internal {
                leaf, left, right, ..
            } => Some([*leaf, *left, *right]),
            Self::Leaf { .. } => None,
        }
    }

    /// The same node with each child pointer passed through `f` (hashes unchanged).
    pub fn map_children(&self, f: impl Fn(Ptr) -> Ptr) -> Self {
        match self {
            Self::Internal {
                label,
                label_bits,
                leaf,
                left,
                right,
            } => Self::Internal {
                label: label.clone(),
                label_bits: *label_bits,
                leaf: f(*leaf),
                left: f(*left),
                right: f(*right),
            },
            leaf @ Self::Leaf { .. } => leaf.clone(),
        }
    }

    /// Bytes this node holds in memory behind an `Arc`, for the cache bound: the `Arc`'s
    /// allocation (counts and the node itself) and the key, value or label buffer, each as the
    /// allocator hands it out (a size word, 16-byte granules, 32 bytes at least).
    pub fn weight(&self) -> usize {
        fn alloc(n: usize) -> usize {
            if n == 0 {
                0
            } else {
                ((n + 8 + 15) & !15).max(32)
            }
        }
        alloc(16 + std::mem::size_of::<Self>())
            + match self {
                Self::Leaf { key, value } => alloc(key.capacity()) + alloc(value.capacity()),
                Self::Internal { label, .. } => alloc(label.capacity()),
            }
    }
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if self.0.len() < n {
            return Err(DecodeError::Truncated);
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Ok(a)
    }
    fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<u16, DecodeError> {
        let b = self.take(2)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }
    fn u32(&mut self) -> Result<u32, DecodeError> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn u64(&mut self) -> Result<u64, DecodeError> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    }
    fn hash(&mut self) -> Result<Hash, DecodeError> {
        let mut h = [0u8; 32];
        h.copy_from_slice(self.take(32)?);
        Ok(h)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_is_the_hash_of_nothing() {
        assert_eq!(hash_parts(&[]), EMPTY);
    }

    #[test]
    fn hashes_match_oasis_vectors() {
        // go/storage/mkvs/node/node_test.go
        let leaf = Node::Leaf {
            key: b"a golden key".to_vec(),
            value: b"value".to_vec(),
        };
        assert!(hex::encode(leaf.hash()).starts_with("5c05183d"));
        assert!(hex::encode(leaf.hash()).ends_with("fd88"));
        let internal = Node::Internal {
            label: b"abc".to_vec(),
            label_bits: 23,
            leaf: Ptr {
                hash: hash_parts(&[b"everyone stop here"]),
                version: 0,
            },
            left: Ptr {
                hash: hash_parts(&[b"everyone move to the left"]),
                version: 7,
            },
            right: Ptr {
                hash: hash_parts(&[b"everyone move to the right"]),
                version: 0,
            },
        };
        let h = hex::encode(internal.hash());
        assert!(h.starts_with("75c37c67") && h.ends_with("efced"), "{h}");
    }

    #[test]
    fn stored_form_round_trips_and_hostile_bytes_are_refused() {
        let leaf = Node::Leaf {
            key: b"k".to_vec(),
            value: vec![7; 300],
        };
        let internal = Node::Internal {
            label: vec![0b1010_0000],
            label_bits: 3,
            leaf: Ptr::NONE,
            left: Ptr {
                hash: [1; 32],
                version: 3,
            },
            right: Ptr {
                hash: [2; 32],
                version: u64::MAX,
            },
        };
        for n in [&leaf, &internal] {
            assert_eq!(&Node::decode(&n.encode()).expect("decodes"), n);
            assert_eq!(n.stored_len(), n.encode().len());
            let p = Node::decode_proof(&n.encode_proof()).expect("decodes");
            assert_eq!(p.hash(), n.hash(), "the proof form keeps the hash");
        }
        let mut long = leaf.encode();
        long.push(0);
        assert_eq!(Node::decode(&long), Err(DecodeError::Trailing(1)));
        let e = internal.encode();
        for cut in 0..e.len() {
            assert!(Node::decode(&e[..cut]).is_err(), "cut at {cut}");
        }
        assert_eq!(Node::decode(&[9]), Err(DecodeError::Kind(9)));
        // A value length that lies about the bytes that follow.
        let mut lying = vec![0x00, 1, 0, b'k'];
        lying.extend_from_slice(&u32::MAX.to_le_bytes());
        assert!(Node::decode(&lying).is_err());
        // Label bits set past the label's length.
        let mut bad = internal.encode();
        bad[3] = 0b1011_0000;
        assert_eq!(Node::decode(&bad), Err(DecodeError::Label));
    }
}
