//! The consensus layer: genesis and chain context, signed transactions, the deterministic state
//! machine, blocks, and the v1 engine (one validator produces blocks; everyone else fetches,
//! verifies and re-executes them).

pub mod address;
pub mod block;
pub mod crypto;
pub mod engine;
pub mod genesis;
pub mod roothash;
pub mod state;
