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
