//! Node workers: registration, and the runtime worker (transaction pool, executor committee
//! rounds, finalized runtime state, client transactions and queries).

pub mod compute;
pub mod registration;
