//! Socket activation: descriptors passed by systemd (`LISTEN_FDS`, `LISTEN_FDNAMES`).

use std::os::fd::{FromRawFd, OwnedFd};

/// Takes the passed descriptor named `name` (`FileDescriptorName=`), or the only one passed when
/// systemd gave no names. `None` when not socket-activated.
pub fn take(name: &str) -> Option<OwnedFd> {
    let fds: Vec<(i32, String)> = sd_notify::listen_fds_with_names().ok()?.collect();
    let fd = match fds.iter().find(|(_, n)| n == name) {
        Some((fd, _)) => *fd,
        None if fds.len() == 1 && (fds[0].1.is_empty() || fds[0].1 == "unknown") => fds[0].0,
        None => return None,
    };
    // SAFETY: systemd passed this descriptor to this process (LISTEN_PID matched) and nothing
    // else in the process has taken ownership of it.
    Some(unsafe { OwnedFd::from_raw_fd(fd) })
}
