//! Reading the files an operator points the node at (config, genesis, entity, keys): regular
//! files only, and never more than a stated limit.
//!
//! A FIFO, socket, device or directory in place of such a file must be refused with its name, not
//! block start-up forever (opening a FIFO for reading waits for a writer; reading a device may never
//! end), and a multi-gigabyte file must not be slurped into memory. Every read here opens with
//! `O_NONBLOCK | O_NOCTTY`, checks the type of what was opened with `fstat` (no race with a
//! rename between check and read), and reads at most `limit + 1` bytes.

use std::io::Read;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// Config files are a few kilobytes; 16 MiB leaves room for huge `runtime.config` sections.
pub const CONFIG_LIMIT: u64 = 16 << 20;
/// A genesis document of this node's format (accounts, entities, runtimes).
pub const GENESIS_LIMIT: u64 = 256 << 20;
/// `entity.json`: one entity descriptor.
pub const ENTITY_LIMIT: u64 = 1 << 20;
/// A PEM key file (one key block is about 150 bytes).
pub const PEM_LIMIT: u64 = 64 << 10;

/// Why a file was not read.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    /// Not a regular file (FIFO, socket, device, directory).
    #[error("'{path}' is a {kind}, not a regular file (replace it with the file itself)")]
    NotRegular {
        /// The file.
        path: PathBuf,
        /// What it is instead.
        kind: &'static str,
    },
    /// Larger than the limit for this kind of file.
    #[error("'{path}' is larger than the limit of {limit} bytes for this file (found {size} bytes or more)")]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// The limit in bytes.
        limit: u64,
        /// The size seen (at least `limit + 1`).
        size: u64,
    },
    /// Open or read failed.
    #[error("'{path}': {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
}

impl FileError {
    /// The I/O error kind, for callers that treat "not found" specially.
    pub fn io_kind(&self) -> Option<std::io::ErrorKind> {
        match self {
            Self::Io { source, .. } => Some(source.kind()),
            _ => None,
        }
    }
}

/// What a non-regular file type is called in messages.
pub fn kind_name(ft: std::fs::FileType) -> &'static str {
    if ft.is_dir() {
        "directory"
    } else if ft.is_fifo() {
        "FIFO"
    } else if ft.is_socket() {
        "socket"
    } else if ft.is_block_device() {
        "block device"
    } else if ft.is_char_device() {
        "character device"
    } else if ft.is_symlink() {
        "symbolic link"
    } else if ft.is_file() {
        "regular file"
    } else {
        "special file"
    }
}

/// Opens `path` for reading without blocking on FIFOs or devices and checks that it is a regular
/// file; `opts` may add flags (e.g. write access).
pub fn open_regular(
    path: &Path,
    opts: &mut std::fs::OpenOptions,
) -> Result<std::fs::File, FileError> {
    let io = |source| FileError::Io {
        path: path.to_path_buf(),
        source,
    };
    let file = match opts
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY | libc::O_CLOEXEC)
        .open(path)
    {
        Ok(f) => f,
        // open(2) of a socket fails with ENXIO, and so does a write-only open of a FIFO without
        // a reader: name what is there instead of the errno.
        Err(e) => {
            return Err(match std::fs::metadata(path) {
                Ok(md) if !md.is_file() => FileError::NotRegular {
                    path: path.to_path_buf(),
                    kind: kind_name(md.file_type()),
                },
                _ => io(e),
            })
        }
    };
    let md = file.metadata().map_err(io)?;
    if !md.is_file() {
        return Err(FileError::NotRegular {
            path: path.to_path_buf(),
            kind: kind_name(md.file_type()),
        });
    }
    Ok(file)
}

/// Reads a regular file of at most `limit` bytes.
pub fn read_bounded(path: &Path, limit: u64) -> Result<Vec<u8>, FileError> {
    let file = open_regular(path, std::fs::OpenOptions::new().read(true))?;
    let too_large = |size| FileError::TooLarge {
        path: path.to_path_buf(),
        limit,
        size,
    };
    let len = file
        .metadata()
        .map_err(|source| FileError::Io {
            path: path.to_path_buf(),
            source,
        })?
        .len();
    if len > limit {
        return Err(too_large(len));
    }
    // The size may change while reading: read at most one byte more than allowed to notice.
    let mut out = Vec::with_capacity(len as usize);
    file.take(limit + 1)
        .read_to_end(&mut out)
        .map_err(|source| FileError::Io {
            path: path.to_path_buf(),
            source,
        })?;
    if out.len() as u64 > limit {
        return Err(too_large(out.len() as u64));
    }
    Ok(out)
}

/// [`read_bounded`] for UTF-8 text.
pub fn read_bounded_to_string(path: &Path, limit: u64) -> Result<String, FileError> {
    let bytes = read_bounded(path, limit)?;
    String::from_utf8(bytes).map_err(|e| FileError::Io {
        path: path.to_path_buf(),
        source: std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!(
                "not UTF-8 text (invalid byte at offset {})",
                e.utf8_error().valid_up_to()
            ),
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fifo_socket_and_directory_are_refused_without_blocking() {
        let t = tempfile::tempdir().expect("tempdir");
        let fifo = t.path().join("identity.pem");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600))
            .expect("mkfifo");
        let e = read_bounded(&fifo, PEM_LIMIT).expect_err("a FIFO must be refused");
        assert!(
            e.to_string().contains("is a FIFO, not a regular file"),
            "{e}"
        );
        assert!(e.to_string().contains("identity.pem"), "{e}");
        // Also when opened for writing (no reader: ENXIO).
        let e = open_regular(&fifo, std::fs::OpenOptions::new().write(true)).expect_err("FIFO");
        assert!(e.to_string().contains("is a FIFO"), "{e}");

        let sock = t.path().join("genesis.json");
        let _l = std::os::unix::net::UnixListener::bind(&sock).expect("bind");
        let e = read_bounded(&sock, GENESIS_LIMIT).expect_err("a socket must be refused");
        assert!(
            e.to_string().contains("is a socket, not a regular file"),
            "{e}"
        );

        let e = read_bounded(t.path(), CONFIG_LIMIT).expect_err("a directory must be refused");
        assert!(
            e.to_string().contains("is a directory, not a regular file"),
            "{e}"
        );

        let e = read_bounded(Path::new("/dev/zero"), 10).expect_err("a device must be refused");
        assert!(e.to_string().contains("is a character device"), "{e}");
    }

    #[test]
    fn size_is_bounded_and_named() {
        let t = tempfile::tempdir().expect("tempdir");
        let p = t.path().join("genesis.json");
        // Sparse: 10 GB without writing them.
        let f = std::fs::File::create(&p).expect("create");
        f.set_len(10_000_000_000).expect("set_len");
        let e = read_bounded(&p, GENESIS_LIMIT).expect_err("too large");
        assert!(
            e.to_string()
                .contains("genesis.json' is larger than the limit of 268435456 bytes"),
            "{e}"
        );
        f.set_len(5).expect("set_len");
        assert_eq!(read_bounded(&p, 5).expect("read").len(), 5);
        assert!(read_bounded(&p, 4).is_err());
    }
}
