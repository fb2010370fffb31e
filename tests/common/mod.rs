//! Helpers for the integration tests: real `paratime-node` processes, real bwrap, real sockets.
#![allow(dead_code)]

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub(crate) const RUNTIME_ID: &str =
    "0000000000000000000000000000000000000000000000000000000000000001";

pub(crate) fn node_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_paratime-node"))
}

/// The developer tooling (`localnet`, `bench`).
pub(crate) fn dev_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_paratime-dev"))
}

/// The sample ParaTime, built next to the node binary by the workspace build.
pub(crate) fn kvstore_bin() -> PathBuf {
    let p = node_bin()
        .parent()
        .expect("target dir")
        .join("paratime-kvstore");
    assert!(
        p.exists(),
        "{} missing: build the workspace (cargo build --workspace)",
        p.display()
    );
    p
}

/// The test-only faulty key-value store (tests/hostile-runtime), built by the workspace build:
/// the sample ParaTime with `debug_fault` and `debug_probe`.
pub(crate) fn faulty_kvstore_bin() -> PathBuf {
    let p = kvstore_bin().with_file_name("paratime-faulty-kvstore");
    assert!(
        p.exists(),
        "{} missing: build the workspace (cargo build --workspace)",
        p.display()
    );
    p
}

/// The test-only hostile ParaTime (tests/hostile-runtime), built by the workspace build.
pub(crate) fn hostile_bin() -> PathBuf {
    let p = node_bin()
        .parent()
        .expect("target dir")
        .join("paratime-hostile");
    assert!(
        p.exists(),
        "{} missing: build the workspace (cargo build --workspace)",
        p.display()
    );
    p
}

/// Runs `bundle build` of `executable` (version 0.1.0) into `out`.
pub(crate) fn bundle_build(executable: &Path, name: &str, runtime_id: &str, out: &Path) -> Output {
    run(&[
        "bundle",
        "build",
        "--executable",
        executable.to_str().expect("utf8"),
        "--name",
        name,
        "--runtime-id",
        runtime_id,
        "--version",
        "0.1.0",
        "--output",
        out.to_str().expect("utf8"),
    ])
}

pub(crate) fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

pub(crate) fn run(args: &[&str]) -> Output {
    Command::new(node_bin())
        .args(args)
        .env_remove("PARATIME_LOG")
        .output()
        .expect("run paratime-node")
}

pub(crate) fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// A node directory laid out as the oasis docs do: etc/, runtimes/, data/.
pub(crate) struct NodeDir {
    pub tmp: tempfile::TempDir,
    /// Run the node as `nobody` when the tests run as root.
    pub unprivileged: bool,
}

