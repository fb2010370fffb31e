//! Offline commands on a stopped node's data directory: `unsafe-reset` and
//! `control clear-deregister` (oasis-facts §20). Both take the data dir's lock first, so they
//! refuse to touch the files of a running node.

use crate::identity;
use std::path::{Path, PathBuf};

/// `unsafe-reset`'s options (oasis's flag names).
#[derive(clap::Args, Debug)]
pub(super) struct ResetArgs {
    /// The node's data directory.
    #[arg(long)]
    datadir: PathBuf,
    /// Keep the runtimes' local storage (`runtimes/*/worker-local-storage.*.db`).
    #[arg(long = "preserve.local_storage", default_value_t = true, action = clap::ArgAction::Set)]
    preserve_local_storage: bool,
    /// Keep the runtimes' state trees (`runtimes/*/mkvs_storage.*.db`): a node that keeps them
    /// replays or state-syncs the rounds its reset history no longer has.
    #[arg(long = "preserve.mkvs_database", default_value_t = true, action = clap::ArgAction::Set)]
    preserve_mkvs_database: bool,
    /// Only print what would be removed.
    #[arg(short = 'n', long = "dry_run")]
    dry_run: bool,
    /// Reset a directory that does not look like a node's data directory.
    #[arg(long)]
    force: bool,
}

/// What `unsafe-reset` removes under `d`: the consensus store and WAL (blocks, state, runtime
/// history), the persisted deregistration request, downloads in progress; the runtimes' state
/// trees and local storage unless preserved. Never keys, bundles or logs.
pub(super) fn reset_targets(d: &Path, a: &ResetArgs) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut push = |p: PathBuf| {
        if std::fs::symlink_metadata(&p).is_ok() {
            out.push(p);
        }
    };
    push(d.join("consensus.redb"));
    push(d.join("consensus"));
    push(d.join(crate::node::DEREGISTER_FLAG));
    push(d.join("runtimes").join("tmp"));
    let mut names: Vec<(&str, bool)> = vec![("history.db", true)];
    if !a.preserve_local_storage {
        names.push(("worker-local-storage.", false));
    }
    if !a.preserve_mkvs_database {
        names.push(("mkvs_storage.", false));
    }
    let mut entries: Vec<PathBuf> = Vec::new();
    for rt in std::fs::read_dir(d.join("runtimes"))
        .into_iter()
        .flatten()
        .flatten()
    {
        // Runtime directories are named by the runtime ID (64 hex digits).
        let name = rt.file_name().to_string_lossy().into_owned();
        if name.len() != 64 || !name.bytes().all(|b| b.is_ascii_hexdigit()) {
            continue;
        }
        for f in std::fs::read_dir(rt.path()).into_iter().flatten().flatten() {
            let n = f.file_name().to_string_lossy().into_owned();
            let hit = names.iter().any(|(pat, exact)| {
                if *exact {
                    n == *pat
                } else {
                    n.starts_with(pat) && n.ends_with(".db")
                }
            });
            if hit {
                entries.push(f.path());
            }
        }
    }
    entries.sort();
    for e in entries {
        push(e);
    }
    out
}

/// The data dir's lock (held by a running node), or the reason it is not available, printed
/// with `hint`.
fn lock(d: &Path, hint: &str) -> Option<identity::DataDirLock> {
    identity::lock_data_dir(d)
        .map_err(|e| eprintln!("error: {e}: {hint}"))
        .ok()
}

/// `paratime-node unsafe-reset`.
pub(super) fn unsafe_reset(a: &ResetArgs) -> i32 {
    let d = &a.datadir;
    let looks_like_one = d.join("identity_pub.pem").exists()
        && (d.join("consensus").exists() || d.join("consensus.redb").exists());
    if !looks_like_one && !a.force {
        eprintln!(
            "{} does not look like a paratime-node data directory, not removing any files. Use --force to run the command regardless.",
            d.display()
        );
        return 1;
    }
    let Some(_lock) = lock(d, "stop the node before resetting its state") else {
        return 1;
    };
    if a.dry_run {
        println!("dry run, no modifications will be made to files");
    }
    for p in reset_targets(d, a) {
        println!("removing on-disk node state: {}", p.display());
        if a.dry_run {
            continue;
        }
        let r = if std::fs::symlink_metadata(&p).is_ok_and(|m| m.is_dir()) {
            std::fs::remove_dir_all(&p)
        } else {
            std::fs::remove_file(&p)
        };
        if let Err(e) = r {
            eprintln!("error: failed to remove {}: {e}", p.display());
            return 1;
        }
    }
    if !a.dry_run {
        println!("state reset complete");
    }
    0
}

/// `paratime-node control clear-deregister --datadir D`: forgets a deregistration that
/// `control shutdown` asked for and that did not complete, so that the node registers again.
pub(super) fn clear_deregister(d: &Path) -> i32 {
    if !std::fs::metadata(d).is_ok_and(|m| m.is_dir()) {
        eprintln!(
            "error: failed to stat data directory {}: not a directory",
            d.display()
        );
        return 1;
    }
    let Some(_lock) = lock(d, "stop the node first") else {
        return 1;
    };
    let flag = d.join(crate::node::DEREGISTER_FLAG);
    match std::fs::remove_file(&flag) {
        Ok(()) => {
            println!("cleared persisted forced-deregister");
            0
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            println!("no deregistration was pending");
            0
        }
        Err(e) => {
            eprintln!("error: {}: {e}", flag.display());
            1
        }
    }
}
