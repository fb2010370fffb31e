//! The tree: a binary Patricia trie over key bits whose shape depends only on its key set, so
//! equal contents give equal roots whatever the order of changes. Nodes are immutable; a change
//! creates new nodes along one path (O(depth)), which stay in memory ([`Changes`]) until a store
//! commits them under the new version, and records which stored nodes it replaced (stale from
//! that version on: what pruning frees). All walks are loops: a hostile key set (keys that are
//! prefixes of each other) makes paths long, never deep recursion.

use crate::bits::{bit, common_prefix, concat, extract};
use crate::node::{Hash, Node, Ptr, MAX_KEY_LEN, MAX_VALUE_LEN};
use std::collections::HashMap;
use std::sync::Arc;

/// Why a tree operation failed.
#[derive(Debug, thiserror::Error)]
pub enum TreeError {
    /// A node the tree points to is not in the store (pruned, or a root never stored).
    #[error("tree node {} (stored at {:#x}) is missing (pruned, or not a stored root)", hex::encode(.0.hash), .0.version)]
    Missing(Ptr),
    /// A stored node does not decode.
    #[error("tree node {} is corrupt: {source}", hex::encode(hash))]
    Corrupt {
        /// The node's hash.
        hash: Hash,
        /// Why.
        source: crate::node::DecodeError,
    },
    /// A key over [`MAX_KEY_LEN`].
    #[error("key of {0} bytes is over the limit of {MAX_KEY_LEN} bytes")]
    KeyTooLong(usize),
    /// A value over [`MAX_VALUE_LEN`].
    #[error("value of {0} bytes is over the limit of {MAX_VALUE_LEN} bytes")]
    ValueTooLarge(usize),
    /// The store failed.
    #[error("state store: {0}")]
    Store(String),
}

/// Where nodes come from.
pub trait NodeSource {
    /// The node `p` points to (never none).
    fn node(&self, p: &Ptr) -> Result<Arc<Node>, TreeError>;
}

#[derive(Clone, Copy)]
enum Slot {
    Leaf,
    Left,
    Right,
}

fn slots(n: &Node) -> Option<(&[u8], u16, [Ptr; 3])> {
    match n {
        Node::Internal {
            label,
            label_bits,
            leaf,
            left,
            right,
        } => Some((label, *label_bits, [*leaf, *left, *right])),
        Node::Leaf { .. } => None,
    }
}

fn internal(label: Vec<u8>, label_bits: usize, s: [Ptr; 3]) -> Node {
    Node::Internal {
        label,
        // Bounded by the key bits (at most MAX_KEY_LEN * 8 < 65536).
        label_bits: u16::try_from(label_bits).unwrap_or(u16::MAX),
        leaf: s[0],
        left: s[1],
        right: s[2],
    }
}

fn side(right: bool) -> Slot {
    if right {
        Slot::Right
    } else {
        Slot::Left
    }
}

fn index(s: Slot) -> usize {
    match s {
        Slot::Leaf => 0,
        Slot::Left => 1,
        Slot::Right => 2,
    }
}

/// How many leading bits two keys share from bit `from`, at most `max`.
fn common_bits(a: &[u8], b: &[u8], from: usize, max: usize) -> usize {
    common_prefix(a, from, &extract(b, from, max), max)
}

/// A tree at `root` and the changes to it as version `version`: the nodes created (not yet
/// stored) and the stored nodes they replaced.
///
/// Created nodes are hashed once, when [`Self::root`] is asked: until then they are *pending*,
/// addressed by their place in `pending`, and a later change on a path through one changes it
/// in place. Every node above a pending node is pending (a change re-creates the path up to
/// the root), so a change stops climbing at the first pending node. The top levels of a batch
/// of changes are thus built and hashed once per batch instead of once per key.
pub struct Changes<'a, S: NodeSource> {
    src: &'a S,
    version: u64,
    /// Pending nodes by place (`None`: replaced, never reachable again).
    pending: Vec<Option<Arc<Node>>>,
    /// Hashed created nodes.
    new: HashMap<Hash, Arc<Node>>,
    stale: Vec<Ptr>,
    root: Ptr,
}

