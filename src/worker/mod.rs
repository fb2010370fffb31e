//! Node workers: registration now; executor committees in part 2.

pub mod registration;
