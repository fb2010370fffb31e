//! The consensus state as entries of an authenticated tree (the MKVS tree of
//! [`paratime_mkvs_tree`], held in memory): one entry per account, entity, node, committee and
//! runtime chain, plus one for the chain's scalars. The state root is the tree's root. After a
//! block only the entries it changed are re-encoded, re-hashed and written: the maps are
//! persistent ([`imbl::OrdMap`]), so the state before and after a block share everything the
//! block did not touch, and their difference is found without visiting the shared parts.

use crate::encoding::{canonical_cbor, Hash};
use crate::state::State;
use imbl::OrdMap;
use paratime_mkvs_tree::node::{Node, Ptr};
use paratime_mkvs_tree::{Changes, NodeSource, TreeError};
use serde::{de::DeserializeOwned, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;

/// Key prefix of the chain's scalars (height, epoch, last block hash, validators, chain
/// context).
pub const META: u8 = 0x00;
/// Key prefix of accounts (‖ address).
pub const ACCOUNT: u8 = 0x01;
/// Key prefix of entities (‖ entity ID).
pub const ENTITY: u8 = 0x02;
/// Key prefix of nodes (‖ node ID).
pub const NODE: u8 = 0x03;
/// Key prefix of executor committees (‖ runtime ID).
pub const COMMITTEE: u8 = 0x04;
/// Key prefix of runtime chains (‖ runtime ID).
pub const RUNTIME: u8 = 0x05;

/// Entries applied to the tree in one pass at most.
const APPLY_BATCH: usize = 8192;

/// A change to the state's entries: a key and its new value (`None`: removed).
pub type Entry = (Vec<u8>, Option<Vec<u8>>);

type NodeMap = OrdMap<Hash, Arc<Node>>;

/// The tree's nodes (in memory, shared between states) and its root.
#[derive(Clone)]
pub struct StateTree {
    nodes: NodeMap,
    root: Ptr,
}

impl Default for StateTree {
    fn default() -> Self {
        Self {
            nodes: NodeMap::default(),
            root: Ptr::NONE,
        }
    }
}

impl std::fmt::Debug for StateTree {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "StateTree({} nodes, root {})",
            self.nodes.len(),
            hex::encode(self.root.hash)
        )
    }
}

impl PartialEq for StateTree {
    fn eq(&self, other: &Self) -> bool {
        self.root == other.root
    }
}

impl NodeSource for StateTree {
    fn node(&self, p: &Ptr) -> Result<Arc<Node>, TreeError> {
        self.nodes
            .get(&p.hash)
            .cloned()
            .ok_or(TreeError::Missing(*p))
    }
}

impl StateTree {
    /// The root hash.
    pub fn root(&self) -> Hash {
        self.root.hash
    }

    /// Nodes held.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether the tree is empty.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Applies sorted changes as `version`; only the changed paths are rebuilt. Large change
    /// sets (a genesis, a reload) go in batches: a batch's replaced intermediate nodes are
    /// dropped before the next.
    pub fn apply(&mut self, version: u64, changes: &[Entry]) -> Result<(), TreeError> {
        for batch in changes.chunks(APPLY_BATCH) {
            self.apply_batch(version, batch)?;
        }
        Ok(())
    }

    fn apply_batch(&mut self, version: u64, changes: &[Entry]) -> Result<(), TreeError> {
        let mut c = Changes::new(&*self, self.root, version);
        for (k, v) in changes {
            match v {
                Some(v) => c.insert(k, v)?,
                None => c.remove(k)?,
            }
        }
        let root = c.root();
        let created = c.created();
        // The new nodes the new root reaches (some created ones were replaced again).
        // Older nodes they point to stay, even if a change replaced and then restored them.
        let mut fresh = Vec::new();
        let mut kept = std::collections::HashSet::new();
        let mut stack = vec![root];
        while let Some(p) = stack.pop() {
            if p.is_none() {
                continue;
            }
            match created.get(&p.hash).filter(|_| p.version == version) {
                Some(n) => {
                    stack.extend(n.children().into_iter().flatten());
                    fresh.push((p.hash, n.clone()));
                }
                None => {
                    kept.insert(p.hash);
                }
            }
        }
        let stale = c.stale().to_vec();
        drop(c);
        for p in stale {
            if !kept.contains(&p.hash) {
                self.nodes.remove(&p.hash);
            }
        }
        for (h, n) in fresh {
            self.nodes.insert(h, n);
        }
        self.root = root;
        Ok(())
    }
}

