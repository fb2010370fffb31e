//! A hostile ParaTime against the real host (real bwrap, real launcher, real node): ELF header
//! abuse, log attacks, resource exhaustion and descriptor leaks. Each test asserts what the host
//! must do: refuse or bound, stay up, keep serving `control status`, show nothing of its own.
//! The hostile runtime is a test-only crate (tests/hostile-runtime), never the sample ParaTime.

mod common;
use common::*;
use std::io::{Read, Write};
use std::time::{Duration, Instant};

const LONG: Duration = Duration::from_secs(60);

fn attack_config(attack: &str, limits: &str) -> String {
    format!("  runtimes:\n    - id: \"{RUNTIME_ID}\"\n      config:\n        attack: {attack}\n{limits}")
}

/// One `GET /api/v1/status` on the control socket; its latency, or `None` when it failed.
fn status_latency(d: &NodeDir) -> Option<Duration> {
    let t = Instant::now();
    let mut s = std::os::unix::net::UnixStream::connect(d.data().join("internal.sock")).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    s.write_all(b"GET /api/v1/status HTTP/1.1\r\nHost: node\r\nConnection: close\r\n\r\n")
        .ok()?;
    let mut out = Vec::new();
    s.read_to_end(&mut out).ok()?;
    out.starts_with(b"HTTP/1.1 200").then(|| t.elapsed())
}