/// The leading bytes of a pending node's pointer (its place follows): not a hash a node can
/// have short of a SHA-512/256 preimage.
const PENDING_TAG: [u8; 24] = [0xfe; 24];

fn pending_ptr(place: usize, version: u64) -> Ptr {
    let mut hash = [0u8; 32];
    hash[..24].copy_from_slice(&PENDING_TAG);
    hash[24..].copy_from_slice(&(place as u64).to_be_bytes());
    Ptr { hash, version }
}

/// Sets slot `slot` of an internal node.
fn set_slot(n: &mut Node, slot: Slot, to: Ptr) {
    if let Node::Internal {
        leaf, left, right, ..
    } = n
    {
        *[leaf, left, right][index(slot)] = to;
    }
}

impl<'a, S: NodeSource> Changes<'a, S> {
    /// Starts changing the tree at `root` (which `src` must hold, or none) into `version`.
    pub fn new(src: &'a S, root: Ptr, version: u64) -> Self {
        Self {
            src,
            version,
            pending: Vec::new(),
            new: HashMap::new(),
            stale: Vec::new(),
            root,
        }
    }

    /// The root after the changes so far (hashing the nodes created since the last call).
    pub fn root(&mut self) -> Ptr {
        if self.pending_place(&self.root).is_some() {
            self.root = self.hash_pending(self.root);
        }
        self.pending.clear();
        self.root
    }

    /// Hashes the pending subtree at `top` bottom-up (a loop: hostile key sets make deep
    /// paths), moving its nodes to `new`; returns its hashed pointer.
    fn hash_pending(&mut self, top: Ptr) -> Ptr {
        let mut hashed: Vec<Option<Ptr>> = vec![None; self.pending.len()];
        let mut stack = vec![(top, false)];
        while let Some((p, children_done)) = stack.pop() {
            let Some(place) = self.pending_place(&p) else {
                continue;
            };
            let Some(node) = self.pending[place].clone() else {
                continue;
            };
            if !children_done {
                stack.push((p, true));
                for c in node.children().unwrap_or([Ptr::NONE; 3]) {
                    if self.pending_place(&c).is_some() {
                        stack.push((c, false));
                    }
                }
                continue;
            }
            let node = node.map_children(|c| match self.pending_place(&c) {
                Some(i) => hashed[i].unwrap_or(c),
                None => c,
            });
            let hash = node.hash();
            self.new.insert(hash, Arc::new(node));
            hashed[place] = Some(Ptr {
                hash,
                version: self.version,
            });
        }
        self.pending_place(&top)
            .and_then(|i| hashed[i])
            .unwrap_or(top)
    }

    /// Nodes created, by hash, all under this version, as of the last [`Self::root`] (some may
    /// no longer be reachable from it).
    pub fn created(&self) -> &HashMap<Hash, Arc<Node>> {
        &self.new
    }

    /// The place of a pending node `p` points to.
    fn pending_place(&self, p: &Ptr) -> Option<usize> {
        if p.version != self.version || p.hash[..24] != PENDING_TAG {
            return None;
        }
        let mut place = [0u8; 8];
        place.copy_from_slice(&p.hash[24..]);
        let place = usize::try_from(u64::from_be_bytes(place)).ok()?;
        self.pending.get(place)?.as_ref().map(|_| place)
    }

    /// Stored nodes the changes replaced.
    pub fn stale(&self) -> &[Ptr] {
        &self.stale
    }

    fn is_new(&self, p: &Ptr) -> bool {
        p.version == self.version
            && (self.new.contains_key(&p.hash) || self.pending_place(p).is_some())
    }

    fn get(&self, p: &Ptr) -> Result<Arc<Node>, TreeError> {
        if p.version == self.version {
            if let Some(n) = self.pending_place(p).and_then(|i| self.pending[i].clone()) {
                return Ok(n);
            }
            if let Some(n) = self.new.get(&p.hash) {
                return Ok(n.clone());
            }
        }
        self.src.node(p)
    }

