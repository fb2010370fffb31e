//! The runtime's finalized state, on disk and authenticated: a versioned Merkle tree
//! ([`paratime_mkvs`]) with one version per finalized round, in
//! `<data_dir>/runtimes/<id>/mkvs_storage.redb.db` (oasis's per-runtime `mkvs_storage.*.db`).
//!
//! The runtime reads it through the host (`HostStorageGetRequest`) at the latest finalized root.
//! State roots are the tree's roots: the host computes them from the write log the runtime
//! returns, so a committee vote compares roots of real trees and a value can be proven against
//! a finalized root. Memory is `storage.max_cache_size` in total (half the tree's node cache,
//! half redb's page cache), whatever the state's size.

use paratime_mkvs::{NodeDb, Proof, Pruned, Reads, Restore, StoreError};
use paratime_sdk::protocol::{Hash, WriteLogEntry};
use std::path::Path;
use std::sync::{PoisonError, RwLock};

/// The tree's file name in `<data_dir>/runtimes/<id>/`.
pub const FILE_NAME: &str = "mkvs_storage.redb.db";

/// Why the runtime state could not be read or changed.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// The batch was executed on an older state.
    #[error(
        "state moved on: batch executed on {} but state is at {}",
        hex::encode(executed_on),
        hex::encode(current)
    )]
    Moved {
        /// The root the batch was executed on.
        executed_on: Hash,
        /// The state's root now.
        current: Hash,
    },
    /// The write log is not strictly sorted.
    #[error("write log is not sorted by key with one entry per key")]
    Unsorted,
    /// The state the node recorded as finalized is not in the tree (deleted, or a data dir from
    /// before the tree).
    #[error(
        "the finalized state of round {round} (root {}) is not in {path}",
        hex::encode(root)
    )]
    Missing {
        /// The round.
        round: u64,
        /// Its state root.
        root: Hash,
        /// The tree's file.
        path: String,
    },
    /// The tree store failed, or the write log does not give the expected root.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The state tree's memory (`storage.max_cache_size` bounds the two caches together).
#[derive(Clone, Copy, Debug, serde::Serialize)]
pub struct StateMemory {
    /// The setting: decoded nodes and redb's pages together stay within it.
    pub cache_limit_bytes: usize,
    /// Decoded nodes held now.
    pub node_cache_bytes: usize,
    /// redb's page cache now.
    pub page_cache_bytes: usize,
    /// Store records (pages of tree nodes) read because the node cache did not hold the node
    /// wanted, since the node started: on a state larger than the cache, each write and read of
    /// a key reads the pages of the levels below what the cache holds.
    pub node_cache_misses: u64,
    /// Time those reads took (redb's lookup and decoding), in seconds.
    pub node_cache_miss_seconds: f64,
}

/// The tree and the finalized round and root the runtime reads.
pub struct RuntimeState {
    db: NodeDb,
    path: String,
    current: RwLock<(u64, Hash)>,
}

impl std::fmt::Debug for RuntimeState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (round, root) = self.current();
        write!(
            f,
            "RuntimeState({}, round {round}, root {})",
            self.path,
            hex::encode(root)
        )
    }
}

fn entries(log: &[WriteLogEntry]) -> impl Iterator<Item = (&[u8], Option<&[u8]>)> {
    log.iter()
        .map(|e| (e.key.as_slice(), e.value.as_ref().map(|v| v.as_slice())))
}

fn sorted(log: &[WriteLogEntry]) -> Result<(), StateError> {
    if log.windows(2).all(|w| w[0].key < w[1].key) {
        Ok(())
    } else {
        Err(StateError::Unsorted)
    }
}

impl RuntimeState {
    /// Opens (or creates) the tree at `path`, holding at most `cache_bytes` of it in memory,
    /// positioned at the empty state of round 0.
    pub fn open(path: &Path, cache_bytes: usize) -> Result<Self, StateError> {
        Ok(Self {
            db: NodeDb::open(path, cache_bytes)?,
            path: path.display().to_string(),
            current: RwLock::new((0, paratime_mkvs::EMPTY)),
        })
    }

