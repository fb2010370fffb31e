//! sd_notify: READY, STATUS, WATCHDOG, STOPPING and EXTEND_TIMEOUT_USEC. Silent when
//! `NOTIFY_SOCKET` is not set (not under systemd).

use sd_notify::NotifyState;
use std::time::Duration;

/// Stable journal MESSAGE_IDs of key events (`journalctl MESSAGE_ID=…`).
pub mod message_id {
    /// The node is ready (control API up, runtimes being provisioned).
    pub const NODE_READY: &str = "5c3e6b0e2c9a4d53a8d1f0e3b7a2c401";
    /// The node is stopping.
    pub const NODE_STOPPING: &str = "5c3e6b0e2c9a4d53a8d1f0e3b7a2c402";
    /// A runtime completed its handshake.
    pub const RUNTIME_READY: &str = "5c3e6b0e2c9a4d53a8d1f0e3b7a2c410";
    /// A runtime terminated unexpectedly or was killed by the watchdog.
    pub const RUNTIME_FAILED: &str = "5c3e6b0e2c9a4d53a8d1f0e3b7a2c411";
    /// A runtime is restarted after a backoff.
    pub const RUNTIME_RESTARTED: &str = "5c3e6b0e2c9a4d53a8d1f0e3b7a2c412";
    /// A runtime's log lines are being dropped by the rate limit (or were).
    pub const RUNTIME_LOG_DROPPED: &str = "5c3e6b0e2c9a4d53a8d1f0e3b7a2c413";
    /// A runtime was killed for exceeding a resource limit.
    pub const RUNTIME_LIMIT_EXCEEDED: &str = "5c3e6b0e2c9a4d53a8d1f0e3b7a2c414";
    /// The sandbox is unavailable: no runtime is hosted.
    pub const SANDBOX_UNAVAILABLE: &str = "5c3e6b0e2c9a4d53a8d1f0e3b7a2c420";
    /// Self-confinement applied (or not).
    pub const CONFINED: &str = "5c3e6b0e2c9a4d53a8d1f0e3b7a2c430";
}

fn send(states: &[NotifyState<'_>]) {
    if let Err(e) = sd_notify::notify(states) {
        log::warn!(target: "system/notify", "sd_notify failed: {e}");
    }
}

/// True when a service manager listens for notifications.
pub fn enabled() -> bool {
    std::env::var_os("NOTIFY_SOCKET").is_some()
}

/// READY=1 with a status line.
pub fn ready(status: &str) {
    send(&[NotifyState::Ready, NotifyState::Status(status)]);
}

/// STATUS=<line>.
pub fn status(line: &str) {
    send(&[NotifyState::Status(line)]);
}

/// WATCHDOG=1.
pub fn watchdog() {
    send(&[NotifyState::Watchdog]);
}

/// STOPPING=1 with a status line.
pub fn stopping(status: &str) {
    send(&[NotifyState::Stopping, NotifyState::Status(status)]);
}

/// Asks for `extra` more start-up time (EXTEND_TIMEOUT_USEC) before a long step.
pub fn extend_timeout(extra: Duration, status: &str) {
    let usec = u32::try_from(extra.as_micros()).unwrap_or(u32::MAX);
    send(&[
        NotifyState::ExtendTimeoutUsec(usec),
        NotifyState::Status(status),
    ]);
}

/// The health-tick period: half of `WATCHDOG_USEC`, when the watchdog is on for this process.
pub fn watchdog_period() -> Option<Duration> {
    sd_notify::watchdog_enabled()
        .map(|d| d / 2)
        .filter(|d| !d.is_zero())
}
