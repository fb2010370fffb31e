//! The sandbox launcher: a separate process whose one job is to start a verified bundle's
//! executable in bubblewrap (DESIGN §2).
//!
//! Protocol: SOCK_SEQPACKET unix socket, one JSON message per packet. `{"op":"info"}` answers the
//! bwrap version and the start-up trial's result. `{"op":"spawn","bundle":"<manifest hash>"}`
//! carries two descriptors (SCM_RIGHTS): the runtime's end of the host socketpair and the write end
//! of the log pipe. The launcher resolves the bundle inside its bundles directory only (a 64-hex
//! name, no caller-supplied path or argument), re-hashes it, starts bwrap, answers `{"ok":{pid}}`
//! and later `{"exited":"…"}`. Closing the connection kills the sandbox. It never reads node keys.

use super::cgroup::{RuntimeCgroup, Subtree};
use super::limits::{self, Limits};
use super::{bwrap, seccomp};
use crate::bundle;
use nix::sys::socket::{
    self, AddressFamily, ControlMessage, ControlMessageOwned, MsgFlags, SockFlag, SockType,
    UnixAddr,
};
use serde::{Deserialize, Serialize};
use std::io::{IoSlice, IoSliceMut, Read};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

/// A request to the launcher.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "lowercase")]
pub enum Request {
    /// Report the sandbox's health.
    Info,
    /// Start a bundle; carries the host socket and log pipe descriptors.
    Spawn {
        /// Manifest hash (64 hex) naming `<bundles_dir>/<hash>`.
        bundle: String,
        /// Resource limits of this runtime (the launcher's defaults when absent).
        #[serde(default)]
        limits: Option<Limits>,
    },
}

/// What `info` reports.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Info {
    /// Sandbox or unconfined.
    pub provisioner: super::Provisioner,
    /// bubblewrap binary.
    pub sandbox_binary: String,
    /// Its version (empty when unconfined).
    pub bwrap_version: String,
    /// `None` when the trial sandbox ran; the failure with its cause otherwise.
    pub trial_error: Option<String>,
    /// How each resource limit is enforced (empty when unconfined).
    #[serde(default)]
    pub limits_enforced: std::collections::BTreeMap<String, String>,
}

/// Started sandbox details.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Started {
    /// Pid of the sandbox's first process (in the launcher's pid namespace).
    pub pid: i32,
    /// Its network namespace (`net:[…]`), when readable.
    pub net_ns: Option<String>,
}

/// A launcher reply.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Reply {
    /// `info` result.
    Info(Info),
    /// Sandbox started.
    Ok(Started),
    /// The sandbox ended.
    Exited(Exit),
    /// Refused or failed.
    Error(String),
}

/// How a sandbox ended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Exit {
    /// What the operator reads: exit code, signal, or the limit exceeded.
    pub reason: String,
    /// The sandbox was killed for exceeding a resource limit.
    #[serde(default)]
    pub limit_exceeded: bool,
}

impl Exit {
    fn ended(reason: String) -> Self {
        Self {
            reason,
            limit_exceeded: false,
        }
    }
}

impl std::fmt::Display for Exit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.reason)
    }
}

/// Launcher settings.
#[derive(Clone, Debug)]
pub struct LauncherConfig {
    /// `<data_dir>/runtimes/bundles`.
    pub bundles_dir: PathBuf,
    /// bubblewrap.
    pub sandbox_binary: PathBuf,
    /// Start runtimes without a sandbox (unsafe, debug only).
    pub unconfined: bool,
    /// Whether bubblewrap bounds /tmp itself (`--size`); set by [`probe`].
    pub bwrap_has_size: bool,
    /// The delegated cgroup v2 subtree the runtimes' cgroups are made in, or why there is none;
    /// set by [`serve`].
    pub cgroups: Result<Arc<Subtree>, Arc<super::cgroup::CgroupError>>,
}

impl LauncherConfig {
    /// Settings for a launcher that has not probed its host yet.
    pub fn new(bundles_dir: PathBuf, sandbox_binary: PathBuf, unconfined: bool) -> Self {
        Self {
            bundles_dir,
            sandbox_binary,
            unconfined,
            bwrap_has_size: false,
            cgroups: Err(Arc::new(super::cgroup::CgroupError::NotLooked)),
        }
    }
}

const MAX_PACKET: usize = 64 * 1024;

