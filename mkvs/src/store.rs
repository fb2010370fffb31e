//! The tree on disk, in redb. Nodes are stored in *pages*: a page is a connected piece of one
//! version's tree (a top node and descendants whose key depth is within the same
//! [`PAGE_DEPTH_BITS`]-bit band), stored as one record under `version ‖ page`, so reading a
//! key's path reads a record per band instead of one per node. A pointer's stored `version`
//! field is the node's location: the storing version in its low [`VERSION_BITS`] bits and the
//! page (1-based) above; page 0 is a node stored alone under `version ‖ hash` (state sync stores
//! nodes so, and so did stores written before pages, which read unchanged).
//!
//! A round also records which older records it made stale (`stale since version ‖ record`),
//! and pruning versions below K deletes exactly the records stale since K or earlier: no
//! reference counts. A page is stale as a whole: when a round replaces any node of a page, it
//! copies the page's other nodes that its tree still reaches into its own pages (they are the
//! neighbours of the replaced ones, read already). Reads go through a node cache bounded in
//! bytes, and redb's own page cache is bounded too: memory does not grow with the state.

use crate::node::{Hash, Node, Ptr, EMPTY};
use crate::proof::Proof;
use crate::tree::{Changes, NodeSource, TreeError};
use hashlink::LruCache;
use redb::{Database, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition};
use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

/// Hashing for maps keyed by node hashes and locations within one call (not from a peer's
/// choice of keys alone: hashes are of nodes this store computed or checked).
type Fast = hashlink::DefaultHashBuilder;

/// Records: creating version ‖ node hash → one stored node; creating version ‖ page → a page
/// (see [`page_entry`]).
const NODES: TableDefinition<'static, &[u8], &[u8]> = TableDefinition::new("mkvs_nodes");
/// Version → root hash ‖ the root node's location (u64 big-endian).
const ROOTS: TableDefinition<'static, u64, &[u8]> = TableDefinition::new("mkvs_roots");
/// Stale since version ‖ record key → nothing: the record's nodes are in no version from
/// `since` on.
const STALE: TableDefinition<'static, &[u8], &[u8]> = TableDefinition::new("mkvs_stale");

/// Bits of a location that hold the version; the page is above them.
pub const VERSION_BITS: u32 = 40;
const VERSION_MASK: u64 = (1 << VERSION_BITS) - 1;
/// The largest version the store holds (a location's version bits all set mean [`SCRATCH`]).
pub const MAX_VERSION: u64 = VERSION_MASK - 1;
/// Pages per version at most; nodes past them are stored alone.
const MAX_PAGES: u32 = (1 << (64 - VERSION_BITS)) - 2;
/// A page holds nodes whose key depth (where their label starts) is in one band of this many
/// bits: two levels where the tree is complete (a page of up to 3 internal nodes and their
/// leaves), fewer where it is sparse (long labels, the lowest levels). Small pages, because a
/// touched page is rewritten whole: at 1M keys, bands of 3 and 4 levels read 28-41 % fewer
/// records per round but made rounds 1.7-2.1x slower (p50) than bands of 2.
pub const PAGE_DEPTH_BITS: usize = 2;
/// Bytes of nodes a page holds at most (a full band of internal nodes is ~2.4 KB).
const PAGE_BYTES: usize = 6 << 10;
/// A node larger than this gets a page of its own: a page is rewritten whenever one of its
/// nodes changes, and a large value must not be copied along with its neighbours' changes.
const PAGE_NODE_MAX: usize = 512;

/// The location of page `page` (0: a node alone) of `version`.
fn loc(version: u64, page: u32) -> u64 {
    version | (u64::from(page) << VERSION_BITS)
}

fn loc_version(loc: u64) -> u64 {
    loc & VERSION_MASK
}

fn loc_page(loc: u64) -> u32 {
    // The high bits: 24 of them, never more.
    u32::try_from(loc >> VERSION_BITS).unwrap_or(u32::MAX)
}

/// The version of nodes computed but not stored yet (never a stored version).
const SCRATCH: u64 = u64::MAX;
/// In a state sync request, the version of a wanted root: "the stored version whose root has
/// this hash".
pub const SYNC_ROOT: u64 = u64::MAX;

/// A computed change: the tree at `prev` after the write log whose digest is `digest`.
struct Staged {
    prev: Ptr,
    digest: Hash,
    root: Ptr,
    created: HashMap<Hash, Arc<Node>>,
    stale: Vec<Ptr>,
}

/// A computed change laid out for storing (see [`NodeDb::place`]).
struct Placed {
    /// The new root.
    root: Ptr,
    /// Records (pages and nodes alone), in key order.
    rows: Vec<(RecordKey, Vec<u8>)>,
    /// Stale records, in key order.
    stale: Vec<Vec<u8>>,
    /// The stored nodes, parents first, for the node cache once committed: the next round's
    /// changes start from this version's paths, and its top levels are on every path.
    fresh: Vec<(Ptr, Arc<Node>)>,
}

/// A node to place: its pointer, its key depth (bits), and its parent's page and band.
type ToPlace = (Ptr, usize, Option<(u32, usize)>);

/// A digest of a write log (length-prefixed keys and values; a deletion differs from an
/// empty value).
fn log_digest(log: &[(&[u8], Option<&[u8]>)]) -> Hash {
    use sha2::{Digest, Sha512_256};
    let mut h = Sha512_256::new();
    for (k, v) in log {
        h.update((k.len() as u64).to_le_bytes());
        h.update(k);
        match v {
            Some(v) => {
                h.update([1]);
                h.update((v.len() as u64).to_le_bytes());
                h.update(v);
            }
            None => h.update([0]),
        }
    }
    h.finalize().into()
}

/// How far back a root hash is looked for among the stored versions.
const ROOT_SEARCH: usize = 10_000;

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
    /// Past the versions a location can name.
    #[error("version {version} is over the largest the state store holds ({MAX_VERSION})")]
    TooLarge {
        /// The version offered.
        version: u64,
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

/// The key of the record holding the node `p` points to: version ‖ hash (40 bytes) for a node
/// stored alone, version ‖ page (12 bytes) for a page.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct RecordKey {
    bytes: [u8; 40],
    len: usize,
}

impl RecordKey {
    fn of(p: &Ptr) -> Self {
        let mut bytes = [0u8; 40];
        bytes[..8].copy_from_slice(&loc_version(p.version).to_be_bytes());
        match loc_page(p.version) {
            0 => {
                bytes[8..].copy_from_slice(&p.hash);
                Self { bytes, len: 40 }
            }
            page => {
                bytes[8..12].copy_from_slice(&page.to_be_bytes());
                Self { bytes, len: 12 }
            }
        }
    }

    /// The key of the page at location `loc` (a page, not a node stored alone).
    fn page(loc: u64) -> Self {
        Self::of(&Ptr {
            hash: [0; 32],
            version: loc,
        })
    }

    /// A key read back from the store (`None`: not a key this store writes).
    fn parse(b: &[u8]) -> Option<Self> {
        if b.len() != 40 && b.len() != 12 {
            return None;
        }
        let mut bytes = [0u8; 40];
        bytes[..b.len()].copy_from_slice(b);
        Some(Self {
            bytes,
            len: b.len(),
        })
    }

    fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len]
    }

    /// The pointer of the node stored alone under this key, or the location of this page
    /// (hash all zeros).
    fn ptr(&self) -> Ptr {
        let mut v = [0u8; 8];
        v.copy_from_slice(&self.bytes[..8]);
        let version = u64::from_be_bytes(v);
        let mut hash = [0u8; 32];
        if self.len == 40 {
            hash.copy_from_slice(&self.bytes[8..]);
            Ptr { hash, version }
        } else {
            let mut page = [0u8; 4];
            page.copy_from_slice(&self.bytes[8..12]);
            Ptr {
                hash,
                version: loc(version, u32::from_be_bytes(page)),
            }
        }
    }
}

fn stale_key(since: u64, r: &RecordKey) -> Vec<u8> {
    let mut k = Vec::with_capacity(8 + r.len);
    k.extend_from_slice(&since.to_be_bytes());
    k.extend_from_slice(r.as_bytes());
    k
}

/// Appends `node`'s entry to the page `b`. A page is, for each node, its hash ‖ u32le(length)
/// ‖ its stored form.
fn page_entry(b: &mut Vec<u8>, hash: &Hash, node: &Node) {
    b.extend_from_slice(hash);
    b.extend_from_slice(
        &u32::try_from(node.stored_len())
            .unwrap_or(u32::MAX)
            .to_le_bytes(),
    );
    node.encode_into(b);
}

/// A page's entries (hash, stored form); an error when the lengths do not add up.
fn page_entries(b: &[u8]) -> Result<Vec<(Hash, &[u8])>, crate::node::DecodeError> {
    let mut out = Vec::new();
    let mut rest = b;
    while !rest.is_empty() {
        if rest.len() < 36 {
            return Err(crate::node::DecodeError::Truncated);
        }
        let mut h = [0u8; 32];
        h.copy_from_slice(&rest[..32]);
        let mut len = [0u8; 4];
        len.copy_from_slice(&rest[32..36]);
        let len = usize::try_from(u32::from_le_bytes(len))
            .map_err(|_| crate::node::DecodeError::TooLarge)?;
        let body = rest[36..]
            .get(..len)
            .ok_or(crate::node::DecodeError::Truncated)?;
        out.push((h, body));
        rest = &rest[36 + len..];
    }
    Ok(out)
}

/// The nodes of the record holding `p`'s node, with their pointers (one for a node stored
/// alone); `None` when there is no such record.
#[allow(clippy::type_complexity)]
fn load(
    table: &impl ReadableTable<&'static [u8], &'static [u8]>,
    p: &Ptr,
) -> Result<Option<Vec<(Ptr, Arc<Node>)>>, TreeError> {
    let key = RecordKey::of(p);
    let Some(got) = table
        .get(key.as_bytes())
        .map_err(|e| TreeError::Store(e.to_string()))?
    else {
        return Ok(None);
    };
    let corrupt = |source| TreeError::Corrupt {
        hash: p.hash,
        source,
    };
    if key.len == 40 {
        let node = Node::decode(got.value()).map_err(corrupt)?;
        return Ok(Some(vec![(*p, Arc::new(node))]));
    }
    let mut out = Vec::new();
    for (hash, body) in page_entries(got.value()).map_err(corrupt)? {
        let node = Node::decode(body).map_err(|source| TreeError::Corrupt { hash, source })?;
        out.push((
            Ptr {
                hash,
                version: p.version,
            },
            Arc::new(node),
        ));
    }
    Ok(Some(out))
}