fn key(prefix: u8, id: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(1 + id.len());
    k.push(prefix);
    k.extend_from_slice(id);
    k
}

fn diff_map<K: Ord + Clone, V: PartialEq + Clone + Serialize>(
    out: &mut Vec<Entry>,
    prefix: u8,
    before: &OrdMap<K, V>,
    after: &OrdMap<K, V>,
    id: impl Fn(&K) -> &[u8],
) {
    for d in before.diff(after) {
        match d {
            imbl::ordmap::DiffItem::Add(k, v)
            | imbl::ordmap::DiffItem::Update { new: (k, v), .. } => {
                out.push((key(prefix, id(k)), Some(canonical_cbor(v))));
            }
            imbl::ordmap::DiffItem::Remove(k, _) => out.push((key(prefix, id(k)), None)),
        }
    }
}

fn diff_small<K: Ord, V: PartialEq + Serialize>(
    out: &mut Vec<Entry>,
    prefix: u8,
    before: &BTreeMap<K, V>,
    after: &BTreeMap<K, V>,
    id: impl Fn(&K) -> &[u8],
) {
    for (k, v) in after {
        if before.get(k) != Some(v) {
            out.push((key(prefix, id(k)), Some(canonical_cbor(v))));
        }
    }
    for k in before.keys() {
        if !after.contains_key(k) {
            out.push((key(prefix, id(k)), None));
        }
    }
}

/// The chain's scalars, one entry.
#[derive(serde::Serialize, serde::Deserialize)]
struct Meta {
    height: crate::Height,
    epoch: crate::Epoch,
    last_block_hash: Hash,
    validators: crate::validators::ValidatorSet,
    chain_context: String,
}

fn meta(s: &State) -> Vec<u8> {
    canonical_cbor(&Meta {
        height: s.height,
        epoch: s.epoch,
        last_block_hash: s.last_block_hash,
        validators: s.validators.clone(),
        chain_context: s.chain_context.clone(),
    })
}