    /// A created node, pending until [`Self::root`] hashes it.
    fn put(&mut self, n: Node) -> Ptr {
        self.pending.push(Some(Arc::new(n)));
        pending_ptr(self.pending.len() - 1, self.version)
    }

    /// Records that `p` is replaced: a stored node becomes stale; a pending one is dropped
    /// (nothing points to a replaced node); a hashed created one is never stored unless
    /// reachable.
    fn replaced(&mut self, p: Ptr) {
        if let Some(place) = self.pending_place(&p) {
            self.pending[place] = None;
        } else if !p.is_none() && !self.is_new(&p) {
            self.stale.push(p);
        }
    }

    /// Sets `key` to `value`.
    pub fn insert(&mut self, key: &[u8], value: &[u8]) -> Result<(), TreeError> {
        if key.len() > MAX_KEY_LEN {
            return Err(TreeError::KeyTooLong(key.len()));
        }
        if value.len() > MAX_VALUE_LEN {
            return Err(TreeError::ValueTooLarge(value.len()));
        }
        let kbits = key.len() * 8;
        let leaf = Node::Leaf {
            key: key.to_vec(),
            value: value.to_vec(),
        };
        let mut path: Vec<(Ptr, Arc<Node>, Slot)> = Vec::new();
        let (mut cur, mut depth) = (self.root, 0usize);
        let mut sub = loop {
            if cur.is_none() {
                break self.put(leaf);
            }
            let node = self.get(&cur)?;
            let Some((label, label_bits, s)) = slots(&node) else {
                let Node::Leaf { key: old, .. } = &*node else {
                    unreachable!("slots() is None only for leaves")
                };
                if old.as_slice() == key {
                    self.replaced(cur);
                    break self.put(leaf);
                }
                // Two keys under one pointer: the internal node of their common bits.
                let obits = old.len() * 8;
                let max = obits.min(kbits).saturating_sub(depth);
                let cp = common_bits(key, old, depth, max);
                let at = depth + cp;
                let mut s = [Ptr::NONE; 3];
                let new = self.put(leaf);
                let new_slot = if kbits == at {
                    Slot::Leaf
                } else {
                    side(bit(key, at))
                };
                let old_slot = if obits == at {
                    Slot::Leaf
                } else {
                    side(bit(old, at))
                };
                s[index(new_slot)] = new;
                s[index(old_slot)] = cur;
                break self.put(internal(extract(key, depth, cp), cp, s));
            };
            let lb = usize::from(label_bits);
            let max = lb.min(kbits.saturating_sub(depth));
            let cp = common_prefix(key, depth, label, max);
            if cp < lb {
                // The key leaves the label at bit cp: split the label there.
                let rest = internal(extract(label, cp, lb - cp), lb - cp, s);
                let rest_slot = side(bit(label, cp));
                self.replaced(cur);
                let rest = self.put(rest);
                let new = self.put(leaf);
                let at = depth + cp;
                let new_slot = if kbits == at {
                    Slot::Leaf
                } else {
                    side(bit(key, at))
                };
                let mut s = [Ptr::NONE; 3];
                s[index(rest_slot)] = rest;
                s[index(new_slot)] = new;
                break self.put(internal(extract(label, 0, cp), cp, s));
            }
            let at = depth + lb;
            if kbits == at {
                self.replaced(s[0]);
                path.push((cur, node, Slot::Leaf));
                break self.put(leaf);
            }
            let next = side(bit(key, at));
            let child = s[index(next)];
            path.push((cur, node, next));
            cur = child;
            depth = at;
        };
        for (ptr, node, slot) in path.into_iter().rev() {
            if let Some(place) = self.pending_place(&ptr) {
                // Changed in place; the nodes above are pending and point to it already.
                drop(node);
                if let Some(n) = self.pending[place].as_mut() {
                    set_slot(Arc::make_mut(n), slot, sub);
                }
                return Ok(());
            }
            let (label, label_bits, mut s) = slots(&node).expect("path holds internal nodes");
            s[index(slot)] = sub;
            self.replaced(ptr);
            sub = self.put(internal(label.to_vec(), usize::from(label_bits), s));
        }
        self.root = sub;
        Ok(())
    }

