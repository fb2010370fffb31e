//! Test-only crash points, for the "killed at every step" tests with real processes.
//!
//! In debug builds, `PARATIME_NODE_TEST_CRASH_AT=STEP@HEIGHT[,STEP@HEIGHT…]` makes the node
//! SIGKILL itself the first time it reaches STEP at HEIGHT or above — once per entry: a marker
//! file `test-crash-STEP-HEIGHT` in the data dir, written before the kill, keeps the restarted
//! node from dying at the same place again. Steps: `prevote` and `precommit` (the signer has
//! recorded the vote, it is not sent), `decided` (a decided block, not yet stored) and `stored`
//! (stored, not yet acknowledged to the engine). Release builds ignore the variable.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// The environment variable.
pub const ENV: &str = "PARATIME_NODE_TEST_CRASH_AT";

/// Where the node may be told to die.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Point {
    /// Right after signing (and recording) a prevote.
    Prevote,
    /// Right after signing (and recording) a precommit.
    Precommit,
    /// A block was decided; it is not stored yet.
    Decided,
    /// The decided block is stored; the engine has not been told.
    Stored,
}

impl Point {
    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "prevote" => Self::Prevote,
            "precommit" => Self::Precommit,
            "decided" => Self::Decided,
            "stored" => Self::Stored,
            _ => return None,
        })
    }

    fn as_str(self) -> &'static str {
        match self {
            Self::Prevote => "prevote",
            Self::Precommit => "precommit",
            Self::Decided => "decided",
            Self::Stored => "stored",
        }
    }
}

struct Entry {
    point: Point,
    height: u64,
    marker: PathBuf,
}

static ENTRIES: OnceLock<Vec<Entry>> = OnceLock::new();

/// A malformed test crash point list.
#[derive(Debug, thiserror::Error)]
pub enum CrashPointError {
    /// An item without `@`.
    #[error("{ENV}: '{0}': expected STEP@HEIGHT (prevote, precommit, decided or stored)")]
    NotStepAtHeight(String),
    /// An unknown step.
    #[error("{ENV}: '{0}' is not a step (prevote, precommit, decided or stored)")]
    NotAStep(String),
    /// A height that is not a number.
    #[error("{ENV}: height '{height}': {source}")]
    Height {
        /// The text.
        height: String,
        /// Why.
        source: std::num::ParseIntError,
    },
}

/// Parses `spec` (the variable's value) into entries with markers under `data_dir`.
fn parse(spec: &str, data_dir: &Path) -> Result<Vec<Entry>, CrashPointError> {
    spec.split(',')
        .filter(|s| !s.trim().is_empty())
        .map(|item| {
            let (step, height) = item
                .trim()
                .split_once('@')
                .ok_or_else(|| CrashPointError::NotStepAtHeight(item.to_string()))?;
            let point =
                Point::parse(step).ok_or_else(|| CrashPointError::NotAStep(step.to_string()))?;
            let height: u64 = height.parse().map_err(|source| CrashPointError::Height {
                height: height.to_string(),
                source,
            })?;
            Ok(Entry {
                point,
                height,
                marker: data_dir.join(format!("test-crash-{step}-{height}")),
            })
        })
        .collect()
}

/// Reads the variable once at start (debug builds only).
pub fn init(data_dir: &Path) -> Result<(), CrashPointError> {
    if !cfg!(debug_assertions) {
        return Ok(());
    }
    let Ok(spec) = std::env::var(ENV) else {
        return Ok(());
    };
    let entries = parse(&spec, data_dir)?;
    log::warn!(target: "consensus", "test crash points set ({ENV}={spec}): this node kills itself there");
    let _ = ENTRIES.set(entries);
    Ok(())
}

/// Dies here if told to (and not done before).
pub fn reached(point: Point, height: u64) {
    let Some(entries) = ENTRIES.get() else {
        return;
    };
    for e in entries {
        if e.point == point && height >= e.height && !e.marker.exists() {
            if std::fs::write(&e.marker, format!("{height}\n")).is_err() {
                // Without its marker the node would die here on every restart.
                continue;
            }
            log::warn!(target: "consensus", height = height; "test crash point {}@{}: SIGKILL", point.as_str(), e.height);
            let _ = nix::sys::signal::raise(nix::sys::signal::Signal::SIGKILL);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_parse_and_bad_ones_are_named() {
        let d = Path::new("/d");
        let e = parse("precommit@5, stored@9", d).expect("parses");
        assert_eq!(
            e.iter().map(|e| (e.point, e.height)).collect::<Vec<_>>(),
            [(Point::Precommit, 5), (Point::Stored, 9)]
        );
        assert_eq!(e[1].marker, Path::new("/d/test-crash-stored-9"));
        let err = parse("vote@5", d).err().expect("refused").to_string();
        assert!(err.contains("'vote' is not a step"), "{err}");
        let err = parse("stored", d).err().expect("refused").to_string();
        assert!(err.contains("expected STEP@HEIGHT"), "{err}");
        let err = parse("stored@x", d).err().expect("refused").to_string();
        assert!(err.contains("height 'x'"), "{err}");
    }
}
