//! The ParaTime's state, owned by the host (the sandbox is stateless).
//!
//! Kept in memory with its state root; [`RuntimeState::apply`] applies a batch's write log and
//! checks the runtime's claimed root. `runtime exec` persists it to a file between invocations;
//! the consensus issue moves it into the node's store.

use paratime_sdk::protocol::{Hash, WriteLogEntry};
use paratime_sdk::state::{next_state_root, EMPTY_STATE_ROOT};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::RwLock;

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct Snapshot {
    root: serde_bytes::ByteBuf,
    entries: BTreeMap<serde_bytes::ByteBuf, serde_bytes::ByteBuf>,
}

type Entries = BTreeMap<Vec<u8>, Vec<u8>>;

/// Key-value state with a state root.
#[derive(Debug)]
pub struct RuntimeState {
    inner: RwLock<(Hash, Entries)>,
}

impl Default for RuntimeState {
    fn default() -> Self {
        Self {
            inner: RwLock::new((EMPTY_STATE_ROOT, BTreeMap::new())),
        }
    }
}

impl RuntimeState {
    /// A state at `root` with `entries` (loaded from the node's store).
    pub fn from_entries(root: Hash, entries: BTreeMap<Vec<u8>, Vec<u8>>) -> Self {
        Self {
            inner: RwLock::new((root, entries)),
        }
    }

    /// The current state root.
    pub fn root(&self) -> Hash {
        self.inner.read().map(|g| g.0).unwrap_or(EMPTY_STATE_ROOT)
    }

    /// Reads a key.
    pub fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        self.inner.read().ok().and_then(|g| g.1.get(key).cloned())
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.inner.read().map(|g| g.1.len()).unwrap_or(0)
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Applies a write log on top of `prev`, checking that the resulting root is `claimed`.
    /// Nothing changes when the check fails.
    pub fn apply(
        &self,
        prev: &Hash,
        write_log: &[WriteLogEntry],
        claimed: &Hash,
    ) -> Result<Hash, String> {
        let mut g = self
            .inner
            .write()
            .map_err(|_| "state lock poisoned".to_string())?;
        if &g.0 != prev {
            return Err(format!(
                "state moved on: batch executed on {} but state is at {}",
                hex::encode(prev),
                hex::encode(g.0)
            ));
        }
        let sorted = write_log.windows(2).all(|w| w[0].key < w[1].key);
        if !sorted {
            return Err("write log is not sorted by key with one entry per key".into());
        }
        let root = next_state_root(prev, write_log);
        if &root != claimed {
            return Err(format!(
                "runtime reported state root {} but the write log gives {}",
                hex::encode(claimed),
                hex::encode(root)
            ));
        }
        for e in write_log {
            match &e.value {
                Some(v) => g.1.insert(e.key.to_vec(), v.to_vec()),
                None => g.1.remove(e.key.as_slice()),
            };
        }
        g.0 = root;
        Ok(root)
    }

    /// Loads a snapshot file (missing file = empty state).
    pub fn load(path: &Path) -> Result<Self, String> {
        let bytes = match std::fs::read(path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Self::default()),
            Err(e) => return Err(format!("{}: {e}", path.display())),
        };
        let s: Snapshot = ciborium::from_reader(&bytes[..])
            .map_err(|e| format!("{}: not a state file: {e}", path.display()))?;
        let root: Hash = s
            .root
            .as_slice()
            .try_into()
            .map_err(|_| format!("{}: bad state root", path.display()))?;
        let entries = s
            .entries
            .into_iter()
            .map(|(k, v)| (k.into_vec(), v.into_vec()))
            .collect();
        Ok(Self {
            inner: RwLock::new((root, entries)),
        })
    }

    /// Writes a snapshot file atomically.
    pub fn save(&self, path: &Path) -> Result<(), String> {
        let g = self
            .inner
            .read()
            .map_err(|_| "state lock poisoned".to_string())?;
        let s = Snapshot {
            root: serde_bytes::ByteBuf::from(g.0.to_vec()),
            entries: g
                .1
                .iter()
                .map(|(k, v)| {
                    (
                        serde_bytes::ByteBuf::from(k.clone()),
                        serde_bytes::ByteBuf::from(v.clone()),
                    )
                })
                .collect(),
        };
        let mut bytes = Vec::new();
        ciborium::into_writer(&s, &mut bytes).map_err(|e| e.to_string())?;
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, bytes).map_err(|e| format!("{}: {e}", tmp.display()))?;
        std::fs::rename(&tmp, path).map_err(|e| format!("{}: {e}", path.display()))
    }
}