fn rss_kib(pid: i32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// Rewrites program header `idx` of `exe` (parsed as `elf`) into type `p_type` over `len` bytes
/// at file offset `at`.
fn set_phdr(
    exe: &mut [u8],
    elf: &goblin::elf::Elf<'_>,
    idx: usize,
    p_type: u32,
    at: u64,
    len: u64,
) {
    let p = elf.header.e_phoff as usize + idx * elf.header.e_phentsize as usize;
    exe[p..p + 4].copy_from_slice(&p_type.to_le_bytes());
    exe[p + 8..p + 16].copy_from_slice(&at.to_le_bytes());
    exe[p + 32..p + 40].copy_from_slice(&len.to_le_bytes());
    exe[p + 40..p + 48].copy_from_slice(&len.to_le_bytes());
}

/// Starts a node hosting the hostile runtime with `attack`, as nobody when run as root.
fn start(attack: &str, limits: &str) -> (NodeDir, NodeProc) {
    let mut d = NodeDir::new();
    d.build_hostile_bundle();
    d.write_config(&attack_config(attack, limits));
    d.give_to_nobody();
    let node = d.start();
    (d, node)
}

/// Polls status for `dur`, recording the worst latency; panics if the node dies or stops
/// answering.
fn watch_status(d: &NodeDir, node: &mut NodeProc, dur: Duration) -> Duration {
    let start = Instant::now();
    let mut worst = Duration::ZERO;
    while start.elapsed() < dur {
        assert_eq!(node.exited(), None, "node died: {}", node.log_text());
        let l = status_latency(d).unwrap_or_else(|| panic!("control status failed"));
        worst = worst.max(l);
        std::thread::sleep(Duration::from_millis(50));
    }
    worst
}

#[test]
fn a_second_pt_interp_naming_the_data_dir_is_refused_by_verify_and_the_launcher() {
    let d = NodeDir::new();
    // A real executable whose PT_NOTE became a second PT_INTERP naming the node's data dir.
    let mut exe = std::fs::read(hostile_bin()).expect("read");
    let data = d.data();
    let target = format!("{}\0", data.display());
    let at = exe.len() as u64;
    exe.extend_from_slice(target.as_bytes());
    let original = std::fs::read(hostile_bin()).expect("read");
    let elf = goblin::elf::Elf::parse(&original).expect("elf");
    let idx = elf
        .program_headers
        .iter()
        .position(|p| p.p_type == goblin::elf::program_header::PT_NOTE)
        .expect("a PT_NOTE");
    let pt_interp = goblin::elf::program_header::PT_INTERP;
    set_phdr(&mut exe, &elf, idx, pt_interp, at, target.len() as u64);
    let exe_path = d.path().join("crafted.elf");
    std::fs::write(&exe_path, &exe).expect("write");

    // The builder refuses it…
    let out = d.path().join("crafted.orc");
    let o = bundle_build(&exe_path, "x", RUNTIME_ID, &out);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("2 PT_INTERP"), "{}", text(&o));

    // A node configured with such a bundle (zipped by hand) refuses it, names why, never starts
    // it — no bwrap process names the data dir — and keeps running.
    let orc = d.bundle();
    let manifest = serde_json::json!({
        "name": "x", "id": RUNTIME_ID,
        "components": [{"kind": "ronl", "version": {"major": 0, "minor": 1}, "elf": {"executable": "runtime.elf"}}],
        "digests": {"runtime.elf": paratime_node::bundle::digest_hex(&exe)},
    });
    let mut z = zip::ZipWriter::new(std::fs::File::create(&orc).expect("create"));
    let o = zip::write::SimpleFileOptions::default();
    z.start_file("META-INF/MANIFEST.MF", o).expect("start");
    z.write_all(&serde_json::to_vec(&manifest).expect("json"))
        .expect("write");
    z.start_file("runtime.elf", o).expect("start");
    z.write_all(&exe).expect("write");
    z.finish().expect("finish");
    let o = run(&["bundle", "verify", orc.to_str().expect("utf8")]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("2 PT_INTERP"), "{}", text(&o));
    {
        let mut d2 = NodeDir::new();
        std::fs::create_dir_all(d2.bundle().parent().expect("dir")).expect("mkdir");
        std::fs::copy(&orc, d2.bundle()).expect("copy");
        d2.write_config("");
        d2.give_to_nobody();
        let mut node = d2.start();
        let start = Instant::now();
        let st = loop {
            assert_eq!(node.exited(), None, "node died: {}", node.log_text());
            if let Some(st) = d2.status() {
                break st;
            }
            assert!(start.elapsed() < LONG, "no status: {}", node.log_text());
            std::thread::sleep(Duration::from_millis(100));
        };
        let refused = &st["bundles_refused"][0]["error"];
        assert!(
            refused.as_str().is_some_and(|e| e.contains("2 PT_INTERP")),
            "{st}"
        );
        assert_eq!(st["runtimes"].as_object().map(|m| m.len()), Some(0), "{st}");
        let data = d2.data().display().to_string();
        for p in std::fs::read_dir("/proc").expect("proc").flatten() {
            let cmd = std::fs::read(p.path().join("cmdline")).unwrap_or_default();
            let args: Vec<String> = cmd
                .split(|b| *b == 0)
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect();
            let is_bwrap = args.first().is_some_and(|a| a.ends_with("bwrap"));
            assert!(
                !(is_bwrap && args.iter().any(|a| a.starts_with(&data))),
                "bwrap mounts the data dir: {args:?}"
            );
        }
        std::thread::sleep(Duration::from_secs(1));
        assert_eq!(node.exited(), None, "the node keeps running");
        assert!(status_latency(&d2).is_some());
    }

    // …and a bundle exploded by hand (as an older node would have), digests intact, is refused
    // by the launcher before any bwrap argument is built.
    let bundles = d.path().join("bundles");
    let manifest = serde_json::json!({
        "name": "x", "id": RUNTIME_ID,
        "components": [{"kind": "ronl", "version": {"major": 0, "minor": 1}, "elf": {"executable": "runtime.elf"}}],
        "digests": {"runtime.elf": paratime_node::bundle::digest_hex(&exe)},
    });
    let m: paratime_node::bundle::Manifest = serde_json::from_value(manifest).expect("manifest");
    let dir = bundles.join(m.hash_hex());
    std::fs::create_dir_all(dir.join("META-INF")).expect("mkdir");
    std::fs::write(
        dir.join("META-INF/MANIFEST.MF"),
        serde_json::to_vec(&m).expect("json"),
    )
    .expect("write");
    std::fs::write(dir.join("runtime.elf"), &exe).expect("write");
    let sock = d.path().join("launcher.sock");
    let mut child = std::process::Command::new(node_bin())
        .args([
            "sandbox-launcher",
            "--bundles-dir",
            bundles.to_str().expect("utf8"),
        ])
        .arg("--listen")
        .arg(&sock)
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("launcher");
    let client = paratime_node::host::launcher::Client::new(&sock);
    let start = Instant::now();
    while client.info().is_err() && start.elapsed() < LONG {
        std::thread::sleep(Duration::from_millis(50));
    }
    let (_a, b) = std::os::unix::net::UnixStream::pair().expect("pair");
    let (_r, w) = nix::unistd::pipe().expect("pipe");
    let e = client
        .spawn(&m.hash_hex(), Default::default(), b.into(), w)
        .expect_err("refused")
        .to_string();
    assert!(e.contains("2 PT_INTERP"), "{e}");
    // The launcher itself is unharmed.
    assert!(client.info().is_ok());
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn an_interpreter_that_is_a_directory_or_a_socket_is_never_mounted() {
    // Interpreters under the allowed directories pass the static checks: the launcher must still
    // refuse what is not a regular file.
    use paratime_node::bundle::elf::{dependencies, ElfError};
    let d = NodeDir::new();
    let dir_interp = "/usr/lib/x86_64-linux-gnu";
    assert!(
        is_root(),
        "this test creates a socket under /usr/lib: run it as root (CI does)"
    );
    let sock_path = format!("/usr/lib/paratime-test-{}.sock", std::process::id());
    let _listener = std::os::unix::net::UnixListener::bind(&sock_path).expect("bind");
    for (interp, kind) in [(dir_interp, "directory"), (sock_path.as_str(), "socket")] {
        let mut exe = std::fs::read("/bin/true").expect("read");
        let original = std::fs::read("/bin/true").expect("read");
        let elf = goblin::elf::Elf::parse(&original).expect("elf");
        // Point the one PT_INTERP at a new string at the end of the file.
        let at = exe.len() as u64;
        exe.extend_from_slice(interp.as_bytes());
        exe.push(0);
        let pt_interp = goblin::elf::program_header::PT_INTERP;
        let idx = elf
            .program_headers
            .iter()
            .position(|p| p.p_type == pt_interp)
            .expect("idx");
        set_phdr(&mut exe, &elf, idx, pt_interp, at, interp.len() as u64 + 1);
        let path = d.path().join(format!("{kind}.elf"));
        std::fs::write(&path, &exe).expect("write");
        match dependencies(&path) {
            Err(ElfError::NotRegular { kind: k, .. }) => assert_eq!(k, kind),
            other => panic!("{kind}: {other:?}"),
        }
    }
    let _ = std::fs::remove_file(&sock_path);
}

#[test]
fn a_gigabyte_line_without_newline_leaves_the_node_small() {
    let (d, mut node) = start("long_line", "");
    let st = d.wait_runtime(&mut node, "the line after the long one", LONG, |s| {
        s["committee"]["status"] == "ready"
            && s["sandbox"]["log"]["truncated"].as_u64().unwrap_or(0) >= 1
    });
    let rss = rss_kib(node.pid());
    eprintln!(
        "node RSS after a 1 GiB line: {rss} KiB; status: {}",
        st["sandbox"]["log"]
    );
    assert!(rss > 0 && rss < 64 * 1024, "node RSS {rss} KiB");
    // The node re-logged the cut line (bounded) and the one after it.
    let log = node.log_text();
    assert!(log.contains("after the long line"), "{log}");
    assert!(
        log.lines().all(|l| l.len() < 20_000),
        "a log line over the cap"
    );
    assert!(status_latency(&d).is_some());
}

#[test]
fn a_log_flood_is_rate_limited_and_counted() {
    let limits = "  log:\n    max_lines_per_second: 50\n    burst: 100\n    max_log_size: 65536\n";
    let (d, mut node) = start("flood", limits);
    d.wait_runtime(&mut node, "ready", LONG, |s| {
        s["committee"]["status"] == "ready"
    });
    let t0 = Instant::now();
    let worst = watch_status(&d, &mut node, Duration::from_secs(4));
    let secs = t0.elapsed().as_secs_f64() + 10.0; // start-up included, generously
    let log = node.log_text();
    let flood_lines = log.lines().filter(|l| l.contains("flood flood")).count();
    eprintln!(
        "log flood: {flood_lines} runtime lines re-logged in ~{secs:.0} s (rate 50/s, burst 100); worst status latency {worst:?}"
    );
    assert!(
        (flood_lines as f64) <= 100.0 + 50.0 * secs,
        "{flood_lines} lines: over the configured rate"
    );
    let st = d.runtime_status().expect("status");
    assert!(
        st["sandbox"]["log"]["dropped"].as_u64().unwrap_or(0) > 1000,
        "{st}"
    );
    // One warning per burst, not one per dropped line.
    let warnings = log.matches("dropping lines").count();
    assert!((1..10).contains(&warnings), "{warnings} warnings");
    // The tee file stays within runtime.log.max_log_size (one rotated copy).
    let tee = d.data().join(format!("runtimes/logs/{RUNTIME_ID}.log"));
    // (Read while the node rotates it: either file may be missing for an instant.)
    let size = |p: &std::path::Path| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
    let (cur, old) = (size(&tee), size(&tee.with_extension("log.1")));
    assert!(cur + old > 0, "no tee file at {}", tee.display());
    assert!(
        cur <= 65536 && old <= 65536,
        "tee files {cur} and {old} bytes"
    );
}

#[test]
fn runtime_fields_cannot_replace_the_nodes_or_inject_lines() {
    let (d, mut node) = start("inject", "");
    d.wait_runtime(&mut node, "ready", LONG, |s| {
        s["committee"]["status"] == "ready"
    });
    let start = Instant::now();
    while !node.log_text().contains("carriage return") && start.elapsed() < LONG {
        std::thread::sleep(Duration::from_millis(100));
    }
    let log = node.log_text();
    for line in log.lines() {
        let v: serde_json::Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("not one JSON line ({e}): {line}"));
        assert_ne!(v["ts"], "2000-01-01T00:00:00Z", "{line}");
        if let Some(id) = v["runtime_id"].as_str() {
            assert_eq!(id, RUNTIME_ID, "{line}");
            assert_ne!(v["module"], "cmd/node", "{line}");
        }
        if v["msg"].as_str().is_some_and(|m| m.contains("forged")) {
            assert_eq!(v["rt_ts"], "2000-01-01T00:00:00Z");
            assert_eq!(v["rt_message_id"], "5c3e6b0e2c9a4d53a8d1f0e3b7a2c402");
            assert!(v.get("message_id").is_none(), "{line}");
            assert!(v["module"]
                .as_str()
                .is_some_and(|m| m.starts_with("runtime/")));
            let msg = v["msg"].as_str().unwrap_or("");
            assert!(!msg.contains('\n') && !msg.contains('\u{1b}'), "{line}");
        }
    }
    assert!(log.contains("forged"), "{log}");
}

