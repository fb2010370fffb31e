//! The tree on disk: nodes in redb addressed by hash with a reference count, and one root per
//! version (a finalized round). A version holds a reference to its root, a stored internal node
//! to each of its children; pruning a version releases its root and frees whatever is no longer
//! referenced. Reads go through a node cache bounded in bytes, and redb's own page cache is
//! bounded too: memory does not grow with the state.

use crate::node::{Hash, Node, EMPTY};
use crate::proof::Proof;
use crate::tree::{Changes, NodeSource, TreeError};
use hashlink::LruCache;
use redb::{Database, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition};
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

/// Node hash → u64le reference count ‖ stored node.
const NODES: TableDefinition<'static, &[u8], &[u8]> = TableDefinition::new("mkvs_nodes");
/// Version → root hash.
const ROOTS: TableDefinition<'static, u64, &[u8]> = TableDefinition::new("mkvs_roots");

/// Why the state store failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// redb failed (I/O, corruption).
    #[error("state store {path}: {reason}")]
    Db {
        /// The database file.
        path: String,
        /// Why.
        reason: String,
    },
    /// The tree could not be read or changed.
    #[error(transparent)]
    Tree(#[from] TreeError),
    /// The version is already stored with another root.
    #[error(
        "version {version} is already stored with root {}, not {}",
        hex::encode(stored),
        hex::encode(new)
    )]
    Conflict {
        /// The version.
        version: u64,
        /// Its stored root.
        stored: Hash,
        /// The root offered now.
        new: Hash,
    },
    /// The write log does not lead to the expected root.
    #[error(
        "the write log leads to root {}, not the expected {}",
        hex::encode(computed),
        hex::encode(expected)
    )]
    Mismatch {
        /// The root the caller expected.
        expected: Hash,
        /// The root the write log gives.
        computed: Hash,
    },
    /// Versions only go forward.
    #[error("version {version} is older than the latest stored version {latest}")]
    Old {
        /// The version offered.
        version: u64,
        /// The latest stored.
        latest: u64,
    },
}

/// Nodes by hash, least recently used first out, bounded by their weight in bytes.
struct Cache {
    map: LruCache<Hash, Arc<Node>>,
    weight: usize,
    limit: usize,
}

impl Cache {
    fn get(&mut self, h: &Hash) -> Option<Arc<Node>> {
        self.map.get(h).cloned()
    }

    fn put(&mut self, h: Hash, n: Arc<Node>) {
        let w = n.weight();
        if w > self.limit {
            return;
        }
        if let Some(old) = self.map.insert(h, n) {
            self.weight -= old.weight();
        }
        self.weight += w;
        while self.weight > self.limit {
            match self.map.remove_lru() {
                Some((_, n)) => self.weight -= n.weight(),
                None => break,
            }
        }
    }

    fn remove(&mut self, h: &Hash) {
        if let Some(n) = self.map.remove(h) {
            self.weight -= n.weight();
        }
    }
}

/// What [`NodeDb::prune`] removed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Pruned {
    /// Versions removed.
    pub versions: u64,
    /// Nodes freed.
    pub nodes: u64,
}

/// The versioned tree in a redb file.
pub struct NodeDb {
    db: Database,
    path: String,
    cache: Mutex<Cache>,
    /// Serialises changes: a prune between computing and storing a version could free nodes
    /// the new version shares.
    writer: Mutex<()>,
}

/// A read view of the store (one redb read transaction) that serves [`NodeSource`].
pub struct Reader<'a> {
    db: &'a NodeDb,
    nodes: Option<redb::ReadOnlyTable<&'static [u8], &'static [u8]>>,
}

impl NodeSource for Reader<'_> {
    fn node(&self, h: &Hash) -> Result<Arc<Node>, TreeError> {
        if let Some(n) = self.db.cache().get(h) {
            return Ok(n);
        }
        let table = self.nodes.as_ref().ok_or(TreeError::Missing(*h))?;
        let got = table
            .get(&h[..])
            .map_err(|e| TreeError::Store(e.to_string()))?
            .ok_or(TreeError::Missing(*h))?;
        let bytes = got.value();
        let node = Node::decode(bytes.get(8..).unwrap_or_default())
            .map_err(|source| TreeError::Corrupt { hash: *h, source })?;
        let node = Arc::new(node);
        self.db.cache().put(*h, node.clone());
        Ok(node)
    }
}

