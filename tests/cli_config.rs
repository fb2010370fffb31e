//! `config check` and start-up refusals, with the messages an operator sees.

mod common;
use common::*;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

fn check(yaml: &str) -> (i32, String) {
    let d = NodeDir::new();
    let p = d.path().join("etc/config.yml");
    std::fs::write(&p, yaml.replace("DIR", d.path().to_str().expect("utf8"))).expect("write");
    let o = run(&["config", "check", "--config", p.to_str().expect("utf8")]);
    (o.status.code().unwrap_or(-1), text(&o))
}

const GOOD: &str =
    "mode: client\ncommon:\n  data_dir: DIR/data\ngenesis:\n  file: DIR/etc/genesis.json\n";

#[test]
fn good_config_passes() {
    let (code, out) = check(GOOD);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains(": ok"), "{out}");
}

#[test]
fn unknown_key_is_named_with_its_path_and_line() {
    let (code, out) = check(
        "mode: client\ncommon:\n  data_dirr: DIR/data\ngenesis:\n  file: DIR/etc/genesis.json\n",
    );
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("config.yml:3: error: common.data_dirr: unknown key"),
        "{out}"
    );
    // The missing data_dir is reported too: all problems, not the first.
    assert!(
        out.contains("common.data_dir: data directory not configured"),
        "{out}"
    );
}

#[test]
fn leftover_placeholder_is_named_with_what_to_put_there() {
    let (code, out) = check(&format!(
        "{GOOD}consensus:\n  external_address: tcp://{{{{ external_address }}}}:26656\n"
    ));
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("config.yml:7: error: consensus.external_address: leftover template placeholder `{{ external_address }}`: replace it with this node's public IP address"),
        "{out}"
    );
}

#[test]
fn mode_rules() {
    let (code, out) = check(&format!(
        "{GOOD}registration:\n  entity_id: 'AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA='\n"
    ));
    assert_eq!(code, 1);
    assert!(
        out.contains("client node must not have entity configured"),
        "{out}"
    );
    let (code, out) = check(&GOOD.replace("mode: client", "mode: compute"));
    assert_eq!(code, 1);
    assert!(out.contains("at least one runtime must be configured when in compute, keymanager, or observer modes"), "{out}");
    assert!(
        out.contains("node has no entity configured but expects one"),
        "{out}"
    );
    let (code, out) = check(&GOOD.replace("mode: client", "mode: archive"));
    assert_eq!(code, 1);
    assert!(
        out.contains("mode: invalid value") || out.contains("mode `archive` is not supported"),
        "{out}"
    );
}

#[test]
fn unsupported_components_warn_or_fail_never_silently() {
    let (code, out) = check(&format!("{GOOD}ias:\n  proxy_addresses: ['x@127.0.0.1:1234']\nruntime:\n  sgx_loader: /node/bin/loader\n"));
    assert_eq!(code, 0, "warnings alone do not fail: {out}");
    assert!(
        out.contains("warning: ias.proxy_addresses: IAS is not used"),
        "{out}"
    );
    assert!(
        out.contains("warning: runtime.sgx_loader: SGX is not supported"),
        "{out}"
    );
    let (code, out) = check(&format!("{GOOD}runtime:\n  environment: sgx\n"));
    assert_eq!(code, 1);
    assert!(
        out.contains("runtime.environment: TEE environment `sgx` is not supported"),
        "{out}"
    );
}

#[test]
fn env_substitution_and_unset_variables() {
    let d = NodeDir::new();
    let p = d.path().join("etc/config.yml");
    std::fs::write(&p, "mode: client\ncommon:\n  data_dir: ${NODE_DIR}/data\n  log:\n    file: ${LOG_FILE_UNSET_FOR_TEST}\ngenesis:\n  file: ${NODE_DIR}/etc/genesis.json\n").expect("write");
    let o = std::process::Command::new(node_bin())
        .args(["config", "check", "--config", p.to_str().expect("utf8")])
        .env("NODE_DIR", d.path())
        .output()
        .expect("run");
    let out = text(&o);
    assert_eq!(o.status.code(), Some(1), "{out}");
    assert!(
        out.contains(
            "config.yml:5: error: environment variable `LOG_FILE_UNSET_FOR_TEST` is not set"
        ),
        "{out}"
    );
    assert!(!out.contains("genesis"), "NODE_DIR was substituted: {out}");
}

