//! The layering holds: the state crate stays deterministic (no async runtime, store, network or
//! engine in its dependency closure), only the bft crate names Malachite, and the node's p2p and
//! storage modules never import a consensus engine.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// package name -> dependency names, from Cargo.lock.
fn lock_graph() -> BTreeMap<String, Vec<String>> {
    let text = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.lock"))
        .expect("Cargo.lock");
    let mut graph: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for pkg in text.split("[[package]]").skip(1) {
        let name = pkg
            .lines()
            .find_map(|l| l.strip_prefix("name = \""))
            .and_then(|l| l.strip_suffix('"'))
            .expect("package name")
            .to_string();
        let deps = match pkg.split_once("dependencies = [") {
            Some((_, rest)) => rest
                .split(']')
                .next()
                .unwrap_or("")
                .split(',')
                .filter_map(|d| d.trim().trim_matches('"').split(' ').next())
                .filter(|d| !d.is_empty())
                .map(str::to_string)
                .collect(),
            None => Vec::new(),
        };
        graph.entry(name).or_default().extend(deps);
    }
    graph
}

fn closure(graph: &BTreeMap<String, Vec<String>>, root: &str) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    let mut todo = vec![root.to_string()];
    while let Some(n) = todo.pop() {
        if seen.insert(n.clone()) {
            todo.extend(graph.get(&n).cloned().unwrap_or_default());
        }
    }
    seen
}

#[test]
fn the_state_crate_has_no_runtime_store_network_or_engine() {
    let graph = lock_graph();
    let deps = closure(&graph, "paratime-state");
    assert!(
        deps.len() > 5,
        "paratime-state not found in Cargo.lock: {deps:?}"
    );
    let forbidden = [
        "tokio",
        "redb",
        "mio",
        "libp2p",
        "arc-malachitebft",
        "paratime-node",
        "paratime-bft",
    ];
    let bad: Vec<&String> = deps
        .iter()
        .filter(|d| forbidden.iter().any(|b| d.starts_with(b)))
        .collect();
    assert!(
        bad.is_empty(),
        "paratime-state depends (transitively) on {bad:?}"
    );
}

#[test]
fn only_the_bft_crate_names_malachite_and_p2p_and_storage_never_import_an_engine() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let graph = lock_graph();
    let direct: Vec<&String> = graph
        .iter()
        .filter(|(_, deps)| deps.iter().any(|d| d == "arc-malachitebft-app-channel"))
        .map(|(n, _)| n)
        .collect();
    assert_eq!(
        direct,
        vec!["paratime-bft"],
        "who depends on Malachite directly"
    );
    let mut files = Vec::new();
    for dir in ["src/p2p", "src/storage", "state/src"] {
        for e in std::fs::read_dir(root.join(dir)).expect("dir") {
            files.push(e.expect("entry").path());
        }
    }
    for f in files {
        let text = std::fs::read_to_string(&f).expect("source");
        for bad in ["consensus::engine", "paratime_bft", "malachitebft"] {
            assert!(!text.contains(bad), "{} imports {bad}", f.display());
        }
    }
}
