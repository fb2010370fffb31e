//! The documentation agrees with the code: the Grafana dashboard queries only metrics that
//! docs/metrics.md lists (the Prometheus test in tests/network.rs checks that a node serves each
//! of those, and that a real Prometheus parses every dashboard query).

use std::collections::BTreeSet;
use std::path::Path;

fn top() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Metric names in docs/metrics.md's tables.
fn documented() -> BTreeSet<String> {
    let doc = std::fs::read_to_string(top().join("docs/metrics.md")).expect("docs/metrics.md");
    doc.lines()
        .filter_map(|l| l.strip_prefix("| `"))
        .filter_map(|l| l.split('`').next())
        .map(str::to_string)
        .collect()
}

#[test]
fn the_dashboard_queries_only_documented_metrics() {
    let docs = documented();
    let dash: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(top().join("docs/grafana/paratime-node.json"))
            .expect("docs/grafana/paratime-node.json"),
    )
    .expect("the dashboard is JSON");
    let mut used = BTreeSet::new();
    for p in dash["panels"].as_array().expect("panels") {
        for t in p["targets"].as_array().expect("targets") {
            let expr = t["expr"].as_str().expect("expr");
            for token in expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
                if ["oasis_", "paratime_", "cometbft_"]
                    .iter()
                    .any(|p| token.starts_with(p))
                {
                    let base = ["_bucket", "_sum", "_count"]
                        .iter()
                        .find_map(|s| token.strip_suffix(s))
                        .filter(|b| docs.contains(*b))
                        .unwrap_or(token);
                    used.insert(base.to_string());
                }
            }
        }
    }
    assert!(used.len() > 20, "the dashboard uses {} metrics", used.len());
    let unknown: Vec<&String> = used.iter().filter(|n| !docs.contains(*n)).collect();
    assert!(
        unknown.is_empty(),
        "the dashboard queries metrics docs/metrics.md does not list: {unknown:?}"
    );
}

/// Files under `dir`, relative, sorted.
fn files(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                todo.push(p);
            } else {
                out.push(
                    p.strip_prefix(dir)
                        .expect("under dir")
                        .display()
                        .to_string(),
                );
            }
        }
    }
    out.sort();
    out
}

#[test]
fn man_pages_completions_and_the_commands_reference_match_the_command_line() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_paratime-dev"))
        .args(["gen-docs", "--out"])
        .arg(tmp.path())
        .output()
        .expect("run paratime-dev gen-docs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let fix = "regenerate them with `cargo run --bin paratime-dev -- gen-docs --out .` and commit";
    for dir in ["dist/man", "dist/completions"] {
        let want = files(&tmp.path().join(dir));
        let have = files(&top().join(dir));
        assert_eq!(
            have, want,
            "{dir}: committed files differ from the generated ones: {fix}"
        );
        assert!(!want.is_empty(), "{dir}: nothing generated");
    }
    for f in files(&tmp.path().join("dist"))
        .into_iter()
        .map(|f| format!("dist/{f}"))
        .chain(["docs/commands.md".to_string()])
    {
        let want = std::fs::read(tmp.path().join(&f)).expect("generated");
        let have = std::fs::read(top().join(&f)).unwrap_or_default();
        assert!(have == want, "{f} is out of date: {fix}");
    }
    // The pages an operator reaches first exist.
    for page in [
        "paratime-node.1",
        "paratime-node-control-status.1",
        "paratime-node-config-check.1",
    ] {
        assert!(top().join("dist/man").join(page).exists(), "no {page}");
    }
}

#[test]
fn the_paratime_guide_shows_the_example_that_builds_and_runs_in_the_sandbox() {
    let guide = std::fs::read_to_string(top().join("docs/writing-a-paratime.md")).expect("guide");
    let example = std::fs::read_to_string(top().join("sdk/examples/counter.rs")).expect("example");
    let shown = guide
        .split("```rust\n")
        .nth(1)
        .and_then(|r| r.split("\n```").next())
        .expect("a rust block in the guide");
    assert_eq!(
        shown.trim_end(),
        example.trim_end(),
        "docs/writing-a-paratime.md must show sdk/examples/counter.rs as it is"
    );
    // `cargo test` (and nextest) build the workspace's examples beside the test binaries.
    let exe = std::env::current_exe().expect("test binary");
    let counter = exe
        .parent()
        .and_then(Path::parent)
        .map(|d| d.join("examples/counter"))
        .expect("target dir");
    assert!(
        counter.exists(),
        "{} missing: cargo build -p paratime-sdk --example counter",
        counter.display()
    );
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::set_permissions(
        dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .expect("chmod");
    let bundle = dir.path().join("counter.orc");
    let node = env!("CARGO_BIN_EXE_paratime-node");
    let o = std::process::Command::new(node)
        .args(["bundle", "build", "--executable"])
        .arg(&counter)
        .args(["--name", "counter", "--runtime-id"])
        .arg("00000000000000000000000000000000000000000000000000000000000000c0")
        .args(["--version", "0.1.0", "--output"])
        .arg(&bundle)
        .output()
        .expect("bundle build");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    std::fs::set_permissions(&bundle, std::os::unix::fs::PermissionsExt::from_mode(0o644))
        .expect("chmod");
    let mut cmd = std::process::Command::new(node);
    if nix::unistd::geteuid().is_root() {
        // The node refuses root; run it as nobody, as an operator would run it unprivileged.
        std::os::unix::process::CommandExt::uid(&mut cmd, 65534);
        std::os::unix::process::CommandExt::gid(&mut cmd, 65534);
    }
    let o = cmd
        .args(["runtime", "exec", "--bundle"])
        .arg(&bundle)
        .args(["--tx", r#"{"method":"counter.Add","body":{"by":5}}"#])
        .args(["--tx", r#"{"method":"counter.Add","body":{"by":0}}"#])
        .args(["--tx", r#"{"method":"counter.Add","body":{"by":37}}"#])
        .args(["--query", r#"{"method":"counter.Get","body":{}}"#])
        .output()
        .expect("runtime exec");
    let out: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap_or_else(|e| {
        panic!(
            "runtime exec: {e}: {}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )
    });
    assert_eq!(out["queries"][0]["ok"]["value"], 42, "{out:#}");
    assert_eq!(out["transactions"][1]["error"]["stage"], "check", "{out:#}");
}

#[test]
fn every_relative_link_in_the_docs_resolves() {
    let mut pages = vec![top().join("README.md")];
    pages.extend(
        std::fs::read_dir(top().join("docs"))
            .expect("docs/")
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "md")),
    );
    let mut broken = Vec::new();
    for page in &pages {
        let text = std::fs::read_to_string(page).expect("page");
        for link in text.split("](").skip(1).filter_map(|r| r.split(')').next()) {
            let target = link.split('#').next().unwrap_or_default();
            if target.is_empty() || target.contains("://") || target.contains(' ') {
                continue;
            }
            let dir = page.parent().expect("dir");
            if !dir.join(target).exists() {
                broken.push(format!("{}: {link}", page.display()));
            }
        }
    }
    assert!(pages.len() >= 8, "{pages:?}");
    assert!(broken.is_empty(), "links to nothing: {broken:#?}");
}
