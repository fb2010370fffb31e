//! The tree behind paratime-node's authenticated states: a binary Patricia trie hashed as
//! oasis's MKVS (roots match oasis's test vectors), with proofs of values and absences. Pure:
//! nodes come from any [`tree::NodeSource`] — the on-disk store of a runtime's state
//! (`paratime-mkvs`) or the consensus state in memory.
//!
//! - [`tree`]: the tree and its changes;
//! - [`proof`]: building and verifying proofs against a root.

pub mod bits;
pub mod node;
pub mod proof;
pub mod tree;

pub use node::{Hash, Node, EMPTY};
pub use proof::{Proof, ProofError};
pub use tree::{Changes, NodeSource, TreeError};
