//! The authenticated state of a hosted ParaTime: a versioned Merkle tree (a binary Patricia trie
//! hashed as oasis's MKVS, so roots match oasis's test vectors) stored in redb, one version per
//! finalized round, with proofs of values and absences, and pruning of old versions.
//!
//! - [`tree`]: the tree and its changes, over any [`tree::NodeSource`];
//! - [`store`]: the tree on disk, with a node cache bounded in bytes;
//! - [`proof`]: building and verifying proofs against a root;
//! - [`sync`]: copying a tree from peers in checked chunks (state sync).

pub mod bits;
pub mod node;
pub mod proof;
pub mod store;
pub mod sync;
pub mod tree;

pub use node::{Hash, Node, EMPTY};
pub use proof::{Proof, ProofError};
pub use store::{NodeDb, Pruned, StoreError};
pub use sync::Restore;
pub use tree::{Changes, NodeSource, TreeError};
