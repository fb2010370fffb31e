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
pub use validate::runtime_limits;

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

impl Problem {
    pub(crate) fn error(key: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            severity: Severity::Error,
            key: key.into(),
            message: message.into(),
            line: None,
        }
    }

    pub(crate) fn warning(key: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            severity: Severity::Warning,
            key: key.into(),
            message: message.into(),
            line: None,
        }
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
