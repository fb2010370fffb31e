//! One cgroup v2 per sandboxed runtime, inside the subtree systemd delegates to the launcher.
//!
//! Under the shipped sandbox unit (`Delegate=cpu memory pids`, `ProtectControlGroups=private`) the
//! launcher owns its service's cgroup. cgroup v2 lets only leaves hold processes once controllers
//! are enabled for children, so the launcher first moves itself into `<subtree>/launcher`, then
//! enables the controllers and creates `<subtree>/runtime-<n>` for each sandbox:
//! - `memory.max` = `runtime.limits.memory`, `memory.swap.max` = 0 and `memory.oom.group` = 1: the
//!   kernel kills the whole sandbox when it needs more (no /proc polling, no overshoot);
//! - `pids.max` = `runtime.limits.pids` (+1 for bubblewrap's outer process): a fork fails at the
//!   limit, and the launcher kills the sandbox once `pids.events` counts a refusal;
//! - `cpu.max` = `runtime.limits.cpu` CPUs per 100 ms period: a quota, the sandbox is throttled.
//!
//! The first sandbox process moves itself in (writes `0` to the cgroup's `cgroup.procs`) between
//! fork and exec, so bubblewrap and everything it starts are accounted from the first instruction.
//! bubblewrap gives the sandbox its own cgroup namespace and no `/sys`, and its seccomp filter
//! denies mounts, so a ParaTime cannot reach the files that set its limits.
//!
//! Without a delegated cgroup v2 subtree (standalone, cgroup v1 hosts) [`Subtree::delegated`] says
//! why, and the launcher's /proc monitor and rlimits enforce the limits instead (see `limits`).

use super::limits::{Exceeded, Limits};
use std::io::Write;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Where cgroup v2 is mounted.
pub const MOUNT: &str = "/sys/fs/cgroup";
/// cgroup2's filesystem magic (statfs `f_type`).
const CGROUP2_SUPER_MAGIC: i64 = 0x6367_7270;
/// The CPU quota period, in microseconds.
pub const CPU_PERIOD_US: u64 = 100_000;

/// The launcher's delegated subtree.
#[derive(Debug)]
pub struct Subtree {
    dir: PathBuf,
    cpu: bool,
    next: AtomicU64,
}

/// The cgroup of one sandbox; dropping it kills what is left in it and removes it.
#[derive(Debug)]
pub struct RuntimeCgroup {
    dir: PathBuf,
    procs: OwnedFd,
    limits: Limits,
}

/// Why the launcher has no cgroups for its runtimes, or could not make one.
#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    /// The launcher did not look (standalone start-up not reached yet).
    #[error("the launcher has not looked for a delegated cgroup")]
    NotLooked,
    /// Reading a cgroup file or the cgroup filesystem failed.
    #[error("{}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The host mounts cgroup v1 (or a hybrid).
    #[error("{MOUNT} is not cgroup v2 (a cgroup v1 or hybrid host{hint})")]
    NotV2 {
        /// What to do about it, if anything.
        hint: &'static str,
    },
    /// The process is in no cgroup v2.
    #[error("no cgroup v2 membership in /proc/self/cgroup")]
    NoMembership,
    /// Systemd did not delegate the launcher's cgroup.
    #[error("cgroup {} is not delegated to the launcher (run it under a unit with Delegate=, as the shipped paratime-node-sandbox.service does)", dir.display())]
    NotDelegated {
        /// The launcher's cgroup.
        dir: PathBuf,
    },
    /// A needed controller was not delegated.
    #[error("cgroup {} has no {controller} controller (delegated: '{available}'; set Delegate=cpu memory pids)", dir.display())]
    MissingController {
        /// The launcher's cgroup.
        dir: PathBuf,
        /// `memory` or `pids`.
        controller: &'static str,
        /// What was delegated.
        available: String,
    },
    /// The host's cgroup v2 lacks controllers (for `doctor`).
    #[error("cgroup v2 without the {0} controller(s)")]
    HostMissing(String),
    /// Creating a cgroup failed.
    #[error("create {}: {source}", path.display())]
    Create {
        /// The directory.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Writing a cgroup file failed.
    #[error("write '{value}' to {}: {source}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// What was written.
        value: String,
        /// Why.
        source: std::io::Error,
    },
    /// Enabling the controllers failed because the cgroup has other processes.
    #[error("{0} (another process shares the launcher's cgroup: cgroup v2 allows controllers only above leaves)")]
    SharedLeaf(Box<Self>),
}

