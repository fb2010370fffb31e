//! Resource limits of one sandboxed runtime, and how the launcher enforces them.
//!
//! What an unprivileged launcher can enforce on any kernel, and does, per runtime:
//! - `memory`: the sum of the sandbox's resident memory, checked by the launcher's monitor (over
//!   it: the sandbox is killed), and `RLIMIT_DATA` at 9/8 of it on every process as a backstop (an
//!   allocation beyond it fails);
//! - `pids`: the monitor counts the processes of the sandbox's own pid namespace (at the limit: the
//!   sandbox is killed); `RLIMIT_NPROC` (counted per user, so set to the user's current tasks plus
//!   the limit) stops a fork bomb from growing while the monitor acts;
//! - `file_size`: `RLIMIT_FSIZE` (a larger write fails with SIGXFSZ/EFBIG);
//! - `tmpfs_size`: bwrap's `--size` on the sandbox's `/tmp` (bubblewrap >= 0.10), and the monitor
//!   (statfs of the sandbox's `/tmp`) with older bubblewraps;
//! - CPU: the runtime runs at `nice` (default 10), so the node's own work is served first.
//!
//! Under the shipped sandbox unit on a cgroup v2 host, the kernel enforces memory, pids and a CPU
//! quota (`cpu`) per runtime instead, through one cgroup each (see `cgroup`); the rlimits stay as
//! a backstop and the monitor still checks `/tmp` for bubblewraps without `--size`.
//!
//! Never trusts anything the runtime reports about itself: every figure is read from /proc or the
//! cgroup's own files.

use serde::{Deserialize, Serialize};
use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// Per-runtime limits (`runtime.limits` in config.yml).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    /// Bytes of memory (data segment per process; resident memory of the whole sandbox).
    pub memory: u64,
    /// Processes and threads in the sandbox.
    pub pids: u64,
    /// Largest file the runtime may write.
    pub file_size: u64,
    /// Size of the sandbox's `/tmp`.
    pub tmpfs_size: u64,
    /// Niceness of the runtime's processes (0–19).
    pub nice: u8,
    /// CPU quota in thousandths of a CPU (enforced with a delegated cgroup v2 cpu controller).
    #[serde(default = "default_cpu_millis")]
    pub cpu_millis: u32,
}

fn default_cpu_millis() -> u32 {
    Limits::default().cpu_millis
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            memory: 2 << 30,
            pids: 128,
            file_size: 256 << 20,
            tmpfs_size: 256 << 20,
            nice: 10,
            cpu_millis: 1000,
        }
    }
}

/// What exceeded its limit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Exceeded(pub String);

impl std::fmt::Display for Exceeded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "resource limit exceeded: {}", self.0)
    }
}

/// How each limit is enforced on this host, for `doctor` and status: with the launcher's
/// delegated cgroup subtree (`Ok`, with whether it has the cpu controller), or without one (`Err`
/// with the reason).
pub fn enforcement(
    bwrap_has_size: bool,
    cgroup: Result<bool, String>,
) -> std::collections::BTreeMap<&'static str, String> {
    let tmpfs = if bwrap_has_size {
        "bwrap --size".to_string()
    } else {
        "launcher monitor (this bubblewrap has no --size)".to_string()
    };
    let (memory, pids, cpu, cgroup) = match cgroup {
        Ok(has_cpu) => (
            "cgroup v2 memory.max (the kernel kills the whole sandbox) + RLIMIT_DATA per process"
                .to_string(),
            "cgroup v2 pids.max (the launcher kills the sandbox at the first refused fork)"
                .to_string(),
            if has_cpu {
                "cgroup v2 cpu.max quota + nice".to_string()
            } else {
                "nice only (the delegated cgroup has no cpu controller: Delegate=cpu memory pids)"
                    .to_string()
            },
            "one cgroup v2 per runtime in the launcher's delegated subtree".to_string(),
        ),
        Err(why) => (
            "RLIMIT_DATA per process + launcher monitor of the sandbox's resident memory".into(),
            "launcher monitor of the sandbox's pid namespace + RLIMIT_NPROC".into(),
            format!("nice only (no CPU quota: {why})"),
            format!("none: {why}"),
        ),
    };
    [
        ("memory", memory),
        ("pids", pids),
        ("file_size", "RLIMIT_FSIZE".into()),
        ("tmpfs_size", tmpfs),
        ("cpu", cpu),
        ("cgroup", cgroup),
    ]
    .into_iter()
    .collect()
}

