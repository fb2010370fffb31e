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

/// Why the runtime state could not be changed, loaded or saved.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// A thread panicked while holding the state.
    #[error("state lock poisoned")]
    Poisoned,
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
    /// The claimed root is not what the write log gives.
    #[error(
        "runtime reported state root {} but the write log gives {}",
        hex::encode(claimed),
        hex::encode(computed)
    )]
    RootMismatch {
        /// What the runtime reported.
        claimed: Hash,
        /// What the write log gives.
        computed: Hash,
    },
    /// The state file cannot be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The state file is not CBOR of the expected shape.
    #[error("{}: not a state file: {reason}", path.display())]
    NotStateFile {
        /// The file.
        path: std::path::PathBuf,
        /// The decoder's reason.
        reason: String,
    },
    /// The state file's root is not 32 bytes.
    #[error("{}: bad state root", .0.display())]
    BadRoot(std::path::PathBuf),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> StateError + '_ {
    move |source| StateError::Io {
        path: path.to_path_buf(),
        source,
    }
}

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
    ) -> Result<Hash, StateError> {
        let mut g = self.inner.write().map_err(|_| StateError::Poisoned)?;
        if &g.0 != prev {
            return Err(StateError::Moved {
                executed_on: *prev,
                current: g.0,
            });
        }
        let sorted = write_log.windows(2).all(|w| w[0].key < w[1].key);
        if !sorted {
            return Err(StateError::Unsorted);
        }
        let root = next_state_root(prev, write_log);
        if &root != claimed {
            return Err(StateError::RootMismatch {
                claimed: *claimed,
                computed: root,
            });
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
    pub fn load(path: &Path) -> Result<Self, StateError> {
        let bytes = match std::fs::read(path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Self::default()),
            Err(e) => return Err(io(path)(e)),
        };
        let s: Snapshot =
            ciborium::from_reader(&bytes[..]).map_err(|e| StateError::NotStateFile {
                path: path.to_path_buf(),
                reason: e.to_string(),
            })?;
        let root: Hash = s
            .root
            .as_slice()
            .try_into()
            .map_err(|_| StateError::BadRoot(path.to_path_buf()))?;
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
    pub fn save(&self, path: &Path) -> Result<(), StateError> {
        let g = self.inner.read().map_err(|_| StateError::Poisoned)?;
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
        ciborium::into_writer(&s, &mut bytes).map_err(|e| StateError::NotStateFile {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, bytes).map_err(io(&tmp))?;
        std::fs::rename(&tmp, path).map_err(io(path))
    }
}