impl NodeDir {
    pub(crate) fn new() -> Self {
        let tmp = tempfile::tempdir().expect("tempdir");
        std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755))
            .expect("chmod");
        for d in ["etc", "runtimes"] {
            std::fs::create_dir(tmp.path().join(d)).expect("mkdir");
        }
        std::fs::write(tmp.path().join("etc/genesis.json"), "{}").expect("genesis");
        Self {
            tmp,
            unprivileged: false,
        }
    }

    pub(crate) fn path(&self) -> &Path {
        self.tmp.path()
    }

    pub(crate) fn data(&self) -> PathBuf {
        self.path().join("data")
    }

    pub(crate) fn socket(&self) -> String {
        format!("unix:{}", self.data().join("internal.sock").display())
    }

    pub(crate) fn bundle(&self) -> PathBuf {
        self.path().join("runtimes/kvstore.orc")
    }

    pub(crate) fn build_bundle(&self) -> PathBuf {
        let out = self.bundle();
        let o = self.build_bundle_with(RUNTIME_ID, &out);
        assert!(o.status.success(), "bundle build: {}", text(&o));
        out
    }

    /// Builds the faulty key-value store's bundle where [`Self::bundle`] points (named
    /// `kvstore`, the sample's runtime ID).
    pub(crate) fn build_faulty_bundle(&self) -> PathBuf {
        let out = self.bundle();
        let o = bundle_build(&faulty_kvstore_bin(), "kvstore", RUNTIME_ID, &out);
        assert!(o.status.success(), "bundle build: {}", text(&o));
        out
    }

    /// Builds the hostile ParaTime's bundle where [`Self::bundle`] points.
    pub(crate) fn build_hostile_bundle(&self) -> PathBuf {
        let out = self.bundle();
        let o = bundle_build(&hostile_bin(), "hostile", RUNTIME_ID, &out);
        assert!(o.status.success(), "bundle build: {}", text(&o));
        out
    }

    /// Runs `bundle build` of the sample ParaTime with `runtime_id` into `out`.
    pub(crate) fn build_bundle_with(&self, runtime_id: &str, out: &Path) -> Output {
        bundle_build(&kvstore_bin(), "kvstore", runtime_id, out)
    }

    /// Writes etc/config.yml: client mode, the kvstore bundle, and `extra` YAML appended under
    /// `runtime:` (indented by the caller).
    pub(crate) fn write_config(&self, runtime_extra: &str) -> PathBuf {
        let cfg = format!(
            "mode: client\ncommon:\n  data_dir: {data}\n  log:\n    format: JSON\n    level:\n      default: info\ngenesis:\n  file: {dir}/etc/genesis.json\nruntime:\n  paths:\n    - {bundle}\n{runtime_extra}",
            data = self.data().display(),
            dir = self.path().display(),
            bundle = self.bundle().display(),
        );
        let p = self.path().join("etc/config.yml");
        std::fs::write(&p, cfg).expect("config");
        p
    }

    /// Makes the whole tree owned by nobody, for an unprivileged node.
    pub(crate) fn give_to_nobody(&mut self) {
        if is_root() {
            let status = Command::new("chown")
                .args(["-R", "65534:65534"])
                .arg(self.path())
                .status()
                .expect("chown");
            assert!(status.success());
            self.unprivileged = true;
        }
    }

    pub(crate) fn start(&self) -> NodeProc {
        let mut cmd = Command::new(node_bin());
        cmd.arg("--config").arg(self.path().join("etc/config.yml"));
        if self.unprivileged {
            cmd.uid(65534).gid(65534);
        } else if is_root() {
            cmd.arg("--unsafe-debug");
        }
        let log = self.path().join("node.log");
        let f = std::fs::File::create(&log).expect("log file");
        cmd.stdin(Stdio::null())
            .stdout(f.try_clone().expect("dup"))
            .stderr(f);
        NodeProc {
            child: Some(cmd.spawn().expect("start node")),
            log,
        }
    }

    pub(crate) fn status(&self) -> Option<serde_json::Value> {
        let o = run(&["control", "status", "-a", &self.socket()]);
        if !o.status.success() {
            return None;
        }
        serde_json::from_slice(&o.stdout).ok()
    }

    pub(crate) fn runtime_status(&self) -> Option<serde_json::Value> {
        self.status().and_then(|s| {
            s["runtimes"][RUNTIME_ID]
                .as_object()
                .cloned()
                .map(serde_json::Value::Object)
        })
    }

    /// Polls the runtime's status until `pred` holds.
    pub(crate) fn wait_runtime(
        &self,
        node: &mut NodeProc,
        what: &str,
        timeout: Duration,
        pred: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        let start = Instant::now();
        let mut last = None;
        while start.elapsed() < timeout {
            if let Some(code) = node.exited() {
                panic!(
                    "node exited ({code:?}) while waiting for {what}; log:\n{}",
                    node.log_text()
                );
            }
            if let Some(s) = self.runtime_status() {
                if pred(&s) {
                    return s;
                }
                last = Some(s);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!(
            "timed out waiting for {what}; last status: {last:#?}\nlog:\n{}",
            node.log_text()
        );
    }
}

/// A running node; killed on drop.
pub(crate) struct NodeProc {
    child: Option<Child>,
    pub log: PathBuf,
}

impl NodeProc {
    pub(crate) fn pid(&self) -> i32 {
        self.child
            .as_ref()
            .map(|c| c.id().cast_signed())
            .unwrap_or(0)
    }

    pub(crate) fn exited(&mut self) -> Option<Option<i32>> {
        self.child
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten())
            .map(|s| s.code())
    }

    pub(crate) fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub(crate) fn wait_exit(&mut self, timeout: Duration) -> Option<i32> {
        let start = Instant::now();
        while start.elapsed() < timeout {
            if let Some(code) = self.exited() {
                return code;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "node did not exit within {timeout:?}; log:\n{}",
            self.log_text()
        );
    }

    pub(crate) fn terminate(&mut self) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.pid()),
            nix::sys::signal::Signal::SIGTERM,
        );
    }
}

