//! Hosting ParaTimes in real bubblewrap sandboxes: the node, the launcher, the supervisor, the
//! protocol's defences, and attacks from inside the sandbox.

mod common;
use common::*;
use std::time::Duration;

const LONG: Duration = Duration::from_secs(60);

fn fault_config(fault: &str, extra: &str) -> String {
    format!("  runtimes:\n    - id: \"{RUNTIME_ID}\"\n      config:\n        debug_fault: {fault}\n{extra}")
}

#[test]
fn node_hosts_the_paratime_in_a_sandbox_and_stops_cleanly() {
    let mut d = NodeDir::new();
    d.build_bundle();
    d.write_config("");
    d.give_to_nobody();
    let mut node = d.start();
    let st = d.wait_runtime(&mut node, "ready", LONG, |s| {
        s["committee"]["status"] == "ready"
    });
    assert_eq!(st["provisioner"], "sandbox");
    assert_eq!(st["committee"]["host"]["versions"][0]["minor"], 1);
    let ns = st["sandbox"]["network_namespace"]
        .as_str()
        .expect("netns")
        .to_string();
    assert_ne!(
        Some(ns.as_str()),
        st["sandbox"]["host_network_namespace"].as_str(),
        "the ParaTime has its own network namespace"
    );
    let pid = st["sandbox"]["pid"].as_i64().expect("pid") as i32;
    assert!(pid_alive(pid));

    // Identity, mode and data dir are as the operator expects.
    let full = d.status().expect("status");
    assert_eq!(full["mode"], "client");
    assert_eq!(full["identity"]["node"].as_str().map(str::len), Some(44));
    use std::os::unix::fs::MetadataExt;
    assert_eq!(
        std::fs::metadata(d.data()).expect("md").mode() & 0o777,
        0o700
    );
    assert_eq!(
        std::fs::metadata(d.data().join("identity.pem"))
            .expect("md")
            .mode()
            & 0o777,
        0o600
    );
    let o = run(&["control", "is-synced", "-a", &d.socket()]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));

    // Runtime output is re-logged with the runtime's identity (oasis-facts §9).
    let log = node.log_text();
    let line = log
        .lines()
        .find(|l| l.contains("kvstore configured"))
        .expect("runtime log line");
    let v: serde_json::Value = serde_json::from_str(line).expect("JSON log line");
    assert_eq!(v["module"], "runtime/kvstore");
    assert_eq!(v["runtime_id"], RUNTIME_ID);
    assert_eq!(v["runtime_name"], "kvstore");
    assert_eq!(v["component"], "ronl");
    assert_eq!(v["provisioner"], "sandbox");

    // A second node on the same data dir is refused.
    let mut second = d.start();
    assert_eq!(second.wait_exit(LONG), Some(1));
    assert!(
        second
            .log_text()
            .contains("is in use by another paratime-node process"),
        "{}",
        second.log_text()
    );

    node.terminate();
    assert_eq!(node.wait_exit(LONG), Some(0), "{}", node.log_text());
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        !pid_alive(pid),
        "SIGTERM to the node leaves no ParaTime process"
    );
    assert!(!d.data().join("internal.sock").exists());
}