fn a_limit_kills_and_restarts(attack: &str, limits: &str, what: &str) {
    let (d, mut node) = start(attack, limits);
    d.wait_runtime(&mut node, "ready", LONG, |s| {
        s["committee"]["status"] == "ready"
    });
    let t0 = Instant::now();
    let mut worst = Duration::ZERO;
    let mut last = serde_json::Value::Null;
    while t0.elapsed() < LONG {
        worst = worst.max(watch_status(&d, &mut node, Duration::from_millis(200)));
        last = d.runtime_status().expect("status");
        if last["sandbox"]["limit_kills"].as_u64().unwrap_or(0) >= 1
            && last["sandbox"]["restart_count"].as_u64().unwrap_or(0) >= 1
        {
            break;
        }
    }
    eprintln!(
        "{attack}: killed after {:?}; worst status latency {worst:?}; {}",
        t0.elapsed(),
        last["sandbox"]
    );
    assert!(
        last["sandbox"]["limit_kills"].as_u64().unwrap_or(0) >= 1,
        "{last}"
    );
    let err = last["sandbox"]["last_error"].as_str().unwrap_or("");
    assert!(err.contains(what), "{err}");
    let log = node.log_text();
    assert!(
        log.contains("5c3e6b0e2c9a4d53a8d1f0e3b7a2c414"),
        "no limit MESSAGE_ID in the log"
    );
}