fn refcount(stored: &[u8]) -> u64 {
    let mut b = [0u8; 8];
    if let Some(head) = stored.get(..8) {
        b.copy_from_slice(head);
    }
    u64::from_le_bytes(b)
}

fn with_refcount(rc: u64, node: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(8 + node.len());
    v.extend_from_slice(&rc.to_le_bytes());
    v.extend_from_slice(node);
    v
}

fn hash_of(bytes: &[u8]) -> Hash {
    let mut h = [0u8; 32];
    if bytes.len() == 32 {
        h.copy_from_slice(bytes);
    }
    h
}

impl NodeDb {
    /// Opens (or creates) the store at `path` with at most `cache_bytes` of decoded nodes and
    /// as much of redb's page cache in memory.
    pub fn open(path: &Path, cache_bytes: usize) -> Result<Self, StoreError> {
        let shown = path.display().to_string();
        let db = Database::builder()
            .set_cache_size(cache_bytes.max(1 << 20))
            .create(path)
            .map_err(|e| StoreError::Db {
                path: shown.clone(),
                reason: e.to_string(),
            })?;
        let s = Self {
            db,
            path: shown,
            cache: Mutex::new(Cache {
                map: LruCache::new_unbounded(),
                weight: 0,
                limit: cache_bytes,
            }),
            writer: Mutex::new(()),
        };
        let txn = s.db.begin_write().map_err(|e| s.err(e))?;
        txn.open_table(NODES).map_err(|e| s.err(e))?;
        txn.open_table(ROOTS).map_err(|e| s.err(e))?;
        txn.commit().map_err(|e| s.err(e))?;
        Ok(s)
    }

    fn err(&self, e: impl std::fmt::Display) -> StoreError {
        StoreError::Db {
            path: self.path.clone(),
            reason: e.to_string(),
        }
    }

    fn cache(&self) -> MutexGuard<'_, Cache> {
        self.cache.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Bytes of decoded nodes held in memory now.
    pub fn cached_bytes(&self) -> usize {
        self.cache().weight
    }