/// Tasks (threads included) that the current real user runs, as far as /proc shows them; the
/// count is reused for five seconds (it only sizes the `RLIMIT_NPROC` backstop, and scanning
/// /proc on every start would cost provisioning time).
pub fn tasks_of_current_user() -> u64 {
    use std::sync::Mutex;
    use std::time::{Duration, Instant};
    static CACHE: Mutex<Option<(Instant, u64)>> = Mutex::new(None);
    let mut cache = CACHE.lock().unwrap_or_else(|p| p.into_inner());
    match *cache {
        Some((at, n)) if at.elapsed() < Duration::from_secs(5) => n,
        _ => {
            let n = count_tasks_of_current_user();
            *cache = Some((Instant::now(), n));
            n
        }
    }
}

fn count_tasks_of_current_user() -> u64 {
    let uid = nix::unistd::getuid().as_raw();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return 0;
    };
    dir.flatten()
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .bytes()
                .all(|b| b.is_ascii_digit())
        })
        .filter(|e| e.metadata().map(|m| m.uid() == uid).unwrap_or(false))
        .map(|e| {
            std::fs::read_dir(e.path().join("task"))
                .map(|t| t.count() as u64)
                .unwrap_or(1)
        })
        .sum()
}

/// The values to set with `setrlimit` in the sandbox's first process, before exec.
#[derive(Clone, Copy, Debug)]
pub struct Rlimits {
    data: u64,
    /// `None` with a cgroup: pids.max counts exactly this sandbox, while RLIMIT_NPROC counts
    /// every process of the user, so another runtime's growth would fail this one's forks.
    nproc: Option<u64>,
    fsize: u64,
    nice: i32,
}

impl Rlimits {
    /// From the limits and the user's current task count (`None`: a cgroup bounds the pids).
    pub fn new(l: &Limits, user_tasks: Option<u64>) -> Self {
        Self {
            // A backstop above the sandbox-wide limit, so the monitor sees a hog (and kills it)
            // before its allocations merely start failing.
            data: l.memory.saturating_add(l.memory / 8),
            nproc: user_tasks.map(|n| n.saturating_add(l.pids).saturating_add(8)),
            fsize: l.file_size,
            nice: i32::from(l.nice.min(19)),
        }
    }

    /// Applies them to the calling process. Only async-signal-safe calls: usable between fork
    /// and exec.
    pub fn apply(&self) -> std::io::Result<()> {
        let set = |res, v: u64| {
            let r = libc::rlimit {
                rlim_cur: v,
                rlim_max: v,
            };
            // SAFETY: setrlimit reads a valid, initialized struct; no memory is retained.
            if unsafe { libc::setrlimit(res, &r) } != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        };
        set(libc::RLIMIT_DATA, self.data)?;
        if let Some(nproc) = self.nproc {
            set(libc::RLIMIT_NPROC, nproc)?;
        }
        set(libc::RLIMIT_FSIZE, self.fsize)?;
        set(libc::RLIMIT_CORE, 0)?;
        set(libc::RLIMIT_NOFILE, 1024)?;
        // SAFETY: plain syscall on the calling process.
        if unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, self.nice) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(())
    }
}

/// Usage of one sandbox, read from /proc.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    /// Processes and threads in the sandbox's pid namespace.
    pub tasks: u64,
    /// Sum of their resident memory.
    pub rss: u64,
    /// Bytes used on the sandbox's `/tmp`.
    pub tmp: u64,
}

/// Watches one sandbox: the pid namespace of its first process identifies it (no process in it
/// can leave it).
pub struct Monitor {
    pid_ns: std::ffi::OsString,
    root_pid: i32,
    page: u64,
}