fn send(fd: &impl AsFd, msg: &impl Serialize, fds: &[RawFd]) -> std::io::Result<()> {
    let bytes = serde_json::to_vec(msg).map_err(std::io::Error::other)?;
    let iov = [IoSlice::new(&bytes)];
    let cmsg = [ControlMessage::ScmRights(fds)];
    let cmsgs: &[ControlMessage<'_>] = if fds.is_empty() { &[] } else { &cmsg };
    socket::sendmsg::<()>(
        fd.as_fd().as_raw_fd(),
        &iov,
        cmsgs,
        MsgFlags::MSG_NOSIGNAL,
        None,
    )?;
    Ok(())
}

/// Receives one packet and its descriptors; `None` on orderly close.
fn recv<T: for<'de> Deserialize<'de>>(
    fd: &impl AsFd,
) -> std::io::Result<Option<(T, Vec<OwnedFd>)>> {
    let mut buf = vec![0u8; MAX_PACKET];
    let mut cmsg_space = nix::cmsg_space!([RawFd; 4]);
    let (n, fds) = {
        let mut iov = [IoSliceMut::new(&mut buf)];
        let msg = socket::recvmsg::<()>(
            fd.as_fd().as_raw_fd(),
            &mut iov,
            Some(&mut cmsg_space),
            MsgFlags::MSG_CMSG_CLOEXEC,
        )?;
        let mut fds = Vec::new();
        for c in msg.cmsgs()? {
            if let ControlMessageOwned::ScmRights(raw) = c {
                // SAFETY: SCM_RIGHTS just installed these descriptors in this process; nothing
                // else owns them.
                fds.extend(raw.into_iter().map(|r| unsafe { OwnedFd::from_raw_fd(r) }));
            }
        }
        (msg.bytes, fds)
    };
    if n == 0 {
        return Ok(None);
    }
    let v = serde_json::from_slice(&buf[..n]).map_err(|e| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("malformed launcher message: {e}"),
        )
    })?;
    Ok(Some((v, fds)))
}

/// Creates a bound, listening SOCK_SEQPACKET socket at `path` (a stale file is replaced).
pub fn bind(path: &Path) -> std::io::Result<OwnedFd> {
    let _ = std::fs::remove_file(path);
    let fd = seqpacket()?;
    socket::bind(fd.as_raw_fd(), &UnixAddr::new(path)?)?;
    socket::listen(
        &fd,
        socket::Backlog::new(64).map_err(std::io::Error::other)?,
    )?;
    Ok(fd)
}

fn seqpacket() -> std::io::Result<OwnedFd> {
    Ok(socket::socket(
        AddressFamily::Unix,
        SockType::SeqPacket,
        SockFlag::SOCK_CLOEXEC,
        None,
    )?)
}

fn connect(path: &Path) -> std::io::Result<OwnedFd> {
    let fd = seqpacket()?;
    socket::connect(fd.as_raw_fd(), &UnixAddr::new(path)?).map_err(|e| {
        std::io::Error::new(
            std::io::ErrorKind::ConnectionRefused,
            format!(
                "cannot reach the sandbox launcher at {}: {e}",
                path.display()
            ),
        )
    })?;
    Ok(fd)
}