    /// What the tree holds in memory now.
    pub fn memory(&self) -> StateMemory {
        let reads = self.db.reads();
        StateMemory {
            cache_limit_bytes: self.db.cache_limit(),
            node_cache_bytes: self.db.cached_bytes(),
            page_cache_bytes: self.db.page_cache_bytes(),
            node_cache_misses: reads.records,
            node_cache_miss_seconds: reads.nanos as f64 / 1e9,
        }
    }

    /// Nodes stored by rounds so far (see [`paratime_mkvs::store::NodeDb::nodes_written`]).
    pub fn nodes_written(&self) -> u64 {
        self.db.nodes_written()
    }

    /// Nodes read from disk so far (the node cache's misses) and their cost.
    pub fn reads(&self) -> Reads {
        self.db.reads()
    }

    /// Positions the state at the finalized `round` and `root` the node's store recorded;
    /// refuses a root the tree does not hold.
    pub fn resume(&self, round: u64, root: Hash) -> Result<(), StateError> {
        if !self.db.has_root(&root)? {
            return Err(StateError::Missing {
                round,
                root,
                path: self.path.clone(),
            });
        }
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = (round, root);
        Ok(())
    }

    /// Positions the state at the latest stored version (the empty state when there is none);
    /// returns its round and root.
    pub fn resume_latest(&self) -> Result<(u64, Hash), StateError> {
        let at = match self.db.latest_version()? {
            Some(v) => (v, self.db.root(v)?.unwrap_or(paratime_mkvs::EMPTY)),
            None => (0, paratime_mkvs::EMPTY),
        };
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = at;
        Ok(at)
    }

    /// The finalized round and state root the runtime reads.
    pub fn current(&self) -> (u64, Hash) {
        *self.current.read().unwrap_or_else(PoisonError::into_inner)
    }

    /// The finalized state root.
    pub fn root(&self) -> Hash {
        self.current().1
    }

    /// Reads a key of the finalized state.
    pub fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StateError> {
        Ok(self.db.get(&self.root(), key)?)
    }

