//! `paratime-node doctor`: one line per check, OK / WARN / FAIL, each failure with its fix.

use crate::config::{self, Config, Severity};
use crate::host::{bwrap, launcher};
use crate::identity::{Identity, KeyKind};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

#[derive(Clone, Copy, PartialEq, Eq)]
enum Verdict {
    Ok,
    Warn,
    Fail,
    Skip,
}

struct Report {
    failed: bool,
}

impl Report {
    fn line(&mut self, v: Verdict, check: &str, detail: impl AsRef<str>) {
        let tag = match v {
            Verdict::Ok => "OK  ",
            Verdict::Warn => "WARN",
            Verdict::Fail => {
                self.failed = true;
                "FAIL"
            }
            Verdict::Skip => "SKIP",
        };
        println!("{tag} {check}: {}", detail.as_ref());
    }
}

fn sysctl(path: &str) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|s| s.trim().to_string())
}

fn check_userns(r: &mut Report) {
    let max = sysctl("/proc/sys/user/max_user_namespaces");
    let clone = sysctl("/proc/sys/kernel/unprivileged_userns_clone");
    let aa = sysctl("/proc/sys/kernel/apparmor_restrict_unprivileged_userns");
    if max.as_deref() == Some("0") {
        r.line(
            Verdict::Fail,
            "user namespaces",
            "disabled (user.max_user_namespaces=0); fix: sysctl -w user.max_user_namespaces=15000",
        );
    } else if clone.as_deref() == Some("0") {
        r.line(Verdict::Fail, "user namespaces", "unprivileged creation disabled (kernel.unprivileged_userns_clone=0); fix: sysctl -w kernel.unprivileged_userns_clone=1");
    } else if aa.as_deref() == Some("1") {
        let profile = Path::new("/etc/apparmor.d/bwrap").exists();
        r.line(
            if profile { Verdict::Ok } else { Verdict::Fail },
            "user namespaces",
            if profile {
                "restricted by AppArmor, bwrap profile installed (/etc/apparmor.d/bwrap)"
            } else {
                "restricted by AppArmor (kernel.apparmor_restrict_unprivileged_userns=1) and no bwrap profile; fix: install apparmor/bwrap as /etc/apparmor.d/bwrap and run `systemctl reload apparmor`"
            },
        );
    } else {
        r.line(
            Verdict::Ok,
            "user namespaces",
            format!(
                "allowed (user.max_user_namespaces={})",
                max.unwrap_or_else(|| "?".into())
            ),
        );
    }
}

fn check_seccomp(r: &mut Report) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let mode = status
        .lines()
        .find_map(|l| l.strip_prefix("Seccomp:"))
        .map(str::trim)
        .unwrap_or("0");
    match mode {
        "2" => r.line(Verdict::Warn, "seccomp", "this process runs under a seccomp filter (container or unit): if the trial sandbox fails, allow unshare/mount/pivot_root (Docker: --security-opt seccomp=unconfined)"),
        _ => r.line(Verdict::Ok, "seccomp", "no filter on this process"),
    }
}

