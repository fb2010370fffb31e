//! The deterministic rules of a paratime-node chain, shared by every node: canonical encoding,
//! keys and signatures, addresses, runtime IDs, the genesis document, the consensus state and its
//! transactions, the roothash (ParaTime rounds), and block execution.
//!
//! Nothing here does I/O, reads a clock or needs an async runtime: given the same genesis and the
//! same blocks, every node computes the same state root. Arithmetic on amounts is checked: a
//! transaction that would overflow fails, it never wraps or panics.

pub mod address;
pub mod block;
pub mod chain_time;
pub mod crypto;
pub mod encoding;
pub mod genesis;
pub mod roothash;
pub mod runtime_id;
pub mod signing;
pub mod state;
pub mod tree;
pub mod validators;

pub use chain_time::{Epoch, Height, Round};

/// Largest consensus transaction (its signed body), as oasis's default `max_tx_size`: a
/// registration or an executor commitment is a few hundred bytes. The mempool refuses larger
/// ones, and the network does not relay them.
pub const MAX_TX_BYTES: usize = 32 * 1024;
pub use runtime_id::{RuntimeId, RuntimeIdError};
