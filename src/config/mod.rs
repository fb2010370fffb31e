//! Node configuration: the oasis-node `config.yml`.
//!
//! Loading never stops at the first mistake: it collects every unknown key, every leftover
//! `{{ placeholder }}` from the docs template, every unset `${VAR}` and every rule violation as a
//! [`Problem`] naming the file and the key path, so `paratime-node config check` can list them all.
//! It owns no state and never touches the data dir.

mod load;
pub mod schema;
mod validate;

pub use load::{load, parse_size, substitute_env, Loaded};
pub use schema::{Config, Mode, Provisioner};
pub use validate::{
    consensus_external, consensus_listen, consensus_peers, runtime_limits, GenesisFile, Halt,
    Prune, Settings,
};

use std::fmt;
use std::path::{Path, PathBuf};

/// How serious a problem is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    /// Accepted, but the operator must know (an unsupported component is configured).
    Warning,
    /// The node refuses to start.
    Error,
}

/// One finding about a config file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// Error or warning.
    pub severity: Severity,
    /// The key path (`common.data_dir`), or empty for file-level problems.
    pub key: String,
    /// What is wrong and how to fix it.
    pub message: String,
    /// 1-based line in the file, when known.
    pub line: Option<usize>,
}

/// At most this many problems are listed; the rest are counted in a last line.
pub const MAX_LISTED_PROBLEMS: usize = 100;
/// Longest key path shown whole.
const MAX_KEY_SHOWN: usize = 120;
/// Longest message shown whole (messages quote values from the file).
const MAX_MESSAGE_SHOWN: usize = 400;

/// `s` unchanged when it has at most `max` bytes, else its first `head` and last `tail` bytes
/// around `… (N bytes) …`: a 50 MB value in the file must not be copied into every message.
fn elide(s: String, max: usize, head: usize, tail: usize) -> String {
    if s.len() <= max {
        return s;
    }
    let mut h = head.min(s.len());
    while !s.is_char_boundary(h) {
        h -= 1;
    }
    let mut t = s.len().saturating_sub(tail).max(h);
    while !s.is_char_boundary(t) {
        t += 1;
    }
    let sep = if t < s.len() { " … " } else { "" };
    format!("{}… ({} bytes){sep}{}", &s[..h], s.len(), &s[t..])
}

impl Problem {
    fn new(severity: Severity, key: String, message: String) -> Self {
        Self {
            severity,
            key: elide(key, MAX_KEY_SHOWN, 80, 0),
            message: elide(message, MAX_MESSAGE_SHOWN, 240, 120),
            line: None,
        }
    }

    pub(crate) fn error(key: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(Severity::Error, key.into(), message.into())
    }

    pub(crate) fn warning(key: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(Severity::Warning, key.into(), message.into())
    }

    pub(crate) fn at_line(mut self, line: Option<usize>) -> Self {
        self.line = line;
        self
    }

    /// Renders the problem with the file name: `config.yml:3: error: common.data_dirr: …`.
    pub fn display_in(&self, file: &Path) -> String {
        let sev = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        let loc = match self.line {
            Some(l) => format!("{}:{l}", file.display()),
            None => file.display().to_string(),
        };
        if self.key.is_empty() {
            format!("{loc}: {sev}: {}", self.message)
        } else {
            format!("{loc}: {sev}: {}: {}", self.key, self.message)
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.key.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.key, self.message)
        }
    }
}

/// A config that failed to load: the file and everything wrong with it.
#[derive(Debug)]
pub struct ConfigError {
    /// The config file.
    pub file: PathBuf,
    /// All problems found (at least one error).
    pub problems: Vec<Problem>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let errors: Vec<String> = self
            .problems
            .iter()
            .filter(|p| p.severity == Severity::Error)
            .map(|p| p.display_in(&self.file))
            .collect();
        write!(
            f,
            "failed to load config file '{}': {}",
            self.file.display(),
            errors.join("; ")
        )
    }
}

impl std::error::Error for ConfigError {}

/// Keeps the first [`MAX_LISTED_PROBLEMS`] problems (errors first) and replaces the rest with one
/// line that counts them.
pub(crate) fn cap_problems(problems: &mut Vec<Problem>) {
    problems.sort_by_key(|p| std::cmp::Reverse(p.severity));
    if problems.len() <= MAX_LISTED_PROBLEMS {
        return;
    }
    let rest = problems.split_off(MAX_LISTED_PROBLEMS);
    let errors = rest
        .iter()
        .filter(|p| p.severity == Severity::Error)
        .count();
    let last = format!(
        "and {} more problems not listed ({errors} errors, {} warnings): fix the ones above and check again",
        rest.len(),
        rest.len() - errors
    );
    problems.push(if errors > 0 {
        Problem::error("", last)
    } else {
        Problem::warning("", last)
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_keys_and_values_are_elided_with_their_size() {
        let value = "v".repeat(50_000_000);
        let message = format!("invalid type: string \"{value}\", expected u16");
        let size = message.len();
        let p = Problem::error("k".repeat(1000), message);
        assert!(
            p.key.len() < 120 && p.key.ends_with("… (1000 bytes)"),
            "{}",
            p.key
        );
        assert!(p.message.len() < 500, "{}", p.message);
        assert!(
            p.message.starts_with("invalid type: string \"vvv"),
            "{}",
            p.message
        );
        assert!(
            p.message.contains(&format!("… ({size} bytes) …")),
            "{}",
            p.message
        );
        assert!(p.message.ends_with("vvv\", expected u16"), "{}", p.message);
        // Multi-byte characters are never cut.
        let p = Problem::error("é".repeat(100), "ü".repeat(300));
        assert!(p.key.starts_with("éé") && p.message.starts_with("üü"));
    }

    #[test]
    fn problems_are_capped_errors_first() {
        let mut v: Vec<Problem> = (0..150)
            .map(|i| Problem::warning(format!("w{i}"), "w"))
            .chain((0..150).map(|i| Problem::error(format!("e{i}"), "e")))
            .collect();
        cap_problems(&mut v);
        assert_eq!(v.len(), MAX_LISTED_PROBLEMS + 1);
        assert!(v[..MAX_LISTED_PROBLEMS]
            .iter()
            .all(|p| p.severity == Severity::Error));
        assert_eq!(
            v[MAX_LISTED_PROBLEMS].message,
            "and 200 more problems not listed (50 errors, 150 warnings): fix the ones above and check again"
        );
    }
}