#[test]
fn private_key_with_wrong_mode_is_refused_at_start() {
    let d = NodeDir::new();
    d.build_bundle();
    d.write_config("");
    let o = run(&[
        "identity",
        "init",
        "--datadir",
        d.data().to_str().expect("utf8"),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    std::fs::set_permissions(
        d.data().join("identity.pem"),
        std::fs::Permissions::from_mode(0o644),
    )
    .expect("chmod");
    let mut node = d.start();
    assert_eq!(node.wait_exit(std::time::Duration::from_secs(30)), Some(1));
    let log = node.log_text();
    assert!(
        log.contains("invalid PEM file permissions 644 on") && log.contains("identity.pem"),
        "{log}"
    );
}

#[test]
fn data_dir_with_wrong_mode_is_refused() {
    let d = NodeDir::new();
    std::fs::create_dir(d.data()).expect("mkdir");
    std::fs::set_permissions(d.data(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let o = run(&[
        "identity",
        "init",
        "--datadir",
        d.data().to_str().expect("utf8"),
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        text(&o).contains("has invalid permissions: -rwxr-xr-x. Expected permissions: -rwx------"),
        "{}",
        text(&o)
    );
}

#[test]
fn identity_init_never_overwrites() {
    let d = NodeDir::new();
    let dd = d.data();
    let dd = dd.to_str().expect("utf8");
    assert!(run(&["identity", "init", "--datadir", dd]).status.success());
    let before = std::fs::read(d.data().join("identity.pem")).expect("read");
    let o = run(&["identity", "init", "--datadir", dd]);
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o).contains("key already exists"), "{}", text(&o));
    assert_eq!(
        std::fs::read(d.data().join("identity.pem")).expect("read"),
        before
    );
    let show = run(&["identity", "show", "--datadir", dd]);
    let v: serde_json::Value = serde_json::from_slice(&show.stdout).expect("json");
    for k in ["node", "p2p", "consensus"] {
        assert_eq!(v[k].as_str().map(str::len), Some(44), "{v}");
    }
}

#[test]
fn root_is_refused_without_the_unsafe_flag() {
    // The suite runs as root (scripts/test.sh, CI); without root this check cannot be made, and
    // a test that passes without making it would hide that.
    assert!(
        is_root(),
        "this test needs root: run the suite as root (bash scripts/test.sh)"
    );
    let d = NodeDir::new();
    d.build_bundle();
    let cfg = d.write_config("");
    let o = run(&["--config", cfg.to_str().expect("utf8")]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        text(&o).contains("running with elevated privileges not allowed"),
        "{}",
        text(&o)
    );
}

/// `config check` runs the node's own start-up checks on the config and the bundles it names:
/// for each of these configs the two refuse with the same message.
#[test]
fn config_check_and_start_agree() {
    let cases: [(&str, &str, Option<&str>); 5] = [
        (
            "unconfined without the flag",
            "  provisioner: unconfined\n",
            None,
        ),
        (
            "a runtime by id with a registry but no genesis document to name its bundle",
            "  runtimes:\n    - id: 0000000000000000000000000000000000000000000000000000000000000002\n      registries:\n        - http://127.0.0.1:9/\n",
            None,
        ),
        (
            "a registry with a scheme other than http(s)",
            "  registries:\n    - ftp://bundles.example.net/metadata/\n",
            None,
        ),
        (
            "a runtime by id without its bundle (oasis docs' hot-loading config)",
            "  runtimes:\n    - id: 0000000000000000000000000000000000000000000000000000000000000002\n",
            None,
        ),
        ("a bundle that is not a bundle", "", Some("not a zip archive")),
    ];
    for (what, extra, garbage) in cases {
        let mut d = NodeDir::new();
        d.build_bundle();
        if let Some(g) = garbage {
            std::fs::write(d.bundle(), g).expect("write");
        }
        let cfg = d.write_config(extra);
        let check = run(&["config", "check", "--config", cfg.to_str().expect("utf8")]);
        let out = text(&check);
        assert_eq!(check.status.code(), Some(1), "{what}: {out}");
        let message = out
            .lines()
            .find_map(|l| l.split_once(": error: ").map(|(_, m)| m.to_string()))
            .unwrap_or_else(|| panic!("{what}: no error line: {out}"));
        let message = message
            .strip_prefix("bundle refused (the node starts without it): ")
            .unwrap_or(&message)
            .to_string();
        d.give_to_nobody();
        let mut node = d.start();
        let log = if garbage.is_some() {
            // A refused bundle does not stop the node: it runs without it and says why.
            let start = std::time::Instant::now();
            while !node.log_text().contains("bundle refused")
                && start.elapsed() < std::time::Duration::from_secs(30)
            {
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
            node.log_text()
        } else {
            assert_eq!(
                node.wait_exit(std::time::Duration::from_secs(30)),
                Some(1),
                "{what}"
            );
            node.log_text()
        };
        assert!(
            log.contains(&message),
            "{what}: config check said {message:?}; the node:\n{log}"
        );
    }
}

#[test]
fn unconfined_needs_the_unsafe_flag() {
    let mut d = NodeDir::new();
    d.build_bundle();
    d.write_config("  provisioner: unconfined\n");
    // As root the node runs as nobody; otherwise as this (unprivileged) user.
    d.give_to_nobody();
    let mut node = d.start();
    assert_eq!(node.wait_exit(std::time::Duration::from_secs(30)), Some(1));
    assert!(
        node.log_text()
            .contains("unconfined provisioner requires use of unsafe debug flags"),
        "{}",
        node.log_text()
    );
}

#[test]
fn doctor_reports_each_check_and_names_the_fix() {
    let mut d = NodeDir::new();
    d.build_bundle();
    d.write_config("  sandbox_binary: /nonexistent/bwrap\n");
    d.give_to_nobody();
    let mut cmd = std::process::Command::new(node_bin());
    cmd.args([
        "doctor",
        "--config",
        d.path().join("etc/config.yml").to_str().expect("utf8"),
    ]);
    if d.unprivileged {
        use std::os::unix::process::CommandExt;
        cmd.uid(65534).gid(65534);
    }
    let o = cmd.output().expect("doctor");
    let out = text(&o);
    assert_eq!(o.status.code(), Some(1), "{out}");
    assert!(
        out.contains("FAIL bubblewrap: sandbox binary not found: /nonexistent/bwrap"),
        "{out}"
    );
    assert!(out.contains("OK   config:"), "{out}");
    assert!(out.contains("OK   Landlock: ABI"), "{out}");
    assert!(
        out.lines().all(|l| ["OK  ", "WARN", "FAIL", "SKIP", "    "]
            .iter()
            .any(|p| l.starts_with(p))),
        "one line per check: {out}"
    );

    // With bubblewrap in place the trial sandbox runs.
    d.write_config("");
    if d.unprivileged {
        d.give_to_nobody();
    }
    let o = cmd.output().expect("doctor");
    let out = text(&o);
    assert!(
        out.contains("OK   bubblewrap: /usr/bin/bwrap version"),
        "{out}"
    );
    assert!(
        out.contains("OK   trial sandbox: started and exited cleanly"),
        "{out}"
    );
}

#[test]
fn genesis_init_and_check() {
    let d = NodeDir::new();
    let bundle = d.build_bundle();
    let p = |x: &str| d.path().join(x).to_str().expect("utf8").to_string();
    assert!(run(&["identity", "init", "--datadir", &p("v")])
        .status
        .success());
    assert!(run(&["entity", "init", "--dir", &p("e")]).status.success());
    let o = run(&["entity", "init", "--dir", &p("e")]);
    assert_eq!(
        o.status.code(),
        Some(1),
        "an entity is never overwritten: {}",
        text(&o)
    );
    let o = run(&[
        "genesis",
        "init",
        "--output",
        &p("g.json"),
        "--validator-datadir",
        &p("v"),
        "--entity-dir",
        &p("e"),
        "--bundle",
        bundle.to_str().expect("utf8"),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let o = run(&["genesis", "check", &p("g.json")]);
    assert!(text(&o).contains("chain context"), "{}", text(&o));
    // A tampered genesis entity signature is refused.
    let g = std::fs::read_to_string(p("g.json")).expect("read");
    let key = "\"signature\": \"";
    let at = g.find(key).expect("inner signature") + key.len();
    let flipped = if &g[at..at + 1] == "A" { "B" } else { "A" };
    let g = format!("{}{flipped}{}", &g[..at], &g[at + 1..]);
    std::fs::write(p("bad.json"), g).expect("write");
    let o = run(&["genesis", "check", &p("bad.json")]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
}

/// 50,000 unknown keys: `config check` lists the first with their lines and counts the rest
/// (it took 9 s for 10,000 keys when each key's line was found by scanning the whole file).
#[test]
fn fifty_thousand_unknown_keys_are_checked_quickly() {
    let mut yaml = GOOD.to_string();
    for i in 0..50_000 {
        yaml.push_str(&format!("unknown_{i}: {i}\n"));
    }
    let started = std::time::Instant::now();
    let (code, out) = check(&yaml);
    eprintln!(
        "config check of 50,000 unknown keys: {:?}",
        started.elapsed()
    );
    assert_eq!(code, 1, "{}", &out[..out.len().min(2000)]);
    assert!(
        out.contains("config.yml:6: error: unknown_0: unknown key"),
        "{}",
        &out[..out.len().min(2000)]
    );
    assert!(out.contains("config.yml:105: error: unknown_99: unknown key"));
    assert!(
        !out.contains("unknown_100:"),
        "only the first 100 are listed"
    );
    assert!(
        out.contains("and 49900 more problems not listed (49900 errors, 0 warnings)"),
        "{}",
        &out[out.len().saturating_sub(2000)..]
    );
    assert!(
        out.len() < 50_000,
        "output stays small: {} bytes",
        out.len()
    );
}

/// A FIFO in place of the genesis file or the config file is named, not waited on.
#[test]
fn fifo_genesis_or_config_is_refused_by_name() {
    let d = NodeDir::new();
    let genesis = d.path().join("etc/genesis.json");
    let _ = std::fs::remove_file(&genesis);
    nix::unistd::mkfifo(&genesis, nix::sys::stat::Mode::from_bits_truncate(0o600)).expect("mkfifo");
    let p = d.path().join("etc/config.yml");
    std::fs::write(&p, GOOD.replace("DIR", d.path().to_str().expect("utf8"))).expect("write");
    let o = run(&["config", "check", "--config", p.to_str().expect("utf8")]);
    let out = text(&o);
    assert_eq!(o.status.code(), Some(1), "{out}");
    assert!(
        out.contains("genesis.json' is a FIFO, not a regular file"),
        "{out}"
    );
    std::fs::remove_file(&p).expect("rm");
    nix::unistd::mkfifo(&p, nix::sys::stat::Mode::from_bits_truncate(0o600)).expect("mkfifo");
    let o = run(&["config", "check", "--config", p.to_str().expect("utf8")]);
    let out = text(&o);
    assert_eq!(o.status.code(), Some(1), "{out}");
    assert!(
        out.contains("config.yml' is a FIFO, not a regular file"),
        "{out}"
    );
}

#[test]
fn localnet_refuses_more_load_than_the_client_node_serves_connections() {
    let o = std::process::Command::new(dev_bin())
        .args(["localnet", "--dir", "/nonexistent", "--load", "5000"])
        .output()
        .expect("run");
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains("5000 in flight needs more accounts than the client node's 128 control connections serve at once: at most 4624"),
        "{err}"
    );
    assert!(
        !std::path::Path::new("/nonexistent").exists(),
        "nothing was created"
    );
}

#[test]
fn a_broken_entity_descriptor_is_named_by_config_check_not_only_at_start() {
    let d = NodeDir::new();
    let entity = d.path().join("etc/entity.json");
    std::fs::write(&entity, r#"{"nodes": []}"#).expect("entity");
    let yaml = format!(
        "mode: validator\ncommon:\n  data_dir: DIR/data\ngenesis:\n  file: DIR/etc/genesis.json\nregistration:\n  entity: {}\n",
        entity.display()
    );
    let p = d.path().join("etc/config.yml");
    std::fs::write(&p, yaml.replace("DIR", d.path().to_str().expect("utf8"))).expect("write");
    let o = run(&["config", "check", "--config", p.to_str().expect("utf8")]);
    let out = text(&o);
    assert_eq!(o.status.code(), Some(1), "{out}");
    assert!(
        out.contains("error: registration.entity: entity descriptor '")
            && out.contains("': no `id`"),
        "{out}"
    );
}

#[test]
fn a_seed_the_node_cannot_dial_is_refused_by_config_check() {
    // A host name passes a shape check but the node dials IP literals only: config check says so
    // now, instead of the node failing at start.
    // RFC 8032's first test key: a valid Ed25519 public key.
    let key = "11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=";
    let (code, out) = check(&format!(
        "{GOOD}p2p:\n  seeds:\n    - \"{key}@seed.example.org:26656\"\n    - \"{key}@192.0.2.1:26656\"\n"
    ));
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains(&format!(
            "error: p2p.seeds[0]: malformed seed '{key}@seed.example.org:26656'"
        )) && out.contains("an IP literal"),
        "{out}"
    );
    assert!(!out.contains("p2p.seeds[1]"), "{out}");
}

/// The Oasis docs' node configs (../shared/oasis-configs/, as operators copy them), their
/// placeholders filled with local values: for each, `config check` and the node's start agree —
/// both accept (the node comes up), or both refuse with the same message.
#[test]
fn the_oasis_docs_configs_are_judged_alike_by_config_check_and_start() {
    let src = std::env::var_os("PARATIME_OASIS_CONFIGS")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/oasis-configs"));
    let mut files: Vec<PathBuf> = std::fs::read_dir(&src)
        .unwrap_or_else(|e| {
            panic!(
                "{}: {e}: this test needs the Oasis docs' configs beside the repository \
                 (../shared/oasis-configs, as in CI) or PARATIME_OASIS_CONFIGS=DIR",
                src.display()
            )
        })
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "yml"))
        .collect();
    files.sort();
    assert!(
        files.len() >= 5,
        "expected the docs' five configs in {}",
        src.display()
    );
    // A real p2p key for the seed address.
    let seed_dir = tempfile::tempdir().expect("tempdir");
    let sd_path = seed_dir.path().join("seed");
    let sd = sd_path.to_str().expect("utf8");
    let o = run(&["identity", "init", "--datadir", sd]);
    assert!(o.status.success(), "{}", text(&o));
    let ids: serde_json::Value =
        serde_json::from_slice(&run(&["identity", "show", "--datadir", sd]).stdout).expect("json");
    let seed = format!("{}@127.0.0.1:26656", ids["p2p"].as_str().expect("p2p"));
    let mut verdicts = Vec::new();
    for f in &files {
        let what = f.file_name().expect("name").to_string_lossy().into_owned();
        let mut d = NodeDir::new();
        d.build_bundle();
        let text_in = std::fs::read_to_string(f).expect("read");
        let filled = text_in
            .replace("/node/data", &d.data().display().to_string())
            .replace(
                "/node/etc/genesis.json",
                &d.path().join("etc/genesis.json").display().to_string(),
            )
            .replace("{{ external_address }}", "127.0.0.1")
            .replace("{{ external_ip }}", "127.0.0.1")
            .replace("{{ seed_node_address }}", &seed)
            .replace("{{ entity_id }}", ids["node"].as_str().expect("node"))
            .replace("{{ runtime_identifier }}", RUNTIME_ID)
            .replace("{{ runtime_orc_path }}", &d.bundle().display().to_string());
        assert!(
            !filled.contains("{{"),
            "{what}: a placeholder is left: {filled}"
        );
        let cfg = d.path().join("etc/config.yml");
        std::fs::write(&cfg, &filled).expect("config");
        let check = run(&["config", "check", "--config", cfg.to_str().expect("utf8")]);
        let out = text(&check);
        d.give_to_nobody();
        let mut node = d.start();
        let start = std::time::Instant::now();
        let up = loop {
            if node
                .log_text()
                .contains("node started, control API listening")
            {
                break true;
            }
            if node.exited().is_some() || start.elapsed() > std::time::Duration::from_secs(30) {
                break false;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        };
        let log = node.log_text();
        match check.status.code() {
            Some(0) => assert!(
                up,
                "{what}: config check accepts it, the node does not start:\n{out}\n--- node:\n{log}"
            ),
            Some(1) => {
                assert!(
                    !up,
                    "{what}: config check refuses it, the node starts:\n{out}"
                );
                assert_eq!(
                    node.wait_exit(std::time::Duration::from_secs(30)),
                    Some(1),
                    "{what}"
                );
                let log = node.log_text();
                for m in out
                    .lines()
                    .filter_map(|l| l.split_once(": error: ").map(|(_, m)| m))
                {
                    let m = m
                        .strip_prefix("bundle refused (the node starts without it): ")
                        .unwrap_or(m);
                    assert!(
                        log.contains(m),
                        "{what}: config check said {m:?}; the node:\n{log}"
                    );
                }
            }
            c => panic!("{what}: config check exited {c:?}: {out}"),
        }
        node.terminate();
        verdicts.push(format!(
            "{what}: {}",
            if up { "both accept" } else { "both refuse" }
        ));
    }
    eprintln!("{}", verdicts.join("\n"));
}

#[test]
fn unsafe_reset_removes_state_but_never_keys_bundles_or_logs_and_not_under_a_running_node() {
    let t = tempfile::tempdir().expect("tempdir");
    let d = t.path().join("data");
    let ds = d.to_str().expect("utf8");
    assert!(run(&["identity", "init", "--datadir", ds]).status.success());
    let rt = d.join("runtimes").join(RUNTIME_ID);
    for dir in [
        d.join("consensus/wal"),
        rt.clone(),
        d.join("runtimes/bundles/abc"),
        d.join("runtimes/logs"),
        d.join("runtimes/tmp/bundles"),
    ] {
        std::fs::create_dir_all(dir).expect("mkdir");
    }
    let files = [
        d.join("consensus.redb"),
        d.join("consensus/wal/consensus.wal"),
        d.join("deregistration-requested"),
        rt.join("mkvs_storage.redb.db"),
        d.join("runtimes/bundles/abc/runtime.elf"),
        d.join("runtimes/logs/x.log"),
    ];
    for f in &files {
        std::fs::write(f, "x").expect("write");
    }
    let reset = |extra: &[&str]| {
        let mut args = vec!["unsafe-reset", "--datadir", ds];
        args.extend(extra);
        run(&args)
    };
    // A dry run lists and removes nothing.
    let o = reset(&["-n"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("dry run, no modifications will be made to files"));
    assert!(text(&o).contains(&format!(
        "removing on-disk node state: {}",
        d.join("consensus.redb").display()
    )));
    assert!(files.iter().all(|f| f.exists()));
    // While the node holds the data dir's lock, nothing is touched.
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(d.join("node.lock"))
        .expect("lock file");
    let held = nix::fcntl::Flock::lock(lock, nix::fcntl::FlockArg::LockExclusiveNonblock)
        .map_err(|(_, e)| e)
        .expect("flock");
    let o = reset(&[]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        text(&o).contains("stop the node before resetting its state"),
        "{}",
        text(&o)
    );
    assert!(files.iter().all(|f| f.exists()));
    drop(held);
    let o = reset(&[]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("state reset complete"), "{}", text(&o));
    for gone in [
        d.join("consensus.redb"),
        d.join("consensus"),
        d.join("deregistration-requested"),
        d.join("runtimes/tmp"),
    ] {
        assert!(!gone.exists(), "{} kept", gone.display());
    }
    for kept in [
        d.join("identity.pem"),
        d.join("p2p.pem"),
        d.join("consensus.pem"),
        rt.join("mkvs_storage.redb.db"),
        d.join("runtimes/bundles/abc/runtime.elf"),
        d.join("runtimes/logs/x.log"),
    ] {
        assert!(kept.exists(), "{} removed", kept.display());
    }
    // The state trees go only when asked; the directory no longer looks like a node's (no
    // consensus state), so that takes --force.
    let o = reset(&["--preserve.mkvs_database=false"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        text(&o).contains("does not look like a paratime-node data directory"),
        "{}",
        text(&o)
    );
    let o = reset(&["--preserve.mkvs_database=false", "--force"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(!rt.join("mkvs_storage.redb.db").exists());
    assert!(d.join("identity.pem").exists());
}
