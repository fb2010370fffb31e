//! Self-confinement after start-up: Landlock (read-only config, genesis, entity and runtimes
//! directory; read-write data dir; nothing executable), every capability dropped (bounding,
//! ambient, inheritable, and effective/permitted when held), and no_new_privs.
//!
//! Must run before any thread is spawned: Landlock restricts the calling thread and the threads
//! and processes it creates later. The sandbox launcher is started before this, because a
//! Landlock-restricted process cannot set up bwrap's mounts.

use landlock::{
    path_beneath_rules, Access, AccessFs, LandlockStatus, Ruleset, RulesetAttr, RulesetCreatedAttr,
    RulesetStatus, ABI,
};
use std::path::PathBuf;

/// What the node may touch once confined.
#[derive(Clone, Debug, Default)]
pub struct Paths {
    /// Read-only files and directories (config file, genesis, entity, bundles, /proc/self).
    pub read: Vec<PathBuf>,
    /// Read-write directories (data dir, control socket directory, log file directory).
    pub write: Vec<PathBuf>,
}

/// The outcome, as one line for the log and status.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Report {
    /// "fully enforced", "partially enforced", "not enforced" or "disabled".
    pub landlock: String,
    /// Landlock ABI in use (0 when unsupported).
    pub landlock_abi: u32,
    /// Capabilities dropped.
    pub capabilities: String,
    /// no_new_privs is set.
    pub no_new_privs: bool,
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "landlock {} (ABI {}), capabilities {}, no_new_privs {}",
            self.landlock,
            self.landlock_abi,
            self.capabilities,
            if self.no_new_privs { "set" } else { "not set" }
        )
    }
}

/// The newest ABI this build knows; the crate degrades to what the kernel has (best effort).
const ABI_WANTED: ABI = ABI::V6;

fn drop_capabilities() -> String {
    use caps::CapSet;
    let mut failed = Vec::new();
    for set in [
        CapSet::Ambient,
        CapSet::Inheritable,
        CapSet::Bounding,
        CapSet::Effective,
        CapSet::Permitted,
    ] {
        // Clearing the bounding set needs CAP_SETPCAP: an unprivileged process holds no
        // capability anyway, and cannot regain any under no_new_privs.
        if let Err(e) = caps::clear(None, set) {
            failed.push(format!("{set:?}: {e}"));
        }
    }
    let held = caps::read(None, CapSet::Effective)
        .map(|c| c.len())
        .unwrap_or(0);
    match (held, failed.is_empty()) {
        (0, true) => "all dropped".into(),
        (0, false) => "none held (bounding set kept: not permitted without CAP_SETPCAP)".into(),
        (n, _) => format!("{n} still held: {}", failed.join("; ")),
    }
}

fn set_no_new_privs() -> bool {
    // SAFETY: prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) takes no pointers and only sets a flag.
    unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0 }
}

/// Why the node could not confine itself.
#[derive(Debug, thiserror::Error)]
pub enum ConfineError {
    /// The Landlock ruleset could not be built or applied.
    #[error("landlock: {0}")]
    Landlock(#[from] landlock::RulesetError),
}

/// Applies Landlock (when `landlock` is set), drops capabilities and sets no_new_privs.
pub fn confine(paths: &Paths, landlock: bool) -> Result<Report, ConfineError> {
    let capabilities = drop_capabilities();
    let no_new_privs = set_no_new_privs();
    if !landlock {
        return Ok(Report {
            landlock: "disabled".into(),
            landlock_abi: 0,
            capabilities,
            no_new_privs,
        });
    }
    let all = AccessFs::from_all(ABI_WANTED);
    let read = AccessFs::from_read(ABI_WANTED) & !AccessFs::Execute;
    let write = all & !AccessFs::Execute;
    let existing = |v: &[PathBuf]| v.iter().filter(|p| p.exists()).cloned().collect::<Vec<_>>();
    let status = Ruleset::default()
        .handle_access(all)
        .and_then(|r| r.create())
        .and_then(|r| r.add_rules(path_beneath_rules(existing(&paths.read), read)))
        .and_then(|r| r.add_rules(path_beneath_rules(existing(&paths.write), write)))
        .and_then(|r| r.restrict_self())
        .map_err(ConfineError::Landlock)?;
    let abi = match status.landlock {
        LandlockStatus::Available { effective_abi, .. } => effective_abi as u32,
        _ => 0,
    };
    let landlock = match status.ruleset {
        RulesetStatus::FullyEnforced => "fully enforced",
        RulesetStatus::PartiallyEnforced => "partially enforced",
        RulesetStatus::NotEnforced => "not enforced (Landlock unavailable: not in this kernel, or its syscalls are blocked by a seccomp filter, e.g. a container's)",
    };
    Ok(Report {
        landlock: landlock.into(),
        landlock_abi: abi,
        capabilities,
        no_new_privs: no_new_privs || status.no_new_privs,
    })
}