    /// Removes `key` (nothing happens when it is absent).
    pub fn remove(&mut self, key: &[u8]) -> Result<(), TreeError> {
        let kbits = key.len() * 8;
        let mut path: Vec<(Ptr, Arc<Node>, Slot)> = Vec::new();
        let (mut cur, mut depth) = (self.root, 0usize);
        loop {
            if cur.is_none() {
                return Ok(());
            }
            let node = self.get(&cur)?;
            let Some((label, label_bits, s)) = slots(&node) else {
                match &*node {
                    Node::Leaf { key: k, .. } if k.as_slice() == key => break,
                    _ => return Ok(()),
                }
            };
            let lb = usize::from(label_bits);
            if kbits < depth + lb || common_prefix(key, depth, label, lb) < lb {
                return Ok(());
            }
            let at = depth + lb;
            let slot = if kbits == at {
                Slot::Leaf
            } else {
                side(bit(key, at))
            };
            let child = s[index(slot)];
            path.push((cur, node, slot));
            cur = child;
            depth = at;
        }
        self.replaced(cur);
        let mut sub = Ptr::NONE;
        for (ptr, node, slot) in path.into_iter().rev() {
            let (label, label_bits, mut s) = slots(&node).expect("path holds internal nodes");
            s[index(slot)] = sub;
            self.replaced(ptr);
            sub = self.collapse(label, usize::from(label_bits), s)?;
        }
        self.root = sub;
        Ok(())
    }

    /// An internal node with slots `s`, in canonical form: no node for no keys, a bare leaf for
    /// one key, and a single child's label merged into this one.
    fn collapse(&mut self, label: &[u8], label_bits: usize, s: [Ptr; 3]) -> Result<Ptr, TreeError> {
        let live: Vec<usize> = (0..3).filter(|i| !s[*i].is_none()).collect();
        match live.as_slice() {
            [] => Ok(Ptr::NONE),
            [0] => Ok(s[0]),
            [i] => {
                let child = self.get(&s[*i])?;
                match slots(&child) {
                    None => Ok(s[*i]),
                    Some((l2, b2, s2)) => {
                        let b2 = usize::from(b2);
                        let merged = concat(label, label_bits, l2, b2);
                        self.replaced(s[*i]);
                        Ok(self.put(internal(merged, label_bits + b2, s2)))
                    }
                }
            }
            _ => Ok(self.put(internal(label.to_vec(), label_bits, s))),
        }
    }
}

/// The next pointer on the way to `key` from an internal node at `depth`, or `None` when the
/// key is not under it; and the depth below.
fn step(node: &Node, key: &[u8], depth: usize) -> Option<(Ptr, usize)> {
    let (label, label_bits, s) = slots(node)?;
    let kbits = key.len() * 8;
    let lb = usize::from(label_bits);
    if kbits < depth + lb || common_prefix(key, depth, label, lb) < lb {
        return None;
    }
    let at = depth + lb;
    let next = if kbits == at {
        s[0]
    } else if bit(key, at) {
        s[2]
    } else {
        s[1]
    };
    Some((next, at))
}

/// The value of `key` in the tree at `root`.
pub fn get<S: NodeSource>(src: &S, root: &Ptr, key: &[u8]) -> Result<Option<Vec<u8>>, TreeError> {
    let (mut cur, mut depth) = (*root, 0usize);
    loop {
        if cur.is_none() {
            return Ok(None);
        }
        let node = src.node(&cur)?;
        if let Node::Leaf { key: k, value } = &*node {
            return Ok((k.as_slice() == key).then(|| value.clone()));
        }
        match step(&node, key, depth) {
            Some((next, at)) => (cur, depth) = (next, at),
            None => return Ok(None),
        }
    }
}

/// The nodes on the path to `key` in the tree at `root`, for a proof.
pub(crate) fn path<S: NodeSource>(
    src: &S,
    root: &Ptr,
    key: &[u8],
) -> Result<Vec<Arc<Node>>, TreeError> {
    let (mut cur, mut depth) = (*root, 0usize);
    let mut out = Vec::new();
    while !cur.is_none() {
        let node = src.node(&cur)?;
        out.push(node.clone());
        match step(&node, key, depth) {
            Some((next, at)) => (cur, depth) = (next, at),
            None => break,
        }
    }
    Ok(out)
}