#[test]
fn a_memory_hog_is_killed_and_restarted() {
    a_limit_kills_and_restarts("memory", "  limits:\n    memory: 128mb\n", "memory");
}

#[test]
fn a_fork_bomb_is_killed_and_restarted() {
    a_limit_kills_and_restarts("fork_bomb", "  limits:\n    pids: 32\n", "pids");
}

#[test]
fn a_tmp_filler_is_bounded() {
    // bubblewrap >= 0.10 bounds /tmp itself (writes fail, the runtime lives on); older ones
    // leave it to the launcher's monitor, which kills the runtime.
    let version = std::process::Command::new("bwrap")
        .arg("--version")
        .output()
        .expect("bwrap");
    let v = String::from_utf8_lossy(&version.stdout).to_string();
    let has_size =
        paratime_node::host::bwrap::supports_size(v.split_whitespace().last().unwrap_or(""));
    if has_size {
        let (d, mut node) = start("tmp_fill", "  limits:\n    tmpfs_size: 16mb\n");
        d.wait_runtime(&mut node, "ready", LONG, |s| {
            s["committee"]["status"] == "ready"
        });
        watch_status(&d, &mut node, Duration::from_secs(3));
    } else {
        a_limit_kills_and_restarts(
            "tmp_fill",
            "  limits:\n    tmpfs_size: 16mb\n",
            "tmpfs_size",
        );
    }
}

#[test]
fn a_paratime_sees_only_its_own_descriptors() {
    let d = NodeDir::new();
    d.build_hostile_bundle();
    // Leak descriptors 10 and 251 (not close-on-exec) into the tool that starts the runtime.
    let leak = std::fs::File::open("/dev/null").expect("open");
    let raw = std::os::fd::AsRawFd::as_raw_fd(&leak);
    let mut cmd = std::process::Command::new(node_bin());
    cmd.args(["runtime", "exec", "--bundle"])
        .arg(d.bundle())
        .args(["--query", r#"{"method":"hostile.Fds","body":{}}"#]);
    // SAFETY: dup2 only, between fork and exec.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(&mut cmd, move || {
            for target in [10, 251] {
                if libc::dup2(raw, target) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
    let o = cmd.output().expect("exec");
    let v: serde_json::Value = serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", text(&o)));
    let fds = v["queries"][0]["ok"].clone();
    assert_eq!(fds, serde_json::json!([0, 1, 2, 3]), "{v}");
}
