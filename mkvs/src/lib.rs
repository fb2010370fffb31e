//! The authenticated state of a hosted ParaTime: the MKVS tree ([`paratime_mkvs_tree`],
//! re-exported here) stored in redb, one version per finalized round, with proofs of values and
//! absences, pruning of old versions and state sync.
//!
//! - [`tree`]: the tree and its changes, over any [`tree::NodeSource`];
//! - [`store`]: the tree on disk, with a node cache bounded in bytes;
//! - [`proof`]: building and verifying proofs against a root;
//! - [`sync`]: copying a tree from peers in checked chunks (state sync).

pub use paratime_mkvs_tree::{bits, node, proof, tree};
pub mod store;
pub mod sync;

pub use node::{Hash, Node, EMPTY};
pub use proof::{Proof, ProofError};
pub use store::{NodeDb, Pruned, Reads, StoreError};
pub use sync::Restore;
pub use tree::{Changes, NodeSource, TreeError};
