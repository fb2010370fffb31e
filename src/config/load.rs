//! Reading config.yml: environment substitution, placeholder detection, strict parsing.

use super::{validate, Config, ConfigError, Problem, Severity};
use std::collections::BTreeSet;
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

/// The dotted key path of every line (`consensus.external_address`), from indentation.
fn key_paths(text: &str) -> Vec<String> {
    fn joined(stack: &[(usize, String)]) -> String {
        stack
            .iter()
            .map(|(_, k)| k.as_str())
            .collect::<Vec<_>>()
            .join(".")
    }
    let mut stack: Vec<(usize, String)> = Vec::new();
    let mut out = Vec::new();
    for line in text.lines() {
        let trimmed = line.trim_start();
        let indent = line.len() - trimmed.len();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            out.push(joined(&stack));
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
        if let Some(k) = key {
            stack.push((indent + if item.is_some() { 2 } else { 0 }, k.to_string()));
        }
        out.push(joined(&stack));
    }
    out
}

/// Finds `{{ name }}` placeholders, reports each, and replaces them with a plain scalar so the
/// rest of the file can still be checked.
fn replace_placeholders(text: &str) -> (String, Vec<Problem>, BTreeSet<usize>) {
    let paths = key_paths(text);
    let mut out = String::with_capacity(text.len());
    let mut problems = Vec::new();
    let mut lines = BTreeSet::new();
    for (i, line) in text.split_inclusive('\n').enumerate() {
        let mut rest = line;
        let key_path = paths.get(i).cloned().unwrap_or_default();
        while let Some(start) = rest.find("{{") {
            let Some(len) = rest[start..].find("}}") else {
                break;
            };
            let name = rest[start + 2..start + len].trim();
            out.push_str(&rest[..start]);
            out.push_str("PLACEHOLDER");
            problems.push(
                Problem::error(
                    key_path.clone(),
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

fn line_of_key(text: &str, path: &str) -> Option<usize> {
    let paths = key_paths(text);
    paths.iter().position(|p| p == path).map(|i| i + 1)
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

fn parse(text: &str, placeholder_lines: &BTreeSet<usize>) -> (Option<Config>, Vec<Problem>) {
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
                    let line = line_of_key(&text, &key);
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
    let (config, parse_problems) = parse(&text, &lines);
    problems.extend(parse_problems);
    let mut config = match config {
        Some(c) => c,
        None => return Err(fail(problems)),
    };
    for mut p in validate::validate(&config) {
        // A placeholder's stand-in value is already reported.
        if p.message.contains("PLACEHOLDER") {
            continue;
        }
        if p.line.is_none() && !p.key.is_empty() {
            let base = p.key.split('[').next().unwrap_or_default();
            p.line = line_of_key(&text, base);
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
    if problems.iter().any(|p| p.severity == Severity::Error) {
        problems.sort_by_key(|p| std::cmp::Reverse(p.severity));
        return Err(fail(problems));
    }
    Ok(Loaded {
        file: file.to_path_buf(),
        config,
        warnings: problems,
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

    #[test]
    fn all_unknown_keys_are_listed() {
        let (_, p) = parse(
            "common:\n  data_dirr: /x\n  log:\n    formatt: json\nfoo: 1\n",
            &BTreeSet::new(),
        );
        let keys: Vec<_> = p.iter().map(|p| p.key.as_str()).collect();
        assert_eq!(keys, vec!["common.data_dirr", "common.log.formatt", "foo"]);
    }

    #[test]
    fn every_type_error_is_listed_with_its_key() {
        let (c, p) = parse(
            "p2p:\n  port: lots\nruntime:\n  pre_warm_epochs: many\n  paths: [a]\n",
            &BTreeSet::new(),
        );
        assert!(c.is_some());
        assert_eq!(p[0].key, "p2p.port");
        assert_eq!(p[0].line, Some(2));
        assert_eq!(p[1].key, "runtime.pre_warm_epochs");
    }

    #[test]
    fn key_paths_follow_indentation() {
        let p = key_paths("a:\n  b:\n    c: 1\n  d: 2\ne:\n  - f: 3\n    g: 4\n");
        assert_eq!(p, vec!["a", "a.b", "a.b.c", "a.d", "e", "e.f", "e.g"]);
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_text_never_panics(text in "[ -~\n]{0,200}") {
            let (t, _, lines) = replace_placeholders(&text);
            let _ = parse(&t, &lines);
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
}
