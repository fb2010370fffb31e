//! Proofs that a key has a value (or none) in the tree with a given root: the nodes on the path
//! from the root to the key, in their stored form. Each node is bound to its parent by hash, so a
//! verifier needs only the root it trusts (a finalized round's state root).

use crate::bits::{bit, common_prefix};
use crate::node::{Hash, Node, Ptr, EMPTY};
use crate::tree::{NodeSource, TreeError};

/// The most nodes a proof may hold: one per key bit, and the leaf.
pub const MAX_PROOF_NODES: usize = crate::node::MAX_KEY_LEN * 8 + 1;

/// The path to a key.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Proof {
    /// Stored forms of the nodes from the root down.
    pub nodes: Vec<Vec<u8>>,
}

/// Why a proof is refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ProofError {
    /// A node that does not decode.
    #[error("proof node {index}: {source}")]
    Node {
        /// Its position.
        index: usize,
        /// Why.
        source: crate::node::DecodeError,
    },
    /// A node whose hash is not what its parent (or the root) says.
    #[error("proof node {0} does not hash to the pointer above it")]
    Mismatch(usize),
    /// The path stops before it answers.
    #[error("proof ends before it reaches the key")]
    Short,
    /// Nodes after the answer.
    #[error("proof has {0} unused nodes")]
    Unused(usize),
    /// More nodes than any key can need.
    #[error("proof has {0} nodes, more than {MAX_PROOF_NODES}")]
    TooLong(usize),
    /// The encoded proof is malformed.
    #[error("proof encoding: {0}")]
    Encoding(&'static str),
}

impl Proof {
    /// The proof for `key` in the tree at `root`.
    pub fn build<S: NodeSource>(src: &S, root: &Ptr, key: &[u8]) -> Result<Self, TreeError> {
        Ok(Self {
            nodes: crate::tree::path(src, root, key)?
                .iter()
                .map(|n| n.encode_proof())
                .collect(),
        })
    }

    /// Checks the proof against `root` and returns the value of `key` it proves (`None`: the key
    /// is absent).
    pub fn verify(&self, root: &Hash, key: &[u8]) -> Result<Option<Vec<u8>>, ProofError> {
        if self.nodes.len() > MAX_PROOF_NODES {
            return Err(ProofError::TooLong(self.nodes.len()));
        }
        let kbits = key.len() * 8;
        let (mut expected, mut depth) = (*root, 0usize);
        let mut nodes = self.nodes.iter().enumerate();
        let answer = loop {
            if expected == EMPTY {
                break None;
            }
            let (index, bytes) = nodes.next().ok_or(ProofError::Short)?;
            let node =
                Node::decode_proof(bytes).map_err(|source| ProofError::Node { index, source })?;
            if node.hash() != expected {
                return Err(ProofError::Mismatch(index));
            }
            match node {
                Node::Leaf { key: k, value } => break (k == key).then_some(value),
                Node::Internal {
                    label,
                    label_bits,
                    leaf,
                    left,
                    right,
                } => {
                    let lb = usize::from(label_bits);
                    if kbits < depth + lb || common_prefix(key, depth, &label, lb) < lb {
                        break None;
                    }
                    depth += lb;
                    expected = if kbits == depth {
                        leaf.hash
                    } else if bit(key, depth) {
                        right.hash
                    } else {
                        left.hash
                    };
                }
            }
        };
        let unused = nodes.count();
        if unused > 0 {
            return Err(ProofError::Unused(unused));
        }
        Ok(answer)
    }