impl Drop for NodeProc {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

pub(crate) fn pid_alive(pid: i32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
        && std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .map(|s| !s.contains(") Z "))
            .unwrap_or(false)
}

/// The oasis status shapes (tests/fixtures/oasis-status-shapes.json) that `status` does not
/// have, one line each; empty when every path has its type.
pub(crate) fn status_shape_problems(status: &serde_json::Value) -> Vec<String> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/oasis-status-shapes.json");
    let fixture: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(&std::fs::read(&p).expect("fixture")).expect("fixture json");
    let mut problems = Vec::new();
    for (path, ty) in fixture.iter().filter(|(k, _)| !k.starts_with('_')) {
        let ty = ty.as_str().expect("type");
        let mut at: Vec<(String, &serde_json::Value)> = vec![(String::new(), status)];
        let mut optional_gone = false;
        for seg in path.split('.') {
            let (seg, optional) = match seg.strip_suffix('?') {
                Some(s) => (s, true),
                None => (seg, false),
            };
            let mut next = Vec::new();
            for (here, v) in at {
                if seg == "*" {
                    for (k, c) in v.as_object().into_iter().flatten() {
                        next.push((format!("{here}.{k}"), c));
                    }
                    continue;
                }
                match v.get(seg) {
                    Some(c) if !(optional && c.is_null()) => {
                        next.push((format!("{here}.{seg}"), c))
                    }
                    _ if optional => optional_gone = true,
                    // A missing key is checked against the type as null.
                    _ => next.push((format!("{here}.{seg}"), &serde_json::Value::Null)),
                }
            }
            at = next;
        }
        if at.is_empty() && !optional_gone && !path.contains('*') {
            problems.push(format!("{path}: missing"));
        }
        for (here, v) in at {
            if !shape_is(v, ty) {
                problems.push(format!("{}: expected {ty}, found {v}", &here[1..]));
            }
        }
    }
    problems
}

fn shape_is(v: &serde_json::Value, ty: &str) -> bool {
    if let Some((a, b)) = ty.split_once(" or ") {
        return shape_is(v, a) || shape_is(v, b);
    }
    if let Some(inner) = ty.strip_prefix("array<").and_then(|t| t.strip_suffix('>')) {
        return v
            .as_array()
            .is_some_and(|a| a.iter().all(|x| shape_is(x, inner)));
    }
    if let Some(options) = ty.strip_prefix("enum:") {
        return v
            .as_str()
            .is_some_and(|s| options.split('|').any(|o| o == s));
    }
    if let Some(n) = ty.strip_prefix("const:") {
        return n.parse::<serde_json::Value>().is_ok_and(|n| *v == n);
    }
    let s = v.as_str().unwrap_or("\u{0}");
    match ty {
        "uint" => v.is_u64(),
        "bool" => v.is_boolean(),
        "string" => v.is_string(),
        "object" => v.is_object(),
        "array" => v.is_array(),
        "null" => v.is_null(),
        "empty" => v.as_str() == Some(""),
        "hex32" => {
            s.len() == 64
                && s.bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        }
        "base64key" => s.len() == 44 && s.ends_with('='),
        "rfc3339" => humantime::parse_rfc3339_weak(s).is_ok(),
        "ipport" => s.parse::<std::net::SocketAddr>().is_ok(),
        "roles" => {
            v.is_string()
                && s.split(',').filter(|r| !r.is_empty()).all(|r| {
                    [
                        "compute",
                        "observer",
                        "key-manager",
                        "validator",
                        "storage-rpc",
                    ]
                    .contains(&r)
                })
        }
        _ => panic!("unknown type '{ty}' in the status fixture"),
    }
}

/// The checker finds what it is for: a string state root, a null round, an integer role mask.
pub(crate) fn status_shape_checker_catches_the_old_shapes(good: &serde_json::Value) {
    let mut bad = good.clone();
    for (_, r) in bad["runtimes"]
        .as_object_mut()
        .expect("runtimes")
        .iter_mut()
    {
        r["latest_state_root"] = serde_json::json!("ab");
        r["latest_round"] = serde_json::Value::Null;
    }
    bad["registration"]["descriptor"]["roles"] = serde_json::json!(1);
    let p = status_shape_problems(&bad).join("\n");
    for want in [
        ".latest_state_root.ns: expected hex32",
        ".latest_round: expected uint",
        "registration.descriptor.roles: expected roles",
    ] {
        assert!(p.contains(want), "the checker missed {want}: {p}");
    }
}

/// `GET path` on `addr` over plain HTTP/1.1 (a metrics endpoint, a Prometheus API): the status
/// line and the body (with the headers before it cut off).
pub(crate) fn http_get(addr: &str, path: &str) -> Option<(String, String)> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut out = Vec::new();
    s.read_to_end(&mut out).ok()?;
    let text = String::from_utf8_lossy(&out).into_owned();
    let (head, body) = text.split_once("\r\n\r\n")?;
    Some((head.lines().next()?.to_string(), body.to_string()))
}