    /// A consistent read view.
    pub fn reader(&self) -> Result<Reader<'_>, StoreError> {
        let txn = self.db.begin_read().map_err(|e| self.err(e))?;
        let nodes = txn.open_table(NODES).map_err(|e| self.err(e))?;
        Ok(Reader {
            db: self,
            nodes: Some(nodes),
        })
    }

    /// The value of `key` in the tree at `root`.
    pub fn get(&self, root: &Hash, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(crate::tree::get(&self.reader()?, root, key)?)
    }

    /// A proof of `key`'s value (or absence) in the tree at `root`.
    pub fn prove(&self, root: &Hash, key: &[u8]) -> Result<Proof, StoreError> {
        Ok(Proof::build(&self.reader()?, root, key)?)
    }

    /// The root `log` leads to from `prev`, without storing anything. `None` deletes a key.
    pub fn compute<'k>(
        &self,
        prev: &Hash,
        log: impl IntoIterator<Item = (&'k [u8], Option<&'k [u8]>)>,
    ) -> Result<Hash, StoreError> {
        let reader = self.reader()?;
        let mut c = Changes::new(&reader, *prev);
        for (k, v) in log {
            match v {
                Some(v) => c.insert(k, v)?,
                None => c.remove(k)?,
            }
        }
        Ok(c.root())
    }

    /// Applies `log` to the tree at `prev` and stores the result as `version`; returns its
    /// root. When `expected` is given, a different root is refused before anything is stored.
    /// Storing a version again with the same root does nothing.
    pub fn apply<'k>(
        &self,
        version: u64,
        prev: &Hash,
        log: impl IntoIterator<Item = (&'k [u8], Option<&'k [u8]>)>,
        expected: Option<&Hash>,
    ) -> Result<Hash, StoreError> {
        let _w = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(latest) = self.latest_version()? {
            if version < latest {
                return Err(StoreError::Old { version, latest });
            }
        }
        let reader = self.reader()?;
        let mut c = Changes::new(&reader, *prev);
        for (k, v) in log {
            match v {
                Some(v) => c.insert(k, v)?,
                None => c.remove(k)?,
            }
        }
        let root = c.root();
        if let Some(expected) = expected.filter(|e| **e != root) {
            return Err(StoreError::Mismatch {
                expected: *expected,
                computed: root,
            });
        }
        if let Some(stored) = self.root(version)? {
            if stored == root {
                return Ok(root);
            }
            return Err(StoreError::Conflict {
                version,
                stored,
                new: root,
            });
        }
        let txn = self.db.begin_write().map_err(|e| self.err(e))?;
        {
            let mut nodes = txn.open_table(NODES).map_err(|e| self.err(e))?;
            // One reference from the version to its root, then one from each newly stored node
            // to each of its children.
            let mut stack = vec![root];
            while let Some(h) = stack.pop() {
                if h == EMPTY {
                    continue;
                }
                let existing = nodes
                    .get(&h[..])
                    .map_err(|e| self.err(e))?
                    .map(|g| g.value().to_vec());
                if let Some(stored) = existing {
                    let v = with_refcount(refcount(&stored) + 1, &stored[8..]);
                    nodes.insert(&h[..], &v[..]).map_err(|e| self.err(e))?;
                    continue;
                }
                let node = c.created().get(&h).ok_or(TreeError::Missing(h))?;
                let v = with_refcount(1, &node.encode());
                nodes.insert(&h[..], &v[..]).map_err(|e| self.err(e))?;
                if let Node::Internal {
                    leaf, left, right, ..
                } = &**node
                {
                    stack.extend([*leaf, *left, *right]);
                }
            }
            let mut roots = txn.open_table(ROOTS).map_err(|e| self.err(e))?;
            roots.insert(version, &root[..]).map_err(|e| self.err(e))?;
        }
        txn.commit().map_err(|e| self.err(e))?;
        Ok(root)
    }

    /// Whether the store holds the node `h` (e.g. a root to resume from).
    pub fn has_node(&self, h: &Hash) -> Result<bool, StoreError> {
        let txn = self.db.begin_read().map_err(|e| self.err(e))?;
        let nodes = txn.open_table(NODES).map_err(|e| self.err(e))?;
        Ok(nodes.get(&h[..]).map_err(|e| self.err(e))?.is_some())
    }

    /// The root stored for `version`.
    pub fn root(&self, version: u64) -> Result<Option<Hash>, StoreError> {
        let txn = self.db.begin_read().map_err(|e| self.err(e))?;
        let roots = txn.open_table(ROOTS).map_err(|e| self.err(e))?;
        let got = roots.get(version).map_err(|e| self.err(e))?;
        Ok(got.map(|g| hash_of(g.value())))
    }

    /// The earliest and latest stored versions.
    pub fn versions(&self) -> Result<Option<(u64, u64)>, StoreError> {
        let txn = self.db.begin_read().map_err(|e| self.err(e))?;
        let roots = txn.open_table(ROOTS).map_err(|e| self.err(e))?;
        let first = roots
            .first()
            .map_err(|e| self.err(e))?
            .map(|(k, _)| k.value());
        let last = roots
            .last()
            .map_err(|e| self.err(e))?
            .map(|(k, _)| k.value());
        Ok(first.zip(last))
    }

    /// The latest stored version.
    pub fn latest_version(&self) -> Result<Option<u64>, StoreError> {
        Ok(self.versions()?.map(|(_, l)| l))
    }

    /// Number of stored nodes.
    pub fn node_count(&self) -> Result<u64, StoreError> {
        let txn = self.db.begin_read().map_err(|e| self.err(e))?;
        let nodes = txn.open_table(NODES).map_err(|e| self.err(e))?;
        nodes.len().map_err(|e| self.err(e))
    }

    /// Removes versions below `keep_from` (at most `max_versions` of them, oldest first) and
    /// frees the nodes only they used. The latest version is never removed.
    pub fn prune(&self, keep_from: u64, max_versions: usize) -> Result<Pruned, StoreError> {
        let _w = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        let Some((_, latest)) = self.versions()? else {
            return Ok(Pruned::default());
        };
        let keep_from = keep_from.min(latest);
        let mut pruned = Pruned::default();
        let mut freed = Vec::new();
        let txn = self.db.begin_write().map_err(|e| self.err(e))?;
        {
            let mut roots = txn.open_table(ROOTS).map_err(|e| self.err(e))?;
            let mut nodes = txn.open_table(NODES).map_err(|e| self.err(e))?;
            let old: Vec<(u64, Hash)> = roots
                .range(..keep_from)
                .map_err(|e| self.err(e))?
                .take(max_versions)
                .map(|r| r.map(|(k, v)| (k.value(), hash_of(v.value()))))
                .collect::<Result<_, _>>()
                .map_err(|e| self.err(e))?;
            for (version, root) in old {
                roots.remove(version).map_err(|e| self.err(e))?;
                pruned.versions += 1;
                let mut stack = vec![root];
                while let Some(h) = stack.pop() {
                    if h == EMPTY {
                        continue;
                    }
                    let Some(stored) = nodes
                        .get(&h[..])
                        .map_err(|e| self.err(e))?
                        .map(|g| g.value().to_vec())
                    else {
                        return Err(TreeError::Missing(h).into());
                    };
                    let rc = refcount(&stored);
                    if rc > 1 {
                        let v = with_refcount(rc - 1, &stored[8..]);
                        nodes.insert(&h[..], &v[..]).map_err(|e| self.err(e))?;
                        continue;
                    }
                    nodes.remove(&h[..]).map_err(|e| self.err(e))?;
                    freed.push(h);
                    pruned.nodes += 1;
                    match Node::decode(&stored[8..]) {
                        Ok(Node::Internal {
                            leaf, left, right, ..
                        }) => stack.extend([leaf, left, right]),
                        Ok(Node::Leaf { .. }) => {}
                        Err(source) => return Err(TreeError::Corrupt { hash: h, source }.into()),
                    }
                }
            }
        }
        txn.commit().map_err(|e| self.err(e))?;
        let mut cache = self.cache();
        for h in &freed {
            cache.remove(h);
        }
        Ok(pruned)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kv(i: u32) -> (Vec<u8>, Vec<u8>) {
        (
            format!("key {i}").into_bytes(),
            format!("value {i}").into_bytes(),
        )
    }

    #[test]
    fn versions_are_stored_read_and_pruned_without_losing_shared_nodes() {
        let d = tempfile::tempdir().expect("tmp");
        let db = NodeDb::open(&d.path().join("state.redb"), 1 << 20).expect("open");
        let mut root = EMPTY;
        let mut roots = Vec::new();
        // Round r writes keys r*10 .. r*10+9 and deletes the keys of round r-3.
        for r in 0..20u32 {
            let add: Vec<_> = (r * 10..r * 10 + 10).map(kv).collect();
            let del: Vec<_> = if r >= 3 {
                ((r - 3) * 10..(r - 3) * 10 + 10).map(|i| kv(i).0).collect()
            } else {
                Vec::new()
            };
            let log = add
                .iter()
                .map(|(k, v)| (&k[..], Some(&v[..])))
                .chain(del.iter().map(|k| (&k[..], None)));
            root = db.apply(u64::from(r), &root, log, None).expect("apply");
            roots.push(root);
        }
        assert_eq!(db.versions().expect("versions"), Some((0, 19)));
        // Round 19 holds the keys of rounds 17 to 19: 170..199.
        assert_eq!(
            db.get(&root, b"key 175").expect("get"),
            Some(b"value 175".to_vec())
        );
        assert_eq!(db.get(&root, b"key 165").expect("get"), None);
        // Old versions are readable until pruned.
        assert_eq!(
            db.get(&roots[5], b"key 35").expect("get"),
            Some(b"value 35".to_vec())
        );
        let before = db.node_count().expect("count");
        let p = db.prune(15, 64).expect("prune");
        assert_eq!(p.versions, 15);
        assert!(p.nodes > 0 && db.node_count().expect("count") == before - p.nodes);
        assert_eq!(db.versions().expect("versions"), Some((15, 19)));
        assert!(matches!(
            db.get(&roots[5], b"key 35"),
            Err(StoreError::Tree(TreeError::Missing(_)))
        ));
        // Every retained version still reads in full.
        for r in 15..20u32 {
            for i in (r.saturating_sub(2)) * 10..r * 10 + 10 {
                let (k, v) = kv(i);
                assert_eq!(
                    db.get(&roots[r as usize], &k).expect("get"),
                    Some(v),
                    "round {r} key {i}"
                );
            }
        }
        // Pruning everything but the latest leaves exactly the latest tree's nodes.
        db.prune(u64::MAX, 64).expect("prune");
        assert_eq!(db.versions().expect("versions"), Some((19, 19)));
        let src = crate::tree::MemSource::default();
        let mut fresh = Changes::new(&src, EMPTY);
        for i in 170..200 {
            let (k, v) = kv(i);
            fresh.insert(&k, &v).expect("insert");
        }
        assert_eq!(fresh.root(), root);
        let live = {
            let mut c = 0u64;
            let mut stack = vec![root];
            let reader = db.reader().expect("reader");
            while let Some(h) = stack.pop() {
                if h == EMPTY {
                    continue;
                }
                c += 1;
                if let Node::Internal {
                    leaf, left, right, ..
                } = &*reader.node(&h).expect("node")
                {
                    stack.extend([*leaf, *left, *right]);
                }
            }
            c
        };
        assert_eq!(db.node_count().expect("count"), live);
    }

    #[test]
    fn a_version_is_stored_once_and_versions_only_go_forward() {
        let d = tempfile::tempdir().expect("tmp");
        let db = NodeDb::open(&d.path().join("state.redb"), 1 << 20).expect("open");
        let r1 = db
            .apply(1, &EMPTY, [(&b"a"[..], Some(&b"1"[..]))], None)
            .expect("apply");
        assert_eq!(
            db.apply(1, &EMPTY, [(&b"a"[..], Some(&b"1"[..]))], None)
                .expect("again"),
            r1
        );
        assert!(matches!(
            db.apply(1, &EMPTY, [(&b"a"[..], Some(&b"2"[..]))], None),
            Err(StoreError::Conflict { .. })
        ));
        db.apply(2, &r1, [(&b"b"[..], Some(&b"2"[..]))], None)
            .expect("apply");
        assert!(matches!(
            db.apply(1, &EMPTY, [(&b"c"[..], Some(&b"3"[..]))], None),
            Err(StoreError::Old {
                version: 1,
                latest: 2
            })
        ));
        // A root other than the expected one is refused and nothing is stored.
        let want = [5; 32];
        assert!(matches!(
            db.apply(3, &r1, [(&b"c"[..], Some(&b"3"[..]))], Some(&want)),
            Err(StoreError::Mismatch { expected, .. }) if expected == want
        ));
        assert_eq!(db.root(3).expect("root"), None);
        // A root that was never stored cannot be built on.
        assert!(matches!(
            db.apply(3, &[9; 32], [(&b"c"[..], Some(&b"3"[..]))], None),
            Err(StoreError::Tree(TreeError::Missing(_)))
        ));
        // The store survives a reopen.
        drop(db);
        let db = NodeDb::open(&d.path().join("state.redb"), 1 << 20).expect("reopen");
        assert_eq!(db.versions().expect("versions"), Some((1, 2)));
        let r2 = db.root(2).expect("root").expect("stored");
        assert_eq!(db.get(&r2, b"a").expect("get"), Some(b"1".to_vec()));
    }

    #[test]
    fn the_node_cache_stays_within_its_bound() {
        let d = tempfile::tempdir().expect("tmp");
        let limit = 64 << 10;
        let db = NodeDb::open(&d.path().join("state.redb"), limit).expect("open");
        let mut root = EMPTY;
        for r in 0..20u32 {
            let kvs: Vec<_> = (r * 500..r * 500 + 500).map(kv).collect();
            root = db
                .apply(
                    u64::from(r),
                    &root,
                    kvs.iter().map(|(k, v)| (&k[..], Some(&v[..]))),
                    None,
                )
                .expect("apply");
            assert!(
                db.cached_bytes() <= limit,
                "{} > {limit}",
                db.cached_bytes()
            );
        }
        for i in (0..10_000).step_by(97) {
            let (k, v) = kv(i);
            assert_eq!(db.get(&root, &k).expect("get"), Some(v));
        }
        assert!(db.cached_bytes() <= limit);
    }
}