/// How many nodes a record holds, and their pointers when it is a page.
fn record_nodes(key: &RecordKey, value: &[u8]) -> Vec<Ptr> {
    if key.len == 40 {
        return vec![key.ptr()];
    }
    let at = key.ptr().version;
    page_entries(value)
        .unwrap_or_default()
        .into_iter()
        .map(|(hash, _)| Ptr { hash, version: at })
        .collect()
}

fn root_value(p: &Ptr) -> [u8; 40] {
    let mut v = [0u8; 40];
    v[..32].copy_from_slice(&p.hash);
    v[32..].copy_from_slice(&p.version.to_be_bytes());
    v
}

fn root_of(v: &[u8]) -> Ptr {
    let mut hash = [0u8; 32];
    let mut ver = [0u8; 8];
    if v.len() == 40 {
        hash.copy_from_slice(&v[..32]);
        ver.copy_from_slice(&v[32..]);
    }
    Ptr {
        hash,
        version: u64::from_be_bytes(ver),
    }
}

/// What an entry of the node cache takes besides its node: the list node holding the key, the
/// `Arc` and two links (80 bytes allocated), and its slot in the hash table.
const ENTRY: usize = 96;

/// Nodes by location, least recently used first out, bounded by their weight in bytes.
struct Cache {
    map: LruCache<Ptr, Arc<Node>>,
    weight: usize,
    limit: usize,
}

impl Cache {
    fn get(&mut self, p: &Ptr) -> Option<Arc<Node>> {
        self.map.get(p).cloned()
    }

    fn put(&mut self, p: Ptr, n: Arc<Node>) {
        let w = n.weight() + ENTRY;
        if w > self.limit {
            return;
        }
        if let Some(old) = self.map.insert(p, n) {
            self.weight -= old.weight() + ENTRY;
        }
        self.weight += w;
        while self.weight > self.limit {
            match self.map.remove_lru() {
                Some((_, n)) => self.weight -= n.weight() + ENTRY,
                None => break,
            }
        }
    }

    fn remove(&mut self, p: &Ptr) {
        if let Some(n) = self.map.remove(p) {
            self.weight -= n.weight() + ENTRY;
        }
    }
}

/// What [`NodeDb::prune`] removed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Pruned {
    /// Versions removed.
    pub versions: u64,
    /// Nodes freed (with the records holding them).
    pub nodes: u64,
    /// Unreachable records are left to remove (always false from [`NodeDb::prune`], which
    /// removes them all).
    pub pending: bool,
}

/// Write logs shorter than this are computed without a prefetch of their keys' paths: a
/// thread costs more than their reads could save.
pub const PREFETCH_MIN: usize = 64;

/// Nodes removed per pruning transaction: ~10 ms of page writes on a large store.
pub const PRUNE_CHUNK: usize = 1_000;
/// Unreachable nodes read and sorted together by [`NodeDb::prune`] (40 bytes each: ~5 MB).
pub const PRUNE_SORT: usize = 131_072;

/// The versioned tree in a redb file.
pub struct NodeDb {
    db: Database,
    path: String,
    cache: Mutex<Cache>,
    /// Serialises changes: a prune between computing and storing a version could free nodes
    /// the new version shares.
    writer: parking_lot::Mutex<()>,
    /// The last computed change (one round's nodes at most).
    staged: Mutex<Option<Arc<Staged>>>,
    /// Bumped when the whole tree is replaced ([`Self::clear`]): a removal that began before
    /// stops.
    generation: std::sync::atomic::AtomicU64,
    /// Records read from redb (node cache misses) and the nanoseconds those reads took.
    reads: [std::sync::atomic::AtomicU64; 2],
    /// Nodes stored by [`Self::apply`] (new ones and those copied with their page).
    written: std::sync::atomic::AtomicU64,
    /// The last computation read from disk (or none ran yet): the next one prefetches.
    missed: std::sync::atomic::AtomicBool,
    /// Computations that ran with a prefetch.
    prefetches: std::sync::atomic::AtomicU64,
}

/// What reading nodes from redb (the node cache's misses) has cost since the store opened.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Reads {
    /// Records (pages, or nodes stored alone) read and decoded.
    pub records: u64,
    /// Time spent in those reads (redb's lookup and the decoding), in nanoseconds.
    pub nanos: u64,
}

/// A read view of the store (one redb read transaction) that serves [`NodeSource`].
pub struct Reader<'a> {
    db: &'a NodeDb,
    nodes: redb::ReadOnlyTable<&'static [u8], &'static [u8]>,
}

impl NodeSource for Reader<'_> {
    fn node(&self, p: &Ptr) -> Result<Arc<Node>, TreeError> {
        if let Some(n) = self.db.cache().get(p) {
            return Ok(n);
        }
        let started = std::time::Instant::now();
        let got = load(&self.nodes, p)?.ok_or(TreeError::Missing(*p))?;
        let [count, nanos] = &self.db.reads;
        count.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        nanos.fetch_add(
            u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX),
            std::sync::atomic::Ordering::Relaxed,
        );
        // The whole page enters the cache: its other nodes are the next ones down the path.
        let mut found = None;
        let mut cache = self.db.cache();
        for (q, n) in got {
            if q == *p {
                found = Some(n);
            } else {
                cache.put(q, n);
            }
        }
        let node = found.ok_or(TreeError::Missing(*p))?;
        cache.put(*p, node.clone());
        Ok(node)
    }
}

impl NodeDb {
    /// Opens (or creates) the store at `path` holding at most `cache_bytes` of it in memory in
    /// total: half decoded nodes, half redb's page cache.
    pub fn open(path: &Path, cache_bytes: usize) -> Result<Self, StoreError> {
        let shown = path.display().to_string();
        let cache_bytes = cache_bytes / 2;
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
            writer: parking_lot::Mutex::new(()),
            staged: Mutex::new(None),
            generation: std::sync::atomic::AtomicU64::new(0),
            reads: Default::default(),
            written: Default::default(),
            missed: std::sync::atomic::AtomicBool::new(true),
            prefetches: Default::default(),
        };
        let txn = s.db.begin_write().map_err(|e| s.err(e))?;
        txn.open_table(NODES).map_err(|e| s.err(e))?;
        txn.open_table(ROOTS).map_err(|e| s.err(e))?;
        txn.open_table(STALE).map_err(|e| s.err(e))?;
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

    /// Bytes of redb's page cache (read pages and written pages not yet evicted) now.
    pub fn page_cache_bytes(&self) -> usize {
        self.db.cache_stats().used_bytes()
    }

    /// Nodes stored by rounds so far: a round's new nodes and the nodes copied with the pages
    /// it rewrote (not those of a state sync).
    pub fn nodes_written(&self) -> u64 {
        self.written.load(Ordering::Relaxed)
    }

    /// Records read from redb so far (what the node cache missed), and their cost.
    pub fn reads(&self) -> Reads {
        let [records, nanos] = &self.reads;
        Reads {
            records: records.load(std::sync::atomic::Ordering::Relaxed),
            nanos: nanos.load(std::sync::atomic::Ordering::Relaxed),
        }
    }

    /// What the two caches may hold together: the setting the store was opened with.
    pub fn cache_limit(&self) -> usize {
        self.cache().limit * 2
    }

