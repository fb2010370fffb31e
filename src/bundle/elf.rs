//! Which files an untrusted ELF executable may have in its sandbox: its interpreter and shared
//! libraries (DT_NEEDED, recursively), resolved here, never taken from the headers as paths.
//!
//! Everything in a bundle's ELF headers is attacker-controlled (DESIGN §2, threat model). The
//! kernel honours the *first* `PT_INTERP`, while parsers may report the last; ld.so and a parser
//! may disagree on the dynamic section. So the safety of the sandbox does not rest on parsing
//! agreeing with the loader: every file bound into the sandbox is a regular file whose
//! canonical path (symlinks resolved) lies under one of [`ALLOWED_ROOTS`], bound at a clean path
//! under those roots. A header naming anything else is refused, at `bundle verify`
//! ([`inspect`]) and again in the launcher ([`dependencies`]). The executable is parsed, never run.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Directory trees from which system files may be bound into a sandbox: the system library
/// directories and the Nix store (world-readable and immutable by design).
pub const ALLOWED_ROOTS: &[&str] = &["/lib", "/lib64", "/usr/lib", "/usr/lib64", "/nix/store"];

/// Where the dynamic loader looks when no RUNPATH names the library, in its order.
const SYSTEM_DIRS: &[&str] = &[
    "/lib/x86_64-linux-gnu",
    "/usr/lib/x86_64-linux-gnu",
    "/lib/aarch64-linux-gnu",
    "/usr/lib/aarch64-linux-gnu",
    "/lib64",
    "/usr/lib64",
    "/lib",
    "/usr/lib",
];

/// Most libraries one executable may pull in (transitively).
const MAX_LIBRARIES: usize = 512;
/// Largest library file parsed.
const MAX_LIBRARY_SIZE: u64 = 512 << 20;

/// Why an executable may not run in a sandbox.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ElfError {
    /// Not an ELF file at all.
    #[error("not an ELF executable (no ELF magic)")]
    NotElf,
    /// Malformed headers.
    #[error("malformed ELF headers: {0}")]
    Malformed(String),
    /// Built for another machine or class.
    #[error("built for {found}, this node runs {expected} executables")]
    WrongMachine {
        /// What the header says.
        found: String,
        /// What this host runs.
        expected: &'static str,
    },
    /// Not an executable (a relocatable object, a core file, …).
    #[error("ELF type {0} is not an executable (expected ET_EXEC or ET_DYN)")]
    NotExecutable(u16),
    /// More than one `PT_INTERP`: the kernel and parsers disagree on which one counts.
    #[error("{0} PT_INTERP program headers (at most one is allowed)")]
    ManyInterpreters(usize),
    /// More than one `PT_DYNAMIC`.
    #[error("{0} PT_DYNAMIC program headers (at most one is allowed)")]
    ManyDynamic(usize),
    /// A path in the headers that is not a clean absolute path under the allow-list.
    #[error("{what} '{path}' is outside the allowed system library directories ({})", ALLOWED_ROOTS.join(", "))]
    Outside {
        /// `interpreter`, `RUNPATH entry`, …
        what: &'static str,
        /// The offending path (escaped).
        path: String,
    },
    /// A `DT_NEEDED` entry that is a path instead of a library name.
    #[error("DT_NEEDED '{0}' is a path or not a library name: only plain names, resolved in the system library directories, are allowed")]
    LibraryPath(String),
    /// A needed library that the allowed directories do not hold.
    #[error("shared library '{0}' was not found in the allowed system library directories")]
    NotFound(String),
    /// A resolved file that is a directory, socket, FIFO or device.
    #[error("{path} is a {kind}, not a regular file: refused")]
    NotRegular {
        /// The path.
        path: String,
        /// What it is.
        kind: &'static str,
    },
    /// A symlink that leads outside the allow-list.
    #[error("{path} resolves to {real}, outside the allowed system library directories: refused")]
    Escapes {
        /// The path named.
        path: String,
        /// Where it leads.
        real: String,
    },
    /// Too many libraries.
    #[error("more than {MAX_LIBRARIES} shared libraries needed")]
    TooManyLibraries,
    /// I/O.
    #[error("{path}: {error}")]
    Io {
        /// The file.
        path: String,
        /// The error.
        error: String,
    },
}