/// The entries `after` changed since `before`, sorted by key. Shared parts of the two states
/// are not visited: the cost follows the change, not the state.
pub fn changes(before: &State, after: &State) -> Vec<Entry> {
    let mut out = Vec::new();
    let m = meta(after);
    if meta(before) != m {
        out.push((vec![META], Some(m)));
    }
    diff_map(&mut out, ACCOUNT, &before.accounts, &after.accounts, |a| {
        &a.0
    });
    diff_map(&mut out, ENTITY, &before.entities, &after.entities, |p| {
        &p.0
    });
    diff_map(&mut out, NODE, &before.nodes, &after.nodes, |p| &p.0);
    diff_small(
        &mut out,
        COMMITTEE,
        &before.committees,
        &after.committees,
        |r| &r.0,
    );
    diff_small(&mut out, RUNTIME, &before.roothash, &after.roothash, |r| {
        &r.0
    });
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// Every entry of `s`, sorted by key (a new store, or a tree built whole).
pub fn entries(s: &State) -> Vec<Entry> {
    let mut out = vec![(vec![META], Some(meta(s)))];
    let all = |out: &mut Vec<Entry>, prefix: u8, items: Vec<(&[u8], Vec<u8>)>| {
        out.extend(items.into_iter().map(|(id, v)| (key(prefix, id), Some(v))));
    };
    all(
        &mut out,
        ACCOUNT,
        s.accounts
            .iter()
            .map(|(k, v)| (&k.0[..], canonical_cbor(v)))
            .collect(),
    );
    all(
        &mut out,
        ENTITY,
        s.entities
            .iter()
            .map(|(k, v)| (&k.0[..], canonical_cbor(v)))
            .collect(),
    );
    all(
        &mut out,
        NODE,
        s.nodes
            .iter()
            .map(|(k, v)| (&k.0[..], canonical_cbor(v)))
            .collect(),
    );
    all(
        &mut out,
        COMMITTEE,
        s.committees
            .iter()
            .map(|(k, v)| (&k.0[..], canonical_cbor(v)))
            .collect(),
    );
    all(
        &mut out,
        RUNTIME,
        s.roothash
            .iter()
            .map(|(k, v)| (&k.0[..], canonical_cbor(v)))
            .collect(),
    );
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// Why stored entries are not a state.
#[derive(Debug, thiserror::Error)]
pub enum EntryError {
    /// A value does not decode as its kind.
    #[error("state entry {}: {reason}", hex::encode(key))]
    Value {
        /// The key.
        key: Vec<u8>,
        /// Why.
        reason: String,
    },
    /// An unknown key.
    #[error("state entry {}: unknown key", hex::encode(.0))]
    Key(Vec<u8>),
    /// No scalars entry.
    #[error("the state has no chain entry (height, epoch, validators)")]
    NoMeta,
    /// The tree could not be built.
    #[error(transparent)]
    Tree(#[from] TreeError),
}

fn decode<T: DeserializeOwned>(key: &[u8], v: &[u8]) -> Result<T, EntryError> {
    crate::encoding::from_cbor(v).map_err(|e| EntryError::Value {
        key: key.to_vec(),
        reason: e.to_string(),
    })
}

fn id<const N: usize>(key: &[u8]) -> Result<[u8; N], EntryError> {
    key.get(1..)
        .and_then(|b| <[u8; N]>::try_from(b).ok())
        .ok_or_else(|| EntryError::Key(key.to_vec()))
}

/// Rebuilds the state from all its entries (as a store holds them) on top of `genesis`'s
/// parameters; `version` is the tree version of its nodes.
pub fn from_entries(
    genesis: &crate::genesis::Genesis,
    items: impl IntoIterator<Item = (Vec<u8>, Vec<u8>)>,
    version: u64,
) -> Result<State, EntryError> {
    // Not from_genesis: the genesis's own entries and their tree would be built for nothing.
    let mut s = State::empty(genesis);
    let mut log = Vec::new();
    let mut have_meta = false;
    for (k, v) in items {
        match k.first() {
            Some(&META) if k.len() == 1 => {
                let m: Meta = decode(&k, &v)?;
                s.height = m.height;
                s.epoch = m.epoch;
                s.last_block_hash = m.last_block_hash;
                s.validators = m.validators;
                s.chain_context = m.chain_context;
                have_meta = true;
            }
            Some(&ACCOUNT) => {
                s.accounts
                    .insert(crate::address::Address(id(&k)?), decode(&k, &v)?);
            }
            Some(&ENTITY) => {
                s.entities
                    .insert(crate::crypto::PublicKey(id(&k)?), decode(&k, &v)?);
            }
            Some(&NODE) => {
                s.nodes
                    .insert(crate::crypto::PublicKey(id(&k)?), decode(&k, &v)?);
            }
            Some(&COMMITTEE) => {
                s.committees
                    .insert(crate::RuntimeId(id(&k)?), decode(&k, &v)?);
            }
            Some(&RUNTIME) => {
                s.roothash
                    .insert(crate::RuntimeId(id(&k)?), decode(&k, &v)?);
            }
            _ => return Err(EntryError::Key(k)),
        }
        log.push((k, Some(v)));
    }
    if !have_meta {
        return Err(EntryError::NoMeta);
    }
    log.sort_by(|a, b| a.0.cmp(&b.0));
    s.tree.apply(version, &log)?;
    Ok(s)
}
