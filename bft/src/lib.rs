//! BFT consensus for paratime-node: Malachite (Tendermint: stake-weighted votes, WAL, value
//! sync) driving the node's deterministic state machine through [`chain::ChainApp`].
//!
//! Only this crate names Malachite types. The node implements [`chain::ChainApp`] once;
//! followers, workers and the control API see blocks and opaque, engine-tagged commit
//! certificates ([`chain::CommitCert`]), never Malachite types.

pub mod chain;
pub mod codec;
pub mod context;
pub mod engine;
pub mod signing;