/// What one ELF file asks of the loader, after the static checks.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Needs {
    /// The interpreter (first and only `PT_INTERP`).
    pub interpreter: Option<String>,
    /// `DT_NEEDED` names.
    pub libraries: Vec<String>,
    /// `DT_RUNPATH` / `DT_RPATH` entries, `$ORIGIN` unexpanded.
    pub search: Vec<String>,
}

fn expected_machine() -> (u16, &'static str) {
    if cfg!(target_arch = "aarch64") {
        (goblin::elf::header::EM_AARCH64, "aarch64")
    } else {
        (goblin::elf::header::EM_X86_64, "x86_64")
    }
}

fn escaped(s: &str) -> String {
    s.chars().take(256).flat_map(char::escape_default).collect()
}

/// A clean absolute path (no `.`/`..`, no empty components) under [`ALLOWED_ROOTS`].
pub fn is_allowed_path(p: &Path) -> bool {
    // Segment by segment on the raw text: `Path::components` silently drops `.` and `//`.
    let Some(text) = p.to_str() else {
        return false;
    };
    let Some(rest) = text.strip_prefix('/') else {
        return false;
    };
    let clean = rest
        .split('/')
        .all(|seg| !seg.is_empty() && seg != "." && seg != "..");
    clean
        && ALLOWED_ROOTS
            .iter()
            .any(|root| p.starts_with(root) && p != Path::new(root))
}

fn check_library_name(name: &str) -> Result<(), ElfError> {
    if name.is_empty() || name == "." || name == ".." || name.contains('/') {
        return Err(ElfError::LibraryPath(escaped(name)));
    }
    Ok(())
}

/// Static checks of an executable's bytes, as `bundle verify` runs them: ELF magic, 64-bit little
/// endian, this host's machine, an executable type, at most one `PT_INTERP` and `PT_DYNAMIC`, an
/// interpreter under the allow-list, plain library names, and RUNPATH entries under the allow-list
/// (`$ORIGIN` included: a bundle cannot carry libraries).
pub fn inspect(data: &[u8]) -> Result<Needs, ElfError> {
    let needs = parse(data)?;
    if let Some(interp) = &needs.interpreter {
        if !is_allowed_path(Path::new(interp)) {
            return Err(ElfError::Outside {
                what: "interpreter",
                path: escaped(interp),
            });
        }
    }
    for entry in &needs.search {
        if !is_allowed_path(Path::new(entry)) {
            return Err(ElfError::Outside {
                what: "RUNPATH/RPATH entry",
                path: escaped(entry),
            });
        }
    }
    Ok(needs)
}

