//! The ParaTime SDK of paratime-node: the host↔runtime protocol (RHP) and the runtime-side
//! dispatcher a ParaTime author builds on.
//!
//! A ParaTime is a plain executable started by the node inside a bubblewrap sandbox. It inherits
//! one end of a socketpair as file descriptor [`HOST_FD_ENV`] and speaks RHP over it: 4-byte
//! big-endian length + CBOR frames carrying a [`protocol::Message`]. The sandbox is stateless:
//! the host owns the ParaTime's state, the runtime reads it through host calls and returns a write
//! log that the host applies.
//!
//! ```no_run
//! use paratime_sdk::{dispatcher, Runtime, TxContext, CallError, Version};
//! struct Nop;
//! impl Runtime for Nop {
//!     fn version(&self) -> Version { Version::new(0, 1, 0) }
//!     fn execute(&self, _ctx: &mut TxContext<'_>, _m: &str, _b: &paratime_sdk::cbor::Value)
//!         -> Result<paratime_sdk::cbor::Value, CallError> { Ok(paratime_sdk::cbor::Value::Null) }
//! }
//! fn main() { dispatcher::run(Nop) }
//! ```

pub mod auth;
pub mod dispatcher;
pub mod log;
pub mod protocol;
pub mod state;

pub use ciborium as cbor;
pub use dispatcher::{CallError, Runtime, TxContext};
pub use protocol::Version;
pub use serde;

/// Environment variable naming the inherited file descriptor of the host connection.
pub const HOST_FD_ENV: &str = "PARATIME_HOST_FD";
