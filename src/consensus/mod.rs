//! The consensus layer of the node: the deterministic rules live in the `paratime-state` crate
//! (re-exported here under their old paths); this module adds what needs I/O or time — reading
//! the genesis file and the engine that orders blocks.

pub use paratime_state::{address, block, crypto, roothash, state, validators};

pub mod engine;
mod recent;

/// The genesis document ([`paratime_state::genesis`]) and reading it from a file.
pub mod genesis {
    pub use paratime_state::genesis::*;

    /// Why a genesis file cannot be used.
    #[derive(Debug, thiserror::Error)]
    pub enum LoadError {
        /// Missing, not a regular file, or too large.
        #[error("genesis file {0}")]
        Read(#[from] crate::system::files::FileError),
        /// Not a valid genesis document.
        #[error("genesis file '{}': {reason}", path.display())]
        Invalid {
            /// The file.
            path: std::path::PathBuf,
            /// What is wrong.
            reason: paratime_state::genesis::GenesisError,
        },
    }

    /// Reads (bounded) and checks a genesis file; errors name the file.
    pub fn load(path: &std::path::Path) -> Result<Genesis, LoadError> {
        let bytes = crate::system::files::read_bounded(path, crate::system::files::GENESIS_LIMIT)?;
        Genesis::from_json(&bytes).map_err(|reason| LoadError::Invalid {
            path: path.to_path_buf(),
            reason,
        })
    }
}