#[test]
fn control_shutdown_stops_the_node() {
    let d = NodeDir::new();
    d.build_bundle();
    d.write_config("");
    let mut node = d.start();
    d.wait_runtime(&mut node, "ready", LONG, |s| {
        s["committee"]["status"] == "ready"
    });
    let o = run(&["control", "shutdown", "-a", &d.socket()]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(node.wait_exit(LONG), Some(0));
    // No node: RPC failure is exit 128, as oasis.
    let o = run(&["control", "status", "-a", &d.socket()]);
    assert_eq!(o.status.code(), Some(128));
}

#[test]
fn crashing_runtime_is_restarted_with_backoff() {
    let d = NodeDir::new();
    d.build_faulty_bundle();
    d.write_config(&fault_config("crash", ""));
    let mut node = d.start();
    let st = d.wait_runtime(&mut node, "two restarts", LONG, |s| {
        s["sandbox"]["restart_count"].as_u64() >= Some(2)
    });
    assert_eq!(
        st["committee"]["status"],
        "waiting for hosted runtime provision"
    );
    let err = st["sandbox"]["last_error"].as_str().unwrap_or_default();
    assert!(
        err.contains("exit code 3") || err.contains("connection"),
        "{err}"
    );
    assert!(node.log_text().contains("restarting runtime after backoff"));
}

#[test]
fn hanging_runtime_is_killed_by_the_ping() {
    let d = NodeDir::new();
    d.build_faulty_bundle();
    d.write_config(&fault_config(
        "hang",
        "  ping_interval: 500ms\n  ping_timeout: 500ms\n",
    ));
    let mut node = d.start();
    let st = d.wait_runtime(&mut node, "watchdog kill", LONG, |s| {
        s["sandbox"]["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("watchdog ping failed"))
    });
    assert!(st["sandbox"]["restart_count"].as_u64() >= Some(1));
    assert!(node
        .log_text()
        .contains("watchdog ping failed, terminating runtime"));
}

#[test]
fn garbage_and_oversized_frames_are_rejected_without_harming_the_node() {
    for (fault, want) in [
        ("garbage", "malformed message"),
        ("oversized", "exceeds the maximum frame size"),
    ] {
        let d = NodeDir::new();
        d.build_faulty_bundle();
        d.write_config(&fault_config(fault, ""));
        let mut node = d.start();
        let st = d.wait_runtime(&mut node, want, LONG, |s| {
            s["sandbox"]["last_error"]
                .as_str()
                .is_some_and(|e| e.contains(want))
        });
        assert_eq!(
            st["committee"]["status"],
            "waiting for hosted runtime provision"
        );
        // The node still answers.
        assert!(d.status().is_some());
        assert!(node.exited().is_none());
    }
}

#[test]
fn version_mismatch_is_refused() {
    let d = NodeDir::new();
    d.build_faulty_bundle();
    d.write_config(&fault_config("wrong_version", ""));
    let mut node = d.start();
    let st = d.wait_runtime(&mut node, "version mismatch", LONG, |s| {
        s["sandbox"]["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("version mismatch"))
    });
    assert_eq!(
        st["sandbox"]["last_error"],
        "version mismatch (runtime reported: 1.1.0 bundle: 0.1.0)"
    );
    assert_eq!(
        st["committee"]["status"],
        "waiting for hosted runtime provision"
    );
}

#[test]
fn missing_bubblewrap_is_named_at_start() {
    let d = NodeDir::new();
    d.build_bundle();
    d.write_config("  sandbox_binary: /nonexistent/bwrap\n");
    let mut node = d.start();
    let st = d.wait_runtime(&mut node, "sandbox error", LONG, |s| {
        s["sandbox"]["last_error"].is_string()
    });
    let err = st["sandbox"]["last_error"].as_str().unwrap_or_default();
    assert!(
        err.contains("sandbox binary not found: /nonexistent/bwrap"),
        "{err}"
    );
    assert!(node.log_text().contains("refusing to host ParaTimes"));
}

fn exec(d: &NodeDir, args: &[&str]) -> serde_json::Value {
    let b = d.bundle();
    let mut all = vec!["runtime", "exec", "--bundle", b.to_str().expect("utf8")];
    all.extend_from_slice(args);
    let o = run(&all);
    serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("runtime exec output is not JSON ({e}): {}", text(&o)))
}

/// `paratime-dev bench` starts its launcher from the `paratime-node` next to it (it once ran
/// itself, which has no `sandbox-launcher`, and failed at once).
#[test]
fn the_developer_bench_runs_and_prints_its_floors() {
    let d = NodeDir::new();
    let b = d.build_bundle();
    let o = std::process::Command::new(dev_bin())
        .args(["bench", "--iterations", "2", "--bundle"])
        .arg(&b)
        .output()
        .expect("paratime-dev bench");
    let out = text(&o);
    assert!(o.status.success(), "{out}");
    for line in [
        "provisioning (spawn -> handshake)",
        "RHP ping round trip",
        "bundle verify (unzip + SHA-512/256)",
    ] {
        assert!(out.contains(line), "missing '{line}': {out}");
    }
}

/// `bench-state` with no measured rounds had nothing to take percentiles of (it panicked), and
/// with an empty fill batch never finished filling: both are refused, naming the flag.
#[test]
fn the_state_bench_refuses_zero_rounds_and_an_empty_fill_batch() {
    for flag in ["--rounds", "--fill-batch"] {
        let o = std::process::Command::new(dev_bin())
            .args(["bench-state", "--keys", "10", "--small", "10", flag, "0"])
            .output()
            .expect("paratime-dev bench-state");
        let out = text(&o);
        assert_eq!(o.status.code(), Some(2), "{out}");
        assert!(
            out.contains(&format!("invalid value '0' for '{flag}")),
            "{out}"
        );
    }
}

#[test]
fn runtime_exec_runs_transactions_and_keeps_state() {
    let d = NodeDir::new();
    d.build_bundle();
    let state = d.path().join("state.cbor");
    let s = state.to_str().expect("utf8");
    let v = exec(
        &d,
        &[
            "--state",
            s,
            "--tx",
            r#"{"method":"kv.Put","body":{"key":"hello","value":"world"}}"#,
            "--query",
            r#"{"method":"kv.Get","body":{"key":"hello"}}"#,
        ],
    );
    assert_eq!(v["queries"][0]["ok"]["value"], "world", "{v}");
    let root = v["state_root"].as_str().expect("root").to_string();
    let v = exec(
        &d,
        &[
            "--state",
            s,
            "--query",
            r#"{"method":"kv.Get","body":{"key":"hello"}}"#,
            "--tx",
            r#"{"method":"kv.Delete","body":{"key":"hello"}}"#,
        ],
    );
    assert_eq!(v["transactions"][0]["ok"]["existed"], true, "{v}");
    assert_ne!(v["state_root"].as_str(), Some(root.as_str()));
    assert_eq!(
        v["queries"][0]["ok"]["value"],
        serde_json::Value::Null,
        "{v}"
    );
}

#[test]
fn sandbox_cannot_read_keys_reach_the_network_or_write_outside_tmp() {
    let d = NodeDir::new();
    d.build_faulty_bundle();
    assert!(run(&[
        "identity",
        "init",
        "--datadir",
        d.data().to_str().expect("utf8")
    ])
    .status
    .success());
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("listen");
    let addr = listener.local_addr().expect("addr").to_string();
    let q = |m: &str, k: &str, v: &str| format!(r#"{{"method":"{m}","body":{{"{k}":"{v}"}}}}"#);
    let key = d.data().join("identity.pem");
    let queries = [
        q("debug.ReadFile", "path", key.to_str().expect("utf8")),
        q("debug.ReadFile", "path", "/etc/passwd"),
        q("debug.Connect", "address", &addr),
        q("debug.WriteFile", "path", "/entrypoint"),
        q("debug.WriteFile", "path", "/escape"),
        q("debug.WriteFile", "path", "/tmp/scratch"),
    ];
    let mut args = vec!["--runtime-config", r#"{"debug_probe":true}"#];
    for x in &queries {
        args.push("--query");
        args.push(x);
    }
    let v = exec(&d, &args);
    let r = |i: usize| v["queries"][i]["ok"].clone();
    assert_eq!(r(0)["ok"], false, "identity.pem must be invisible: {v}");
    assert_eq!(r(1)["ok"], false, "host files are not bound: {v}");
    assert_eq!(
        r(2)["ok"],
        false,
        "no network beyond the sandbox's own loopback: {v}"
    );
    assert_eq!(r(3)["ok"], false, "the executable is read-only: {v}");
    assert_eq!(r(4)["ok"], false, "the root is read-only: {v}");
    assert_eq!(r(5)["ok"], true, "/tmp is a writable tmpfs: {v}");
    assert_ne!(
        v["network_namespace"].as_str(),
        std::fs::read_link("/proc/self/ns/net")
            .ok()
            .as_deref()
            .and_then(|p| p.to_str())
    );
}

/// Starts a standalone launcher on `bundles` and waits until it answers.
fn start_launcher(
    d: &NodeDir,
    bundles: &std::path::Path,
) -> (std::process::Child, paratime_node::host::launcher::Client) {
    let sock = d.path().join("launcher.sock");
    let child = std::process::Command::new(node_bin())
        .args([
            "sandbox-launcher",
            "--bundles-dir",
            bundles.to_str().expect("utf8"),
            "--listen",
            sock.to_str().expect("utf8"),
        ])
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("launcher");
    let client = paratime_node::host::launcher::Client::new(&sock);
    let start = std::time::Instant::now();
    while client.info().is_err() && start.elapsed() < LONG {
        std::thread::sleep(Duration::from_millis(50));
    }
    (child, client)
}

#[test]
fn launcher_refuses_bundles_outside_its_directory() {
    let d = NodeDir::new();
    let bundles = d.path().join("bundles");
    std::fs::create_dir(&bundles).expect("mkdir");
    // A "bundle" directory that is a symlink to somewhere else.
    let outside = d.path().join("outside");
    std::fs::create_dir(&outside).expect("mkdir");
    let fake = "ab".repeat(32);
    std::os::unix::fs::symlink(&outside, bundles.join(&fake)).expect("symlink");
    let (mut child, client) = start_launcher(&d, &bundles);
    let try_spawn = |name: &str| {
        let (_a, b) = std::os::unix::net::UnixStream::pair().expect("pair");
        let (_r, w) = nix::unistd::pipe().expect("pipe");
        client
            .spawn(name, Default::default(), b.into(), w)
            .expect_err("must be refused")
            .to_string()
    };
    assert!(try_spawn("../../../../usr/bin").contains("invalid bundle name"));
    assert!(try_spawn("/bin/sh").contains("invalid bundle name"));
    assert!(try_spawn(&"cd".repeat(32)).contains("is not installed"));
    let e = try_spawn(&fake);
    assert!(e.contains("resolves outside the bundles directory"), "{e}");
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn launcher_re_verifies_a_bundle_changed_after_it_was_started() {
    use paratime_node::bundle::Bundle;
    let d = NodeDir::new();
    let orc = d.build_bundle();
    let bundles = d.path().join("bundles");
    std::fs::create_dir(&bundles).expect("mkdir");
    let b = Bundle::open(&orc, u64::MAX).expect("open");
    let dir = b.explode(&bundles).expect("explode");
    let name = b.manifest.hash_hex();
    let (mut child, client) = start_launcher(&d, &bundles);
    let spawn = || {
        let (_a, b) = std::os::unix::net::UnixStream::pair().expect("pair");
        let (_r, w) = nix::unistd::pipe().expect("pipe");
        client.spawn(&name, Default::default(), b.into(), w)
    };
    let first = spawn().expect("a verified bundle starts");
    drop(first);
    // The launcher kills the sandbox once the connection is gone, asynchronously: until the
    // runtime has exited its executable is busy ("Text file busy"), so the write is retried.
    // Tamper with the exploded executable: the next start must notice, cache or not.
    use std::io::Write;
    let open = || {
        std::fs::OpenOptions::new()
            .append(true)
            .open(dir.join(paratime_node::bundle::EXECUTABLE_NAME))
    };
    let start = std::time::Instant::now();
    let mut f = loop {
        match open() {
            Err(e) if e.raw_os_error() == Some(libc::ETXTBSY) && start.elapsed() < LONG => {
                std::thread::sleep(Duration::from_millis(20))
            }
            other => break other.expect("open exe"),
        }
    };
    f.write_all(b"tampered").expect("tamper");
    drop(f);
    let e = spawn()
        .expect_err("a tampered bundle is refused")
        .to_string();
    assert!(e.contains("corrupted asset"), "{e}");
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn landlock_keeps_the_node_inside_its_data_dir() {
    let d = NodeDir::new();
    d.build_bundle();
    let cfg = d.write_config("");
    std::fs::create_dir(d.data()).expect("mkdir");
    std::fs::set_permissions(
        d.data(),
        std::os::unix::fs::PermissionsExt::from_mode(0o700),
    )
    .expect("chmod");
    let outside = d.path().join("outside.txt");
    let inside = d.data().join("inside.txt");
    let o = run(&[
        "--config",
        cfg.to_str().expect("utf8"),
        "confinement-probe",
        "--try-write",
        inside.to_str().expect("utf8"),
        "--try-write",
        outside.to_str().expect("utf8"),
        "--try-write",
        "/tmp/paratime-landlock-probe",
        "--try-exec",
        "/bin/true",
    ]);
    let v: serde_json::Value =
        serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&o)));
    assert_eq!(v["confinement"]["landlock"], "fully enforced", "{v}");
    assert_eq!(v["confinement"]["no_new_privs"], true);
    assert_eq!(
        v["writes"][inside.to_str().expect("utf8")]["ok"],
        true,
        "{v}"
    );
    assert_eq!(
        v["writes"][outside.to_str().expect("utf8")]["ok"],
        false,
        "{v}"
    );
    assert_eq!(
        v["writes"]["/tmp/paratime-landlock-probe"]["ok"], false,
        "{v}"
    );
    assert_eq!(
        v["exec"]["ok"], false,
        "nothing is executable once confined: {v}"
    );
    assert!(!outside.exists());

    // The confined node still hosts its ParaTime (the launcher was started before Landlock).
    let mut node = d.start();
    d.wait_runtime(&mut node, "ready", LONG, |s| {
        s["committee"]["status"] == "ready"
    });
    let st = d.status().expect("status");
    assert_eq!(st["confinement"]["landlock"], "fully enforced", "{st}");
}

#[test]
fn metrics_on_a_taken_port_stop_the_start_by_name_and_a_hosting_node_serves_them() {
    let mut d = NodeDir::new();
    d.build_bundle();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = taken.local_addr().expect("addr").to_string();
    d.write_config(&format!("metrics:\n  mode: pull\n  address: {addr}\n"));
    d.give_to_nobody();
    let mut node = d.start();
    let code = node.wait_exit(Duration::from_secs(30));
    let log = node.log_text();
    assert!(code.is_some_and(|c| c != 0), "exit {code:?}: {log}");
    assert!(
        log.contains(&format!("metrics.address {addr}: cannot listen")),
        "{log}"
    );

    drop(taken);
    let mut node = d.start();
    d.wait_runtime(&mut node, "ready", LONG, |s| {
        s["committee"]["status"] == "ready"
    });
    let (status, reply) = http_get(&addr, "/metrics").expect("GET /metrics");
    assert!(status.starts_with("HTTP/1.1 200"), "{status}");
    for line in [
        format!("paratime_runtime_ready{{runtime=\"{RUNTIME_ID}\"}} 1"),
        format!("paratime_sandbox_restarts_total{{runtime=\"{RUNTIME_ID}\"}} 0"),
        "paratime_node_info{version=".to_string(),
    ] {
        assert!(
            reply.lines().any(|l| l.starts_with(&line)),
            "no '{line}' in:\n{reply}"
        );
    }
    // Without a genesis document there is no consensus, p2p or registration to report.
    assert!(!reply.contains("cometbft_consensus_height"), "{reply}");
    assert!(reply.trim_end().ends_with("# EOF"), "{reply}");
    node.terminate();
}