    /// `u32le(count)` then each node as `u32le(len) ‖ bytes`.
    pub fn encode(&self) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend_from_slice(
            &u32::try_from(self.nodes.len())
                .unwrap_or(u32::MAX)
                .to_le_bytes(),
        );
        for n in &self.nodes {
            b.extend_from_slice(&u32::try_from(n.len()).unwrap_or(u32::MAX).to_le_bytes());
            b.extend_from_slice(n);
        }
        b
    }

    /// Parses [`Self::encode`]'s form; counts and lengths are checked against the bytes present.
    pub fn decode(mut b: &[u8]) -> Result<Self, ProofError> {
        fn u32le(b: &mut &[u8]) -> Result<usize, ProofError> {
            if b.len() < 4 {
                return Err(ProofError::Encoding("truncated length"));
            }
            let (n, rest) = b.split_at(4);
            *b = rest;
            usize::try_from(u32::from_le_bytes([n[0], n[1], n[2], n[3]]))
                .map_err(|_| ProofError::Encoding("length out of range"))
        }
        let count = u32le(&mut b)?;
        if count > MAX_PROOF_NODES {
            return Err(ProofError::TooLong(count));
        }
        // Each node takes at least 4 bytes here: a count larger than that is a lie.
        if count > b.len() / 4 {
            return Err(ProofError::Encoding(
                "more nodes announced than bytes present",
            ));
        }
        let mut nodes = Vec::with_capacity(count);
        for _ in 0..count {
            let len = u32le(&mut b)?;
            if len > b.len() {
                return Err(ProofError::Encoding("node longer than the bytes present"));
            }
            let (n, rest) = b.split_at(len);
            nodes.push(n.to_vec());
            b = rest;
        }
        if !b.is_empty() {
            return Err(ProofError::Encoding("trailing bytes"));
        }
        Ok(Self { nodes })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tree::{Changes, MemSource};

    fn tree() -> (MemSource, Ptr) {
        let src = MemSource::default();
        let mut c = Changes::new(&src, Ptr::NONE, 1);
        for i in 0..200u32 {
            c.insert(format!("key {i}").as_bytes(), &i.to_le_bytes())
                .expect("insert");
        }
        c.insert(b"key", b"a prefix of the others").expect("insert");
        let root = c.root();
        (MemSource(c.created().clone()), root)
    }

    #[test]
    fn proofs_of_presence_and_absence_verify_against_the_root() {
        let (src, root) = tree();
        for i in [0u32, 7, 199] {
            let key = format!("key {i}");
            let p = Proof::build(&src, &root, key.as_bytes()).expect("proof");
            let p = Proof::decode(&p.encode()).expect("round trip");
            assert_eq!(
                p.verify(&root.hash, key.as_bytes()),
                Ok(Some(i.to_le_bytes().to_vec()))
            );
        }
        let p = Proof::build(&src, &root, b"key").expect("proof");
        assert_eq!(
            p.verify(&root.hash, b"key"),
            Ok(Some(b"a prefix of the others".to_vec()))
        );
        for absent in [&b"key 200"[..], b"ke", b"zzz", b"", b"key 1\x00"] {
            let p = Proof::build(&src, &root, absent).expect("proof");
            assert_eq!(p.verify(&root.hash, absent), Ok(None), "{absent:?}");
        }
        assert_eq!(Proof::default().verify(&EMPTY, b"x"), Ok(None));
    }

    #[test]
    fn forged_proofs_are_refused() {
        let (src, root) = tree();
        let key = b"key 42";
        let good = Proof::build(&src, &root, key).expect("proof");
        // Another root.
        assert_eq!(good.verify(&[7; 32], key), Err(ProofError::Mismatch(0)));
        // A proof for one key does not prove another key's value.
        let other = Proof::build(&src, &root, b"key 43").expect("proof");
        assert!(!matches!(other.verify(&root.hash, key), Ok(Some(_))));
        // A changed value in the leaf.
        let mut forged = good.clone();
        let last = forged.nodes.last_mut().expect("leaf");
        *last.last_mut().expect("byte") ^= 1;
        assert!(matches!(
            forged.verify(&root.hash, key),
            Err(ProofError::Mismatch(_))
        ));
        // Cut short, or with extra nodes.
        let mut short = good.clone();
        short.nodes.pop();
        assert_eq!(short.verify(&root.hash, key), Err(ProofError::Short));
        let mut long = good.clone();
        long.nodes.push(good.nodes[0].clone());
        assert_eq!(long.verify(&root.hash, key), Err(ProofError::Unused(1)));
        // Encodings that lie about their counts and lengths.
        assert!(Proof::decode(&u32::MAX.to_le_bytes()).is_err());
        let mut lying = 1u32.to_le_bytes().to_vec();
        lying.extend_from_slice(&1000u32.to_le_bytes());
        assert!(Proof::decode(&lying).is_err());
        let mut trailing = good.encode();
        trailing.push(0);
        assert!(Proof::decode(&trailing).is_err());
    }
}
