//! Runs the systemd system test (tests/systemd/system-test.sh) with the binaries this build made:
//! the shipped units in a booted systemd (systemd-nspawn), see that script for what it checks.

#[test]
fn units_in_a_booted_systemd() {
    // Never skipped: without root it fails, naming what it needs.
    assert!(
        nix::unistd::geteuid().is_root(),
        "the systemd system test needs root (systemd-nspawn): run the suite as root, as CI does"
    );
    let top = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let node = std::path::PathBuf::from(env!("CARGO_BIN_EXE_paratime-node"));
    let kv = node.parent().expect("target dir").join("paratime-kvstore");
    let hostile = node.parent().expect("target dir").join("paratime-hostile");
    let out = std::process::Command::new("bash")
        .arg(top.join("tests/systemd/system-test.sh"))
        .env("PARATIME_NODE_BIN", &node)
        .env("PARATIME_KVSTORE_BIN", &kv)
        .env("PARATIME_HOSTILE_BIN", &hostile)
        .output()
        .expect("run the system test script");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    println!("{text}");
    assert!(out.status.success(), "systemd system test failed:\n{text}");
    assert!(text.contains(" passed, 0 failed"), "{text}");
}
