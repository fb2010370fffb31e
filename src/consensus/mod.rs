//! The consensus layer of the node: the deterministic rules live in the `paratime-state` crate
//! (re-exported here under their old paths); this module adds what needs I/O or time — reading
//! the genesis file and the engine that orders blocks.

pub use paratime_state::{address, block, crypto, roothash, state, validators};

pub mod engine;

/// The genesis document ([`paratime_state::genesis`]) and reading it from a file.
pub mod genesis {
    pub use paratime_state::genesis::*;

    /// Reads (bounded) and checks a genesis file; errors name the file.
    pub fn load(path: &std::path::Path) -> Result<Genesis, String> {
        let bytes = crate::system::files::read_bounded(path, crate::system::files::GENESIS_LIMIT)
            .map_err(|e| format!("genesis file {e}"))?;
        Genesis::from_json(&bytes).map_err(|e| format!("genesis file '{}': {e}", path.display()))
    }
}