/// An in-memory node source (tests, and trees built whole): nodes by hash.
#[derive(Default)]
pub struct MemSource(pub HashMap<Hash, Arc<Node>>);

impl NodeSource for MemSource {
    fn node(&self, p: &Ptr) -> Result<Arc<Node>, TreeError> {
        self.0.get(&p.hash).cloned().ok_or(TreeError::Missing(*p))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    /// Applies changes to an empty in-memory tree and keeps every node.
    fn build(ops: &[(Vec<u8>, Option<Vec<u8>>)]) -> (MemSource, Ptr) {
        let src = MemSource::default();
        let mut c = Changes::new(&src, Ptr::NONE, 1);
        for (k, v) in ops {
            match v {
                Some(v) => c.insert(k, v).expect("insert"),
                None => c.remove(k).expect("remove"),
            }
        }
        let root = c.root();
        let nodes = c.new;
        (MemSource(nodes), root)
    }

    fn root_of(pairs: &[(&[u8], &[u8])]) -> String {
        let ops: Vec<_> = pairs
            .iter()
            .map(|(k, v)| (k.to_vec(), Some(v.to_vec())))
            .collect();
        hex::encode(build(&ops).1.hash)
    }

    #[test]
    fn roots_match_oasis_vectors() {
        assert_eq!(
            root_of(&[(b"foo", b"bar")]),
            "db67c0572006673b488342a45e6590a75e8919265e6da706c80c6b2776017aa7"
        );
        assert_eq!(
            root_of(&[(b"foo", b"bar"), (b"moo", b"foo")]),
            "e627581db43e18410a52793e662e4f21ae6a4fca14e16915a85ec4c3e3e41a13"
        );
        let keys: Vec<(Vec<u8>, Vec<u8>)> = (0..1000)
            .map(|i| {
                (
                    format!("key {i}").into_bytes(),
                    format!("value {i}").into_bytes(),
                )
            })
            .collect();
        let pairs: Vec<(&[u8], &[u8])> = keys.iter().map(|(k, v)| (&k[..], &v[..])).collect();
        assert_eq!(
            root_of(&pairs),
            "2187c55627819b60069888ba86f83dc2a9f50c827624b0e31e31261806300ede"
        );
        let r = root_of(&pairs[..500]);
        assert!(r.starts_with("cf6e9b6a") && r.ends_with("9495"), "{r}");
    }

    #[test]
    fn keys_that_are_prefixes_of_each_other_all_read_back() {
        // Every prefix of a sentence, as in oasis's tree tests.
        let s = b"Unlock the potential of your data without compromising security or privacy";
        let ops: Vec<_> = (1..=s.len())
            .map(|n| (s[..n].to_vec(), Some(n.to_le_bytes().to_vec())))
            .collect();
        let (src, root) = build(&ops);
        for (k, v) in &ops {
            assert_eq!(get(&src, &root, k).expect("get"), v.clone());
        }
        let reversed: Vec<_> = ops.iter().rev().cloned().collect();
        assert_eq!(build(&reversed).1.hash, root.hash);
    }

    #[test]
    fn get_finds_values_and_misses_absent_keys() {
        let ops: Vec<_> = [&b"a"[..], b"ab", b"abc", b"b", b"\x00", b"\xff\xff"]
            .iter()
            .map(|k| (k.to_vec(), Some([k, &b"!"[..]].concat())))
            .collect();
        let (src, root) = build(&ops);
        for (k, v) in &ops {
            assert_eq!(get(&src, &root, k).expect("get"), v.clone());
        }
        for k in [&b""[..], b"abcd", b"c", b"\x00\x00", b"\xff"] {
            assert_eq!(get(&src, &root, k).expect("get"), None, "{k:?}");
        }
    }

    #[test]
    fn deep_paths_are_walked_without_recursion() {
        // 600 keys, each a prefix of the next: a path of 600 internal nodes.
        let ops: Vec<_> = (1..=600)
            .map(|n| (vec![0xa5u8; n], Some(vec![1])))
            .collect();
        let (src, root) = build(&ops);
        assert_eq!(get(&src, &root, &[0xa5; 600]).expect("get"), Some(vec![1]));
        let mut c = Changes::new(&src, root, 2);
        for n in (1..=600).rev() {
            c.remove(&vec![0xa5u8; n]).expect("remove");
        }
        assert!(c.root().is_none());
    }

    #[test]
    fn oversized_keys_and_values_are_refused() {
        let src = MemSource::default();
        let mut c = Changes::new(&src, Ptr::NONE, 1);
        assert!(matches!(
            c.insert(&vec![0; MAX_KEY_LEN + 1], b"v"),
            Err(TreeError::KeyTooLong(_))
        ));
        assert!(matches!(
            c.insert(b"k", &vec![0; MAX_VALUE_LEN + 1]),
            Err(TreeError::ValueTooLarge(_))
        ));
        assert!(c.root().is_none());
    }

    fn key() -> impl Strategy<Value = Vec<u8>> {
        // Short keys from a small alphabet: many shared prefixes and prefix keys.
        prop::collection::vec(prop::sample::select(vec![0u8, 1, 0x80, 0xff]), 0..4)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(400))]
        /// The root depends only on the final contents: any order of inserts and removes gives
        /// the root of inserting the final pairs into an empty tree, and every value reads back.
        #[test]
        fn the_root_depends_only_on_the_contents(
            ops in prop::collection::vec((key(), prop::option::of(prop::collection::vec(any::<u8>(), 0..3))), 0..60)
        ) {
            let (src, root) = build(&ops);
            let mut want: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
            for (k, v) in &ops {
                match v {
                    Some(v) => { want.insert(k.clone(), v.clone()); }
                    None => { want.remove(k); }
                }
            }
            let fresh: Vec<_> = want.iter().rev().map(|(k, v)| (k.clone(), Some(v.clone()))).collect();
            let (_, fresh_root) = build(&fresh);
            prop_assert_eq!(root.hash, fresh_root.hash);
            for (k, v) in &want {
                prop_assert_eq!(get(&src, &root, k).expect("get"), Some(v.clone()));
            }
            // Removing everything leaves the empty tree.
            let mut c = Changes::new(&src, root, 2);
            for k in want.keys() {
                c.remove(k).expect("remove");
            }
            prop_assert!(c.root().is_none());
        }

