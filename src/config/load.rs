//! Reading config.yml: environment substitution, placeholder detection, strict parsing.

use super::{validate, Config, ConfigError, Problem, Severity};
use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

/// A successfully loaded config and the warnings found on the way.
#[derive(Debug)]
pub struct Loaded {
    /// The config file path.
    pub file: PathBuf,
    /// The parsed and validated config (`common.data_dir` made absolute).
    pub config: Config,
    /// Warnings (unsupported components configured, …).
    pub warnings: Vec<Problem>,
    /// The values the node runs with, parsed once.
    pub settings: super::Settings,
}

/// What the docs template's placeholders stand for.
fn placeholder_hint(name: &str) -> &'static str {
    match name {
        "external_address" => "this node's public IP address, e.g. 203.0.113.5",
        "seed_node_address" | "seed_address" => {
            "a seed node, `PUBKEY@IP:PORT`, where PUBKEY is the base64 key of its p2p.pem"
        }
        "entity_id" => "your entity's public key in base64 (the `id` field of entity.json)",
        "runtime_id" | "paratime_id" => "the ParaTime's runtime ID, 64 hex characters",
        "runtime_orc_path" | "orc_path" | "bundle_path" => "the path of the ParaTime's .orc bundle",
        "sgx_loader" | "sgx_runtime_loader" => {
            "nothing: SGX is not supported by paratime-node, remove the key"
        }
        "node_dir" | "data_dir" => "an absolute path, e.g. /node/data",
        _ => "the value the template asks for",
    }
}