/// Why a sandbox could not be prepared or started. Each message is what the operator reads in
/// the log and in the runtime's `last_error`.
#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    /// The requested name is not a manifest hash.
    #[error("invalid bundle name '{0}': expected the 64-hex manifest hash of an installed bundle")]
    BadName(String),
    /// The bundles directory cannot be read.
    #[error("bundles directory {}: {source}", path.display())]
    BundlesDir {
        /// The configured directory.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// No such bundle is installed.
    #[error("bundle {name} is not installed in {}", dir.display())]
    NotInstalled {
        /// The manifest hash asked for.
        name: String,
        /// The bundles directory.
        dir: PathBuf,
    },
    /// The bundle's directory is a link to somewhere else.
    #[error("bundle {name} resolves outside the bundles directory ({}): refused", real.display())]
    Escapes {
        /// The manifest hash asked for.
        name: String,
        /// Where it resolves.
        real: PathBuf,
    },
    /// The manifest does not hash to the directory's name.
    #[error("bundle {name}: manifest hash is {actual}, the directory was tampered with")]
    Tampered {
        /// The manifest hash asked for.
        name: String,
        /// The hash of the manifest found.
        actual: String,
    },
    /// The installed bundle fails verification.
    #[error(transparent)]
    Bundle(#[from] bundle::BundleError),
    /// The executable or one of its libraries is refused.
    #[error("executable {} refused: {reason}", path.display())]
    Executable {
        /// The executable.
        path: PathBuf,
        /// Why.
        reason: bundle::elf::ElfError,
    },
    /// The sandbox binary does not exist.
    #[error("sandbox binary not found: {} (install bubblewrap, e.g. `apt-get install bubblewrap`, or set runtime.sandbox_binary)", .0.display())]
    BwrapNotFound(PathBuf),
    /// The sandbox binary cannot be executed.
    #[error("cannot run sandbox binary {}: {source}{}", path.display(), if *denied { " (if AppArmor confines paratime-node: under no_new_privs it refuses an exec that changes profile; see docs/operator-guide.md, AppArmor)" } else { "" })]
    BwrapCannotRun {
        /// The binary.
        path: PathBuf,
        /// Whether the kernel refused it (EACCES/EPERM).
        denied: bool,
        /// Why.
        source: std::io::Error,
    },
    /// `--version` failed or printed no version.
    #[error("{} --version failed: is it bubblewrap? output: {output}", path.display())]
    NotBubblewrap {
        /// The binary.
        path: PathBuf,
        /// What it printed.
        output: String,
    },
    /// bubblewrap is older than [`bwrap::MIN_VERSION`].
    #[error("bubblewrap too old: found {found} at {}, required >= {}.{}.{} (install a newer bubblewrap)", path.display(), bwrap::MIN_VERSION.0, bwrap::MIN_VERSION.1, bwrap::MIN_VERSION.2)]
    BwrapTooOld {
        /// The version found.
        found: String,
        /// The binary.
        path: PathBuf,
    },
    /// The seccomp policy cannot be compiled for this machine.
    #[error("{0}")]
    Seccomp(String),
    /// A descriptor, pipe or socket could not be set up.
    #[error("{what}: {source}")]
    Setup {
        /// What was being set up.
        what: &'static str,
        /// Why.
        source: std::io::Error,
    },
    /// The launcher's socket cannot be bound.
    #[error("sandbox launcher socket {}: {source}", path.display())]
    Socket {
        /// The socket's path.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The sandbox binary does not exist.
    #[error("failed to spawn sandbox: sandbox binary not found: {}", .0.display())]
    SandboxNotFound(PathBuf),
    /// The sandbox process could not be started.
    #[error("failed to spawn sandbox: {0}")]
    Spawn(std::io::Error),
    /// The runtime's cgroup could not be created.
    #[error("cannot create the {0}'s cgroup: {1}")]
    Cgroup(&'static str, super::cgroup::CgroupError),
    /// The start-up trial sandbox did not exit 0.
    #[error("trial sandbox failed ({status}): {output}; likely cause: {cause}")]
    Trial {
        /// How it ended.
        status: String,
        /// What it printed.
        output: String,
        /// The diagnosis.
        cause: String,
    },
    /// The launcher answered with an error (its message) or broke the protocol.
    #[error("{0}")]
    Launcher(String),
}

fn setup(what: &'static str) -> impl FnOnce(std::io::Error) -> LaunchError {
    move |source| LaunchError::Setup { what, source }
}

fn is_bundle_name(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Resolves a bundle name to its verified executable inside `bundles_dir`, and the bundle's files.
pub fn resolve_bundle(
    bundles_dir: &Path,
    name: &str,
) -> Result<(PathBuf, Vec<PathBuf>), LaunchError> {
    if !is_bundle_name(name) {
        return Err(LaunchError::BadName(name.to_string()));
    }
    let root = std::fs::canonicalize(bundles_dir).map_err(|source| LaunchError::BundlesDir {
        path: bundles_dir.to_path_buf(),
        source,
    })?;
    let dir = root.join(name);
    let real = std::fs::canonicalize(&dir).map_err(|_| LaunchError::NotInstalled {
        name: name.to_string(),
        dir: root.clone(),
    })?;
    if real.parent() != Some(root.as_path()) {
        return Err(LaunchError::Escapes {
            name: name.to_string(),
            real,
        });
    }
    let manifest = bundle::read_exploded_manifest(&real)?;
    if manifest.hash_hex() != name {
        return Err(LaunchError::Tampered {
            name: name.to_string(),
            actual: manifest.hash_hex(),
        });
    }
    bundle::verify_exploded(&real, &manifest)?;
    let ronl = manifest.ronl()?;
    let mut files: Vec<PathBuf> = manifest.digests().keys().map(|f| real.join(f)).collect();
    files.push(real.join(bundle::MANIFEST_NAME));
    Ok((real.join(ronl.executable), files))
}

fn pipe_with(data: &[u8]) -> std::io::Result<OwnedFd> {
    let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
    nix::unistd::write(&w, data)?;
    drop(w);
    Ok(r)
}

fn high_dup(fd: &impl AsFd) -> std::io::Result<OwnedFd> {
    let raw = nix::fcntl::fcntl(fd.as_fd(), nix::fcntl::FcntlArg::F_DUPFD_CLOEXEC(100))?;
    // SAFETY: fcntl(F_DUPFD_CLOEXEC) returned a new descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(raw) })
}

/// A spawned sandbox process.
pub struct Child {
    child: std::process::Child,
    info: Option<OwnedFd>,
}

/// A resolved start command: what to exec and with which arguments.
#[derive(Clone, Debug)]
pub struct Prepared {
    /// The program to exec: bwrap, or the executable itself when unconfined.
    program: PathBuf,
    /// Its arguments.
    args: Vec<std::ffi::OsString>,
    /// Files whose change invalidates this preparation (bundle files, libraries).
    inputs: Vec<PathBuf>,
}

/// Builds the start command for `executable` with `args` (the tmpfs bound is applied at spawn).
pub fn prepare(
    cfg: &LauncherConfig,
    executable: &Path,
    args: &[&str],
) -> Result<Prepared, LaunchError> {
    if cfg.unconfined {
        return Ok(Prepared {
            program: executable.to_path_buf(),
            args: args.iter().map(std::ffi::OsString::from).collect(),
            inputs: Vec::new(),
        });
    }
    let (mut bargs, libs) = bwrap::sandbox_args(executable)?;
    bargs.extend(args.iter().map(std::ffi::OsString::from));
    Ok(Prepared {
        program: cfg.sandbox_binary.clone(),
        args: bargs,
        inputs: libs,
    })
}

/// Identity and change times of a file: any write, rename or chmod changes it.
type Fingerprint = (u64, u64, u64, i64, i64, i64, i64);

fn fingerprint(p: &Path) -> Option<Fingerprint> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::symlink_metadata(p).ok()?;
    Some((
        m.dev(),
        m.ino(),
        m.size(),
        m.mtime(),
        m.mtime_nsec(),
        m.ctime(),
        m.ctime_nsec(),
    ))
}

/// Verified bundles and their start commands, reused while none of their files (bundle files and
/// libraries) changed; any change means a full re-verification.
#[derive(Default)]
pub struct Cache(std::sync::Mutex<std::collections::HashMap<String, Verified>>);

/// Fingerprints of every input of a verified bundle, and its start command.
type Verified = (Vec<(PathBuf, Fingerprint)>, Prepared);

impl Cache {
    /// The start command of a bundle, verifying it unless an unchanged verification is cached.
    pub fn get_or_prepare(
        &self,
        cfg: &LauncherConfig,
        name: &str,
    ) -> Result<Prepared, LaunchError> {
        if let Ok(map) = self.0.lock() {
            if let Some((fps, prepared)) = map.get(name) {
                if fps.iter().all(|(p, f)| fingerprint(p).as_ref() == Some(f)) {
                    return Ok(prepared.clone());
                }
            }
        }
        let (exe, files) = resolve_bundle(&cfg.bundles_dir, name)?;
        let prepared = prepare(cfg, &exe, &[])?;
        let fps: Option<Vec<(PathBuf, Fingerprint)>> = files
            .iter()
            .chain(&prepared.inputs)
            .map(|p| fingerprint(p).map(|f| (p.clone(), f)))
            .collect();
        if let (Some(fps), Ok(mut map)) = (fps, self.0.lock()) {
            map.insert(name.to_string(), (fps, prepared.clone()));
        }
        Ok(prepared)
    }
}

/// Starts a prepared command with the host socket as fd 3 and the log pipe as stdout/stderr;
/// in the sandbox, with the seccomp program on fd 4 and bwrap's info on fd 5; in `cgroup`, when
/// given, from before exec.
pub fn spawn(
    cfg: &LauncherConfig,
    prepared: &Prepared,
    host: OwnedFd,
    log: OwnedFd,
    limits: &Limits,
    cgroup: Option<&RuntimeCgroup>,
) -> Result<Child, LaunchError> {
    let cgroup_procs = cgroup.map(RuntimeCgroup::procs_fd);
    let host = high_dup(&host).map_err(setup("host socket"))?;
    let mut extra: Vec<(OwnedFd, RawFd)> = vec![(host, bwrap::HOST_FD)];
    let mut info_read = None;
    let mut cmd = Command::new(&prepared.program);
    cmd.env_clear();
    if cfg.bwrap_has_size && !cfg.unconfined {
        // `--size` applies to the next `--tmpfs`, which is /tmp's (the first one).
        let at = prepared.args.iter().position(|a| a == "--tmpfs");
        let (head, tail) = prepared.args.split_at(at.unwrap_or(0));
        cmd.args(head)
            .args(["--size".to_string(), limits.tmpfs_size.to_string()])
            .args(tail);
    } else {
        cmd.args(&prepared.args);
    }
    let rlimits =
        limits::Rlimits::new(limits, cgroup.is_none().then(limits::tasks_of_current_user));
    if cfg.unconfined {
        cmd.env(paratime_sdk::HOST_FD_ENV, bwrap::HOST_FD.to_string());
    } else {
        let prog = seccomp::program_bytes()?;
        let sec = pipe_with(prog).map_err(setup("seccomp pipe"))?;
        let (ir, iw) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
            .map_err(|e| setup("info pipe")(e.into()))?;
        info_read = Some(ir);
        extra.push((
            high_dup(&sec).map_err(setup("seccomp pipe"))?,
            bwrap::SECCOMP_FD,
        ));
        extra.push((high_dup(&iw).map_err(setup("info pipe"))?, bwrap::INFO_FD));
    }
    let log2 = log.try_clone().map_err(setup("log pipe"))?;
    cmd.stdin(Stdio::null())
        .stdout(Stdio::from(log))
        .stderr(Stdio::from(log2));
    let targets: Vec<(RawFd, RawFd)> = extra
        .iter()
        .map(|(fd, target)| (fd.as_raw_fd(), *target))
        .collect();
    let last_fd = targets.iter().map(|(_, t)| *t).max().unwrap_or(2);
    // SAFETY: the closure only calls async-signal-safe functions (write, dup2, close_range,
    // prctl, setrlimit, setpriority) between fork and exec; the cgroup is joined before any dup2
    // can replace its descriptor, and the source descriptors are >= 100 so dup2 never overwrites
    // one still to be copied.
    unsafe {
        cmd.pre_exec(move || {
            if let Some(fd) = cgroup_procs {
                // "0": the writing process itself, before bwrap exists.
                if libc::write(fd, b"0".as_ptr().cast(), 1) != 1 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            for (src, dst) in &targets {
                if libc::dup2(*src, *dst) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            // Exactly stdin/stdout/stderr and the sandbox's own descriptors reach bwrap.
            crate::system::fds::cloexec_from(last_fd + 1)?;
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            rlimits.apply()
        });
    }
    let child = cmd.spawn().map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            LaunchError::SandboxNotFound(cfg.sandbox_binary.clone())
        } else {
            LaunchError::Spawn(e)
        }
    })?;
    drop(extra);
    Ok(Child {
        child,
        info: info_read,
    })
}

impl Child {
    /// The sandboxed process's pid (from bwrap's info fd), or bwrap's pid.
    fn started(&mut self) -> Started {
        let mut pid = self.child.id().cast_signed();
        if let Some(fd) = self.info.take() {
            let mut f = std::fs::File::from(fd);
            let mut text = String::new();
            // bwrap writes the info and closes its end once the sandbox is set up.
            let _ = f.read_to_string(&mut text);
            if let Ok(v) = serde_json::from_str::<serde_json::Value>(&text) {
                if let Some(p) = v.get("child-pid").and_then(|p| p.as_i64()) {
                    pid = p as i32;
                }
            }
        }
        let net_ns = std::fs::read_link(format!("/proc/{pid}/ns/net"))
            .ok()
            .map(|p| p.to_string_lossy().into_owned());
        Started { pid, net_ns }
    }

    fn describe(status: std::process::ExitStatus) -> String {
        use std::os::unix::process::ExitStatusExt;
        match (status.code(), status.signal()) {
            (Some(c), _) => format!("process terminated with exit code {c}"),
            (_, Some(s)) => format!("process died due to signal {s}"),
            _ => "process terminated".into(),
        }
    }
}

/// Runs the start-up trial: the launcher's own binary in the sandbox, expected to exit 0.
pub fn trial(cfg: &LauncherConfig) -> Result<(), LaunchError> {
    let exe = std::env::current_exe().map_err(setup("cannot locate own executable"))?;
    let (host, peer) = std::os::unix::net::UnixStream::pair().map_err(setup("host socket"))?;
    let (log_r, log_w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
        .map_err(|e| setup("log pipe")(e.into()))?;
    let prepared = prepare(cfg, &exe, &["sandbox-probe"])?;
    let cgroup = match &cfg.cgroups {
        Ok(tree) if !cfg.unconfined => Some(
            tree.create(&Limits::default())
                .map_err(|e| LaunchError::Cgroup("trial", e))?,
        ),
        _ => None,
    };
    let mut child = spawn(
        cfg,
        &prepared,
        OwnedFd::from(peer),
        log_w,
        &Limits::default(),
        cgroup.as_ref(),
    )?;
    let status = child.child.wait().map_err(setup("trial sandbox"))?;
    drop(host);
    let mut out = String::new();
    let _ = std::fs::File::from(log_r).read_to_string(&mut out);
    if status.success() {
        return Ok(());
    }
    let msg = out.trim();
    Err(LaunchError::Trial {
        status: Child::describe(status),
        output: if msg.is_empty() { "no output" } else { msg }.to_string(),
        cause: bwrap::diagnose(msg).to_string(),
    })
}

/// Probes the sandbox and returns what `info` reports; records in `cfg` whether bubblewrap
/// bounds /tmp itself.
pub fn probe(cfg: &mut LauncherConfig) -> Info {
    if cfg.unconfined {
        return Info {
            provisioner: super::Provisioner::Unconfined,
            sandbox_binary: String::new(),
            bwrap_version: String::new(),
            trial_error: None,
            limits_enforced: Default::default(),
        };
    }
    let (version, trial_error) = match bwrap::check_version(&cfg.sandbox_binary) {
        Ok(v) => {
            cfg.bwrap_has_size = bwrap::supports_size(&v);
            let t = trial(cfg).err().map(|e| e.to_string());
            (v, t)
        }
        Err(e) => (String::new(), Some(e.to_string())),
    };
    Info {
        provisioner: super::Provisioner::Sandbox,
        sandbox_binary: cfg.sandbox_binary.display().to_string(),
        bwrap_version: version,
        trial_error,
        limits_enforced: limits::enforcement(
            cfg.bwrap_has_size,
            cfg.cgroups
                .as_ref()
                .map(|t| t.has_cpu())
                .map_err(ToString::to_string),
        )
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect(),
    }
}

fn serve_spawn(
    conn: &OwnedFd,
    cfg: &LauncherConfig,
    cache: &Cache,
    bundle_name: &str,
    limits: &Limits,
    fds: Vec<OwnedFd>,
) -> std::io::Result<()> {
    let mut fds = fds.into_iter();
    let (Some(host), Some(log), None) = (fds.next(), fds.next(), fds.next()) else {
        return send(
            conn,
            &Reply::Error("spawn needs exactly two descriptors: host socket and log pipe".into()),
            &[],
        );
    };
    let prepared = match cache.get_or_prepare(cfg, bundle_name) {
        Ok(p) => p,
        Err(e) => {
            log::warn!(bundle = bundle_name; "refused spawn request: {e}");
            return send(conn, &Reply::Error(e.to_string()), &[]);
        }
    };
    let cgroup = match &cfg.cgroups {
        Ok(tree) if !cfg.unconfined => match tree.create(limits) {
            Ok(cg) => Some(cg),
            Err(e) => {
                let e = LaunchError::Cgroup("sandbox", e).to_string();
                log::error!(bundle = bundle_name; "{e}");
                return send(conn, &Reply::Error(e), &[]);
            }
        },
        _ => None,
    };
    let mut child = match spawn(cfg, &prepared, host, log, limits, cgroup.as_ref()) {
        Ok(c) => c,
        Err(e) => return send(conn, &Reply::Error(e.to_string()), &[]),
    };
    let started = child.started();
    log::info!(bundle = bundle_name, pid = started.pid; "sandbox started");
    send(conn, &Reply::Ok(started.clone()), &[])?;
    let monitor = if cfg.unconfined {
        None
    } else {
        limits::Monitor::new(started.pid)
    };
    let mut ticks = 0u64;
    loop {
        if let Some(status) = child.child.try_wait()? {
            // The kernel kills a sandbox over its memory.max: say so, not just "signal 9".
            let why = match cgroup.as_ref().and_then(RuntimeCgroup::exceeded) {
                Some(exceeded) => {
                    log::warn!(bundle = bundle_name; "sandbox killed: {exceeded} ({})", Child::describe(status));
                    Exit {
                        reason: exceeded.to_string(),
                        limit_exceeded: true,
                    }
                }
                None => Exit::ended(Child::describe(status)),
            };
            log::info!(bundle = bundle_name; "sandbox exited: {why}");
            return send(conn, &Reply::Exited(why), &[]);
        }
        ticks += 1;
        let exceeded = if !ticks.is_multiple_of(2) {
            None
        } else if let Some(cg) = &cgroup {
            // The kernel counts memory and pids; /tmp needs a look (a statfs) only when this
            // bubblewrap cannot bound it.
            cg.exceeded().or_else(|| {
                let m = monitor.as_ref().filter(|_| !cfg.bwrap_has_size)?;
                let usage = limits::Usage {
                    tmp: m.tmp_used(),
                    ..Default::default()
                };
                limits::Monitor::check(limits, &usage, false)
            })
        } else {
            monitor
                .as_ref()
                .and_then(|m| limits::Monitor::check(limits, &m.usage(), cfg.bwrap_has_size))
        };
        if let Some(exceeded) = exceeded {
            if let Some(cg) = &cgroup {
                cg.kill();
            }
            let _ = child.child.kill();
            let status = child.child.wait()?;
            log::warn!(bundle = bundle_name; "sandbox killed: {exceeded} ({})", Child::describe(status));
            let exit = Exit {
                reason: exceeded.to_string(),
                limit_exceeded: true,
            };
            return send(conn, &Reply::Exited(exit), &[]);
        }
        let mut pfd = [nix::poll::PollFd::new(
            conn.as_fd(),
            nix::poll::PollFlags::POLLIN,
        )];
        let ready = nix::poll::poll(&mut pfd, nix::poll::PollTimeout::from(100u16)).unwrap_or(0);
        if ready > 0 {
            // Any packet or hang-up from the node means: stop this sandbox.
            let _ = child.child.kill();
            let status = child.child.wait()?;
            log::info!(bundle = bundle_name; "sandbox stopped on request: {}", Child::describe(status));
            return Ok(());
        }
    }
}

fn serve_conn(
    conn: OwnedFd,
    cfg: &LauncherConfig,
    cache: &Cache,
    info: &Info,
) -> std::io::Result<()> {
    let Some((req, fds)) = recv::<Request>(&conn)? else {
        return Ok(());
    };
    match req {
        Request::Info => send(&conn, &Reply::Info(info.clone()), &[]),
        Request::Spawn { bundle, limits } => {
            if info.trial_error.is_some() {
                return send(
                    &conn,
                    &Reply::Error(format!(
                        "sandbox unavailable: {}",
                        info.trial_error.clone().unwrap_or_default()
                    )),
                    &[],
                );
            }
            serve_spawn(&conn, cfg, cache, &bundle, &limits.unwrap_or_default(), fds)
        }
    }
}

/// Serves requests on a listening socket until the process is killed.
pub fn serve(listener: OwnedFd, mut cfg: LauncherConfig) -> std::io::Result<()> {
    if !cfg.unconfined {
        cfg.cgroups = Subtree::delegated().map(Arc::new).map_err(Arc::new);
        match &cfg.cgroups {
            Ok(tree) => {
                log::info!(cgroup = tree.dir().display().to_string().as_str(); "runtime limits: one cgroup v2 per runtime (memory.max, pids.max{})", if tree.has_cpu() { ", cpu.max" } else { "" })
            }
            Err(why) => {
                log::info!("runtime limits: rlimits and the launcher's monitor, no cgroup ({why})")
            }
        }
    }
    let info = Arc::new(probe(&mut cfg));
    match &info.trial_error {
        None => {
            log::info!(provisioner = info.provisioner.as_str(), bwrap_version = info.bwrap_version.as_str(); "sandbox launcher ready")
        }
        Some(e) => log::error!("sandbox launcher cannot sandbox: {e}"),
    }
    let cfg = Arc::new(cfg);
    let cache = Arc::new(Cache::default());
    loop {
        let raw = match socket::accept(listener.as_raw_fd()) {
            Ok(fd) => fd,
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(e.into()),
        };
        // SAFETY: accept returned a new descriptor that nothing else owns.
        let conn = unsafe { OwnedFd::from_raw_fd(raw) };
        let (cfg, cache, info) = (cfg.clone(), cache.clone(), info.clone());
        std::thread::spawn(move || {
            if let Err(e) = serve_conn(conn, &cfg, &cache, &info) {
                log::warn!("launcher connection failed: {e}");
            }
        });
    }
}

/// The node's side of the launcher protocol.
#[derive(Clone, Debug)]
pub struct Client {
    path: PathBuf,
}

/// A running sandbox, as seen by the node. Dropping or [`Sandbox::kill`] stops it.
#[derive(Debug)]
pub struct Sandbox {
    conn: Arc<OwnedFd>,
    /// Start details.
    pub started: Started,
}

impl Sandbox {
    /// Stops the sandbox (the launcher kills it when the connection goes away).
    pub fn kill(&self) {
        let _ = socket::shutdown(self.conn.as_raw_fd(), socket::Shutdown::Both);
    }

    /// A handle that blocks until the sandbox exits and returns why.
    pub fn exit_watcher(&self) -> impl FnOnce() -> Exit + Send + 'static {
        let conn = self.conn.clone();
        move || match recv::<Reply>(&*conn) {
            Ok(Some((Reply::Exited(exit), _))) => exit,
            Ok(Some((other, _))) => Exit::ended(format!("unexpected launcher reply {other:?}")),
            Ok(None) => Exit::ended("sandbox stopped".into()),
            Err(e) => Exit::ended(format!("lost the launcher connection: {e}")),
        }
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        self.kill();
    }
}

impl Client {
    /// A client for the launcher listening at `path`.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into() }
    }

    /// Asks for the launcher's sandbox status.
    pub fn info(&self) -> std::io::Result<Info> {
        let conn = connect(&self.path)?;
        send(&conn, &Request::Info, &[])?;
        match recv::<Reply>(&conn)? {
            Some((Reply::Info(i), _)) => Ok(i),
            other => Err(std::io::Error::other(format!(
                "unexpected launcher reply: {other:?}"
            ))),
        }
    }

    /// Asks the launcher to start the bundle named by its manifest hash, within `limits`.
    pub fn spawn(
        &self,
        bundle: &str,
        limits: Limits,
        host: OwnedFd,
        log: OwnedFd,
    ) -> Result<Sandbox, LaunchError> {
        let conn = connect(&self.path).map_err(setup("sandbox launcher"))?;
        send(
            &conn,
            &Request::Spawn {
                bundle: bundle.to_string(),
                limits: Some(limits),
            },
            &[host.as_raw_fd(), log.as_raw_fd()],
        )
        .map_err(setup("launcher request failed"))?;
        drop((host, log));
        let mut pfd = [nix::poll::PollFd::new(
            conn.as_fd(),
            nix::poll::PollFlags::POLLIN,
        )];
        let ready = nix::poll::poll(&mut pfd, nix::poll::PollTimeout::from(30_000u16))
            .map_err(|e| setup("sandbox launcher")(e.into()))?;
        if ready == 0 {
            return Err(LaunchError::Launcher(
                "sandbox launcher did not answer within 30s".into(),
            ));
        }
        match recv::<Reply>(&conn).map_err(setup("sandbox launcher"))? {
            Some((Reply::Ok(started), _)) => Ok(Sandbox {
                conn: Arc::new(conn),
                started,
            }),
            Some((Reply::Error(e), _)) => Err(LaunchError::Launcher(e)),
            Some((other, _)) => Err(LaunchError::Launcher(format!(
                "unexpected launcher reply: {other:?}"
            ))),
            None => Err(LaunchError::Launcher(
                "sandbox launcher closed the connection".into(),
            )),
        }
    }
}

/// How long to wait for a child launcher's socket.
pub const STARTUP_TIMEOUT: Duration = Duration::from_secs(30);
