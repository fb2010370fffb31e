//! The node's embedded ACID store (redb): blocks and the consensus state, committed atomically
//! per block, with a schema version. A store written by a newer schema is refused, so a rollback
//! to an older binary (a NixOS generation switch) cannot corrupt it.

use crate::bundle::RuntimeId;
use crate::encoding::Hash;
use paratime_state::block::{CommitCert, Proposed};
use paratime_state::crypto::PublicKey;
use paratime_state::roothash::{BlockHeader, Event, ExecutedBatch, LastSigned};
use paratime_state::state::State;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use std::path::{Path, PathBuf};

mod txindex;
pub use txindex::MAX_ENTRIES as TX_INDEX_ENTRIES;

/// Committed blocks: height → CBOR (block, commit certificate).
const BLOCKS: TableDefinition<'static, u64, &[u8]> = TableDefinition::new("blocks");
/// Proposals seen or made and not yet committed (for crash replay): height ‖ round ‖ proposer →
/// block.
const PROPOSALS: TableDefinition<'static, &[u8], &[u8]> = TableDefinition::new("proposals");
const META: TableDefinition<'static, &str, &[u8]> = TableDefinition::new("meta");
/// The consensus state's entries ([`paratime_state::tree`]): key → canonical CBOR. A block
/// writes only the entries it changed.
const STATE: TableDefinition<'static, &[u8], &[u8]> = TableDefinition::new("consensus_state");
/// Runtime block headers: runtime ID ‖ round (big-endian) → header.
const RT_BLOCKS: TableDefinition<'static, &[u8], &[u8]> = TableDefinition::new("runtime_blocks");
/// Executed batches of finalized rounds: runtime ID ‖ round → batch.
const RT_BATCHES: TableDefinition<'static, &[u8], &[u8]> = TableDefinition::new("runtime_batches");
/// The transaction index as stores before stop 40 kept it (runtime ID ‖ tx hash → (round,
/// index)); deleted when such a store is opened. The index is now in memory ([`txindex`]).
const OLD_RT_TXS: TableDefinition<'static, &[u8], &[u8]> = TableDefinition::new("runtime_txs");
/// The signer's record: slot key ([`paratime_state::signing::Slot::record_key`]) → message
/// digest (32) ‖ signature (64).
const SIGNED: TableDefinition<'static, &[u8], &[u8]> = TableDefinition::new("signed_slots");
/// Per-runtime records: runtime ID ‖ name → CBOR (`applied`, `signed`).
const RT_META: TableDefinition<'static, &[u8], &[u8]> = TableDefinition::new("runtime_meta");

fn rt_key(rid: &RuntimeId, suffix: &[u8]) -> Vec<u8> {
    let mut k = rid.0.to_vec();
    k.extend_from_slice(suffix);
    k
}

/// The round of a runtime ID ‖ round key (0 if the key is shorter).
fn round_in_key(k: &[u8]) -> u64 {
    let mut b = [0u8; 8];
    if let Some(tail) = k.get(32..40) {
        b.copy_from_slice(tail);
    }
    u64::from_be_bytes(b)
}

/// Where a runtime's finalized state is.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Applied {
    /// Last round applied.
    pub round: paratime_state::Round,
    /// State root after it.
    pub state_root: Hash,
}

/// What [`Store::sign_once`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignOnce {
    /// The signature (new, or recorded earlier for the same message).
    Signed([u8; 64]),
    /// A different message was signed for this slot.
    Conflict,
}

/// redb's page cache for the consensus store.
pub const CACHE_BYTES: usize = 32 << 20;