impl Monitor {
    /// A monitor for the sandbox whose first process is `pid`; `None` when its namespace cannot
    /// be read (the process already exited).
    pub fn new(pid: i32) -> Option<Self> {
        let pid_ns = std::fs::read_link(format!("/proc/{pid}/ns/pid"))
            .ok()?
            .into_os_string();
        // SAFETY: sysconf has no preconditions.
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(4096) as u64;
        Some(Self {
            pid_ns,
            root_pid: pid,
            page,
        })
    }

    /// Reads the sandbox's current usage.
    pub fn usage(&self) -> Usage {
        let mut u = Usage::default();
        if let Ok(dir) = std::fs::read_dir("/proc") {
            for e in dir.flatten() {
                let name = e.file_name();
                let name = name.to_string_lossy();
                if !name.bytes().all(|b| b.is_ascii_digit()) {
                    continue;
                }
                let p = e.path();
                if std::fs::read_link(p.join("ns/pid"))
                    .ok()
                    .map(|n| n.into_os_string())
                    != Some(self.pid_ns.clone())
                {
                    continue;
                }
                u.tasks += std::fs::read_dir(p.join("task"))
                    .map(|t| t.count() as u64)
                    .unwrap_or(1);
                if let Ok(statm) = std::fs::read_to_string(p.join("statm")) {
                    let rss: u64 = statm
                        .split_whitespace()
                        .nth(1)
                        .and_then(|v| v.parse().ok())
                        .unwrap_or(0);
                    u.rss = u.rss.saturating_add(rss.saturating_mul(self.page));
                }
            }
        }
        u.tmp = self.tmp_used();
        u
    }

    /// Bytes used on the sandbox's `/tmp`.
    pub fn tmp_used(&self) -> u64 {
        tmp_used(
            &Path::new("/proc")
                .join(self.root_pid.to_string())
                .join("root/tmp"),
        )
    }

    /// The first limit `usage` breaks, if any.
    pub fn check(
        limits: &Limits,
        usage: &Usage,
        tmpfs_enforced_by_bwrap: bool,
    ) -> Option<Exceeded> {
        if usage.tasks >= limits.pids {
            return Some(Exceeded(format!(
                "pids: {} processes/threads, limit {}",
                usage.tasks, limits.pids
            )));
        }
        if usage.rss > limits.memory {
            return Some(Exceeded(format!(
                "memory: {} bytes resident, limit {}",
                usage.rss, limits.memory
            )));
        }
        if !tmpfs_enforced_by_bwrap && usage.tmp > limits.tmpfs_size {
            return Some(Exceeded(format!(
                "tmpfs_size: {} bytes in /tmp, limit {}",
                usage.tmp, limits.tmpfs_size
            )));
        }
        None
    }
}

fn tmp_used(path: &Path) -> u64 {
    match nix::sys::statfs::statfs(path) {
        Ok(s) if s.filesystem_type() == nix::sys::statfs::TMPFS_MAGIC => {
            let used = s.blocks().saturating_sub(s.blocks_free());
            used.saturating_mul(s.block_size() as u64)
        }
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_broken_limit_is_named() {
        let l = Limits {
            memory: 100,
            pids: 4,
            file_size: 1,
            tmpfs_size: 10,
            nice: 10,
            cpu_millis: 1000,
        };
        let ok = Usage {
            tasks: 3,
            rss: 100,
            tmp: 10,
        };
        assert_eq!(Monitor::check(&l, &ok, false), None);
        let e = Monitor::check(&l, &Usage { tasks: 4, ..ok }, false).expect("pids");
        assert!(e.to_string().contains("pids: 4"), "{e}");
        assert!(Monitor::check(&l, &Usage { rss: 101, ..ok }, false).is_some());
        assert!(Monitor::check(&l, &Usage { tmp: 11, ..ok }, false).is_some());
        assert_eq!(Monitor::check(&l, &Usage { tmp: 11, ..ok }, true), None);
    }

    #[test]
    fn a_monitor_sees_its_own_namespace() {
        let m = Monitor::new(std::process::id().cast_signed()).expect("own ns");
        let u = m.usage();
        assert!(u.tasks >= 1 && u.rss > 0, "{u:?}");
    }
}
