//! Directory creation with oasis's checks, and the data dir lock.

use super::{io_err, IdentityError};
use std::fs::{DirBuilder, File, OpenOptions};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// Renders permission bits the way Go's `FileMode.Perm().String()` does (`-rwxr-xr-x`).
pub(crate) fn perm_string(mode: u32) -> String {
    let mut s = String::from("-");
    for shift in [6, 3, 0] {
        let bits = (mode >> shift) & 7;
        s.push(if bits & 4 != 0 { 'r' } else { '-' });
        s.push(if bits & 2 != 0 { 'w' } else { '-' });
        s.push(if bits & 1 != 0 { 'x' } else { '-' });
    }
    s
}

/// Creates `path` (and missing parents) with mode 0700, or checks that the existing directory is
/// exactly 0700 and owned by the effective user.
pub fn ensure_dir(path: &Path) -> Result<(), IdentityError> {
    match std::fs::metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(path)
                .map_err(io_err(path))?;
            // The umask may have narrowed the mode; make it exact.
            std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(0o700))
                .map_err(io_err(path))?;
            Ok(())
        }
        Err(e) => Err(IdentityError::Io {
            path: path.to_path_buf(),
            source: e,
        }),
        Ok(md) => {
            if !md.is_dir() {
                return Err(IdentityError::NotADirectory(path.to_path_buf()));
            }
            let perm = md.mode() & 0o777;
            if perm != 0o700 {
                return Err(IdentityError::DirPermissions {
                    path: path.to_path_buf(),
                    found: perm_string(perm),
                });
            }
            owned_by_node(path, &md)
        }
    }
}

/// The directory must belong to the node's effective user.
fn owned_by_node(path: &Path, md: &std::fs::Metadata) -> Result<(), IdentityError> {
    let euid = nix::unistd::geteuid().as_raw();
    if md.uid() != euid {
        return Err(IdentityError::DirOwner {
            path: path.to_path_buf(),
            found: md.uid(),
            expected: euid,
        });
    }
    Ok(())
}

/// Ensures the exploded-bundles directory: owned by the node, never writable by its group nor
/// open to others; group read is allowed (under systemd the sandbox launcher, another user, reads
/// bundles through the directory's group, DESIGN §2). Created 0750 when missing.
pub fn ensure_bundles_dir(path: &Path) -> Result<(), IdentityError> {
    if std::fs::symlink_metadata(path).is_err() {
        DirBuilder::new()
            .recursive(true)
            .mode(0o750)
            .create(path)
            .map_err(io_err(path))?;
        std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(0o750))
            .map_err(io_err(path))?;
    }
    let md = std::fs::symlink_metadata(path).map_err(io_err(path))?;
    if !md.is_dir() {
        return Err(IdentityError::NotADirectory(path.to_path_buf()));
    }
    let perm = md.mode() & 0o7777;
    if perm & 0o027 != 0 {
        return Err(IdentityError::BundlesDirPermissions {
            path: path.to_path_buf(),
            found: perm_string(perm & 0o777),
        });
    }
    owned_by_node(path, &md)
}

/// Gives the bundles directory to `group` (mode 0750): the sandbox launcher's group when it runs
/// as its own user. Bundles written below take the group from the node's primary group (the
/// shipped unit's `Group=`, since RestrictSUIDSGID forbids a setgid directory) or are given it
/// by [`crate::bundle::Bundle::explode`] when the node's user is a member.
pub fn share_bundles_dir(path: &Path, group: &str) -> Result<(), IdentityError> {
    let other = |msg: String| IdentityError::Io {
        path: path.to_path_buf(),
        source: std::io::Error::other(msg),
    };
    let g = nix::unistd::Group::from_name(group)
        .map_err(|e| other(format!("--bundles-group {group}: {e}")))?
        .ok_or_else(|| other(format!("--bundles-group {group}: no such group (create it, e.g. with the shipped sysusers.d file)")))?;
    // Under the shipped unit the group is the node's primary group already (and chown is
    // outside its system call filter): change it only when it differs.
    let current = std::fs::symlink_metadata(path).map_err(io_err(path))?.gid();
    if current != g.gid.as_raw() {
        std::os::unix::fs::chown(path, None, Some(g.gid.as_raw())).map_err(|e| {
            other(format!(
                "cannot give it to group {group} ({e}): the node's user must be a member of {group}, or have it as primary group"
            ))
        })?;
    }
    std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(0o750))
        .map_err(io_err(path))
}

/// An exclusive lock on a data dir, held for the life of the node.
#[derive(Debug)]
pub struct DataDirLock {
    _lock: nix::fcntl::Flock<File>,
    path: PathBuf,
}

impl DataDirLock {
    /// The locked data dir.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Takes the data dir lock (`node.lock`, flock); fails at once when another process holds it.
pub fn lock_data_dir(data_dir: &Path) -> Result<DataDirLock, IdentityError> {
    let lock_path = data_dir.join("node.lock");
    // A FIFO here would block the open; anything but a regular file is refused by name.
    let file = crate::system::files::open_regular(
        &lock_path,
        OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600),
    )?;
    match nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusiveNonblock) {
        Ok(lock) => Ok(DataDirLock {
            _lock: lock,
            path: data_dir.to_path_buf(),
        }),
        Err((_, nix::errno::Errno::EWOULDBLOCK)) => {
            Err(IdentityError::Locked(data_dir.to_path_buf()))
        }
        Err((_, e)) => Err(IdentityError::Io {
            path: lock_path,
            source: e.into(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn perm_strings() {
        assert_eq!(perm_string(0o700), "-rwx------");
        assert_eq!(perm_string(0o755), "-rwxr-xr-x");
    }

    #[test]
    fn wrong_mode_is_refused_and_lock_is_exclusive() {
        let t = tempfile::tempdir().expect("tempdir");
        let d = t.path().join("data");
        ensure_dir(&d).expect("create");
        assert_eq!(std::fs::metadata(&d).expect("md").mode() & 0o777, 0o700);
        let l = lock_data_dir(&d).expect("lock");
        assert!(matches!(lock_data_dir(&d), Err(IdentityError::Locked(_))));
        drop(l);
        lock_data_dir(&d).expect("relock");
        std::fs::set_permissions(&d, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .expect("chmod");
        let e = ensure_dir(&d).expect_err("must refuse");
        assert!(
            e.to_string()
                .contains("invalid permissions: -rwxr-xr-x. Expected permissions: -rwx------"),
            "{e}"
        );
    }
}