        /// Changes spread over versions, the root asked at arbitrary points (hashing what is
        /// pending and going on from hashed nodes): the same root as building the final
        /// contents at once, the stale nodes all stored ones, and every value reads back.
        #[test]
        fn roots_asked_midway_and_versions_give_the_same_tree(
            ops in prop::collection::vec((key(), prop::option::of(prop::collection::vec(any::<u8>(), 0..3)), 0u8..4), 0..80)
        ) {
            let mut src = MemSource::default();
            let mut root = Ptr::NONE;
            let mut want: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
            for (version, chunk) in ops.chunks(20).enumerate() {
                let version = version as u64 + 1;
                let (nodes, stale) = {
                    let mut c = Changes::new(&src, root, version);
                    for (k, v, ask) in chunk {
                        match v {
                            Some(v) => { c.insert(k, v).expect("insert"); want.insert(k.clone(), v.clone()); }
                            None => { c.remove(k).expect("remove"); want.remove(k); }
                        }
                        if *ask == 0 {
                            let _ = c.root();
                        }
                    }
                    root = c.root();
                    (c.created().clone(), c.stale().to_vec())
                };
                for p in &stale {
                    prop_assert!(p.version < version, "stale {:?} is not a stored node", p);
                }
                src.0.extend(nodes);
            }
            let fresh: Vec<_> = want.iter().map(|(k, v)| (k.clone(), Some(v.clone()))).collect();
            let (_, fresh_root) = build(&fresh);
            prop_assert_eq!(root.hash, fresh_root.hash);
            for (k, v) in &want {
                prop_assert_eq!(get(&src, &root, k).expect("get"), Some(v.clone()));
            }
        }
    }
}
