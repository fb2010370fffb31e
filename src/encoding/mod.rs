//! Canonical CBOR and SHA-512/256: defined in the state crate, re-exported for the node.

pub use paratime_state::encoding::*;