fn write(path: &Path, value: &str) -> Result<(), CgroupError> {
    std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .and_then(|mut f| f.write_all(value.as_bytes()))
        .map_err(|source| CgroupError::Write {
            path: path.to_path_buf(),
            value: value.to_string(),
            source,
        })
}

fn read(path: &Path) -> Result<String, CgroupError> {
    std::fs::read_to_string(path).map_err(|source| CgroupError::Read {
        path: path.to_path_buf(),
        source,
    })
}

/// Whether the cgroup filesystem is cgroup v2.
fn is_v2() -> Result<bool, CgroupError> {
    let fs = nix::sys::statfs::statfs(MOUNT).map_err(|e| CgroupError::Read {
        path: PathBuf::from(MOUNT),
        source: e.into(),
    })?;
    Ok(fs.filesystem_type().0 == CGROUP2_SUPER_MAGIC)
}

/// The value of `key` in a flat-keyed cgroup file (`memory.events`, `pids.events`).
fn keyed(path: &Path, key: &str) -> u64 {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|text| {
            text.lines().find_map(|l| {
                let (k, v) = l.split_once(' ')?;
                (k == key).then(|| v.trim().parse().ok()).flatten()
            })
        })
        .unwrap_or(0)
}

/// The calling process's cgroup v2 path (the `0::` line of /proc/self/cgroup).
fn own_cgroup() -> Result<String, CgroupError> {
    let text = read(Path::new("/proc/self/cgroup"))?;
    text.lines()
        .find_map(|l| l.strip_prefix("0::"))
        .map(str::to_string)
        .ok_or(CgroupError::NoMembership)
}

/// Whether systemd marked `dir` as delegated (`user.delegate` or `trusted.delegate` = 1), or, for
/// a systemd without those marks, whether the unprivileged launcher owns it.
fn is_delegated(dir: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    for name in ["user.delegate", "trusted.delegate"] {
        if xattr(dir, name).as_deref() == Some(b"1".as_slice()) {
            return true;
        }
    }
    let euid = nix::unistd::geteuid().as_raw();
    euid != 0
        && std::fs::metadata(dir.join("cgroup.procs")).is_ok_and(|m| m.uid() == euid)
        && std::fs::metadata(dir.join("cgroup.subtree_control")).is_ok_and(|m| m.uid() == euid)
}

