//! bubblewrap: version check, the sandbox's argument list, and diagnosis of failures.

use super::launcher::LaunchError;
use std::ffi::OsString;
use std::path::Path;
use std::process::Command;

/// Oldest bubblewrap accepted (oasis-node's documented minimum).
pub const MIN_VERSION: (u32, u32, u32) = (0, 3, 3);

/// File descriptor numbers inside bwrap's process.
pub const HOST_FD: i32 = 3;
/// The seccomp program.
pub const SECCOMP_FD: i32 = 4;
/// bwrap's `--info-fd` (reports the sandbox's pid).
pub const INFO_FD: i32 = 5;

/// Whether a bubblewrap version has `--size` (bounded tmpfs), added in 0.10.0.
pub fn supports_size(version: &str) -> bool {
    let parts: Vec<u32> = version.split('.').map(|p| p.parse().unwrap_or(0)).collect();
    (
        parts.first().copied().unwrap_or(0),
        parts.get(1).copied().unwrap_or(0),
    ) >= (0, 10)
}

/// Runs `<binary> --version` and checks it against [`MIN_VERSION`].
pub fn check_version(binary: &Path) -> Result<String, LaunchError> {
    let path = binary.to_path_buf();
    let out = Command::new(binary)
        .arg("--version")
        .env_clear()
        .output()
        .map_err(|source| {
            if source.kind() == std::io::ErrorKind::NotFound {
                LaunchError::BwrapNotFound(path.clone())
            } else {
                LaunchError::BwrapCannotRun {
                    path: path.clone(),
                    denied: source.kind() == std::io::ErrorKind::PermissionDenied
                        || source.raw_os_error() == Some(libc::EPERM),
                    source,
                }
            }
        })?;
    let text = String::from_utf8_lossy(&out.stdout);
    let version = text.split_whitespace().last().unwrap_or("").to_string();
    let parts: Vec<u32> = version.split('.').map(|p| p.parse().unwrap_or(0)).collect();
    let found = (
        parts.first().copied().unwrap_or(0),
        parts.get(1).copied().unwrap_or(0),
        parts.get(2).copied().unwrap_or(0),
    );
    if !out.status.success() || version.is_empty() {
        return Err(LaunchError::NotBubblewrap {
            path,
            output: text.trim().to_string(),
        });
    }
    if found < MIN_VERSION {
        return Err(LaunchError::BwrapTooOld {
            found: version,
            path,
        });
    }
    Ok(version)
}

/// The bwrap arguments that start `executable` as `/entrypoint` in a fresh sandbox: every
/// namespace unshared (no network but its own loopback), no capabilities, a new session, a fresh
/// /dev and a tmpfs /tmp, a read-only root, no /proc, only the executable and its libraries bound read-only, the
/// seccomp filter on [`SECCOMP_FD`], and death with the launcher (the launcher puts `--size`
/// before the `--tmpfs` when bubblewrap has it). The interpreter and libraries come from [`super::elf`]: regular
/// files under the allowed system library directories only.
/// Also returns the libraries bound, so callers can notice when they change.
pub fn sandbox_args(
    executable: &Path,
) -> Result<(Vec<OsString>, Vec<std::path::PathBuf>), LaunchError> {
    let mut a: Vec<OsString> = Vec::new();
    fn push(a: &mut Vec<OsString>, items: &[&str]) {
        a.extend(items.iter().map(OsString::from));
    }
    push(
        &mut a,
        &[
            "--unshare-all",
            "--die-with-parent",
            "--new-session",
            "--cap-drop",
            "ALL",
        ],
    );
    push(
        &mut a,
        &["--dev", "/dev", "--tmpfs", "/tmp", "--chdir", "/"],
    );
    a.push("--ro-bind".into());
    a.push(executable.as_os_str().to_owned());
    a.push("/entrypoint".into());
    let mut libs = Vec::new();
    let deps =
        crate::bundle::elf::dependencies(executable).map_err(|reason| LaunchError::Executable {
            path: executable.to_path_buf(),
            reason,
        })?;
    for (inside, real) in deps {
        a.push("--ro-bind".into());
        a.push(real.clone().into_os_string());
        a.push(inside.into_os_string());
        libs.push(real);
    }
    // Everything but /tmp and /dev is read-only from here on.
    push(&mut a, &["--remount-ro", "/"]);
    let fd = HOST_FD.to_string();
    let seccomp = SECCOMP_FD.to_string();
    let info = INFO_FD.to_string();
    push(
        &mut a,
        &[
            "--setenv",
            paratime_sdk::HOST_FD_ENV,
            &fd,
            "--seccomp",
            &seccomp,
            "--info-fd",
            &info,
            "--",
            "/entrypoint",
        ],
    );
    Ok((a, libs))
}

fn read_sysctl(path: &str) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|s| s.trim().to_string())
}

/// Names the likely cause of a failed sandbox start from bwrap's error output and the host's
/// settings, with the fix.
pub fn diagnose(stderr: &str) -> String {
    let s = stderr.to_ascii_lowercase();
    if read_sysctl("/proc/sys/kernel/apparmor_restrict_unprivileged_userns").as_deref() == Some("1")
        && (s.contains("uid map") || s.contains("namespace") || s.contains("permission denied"))
    {
        return "unprivileged user namespaces are restricted by AppArmor (kernel.apparmor_restrict_unprivileged_userns=1): install the bwrap AppArmor profile shipped in apparmor/ and reload AppArmor".into();
    }
    if read_sysctl("/proc/sys/user/max_user_namespaces").as_deref() == Some("0") {
        return "user namespaces are disabled (user.max_user_namespaces=0): set sysctl user.max_user_namespaces to a positive value".into();
    }
    if read_sysctl("/proc/sys/kernel/unprivileged_userns_clone").as_deref() == Some("0") {
        return "unprivileged user namespaces are disabled (kernel.unprivileged_userns_clone=0): set it to 1, or run the sandbox launcher with CAP_SYS_ADMIN".into();
    }
    if s.contains("netlink_route") || s.contains("address family not supported") {
        return "the launcher may not create netlink sockets, which bwrap needs to bring up the sandbox's loopback (a unit with RestrictAddressFamilies= must include AF_NETLINK)".into();
    }
    if s.contains("make / slave") || s.contains("operation not permitted") {
        return "the launcher may not create mounts or namespaces: a seccomp filter, Landlock or a container profile blocks them (run the launcher outside Landlock; in containers use seccomp=unconfined and apparmor=unconfined)".into();
    }
    if s.contains("mount tmpfs") || s.contains("permission denied") {
        return "mounting inside the sandbox is denied, usually by a container's AppArmor or seccomp profile (Docker: --security-opt apparmor=unconfined --security-opt seccomp=unconfined)".into();
    }
    if s.contains("no such file") || s.contains("not found") {
        return "a file the sandbox needs is missing (the bwrap binary, the executable or one of its libraries)".into();
    }
    "unknown: see bwrap's message above".into()
}
