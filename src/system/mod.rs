//! Operating-system integration: systemd notification and watchdog, socket activation, and
//! self-confinement (Landlock, capabilities, no_new_privs), and bounded reads of regular files.
//!
//! Owns nothing but talks to the service manager and the kernel; every function here is a no-op
//! (or reports "not available") when the node is not under systemd or the kernel lacks a feature.

pub mod confine;
pub mod fds;
pub mod files;
pub mod listen;
pub mod notify;