    /// The values of `keys` in the current state, in their order (one read view for all), or
    /// `None` once they add up to more than `max_bytes`.
    pub fn get_many<'k>(
        &self,
        keys: impl IntoIterator<Item = &'k [u8]>,
        max_bytes: usize,
    ) -> Result<Option<Vec<Option<Vec<u8>>>>, StateError> {
        Ok(self.db.get_many(&self.root(), keys, max_bytes)?)
    }

    /// The root `write_log` leads to from `prev`, without storing anything.
    pub fn compute(&self, prev: &Hash, write_log: &[WriteLogEntry]) -> Result<Hash, StateError> {
        sorted(write_log)?;
        Ok(self.db.compute(prev, entries(write_log))?)
    }

    /// Applies a finalized round's write log on top of `prev` (the current root), requiring the
    /// finalized root `expected`; stores it as version `round` and makes it current. Nothing
    /// changes when a check fails; applying a stored round again does nothing.
    pub fn apply(
        &self,
        round: u64,
        prev: &Hash,
        write_log: &[WriteLogEntry],
        expected: &Hash,
    ) -> Result<Hash, StateError> {
        let current = self.root();
        if &current != prev {
            return Err(StateError::Moved {
                executed_on: *prev,
                current,
            });
        }
        sorted(write_log)?;
        let root = self
            .db
            .apply(round, prev, entries(write_log), Some(expected))?;
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = (round, root);
        Ok(root)
    }

    /// The value of `key` in the finalized state with a proof against its root, and the round
    /// and root it is checked against.
    pub fn prove(&self, key: &[u8]) -> Result<(u64, Hash, Proof), StateError> {
        let (round, root) = self.current();
        Ok((round, root, self.db.prove(&root, key)?))
    }

    /// Removes versions before `keep_from` (at most `max` of them; the current one stays).
    pub fn prune(&self, keep_from: u64, max: usize) -> Result<Pruned, StateError> {
        let keep_from = keep_from.min(self.current().0);
        Ok(self.db.prune(keep_from, max)?)
    }

    /// Nodes for a peer's state sync (see [`paratime_mkvs::sync`]).
    pub fn export(&self, wants: &[paratime_mkvs::node::Ptr]) -> Result<Vec<Vec<u8>>, StateError> {
        Ok(self.db.export(
            wants,
            paratime_mkvs::sync::MAX_CHUNK_NODES,
            paratime_mkvs::sync::MAX_CHUNK_BYTES,
        )?)
    }

    /// Starts replacing the tree with the state of `round` (root `root`, finalized) fetched
    /// from peers. Until [`Self::finish_sync`] the tree holds no readable version.
    pub fn begin_sync(&self, round: u64, root: Hash) -> Result<Restore, StateError> {
        Ok(Restore::begin(&self.db, round, root)?)
    }

    /// Checks and stores a chunk of a state sync.
    pub fn sync_chunk(
        &self,
        restore: &mut Restore,
        chunk: &[Vec<u8>],
    ) -> Result<paratime_mkvs::sync::Accepted, StateError> {
        Ok(restore.accept(&self.db, chunk)?)
    }

    /// Completes a state sync: the synced round becomes current.
    pub fn finish_sync(&self, restore: Restore) -> Result<(u64, Hash), StateError> {
        let at = restore.target();
        restore.finish(&self.db)?;
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = at;
        Ok(at)
    }

    /// The earliest and latest stored versions.
    pub fn versions(&self) -> Result<Option<(u64, u64)>, StateError> {
        Ok(self.db.versions()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_bytes::ByteBuf;

    fn put(k: &str, v: &str) -> WriteLogEntry {
        WriteLogEntry {
            key: ByteBuf::from(k.as_bytes().to_vec()),
            value: Some(ByteBuf::from(v.as_bytes().to_vec())),
        }
    }

    #[test]
    fn rounds_apply_on_the_current_root_only_with_the_finalized_root() {
        let d = tempfile::tempdir().expect("tmp");
        let path = d.path().join("mkvs_storage.redb.db");
        let s = RuntimeState::open(&path, 1 << 20).expect("open");
        let log = vec![put("a", "1"), put("b", "2")];
        let r1 = s.compute(&paratime_mkvs::EMPTY, &log).expect("compute");
        // A wrong expected root changes nothing.
        assert!(matches!(
            s.apply(1, &paratime_mkvs::EMPTY, &log, &[1; 32]),
            Err(StateError::Store(StoreError::Mismatch { .. }))
        ));
        assert_eq!(s.root(), paratime_mkvs::EMPTY);
        assert_eq!(
            s.apply(1, &paratime_mkvs::EMPTY, &log, &r1).expect("apply"),
            r1
        );
        assert_eq!(s.get(b"a").expect("get"), Some(b"1".to_vec()));
        // A batch executed on an older state, or an unsorted write log, is refused.
        assert!(matches!(
            s.apply(2, &paratime_mkvs::EMPTY, &log, &r1),
            Err(StateError::Moved { .. })
        ));
        let unsorted = vec![put("b", "2"), put("a", "1")];
        assert!(matches!(
            s.compute(&r1, &unsorted),
            Err(StateError::Unsorted)
        ));
        // Proofs verify against the finalized root.
        let (round, root, proof) = s.prove(b"b").expect("prove");
        assert_eq!((round, root), (1, r1));
        assert_eq!(proof.verify(&root, b"b"), Ok(Some(b"2".to_vec())));
        // Reopened, it resumes at a root it holds, and refuses one it does not.
        drop(s);
        let s = RuntimeState::open(&path, 1 << 20).expect("reopen");
        s.resume(1, r1).expect("resume");
        assert_eq!(s.get(b"b").expect("get"), Some(b"2".to_vec()));
        assert!(matches!(
            s.resume(1, [3; 32]),
            Err(StateError::Missing { .. })
        ));
    }
}
