//! Running the sandbox launcher as a child process (standalone mode): the node binds the
//! launcher's socket, starts `paratime-node sandbox-launcher --listen-fd 3` with that socket, and
//! kills it on drop. The child dies with the node (PDEATHSIG).

use crate::host::launcher::{self, Client, LaunchError};
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// The running launcher child.
pub struct LauncherChild {
    child: Child,
    socket: PathBuf,
}

/// The `paratime-node` executable that serves `sandbox-launcher`: this one, or the one next to
/// it when this is another tool of the workspace (`paratime-dev bench`).
fn node_binary() -> std::io::Result<PathBuf> {
    let me = std::env::current_exe()?;
    if me.file_stem().is_some_and(|s| s == "paratime-node") {
        return Ok(me);
    }
    let sibling = me.with_file_name("paratime-node");
    if sibling.is_file() {
        Ok(sibling)
    } else {
        Err(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            format!(
                "{} is not paratime-node and there is no paratime-node next to it",
                me.display()
            ),
        ))
    }
}

impl LauncherChild {
    /// Binds `socket` and starts the launcher on it.
    pub fn start(
        socket: &Path,
        bundles_dir: &Path,
        sandbox_binary: &Path,
        unconfined: bool,
        log: (&str, &str),
    ) -> Result<Self, LaunchError> {
        let listener = launcher::bind(socket).map_err(|source| LaunchError::Socket {
            path: socket.to_path_buf(),
            source,
        })?;
        let exe = node_binary().map_err(|source| LaunchError::Setup {
            what: "cannot locate the paratime-node executable",
            source,
        })?;
        let mut cmd = Command::new(exe);
        cmd.arg("sandbox-launcher")
            .arg("--bundles-dir")
            .arg(bundles_dir)
            .arg("--sandbox-binary")
            .arg(sandbox_binary)
            .arg("--listen-fd")
            .arg("3");
        cmd.arg("--log-format")
            .arg(log.0)
            .arg("--log-level")
            .arg(log.1);
        if unconfined {
            cmd.arg("--unconfined");
        }
        // The launcher logs like the node; it inherits stderr (and the journal, under systemd).
        cmd.stdin(Stdio::null()).stdout(Stdio::null());
        for var in [
            "NOTIFY_SOCKET",
            "LISTEN_FDS",
            "LISTEN_PID",
            "LISTEN_FDNAMES",
            "WATCHDOG_USEC",
            "WATCHDOG_PID",
        ] {
            cmd.env_remove(var);
        }
        let raw = listener.as_raw_fd();
        // SAFETY: only async-signal-safe calls (dup2, prctl) run between fork and exec.
        unsafe {
            cmd.pre_exec(move || {
                if libc::dup2(raw, 3) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd.spawn().map_err(|source| LaunchError::Setup {
            what: "failed to start the sandbox launcher",
            source,
        })?;
        drop(listener);
        Ok(Self {
            child,
            socket: socket.to_path_buf(),
        })
    }

    /// A client for it.
    pub fn client(&self) -> Client {
        Client::new(&self.socket)
    }
}

impl Drop for LauncherChild {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.socket);
    }
}
