//! Runs the system tests with the binaries this build made: the Debian package of this build
//! installed into a booted systemd (tests/systemd/system-test.sh, systemd-nspawn) and the per-runtime cgroups under those
//! units on a cgroup v2 kernel (tests/systemd/vm-test.sh, QEMU); see the scripts for the checks.

/// Runs one of the system test scripts (as root); it passes when every check passed.
fn run_script(script: &str, needs: &str) {
    // Never skipped: without root it fails, naming what it needs.
    assert!(
        nix::unistd::geteuid().is_root(),
        "{script} needs root ({needs}): run the suite as root, as CI does"
    );
    let top = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let node = std::path::PathBuf::from(env!("CARGO_BIN_EXE_paratime-node"));
    let kv = node.parent().expect("target dir").join("paratime-kvstore");
    let hostile = node.parent().expect("target dir").join("paratime-hostile");
    // The nspawn test installs the Debian package made from this build's binaries.
    let deb = (script == "system-test.sh").then(|| package(top));
    let out = std::process::Command::new("bash")
        .arg(top.join("tests/systemd").join(script))
        .env("PARATIME_DEB", deb.unwrap_or_default())
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
    assert!(out.status.success(), "{script} failed:\n{text}");
    assert!(text.contains(" passed, 0 failed"), "{text}");
}

/// `scripts/deb.sh --debug --no-build`: the .deb of this build (cargo-deb, as a release is made).
fn package(top: &std::path::Path) -> std::path::PathBuf {
    let out = std::process::Command::new("bash")
        .arg(top.join("scripts/deb.sh"))
        .args(["--debug", "--no-build"])
        .current_dir(top)
        .output()
        .expect("run scripts/deb.sh");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "scripts/deb.sh failed:\n{text}");
    let deb = text
        .lines()
        .rev()
        .find(|l| l.trim_end().ends_with(".deb"))
        .unwrap_or_else(|| panic!("scripts/deb.sh named no .deb:\n{text}"));
    std::path::PathBuf::from(deb.trim())
}

#[test]
fn units_in_a_booted_systemd() {
    run_script("system-test.sh", "systemd-nspawn");
}

#[test]
fn runtime_cgroups_under_the_units_in_a_cgroup_v2_vm() {
    run_script("vm-test.sh", "chroot, QEMU with a 9p root");
}