    /// A consistent read view.
    pub fn reader(&self) -> Result<Reader<'_>, StoreError> {
        let txn = self.db.begin_read().map_err(|e| self.err(e))?;
        let nodes = txn.open_table(NODES).map_err(|e| self.err(e))?;
        Ok(Reader { db: self, nodes })
    }

    /// Where the root node of a stored version with root hash `root` is (the empty tree needs
    /// none); the latest versions are searched first.
    pub fn resolve(&self, root: &Hash) -> Result<Ptr, StoreError> {
        if *root == EMPTY {
            return Ok(Ptr::NONE);
        }
        let txn = self.db.begin_read().map_err(|e| self.err(e))?;
        let roots = txn.open_table(ROOTS).map_err(|e| self.err(e))?;
        for item in roots
            .iter()
            .map_err(|e| self.err(e))?
            .rev()
            .take(ROOT_SEARCH)
        {
            let (_, v) = item.map_err(|e| self.err(e))?;
            let p = root_of(v.value());
            if p.hash == *root {
                return Ok(p);
            }
        }
        Err(TreeError::Missing(Ptr {
            hash: *root,
            version: 0,
        })
        .into())
    }

    /// Whether `root` is the root of a stored version (or the empty tree).
    pub fn has_root(&self, root: &Hash) -> Result<bool, StoreError> {
        match self.resolve(root) {
            Ok(_) => Ok(true),
            Err(StoreError::Tree(TreeError::Missing(_))) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// The value of `key` in the tree whose root is `root`.
    pub fn get(&self, root: &Hash, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        let root = self.resolve(root)?;
        Ok(crate::tree::get(&self.reader()?, &root, key)?)
    }

    /// The values of `keys` in the tree whose root is `root`, in their order, or `None` as
    /// soon as they add up to more than `max_bytes` (what is read stops there: whoever names the
    /// keys cannot make this hold more than `max_bytes` plus one value). The root is found and a
    /// read view opened once for all of them.
    pub fn get_many<'k>(
        &self,
        root: &Hash,
        keys: impl IntoIterator<Item = &'k [u8]>,
        max_bytes: usize,
    ) -> Result<Option<Vec<Option<Vec<u8>>>>, StoreError> {
        let root = self.resolve(root)?;
        let reader = self.reader()?;
        let (mut out, mut bytes) = (Vec::new(), 0usize);
        for k in keys {
            let v = crate::tree::get(&reader, &root, k)?;
            bytes = bytes.saturating_add(v.as_ref().map_or(0, Vec::len));
            if bytes > max_bytes {
                return Ok(None);
            }
            out.push(v);
        }
        Ok(Some(out))
    }

    /// A proof of `key`'s value (or absence) in the tree whose root is `root`.
    pub fn prove(&self, root: &Hash, key: &[u8]) -> Result<Proof, StoreError> {
        let root = self.resolve(root)?;
        Ok(Proof::build(&self.reader()?, &root, key)?)
    }

    /// Runs `log` on the tree at `prev` (nodes under [`SCRATCH`]); keeps the result so that
    /// storing the same change next needs no second computation.
    fn stage(
        &self,
        prev: &Hash,
        log: &[(&[u8], Option<&[u8]>)],
    ) -> Result<Arc<Staged>, StoreError> {
        let digest = log_digest(log);
        let at = self.resolve(prev)?;
        if let Some(s) = self.staged().as_ref() {
            if s.prev == at && s.digest == digest {
                return Ok(s.clone());
            }
        }
        let reader = self.reader()?;
        // Keys the computation has started on; the prefetch stops where they meet.
        let started = AtomicUsize::new(0);
        // A prefetch only pays when the paths are not all in memory: after a computation that
        // read nothing from disk, the next runs without one (a state the cache holds would pay
        // a thread and a second walk through the cache for nothing), until one reads again.
        let records_before = self.reads().records;
        let prefetch = log.len() >= PREFETCH_MIN && self.missed.load(Ordering::Relaxed);
        let staged = std::thread::scope(|s| {
            let ahead = prefetch.then(|| {
                let started = &started;
                self.prefetches.fetch_add(1, Ordering::Relaxed);
                s.spawn(move || self.prefetch(&at, log, started))
            });
            let mut c = Changes::new(&reader, at, SCRATCH);
            let ran = log.iter().enumerate().try_for_each(|(i, (k, v))| {
                started.store(i + 1, Ordering::Relaxed);
                match v {
                    Some(v) => c.insert(k, v),
                    None => c.remove(k),
                }
            });
            // Stops the prefetch when the computation failed part-way too.
            started.store(log.len(), Ordering::Relaxed);
            if let Some(h) = ahead {
                // A prefetch that failed or panicked only saved less: the computation read
                // (and checked) every node it needed itself.
                let _ = h.join();
            }
            ran?;
            Ok::<_, StoreError>(Staged {
                prev: at,
                digest,
                root: c.root(),
                created: c.created().clone(),
                stale: c.stale().to_vec(),
            })
        })?;
        self.missed
            .store(self.reads().records > records_before, Ordering::Relaxed);
        let staged = Arc::new(staged);
        *self.staged() = Some(staged.clone());
        Ok(staged)
    }

    /// Reads the paths of `log`'s keys in the tree at `root` into the node cache, from the last
    /// key back, until it meets the keys the computation has `started` on: on a state larger
    /// than the cache, each write reads a few pages from disk, and the computation then finds
    /// the second part of them in memory while it works on the first. Errors end the prefetch
    /// (the computation meets them itself).
    fn prefetch(&self, root: &Ptr, log: &[(&[u8], Option<&[u8]>)], started: &AtomicUsize) {
        let Ok(reader) = self.reader() else {
            return;
        };
        for (i, (k, _)) in log.iter().enumerate().rev() {
            if started.load(Ordering::Relaxed) > i || crate::tree::get(&reader, root, k).is_err() {
                return;
            }
        }
    }

    fn staged(&self) -> MutexGuard<'_, Option<Arc<Staged>>> {
        self.staged.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The root `log` leads to from `prev`, without storing anything. `None` deletes a key.
    pub fn compute<'k>(
        &self,
        prev: &Hash,
        log: impl IntoIterator<Item = (&'k [u8], Option<&'k [u8]>)>,
    ) -> Result<Hash, StoreError> {
        let log: Vec<_> = log.into_iter().collect();
        Ok(self.stage(prev, &log)?.root.hash)
    }

    /// Applies `log` to the tree at `prev` and stores the result as `version`; returns its
    /// root. When `expected` is given, a different root is refused before anything is stored.
    /// Storing a version again with the same root does nothing. The computation of a preceding
    /// [`Self::compute`] of the same change is reused.
    pub fn apply<'k>(
        &self,
        version: u64,
        prev: &Hash,
        log: impl IntoIterator<Item = (&'k [u8], Option<&'k [u8]>)>,
        expected: Option<&Hash>,
    ) -> Result<Hash, StoreError> {
        let _w = self.writer.lock();
        if version > MAX_VERSION {
            return Err(StoreError::TooLarge { version });
        }
        if let Some(latest) = self.latest_version()? {
            if version < latest {
                return Err(StoreError::Old { version, latest });
            }
        }
        let log: Vec<_> = log.into_iter().collect();
        let staged = self.stage(prev, &log)?;
        let root = staged.root.hash;
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
        if let Some(expected) = expected.filter(|e| **e != root) {
            return Err(StoreError::Mismatch {
                expected: *expected,
                computed: root,
            });
        }
        let placed = self.place(version, &staged)?;
        let txn = self.db.begin_write().map_err(|e| self.err(e))?;
        {
            // In key order. A version's records and stale records are each one new range at
            // the end of their table (versions only go forward): sorted, they fill page after
            // page instead of landing on random pages of the range.
            let mut nodes = txn.open_table(NODES).map_err(|e| self.err(e))?;
            for (k, v) in &placed.rows {
                nodes
                    .insert(k.as_bytes(), &v[..])
                    .map_err(|e| self.err(e))?;
            }
            let mut stale = txn.open_table(STALE).map_err(|e| self.err(e))?;
            for k in &placed.stale {
                stale.insert(&k[..], &[][..]).map_err(|e| self.err(e))?;
            }
            let mut roots = txn.open_table(ROOTS).map_err(|e| self.err(e))?;
            roots
                .insert(version, &root_value(&placed.root)[..])
                .map_err(|e| self.err(e))?;
        }
        txn.commit().map_err(|e| self.err(e))?;
        self.written
            .fetch_add(placed.fresh.len() as u64, Ordering::Relaxed);
        // Leaves first, the root last: when the round is larger than the cache, what stays is
        // the top of the tree (the walk placed parents before children).
        let mut cache = self.cache();
        for (p, n) in placed.fresh.into_iter().rev() {
            cache.put(p, n);
        }
        Ok(root)
    }

    /// Where a computed change goes as `version`: its new nodes, and the nodes it copies, in
    /// pages. A page of which the change replaces a node is stale from `version` on as a whole,
    /// so the nodes of it the new tree still reaches are copied too: a page is a connected piece
    /// (a top and descendants), so those are reached from a new node through nodes of the same
    /// page, and the walk from the root finds them all. A node stored alone is copied into a
    /// page when its parent is rewritten in the same band (stores written before pages, and
    /// synced ones, are paged as they change).
    fn place(&self, version: u64, staged: &Staged) -> Result<Placed, StoreError> {
        let hit: HashSet<u64, Fast> = staged
            .stale
            .iter()
            .filter(|p| loc_page(p.version) != 0)
            .map(|p| p.version)
            .collect();
        let rewritten = |p: &Ptr, same_band: bool| {
            p.version == SCRATCH
                || match loc_page(p.version) {
                    0 => same_band,
                    _ => hit.contains(&p.version),
                }
        };
        let reader = self.reader()?;
        // Rewritten nodes, parents first, with their page (0: alone).
        let mut order: Vec<(Hash, Arc<Node>, u32)> = Vec::new();
        let mut page_of: HashMap<Hash, u32, Fast> = HashMap::default();
        // Bytes of nodes in each page (index 0: nodes alone).
        let mut pages: Vec<usize> = vec![0];
        let mut kept_old: HashSet<Ptr, Fast> = HashSet::default();
        let mut copied_alone: Vec<RecordKey> = Vec::new();
        let mut stack: Vec<ToPlace> = Vec::new();
        if !staged.root.is_none() {
            if rewritten(&staged.root, false) {
                stack.push((staged.root, 0, None));
            } else {
                kept_old.insert(staged.root);
            }
        }
        while let Some((p, depth, parent)) = stack.pop() {
            let node = if p.version == SCRATCH {
                staged
                    .created
                    .get(&p.hash)
                    .cloned()
                    .ok_or(TreeError::Missing(p))?
            } else {
                if loc_page(p.version) == 0 {
                    copied_alone.push(RecordKey::of(&p));
                }
                reader.node(&p)?
            };
            let size = node.stored_len() + 36;
            let band = depth / PAGE_DEPTH_BITS;
            let page = match parent {
                Some((pp, pband))
                    if pp != 0
                        && pband == band
                        && size <= PAGE_NODE_MAX
                        && pages[pp as usize] + size <= PAGE_BYTES =>
                {
                    pp
                }
                _ if pages.len() <= MAX_PAGES as usize => {
                    pages.push(0);
                    u32::try_from(pages.len() - 1).unwrap_or(0)
                }
                _ => 0,
            };
            pages[page as usize] += size;
            page_of.insert(p.hash, page);
            if let Node::Internal {
                label_bits,
                leaf,
                left,
                right,
                ..
            } = &*node
            {
                // A child's label starts where this one's ends (the side bit is its first).
                let d = depth + usize::from(*label_bits);
                for c in [*leaf, *left, *right] {
                    if c.is_none() {
                        continue;
                    }
                    if rewritten(&c, d / PAGE_DEPTH_BITS == band) {
                        stack.push((c, d, Some((page, band))));
                    } else {
                        kept_old.insert(c);
                    }
                }
            }
            order.push((p.hash, node, page));
        }
        drop(reader);
        let at = |c: Ptr| match page_of.get(&c.hash) {
            Some(page) if !c.is_none() => Ptr {
                hash: c.hash,
                version: loc(version, *page),
            },
            _ => c,
        };
        let root = at(staged.root);
        let mut rows: Vec<(RecordKey, Vec<u8>)> = Vec::new();
        // Each page's entries are written straight into its record.
        let mut in_pages: Vec<Vec<u8>> = vec![Vec::new(); pages.len()];
        let mut fresh = Vec::with_capacity(order.len());
        for (hash, node, page) in order {
            // A leaf has no children to point elsewhere: the same node, not a copy.
            let node = match &*node {
                Node::Leaf { .. } => node,
                Node::Internal { .. } => Arc::new(node.map_children(at)),
            };
            let p = Ptr {
                hash,
                version: loc(version, page),
            };
            if page == 0 {
                rows.push((RecordKey::of(&p), node.encode()));
            } else {
                let b = &mut in_pages[page as usize];
                if b.is_empty() {
                    b.reserve_exact(pages[page as usize]);
                }
                page_entry(b, &hash, &node);
            }
            fresh.push((p, node));
        }
        for (page, b) in in_pages.into_iter().enumerate().skip(1) {
            let key = RecordKey::page(loc(version, u32::try_from(page).unwrap_or(0)));
            rows.push((key, b));
        }
        rows.sort_unstable_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
        let alone_replaced = staged
            .stale
            .iter()
            .filter(|p| loc_page(p.version) == 0 && !kept_old.contains(p))
            .map(RecordKey::of);
        let pages_replaced = hit.iter().map(|l| RecordKey::page(*l));
        let mut stale: Vec<Vec<u8>> = alone_replaced
            .chain(pages_replaced)
            .chain(copied_alone)
            .map(|k| stale_key(version, &k))
            .collect();
        stale.sort_unstable();
        stale.dedup();
        Ok(Placed {
            root,
            rows,
            stale,
            fresh,
        })
    }

    /// Nodes for a peer's state sync: each wanted node (a `version` of [`SYNC_ROOT`] names a
    /// stored version's root by its hash) and then its descendants, breadth first, until
    /// `max_nodes` or `max_bytes` (at least one node). Stored form, child versions included:
    /// they tell the peer where to ask for the children. Nodes this store does not hold are
    /// skipped. Reads do not enter the node cache: a peer's sync does not evict what the
    /// runtime reads.
    pub fn export(
        &self,
        wants: &[Ptr],
        max_nodes: usize,
        max_bytes: usize,
    ) -> Result<Vec<Vec<u8>>, StoreError> {
        Ok(self.export_counted(wants, max_nodes, max_bytes)?.0)
    }

    /// [`Self::export`], and how many records it read.
    fn export_counted(
        &self,
        wants: &[Ptr],
        max_nodes: usize,
        max_bytes: usize,
    ) -> Result<(Vec<Vec<u8>>, usize), StoreError> {
        let mut loads = 0;
        let txn = self.db.begin_read().map_err(|e| self.err(e))?;
        let table = txn.open_table(NODES).map_err(|e| self.err(e))?;
        let mut queue: std::collections::VecDeque<Ptr> = std::collections::VecDeque::new();
        // A root is looked for among the stored versions: one per request.
        let mut roots = 0;
        for w in wants.iter().take(crate::sync::MAX_WANTS) {
            if w.version == SYNC_ROOT {
                roots += 1;
                if roots > 1 {
                    continue;
                }
                match self.resolve(&w.hash) {
                    Ok(p) if !p.is_none() => queue.push_back(p),
                    Ok(_) | Err(StoreError::Tree(TreeError::Missing(_))) => {}
                    Err(e) => return Err(e),
                }
            } else if !w.is_none() {
                queue.push_back(*w);
            }
        }
        let mut out = Vec::new();
        let mut bytes = 0usize;
        // Pages read for this request, as stored: a breadth-first walk comes back to a page for
        // each of its nodes, and reading it each time would cost a peer's request up to ~30
        // times the nodes it gets. Only the wanted node of a page is decoded (a want whose hash
        // is not in the page costs no decoding), and what is read is bounded too: twice
        // `max_bytes` (then the chunk ends), and the held pages to EXPORT_HELD bytes.
        const EXPORT_HELD: usize = 4 << 20;
        let mut pages: HashMap<u64, Vec<u8>> = HashMap::new();
        let (mut held, mut read) = (0usize, 0usize);
        let read_limit = max_bytes.saturating_mul(2);
        while let Some(p) = queue.pop_front() {
            if out.len() >= max_nodes || read > read_limit {
                break;
            }
            let cached = self.cache().get(&p);
            let node = match cached {
                Some(n) => n,
                None if loc_page(p.version) == 0 => {
                    loads += 1;
                    let Some(got) = load(&table, &p)? else {
                        continue;
                    };
                    let Some((_, n)) = got.into_iter().find(|(q, _)| *q == p) else {
                        continue;
                    };
                    read = read.saturating_add(n.stored_len());
                    n
                }
                None => {
                    if !pages.contains_key(&p.version) {
                        loads += 1;
                        let key = RecordKey::of(&p);
                        let Some(got) = table.get(key.as_bytes()).map_err(|e| self.err(e))? else {
                            continue;
                        };
                        let raw = got.value().to_vec();
                        read = read.saturating_add(raw.len());
                        if held.saturating_add(raw.len()) > EXPORT_HELD {
                            pages.clear();
                            held = 0;
                        }
                        held += raw.len();
                        pages.insert(p.version, raw);
                    }
                    let raw = pages.get(&p.version).map_or(&[][..], |r| &r[..]);
                    let corrupt = |source| TreeError::Corrupt {
                        hash: p.hash,
                        source,
                    };
                    let entries = page_entries(raw).map_err(corrupt)?;
                    let Some((_, body)) = entries.into_iter().find(|(h, _)| *h == p.hash) else {
                        continue;
                    };
                    Arc::new(Node::decode(body).map_err(corrupt)?)
                }
            };
            let encoded = node.encode();
            if !out.is_empty() && bytes.saturating_add(encoded.len()) > max_bytes {
                break;
            }
            bytes += encoded.len();
            out.push(encoded);
            queue.extend(
                node.children()
                    .into_iter()
                    .flatten()
                    .filter(|c| !c.is_none()),
            );
        }
        Ok((out, loads))
    }

    /// Removes every version and node (before a state sync replaces the tree).
    pub(crate) fn clear(&self) -> Result<(), StoreError> {
        let _w = self.writer.lock();
        self.generation
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let txn = self.db.begin_write().map_err(|e| self.err(e))?;
        for t in [NODES, STALE] {
            txn.delete_table(t).map_err(|e| self.err(e))?;
            txn.open_table(t).map_err(|e| self.err(e))?;
        }
        txn.delete_table(ROOTS).map_err(|e| self.err(e))?;
        txn.open_table(ROOTS).map_err(|e| self.err(e))?;
        txn.commit().map_err(|e| self.err(e))?;
        let mut cache = self.cache();
        cache.map.clear();
        cache.weight = 0;
        drop(cache);
        *self.staged() = None;
        Ok(())
    }

    /// Stores checked nodes of a state being synced under `version`, their children under it
    /// too (where the sync stores them).
    pub(crate) fn import(&self, version: u64, nodes: &[Node]) -> Result<(), StoreError> {
        let _w = self.writer.lock();
        if version > MAX_VERSION {
            return Err(StoreError::TooLarge { version });
        }
        let at = |p: Ptr| {
            if p.is_none() {
                p
            } else {
                Ptr {
                    hash: p.hash,
                    version,
                }
            }
        };
        let txn = self.db.begin_write().map_err(|e| self.err(e))?;
        {
            let mut table = txn.open_table(NODES).map_err(|e| self.err(e))?;
            // Each alone (a chunk is not a connected piece of the tree), in key order as in
            // `apply`; rounds page them as they change.
            let mut rows: Vec<(RecordKey, Vec<u8>)> = nodes
                .iter()
                .map(|n| {
                    let key = RecordKey::of(&Ptr {
                        hash: n.hash(),
                        version,
                    });
                    (key, n.map_children(at).encode())
                })
                .collect();
            rows.sort_unstable_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
            for (k, v) in &rows {
                table
                    .insert(k.as_bytes(), &v[..])
                    .map_err(|e| self.err(e))?;
            }
        }
        txn.commit().map_err(|e| self.err(e))
    }

    /// Records `root` as `version` once its nodes are stored (a synced state becomes
    /// readable).
    pub(crate) fn set_root(&self, version: u64, root: &Hash) -> Result<(), StoreError> {
        let _w = self.writer.lock();
        let p = if *root == EMPTY {
            Ptr::NONE
        } else {
            Ptr {
                hash: *root,
                version,
            }
        };
        let txn = self.db.begin_write().map_err(|e| self.err(e))?;
        {
            if !p.is_none() {
                let nodes = txn.open_table(NODES).map_err(|e| self.err(e))?;
                if nodes
                    .get(RecordKey::of(&p).as_bytes())
                    .map_err(|e| self.err(e))?
                    .is_none()
                {
                    return Err(TreeError::Missing(p).into());
                }
            }
            let mut roots = txn.open_table(ROOTS).map_err(|e| self.err(e))?;
            roots
                .insert(version, &root_value(&p)[..])
                .map_err(|e| self.err(e))?;
        }
        txn.commit().map_err(|e| self.err(e))
    }

    /// The root hash stored for `version`.
    pub fn root(&self, version: u64) -> Result<Option<Hash>, StoreError> {
        let txn = self.db.begin_read().map_err(|e| self.err(e))?;
        let roots = txn.open_table(ROOTS).map_err(|e| self.err(e))?;
        let got = roots.get(version).map_err(|e| self.err(e))?;
        Ok(got.map(|g| root_of(g.value()).hash))
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
    /// (A scan of every record: for tests and tools, not for a running node.)
    pub fn node_count(&self) -> Result<u64, StoreError> {
        let txn = self.db.begin_read().map_err(|e| self.err(e))?;
        let nodes = txn.open_table(NODES).map_err(|e| self.err(e))?;
        let mut count = 0u64;
        for item in nodes.iter().map_err(|e| self.err(e))? {
            let (k, v) = item.map_err(|e| self.err(e))?;
            if let Some(key) = RecordKey::parse(k.value()) {
                count += record_nodes(&key, v.value()).len() as u64;
            }
        }
        Ok(count)
    }

    /// Number of stored records (pages and nodes stored alone).
    pub fn record_count(&self) -> Result<u64, StoreError> {
        let txn = self.db.begin_read().map_err(|e| self.err(e))?;
        let nodes = txn.open_table(NODES).map_err(|e| self.err(e))?;
        nodes.len().map_err(|e| self.err(e))
    }

    /// Removes the versions before `keep_from` (at most `max_versions` of them, oldest first)
    /// and the nodes no remaining version reaches. The latest version stays.
    ///
    /// A removed node costs a page write wherever it is (nodes are stored by the version that
    /// created them, and the ones a later version replaced are scattered over the whole store),
    /// so the unreachable nodes are read in batches of up to [`PRUNE_SORT`], sorted by their
    /// place in the store and removed in that order, [`PRUNE_CHUNK`] per transaction: the
    /// deletions of a batch that share a page rewrite it once, not once per chunk; the stale
    /// records go afterwards as one range. The writer lock is handed over between chunks (a
    /// version being stored waits for one chunk at most). (Commits that do not wait for the
    /// disk were tried: no faster in all — the next durable commit writes their pages — and the
    /// file doubled, redb reusing their freed pages only later.)
    pub fn prune(&self, keep_from: u64, max_versions: usize) -> Result<Pruned, StoreError> {
        self.prune_sorting(keep_from, max_versions, PRUNE_SORT)
    }

    /// [`Self::prune`], sorting `sort` nodes at a time.
    fn prune_sorting(
        &self,
        keep_from: u64,
        max_versions: usize,
        sort: usize,
    ) -> Result<Pruned, StoreError> {
        let generation = self.generation.load(std::sync::atomic::Ordering::SeqCst);
        let mut pruned = Pruned {
            versions: self.drop_versions(keep_from, max_versions)?,
            ..Pruned::default()
        };
        loop {
            let (mut dead, last, more) = self.unreachable(sort.max(1))?;
            let Some(last) = last else {
                break;
            };
            dead.sort_unstable_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
            for chunk in dead.chunks(PRUNE_CHUNK) {
                match self.remove_nodes(chunk, generation)? {
                    Some(n) => pruned.nodes += n,
                    // The tree was replaced (a state sync) meanwhile: nothing of this removal
                    // applies to it.
                    None => return Ok(pruned),
                }
            }
            if !self.forget_stale(&last, generation)? || !more {
                break;
            }
        }
        Ok(pruned)
    }

    /// Removes the stored versions before `keep_from` (at most `max_versions`, oldest first,
    /// never the latest); returns how many.
    fn drop_versions(&self, keep_from: u64, max_versions: usize) -> Result<u64, StoreError> {
        let _w = self.writer.lock();
        let Some((_, latest)) = self.versions()? else {
            return Ok(0);
        };
        let keep_from = keep_from.min(latest);
        let txn = self.db.begin_write().map_err(|e| self.err(e))?;
        let removed = {
            let mut roots = txn.open_table(ROOTS).map_err(|e| self.err(e))?;
            let old: Vec<u64> = roots
                .range(..keep_from)
                .map_err(|e| self.err(e))?
                .take(max_versions)
                .map(|r| r.map(|(k, _)| k.value()))
                .collect::<Result<_, _>>()
                .map_err(|e| self.err(e))?;
            for v in &old {
                roots.remove(*v).map_err(|e| self.err(e))?;
            }
            old.len() as u64
        };
        txn.commit().map_err(|e| self.err(e))?;
        Ok(removed)
    }

    /// Up to `max` nodes no remaining version reaches (their keys), the last stale
    /// record read, and whether there are more. Every version below the first one left is
    /// gone, so the nodes stale since then or earlier are in no remaining version; a version
    /// stored later is newer than every stored one, so it adds no record to that range.
    #[allow(clippy::type_complexity)]
    fn unreachable(
        &self,
        max: usize,
    ) -> Result<(Vec<RecordKey>, Option<Vec<u8>>, bool), StoreError> {
        let Some((first_left, _)) = self.versions()? else {
            return Ok((Vec::new(), None, false));
        };
        let txn = self.db.begin_read().map_err(|e| self.err(e))?;
        let stale = txn.open_table(STALE).map_err(|e| self.err(e))?;
        // Keys start with the 8-byte `since`: every key of a version up to `first_left` sorts
        // before the next version's prefix.
        let hi = first_left.saturating_add(1).to_be_bytes();
        let (mut dead, mut last, mut more) = (Vec::new(), None, false);
        for item in stale.range(..&hi[..]).map_err(|e| self.err(e))? {
            let (k, _) = item.map_err(|e| self.err(e))?;
            if dead.len() == max {
                more = true;
                break;
            }
            let k = k.value();
            let Some(record) = k.get(8..).and_then(RecordKey::parse) else {
                // Not a record this store writes: leave it.
                continue;
            };
            dead.push(record);
            last = Some(k.to_vec());
        }
        Ok((dead, last, more))
    }

    /// Removes the records `keys` (sorted) in one transaction, unless the tree was replaced
    /// since `generation`; returns how many nodes they held.
    fn remove_nodes(&self, keys: &[RecordKey], generation: u64) -> Result<Option<u64>, StoreError> {
        let w = self.writer.lock();
        if self.generation.load(std::sync::atomic::Ordering::SeqCst) != generation {
            return Ok(None);
        }
        let txn = self.db.begin_write().map_err(|e| self.err(e))?;
        let mut freed: Vec<Ptr> = Vec::new();
        {
            let mut nodes = txn.open_table(NODES).map_err(|e| self.err(e))?;
            for k in keys {
                if let Some(v) = nodes.remove(k.as_bytes()).map_err(|e| self.err(e))? {
                    freed.extend(record_nodes(k, v.value()));
                }
            }
        }
        txn.commit().map_err(|e| self.err(e))?;
        let removed = freed.len() as u64;
        let mut cache = self.cache();
        for p in &freed {
            cache.remove(p);
        }
        drop(cache);
        // A version waiting to be stored goes next, not another chunk of this removal.
        parking_lot::MutexGuard::unlock_fair(w);
        Ok(Some(removed))
    }

    /// Forgets the stale records up to `last` (their nodes are removed: records go after their
    /// nodes, so a crash between leaves records whose removal is simply repeated); false when
    /// the tree was replaced meanwhile.
    fn forget_stale(&self, last: &[u8], generation: u64) -> Result<bool, StoreError> {
        let _w = self.writer.lock();
        if self.generation.load(std::sync::atomic::Ordering::SeqCst) != generation {
            return Ok(false);
        }
        let txn = self.db.begin_write().map_err(|e| self.err(e))?;
        {
            let mut stale = txn.open_table(STALE).map_err(|e| self.err(e))?;
            stale
                .retain_in(..=last, |_, _| false)
                .map_err(|e| self.err(e))?;
        }
        txn.commit().map_err(|e| self.err(e))?;
        Ok(true)
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

    /// Stores `kvs` (all puts) on top of `root` as `version`.
    fn put_all(db: &NodeDb, version: u64, root: &Hash, kvs: &[(Vec<u8>, Vec<u8>)]) -> Hash {
        db.apply(
            version,
            root,
            kvs.iter().map(|(k, v)| (&k[..], Some(&v[..]))),
            None,
        )
        .expect("apply")
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
        let mut fresh = Changes::new(&src, Ptr::NONE, 1);
        for i in 170..200 {
            let (k, v) = kv(i);
            fresh.insert(&k, &v).expect("insert");
        }
        assert_eq!(fresh.root().hash, root);
        let live = live_nodes(&db, &root);
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
            root = put_all(&db, u64::from(r), &root, &kvs);
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

    #[test]
    fn reads_count_exactly_the_records_the_cache_did_not_hold() {
        let d = tempfile::tempdir().expect("tmp");
        let path = d.path().join("state.redb");
        let kvs: Vec<_> = (0..2_000).map(kv).collect();
        let root = {
            let db = NodeDb::open(&path, 64 << 20).expect("open");
            put_all(&db, 1, &EMPTY, &kvs)
        };
        // Reopened: nothing is cached, so reading a key reads the records of its path that no
        // earlier read brought in, once each.
        let db = NodeDb::open(&path, 64 << 20).expect("open");
        let at: HashMap<Hash, u64> = stored_nodes(&db)
            .into_keys()
            .map(|p| (p.hash, p.version))
            .collect();
        assert_eq!(db.reads(), Reads::default());
        let mut before = db.reads();
        let mut loaded: HashSet<u64> = HashSet::new();
        for i in [0u32, 777, 1_999] {
            let (k, v) = kv(i);
            let proof = db.prove(&root, &k).expect("prove");
            let after = db.reads();
            let read = after.records - before.records;
            let locs: HashSet<u64> = proof
                .nodes
                .iter()
                .map(|b| at[&Node::decode_proof(b).expect("decodes").hash()])
                .collect();
            let new = locs.difference(&loaded).count() as u64;
            assert_eq!(read, new, "key {i}: records read");
            assert!(read > 0, "key {i}: its leaf was not read before");
            assert!(
                locs.len() < proof.nodes.len(),
                "key {i}: a path of {} nodes in {} records",
                proof.nodes.len(),
                locs.len()
            );
            loaded.extend(locs);
            assert!(after.nanos > before.nanos);
            assert_eq!(db.get(&root, &k).expect("get"), Some(v));
            assert_eq!(db.reads(), after, "key {i}: read again, from the cache");
            before = after;
        }
    }

    #[test]
    fn nodes_cached_when_stored_are_the_stored_nodes() {
        // A stored version's nodes enter the cache at once; a later read must get exactly what
        // redb holds (child versions resolved), and pruning must drop what it frees.
        let d = tempfile::tempdir().expect("tmp");
        let db = NodeDb::open(&d.path().join("state.redb"), 64 << 20).expect("open");
        let mut root = EMPTY;
        for r in 1..=6u32 {
            let kvs: Vec<_> = (0..200).map(|i| kv(i * 7 + r)).collect();
            root = put_all(&db, u64::from(r), &root, &kvs);
            db.prune(u64::from(r).saturating_sub(2), 64).expect("prune");
        }
        let stored = stored_nodes(&db);
        let cache = db.cache();
        assert!(
            cache.map.len() > 100,
            "only {} nodes cached",
            cache.map.len()
        );
        for (p, n) in cache.map.iter() {
            let on_disk = stored
                .get(p)
                .unwrap_or_else(|| panic!("cached node {p:?} is not stored (pruned?)"));
            assert_eq!(
                **n, *on_disk,
                "cached node {p:?} differs from the stored one"
            );
        }
        drop(cache);
        for i in 0..200 {
            let (k, v) = kv(i * 7 + 6);
            assert_eq!(db.get(&root, &k).expect("get"), Some(v));
        }
    }

    #[test]
    fn a_removal_larger_than_a_chunk_completes_while_versions_are_stored() {
        let d = tempfile::tempdir().expect("tmp");
        let db = NodeDb::open(&d.path().join("state.redb"), 1 << 20).expect("open");
        // Version 1: 3,000 keys; version 2 rewrites every value, so nearly all of version 1's
        // nodes (several chunks' worth) become unreachable once it is pruned.
        let n = 3 * PRUNE_CHUNK as u32;
        let put = |version: u64, root: &Hash, tag: &str| {
            let kvs: Vec<_> = (0..n)
                .map(|i| (kv(i).0, format!("{tag} {i}").into_bytes()))
                .collect();
            put_all(&db, version, root, &kvs)
        };
        let r1 = put(1, &EMPTY, "first");
        let r2 = put(2, &r1, "second");
        let before = db.node_count().expect("count");
        let stored = std::thread::scope(|s| {
            let pruning = s.spawn(|| db.prune(2, 64).expect("prune"));
            // Versions stored meanwhile are kept whole.
            let mut root = r2;
            for v in 3..6u64 {
                let (k, val) = kv(n + v as u32);
                root = db
                    .apply(v, &root, [(&k[..], Some(&val[..]))], None)
                    .expect("apply");
            }
            let p = pruning.join().expect("join");
            (p, root)
        });
        let (p, root) = stored;
        assert_eq!(p.versions, 1);
        assert!(!p.pending);
        assert!(p.nodes > 2 * PRUNE_CHUNK as u64, "{} nodes", p.nodes);
        assert!(db.node_count().expect("count") < before);
        // Version 2 and the ones stored during the removal read in full.
        for i in 0..n {
            let (k, _) = kv(i);
            let want = Some(format!("second {i}").into_bytes());
            assert_eq!(db.get(&r2, &k).expect("get"), want);
            assert_eq!(db.get(&root, &k).expect("get"), want);
        }
        // Down to the latest version: exactly its nodes are left.
        db.prune(u64::MAX, usize::MAX).expect("prune");
        assert_eq!(db.node_count().expect("count"), live_nodes(&db, &root));
    }

    #[test]
    fn a_removal_sorted_in_several_batches_leaves_exactly_the_live_nodes() {
        let d = tempfile::tempdir().expect("tmp");
        let db = NodeDb::open(&d.path().join("state.redb"), 1 << 20).expect("open");
        // Ten versions each rewriting a third of 1,500 keys: thousands of unreachable nodes,
        // removed 700 sorted at a time: several batches.
        let mut root = EMPTY;
        let mut roots = Vec::new();
        for v in 1..=10u64 {
            let kvs: Vec<_> = (0..1_500u32)
                .filter(|i| v == 1 || u64::from(*i) % 3 == v % 3)
                .map(|i| (kv(i).0, format!("v{v} {i}").into_bytes()))
                .collect();
            root = put_all(&db, v, &root, &kvs);
            roots.push(root);
        }
        let before = db.node_count().expect("count");
        let p = db.prune_sorting(8, usize::MAX, 700).expect("prune");
        assert_eq!(p.versions, 7);
        assert!(p.nodes > 2 * 700, "{} nodes: more than one batch", p.nodes);
        assert_eq!(db.node_count().expect("count"), before - p.nodes);
        // Versions 8 to 10 read in full; the stale records of the removed nodes are gone.
        for (v, r) in roots.iter().enumerate().skip(7) {
            let v = v as u64 + 1;
            for i in 0..1_500u32 {
                let got = db.get(r, &kv(i).0).expect("get").expect("present");
                let last = (1..=v)
                    .rev()
                    .find(|w| *w == 1 || u64::from(i) % 3 == w % 3)
                    .expect("written");
                assert_eq!(
                    got,
                    format!("v{last} {i}").into_bytes(),
                    "version {v} key {i}"
                );
            }
        }
        let again = db.prune_sorting(8, usize::MAX, 700).expect("prune");
        assert_eq!((again.versions, again.nodes), (0, 0));
        db.prune_sorting(u64::MAX, usize::MAX, 700).expect("prune");
        assert_eq!(db.node_count().expect("count"), live_nodes(&db, &root));
        let txn = db.db.begin_read().expect("read");
        let stale = txn.open_table(STALE).expect("stale");
        assert_eq!(stale.len().expect("len"), 0, "stale records left behind");
    }

    #[test]
    fn a_removal_begun_before_the_tree_is_replaced_removes_nothing_after() {
        let d = tempfile::tempdir().expect("tmp");
        let db = NodeDb::open(&d.path().join("state.redb"), 1 << 20).expect("open");
        let kvs: Vec<_> = (0..50).map(kv).collect();
        put_all(&db, 1, &EMPTY, &kvs);
        let generation = db.generation.load(std::sync::atomic::Ordering::SeqCst);
        let (dead, _, _) = db.unreachable(usize::MAX).expect("unreachable");
        assert!(dead.is_empty());
        let keys: Vec<RecordKey> = {
            let txn = db.db.begin_read().expect("read");
            let nodes = txn.open_table(NODES).expect("nodes");
            nodes
                .iter()
                .expect("iter")
                .map(|r| RecordKey::parse(r.expect("row").0.value()).expect("key"))
                .collect()
        };
        // A state sync replaces the tree (here: the same nodes imported again) while a removal
        // holds keys read before: it removes none of them.
        db.clear().expect("clear");
        put_all(&db, 1, &EMPTY, &kvs);
        assert_eq!(db.remove_nodes(&keys, generation).expect("remove"), None);
        assert!(!db.forget_stale(&[0xff; 48], generation).expect("forget"));
        assert_eq!(db.record_count().expect("count"), keys.len() as u64);
    }

    #[test]
    fn a_large_value_is_not_copied_when_its_neighbours_change() {
        let d = tempfile::tempdir().expect("tmp");
        let db = NodeDb::open(&d.path().join("state.redb"), 1 << 20).expect("open");
        let big = vec![9u8; 100_000];
        let mut kvs: Vec<_> = (0..300).map(kv).collect();
        kvs.push((b"key 1000".to_vec(), big.clone()));
        let mut root = put_all(&db, 1, &EMPTY, &kvs);
        // Its neighbours (the same band, the same parent) change in every later round.
        for v in 2..=20u64 {
            let log = [
                (&b"key 1001"[..], Some(&b"x"[..])),
                (&b"key 100"[..], Some(&v.to_le_bytes()[..])),
            ];
            root = db.apply(v, &root, log, None).expect("apply");
        }
        db.prune(u64::MAX, usize::MAX).expect("prune");
        let leaves: Vec<Ptr> = stored_nodes(&db)
            .into_iter()
            .filter(|(_, n)| matches!(n, Node::Leaf { key, .. } if key == b"key 1000"))
            .map(|(p, _)| p)
            .collect();
        assert_eq!(leaves.len(), 1);
        assert_eq!(
            loc_version(leaves[0].version),
            1,
            "stored once, by version 1"
        );
        assert_eq!(db.get(&root, b"key 1000").expect("get"), Some(big));
        let file = std::fs::metadata(d.path().join("state.redb"))
            .expect("stat")
            .len();
        assert!(file < 2 << 20, "{file} bytes: the value was written again");
    }

    #[test]
    fn a_synced_state_is_paged_as_rounds_change_it() {
        let d = tempfile::tempdir().expect("tmp");
        let src = NodeDb::open(&d.path().join("a.redb"), 1 << 20).expect("open");
        let kvs: Vec<_> = (0..3_000).map(kv).collect();
        let root = put_all(&src, 1, &EMPTY, &kvs);
        let dst = NodeDb::open(&d.path().join("b.redb"), 1 << 20).expect("open");
        let mut r = crate::sync::Restore::begin(&dst, 1, root).expect("begin");
        while !r.is_complete() {
            let chunk = src.export(&r.wants(), 1000, usize::MAX).expect("export");
            r.accept(&dst, &chunk).expect("accept");
        }
        r.finish(&dst).expect("finish");
        let nodes = dst.node_count().expect("count");
        assert_eq!(
            dst.record_count().expect("records"),
            nodes,
            "synced: each alone"
        );
        // A round writes one key in 30: the nodes its paths reach in a band are paged with
        // them, so the stored-alone nodes left are a minority.
        let some: Vec<_> = (0..3_000)
            .step_by(30)
            .map(|i| (kv(i).0, b"new".to_vec()))
            .collect();
        let root = put_all(&dst, 2, &root, &some);
        dst.prune(u64::MAX, usize::MAX).expect("prune");
        assert_eq!(dst.node_count().expect("count"), nodes);
        // Every node the round rewrote has its children of the same band (each small) in its
        // own page: the new ones, and the synced ones stored alone until now.
        let stored = stored_nodes(&dst);
        let (mut paged, mut migrated) = (0, 0);
        let mut stack = vec![(dst.resolve(&root).expect("root"), 0usize)];
        while let Some((p, depth)) = stack.pop() {
            let Node::Internal {
                label_bits,
                leaf,
                left,
                right,
                ..
            } = &stored[&p]
            else {
                continue;
            };
            let d = depth + usize::from(*label_bits);
            for c in [*leaf, *left, *right] {
                if c.is_none() {
                    continue;
                }
                let same_band = d / PAGE_DEPTH_BITS == depth / PAGE_DEPTH_BITS;
                if loc_version(p.version) == 2 && same_band {
                    assert_eq!(c.version, p.version, "a child of {p:?} outside its page");
                    paged += 1;
                    if !some.iter().any(|(k, _)| {
                        stored[&c]
                            == Node::Leaf {
                                key: k.clone(),
                                value: b"new".to_vec(),
                            }
                    }) && matches!(stored[&c], Node::Leaf { .. })
                    {
                        migrated += 1;
                    }
                }
                stack.push((c, d));
            }
        }
        assert!(
            paged > 100 && migrated > 10,
            "{paged} paged, {migrated} synced leaves among them"
        );
        assert!(dst.record_count().expect("records") < nodes);
        for i in (0..3_000).step_by(7) {
            let want = if i % 30 == 0 {
                b"new".to_vec()
            } else {
                kv(i).1
            };
            assert_eq!(dst.get(&root, &kv(i).0).expect("get"), Some(want));
        }
    }

    #[test]
    fn wants_that_name_a_page_but_not_its_node_cost_a_bounded_read() {
        // A peer names the pages of 40 large values (300 KB each, a page of its own) with hashes
        // that are not in them: nothing is sent, and what is read stops at twice the chunk's
        // byte budget instead of reading every page named.
        let d = tempfile::tempdir().expect("tmp");
        let db = NodeDb::open(&d.path().join("state.redb"), 1 << 20).expect("open");
        let kvs: Vec<_> = (0..40u32)
            .map(|i| (kv(i).0, vec![i as u8; 300_000]))
            .collect();
        put_all(&db, 1, &EMPTY, &kvs);
        let big: Vec<Ptr> = stored_nodes(&db)
            .into_iter()
            .filter(|(_, n)| matches!(n, Node::Leaf { .. }))
            .map(|(p, _)| Ptr {
                hash: [7; 32],
                version: p.version,
            })
            .collect();
        assert_eq!(big.len(), 40);
        assert!(big.iter().all(|p| loc_page(p.version) != 0));
        let (sent, loads) = db.export_counted(&big, 4096, 256 << 10).expect("export");
        assert!(sent.is_empty());
        assert!(
            loads <= 2,
            "{loads} pages of 300 KB read for a 256 KB chunk"
        );
    }

    #[test]
    fn a_sync_request_reads_each_page_once() {
        // A peer asking for a chunk from the root gets up to MAX_CHUNK_NODES nodes, breadth
        // first: the walk comes back to each page once per node in it, and must not read and
        // decode the page each time.
        let d = tempfile::tempdir().expect("tmp");
        let db = NodeDb::open(&d.path().join("state.redb"), 1 << 20).expect("open");
        // Keys shaped like a ParaTime's (a prefix and a hash).
        let kvs: Vec<_> = (0..5_000u32)
            .map(|i| {
                let mut k = b"accounts/".to_vec();
                k.extend_from_slice(&crate::node::hash_parts(&[&i.to_le_bytes()])[..20]);
                (k, kv(i).1)
            })
            .collect();
        let root = put_all(&db, 1, &EMPTY, &kvs);
        let records = db.record_count().expect("records") as usize;
        let nodes = db.node_count().expect("count") as usize;
        let want = [Ptr {
            hash: root,
            version: SYNC_ROOT,
        }];
        // A cold node cache: every node comes from its page.
        let db = {
            drop(db);
            NodeDb::open(&d.path().join("state.redb"), 1 << 20).expect("open")
        };
        let (chunk, loads) = db
            .export_counted(&want, crate::sync::MAX_CHUNK_NODES, usize::MAX)
            .expect("export");
        assert_eq!(chunk.len(), crate::sync::MAX_CHUNK_NODES);
        let at: HashMap<Hash, u64> = stored_nodes(&db)
            .into_keys()
            .map(|p| (p.hash, p.version))
            .collect();
        let pages: HashSet<u64> = chunk
            .iter()
            .map(|b| at[&Node::decode(b).expect("decodes").hash()])
            .collect();
        assert_eq!(
            loads,
            pages.len(),
            "records read: each page of the chunk, once"
        );
        assert!(pages.len() < chunk.len());
        let all = db.export(&want, usize::MAX, usize::MAX).expect("export");
        assert_eq!(all.len(), nodes);
        assert!(records < nodes, "{records} records for {nodes} nodes");
    }

    #[test]
    fn a_prefetch_reads_the_paths_of_the_keys_the_computation_has_not_started_on() {
        let d = tempfile::tempdir().expect("tmp");
        let path = d.path().join("state.redb");
        let kvs: Vec<_> = (0..4_000).map(kv).collect();
        let root = {
            let db = NodeDb::open(&path, 64 << 20).expect("open");
            put_all(&db, 1, &EMPTY, &kvs)
        };
        // Reopened: nothing cached.
        let db = NodeDb::open(&path, 64 << 20).expect("reopen");
        let at = db.resolve(&root).expect("root");
        let mut keys: Vec<Vec<u8>> = (0..400).map(|i| kv(i * 10).0).collect();
        keys.push(b"key new".to_vec());
        keys.sort();
        let log: Vec<(&[u8], Option<&[u8]>)> =
            keys.iter().map(|k| (&k[..], Some(&b"v"[..]))).collect();
        // The computation has started on all keys: nothing is read.
        db.prefetch(&at, &log, &AtomicUsize::new(log.len()));
        assert_eq!(db.reads(), Reads::default());
        // It has started on the first 300: the prefetch reads the paths of the others.
        db.prefetch(&at, &log, &AtomicUsize::new(300));
        let read = db.reads().records;
        assert!(read > 0);
        for k in &keys[300..] {
            db.get(&root, k).expect("get");
        }
        assert_eq!(db.reads().records, read, "the last keys' paths are cached");
        db.get(&root, &keys[0]).expect("get");
        assert!(
            db.reads().records > read,
            "the first key's path was not read"
        );
    }

    #[test]
    fn a_computation_prefetches_only_after_one_that_read_from_disk() {
        let d = tempfile::tempdir().expect("tmp");
        let path = d.path().join("state.redb");
        let kvs: Vec<_> = (0..3_000).map(kv).collect();
        let log = |r: u32| -> Vec<(Vec<u8>, Vec<u8>)> {
            (0..PREFETCH_MIN as u32).map(|i| kv(i * 40 + r)).collect()
        };
        let compute = |db: &NodeDb, root: &Hash, kvs: &[(Vec<u8>, Vec<u8>)]| {
            db.compute(root, kvs.iter().map(|(k, v)| (&k[..], Some(&v[..]))))
                .expect("compute")
        };
        let prefetches = |db: &NodeDb| db.prefetches.load(Ordering::Relaxed);
        let root = {
            let db = NodeDb::open(&path, 64 << 20).expect("open");
            // Opened: nothing known, so the first computation prefetches (an empty tree: it
            // reads nothing).
            let root = put_all(&db, 1, &EMPTY, &kvs);
            assert_eq!(prefetches(&db), 1);
            // The state is cached whole (stored nodes enter the cache): no prefetch.
            compute(&db, &root, &log(1));
            compute(&db, &root, &log(2));
            assert_eq!(prefetches(&db), 1);
            assert_eq!(db.reads(), Reads::default());
            // A log too short for a prefetch is not one.
            compute(&db, &root, &log(3)[..PREFETCH_MIN - 1]);
            assert_eq!(prefetches(&db), 1);
            root
        };
        // Reopened, nothing cached: the first computation prefetches and reads; so does the
        // next (the last one read); once the paths are in memory the prefetch stops.
        let db = NodeDb::open(&path, 64 << 20).expect("reopen");
        compute(&db, &root, &log(1));
        assert_eq!(prefetches(&db), 1);
        assert!(db.reads().records > 0);
        compute(&db, &root, &log(2));
        assert_eq!(prefetches(&db), 2);
        compute(&db, &root, &log(2 + 40 * PREFETCH_MIN as u32 / 2));
        compute(&db, &root, &log(1));
        compute(&db, &root, &log(2));
        let stopped = prefetches(&db);
        compute(&db, &root, &log(1));
        assert_eq!(prefetches(&db), stopped, "the paths were in memory");
    }

    #[test]
    fn a_prefetched_computation_gets_the_root_and_the_errors_of_one_without() {
        // Two copies of a state larger than their cache: one computes a log long enough to be
        // prefetched, the other the same log in pieces too short to be.
        let d = tempfile::tempdir().expect("tmp");
        let (a, b) = (d.path().join("a.redb"), d.path().join("b.redb"));
        let kvs: Vec<_> = (0..3_000).map(kv).collect();
        let root = {
            let db = NodeDb::open(&a, 1 << 20).expect("open");
            put_all(&db, 1, &EMPTY, &kvs)
        };
        std::fs::copy(&a, &b).expect("copy");
        let mut writes: Vec<(Vec<u8>, Option<Vec<u8>>)> = (0..600)
            .map(|i| match i % 3 {
                0 => (kv(i * 5).0, Some(b"updated".to_vec())),
                1 => (format!("new key {i}").into_bytes(), Some(b"new".to_vec())),
                _ => (kv(i * 5).0, None),
            })
            .collect();
        writes.sort();
        writes.dedup_by(|x, y| x.0 == y.0);
        let db_a = NodeDb::open(&a, 1 << 20).expect("reopen");
        assert!(writes.len() >= PREFETCH_MIN);
        let whole = db_a
            .apply(
                2,
                &root,
                writes.iter().map(|(k, v)| (&k[..], v.as_deref())),
                None,
            )
            .expect("apply");
        assert!(
            db_a.reads().records > 0,
            "the state is larger than the cache"
        );
        let db_b = NodeDb::open(&b, 1 << 20).expect("reopen");
        let mut pieces = root;
        for (i, chunk) in writes.chunks(PREFETCH_MIN - 1).enumerate() {
            pieces = db_b
                .apply(
                    2 + i as u64,
                    &pieces,
                    chunk.iter().map(|(k, v)| (&k[..], v.as_deref())),
                    None,
                )
                .expect("apply a piece");
        }
        assert_eq!(whole, pieces);
        drop((db_a, db_b));

        // A record on the paths of the log missing (a damaged store): the computation fails
        // with the error it meets, prefetched or not, and the prefetch ends with it.
        let db = NodeDb::open(&a, 1 << 20).expect("reopen");
        let existing: Vec<&Vec<u8>> = writes
            .iter()
            .map(|(k, _)| k)
            .filter(|k| k.starts_with(b"key "))
            .collect();
        let target = existing[existing.len() / 2];
        let (leaf, _) = stored_nodes(&db)
            .into_iter()
            .find(|(p, n)| {
                loc_version(p.version) == 1 && matches!(n, Node::Leaf { key, .. } if key == target)
            })
            .expect("the leaf of a key the log writes");
        let txn = db.db.begin_write().expect("write");
        txn.open_table(NODES)
            .expect("nodes")
            .remove(RecordKey::of(&leaf).as_bytes())
            .expect("remove")
            .expect("was there");
        txn.commit().expect("commit");
        drop(db);
        let db = NodeDb::open(&a, 1 << 20).expect("reopen");
        let got = db.compute(&root, writes.iter().map(|(k, v)| (&k[..], v.as_deref())));
        assert!(
            matches!(got, Err(StoreError::Tree(TreeError::Missing(p)))
                if RecordKey::of(&p) == RecordKey::of(&leaf)),
            "{got:?}"
        );
    }

    #[test]
    fn a_page_that_lies_about_its_lengths_is_an_error_naming_the_node() {
        // The store file is the operator's disk: a page cut short, or whose entry claims more
        // bytes than follow, is refused (never a panic, never a read past the record).
        let node = Node::Leaf {
            key: b"k".to_vec(),
            value: b"v".to_vec(),
        };
        let mut page = Vec::new();
        page_entry(&mut page, &[3; 32], &node);
        page_entry(&mut page, &[4; 32], &node);
        let entries = page_entries(&page).expect("a page as written");
        assert_eq!(entries.len(), 2);
        // Entries are written in place; they read back as each node's own encoding.
        let internal = Node::Internal {
            label: vec![0xa0],
            label_bits: 3,
            leaf: Ptr::NONE,
            left: Ptr {
                hash: [5; 32],
                version: loc(2, 7),
            },
            right: Ptr {
                hash: [6; 32],
                version: 9,
            },
        };
        let mut two = Vec::new();
        page_entry(&mut two, &[7; 32], &internal);
        page_entry(&mut two, &[3; 32], &node);
        assert_eq!(
            page_entries(&two).expect("parses"),
            vec![
                ([7; 32], &internal.encode()[..]),
                ([3; 32], &node.encode()[..])
            ]
        );
        for cut in 1..page.len() {
            if cut == 36 + node.stored_len() {
                continue; // a whole first entry: a page of one node
            }
            assert!(page_entries(&page[..cut]).is_err(), "cut at {cut}");
        }
        let mut lying = page.clone();
        lying[32..36].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(page_entries(&lying).is_err());
        // Through the store: a record whose bytes lie is a Corrupt error naming the node.
        let d = tempfile::tempdir().expect("tmp");
        let db = NodeDb::open(&d.path().join("state.redb"), 1 << 20).expect("open");
        let at = Ptr {
            hash: [3; 32],
            version: loc(1, 1),
        };
        let txn = db.db.begin_write().expect("write");
        {
            let mut t = txn.open_table(NODES).expect("nodes");
            t.insert(RecordKey::page(loc(1, 1)).as_bytes(), &lying[..])
                .expect("insert");
        }
        txn.commit().expect("commit");
        assert!(matches!(
            db.reader().expect("reader").node(&at),
            Err(TreeError::Corrupt { hash, .. }) if hash == [3; 32]
        ));
    }

    /// Every stored node by its pointer, read record by record.
    fn stored_nodes(db: &NodeDb) -> HashMap<Ptr, Node> {
        let txn = db.db.begin_read().expect("read");
        let table = txn.open_table(NODES).expect("nodes");
        let mut stored = HashMap::new();
        for item in table.iter().expect("iter") {
            let (k, _) = item.expect("item");
            let key = RecordKey::parse(k.value()).expect("a record key");
            let at = key.ptr();
            for (p, n) in load(&table, &at).expect("loads").expect("present") {
                stored.insert(p, (*n).clone());
            }
        }
        stored
    }

    fn live_nodes(db: &NodeDb, root: &Hash) -> u64 {
        let mut c = 0u64;
        let mut stack = vec![db.resolve(root).expect("root")];
        let reader = db.reader().expect("reader");
        while let Some(p) = stack.pop() {
            if p.is_none() {
                continue;
            }
            c += 1;
            stack.extend(
                reader
                    .node(&p)
                    .expect("node")
                    .children()
                    .unwrap_or([Ptr::NONE; 3]),
            );
        }
        c
    }

    use proptest::prelude::*;

    type Round = Vec<(Vec<u8>, Option<Vec<u8>>)>;

    /// Keys that share prefixes (bytes 0, 1, 0x80, 0xff: long labels, keys that are prefixes of
    /// each other), values short or over [`PAGE_NODE_MAX`] (a page of their own).
    fn rounds() -> impl Strategy<Value = Vec<Round>> {
        let value = prop_oneof![
            4 => prop::collection::vec(any::<u8>(), 0..3),
            1 => Just(vec![7u8; PAGE_NODE_MAX + 1]),
        ];
        prop::collection::vec(
            prop::collection::vec(
                (
                    prop::collection::vec(prop::sample::select(vec![0u8, 1, 0x80, 0xff]), 0..4),
                    prop::option::of(value),
                ),
                0..12,
            ),
            1..8,
        )
    }

    /// Runs `rounds` on `db` from version `first` and `root` (whose keys are `model`), pruned
    /// to a window of two as they go: every kept version must read exactly as the model, and
    /// pruning to the latest must leave exactly its nodes.
    fn check_rounds(
        db: &NodeDb,
        first: u64,
        mut root: Hash,
        mut model: std::collections::BTreeMap<Vec<u8>, Vec<u8>>,
        rounds: &[Round],
    ) -> Result<(), TestCaseError> {
        let mut snapshots = Vec::new();
        for (i, ops) in rounds.iter().enumerate() {
            let v = first + i as u64;
            let mut log: std::collections::BTreeMap<Vec<u8>, Option<Vec<u8>>> = Default::default();
            for (k, val) in ops {
                log.insert(k.clone(), val.clone());
            }
            for (k, val) in &log {
                match val {
                    Some(x) => {
                        model.insert(k.clone(), x.clone());
                    }
                    None => {
                        model.remove(k);
                    }
                }
            }
            // Even rounds store what a preceding compute staged; odd ones compute anew.
            let entries = || log.iter().map(|(k, v)| (&k[..], v.as_deref()));
            let computed = v
                .is_multiple_of(2)
                .then(|| db.compute(&root, entries()).expect("compute"));
            root = db
                .apply(v, &root, entries(), computed.as_ref())
                .expect("apply");
            snapshots.push((v, root, model.clone()));
            db.prune(v.saturating_sub(1), 64).expect("prune");
            for (sv, sroot, smodel) in snapshots.iter().filter(|(sv, _, _)| *sv + 1 >= v) {
                for k in smodel.keys().chain(log.keys()) {
                    prop_assert_eq!(
                        db.get(sroot, k).expect("get"),
                        smodel.get(k).cloned(),
                        "version {} key {:?}",
                        sv,
                        k
                    );
                }
            }
        }
        db.prune(u64::MAX, usize::MAX).expect("prune");
        prop_assert_eq!(db.node_count().expect("count"), live_nodes(db, &root));
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(40))]
        /// Versions of random changes, each a set of pages: pruning frees a page only when no
        /// kept version reaches any of its nodes.
        #[test]
        fn pruned_stores_keep_exactly_the_kept_versions(rounds in rounds()) {
            let d = tempfile::tempdir().expect("tmp");
            let db = NodeDb::open(&d.path().join("s.redb"), 1 << 16).expect("open");
            check_rounds(&db, 1, EMPTY, Default::default(), &rounds)?;
        }

        /// The same from a synced state (every node stored alone): rounds copy the nodes they
        /// reach into pages, and pruning frees each stored-alone node once nothing reaches it.
        #[test]
        fn synced_stores_are_paged_as_they_change(first in rounds(), rounds in rounds()) {
            let d = tempfile::tempdir().expect("tmp");
            let src = NodeDb::open(&d.path().join("a.redb"), 1 << 16).expect("open");
            let mut model: std::collections::BTreeMap<Vec<u8>, Vec<u8>> = Default::default();
            let mut root = EMPTY;
            for (i, ops) in first.iter().enumerate() {
                let log: std::collections::BTreeMap<_, _> = ops.iter().cloned().collect();
                for (k, val) in &log {
                    match val {
                        Some(x) => { model.insert(k.clone(), x.clone()); }
                        None => { model.remove(k); }
                    }
                }
                root = src
                    .apply(i as u64 + 1, &root, log.iter().map(|(k, v)| (&k[..], v.as_deref())), None)
                    .expect("apply");
            }
            let dst = NodeDb::open(&d.path().join("b.redb"), 1 << 16).expect("open");
            let synced = first.len() as u64;
            let mut r = crate::sync::Restore::begin(&dst, synced, root).expect("begin");
            while !r.is_complete() {
                let chunk = src.export(&r.wants(), 3, usize::MAX).expect("export");
                prop_assert!(r.accept(&dst, &chunk).expect("accept").nodes > 0);
            }
            r.finish(&dst).expect("finish");
            check_rounds(&dst, synced + 1, root, model, &rounds)?;
        }
    }
}

#[cfg(test)]
mod regression {
    use super::*;

    /// A round that removes a key and then rewrites another under the same parent: the parent's
    /// hash repeats with newer pointers, and the stored node must carry the newer ones.
    #[test]
    fn a_node_rebuilt_twice_in_a_round_keeps_its_newest_children() {
        let d = tempfile::tempdir().expect("tmp");
        let db = NodeDb::open(&d.path().join("s.redb"), 1 << 16).expect("open");
        let e: &[u8] = &[];
        let log1 = [
            (&[0u8][..], Some(e)),
            (&[1u8][..], Some(e)),
            (&[][..], Some(e)),
            (&[128u8][..], Some(e)),
        ];
        let r1 = db.apply(1, &EMPTY, log1, None).expect("round 1");
        let r2 = db
            .apply(2, &r1, [(&[][..], None), (&[0u8][..], Some(e))], None)
            .expect("round 2");
        db.prune(u64::MAX, usize::MAX).expect("prune");
        for k in [&[0u8][..], &[1u8][..], &[128u8][..]] {
            assert_eq!(db.get(&r2, k).expect("get"), Some(Vec::new()), "{k:?}");
        }
        assert_eq!(db.get(&r2, &[]).expect("get"), None);
    }
}