/// Replaces `${VAR}` and `${VAR:-default}` with the environment's values. Unset variables without
/// a default are reported with their line.
pub fn substitute_env(text: &str, get: impl Fn(&str) -> Option<String>) -> (String, Vec<Problem>) {
    let mut out = String::with_capacity(text.len());
    let mut problems = Vec::new();
    let mut rest = text;
    let mut line = 1;
    while let Some(start) = rest.find("${") {
        let (before, after) = rest.split_at(start);
        line += before.matches('\n').count();
        out.push_str(before);
        let Some(end) = after.find('}') else {
            out.push_str(after);
            rest = "";
            break;
        };
        let inner = &after[2..end];
        let (name, default) = match inner.split_once(":-") {
            Some((n, d)) => (n, Some(d)),
            None => (inner, None),
        };
        let valid = !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        match (valid, get(name), default) {
            (true, Some(v), _) => out.push_str(&v),
            (true, None, Some(d)) => out.push_str(d),
            (true, None, None) => {
                problems.push(
                    Problem::error(
                        "",
                        format!("environment variable `{name}` is not set (referenced as `${{{name}}}`); export it or use `${{{name}:-default}}`"),
                    )
                    .at_line(Some(line)),
                );
            }
            (false, ..) => out.push_str(&after[..=end]),
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    (out, problems)
}

/// Deeper keys are attributed to their ancestor at this depth (the YAML parser refuses such
/// nesting anyway); it bounds the cost of spelling out a path.
const MAX_DEPTH: usize = 256;

/// Where every key of the file sits: one node per distinct key path, linked to its parent, and
/// the innermost key of every line, from indentation. Building it is linear in the file and
/// looking a path up costs its number of segments, so a file of 50,000 keys, or keys nested
/// deeply, or keys megabytes long, is indexed in one pass (paths are spelled out only for the
/// problems reported).
struct KeyIndex<'a> {
    /// Parent and key of each node.
    nodes: Vec<(Option<usize>, &'a str)>,
    /// First line (1-based) of each node.
    first_line: Vec<usize>,
    /// Node by parent and key.
    children: HashMap<(Option<usize>, &'a str), usize>,
    /// The innermost key of each line (None: top level).
    line_node: Vec<Option<usize>>,
}

impl<'a> KeyIndex<'a> {
    fn new(text: &'a str) -> Self {
        let mut ix = KeyIndex {
            nodes: Vec::new(),
            first_line: Vec::new(),
            children: HashMap::new(),
            line_node: Vec::new(),
        };
        let mut stack: Vec<(usize, usize)> = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let trimmed = line.trim_start();
            let indent = line.len() - trimmed.len();
            if trimmed.is_empty() || trimmed.starts_with('#') {
                ix.line_node.push(stack.last().map(|&(_, n)| n));
                continue;
            }
            let item = trimmed.strip_prefix("- ");
            let body = item.unwrap_or(trimmed);
            while stack
                .last()
                .is_some_and(|(i, _)| *i >= indent && item.is_none() || *i > indent)
            {
                stack.pop();
            }
            let key = body
                .split_once(':')
                .map(|(k, _)| k.trim())
                .filter(|k| !k.is_empty() && !k.contains(['{', '"', ' ', '\'']));
            if let Some(k) = key.filter(|_| stack.len() < MAX_DEPTH) {
                let parent = stack.last().map(|&(_, n)| n);
                let next = ix.nodes.len();
                let node = *ix.children.entry((parent, k)).or_insert(next);
                if node == next {
                    ix.nodes.push((parent, k));
                    ix.first_line.push(i + 1);
                }
                stack.push((indent + if item.is_some() { 2 } else { 0 }, node));
            }
            ix.line_node.push(stack.last().map(|&(_, n)| n));
        }
        ix
    }

    /// The dotted key path of line `n` (1-based), e.g. `consensus.external_address`.
    fn path_of_line(&self, n: usize) -> String {
        let mut keys = Vec::new();
        let mut node = self.line_node.get(n - 1).copied().flatten();
        while let Some(i) = node {
            keys.push(self.nodes[i].1);
            node = self.nodes[i].0;
        }
        keys.reverse();
        let len = keys
            .iter()
            .map(|k| k.len() + 1)
            .sum::<usize>()
            .saturating_sub(1);
        if len <= 120 {
            return keys.join(".");
        }
        // Only the start of a long path is copied: every line under a megabyte-long key names
        // that key, and copying it whole for each would be quadratic.
        let mut out = String::new();
        for k in keys {
            if !out.is_empty() {
                out.push('.');
            }
            let room = 80usize.saturating_sub(out.len());
            let mut cut = room.min(k.len());
            while !k.is_char_boundary(cut) {
                cut -= 1;
            }
            out.push_str(&k[..cut]);
            if out.len() >= 80 || cut < k.len() {
                break;
            }
        }
        format!("{out}… ({len} bytes)")
    }

    /// The first line of a dotted key path. Keys may themselves contain dots, so each split is
    /// tried; the number of attempts is bounded.
    fn line_of(&self, path: &str) -> Option<usize> {
        fn find(
            ix: &KeyIndex<'_>,
            parent: Option<usize>,
            rest: &str,
            budget: &mut usize,
        ) -> Option<usize> {
            let ends = rest.match_indices('.').map(|(i, _)| i).chain([rest.len()]);
            for end in ends {
                *budget = budget.checked_sub(1)?;
                if let Some(&n) = ix.children.get(&(parent, &rest[..end])) {
                    if end == rest.len() {
                        return Some(n);
                    }
                    if let Some(found) = find(ix, Some(n), &rest[end + 1..], budget) {
                        return Some(found);
                    }
                }
            }
            None
        }
        let mut budget = 512;
        find(self, None, path, &mut budget).map(|n| self.first_line[n])
    }
}

/// Finds `{{ name }}` placeholders, reports each, and replaces them with a plain scalar so the
/// rest of the file can still be checked.
fn replace_placeholders(text: &str) -> (String, Vec<Problem>, BTreeSet<usize>) {
    let index = KeyIndex::new(text);
    let mut out = String::with_capacity(text.len());
    let mut problems = Vec::new();
    let mut lines = BTreeSet::new();
    for (i, line) in text.split_inclusive('\n').enumerate() {
        let mut rest = line;
        while let Some(start) = rest.find("{{") {
            let Some(len) = rest[start..].find("}}") else {
                break;
            };
            let name = rest[start + 2..start + len].trim();
            out.push_str(&rest[..start]);
            out.push_str("PLACEHOLDER");
            problems.push(
                Problem::error(
                    index.path_of_line(i + 1),
                    format!(
                        "leftover template placeholder `{{{{ {name} }}}}`: replace it with {}",
                        placeholder_hint(name)
                    ),
                )
                .at_line(Some(i + 1)),
            );
            lines.insert(i + 1);
            rest = &rest[start + len + 2..];
        }
        out.push_str(rest);
    }
    (out, problems, lines)
}

/// Blanks out line `n` (1-based) when it holds a value of its own, so parsing can go on.
fn blank_line(text: &str, n: usize) -> Option<String> {
    let mut out = String::with_capacity(text.len());
    let mut done = false;
    for (i, line) in text.split_inclusive('\n').enumerate() {
        if i + 1 == n {
            let t = line.trim();
            let has_value =
                t.starts_with("- ") || t.split_once(':').is_some_and(|(_, v)| !v.trim().is_empty());
            if !has_value {
                return None;
            }
            out.push_str(if line.ends_with('\n') { "\n" } else { "" });
            done = true;
        } else {
            out.push_str(line);
        }
    }
    done.then_some(out)
}

fn parse(
    text: &str,
    index: &KeyIndex<'_>,
    placeholder_lines: &BTreeSet<usize>,
) -> (Option<Config>, Vec<Problem>) {
    let mut problems = Vec::new();
    if text.trim().is_empty() {
        return (Some(Config::default()), problems);
    }
    let mut text = text.to_string();
    // Each round reports one type error and blanks its line, so all of them are listed.
    for _ in 0..32 {
        let mut unknown = Vec::new();
        let de = serde_yaml_ng::Deserializer::from_str(&text);
        let mut on_unknown = |path: serde_ignored::Path<'_>| unknown.push(path.to_string());
        let ignored = serde_ignored::Deserializer::new(de, &mut on_unknown);
        let result: Result<Config, _> = serde_path_to_error::deserialize(ignored);
        match result {
            Ok(cfg) => {
                for key in unknown {
                    let line = index.line_of(&key);
                    problems.push(Problem::error(key, "unknown key (check its spelling and section against the oasis-node config reference)").at_line(line));
                }
                return (Some(cfg), problems);
            }
            Err(e) => {
                let line = e.inner().location().map(|l| l.line());
                if !line.is_some_and(|l| placeholder_lines.contains(&l)) {
                    let path = e.path().to_string();
                    let key = if path == "." { String::new() } else { path };
                    let msg = e
                        .inner()
                        .to_string()
                        .replace("unknown variant", "invalid value")
                        .replace("PLACEHOLDER", "placeholder");
                    problems.push(Problem::error(key, msg).at_line(line));
                }
                match line.and_then(|l| blank_line(&text, l)) {
                    Some(t) => text = t,
                    None => return (None, problems),
                }
            }
        }
    }
    (None, problems)
}

/// Parses a size such as `20mb`, `1GB`, `512KiB` or `1048576` into bytes.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num.parse().map_err(|_| {
        format!("invalid size '{s}': expected a number with an optional unit, e.g. 20mb")
    })?;
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" => 1_000,
        "kib" => 1 << 10,
        "m" | "mb" => 1_000_000,
        "mib" => 1 << 20,
        "g" | "gb" => 1_000_000_000,
        "gib" => 1 << 30,
        other => {
            return Err(format!(
                "invalid size '{s}': unknown unit '{other}' (use b, kb, mb, gb, kib, mib or gib)"
            ))
        }
    };
    n.checked_mul(mult)
        .ok_or_else(|| format!("invalid size '{s}': too large"))
}