/// Parses the headers with the structural checks, without the path policy (libraries may use
/// `$ORIGIN` within the allowed roots).
fn parse(data: &[u8]) -> Result<Needs, ElfError> {
    use goblin::elf::program_header::{PT_DYNAMIC, PT_INTERP};
    if !data.starts_with(b"\x7fELF") {
        return Err(ElfError::NotElf);
    }
    // Only what the loader reads: the header, the program headers and the dynamic section
    // with its string table. Section headers, symbol tables and relocations (most of a large
    // executable's parse time, and ignored by the kernel and ld.so) are not parsed.
    let malformed = |e: goblin::error::Error| ElfError::Malformed(e.to_string());
    let elf =
        goblin::elf::Elf::lazy_parse(goblin::elf::Elf::parse_header(data).map_err(malformed)?)
            .map_err(malformed)?;
    let (machine, arch) = expected_machine();
    if !elf.is_64 || !elf.little_endian || elf.header.e_machine != machine {
        return Err(ElfError::WrongMachine {
            found: format!(
                "{}{}-bit {} endian",
                goblin::elf::header::machine_to_str(elf.header.e_machine),
                if elf.is_64 { " 64" } else { " 32" },
                if elf.little_endian { "little" } else { "big" }
            ),
            expected: arch,
        });
    }
    let t = elf.header.e_type;
    if t != goblin::elf::header::ET_EXEC && t != goblin::elf::header::ET_DYN {
        return Err(ElfError::NotExecutable(t));
    }
    // 64-bit little endian, checked above.
    let ctx = goblin::container::Ctx::new(
        goblin::container::Container::Big,
        goblin::container::Endian::Little,
    );
    let program_headers = goblin::elf::ProgramHeader::parse(
        data,
        usize::try_from(elf.header.e_phoff).unwrap_or(usize::MAX),
        usize::from(elf.header.e_phnum),
        ctx,
    )
    .map_err(malformed)?;
    let interps: Vec<_> = program_headers
        .iter()
        .filter(|p| p.p_type == PT_INTERP)
        .collect();
    if interps.len() > 1 {
        return Err(ElfError::ManyInterpreters(interps.len()));
    }
    let dynamics = program_headers
        .iter()
        .filter(|p| p.p_type == PT_DYNAMIC)
        .count();
    if dynamics > 1 {
        return Err(ElfError::ManyDynamic(dynamics));
    }
    // The interpreter string is read here from the one PT_INTERP, as the kernel reads it: the
    // bytes up to the first NUL within p_filesz.
    let interpreter = match interps.first() {
        None => None,
        Some(ph) => {
            let start = usize::try_from(ph.p_offset).ok();
            let len = usize::try_from(ph.p_filesz).ok();
            let bytes = start
                .zip(len)
                .and_then(|(s, l)| data.get(s..s.checked_add(l)?))
                .ok_or_else(|| ElfError::Malformed("PT_INTERP lies outside the file".into()))?;
            let end = bytes.iter().position(|b| *b == 0).unwrap_or(bytes.len());
            let s = std::str::from_utf8(&bytes[..end])
                .map_err(|_| ElfError::Malformed("PT_INTERP is not UTF-8".into()))?;
            Some(s.to_string())
        }
    };
    // A PT_INTERP that is empty or not UTF-8 throughout is read differently by different
    // parsers: refused.
    if let Some(ph) = interps.first() {
        let whole = usize::try_from(ph.p_filesz)
            .ok()
            .and_then(|l| l.checked_sub(1))
            .and_then(|l| data.get(usize::try_from(ph.p_offset).ok()?..)?.get(..l));
        if whole.is_none_or(|b| std::str::from_utf8(b).is_err()) {
            return Err(ElfError::Malformed("inconsistent PT_INTERP".into()));
        }
    }
    let mut libraries = Vec::new();
    let mut paths = Vec::new();
    let dynamic = goblin::elf::Dynamic::parse(data, &program_headers, ctx).map_err(malformed)?;
    if let Some(dynamic) = dynamic {
        let strtab =
            goblin::strtab::Strtab::parse(data, dynamic.info.strtab, dynamic.info.strsz, 0)
                .map_err(malformed)?;
        if dynamic.info.needed_count > 0 {
            libraries = dynamic
                .get_libraries(&strtab)
                .into_iter()
                .map(str::to_string)
                .collect();
        }
        use goblin::elf::dynamic::{DT_RPATH, DT_RUNPATH};
        for tag in [DT_RUNPATH, DT_RPATH] {
            for d in dynamic.dyns.iter().filter(|d| d.d_tag == tag) {
                let at = usize::try_from(d.d_val).unwrap_or(usize::MAX);
                if let Some(p) = strtab.get_at(at) {
                    paths.push(p.to_string());
                }
            }
        }
    }
    for l in &libraries {
        check_library_name(l)?;
    }
    let search = paths
        .iter()
        .flat_map(|s| s.split(':'))
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect();
    Ok(Needs {
        interpreter,
        libraries,
        search,
    })
}

fn kind_of(ft: std::fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if ft.is_dir() {
        "directory"
    } else if ft.is_socket() {
        "socket"
    } else if ft.is_fifo() {
        "FIFO"
    } else if ft.is_block_device() || ft.is_char_device() {
        "device"
    } else if ft.is_symlink() {
        "symbolic link"
    } else {
        "special file"
    }
}

/// Resolves `path` (a clean path under the allow-list) to a regular file whose canonical path is
/// also under the allow-list.
fn resolve_allowed(path: &Path, what: &'static str) -> Result<PathBuf, ElfError> {
    if !is_allowed_path(path) {
        return Err(ElfError::Outside {
            what,
            path: escaped(&path.to_string_lossy()),
        });
    }
    let real = std::fs::canonicalize(path).map_err(|e| ElfError::Io {
        path: path.display().to_string(),
        error: e.to_string(),
    })?;
    if !is_allowed_path(&real) {
        return Err(ElfError::Escapes {
            path: path.display().to_string(),
            real: real.display().to_string(),
        });
    }
    let md = std::fs::symlink_metadata(&real).map_err(|e| ElfError::Io {
        path: real.display().to_string(),
        error: e.to_string(),
    })?;
    if !md.file_type().is_file() {
        return Err(ElfError::NotRegular {
            path: real.display().to_string(),
            kind: kind_of(md.file_type()),
        });
    }
    Ok(real)
}