fn check_sandbox(r: &mut Report, cfg: &Config) {
    let bin = PathBuf::from(&cfg.runtime.sandbox_binary);
    match bwrap::check_version(&bin) {
        Ok(v) => r.line(
            Verdict::Ok,
            "bubblewrap",
            format!(
                "{} version {v} (>= {}.{}.{})",
                bin.display(),
                bwrap::MIN_VERSION.0,
                bwrap::MIN_VERSION.1,
                bwrap::MIN_VERSION.2
            ),
        ),
        Err(e) => {
            r.line(Verdict::Fail, "bubblewrap", e.to_string());
            r.line(Verdict::Skip, "trial sandbox", "needs bubblewrap");
            return;
        }
    }
    let lcfg = launcher::LauncherConfig::new(PathBuf::new(), bin, false);
    match launcher::trial(&lcfg) {
        Ok(()) => r.line(
            Verdict::Ok,
            "trial sandbox",
            "started and exited cleanly (namespaces, seccomp filter, read-only binds)",
        ),
        Err(e) => r.line(Verdict::Fail, "trial sandbox", e.to_string()),
    }
    let has_size = bwrap::check_version(&lcfg.sandbox_binary)
        .map(|v| bwrap::supports_size(&v))
        .unwrap_or(false);
    match crate::config::runtime_limits(cfg) {
        Ok(l) => {
            let cgroups = crate::host::cgroup::host_support();
            // doctor runs outside the units: it reports the standalone enforcement, and below
            // what the shipped sandbox unit gets on this host.
            let how = crate::host::limits::enforcement(
                has_size,
                Err("standalone: no delegated cgroup".to_string()),
            );
            r.line(
                Verdict::Ok,
                "runtime limits",
                format!(
                    "memory {} bytes, pids {}, file_size {} bytes, tmpfs_size {} bytes, nice {}, cpu {:.2}; enforced standalone by: {}",
                    l.memory,
                    l.pids,
                    l.file_size,
                    l.tmpfs_size,
                    l.nice,
                    f64::from(l.cpu_millis) / 1000.0,
                    how.iter()
                        .map(|(k, v)| format!("{k}: {v}"))
                        .collect::<Vec<_>>()
                        .join("; ")
                ),
            );
            match cgroups {
                Ok(what) => r.line(
                    Verdict::Ok,
                    "runtime cgroups",
                    format!("{what}: under the shipped paratime-node-sandbox.service (Delegate=cpu memory pids) every runtime gets its own cgroup with memory.max, pids.max and a CPU quota of {:.2} CPUs (cpu.max); standalone, no CPU quota (nice {})", f64::from(l.cpu_millis) / 1000.0, l.nice),
                ),
                Err(why) => r.line(
                    Verdict::Warn,
                    "runtime cgroups",
                    format!("{why}: runtimes' memory and pids are enforced by the launcher's monitor and rlimits, and there is no CPU quota (runtimes run at nice {})", l.nice),
                ),
            }
        }
        Err(problems) => r.line(
            Verdict::Fail,
            "runtime limits",
            problems
                .iter()
                .map(|p| format!("{}: {}", p.key, p.message))
                .collect::<Vec<_>>()
                .join("; "),
        ),
    }
}

fn check_data_dir(r: &mut Report, cfg: &Config) {
    let dd = PathBuf::from(&cfg.common.data_dir);
    let euid = nix::unistd::geteuid().as_raw();
    match std::fs::metadata(&dd) {
        Err(_) => r.line(
            Verdict::Ok,
            "data dir",
            format!(
                "{} does not exist yet; the node creates it 0700",
                dd.display()
            ),
        ),
        Ok(md) if md.mode() & 0o777 != 0o700 => r.line(
            Verdict::Fail,
            "data dir",
            format!(
                "{} has mode {:o}; fix: chmod 700 {}",
                dd.display(),
                md.mode() & 0o777,
                dd.display()
            ),
        ),
        Ok(md) if md.uid() != euid => r.line(
            Verdict::Fail,
            "data dir",
            format!(
                "{} is owned by uid {}, the node runs as {euid}; fix: chown it to the node user",
                dd.display(),
                md.uid()
            ),
        ),
        Ok(_) => r.line(
            Verdict::Ok,
            "data dir",
            format!("{} is 0700 and owned by uid {euid}", dd.display()),
        ),
    }
    for kind in KeyKind::ALL {
        let p = dd.join(kind.private_file());
        match std::fs::metadata(&p) {
            Err(_) => {}
            Ok(md) if md.mode() & 0o777 != 0o600 => r.line(
                Verdict::Fail,
                "key permissions",
                format!(
                    "{} has mode {:o}; fix: chmod 600 {}",
                    p.display(),
                    md.mode() & 0o777,
                    p.display()
                ),
            ),
            Ok(_) => r.line(
                Verdict::Ok,
                "key permissions",
                format!("{} is 0600", p.display()),
            ),
        }
    }
}

fn check_limits(r: &mut Report) {
    use nix::sys::resource::{getrlimit, Resource};
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).unwrap_or((0, 0));
    let best = soft.max(hard.min(102_400));
    if best >= crate::node::MIN_NOFILE {
        r.line(
            Verdict::Ok,
            "RLIMIT_NOFILE",
            format!("soft {soft}, hard {hard} (the node raises the soft limit to at most 102400)"),
        );
    } else {
        r.line(Verdict::Fail, "RLIMIT_NOFILE", format!("hard limit {hard} < {}: fix: LimitNOFILE=102400 in the unit or `ulimit -Hn 102400` as root", crate::node::MIN_NOFILE));
    }
}