/// Loads, checks and validates a config file. Returns every problem found when any is an error.
pub fn load(file: &Path) -> Result<Loaded, ConfigError> {
    let fail = |problems| ConfigError {
        file: file.to_path_buf(),
        problems,
    };
    use crate::system::files;
    let raw = files::read_bounded_to_string(file, files::CONFIG_LIMIT).map_err(|e| {
        fail(vec![Problem::error(
            "",
            format!("cannot read the file: {e}"),
        )])
    })?;
    let (text, mut problems) = substitute_env(&raw, |k| std::env::var(k).ok());
    let (text, placeholders, lines) = replace_placeholders(&text);
    problems.extend(placeholders);
    let index = KeyIndex::new(&text);
    let (config, parse_problems) = parse(&text, &index, &lines);
    problems.extend(parse_problems);
    let mut config = match config {
        Some(c) => c,
        None => {
            super::cap_problems(&mut problems);
            return Err(fail(problems));
        }
    };
    let (found, parsed) = validate::validate(&config);
    for mut p in found {
        // A placeholder's stand-in value is already reported.
        if p.message.contains("PLACEHOLDER") {
            continue;
        }
        if p.line.is_none() && !p.key.is_empty() {
            let base = p.key.split('[').next().unwrap_or_default();
            p.line = index.line_of(base);
        }
        problems.push(p);
    }
    if !config.common.data_dir.is_empty() {
        let dd = Path::new(&config.common.data_dir);
        if dd.is_relative() {
            if let Ok(cwd) = std::env::current_dir() {
                config.common.data_dir = cwd.join(dd).to_string_lossy().into_owned();
            }
        }
    }
    super::cap_problems(&mut problems);
    if problems.iter().any(|p| p.severity == Severity::Error) {
        return Err(fail(problems));
    }
    // Every value parsed when there is no error; a gap is a bug here, reported as such.
    let settings = parsed.settings().map_err(|key| {
        fail(vec![Problem::error(
            key,
            "internal error: the value passed validation but was not kept (please report)",
        )])
    })?;
    Ok(Loaded {
        file: file.to_path_buf(),
        config,
        warnings: problems,
        settings,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_substitution() {
        let get = |k: &str| (k == "HOME_DIR").then(|| "/node".to_string());
        let (out, p) = substitute_env("a: ${HOME_DIR}/data\nb: ${NOPE:-x}\nc: ${MISSING}\n", get);
        assert_eq!(out, "a: /node/data\nb: x\nc: \n");
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].line, Some(3));
        assert!(p[0].message.contains("`MISSING`"));
    }

    #[test]
    fn placeholders_are_named_with_their_key() {
        let (out, p, lines) = replace_placeholders(
            "consensus:\n  external_address: tcp://{{ external_address }}:26656\n",
        );
        assert!(out.contains("tcp://PLACEHOLDER:26656"));
        assert_eq!(lines.into_iter().collect::<Vec<_>>(), vec![2]);
        assert!(
            p[0].message.contains("{{ external_address }}"),
            "{}",
            p[0].message
        );
        assert_eq!(p[0].key, "consensus.external_address");
        assert!(p[0].message.contains("public IP"));
    }

    /// oasis's own test runner writes `consensus.debug`: accepted with one warning naming it.
    #[test]
    fn consensus_debug_is_accepted_with_a_warning() {
        let text = "consensus:\n  debug:\n    unsafe_replay_recover_corrupted_wal: true\n";
        let (cfg, p) = parse(text, &KeyIndex::new(text), &BTreeSet::new());
        assert!(p.is_empty(), "{p:?}");
        let (p, _) = super::super::validate::validate(&cfg.expect("parsed"));
        let debug: Vec<_> = p.iter().filter(|p| p.key == "consensus.debug").collect();
        assert_eq!(debug.len(), 1, "{p:?}");
        assert_eq!(debug[0].severity, super::super::Severity::Warning);
    }

    #[test]
    fn all_unknown_keys_are_listed() {
        let text = "common:\n  data_dirr: /x\n  log:\n    formatt: json\nfoo: 1\n";
        let (_, p) = parse(text, &KeyIndex::new(text), &BTreeSet::new());
        let keys: Vec<_> = p.iter().map(|p| p.key.as_str()).collect();
        assert_eq!(keys, vec!["common.data_dirr", "common.log.formatt", "foo"]);
    }

    /// 50,000 unknown keys: every one is found with its line (the index is linear; it was one
    /// scan of the file per key), the first are listed and the rest counted.
    #[test]
    fn fifty_thousand_unknown_keys_are_listed_then_counted() {
        let t = tempfile::tempdir().expect("tempdir");
        let file = t.path().join("config.yml");
        let mut text = String::from("mode: client\n");
        for i in 0..50_000 {
            text.push_str(&format!("k{i}: {i}\n"));
        }
        std::fs::write(&file, &text).expect("write");
        let started = std::time::Instant::now();
        let e = load(&file).expect_err("unknown keys are errors");
        eprintln!("load of 50,000 unknown keys: {:?}", started.elapsed());
        let listed = super::super::MAX_LISTED_PROBLEMS;
        assert_eq!(e.problems.len(), listed + 1);
        for (i, p) in e.problems[..listed].iter().enumerate() {
            assert_eq!(p.key, format!("k{i}"));
            assert!(p.message.starts_with("unknown key"), "{}", p.message);
            assert_eq!(p.line, Some(i + 2));
        }
        let last = &e.problems[listed].message;
        // The other 49,900 unknown keys, plus the data dir and genesis file left unset.
        assert!(
            last.starts_with("and 49902 more problems not listed (49902 errors, 0 warnings)"),
            "{last}"
        );
        assert!(e.to_string().len() < 100_000, "the error stays small");
    }

    #[test]
    fn huge_values_and_keys_are_not_echoed() {
        let t = tempfile::tempdir().expect("tempdir");
        let file = t.path().join("config.yml");
        let big = "x".repeat(5_000_000);
        std::fs::write(&file, format!("p2p:\n  port: {big}\n{big}: 1\n")).expect("write");
        let e = load(&file).expect_err("type error");
        let shown = e.to_string();
        assert!(shown.len() < 4_000, "{}", &shown[..4_000.min(shown.len())]);
        assert!(shown.contains(" bytes) … xxx"), "{shown}");
        let port = e
            .problems
            .iter()
            .find(|p| p.key == "p2p.port")
            .expect("port");
        assert_eq!(port.line, Some(2));
    }

    /// Deep nesting and long keys cost linear time in the index.
    #[test]
    fn deeply_nested_keys_are_indexed_in_linear_time() {
        let mut text = String::new();
        for i in 0..3_000 {
            text.push_str(&" ".repeat(i));
            text.push_str(&format!("{}{i}:\n", "k".repeat(1000)));
        }
        let ix = KeyIndex::new(&text);
        let deepest = ix.path_of_line(3_000);
        assert!(deepest.len() < 120, "{deepest}");
        // 256 keys of 1001 to 1003 bytes and their dots: deeper keys count under the 256th.
        assert!(deepest.ends_with("… (256913 bytes)"), "{deepest}");
        let (_, p) = parse(&text, &ix, &BTreeSet::new());
        assert!(!p.is_empty());
        // Many placeholders under a 4 MB key: each names the key by its start only.
        let text = format!(
            "{}:\n{}",
            "k".repeat(4_000_000),
            "  a: {{ x }}\n".repeat(200_000)
        );
        let (_, p, _) = replace_placeholders(&text);
        assert_eq!(p.len(), 200_000);
        assert!(p[0].key.ends_with("… (4000002 bytes)"), "{}", p[0].key);
    }

    #[test]
    fn every_type_error_is_listed_with_its_key() {
        let text = "p2p:\n  port: lots\nruntime:\n  pre_warm_epochs: many\n  paths: [a]\n";
        let (c, p) = parse(text, &KeyIndex::new(text), &BTreeSet::new());
        assert!(c.is_some());
        assert_eq!(p[0].key, "p2p.port");
        assert_eq!(p[0].line, Some(2));
        assert_eq!(p[1].key, "runtime.pre_warm_epochs");
    }

    #[test]
    fn key_paths_follow_indentation() {
        let text = "a:\n  b:\n    c: 1\n  d: 2\ne:\n  - f: 3\n    g: 4\n";
        let ix = KeyIndex::new(text);
        let p: Vec<_> = (1..=7).map(|n| ix.path_of_line(n)).collect();
        assert_eq!(p, vec!["a", "a.b", "a.b.c", "a.d", "e", "e.f", "e.g"]);
        assert_eq!(ix.line_of("a.d"), Some(4));
        assert_eq!(ix.line_of("e.g"), Some(7));
        assert_eq!(ix.line_of("a.x"), None);
        // A key with a dot in it, and the first of two duplicates.
        let ix = KeyIndex::new("m:\n  x.y: 1\n  x.y: 2\n");
        assert_eq!(ix.line_of("m.x.y"), Some(2));
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_text_never_panics(text in "[ -~\n]{0,200}") {
            let (t, _, lines) = replace_placeholders(&text);
            let _ = parse(&t, &KeyIndex::new(&t), &lines);
            let _ = substitute_env(&text, |_| None);
        }
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("20mb"), Ok(20_000_000));
        assert_eq!(parse_size("1GiB"), Ok(1 << 30));
        assert_eq!(parse_size("4096"), Ok(4096));
        assert!(parse_size("12 parsecs").is_err());
    }

    #[test]
    fn the_settings_are_the_parsed_values_of_a_valid_config() {
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path();
        std::fs::write(d.join("genesis.json"), "{}").expect("genesis");
        let id = "c9GKxp7PAIDIYmL9NFEhaBhZn8q7CyGpjpH/OtGJ1hU=";
        std::fs::write(d.join("entity.json"), format!("{{\"id\": \"{id}\"}}")).expect("entity");
        let yaml = format!(
            "mode: validator\ncommon:\n  data_dir: {d}/data\ngenesis:\n  file: {d}/genesis.json\nregistration:\n  entity: {d}/entity.json\nruntime:\n  ping_interval: 2m\n  max_bundle_size: 20mb\n  limits:\n    memory: 1GiB\nconsensus:\n  listen_address: tcp://127.0.0.1:26656\n",
            d = d.display()
        );
        std::fs::write(d.join("config.yml"), yaml).expect("config");
        let l = load(&d.join("config.yml")).expect("valid");
        let s = &l.settings;
        assert!(matches!(s.genesis, crate::config::GenesisFile::Empty));
        assert_eq!(s.entity.map(|e| e.to_string()).as_deref(), Some(id));
        assert_eq!(s.ping_interval, std::time::Duration::from_secs(120));
        assert_eq!(s.ping_timeout, std::time::Duration::from_secs(5));
        assert_eq!(s.max_bundle_size, 20_000_000);
        assert_eq!(s.limits.memory, 1 << 30);
        assert_eq!(s.consensus_listen.to_string(), "127.0.0.1:26656");
        assert!(s.consensus_peers.is_empty());
    }

    #[test]
    fn state_cache_and_pruning_parse_with_oasis_keys_and_bad_values_are_named() {
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path();
        std::fs::write(d.join("genesis.json"), "{}").expect("genesis");
        let load_with = |extra: &str| {
            let yaml = format!(
                "mode: client\ncommon:\n  data_dir: {d}/data\ngenesis:\n  file: {d}/genesis.json\n{extra}",
                d = d.display()
            );
            std::fs::write(d.join("config.yml"), yaml).expect("config");
            load(&d.join("config.yml"))
        };
        let s = load_with("").expect("defaults").settings;
        assert_eq!((s.state_cache_size, s.prune), (64 << 20, None));
        assert_eq!(s.consensus_prune, None);
        let s = load_with(
            "consensus:\n  prune:\n    strategy: Keep_N\n    num_kept: 10\n    interval: 100ms\n",
        )
        .expect("valid")
        .settings;
        assert_eq!(
            s.consensus_prune,
            Some(crate::config::Prune {
                num_kept: 10,
                interval: std::time::Duration::from_secs(1)
            }),
            "case-insensitive, interval clamped to 1s as oasis"
        );
        let s = load_with(
            "storage:\n  max_cache_size: 32mb\nruntime:\n  prune:\n    strategy: keep_last\n    num_kept: 100\n    interval: 30s\n",
        )
        .expect("valid")
        .settings;
        assert_eq!(s.state_cache_size, 32_000_000);
        assert_eq!(
            s.prune,
            Some(crate::config::Prune {
                num_kept: 100,
                interval: std::time::Duration::from_secs(30)
            })
        );
        for (extra, key, message) in [
            (
                "runtime:\n  prune:\n    strategy: bogus\n",
                "runtime.prune.strategy",
                "unknown runtime history pruner strategy: bogus",
            ),
            (
                "runtime:\n  prune:\n    strategy: keep_last\n    interval: 500ms\n",
                "runtime.prune.interval",
                "prune.interval must be >= 1 second",
            ),
            (
                "runtime:\n  prune:\n    strategy: keep_last\n    num_kept: 0\n",
                "runtime.prune.num_kept",
                "must be at least 1",
            ),
            (
                "consensus:\n  prune:\n    strategy: keep_everything\n",
                "consensus.prune.strategy",
                "abci/pruner: unknown pruning strategy: 'keep_everything'",
            ),
            (
                "consensus:\n  prune:\n    strategy: KEEP_N\n    num_kept: 0\n",
                "consensus.prune.num_kept",
                "must be at least 1",
            ),
            (
                "runtime:\n  prune:\n    strategy: keep_last\n    interval: 100000000h\n",
                "runtime.prune.interval",
                "at most 168h",
            ),
            (
                "consensus:\n  prune:\n    strategy: keep_n\n    interval: 100000000h\n",
                "consensus.prune.interval",
                "at most 168h",
            ),
            (
                "storage:\n  max_cache_size: 1kb\n",
                "storage.max_cache_size",
                "below the minimum",
            ),
            (
                "storage:\n  max_cache_size: lots\n",
                "storage.max_cache_size",
                "invalid size 'lots'",
            ),
            (
                "runtime:\n  prune:\n    strategy: keep_last\n    num_kept: -1\n",
                "runtime.prune.num_kept",
                "",
            ),
        ] {
            let e = load_with(extra)
                .err()
                .unwrap_or_else(|| panic!("accepted: {extra}"));
            assert!(
                e.problems
                    .iter()
                    .any(|p| p.key == key && p.message.contains(message)),
                "{extra}: {e}"
            );
        }
    }
}
