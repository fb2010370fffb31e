//! Descriptor hygiene: the node and the launcher close every descriptor they inherited but do not
//! own, at start, so nothing a parent leaked (a shell's, a test harness's, a service manager's)
//! can reach a ParaTime.

use std::os::fd::RawFd;

/// Closes every descriptor from `first` up. Async-signal-safe (one syscall).
pub fn close_from(first: RawFd) {
    // SAFETY: close_range only closes descriptors; the caller owns none at or above `first`
    // that it still needs.
    unsafe {
        libc::syscall(
            libc::SYS_close_range,
            first as libc::c_uint,
            libc::c_uint::MAX,
            0,
        );
    }
}

/// Marks every descriptor from `first` up close-on-exec: between fork and exec, so that exactly
/// the lower ones reach the new program while the standard library's exec-error pipe keeps
/// working until the exec. Async-signal-safe (one syscall).
pub fn cloexec_from(first: RawFd) -> std::io::Result<()> {
    // SAFETY: close_range with CLOSE_RANGE_CLOEXEC only sets a descriptor flag.
    let r = unsafe {
        libc::syscall(
            libc::SYS_close_range,
            first as libc::c_uint,
            libc::c_uint::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        )
    };
    if r < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Closes every inherited descriptor above stderr except those in `keep` (e.g. systemd's
/// `LISTEN_FDS` or a `--listen-fd`). Call at start, before anything opens a file.
pub fn close_inherited(keep: &[RawFd]) {
    let mut keep: Vec<RawFd> = keep.iter().copied().filter(|fd| *fd > 2).collect();
    keep.sort_unstable();
    keep.dedup();
    let mut next = 3;
    for fd in keep {
        if fd > next {
            // SAFETY: see close_from; the range ends below a descriptor we keep.
            unsafe {
                libc::syscall(
                    libc::SYS_close_range,
                    next as libc::c_uint,
                    (fd - 1) as libc::c_uint,
                    0,
                );
            }
        }
        next = fd + 1;
    }
    close_from(next);
}

/// The descriptors systemd passed with socket activation (`LISTEN_PID` must be this process).
pub fn systemd_listen_fds() -> Vec<RawFd> {
    let pid_ok = std::env::var("LISTEN_PID")
        .ok()
        .and_then(|p| p.parse::<u32>().ok())
        == Some(std::process::id());
    let n: RawFd = std::env::var("LISTEN_FDS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    if !pid_ok || !(0..=1024).contains(&n) {
        return Vec::new();
    }
    (3..3 + n).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

    #[test]
    fn everything_but_the_kept_descriptors_is_closed_in_a_child() {
        // In a forked child, so the test process keeps its own descriptors.
        let a = std::fs::File::open("/dev/null").expect("open");
        let b = std::fs::File::open("/dev/null").expect("open");
        let (ra, rb) = (a.as_raw_fd(), b.as_raw_fd());
        // SAFETY: the child only makes async-signal-safe calls and exits with _exit.
        match unsafe { nix::unistd::fork() }.expect("fork") {
            nix::unistd::ForkResult::Child => {
                close_inherited(&[rb]);
                // SAFETY: F_GETFD only reads the descriptor's flags; any fd number is valid input.
                let open = |fd| unsafe { libc::fcntl(fd, libc::F_GETFD) } >= 0;
                let code = if !open(ra) && open(rb) && open(2) {
                    0
                } else {
                    1
                };
                // SAFETY: _exit ends the forked child without running the parent's destructors.
                unsafe { libc::_exit(code) }
            }
            nix::unistd::ForkResult::Parent { child } => {
                let st = nix::sys::wait::waitpid(child, None).expect("wait");
                assert_eq!(st, nix::sys::wait::WaitStatus::Exited(child, 0));
            }
        }
    }
}