fn xattr(path: &Path, name: &str) -> Option<Vec<u8>> {
    use std::os::unix::ffi::OsStrExt;
    let p = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
    let n = std::ffi::CString::new(name).ok()?;
    let mut buf = [0u8; 16];
    // SAFETY: valid NUL-terminated strings and a buffer of the given length.
    let len = unsafe { libc::getxattr(p.as_ptr(), n.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    (len >= 0).then(|| buf[..len as usize].to_vec())
}

/// Whether this host can give runtimes cgroups under the shipped units: cgroup v2 with the
/// memory, pids and cpu controllers (for `doctor`). `Ok` lists them, `Err` says what is missing.
pub fn host_support() -> Result<String, CgroupError> {
    if !is_v2()? {
        return Err(CgroupError::NotV2 {
            hint: "; boot with systemd.unified_cgroup_hierarchy=1",
        });
    }
    let available = read(&Path::new(MOUNT).join("cgroup.controllers"))?;
    let missing: Vec<&str> = ["cpu", "memory", "pids"]
        .into_iter()
        .filter(|c| !available.split_whitespace().any(|a| a == *c))
        .collect();
    if missing.is_empty() {
        Ok(format!("cgroup v2 with controllers '{}'", available.trim()))
    } else {
        Err(CgroupError::HostMissing(missing.join(", ")))
    }
}

impl Subtree {
    /// Takes over the launcher's own cgroup if systemd delegated it (cgroup v2, writable, marked
    /// or owned, with the memory and pids controllers): moves the launcher into its `launcher`
    /// leaf and enables the controllers for the runtimes' cgroups. Otherwise says why not.
    pub fn delegated() -> Result<Self, CgroupError> {
        if !is_v2()? {
            return Err(CgroupError::NotV2 { hint: "" });
        }
        let own = own_cgroup()?;
        let mut dir = Path::new(MOUNT).join(own.trim_start_matches('/'));
        // A launcher that already set up its subtree (e.g. a re-exec) sits in its leaf.
        if dir.file_name().is_some_and(|n| n == "launcher") {
            if let Some(parent) = dir.parent() {
                dir = parent.to_path_buf();
            }
        }
        if !is_delegated(&dir) {
            return Err(CgroupError::NotDelegated { dir });
        }
        let available = read(&dir.join("cgroup.controllers"))?;
        let has = |c: &str| available.split_whitespace().any(|a| a == c);
        for needed in ["memory", "pids"] {
            if !has(needed) {
                return Err(CgroupError::MissingController {
                    dir,
                    controller: needed,
                    available: available.trim().to_string(),
                });
            }
        }
        let cpu = has("cpu");
        let leaf = dir.join("launcher");
        match std::fs::create_dir(&leaf) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(source) => return Err(CgroupError::Create { path: leaf, source }),
        }
        write(&leaf.join("cgroup.procs"), "0")?;
        // Sandboxes of an earlier launcher in this subtree are gone with it; remove their groups.
        if let Ok(entries) = std::fs::read_dir(&dir) {
            for e in entries.flatten() {
                if e.file_name().to_string_lossy().starts_with("runtime-") {
                    let _ = std::fs::remove_dir(e.path());
                }
            }
        }
        let enable = if cpu {
            "+memory +pids +cpu"
        } else {
            "+memory +pids"
        };
        write(&dir.join("cgroup.subtree_control"), enable)
            .map_err(|e| CgroupError::SharedLeaf(Box::new(e)))?;
        Ok(Self {
            dir,
            cpu,
            next: AtomicU64::new(1),
        })
    }

    /// The subtree's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Whether a CPU quota can be set (the cpu controller was delegated).
    pub fn has_cpu(&self) -> bool {
        self.cpu
    }

    /// Creates the cgroup of one sandbox with `limits`.
    pub fn create(&self, limits: &Limits) -> Result<RuntimeCgroup, CgroupError> {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let dir = self.dir.join(format!("runtime-{n}"));
        std::fs::create_dir(&dir).map_err(|source| CgroupError::Create {
            path: dir.clone(),
            source,
        })?;
        let set = || -> Result<OwnedFd, CgroupError> {
            write(&dir.join("memory.max"), &limits.memory.to_string())?;
            // Without swap accounting the file is absent, and nothing can be swapped anyway.
            if dir.join("memory.swap.max").exists() {
                write(&dir.join("memory.swap.max"), "0")?;
            }
            write(&dir.join("memory.oom.group"), "1")?;
            write(
                &dir.join("pids.max"),
                &limits.pids.saturating_add(1).to_string(),
            )?;
            if self.cpu {
                write(&dir.join("cpu.max"), &cpu_max(limits.cpu_millis))?;
            }
            let path = dir.join("cgroup.procs");
            let procs = std::fs::OpenOptions::new()
                .write(true)
                .open(&path)
                .map_err(|source| CgroupError::Write {
                    path,
                    value: String::new(),
                    source,
                })?;
            Ok(OwnedFd::from(procs))
        };
        match set() {
            Ok(procs) => Ok(RuntimeCgroup {
                dir,
                procs,
                limits: *limits,
            }),
            Err(e) => {
                let _ = std::fs::remove_dir(&dir);
                Err(e)
            }
        }
    }
}

/// `cpu.max` for a quota of `millis` thousandths of a CPU.
pub fn cpu_max(millis: u32) -> String {
    let quota = (u64::from(millis) * CPU_PERIOD_US / 1000).max(1000);
    format!("{quota} {CPU_PERIOD_US}")
}

impl RuntimeCgroup {
    /// The descriptor the first sandbox process writes `0` to (between fork and exec) to move
    /// itself in.
    pub fn procs_fd(&self) -> RawFd {
        self.procs.as_raw_fd()
    }

    /// The cgroup's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The limit the kernel enforced, if any: an OOM kill at `memory.max`, or a fork refused at
    /// `pids.max`.
    pub fn exceeded(&self) -> Option<Exceeded> {
        let events = self.dir.join("memory.events");
        let oom = keyed(&events, "oom_kill").max(keyed(&events, "oom_group_kill"));
        if oom > 0 {
            return Some(Exceeded(format!(
                "memory: the kernel killed the sandbox at its cgroup's memory.max ({} bytes)",
                self.limits.memory
            )));
        }
        if keyed(&self.dir.join("pids.events"), "max") > 0 {
            return Some(Exceeded(format!(
                "pids: a fork was refused at the cgroup's pids.max ({} processes/threads)",
                self.limits.pids
            )));
        }
        None
    }

    /// Kills every process in the cgroup (`cgroup.kill`, or one by one on kernels before 5.14).
    pub fn kill(&self) {
        if write(&self.dir.join("cgroup.kill"), "1").is_ok() {
            return;
        }
        for _ in 0..100 {
            let Ok(text) = std::fs::read_to_string(self.dir.join("cgroup.procs")) else {
                return;
            };
            let pids: Vec<i32> = text.lines().filter_map(|l| l.trim().parse().ok()).collect();
            if pids.is_empty() {
                return;
            }
            for pid in pids {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
        }
    }

    fn populated(&self) -> bool {
        keyed(&self.dir.join("cgroup.events"), "populated") != 0
    }
}

impl Drop for RuntimeCgroup {
    fn drop(&mut self) {
        self.kill();
        // Killed processes leave the cgroup once the kernel has reaped them: a few milliseconds.
        for _ in 0..200 {
            if !self.populated() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        if let Err(e) = std::fs::remove_dir(&self.dir) {
            log::warn!(
                "cannot remove the sandbox cgroup {}: {e}",
                self.dir.display()
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_quota_is_thousandths_of_a_cpu_per_period() {
        assert_eq!(cpu_max(1000), "100000 100000");
        assert_eq!(cpu_max(250), "25000 100000");
        assert_eq!(cpu_max(2500), "250000 100000");
        // The kernel refuses quotas under 1 ms.
        assert_eq!(cpu_max(1), "1000 100000");
    }

    #[test]
    fn keyed_files_are_read_by_key_not_position() {
        let dir = tempfile::tempdir().expect("tempdir");
        let f = dir.path().join("memory.events");
        std::fs::write(
            &f,
            "low 0\nhigh 0\nmax 12\noom 3\noom_kill 2\noom_group_kill 1\n",
        )
        .expect("write");
        assert_eq!(keyed(&f, "oom_kill"), 2);
        assert_eq!(keyed(&f, "oom"), 3);
        assert_eq!(keyed(&f, "max"), 12);
        assert_eq!(keyed(&f, "absent"), 0);
        assert_eq!(keyed(&dir.path().join("none"), "max"), 0);
    }

    #[test]
    fn a_cgroup_v1_host_names_why_there_is_no_subtree() {
        // These hosts mount tmpfs + v1 hierarchies at /sys/fs/cgroup; a v2 host that did not
        // delegate to the test process gives the other reason. Either way: a reason, no setup.
        // (The delegated case runs in a booted VM: tests/systemd/cgroup-vm-test.sh.)
        let why = Subtree::delegated()
            .expect_err("a test process is never in a delegated subtree")
            .to_string();
        assert!(
            why.contains("not cgroup v2") || why.contains("not delegated"),
            "{why}"
        );
    }
}