fn read_limited(path: &Path) -> Result<Vec<u8>, ElfError> {
    use std::io::Read;
    let io = |e: std::io::Error| ElfError::Io {
        path: path.display().to_string(),
        error: e.to_string(),
    };
    let mut data = Vec::new();
    std::fs::File::open(path)
        .map_err(io)?
        .take(MAX_LIBRARY_SIZE + 1)
        .read_to_end(&mut data)
        .map_err(io)?;
    if data.len() as u64 > MAX_LIBRARY_SIZE {
        return Err(ElfError::Malformed(format!(
            "{} is larger than {MAX_LIBRARY_SIZE} bytes",
            path.display()
        )));
    }
    Ok(data)
}

/// Maps each path the loader will open inside the sandbox to the real file to bind there: the
/// interpreter and every library, each a regular file under [`ALLOWED_ROOTS`]. `executable` is
/// checked with [`inspect`] first.
pub fn dependencies(executable: &Path) -> Result<BTreeMap<PathBuf, PathBuf>, ElfError> {
    let data = read_limited(executable)?;
    let needs = inspect(&data)?;
    let mut binds = BTreeMap::new();
    if let Some(interp) = &needs.interpreter {
        let inside = PathBuf::from(interp);
        let real = resolve_allowed(&inside, "interpreter")?;
        binds.insert(inside, real);
    }
    // (library name, RUNPATH of the file that needs it, that file's directory for $ORIGIN)
    let mut queue: Vec<(String, Vec<String>, Option<PathBuf>)> = needs
        .libraries
        .into_iter()
        .map(|l| (l, needs.search.clone(), None))
        .collect();
    let mut seen = BTreeSet::new();
    while let Some((lib, search, origin)) = queue.pop() {
        if !seen.insert(lib.clone()) {
            continue;
        }
        if seen.len() > MAX_LIBRARIES {
            return Err(ElfError::TooManyLibraries);
        }
        check_library_name(&lib)?;
        let dirs: Vec<PathBuf> = search
            .iter()
            .filter_map(|s| match &origin {
                Some(o) => Some(PathBuf::from(
                    s.replace("${ORIGIN}", &o.to_string_lossy())
                        .replace("$ORIGIN", &o.to_string_lossy()),
                )),
                None if s.contains("ORIGIN") => None,
                None => Some(PathBuf::from(s)),
            })
            .filter(|d| is_allowed_path(d))
            .chain(SYSTEM_DIRS.iter().map(PathBuf::from))
            .collect();
        let Some(inside) = dirs.iter().map(|d| d.join(&lib)).find(|p| p.exists()) else {
            return Err(ElfError::NotFound(escaped(&lib)));
        };
        let real = resolve_allowed(&inside, "library")?;
        let more = parse(&read_limited(&real)?)?;
        let dir = real.parent().map(Path::to_path_buf);
        queue.extend(
            more.libraries
                .into_iter()
                .map(|l| (l, more.search.clone(), dir.clone())),
        );
        binds.insert(inside, real);
    }
    Ok(binds)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A real dynamically linked executable of this host.
    pub(crate) fn system_executable() -> Vec<u8> {
        std::fs::read("/bin/true").expect("/bin/true")
    }

    /// Rewrites the first program header of type `from` into `to` with the given file range.
    pub(crate) fn retype_phdr(data: &mut [u8], from: u32, to: u32, offset: u64, size: u64) -> bool {
        let phoff = u64::from_le_bytes(data[32..40].try_into().expect("8")) as usize;
        let phentsize = u16::from_le_bytes(data[54..56].try_into().expect("2")) as usize;
        let phnum = u16::from_le_bytes(data[56..58].try_into().expect("2")) as usize;
        for i in 0..phnum {
            let at = phoff + i * phentsize;
            let t = u32::from_le_bytes(data[at..at + 4].try_into().expect("4"));
            if t == from {
                data[at..at + 4].copy_from_slice(&to.to_le_bytes());
                data[at + 8..at + 16].copy_from_slice(&offset.to_le_bytes());
                data[at + 32..at + 40].copy_from_slice(&size.to_le_bytes());
                data[at + 40..at + 48].copy_from_slice(&size.to_le_bytes());
                return true;
            }
        }
        false
    }

    /// Appends `s\0` to the file and returns its offset and length.
    pub(crate) fn append_string(data: &mut Vec<u8>, s: &str) -> (u64, u64) {
        let at = data.len() as u64;
        data.extend_from_slice(s.as_bytes());
        data.push(0);
        (at, s.len() as u64 + 1)
    }

    /// A copy of a real executable with a second PT_INTERP (a PT_NOTE rewritten) naming `path`.
    pub(crate) fn with_second_interp(path: &str) -> Vec<u8> {
        use goblin::elf::program_header::{PT_INTERP, PT_NOTE};
        let mut data = system_executable();
        let (off, len) = append_string(&mut data, path);
        assert!(retype_phdr(&mut data, PT_NOTE, PT_INTERP, off, len));
        data
    }

    #[test]
    fn a_system_executable_resolves_to_allowed_regular_files() {
        let binds = dependencies(Path::new("/bin/true")).expect("deps");
        assert!(!binds.is_empty());
        for (inside, real) in &binds {
            assert!(is_allowed_path(inside), "{}", inside.display());
            assert!(is_allowed_path(real), "{}", real.display());
            assert!(std::fs::symlink_metadata(real).expect("md").is_file());
        }
    }

    #[test]
    fn a_second_interpreter_is_refused_whatever_it_names() {
        let data = with_second_interp("/var/lib/paratime-node/data");
        assert_eq!(inspect(&data), Err(ElfError::ManyInterpreters(2)));
        let data = with_second_interp("/lib64/ld-linux-x86-64.so.2");
        assert_eq!(inspect(&data), Err(ElfError::ManyInterpreters(2)));
    }

    #[test]
    fn paths_outside_the_allow_list_are_refused() {
        for p in [
            "/var/lib/paratime-node/data",
            "/lib/../var/lib/x",
            "/lib/./x",
            "lib/x",
            "/lib",
            "/libx/y",
            "/usr/lib//x",
            "",
        ] {
            assert!(!is_allowed_path(Path::new(p)), "{p}");
        }
        assert!(is_allowed_path(Path::new(
            "/lib/x86_64-linux-gnu/libc.so.6"
        )));
        assert!(is_allowed_path(Path::new("/nix/store/abc-glibc/lib/ld.so")));
    }

    #[test]
    fn an_interpreter_that_is_a_directory_is_refused_by_the_launcher() {
        // Passes the static checks (under /usr/lib) but is no regular file.
        let e = resolve_allowed(Path::new("/usr/lib/x86_64-linux-gnu"), "interpreter");
        assert!(
            matches!(
                e,
                Err(ElfError::NotRegular {
                    kind: "directory",
                    ..
                })
            ),
            "{e:?}"
        );
    }

    #[test]
    fn library_names_must_be_plain() {
        for n in [
            "/var/lib/paratime-node/data/identity.pem",
            "../x",
            "..",
            ".",
            "a/b",
            "",
        ] {
            assert!(check_library_name(n).is_err(), "{n}");
        }
        check_library_name("libc.so.6").expect("plain");
    }

    #[test]
    fn non_elf_and_foreign_machines_are_refused() {
        assert_eq!(inspect(b"#!/bin/sh\n"), Err(ElfError::NotElf));
        let mut data = system_executable();
        data[18..20].copy_from_slice(&40u16.to_le_bytes()); // EM_ARM
        assert!(matches!(inspect(&data), Err(ElfError::WrongMachine { .. })));
        let mut data = system_executable();
        data[16..18].copy_from_slice(&1u16.to_le_bytes()); // ET_REL
        assert!(matches!(
            inspect(&data),
            Err(ElfError::NotExecutable(1)) | Err(ElfError::Malformed(_))
        ));
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..2048)) {
            let mut data = b"\x7fELF".to_vec();
            data.extend(bytes);
            let _ = inspect(&data);
        }
    }
}
