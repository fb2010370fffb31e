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

/// The node's top-level modules (`src/<name>/` or `src/<name>.rs`) and the ones each names
/// through `crate::` outside its unit tests.
fn module_graph() -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut modules = BTreeMap::new();
    for e in std::fs::read_dir(&src).expect("src") {
        let p = e.expect("entry").path();
        let name = p
            .file_stem()
            .and_then(|s| s.to_str())
            .expect("name")
            .to_string();
        if name == "bin" || name == "lib" || name == "main" {
            continue;
        }
        modules.insert(name, p);
    }
    let mut graph = BTreeMap::new();
    for (name, path) in &modules {
        let mut files = vec![path.clone()];
        let mut deps = BTreeSet::new();
        while let Some(f) = files.pop() {
            if f.is_dir() {
                for e in std::fs::read_dir(&f).expect("dir") {
                    files.push(e.expect("entry").path());
                }
                continue;
            }
            if f.extension().and_then(|x| x.to_str()) != Some("rs") {
                continue;
            }
            let text = std::fs::read_to_string(&f).expect("source");
            // Unit tests may reach anywhere; the module's own code may not.
            let code = text.split("#[cfg(test)]\nmod tests").next().unwrap_or("");
            let mut names: Vec<&str> = Vec::new();
            for part in code.split("crate::").skip(1) {
                if let Some(group) = part.strip_prefix('{') {
                    let inner = group.split('}').next().unwrap_or("");
                    names.extend(
                        inner
                            .split(',')
                            .map(|n| n.trim().split("::").next().unwrap_or("")),
                    );
                } else {
                    let end = part
                        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                        .unwrap_or(part.len());
                    names.push(&part[..end]);
                }
            }
            for n in names {
                if n != name && modules.contains_key(n) {
                    deps.insert(n.to_string());
                }
            }
        }
        graph.insert(name.clone(), deps);
    }
    graph
}

/// A cycle in `graph`, as a path that returns to its start.
fn find_cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        n: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(i) = path.iter().position(|p| p == n) {
            let mut cycle = path[i..].to_vec();
            cycle.push(n.to_string());
            return Some(cycle);
        }
        if done.contains(n) {
            return None;
        }
        path.push(n.to_string());
        for d in graph.get(n).into_iter().flatten() {
            if let Some(c) = visit(d, graph, path, done) {
                return Some(c);
            }
        }
        path.pop();
        done.insert(n.to_string());
        None
    }
    let mut done = BTreeSet::new();
    graph
        .keys()
        .find_map(|n| visit(n, graph, &mut Vec::new(), &mut done))
}

#[test]
fn the_node_modules_import_each_other_without_cycles() {
    let graph = module_graph();
    assert!(graph.len() > 10, "modules not found: {graph:?}");
    assert!(
        graph["node"].contains("worker"),
        "the scan finds no imports: {graph:?}"
    );
    if let Some(c) = find_cycle(&graph) {
        panic!("module cycle {} in {graph:#?}", c.join(" -> "));
    }
}

#[test]
fn the_cycle_check_finds_a_cycle() {
    let g: BTreeMap<String, BTreeSet<String>> = [("a", "b"), ("b", "c"), ("c", "a"), ("d", "a")]
        .into_iter()
        .map(|(k, v)| (k.to_string(), BTreeSet::from([v.to_string()])))
        .collect();
    let c = find_cycle(&g).expect("cycle");
    assert_eq!(c.first(), c.last());
    assert_eq!(c.len(), 4, "{c:?}");
}
