//! paratime-node: a hardened ParaTime compute node.
//!
//! One module per concern; `main.rs` only parses the command line and calls [`cli::run`].

mod allocator; // mimalloc, set up before the first allocation
pub mod bundle; // .orc bundles: manifest, build, verify, explode
pub mod cli; // command-line interface (the only place that prints for the operator)
pub mod config; // config.yml: oasis-node schema, strict loading, validation
pub mod consensus; // genesis, signed transactions, the state machine, blocks and the engine
pub mod control; // HTTP/JSON control API on internal.sock: shared types, server and client
pub mod crashpoint; // debug builds only: kill -9 at a named consensus step (crash tests)
pub mod encoding; // canonical CBOR and SHA-512/256 for everything hashed or signed
pub mod host; // runtime hosting: sandbox launcher, bwrap, RHP client, supervisor
pub mod identity; // data dir checks, node keys (PEM), data dir lock
pub mod logging; // oasis-shaped logs (logfmt, JSON, text) with per-module levels
pub mod metrics; // Prometheus event metrics (RHP calls, batches); the rest is read from the status
pub mod node; // composition root: wires the concerns together for `paratime-node --config`
pub mod p2p; // libp2p: gossip, block sync, discovery
pub mod signer; // the one signer: keys, and never two different signatures for one slot
pub mod storage; // redb: blocks and consensus state, atomically per block, schema-versioned
pub mod system; // systemd notify/watchdog, socket activation, Landlock and capabilities
pub mod worker; // registration (and, later, committee work)

/// The version of this software, as shown in `control status`.
pub const SOFTWARE_VERSION: &str = env!("CARGO_PKG_VERSION");
