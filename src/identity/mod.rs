//! The node's data directory and keys.
//!
//! Owns: the data dir's mode/owner checks (0700, owned by the node user), the data dir lock, and
//! the node's Ed25519 keys in oasis-node's PEM files. Private keys are created 0600 and never
//! overwritten; a private key whose file is not exactly 0600 is refused on load. Keys never leave
//! this module except as signing handles or public keys.

mod datadir;
mod keys;

pub use datadir::{ensure_bundles_dir, ensure_dir, lock_data_dir, share_bundles_dir, DataDirLock};
pub use keys::{load_key_files, Identity, KeyKind};

use std::path::PathBuf;

/// Data dir and key errors, with the path and the fix.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    /// A directory exists with the wrong mode.
    #[error("common/Mkdir: path '{path}' has invalid permissions: {found}. Expected permissions: -rwx------ (fix: chmod 700 '{path}')")]
    DirPermissions {
        /// Directory.
        path: PathBuf,
        /// Mode found, `-rwxr-xr-x` style.
        found: String,
    },
    /// The exploded-bundles directory is writable by its group or open to others.
    #[error("path '{path}' has invalid permissions: {found}. Expected at most -rwxr-x--- (the sandbox launcher's group may read bundles, nobody else; fix: chmod 750 '{path}')")]
    BundlesDirPermissions {
        /// Directory.
        path: PathBuf,
        /// Mode found.
        found: String,
    },
    /// A directory exists with the wrong owner.
    #[error("common/Mkdir: path '{path}' has invalid owner: {found}. Expected owner: {expected} (fix: chown the directory to the user running the node)")]
    DirOwner {
        /// Directory.
        path: PathBuf,
        /// Owner uid found.
        found: u32,
        /// The node's effective uid.
        expected: u32,
    },
    /// Path exists but is not a directory.
    #[error("common/Mkdir: path '{0}' is not a directory")]
    NotADirectory(PathBuf),
    /// A private key file is not 0600.
    #[error("signature/signer/file: invalid PEM file permissions {mode:o} on {path} (fix: chmod 600 '{path}')")]
    KeyPermissions {
        /// Key file.
        path: PathBuf,
        /// Mode found.
        mode: u32,
    },
    /// A PEM file is malformed.
    #[error("malformed PEM file {path}: {reason}")]
    BadPem {
        /// File.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// A public key PEM does not match its private key.
    #[error("signature: public key PEM is not for private key ({0})")]
    PublicMismatch(PathBuf),
    /// Refusing to overwrite a key.
    #[error("key already exists: {0} (keys are never overwritten; move it away first if you really mean to replace it)")]
    KeyExists(PathBuf),
    /// Another node holds the lock.
    #[error("data directory '{0}' is in use by another paratime-node process (lock file {0}/node.lock is held); stop that node or use another data dir")]
    Locked(PathBuf),
    /// A key or lock file that is not a regular file, or too large.
    #[error(transparent)]
    File(#[from] crate::system::files::FileError),
    /// I/O failure.
    #[error("{path}: {source}")]
    Io {
        /// Path involved.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
}

pub(crate) fn io_err(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> IdentityError + '_ {
    move |source| IdentityError::Io {
        path: path.to_path_buf(),
        source,
    }
}
