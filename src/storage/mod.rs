//! The node's embedded ACID store (redb): blocks and the consensus state, committed atomically
//! per block, with a schema version. A store written by a newer schema is refused, so a rollback
//! to an older binary (a NixOS generation switch) cannot corrupt it.

use crate::consensus::block::Block;
use crate::consensus::state::State;
use redb::{Database, ReadableDatabase, TableDefinition};
use std::path::{Path, PathBuf};

const BLOCKS: TableDefinition<u64, &[u8]> = TableDefinition::new("blocks");
const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");

/// The schema this software writes and understands.
pub const SCHEMA_VERSION: u64 = 1;

/// Store failures.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The store was written by newer software.
    #[error("store {path} has schema version {found}, newer than this software understands ({SCHEMA_VERSION}); refusing to open it (upgrade paratime-node, or move the store away to resync)")]
    TooNew {
        /// Store file.
        path: PathBuf,
        /// Version found.
        found: u64,
    },
    /// Database error.
    #[error("store {path}: {message}")]
    Db {
        /// Store file.
        path: PathBuf,
        /// Cause.
        message: String,
    },
}

/// The consensus store.
pub struct Store {
    db: Database,
    path: PathBuf,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Store({})", self.path.display())
    }
}

impl Store {
    fn err(&self, e: impl std::fmt::Display) -> StoreError {
        StoreError::Db {
            path: self.path.clone(),
            message: e.to_string(),
        }
    }

    /// Opens (or creates) the store at `path`, checking its schema version.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let db = Database::create(path).map_err(|e| StoreError::Db {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        let s = Self {
            db,
            path: path.to_path_buf(),
        };
        let found = s.meta_u64("schema_version")?;
        match found {
            Some(v) if v > SCHEMA_VERSION => {
                return Err(StoreError::TooNew {
                    path: path.to_path_buf(),
                    found: v,
                })
            }
            Some(_) => {}
            None => {
                let txn = s.db.begin_write().map_err(|e| s.err(e))?;
                {
                    let mut meta = txn.open_table(META).map_err(|e| s.err(e))?;
                    meta.insert("schema_version", SCHEMA_VERSION.to_be_bytes().as_slice())
                        .map_err(|e| s.err(e))?;
                    txn.open_table(BLOCKS).map_err(|e| s.err(e))?;
                }
                txn.commit().map_err(|e| s.err(e))?;
            }
        }
        Ok(s)
    }

    fn meta(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let txn = self.db.begin_read().map_err(|e| self.err(e))?;
        let table = match txn.open_table(META) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
            Err(e) => return Err(self.err(e)),
        };
        Ok(table
            .get(key)
            .map_err(|e| self.err(e))?
            .map(|v| v.value().to_vec()))
    }

    fn meta_u64(&self, key: &str) -> Result<Option<u64>, StoreError> {
        Ok(self
            .meta(key)?
            .and_then(|b| b.try_into().ok())
            .map(u64::from_be_bytes))
    }

    /// Writes the schema version (tests use it to simulate a newer store).
    pub fn set_schema_version(&self, v: u64) -> Result<(), StoreError> {
        let txn = self.db.begin_write().map_err(|e| self.err(e))?;
        {
            let mut meta = txn.open_table(META).map_err(|e| self.err(e))?;
            meta.insert("schema_version", v.to_be_bytes().as_slice())
                .map_err(|e| self.err(e))?;
        }
        txn.commit().map_err(|e| self.err(e))
    }

    /// The latest committed state, if any block was committed.
    pub fn state(&self) -> Result<Option<State>, StoreError> {
        match self.meta("state")? {
            None => Ok(None),
            Some(b) => crate::encoding::from_cbor(&b)
                .map(Some)
                .map_err(|e| self.err(e)),
        }
    }

    /// Commits a block and the state after it in one transaction.
    pub fn commit_block(&self, block: &Block, state: &State) -> Result<(), StoreError> {
        let height = state.height;
        let block_bytes = crate::encoding::canonical_cbor(block);
        let state_bytes = crate::encoding::canonical_cbor(state);
        let txn = self.db.begin_write().map_err(|e| self.err(e))?;
        {
            let mut blocks = txn.open_table(BLOCKS).map_err(|e| self.err(e))?;
            blocks
                .insert(height, block_bytes.as_slice())
                .map_err(|e| self.err(e))?;
            let mut meta = txn.open_table(META).map_err(|e| self.err(e))?;
            meta.insert("state", state_bytes.as_slice())
                .map_err(|e| self.err(e))?;
            meta.insert("height", height.to_be_bytes().as_slice())
                .map_err(|e| self.err(e))?;
        }
        txn.commit().map_err(|e| self.err(e))
    }

    /// Height of the latest committed block (0 before the first).
    pub fn latest_height(&self) -> Result<u64, StoreError> {
        Ok(self.meta_u64("height")?.unwrap_or(0))
    }

    /// Blocks from `from` on, at most `max`.
    pub fn blocks(&self, from: u64, max: usize) -> Result<Vec<Block>, StoreError> {
        let txn = self.db.begin_read().map_err(|e| self.err(e))?;
        let table = txn.open_table(BLOCKS).map_err(|e| self.err(e))?;
        let mut out = Vec::new();
        for item in table.range(from..).map_err(|e| self.err(e))?.take(max) {
            let (_, v) = item.map_err(|e| self.err(e))?;
            out.push(crate::encoding::from_cbor(v.value()).map_err(|e| self.err(e))?);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newer_schema_is_refused() {
        let t = tempfile::tempdir().expect("tempdir");
        let p = t.path().join("consensus.redb");
        let s = Store::open(&p).expect("create");
        assert!(s.state().expect("read").is_none());
        s.set_schema_version(SCHEMA_VERSION + 1).expect("bump");
        drop(s);
        let e = Store::open(&p).expect_err("too new");
        assert!(
            e.to_string()
                .contains("newer than this software understands"),
            "{e}"
        );
    }
}