/// The schema this software writes and understands.
/// 4: the consensus state is stored as entries, written per block as they change (3 stored it
/// whole, re-encoded every block).
/// 3: runtime state roots are roots of the runtime's state tree (2 chained write-log hashes and
/// kept the runtime state in this store; 1 was the single-producer engine's signed blocks).
pub const SCHEMA_VERSION: u64 = 4;

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
    /// The store was written by older software whose blocks this one cannot read.
    #[error("store {path} has schema version {found}: {}, which this software cannot read; move it away and let the node sync from its peers", match *found { 0 | 1 => "blocks of the single-validator engine", 2 => "runtime state roots of write-log hashes, not of the state tree", _ => "the consensus state stored whole, not as entries" })]
    TooOld {
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
    /// Where recently finalized transactions are, per hosted runtime.
    txs: std::sync::Mutex<txindex::TxIndex>,
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

    /// Opens (or creates) the store at `path`, checking its schema version. redb's page cache
    /// is bounded ([`CACHE_BYTES`]; redb's default is 1 GiB, which a long-running node would
    /// fill).
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let db = Database::builder()
            .set_cache_size(CACHE_BYTES)
            .create(path)
            .map_err(|e| StoreError::Db {
                path: path.to_path_buf(),
                message: e.to_string(),
            })?;
        let s = Self {
            db,
            path: path.to_path_buf(),
            txs: std::sync::Mutex::new(txindex::TxIndex::new(TX_INDEX_ENTRIES)),
        };
        let found = s.meta_u64("schema_version")?;
        match found {
            Some(v) if v > SCHEMA_VERSION => {
                return Err(StoreError::TooNew {
                    path: path.to_path_buf(),
                    found: v,
                })
            }
            Some(v) if v < SCHEMA_VERSION => {
                return Err(StoreError::TooOld {
                    path: path.to_path_buf(),
                    found: v,
                })
            }
            Some(_) => {
                // The index table of earlier versions: rebuilt in memory now, its pages freed.
                // (An older binary opening the store again starts a new, empty one.)
                let txn = s.db.begin_write().map_err(|e| s.err(e))?;
                if txn.delete_table(OLD_RT_TXS).map_err(|e| s.err(e))? {
                    txn.commit().map_err(|e| s.err(e))?;
                }
            }
            None => {
                let txn = s.db.begin_write().map_err(|e| s.err(e))?;
                {
                    let mut meta = txn.open_table(META).map_err(|e| s.err(e))?;
                    meta.insert("schema_version", SCHEMA_VERSION.to_be_bytes().as_slice())
                        .map_err(|e| s.err(e))?;
                    txn.open_table(BLOCKS).map_err(|e| s.err(e))?;
                    txn.open_table(STATE).map_err(|e| s.err(e))?;
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

    /// The latest committed state, if any block was committed: its entries on top of the
    /// genesis parameters, checked against the state root it was committed with.
    pub fn state(
        &self,
        genesis: &paratime_state::genesis::Genesis,
    ) -> Result<Option<State>, StoreError> {
        let Some(height) = self.meta_u64("height")? else {
            return Ok(None);
        };
        let txn = self.db.begin_read().map_err(|e| self.err(e))?;
        let table = txn.open_table(STATE).map_err(|e| self.err(e))?;
        let mut items = Vec::new();
        for item in table.iter().map_err(|e| self.err(e))? {
            let (k, v) = item.map_err(|e| self.err(e))?;
            items.push((k.value().to_vec(), v.value().to_vec()));
        }
        let mut state = paratime_state::tree::from_entries(genesis, items, height)
            .map_err(|e| self.err(format!("consensus state at height {height}: {e}")))?;
        if let Some(h) = self.meta("last_block_hash")? {
            state.last_block_hash = h
                .try_into()
                .map_err(|_| self.err("last_block_hash is not 32 bytes"))?;
        }
        if let Some(root) = self.meta("state_root")? {
            if root != state.root() {
                return Err(self.err(format!(
                    "consensus state at height {height}: its entries give root {}, not the committed {}; the store is damaged: move it away and let the node sync from its peers",
                    hex::encode(state.root()),
                    hex::encode(&root)
                )));
            }
        }
        Ok(Some(state))
    }

    /// Commits a block with its certificate and the state after it in one transaction, and
    /// forgets the proposals of its height.
    pub fn commit_block(
        &self,
        block: &Proposed,
        cert: &CommitCert,
        state: &State,
    ) -> Result<(), StoreError> {
        let height = state.height.0;
        let block_bytes = crate::encoding::canonical_cbor(&(block, cert));
        // The first block after genesis writes every entry; later ones what they changed.
        let first = self.meta_u64("height")?.is_none();
        let all;
        let changes: &[paratime_state::tree::Entry] = if first {
            all = paratime_state::tree::entries(state);
            &all
        } else {
            &state.changes
        };
        let txn = self.db.begin_write().map_err(|e| self.err(e))?;
        {
            let mut blocks = txn.open_table(BLOCKS).map_err(|e| self.err(e))?;
            blocks
                .insert(height, block_bytes.as_slice())
                .map_err(|e| self.err(e))?;
            let mut entries = txn.open_table(STATE).map_err(|e| self.err(e))?;
            for (k, v) in changes {
                match v {
                    Some(v) => entries.insert(k.as_slice(), v.as_slice()),
                    None => entries.remove(k.as_slice()),
                }
                .map_err(|e| self.err(e))?;
            }
            let mut meta = txn.open_table(META).map_err(|e| self.err(e))?;
            meta.insert("height", height.to_be_bytes().as_slice())
                .map_err(|e| self.err(e))?;
            meta.insert("last_block_hash", state.last_block_hash.as_slice())
                .map_err(|e| self.err(e))?;
            meta.insert("state_root", state.root().as_slice())
                .map_err(|e| self.err(e))?;
            let mut proposals = txn.open_table(PROPOSALS).map_err(|e| self.err(e))?;
            let hi = height.saturating_add(1).to_be_bytes();
            proposals
                .retain_in(&[][..]..&hi[..], |_, _| false)
                .map_err(|e| self.err(e))?;
            let mut rt = txn.open_table(RT_BLOCKS).map_err(|e| self.err(e))?;
            for ev in &state.events {
                if let Event::Block(h) = ev {
                    rt.insert(
                        rt_key(&h.namespace, &h.round.0.to_be_bytes()).as_slice(),
                        crate::encoding::canonical_cbor(h).as_slice(),
                    )
                    .map_err(|e| self.err(e))?;
                }
            }
        }
        txn.commit().map_err(|e| self.err(e))
    }

    fn rt_get<T: serde::de::DeserializeOwned>(
        &self,
        table: TableDefinition<'_, &[u8], &[u8]>,
        key: &[u8],
    ) -> Result<Option<T>, StoreError> {
        let txn = self.db.begin_read().map_err(|e| self.err(e))?;
        let t = match txn.open_table(table) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
            Err(e) => return Err(self.err(e)),
        };
        match t.get(key).map_err(|e| self.err(e))? {
            None => Ok(None),
            Some(v) => crate::encoding::from_cbor(v.value())
                .map(Some)
                .map_err(|e| self.err(e)),
        }
    }

    /// The runtime block of `round`, once finalized.
    pub fn runtime_block(
        &self,
        rid: &RuntimeId,
        round: paratime_state::Round,
    ) -> Result<Option<BlockHeader>, StoreError> {
        self.rt_get(RT_BLOCKS, &rt_key(rid, &round.0.to_be_bytes()))
    }

    /// The executed batch of a finalized `round` (served to peers that catch up).
    pub fn executed_batch(
        &self,
        rid: &RuntimeId,
        round: paratime_state::Round,
    ) -> Result<Option<ExecutedBatch>, StoreError> {
        self.rt_get(RT_BATCHES, &rt_key(rid, &round.0.to_be_bytes()))
    }

    /// Removes the history of rounds before `keep_from` (at most `max_rounds` of them, oldest
    /// first): runtime block headers and executed batches; their transactions leave the index.
    /// Returns how many rounds were removed; the lowest round kept is recorded for status.
    pub fn prune_runtime(
        &self,
        rid: &RuntimeId,
        keep_from: paratime_state::Round,
        max_rounds: usize,
    ) -> Result<u64, StoreError> {
        let txn = self.db.begin_write().map_err(|e| self.err(e))?;
        let mut removed = 0u64;
        let mut highest = None;
        {
            let mut blocks = txn.open_table(RT_BLOCKS).map_err(|e| self.err(e))?;
            let mut batches = txn.open_table(RT_BATCHES).map_err(|e| self.err(e))?;
            let keys = self.oldest_headers(&blocks, rid, keep_from, max_rounds)?;
            for k in keys {
                blocks.remove(k.as_slice()).map_err(|e| self.err(e))?;
                batches.remove(k.as_slice()).map_err(|e| self.err(e))?;
                removed += 1;
                highest = Some(round_in_key(&k));
            }
            // After a state sync the history starts above the pruned blocks: it never moves back.
            let before = self.runtime_retained_from(rid)?;
            if let Some(h) = highest.filter(|h| h.saturating_add(1) > before.0) {
                let mut meta = txn.open_table(RT_META).map_err(|e| self.err(e))?;
                meta.insert(
                    rt_key(rid, b"retained_from").as_slice(),
                    crate::encoding::canonical_cbor(&paratime_state::Round(h.saturating_add(1)))
                        .as_slice(),
                )
                .map_err(|e| self.err(e))?;
            }
        }
        txn.commit().map_err(|e| self.err(e))?;
        if let Some(h) = highest {
            self.tx_index()
                .forget_through(rid, paratime_state::Round(h));
        }
        Ok(removed)
    }

    /// Removes the block headers of `rid`'s rounds before `keep_from` (at most `max` of them,
    /// oldest first) and nothing else: for a runtime this node does not host, whose headers it
    /// stores with every consensus block but whose batches it never had. What peers are told
    /// of this node's history of the runtime ([`Self::runtime_retained_from`]) stays as it
    /// was. Returns how many went.
    pub fn prune_runtime_headers(
        &self,
        rid: &RuntimeId,
        keep_from: paratime_state::Round,
        max: usize,
    ) -> Result<u64, StoreError> {
        let txn = self.db.begin_write().map_err(|e| self.err(e))?;
        let removed;
        {
            let mut blocks = txn.open_table(RT_BLOCKS).map_err(|e| self.err(e))?;
            let keys = self.oldest_headers(&blocks, rid, keep_from, max)?;
            for k in &keys {
                blocks.remove(k.as_slice()).map_err(|e| self.err(e))?;
            }
            removed = keys.len() as u64;
        }
        txn.commit().map_err(|e| self.err(e))?;
        Ok(removed)
    }

    /// The keys of `rid`'s oldest block headers before `keep_from`, at most `max`, oldest first.
    fn oldest_headers(
        &self,
        blocks: &impl ReadableTable<&'static [u8], &'static [u8]>,
        rid: &RuntimeId,
        keep_from: paratime_state::Round,
        max: usize,
    ) -> Result<Vec<Vec<u8>>, StoreError> {
        let lo = rt_key(rid, &0u64.to_be_bytes());
        let hi = rt_key(rid, &keep_from.0.to_be_bytes());
        blocks
            .range(lo.as_slice()..hi.as_slice())
            .map_err(|e| self.err(e))?
            .take(max)
            .map(|r| r.map(|(k, _)| k.value().to_vec()))
            .collect::<Result<_, _>>()
            .map_err(|e| self.err(e))
    }

    /// The lowest round whose history is kept (0 before any pruning).
    pub fn runtime_retained_from(
        &self,
        rid: &RuntimeId,
    ) -> Result<paratime_state::Round, StoreError> {
        Ok(self
            .rt_get(RT_META, &rt_key(rid, b"retained_from"))?
            .unwrap_or(paratime_state::Round(0)))
    }

    /// Stores a runtime block header as a committed block's event would (tests).
    #[cfg(test)]
    pub(crate) fn insert_runtime_header(&self, rid: &RuntimeId, round: paratime_state::Round) {
        let txn = self.db.begin_write().expect("write");
        txn.open_table(RT_BLOCKS)
            .expect("table")
            .insert(
                rt_key(rid, &round.0.to_be_bytes()).as_slice(),
                &b"header"[..],
            )
            .expect("insert");
        txn.commit().expect("commit");
    }

    /// The last round whose state was applied, if any.
    pub fn runtime_applied(&self, rid: &RuntimeId) -> Result<Option<Applied>, StoreError> {
        self.rt_get(RT_META, &rt_key(rid, b"applied"))
    }

    /// Where a recently finalized transaction is: (round, index in the batch). `None` for one
    /// not finalized, and for one older than the index holds ([`TX_INDEX_ENTRIES`] per
    /// runtime, newest rounds first).
    pub fn tx_location(
        &self,
        rid: &RuntimeId,
        tx_hash: &Hash,
    ) -> Result<Option<(paratime_state::Round, u32)>, StoreError> {
        let mut ix = self.tx_index();
        self.load_tx_index(&mut ix, rid);
        Ok(ix.get(rid, tx_hash))
    }

    fn tx_index(&self) -> std::sync::MutexGuard<'_, txindex::TxIndex> {
        // The index is consistent after every call (no call panics midway through a change).
        self.txs.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Builds `rid`'s transaction index from its newest stored batches, once per start. What
    /// cannot be read is logged and left out: the index only saves work (a transaction it does
    /// not know is checked again), so it never stops a round from being applied.
    fn load_tx_index(&self, ix: &mut txindex::TxIndex, rid: &RuntimeId) {
        if ix.is_loaded(rid) {
            return;
        }
        let rounds = self.newest_inputs(rid, ix.max_entries()).unwrap_or_else(|e| {
            log::warn!(target: "storage", runtime_id:% = rid; "transaction index: cannot read the stored batches ({e}); it starts empty");
            Vec::new()
        });
        ix.load(rid, rounds);
    }

    /// The hashes of the inputs of `rid`'s newest stored batches, newest first, until they
    /// number more than `max`. A batch that does not decode is logged and skipped.
    fn newest_inputs(
        &self,
        rid: &RuntimeId,
        max: usize,
    ) -> Result<Vec<(paratime_state::Round, Vec<Hash>)>, StoreError> {
        /// The part of a stored [`ExecutedBatch`] the index needs.
        #[derive(serde::Deserialize)]
        struct Inputs {
            inputs: Vec<serde_bytes::ByteBuf>,
        }
        let txn = self.db.begin_read().map_err(|e| self.err(e))?;
        let t = match txn.open_table(RT_BATCHES) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
            Err(e) => return Err(self.err(e)),
        };
        let lo = rt_key(rid, &0u64.to_be_bytes());
        let hi = rt_key(rid, &u64::MAX.to_be_bytes());
        let mut rounds = Vec::new();
        let mut total = 0usize;
        for item in t
            .range(lo.as_slice()..=hi.as_slice())
            .map_err(|e| self.err(e))?
            .rev()
        {
            let (k, v) = item.map_err(|e| self.err(e))?;
            let round = paratime_state::Round(round_in_key(k.value()));
            let b: Inputs = match crate::encoding::from_cbor(v.value()) {
                Ok(b) => b,
                Err(e) => {
                    log::warn!(target: "storage", runtime_id:% = rid, round = round.0; "transaction index: the stored batch does not decode ({e}); its transactions are not indexed");
                    continue;
                }
            };
            total += b.inputs.len();
            if total > max {
                break;
            }
            let hashes = b.inputs.iter().map(|t| crate::encoding::hash(t)).collect();
            rounds.push((round, hashes));
        }
        Ok(rounds)
    }

    /// Records a finalized round in one transaction: the batch and the new applied marker (the
    /// state itself is the runtime's tree, applied before), then indexes the batch's
    /// transactions. `batch` is `None` for rounds without a batch (failed rounds, epoch
    /// transitions).
    pub fn apply_round(
        &self,
        rid: &RuntimeId,
        round: paratime_state::Round,
        batch: Option<&ExecutedBatch>,
        state_root: &Hash,
    ) -> Result<(), StoreError> {
        let txn = self.db.begin_write().map_err(|e| self.err(e))?;
        {
            let mut meta = txn.open_table(RT_META).map_err(|e| self.err(e))?;
            if let Some(b) = batch {
                let mut batches = txn.open_table(RT_BATCHES).map_err(|e| self.err(e))?;
                batches
                    .insert(
                        rt_key(rid, &round.0.to_be_bytes()).as_slice(),
                        crate::encoding::canonical_cbor(b).as_slice(),
                    )
                    .map_err(|e| self.err(e))?;
            }
            self.put_applied(&mut meta, rid, round, state_root)?;
        }
        txn.commit().map_err(|e| self.err(e))?;
        let mut ix = self.tx_index();
        if ix.is_loaded(rid) {
            if let Some(b) = batch {
                let hashes: Vec<Hash> = b.inputs.iter().map(|t| crate::encoding::hash(t)).collect();
                ix.add(rid, round, &hashes);
            }
        } else {
            // Built from the store, which has this round now.
            self.load_tx_index(&mut ix, rid);
        }
        Ok(())
    }

    /// Writes the applied marker (round and state root) into `meta`.
    fn put_applied(
        &self,
        meta: &mut redb::Table<'_, &'static [u8], &'static [u8]>,
        rid: &RuntimeId,
        round: paratime_state::Round,
        state_root: &Hash,
    ) -> Result<(), StoreError> {
        let applied = Applied {
            round,
            state_root: *state_root,
        };
        meta.insert(
            rt_key(rid, b"applied").as_slice(),
            crate::encoding::canonical_cbor(&applied).as_slice(),
        )
        .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// Records a state sync: `round` (state root `state_root`) is applied, and the history
    /// this node keeps starts after it (it has no batches before).
    pub fn state_synced(
        &self,
        rid: &RuntimeId,
        round: paratime_state::Round,
        state_root: &Hash,
    ) -> Result<(), StoreError> {
        let txn = self.db.begin_write().map_err(|e| self.err(e))?;
        {
            let mut meta = txn.open_table(RT_META).map_err(|e| self.err(e))?;
            self.put_applied(&mut meta, rid, round, state_root)?;
            meta.insert(
                rt_key(rid, b"retained_from").as_slice(),
                crate::encoding::canonical_cbor(&round.next()).as_slice(),
            )
            .map_err(|e| self.err(e))?;
        }
        txn.commit().map_err(|e| self.err(e))
    }

    /// A per-runtime record (`signed`: the last commitment this node signed; `proposal`: the
    /// last batch it proposed).
    pub fn runtime_record<T: serde::de::DeserializeOwned>(
        &self,
        rid: &RuntimeId,
        name: &str,
    ) -> Result<Option<T>, StoreError> {
        self.rt_get(RT_META, &rt_key(rid, name.as_bytes()))
    }

    /// Writes a per-runtime record durably (before what it records leaves the node).
    pub fn set_runtime_record<T: serde::Serialize>(
        &self,
        rid: &RuntimeId,
        name: &str,
        v: &T,
    ) -> Result<(), StoreError> {
        let txn = self.db.begin_write().map_err(|e| self.err(e))?;
        {
            let mut meta = txn.open_table(RT_META).map_err(|e| self.err(e))?;
            meta.insert(
                rt_key(rid, name.as_bytes()).as_slice(),
                crate::encoding::canonical_cbor(v).as_slice(),
            )
            .map_err(|e| self.err(e))?;
        }
        txn.commit().map_err(|e| self.err(e))
    }

    /// The last commitment this node signed for `rid`.
    pub fn last_signed(&self, rid: &RuntimeId) -> Result<Option<LastSigned>, StoreError> {
        self.runtime_record(rid, "signed")
    }

    /// Records (durably, before it is sent) the commitment this node signed.
    pub fn set_last_signed(&self, rid: &RuntimeId, s: &LastSigned) -> Result<(), StoreError> {
        self.set_runtime_record(rid, "signed", s)
    }

    /// The signer's check-and-record, in one write transaction: if `slot` holds a signature of
    /// `digest`, returns it; if it holds another digest, returns `Conflict`; otherwise calls
    /// `sign`, records the digest with the signature, commits (durably), and only then returns
    /// the signature. Any store error means nothing was signed.
    pub fn sign_once(
        &self,
        slot: &[u8],
        digest: &Hash,
        sign: impl FnOnce() -> [u8; 64],
    ) -> Result<SignOnce, StoreError> {
        let txn = self.db.begin_write().map_err(|e| self.err(e))?;
        let signature = {
            let mut table = txn.open_table(SIGNED).map_err(|e| self.err(e))?;
            let existing = table
                .get(slot)
                .map_err(|e| self.err(e))?
                .map(|v| v.value().to_vec());
            if let Some(record) = existing {
                if record.len() != 96 {
                    return Err(self.err(format!(
                        "signer record of {} bytes, expected 96",
                        record.len()
                    )));
                }
                if record[..32] != digest[..] {
                    return Ok(SignOnce::Conflict);
                }
                let mut sig = [0u8; 64];
                sig.copy_from_slice(&record[32..]);
                return Ok(SignOnce::Signed(sig));
            }
            let sig = sign();
            let mut record = digest.to_vec();
            record.extend_from_slice(&sig);
            table
                .insert(slot, record.as_slice())
                .map_err(|e| self.err(e))?;
            sig
        };
        txn.commit().map_err(|e| self.err(e))?;
        Ok(SignOnce::Signed(signature))
    }

    /// Forgets the signer's slots with keys in `[prefix ‖ 0…, prefix ‖ below)` — slots the node
    /// can never be asked to sign again (heights or rounds already committed).
    pub fn prune_signed(&self, prefix: &[u8], below: u64) -> Result<(), StoreError> {
        let lo = prefix.to_vec();
        let mut hi = prefix.to_vec();
        hi.extend_from_slice(&below.to_be_bytes());
        let txn = self.db.begin_write().map_err(|e| self.err(e))?;
        {
            let mut table = txn.open_table(SIGNED).map_err(|e| self.err(e))?;
            table
                .retain_in(lo.as_slice()..hi.as_slice(), |_, _| false)
                .map_err(|e| self.err(e))?;
        }
        txn.commit().map_err(|e| self.err(e))
    }

    /// Removes committed blocks below `keep_from` (at most `max` of them, oldest first; the
    /// latest block always stays) and records the lowest height kept. Returns how many went.
    pub fn prune_blocks(&self, keep_from: u64, max: usize) -> Result<u64, StoreError> {
        let keep_from = keep_from.min(self.latest_height()?);
        let txn = self.db.begin_write().map_err(|e| self.err(e))?;
        let removed;
        {
            let mut blocks = txn.open_table(BLOCKS).map_err(|e| self.err(e))?;
            let old: Vec<u64> = blocks
                .range(..keep_from)
                .map_err(|e| self.err(e))?
                .take(max)
                .map(|r| r.map(|(k, _)| k.value()))
                .collect::<Result<_, _>>()
                .map_err(|e| self.err(e))?;
            for h in &old {
                blocks.remove(*h).map_err(|e| self.err(e))?;
            }
            removed = old.len() as u64;
            if let Some(last) = old.last() {
                let mut meta = txn.open_table(META).map_err(|e| self.err(e))?;
                meta.insert("retained_from", (last + 1).to_be_bytes().as_slice())
                    .map_err(|e| self.err(e))?;
            }
        }
        txn.commit().map_err(|e| self.err(e))?;
        Ok(removed)
    }

    /// Bytes of redb's page cache now (bounded by [`CACHE_BYTES`]).
    pub fn cache_bytes(&self) -> usize {
        self.db.cache_stats().used_bytes()
    }

    /// The lowest height whose block is kept (1 before any pruning).
    pub fn retained_from(&self) -> Result<u64, StoreError> {
        Ok(self.meta_u64("retained_from")?.unwrap_or(1))
    }

    /// Height of the latest committed block (0 before the first).
    pub fn latest_height(&self) -> Result<u64, StoreError> {
        Ok(self.meta_u64("height")?.unwrap_or(0))
    }

    /// The committed block at `height` with its certificate.
    pub fn block(&self, height: u64) -> Result<Option<(Proposed, CommitCert)>, StoreError> {
        let txn = self.db.begin_read().map_err(|e| self.err(e))?;
        let table = txn.open_table(BLOCKS).map_err(|e| self.err(e))?;
        match table.get(height).map_err(|e| self.err(e))? {
            None => Ok(None),
            Some(v) => crate::encoding::from_cbor(v.value())
                .map(Some)
                .map_err(|e| self.err(e)),
        }
    }

    /// Remembers a proposal (durably) until its height is committed.
    pub fn remember_proposal(
        &self,
        height: u64,
        round: u32,
        proposer: &PublicKey,
        block: &Proposed,
    ) -> Result<(), StoreError> {
        let mut key = height.to_be_bytes().to_vec();
        key.extend_from_slice(&round.to_be_bytes());
        key.extend_from_slice(&proposer.0);
        let txn = self.db.begin_write().map_err(|e| self.err(e))?;
        {
            let mut t = txn.open_table(PROPOSALS).map_err(|e| self.err(e))?;
            t.insert(
                key.as_slice(),
                crate::encoding::canonical_cbor(block).as_slice(),
            )
            .map_err(|e| self.err(e))?;
        }
        txn.commit().map_err(|e| self.err(e))
    }

    /// The proposals remembered for `height`: (round, proposer, block).
    pub fn proposals(&self, height: u64) -> Result<Vec<(u32, PublicKey, Proposed)>, StoreError> {
        let txn = self.db.begin_read().map_err(|e| self.err(e))?;
        let t = match txn.open_table(PROPOSALS) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
            Err(e) => return Err(self.err(e)),
        };
        let lo = height.to_be_bytes();
        let hi = height.saturating_add(1).to_be_bytes();
        let mut out = Vec::new();
        for item in t.range(&lo[..]..&hi[..]).map_err(|e| self.err(e))? {
            let (k, v) = item.map_err(|e| self.err(e))?;
            let k = k.value();
            if k.len() != 8 + 4 + 32 {
                continue;
            }
            let round = u32::from_be_bytes(k[8..12].try_into().unwrap_or([0; 4]));
            let proposer = PublicKey(k[12..].try_into().unwrap_or([0; 32]));
            out.push((
                round,
                proposer,
                crate::encoding::from_cbor(v.value()).map_err(|e| self.err(e))?,
            ));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finalized_rounds_and_records_survive_a_reopen() {
        use paratime_sdk::protocol::{TxResult, WriteLogEntry};
        use serde_bytes::ByteBuf;
        let t = tempfile::tempdir().expect("tempdir");
        let p = t.path().join("consensus.redb");
        let rid: RuntimeId = "0000000000000000000000000000000000000000000000000000000000000001"
            .parse()
            .expect("rid");
        let other: RuntimeId = "0000000000000000000000000000000000000000000000000000000000000002"
            .parse()
            .expect("rid");
        let write_log = vec![
            WriteLogEntry {
                key: ByteBuf::from(b"a".to_vec()),
                value: Some(ByteBuf::from(b"1".to_vec())),
            },
            WriteLogEntry {
                key: ByteBuf::from(b"b".to_vec()),
                value: None,
            },
        ];
        let prev = paratime_sdk::state::EMPTY_STATE_ROOT;
        let root = [7; 32];
        let inputs = vec![ByteBuf::from(b"tx".to_vec())];
        let results = vec![TxResult {
            error: None,
            output: None,
            sender: None,
        }];
        let batch = ExecutedBatch {
            runtime: rid,
            round: paratime_state::Round(1),
            previous_state_root: prev,
            state_root: root,
            io_root: paratime_sdk::state::io_root(1, &inputs, &results),
            inputs,
            results,
            write_log,
        };
        {
            let s = Store::open(&p).expect("create");
            s.apply_round(&rid, paratime_state::Round(1), Some(&batch), &root)
                .expect("apply");
            s.apply_round(&rid, paratime_state::Round(2), None, &root)
                .expect("failed round");
            s.set_runtime_record(&rid, "proposal", &7u64)
                .expect("record");
        }
        let s = Store::open(&p).expect("reopen");
        let applied = s.runtime_applied(&rid).expect("read").expect("applied");
        assert_eq!(
            (applied.round, applied.state_root),
            (paratime_state::Round(2), root)
        );
        assert_eq!(
            s.tx_location(&rid, &crate::encoding::hash(b"tx"))
                .expect("index"),
            Some((paratime_state::Round(1), 0))
        );
        assert_eq!(
            s.executed_batch(&rid, paratime_state::Round(1))
                .expect("batch"),
            Some(batch)
        );
        assert_eq!(
            s.runtime_record::<u64>(&rid, "proposal").expect("record"),
            Some(7)
        );
        assert_eq!(
            s.runtime_record::<u64>(&other, "proposal").expect("record"),
            None
        );
    }

    fn one_validator_genesis(v: &ed25519_dalek::SigningKey) -> paratime_state::genesis::Genesis {
        use paratime_state::genesis::{Genesis, GenesisValidator, RegistryGenesis, StakingGenesis};
        let id = PublicKey::of(v);
        let addr = paratime_state::address::Address::from_public_key(&id);
        Genesis {
            chain_id: "t".into(),
            genesis_time: "2026-01-01T00:00:00Z".into(),
            epoch_interval: 3,
            block_interval_ms: 10,
            validators: vec![GenesisValidator {
                consensus_id: id,
                entity_id: id,
            }],
            staking: StakingGenesis {
                thresholds: Default::default(),
                debonding_interval: 1,
                accounts: [(addr, 1000)].into_iter().collect(),
                escrow: Default::default(),
            },
            registry: RegistryGenesis {
                max_node_expiration: 2,
                runtimes: vec![],
                entities: vec![],
            },
            consensus_pubsub: Default::default(),
        }
    }

    #[test]
    fn the_consensus_state_is_stored_as_changed_entries_and_reloaded_checked() {
        use paratime_state::state::{Fee, Transaction, Transfer};
        let t = tempfile::tempdir().expect("tempdir");
        let p = t.path().join("consensus.redb");
        let v = ed25519_dalek::SigningKey::from_bytes(&[1; 32]);
        let g = one_validator_genesis(&v);
        let cert = CommitCert {
            engine: "test".into(),
            bytes: Vec::new(),
        };
        let s = Store::open(&p).expect("create");
        assert!(s.state(&g).expect("read").is_none());
        let mut state = State::from_genesis(&g);
        let entries = |s: &Store| {
            let txn = s.db.begin_read().expect("read");
            let t = txn.open_table(STATE).expect("table");
            t.iter().expect("iter").count()
        };
        for h in 1..=4u64 {
            let to = paratime_state::address::Address([h as u8; 21]);
            let tx = paratime_state::crypto::Signed::sign(
                &v,
                &paratime_state::crypto::context(
                    paratime_state::crypto::CONTEXT_TX,
                    Some(&state.chain_context),
                ),
                &Transaction {
                    nonce: h - 1,
                    fee: Fee::default(),
                    method: "staking.Transfer".into(),
                    body: ciborium::Value::serialized(&Transfer { to, amount: 1 }).expect("body"),
                },
            );
            let (b, next, out) = Proposed::build(&state, vec![tx], h, PublicKey::of(&v));
            assert!(out[0].error.is_none(), "{out:?}");
            s.commit_block(&b, &cert, &next).expect("commit");
            state = next;
        }
        // The genesis account, four recipients and the chain's scalars.
        assert_eq!(entries(&s), 6);
        drop(s);
        let s = Store::open(&p).expect("reopen");
        let loaded = s.state(&g).expect("read").expect("state");
        assert_eq!(loaded.root(), state.root());
        assert_eq!(loaded.last_block_hash, state.last_block_hash);
        assert_eq!(loaded.accounts, state.accounts);
        assert_eq!((loaded.height, loaded.epoch), (state.height, state.epoch));
        // A damaged entry is found at load, not carried forward.
        {
            let txn = s.db.begin_write().expect("write");
            {
                let mut t = txn.open_table(STATE).expect("table");
                let key = [&[paratime_state::tree::ACCOUNT][..], &[2; 21]].concat();
                let acct = paratime_state::state::Account {
                    balance: 1_000_000,
                    ..Default::default()
                };
                t.insert(
                    key.as_slice(),
                    crate::encoding::canonical_cbor(&acct).as_slice(),
                )
                .expect("insert");
            }
            txn.commit().expect("commit");
        }
        let e = s.state(&g).expect_err("damaged").to_string();
        assert!(e.contains("the store is damaged"), "{e}");
    }

    #[test]
    fn newer_schema_is_refused() {
        let t = tempfile::tempdir().expect("tempdir");
        let p = t.path().join("consensus.redb");
        let s = Store::open(&p).expect("create");
        assert!(s.meta_u64("height").expect("read").is_none());
        s.set_schema_version(SCHEMA_VERSION + 1).expect("bump");
        drop(s);
        let e = Store::open(&p).expect_err("too new");
        assert!(
            e.to_string()
                .contains("newer than this software understands"),
            "{e}"
        );
    }

    #[test]
    fn the_transaction_index_is_rebuilt_from_the_newest_batches_and_the_old_table_goes() {
        use paratime_sdk::protocol::TxResult;
        use serde_bytes::ByteBuf;
        let d = tempfile::tempdir().expect("tmp");
        let path = d.path().join("s.redb");
        let rid: RuntimeId = format!("{:064x}", 1).parse().expect("rid");
        let input = |round: u64, i: u64| format!("tx {round}/{i}").into_bytes();
        let tx = |round: u64, i: u64| crate::encoding::hash(&input(round, i));
        let open = |entries: usize| {
            let s = Store::open(&path).expect("open");
            *s.tx_index() = txindex::TxIndex::new(entries);
            s
        };
        {
            let s = open(8);
            for round in 1..=6u64 {
                let b = ExecutedBatch {
                    runtime: rid,
                    round: paratime_state::Round(round),
                    previous_state_root: [0; 32],
                    state_root: [1; 32],
                    io_root: [2; 32],
                    inputs: (0..2).map(|i| ByteBuf::from(input(round, i))).collect(),
                    results: vec![TxResult::default(); 2],
                    write_log: Vec::new(),
                };
                s.apply_round(&rid, b.round, Some(&b), &[1; 32])
                    .expect("apply");
            }
            // 12 transactions, at most 8 held: rounds 3–6.
            let at = |round, i| s.tx_location(&rid, &tx(round, i)).expect("read");
            assert_eq!(at(6, 1), Some((paratime_state::Round(6), 1)));
            assert_eq!(at(3, 0), Some((paratime_state::Round(3), 0)));
            assert_eq!(at(2, 1), None);
            // A store of an earlier version has the index as a table.
            let txn = s.db.begin_write().expect("write");
            txn.open_table(OLD_RT_TXS)
                .expect("table")
                .insert(rt_key(&rid, &tx(1, 0)).as_slice(), &b"old"[..])
                .expect("insert");
            // And a damaged batch for round 7: skipped when the index is rebuilt.
            txn.open_table(RT_BATCHES)
                .expect("table")
                .insert(
                    rt_key(&rid, &7u64.to_be_bytes()).as_slice(),
                    &[0xff, 0x00][..],
                )
                .expect("insert");
            txn.commit().expect("commit");
        }
        let s = open(8);
        // Rebuilt from the newest batches that decode, within 7/8 of the bound: rounds 4–6.
        let at = |round, i| s.tx_location(&rid, &tx(round, i)).expect("read");
        assert_eq!(at(4, 0), Some((paratime_state::Round(4), 0)));
        assert_eq!(at(6, 1), Some((paratime_state::Round(6), 1)));
        assert_eq!(at(3, 0), None);
        assert!(matches!(
            s.db.begin_read().expect("read").open_table(OLD_RT_TXS),
            Err(redb::TableError::TableDoesNotExist(_))
        ));
        // Another runtime has no transactions.
        let other: RuntimeId = format!("{:064x}", 2).parse().expect("rid");
        assert_eq!(s.tx_location(&other, &tx(6, 1)).expect("read"), None);
    }

    #[test]
    fn pruning_removes_old_rounds_history_at_a_bounded_pace() {
        use paratime_sdk::protocol::TxResult;
        use serde_bytes::ByteBuf;
        let d = tempfile::tempdir().expect("tmp");
        let s = Store::open(&d.path().join("s.redb")).expect("create");
        let rid: RuntimeId = format!("{:064x}", 1).parse().expect("rid");
        let other: RuntimeId = format!("{:064x}", 2).parse().expect("rid");
        let batch = |rid: RuntimeId, round: u64| ExecutedBatch {
            runtime: rid,
            round: paratime_state::Round(round),
            previous_state_root: [0; 32],
            state_root: [1; 32],
            io_root: [2; 32],
            inputs: vec![ByteBuf::from(format!("tx {round}").into_bytes())],
            results: vec![TxResult::default()],
            write_log: Vec::new(),
        };
        for round in 1..=10u64 {
            for r in [rid, other] {
                s.insert_runtime_header(&r, paratime_state::Round(round));
                let b = batch(r, round);
                s.apply_round(&r, b.round, Some(&b), &[1; 32])
                    .expect("apply");
            }
        }
        let tx = |round: u64| crate::encoding::hash(format!("tx {round}").as_bytes());
        assert_eq!(
            s.runtime_retained_from(&rid).expect("read"),
            paratime_state::Round(0)
        );
        // At most two rounds per call.
        assert_eq!(
            s.prune_runtime(&rid, paratime_state::Round(6), 2)
                .expect("prune"),
            2
        );
        assert_eq!(
            s.runtime_retained_from(&rid).expect("read"),
            paratime_state::Round(3)
        );
        assert_eq!(
            s.prune_runtime(&rid, paratime_state::Round(6), 64)
                .expect("prune"),
            3
        );
        assert_eq!(
            s.runtime_retained_from(&rid).expect("read"),
            paratime_state::Round(6)
        );
        for round in 1..=10u64 {
            let kept = round >= 6;
            let r = paratime_state::Round(round);
            assert_eq!(
                s.executed_batch(&rid, r).expect("read").is_some(),
                kept,
                "batch {round}"
            );
            assert_eq!(
                s.tx_location(&rid, &tx(round)).expect("read").is_some(),
                kept,
                "tx {round}"
            );
            let block = {
                let txn = s.db.begin_read().expect("txn");
                let t = txn.open_table(RT_BLOCKS).expect("table");
                let k = rt_key(&rid, &round.to_be_bytes());
                t.get(k.as_slice()).expect("read").is_some()
            };
            assert_eq!(block, kept, "block {round}");
            // The other runtime keeps everything.
            assert!(s.executed_batch(&other, r).expect("read").is_some());
        }
        // Nothing old enough: nothing removed.
        assert_eq!(
            s.prune_runtime(&rid, paratime_state::Round(6), 64)
                .expect("prune"),
            0
        );
    }

    #[test]
    fn header_pruning_removes_only_old_headers_of_that_runtime() {
        let d = tempfile::tempdir().expect("tmp");
        let s = Store::open(&d.path().join("s.redb")).expect("create");
        let rid: RuntimeId = format!("{:064x}", 1).parse().expect("rid");
        let other: RuntimeId = format!("{:064x}", 2).parse().expect("rid");
        for round in 1..=10u64 {
            for r in [rid, other] {
                s.insert_runtime_header(&r, paratime_state::Round(round));
            }
        }
        let has = |r: &RuntimeId, round: u64| {
            let txn = s.db.begin_read().expect("txn");
            let t = txn.open_table(RT_BLOCKS).expect("table");
            let k = rt_key(r, &round.to_be_bytes());
            t.get(k.as_slice()).expect("read").is_some()
        };
        let keep = paratime_state::Round(8);
        assert_eq!(s.prune_runtime_headers(&rid, keep, 3).expect("prune"), 3);
        assert_eq!(s.prune_runtime_headers(&rid, keep, 100).expect("prune"), 4);
        assert_eq!(s.prune_runtime_headers(&rid, keep, 100).expect("prune"), 0);
        for round in 1..=10u64 {
            assert_eq!(has(&rid, round), round >= 8, "round {round}");
            assert!(has(&other, round), "the other runtime's round {round}");
        }
        // Peers are not told this node pruned a history it never had.
        assert_eq!(
            s.runtime_retained_from(&rid).expect("read"),
            paratime_state::Round(0)
        );
    }

    #[test]
    fn block_pruning_keeps_the_latest_and_records_the_lowest_kept() {
        let d = tempfile::tempdir().expect("tmp");
        let s = Store::open(&d.path().join("s.redb")).expect("create");
        let txn = s.db.begin_write().expect("txn");
        {
            let mut blocks = txn.open_table(BLOCKS).expect("table");
            for h in 1..=30u64 {
                blocks.insert(h, &b"block"[..]).expect("insert");
            }
            let mut meta = txn.open_table(META).expect("meta");
            meta.insert("height", 30u64.to_be_bytes().as_slice())
                .expect("height");
        }
        txn.commit().expect("commit");
        assert_eq!(s.retained_from().expect("read"), 1);
        assert_eq!(s.prune_blocks(21, 5).expect("prune"), 5);
        assert_eq!(s.retained_from().expect("read"), 6);
        assert_eq!(s.prune_blocks(21, 1000).expect("prune"), 15);
        assert_eq!(s.retained_from().expect("read"), 21);
        // Never the latest block, whatever is asked.
        assert_eq!(s.prune_blocks(u64::MAX, 1000).expect("prune"), 9);
        assert_eq!(s.retained_from().expect("read"), 30);
        let txn = s.db.begin_read().expect("txn");
        let blocks = txn.open_table(BLOCKS).expect("table");
        assert!(blocks.get(30u64).expect("read").is_some());
        assert!(blocks.get(29u64).expect("read").is_none());
    }
}