fn check_landlock(r: &mut Report) {
    // SAFETY: landlock_create_ruleset(NULL, 0, LANDLOCK_CREATE_RULESET_VERSION) only returns the
    // ABI version; it takes no memory from us.
    let abi = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<u8>(),
            0usize,
            1u32,
        )
    };
    if abi > 0 {
        r.line(
            Verdict::Ok,
            "Landlock",
            format!("ABI {abi}: the node confines itself to its data dir after start-up"),
        );
    } else {
        r.line(Verdict::Warn, "Landlock", format!("not available ({}): the node runs without filesystem self-confinement; enable the landlock LSM (lsm= boot parameter)", std::io::Error::last_os_error()));
    }
}

fn check_ports(r: &mut Report, cfg: &Config) {
    let mut ports = vec![("p2p.port", cfg.p2p.port)];
    if let Some(p) = cfg
        .consensus
        .listen_address
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
    {
        ports.push(("consensus.listen_address", p));
    }
    for (key, port) in ports {
        let tcp = std::net::TcpListener::bind(("0.0.0.0", port)).map(|_| ());
        let udp = std::net::UdpSocket::bind(("0.0.0.0", port)).map(|_| ());
        match (tcp, udp) {
            (Ok(()), Ok(())) => r.line(Verdict::Ok, "ports", format!("{key} {port} bindable (TCP and UDP)")),
            (t, u) => r.line(
                Verdict::Fail,
                "ports",
                format!("{key} {port} not bindable (TCP: {}, UDP: {}); fix: stop what uses it or change {key}", t.err().map(|e| e.to_string()).unwrap_or("ok".into()), u.err().map(|e| e.to_string()).unwrap_or("ok".into())),
            ),
        }
    }
}

fn check_entity(r: &mut Report, cfg: &Config) {
    if cfg.registration.entity.is_empty() {
        r.line(Verdict::Skip, "entity", "registration.entity not set");
        return;
    }
    let node = match Identity::load(Path::new(&cfg.common.data_dir), false) {
        Ok(id) => id.public_b64(KeyKind::Node),
        Err(e) => {
            return r.line(
                Verdict::Skip,
                "entity",
                format!("node keys not readable yet ({e})"),
            )
        }
    };
    let text = match crate::system::files::read_bounded_to_string(
        Path::new(&cfg.registration.entity),
        crate::system::files::ENTITY_LIMIT,
    ) {
        Ok(t) => t,
        Err(e) => return r.line(Verdict::Fail, "entity", e.to_string()),
    };
    let v: serde_json::Value = match serde_json::from_str(&text) {
        Ok(v) => v,
        Err(e) => {
            return r.line(
                Verdict::Fail,
                "entity",
                format!("{} is not JSON: {e}", cfg.registration.entity),
            )
        }
    };
    let listed = v["nodes"]
        .as_array()
        .is_some_and(|n| n.iter().any(|x| x.as_str() == Some(node.as_str())));
    if listed {
        r.line(
            Verdict::Ok,
            "entity",
            format!("{} lists this node ({node})", cfg.registration.entity),
        );
    } else {
        r.line(Verdict::Fail, "entity", format!("{} does not list this node's ID {node}; fix: add it to `nodes` and re-register the entity", cfg.registration.entity));
    }
}

/// Runs every check; exit 1 if any failed.
pub(super) fn doctor(file: &Path) -> i32 {
    let mut r = Report { failed: false };
    if nix::unistd::geteuid().is_root() {
        r.line(
            Verdict::Fail,
            "user",
            "running as root: the node refuses to; run doctor and the node as the node user",
        );
    } else {
        r.line(
            Verdict::Ok,
            "user",
            format!("uid {}", nix::unistd::geteuid()),
        );
    }
    let cfg = match config::load(file) {
        Ok(l) => {
            let w = l.warnings.len();
            r.line(
                Verdict::Ok,
                "config",
                format!(
                    "{} loads ({w} warning{})",
                    file.display(),
                    if w == 1 { "" } else { "s" }
                ),
            );
            l.config
        }
        Err(e) => {
            let n = e
                .problems
                .iter()
                .filter(|p| p.severity == Severity::Error)
                .count();
            r.line(
                Verdict::Fail,
                "config",
                format!(
                    "{n} error(s); run `paratime-node config check --config {}`",
                    file.display()
                ),
            );
            for p in e.problems.iter().filter(|p| p.severity == Severity::Error) {
                println!("       {}", p.display_in(file));
            }
            return 1;
        }
    };
    check_sandbox(&mut r, &cfg);
    check_userns(&mut r);
    check_seccomp(&mut r);
    check_data_dir(&mut r, &cfg);
    check_limits(&mut r);
    check_landlock(&mut r);
    check_ports(&mut r, &cfg);
    check_entity(&mut r, &cfg);
    i32::from(r.failed)
}
