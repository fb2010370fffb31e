//! ParaTime bundles (`.orc`, oasis-facts §5): a ZIP whose first entry is `META-INF/MANIFEST.MF`
//! (JSON) and whose other entries are flat files, each with a SHA-512/256 digest in the manifest.
//!
//! Owns: building, opening (every check happens before anything is written), and exploding into
//! `<data_dir>/runtimes/bundles/<manifest-hash>/`. Never executes anything.

mod central_directory;
pub mod elf;
mod manifest;
pub mod registry;

pub use manifest::{Component, ElfMetadata, Manifest, Ronl, MANIFEST_NAME};
pub use paratime_state::{RuntimeId, RuntimeIdError};

use sha2::{Digest, Sha512_256};
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Why a bundle was refused.
#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    /// Not a readable ZIP.
    #[error("not a valid .orc bundle (ZIP): {0}")]
    Zip(String),
    /// Bigger than `runtime.max_bundle_size`.
    #[error("bundle is {size} bytes, over runtime.max_bundle_size ({max} bytes)")]
    TooLarge {
        /// Size (file, or uncompressed content).
        size: u64,
        /// Limit.
        max: u64,
    },
    /// The first entry is not the manifest.
    #[error("invalid manifest file name: the first entry must be {MANIFEST_NAME}, found '{0}'")]
    ManifestNotFirst(String),
    /// A directory, `..`, absolute path or nested path.
    #[error("failed to sanitize path '{0}': bundle entries must be plain file names (no directories, '..' or absolute paths)")]
    BadPath(String),
    /// A symlink entry.
    #[error("bundle entry '{0}' is a symbolic link: refused")]
    Symlink(String),
    /// Two entries with the same name.
    #[error("bundle entry '{0}' appears twice")]
    Duplicate(String),
    /// A file without a digest.
    #[error("missing digest: '{0}'")]
    MissingDigest(String),
    /// A digest that does not match.
    #[error("invalid digest: '{0}'")]
    WrongDigest(String),
    /// A digest for a file that is not there.
    #[error("missing file '{0}' listed in the manifest digests")]
    MissingFile(String),
    /// Malformed manifest.
    #[error("malformed manifest: {0}")]
    Manifest(String),
    /// SGX/TDX components.
    #[error("bundle has TEE (SGX/TDX) components: not supported by paratime-node, which runs non-TEE ParaTimes only")]
    Tee,
    /// Other structural problem.
    #[error("invalid bundle: {0}")]
    Invalid(String),
    /// The RONL executable cannot run in this node's sandbox.
    #[error("RONL executable '{name}' refused: {reason}")]
    Executable {
        /// File name in the bundle.
        name: String,
        /// Why.
        reason: crate::bundle::elf::ElfError,
    },
    /// Exploded file differs from its digest.
    #[error("runtime/bundle: corrupted asset: '{0}'")]
    Corrupted(PathBuf),
    /// I/O failure.
    #[error("{path}: {source}")]
    Io {
        /// Path.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> BundleError + '_ {
    move |source| BundleError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// SHA-512/256 in hex.
pub fn digest_hex(data: &[u8]) -> String {
    hex::encode(Sha512_256::digest(data))
}

/// Longest file name in a bundle.
const MAX_NAME: usize = 255;

fn check_name(name: &str) -> Result<(), BundleError> {
    let ok = !name.is_empty()
        && name.len() <= MAX_NAME
        && name != "."
        && name != ".."
        // The manifest's directory in an exploded bundle.
        && !name.eq_ignore_ascii_case("META-INF")
        && !name.contains(['/', '\\', '\0'])
        && !name.contains(char::is_control)
        && !name.starts_with('-');
    if ok {
        Ok(())
    } else {
        Err(BundleError::BadPath(
            crate::logging::escape_controls(&name.chars().take(MAX_NAME).collect::<String>())
                .into_owned(),
        ))
    }
}

/// A verified bundle in memory.
#[derive(Debug)]
pub struct Bundle {
    /// The manifest.
    pub manifest: Manifest,
    /// File name → contents (manifest excluded).
    pub files: BTreeMap<String, Vec<u8>>,
    /// The RONL component.
    pub ronl: Ronl,
}

/// What `bundle build` needs.
pub struct BuildOptions<'a> {
    /// The RONL executable.
    pub executable: &'a Path,
    /// ParaTime name.
    pub name: &'a str,
    /// Runtime ID.
    pub runtime_id: RuntimeId,
    /// Runtime version.
    pub version: paratime_sdk::Version,
}

/// Name of the executable inside bundles built here.
pub const EXECUTABLE_NAME: &str = "runtime.elf";

/// Builds an `.orc` bundle and returns its manifest.
pub fn build(opts: &BuildOptions<'_>, output: &Path) -> Result<Manifest, BundleError> {
    let exe = std::fs::read(opts.executable).map_err(io(opts.executable))?;
    crate::bundle::elf::inspect(&exe).map_err(|reason| BundleError::Executable {
        name: opts.executable.display().to_string(),
        reason,
    })?;
    let manifest = Manifest {
        name: opts.name.to_string(),
        id: opts.runtime_id,
        version: None,
        executable: None,
        sgx: None,
        components: vec![Component {
            kind: "ronl".into(),
            name: String::new(),
            version: opts.version,
            executable: None,
            elf: Some(ElfMetadata {
                executable: EXECUTABLE_NAME.into(),
            }),
            sgx: None,
            tdx: None,
            identity: Vec::new(),
            disabled: false,
        }],
        digests: Some(
            [(EXECUTABLE_NAME.to_string(), digest_hex(&exe))]
                .into_iter()
                .collect(),
        ),
    };
    let tmp = output.with_extension("orc.tmp");
    let file = std::fs::File::create(&tmp).map_err(io(&tmp))?;
    let mut zip = zip::ZipWriter::new(file);
    let opts_zip = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .last_modified_time(zip::DateTime::default())
        .unix_permissions(0o644);
    let zerr = |e: zip::result::ZipError| BundleError::Zip(e.to_string());
    zip.start_file(MANIFEST_NAME, opts_zip).map_err(zerr)?;
    let json =
        serde_json::to_vec_pretty(&manifest).map_err(|e| BundleError::Manifest(e.to_string()))?;
    zip.write_all(&json).map_err(io(&tmp))?;
    // Stored, not deflated: verifying a bundle then runs at hashing speed (inflate was two
    // thirds of it), at the price of a larger file.
    zip.start_file(
        EXECUTABLE_NAME,
        opts_zip
            .compression_method(zip::CompressionMethod::Stored)
            .unix_permissions(0o755),
    )
    .map_err(zerr)?;
    zip.write_all(&exe).map_err(io(&tmp))?;
    zip.finish().map_err(zerr)?;
    std::fs::rename(&tmp, output).map_err(io(output))?;
    Ok(manifest)
}

/// Reads `inner` to its end into `data`, a chunk at a time, hashing each chunk while it is in
/// the CPU's cache (one pass over the file, one copy). Chunks stay within `data`'s capacity
/// while there is any, so a buffer reserved for the whole file is never reallocated.
fn read_hashed(mut inner: impl Read, data: &mut Vec<u8>) -> std::io::Result<Sha512_256> {
    const CHUNK: usize = 128 << 10;
    let mut ctx = Sha512_256::new();
    loop {
        let start = data.len();
        // Within the reserved capacity while there is any; past it, doubling from a small
        // probe (as `read_to_end` does), so an entry that is tiny after all keeps a tiny buffer.
        let room = match data.capacity() - start {
            0 => start.clamp(32, CHUNK),
            free => free.min(CHUNK),
        };
        data.resize(start + room, 0);
        let read = inner.read(&mut data[start..]);
        let n = *read.as_ref().unwrap_or(&0);
        ctx.update(&data[start..start + n]);
        data.truncate(start + n);
        match read {
            Ok(0) => return Ok(ctx),
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

impl Bundle {
    /// Opens and fully verifies a bundle file.
    pub fn open(path: &Path, max_size: u64) -> Result<Self, BundleError> {
        let size = std::fs::metadata(path).map_err(io(path))?.len();
        if size > max_size {
            return Err(BundleError::TooLarge {
                size,
                max: max_size,
            });
        }
        let file = std::fs::File::open(path).map_err(io(path))?;
        Self::from_reader(file, max_size)
    }

    /// Verifies a bundle from any seekable reader.
    pub fn from_reader<R: Read + std::io::Seek>(
        mut reader: R,
        max_size: u64,
    ) -> Result<Self, BundleError> {
        let seek_err = |e: std::io::Error| BundleError::Zip(format!("cannot seek: {e}"));
        let archive_len = reader.seek(std::io::SeekFrom::End(0)).map_err(seek_err)?;
        reader.rewind().map_err(seek_err)?;
        // Duplicate names first: the zip crate keeps only one entry per name.
        central_directory::entry_names(&mut reader, max_size)?;
        let mut zip = zip::ZipArchive::new(reader).map_err(|e| BundleError::Zip(e.to_string()))?;
        if zip.is_empty() {
            return Err(BundleError::ManifestNotFirst(String::new()));
        }
        let mut manifest_bytes = Vec::new();
        let mut files = BTreeMap::new();
        let mut digests: BTreeMap<String, String> = BTreeMap::new();
        let mut total: u64 = 0;
        // What the buffers reserved from the headers' sizes, altogether: at most the archive's
        // length, however many entries lie about their size (each buffer is kept).
        let mut reserved: u64 = 0;
        for i in 0..zip.len() {
            let mut entry = zip
                .by_index(i)
                .map_err(|e| BundleError::Zip(e.to_string()))?;
            let name = entry
                .name()
                .map_err(|e| BundleError::Zip(e.to_string()))?
                .to_string();
            if i == 0 {
                if name != MANIFEST_NAME {
                    return Err(BundleError::ManifestNotFirst(name));
                }
            } else {
                if entry.is_dir() || name.ends_with('/') {
                    return Err(BundleError::BadPath(name));
                }
                check_name(&name)?;
            }
            if entry.is_symlink() || entry.unix_mode().is_some_and(|m| m & 0o170000 == 0o120000) {
                return Err(BundleError::Symlink(name));
            }
            // Bound decompression by the size limit, whatever the headers claim; hash in the
            // same pass.
            let budget = max_size.saturating_sub(total).saturating_add(1);
            // Room for the size the header gives (one copy of the data instead of a doubling
            // series), but lying headers reserve at most the archive's own length in all.
            let reserve = entry
                .size()
                .min(budget)
                .min(archive_len.saturating_sub(reserved));
            reserved = reserved.saturating_add(reserve);
            // One byte more: the read that finds the end needs room too.
            let mut data = Vec::with_capacity(usize::try_from(reserve).map_or(0, |r| r + 1));
            let ctx = read_hashed((&mut entry).take(budget), &mut data)
                .map_err(|e| BundleError::Zip(format!("entry '{name}': {e}")))?;
            let digest = hex::encode(ctx.finalize());
            total += data.len() as u64;
            if total > max_size {
                return Err(BundleError::TooLarge {
                    size: total,
                    max: max_size,
                });
            }
            if i == 0 {
                manifest_bytes = data;
            } else if files.insert(name.clone(), data).is_some() {
                return Err(BundleError::Duplicate(name));
            } else {
                digests.insert(name, digest);
            }
        }
        if manifest_bytes.len() > manifest::MAX_MANIFEST_SIZE {
            return Err(BundleError::Manifest(format!(
                "{} bytes, over the limit of {} bytes",
                manifest_bytes.len(),
                manifest::MAX_MANIFEST_SIZE
            )));
        }
        let manifest =
            Manifest::parse(&manifest_bytes).map_err(|e| BundleError::Manifest(e.to_string()))?;
        manifest.check_bounds()?;
        for name in files.keys() {
            let computed = digests.get(name).map(String::as_str).unwrap_or_default();
            match manifest.digests().get(name) {
                None => return Err(BundleError::MissingDigest(name.clone())),
                Some(d) if !d.eq_ignore_ascii_case(computed) => {
                    return Err(BundleError::WrongDigest(name.clone()))
                }
                Some(_) => {}
            }
        }
        for name in manifest.digests().keys() {
            check_name(name)?;
            if !files.contains_key(name) {
                return Err(BundleError::MissingFile(name.clone()));
            }
        }
        let ronl = manifest.ronl()?;
        check_name(&ronl.executable)?;
        let Some(exe) = files.get(&ronl.executable) else {
            return Err(BundleError::MissingFile(ronl.executable.clone()));
        };
        crate::bundle::elf::inspect(exe).map_err(|reason| BundleError::Executable {
            name: ronl.executable.clone(),
            reason,
        })?;
        Ok(Self {
            manifest,
            files,
            ronl,
        })
    }

    /// Writes the bundle to `<bundles_dir>/<manifest-hash>/` (dirs 0750, files 0640, the
    /// executable 0750: the group is the sandbox launcher's under systemd, the bundles
    /// directory passes it on; nobody else has access). An existing directory is re-hashed
    /// instead and must match.
    pub fn explode(&self, bundles_dir: &Path) -> Result<PathBuf, BundleError> {
        let hash = self.manifest.hash_hex();
        let dir = bundles_dir.join(&hash);
        if dir.exists() {
            verify_exploded(&dir, &self.manifest)?;
            return Ok(dir);
        }
        let tmp = bundles_dir.join(format!(".{hash}.tmp"));
        if tmp.exists() {
            std::fs::remove_dir_all(&tmp).map_err(io(&tmp))?;
        }
        // Everything written takes the bundles directory's group (under systemd: the sandbox
        // launcher's, of which the node's user is a member), whatever the node's primary group.
        let gid = {
            use std::os::unix::fs::MetadataExt;
            std::fs::metadata(bundles_dir)
                .map_err(io(bundles_dir))?
                .gid()
        };
        let regroup = |p: &Path| -> Result<(), BundleError> {
            use std::os::unix::fs::MetadataExt;
            let md = std::fs::symlink_metadata(p).map_err(io(p))?;
            if md.gid() != gid {
                std::os::unix::fs::lchown(p, None, Some(gid)).map_err(|e| {
                    BundleError::Invalid(format!(
                        "cannot give {} the group {gid} of the bundles directory {} ({e}): the node's user must be a member of that group",
                        p.display(),
                        bundles_dir.display()
                    ))
                })?;
            }
            Ok(())
        };
        let mkdir = |p: &Path| {
            std::fs::DirBuilder::new()
                .mode(0o750)
                .create(p)
                .map_err(io(p))?;
            regroup(p)?;
            std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o750)).map_err(io(p))
        };
        mkdir(&tmp)?;
        mkdir(&tmp.join("META-INF"))?;
        let write = |p: &Path, data: &[u8], mode: u32| -> Result<(), BundleError> {
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(mode)
                .open(p)
                .map_err(io(p))?;
            f.write_all(data).map_err(io(p))?;
            f.sync_all().map_err(io(p))?;
            regroup(p)?;
            std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).map_err(io(p))
        };
        let manifest_json = serde_json::to_vec_pretty(&self.manifest)
            .map_err(|e| BundleError::Manifest(e.to_string()))?;
        write(&tmp.join(MANIFEST_NAME), &manifest_json, 0o640)?;
        for (name, data) in &self.files {
            let mode = if *name == self.ronl.executable {
                0o750
            } else {
                0o640
            };
            write(&tmp.join(name), data, mode)?;
        }
        std::fs::rename(&tmp, &dir).map_err(io(&dir))?;
        Ok(dir)
    }
}

/// Reads the manifest of an exploded bundle.
pub fn read_exploded_manifest(dir: &Path) -> Result<Manifest, BundleError> {
    let p = dir.join(MANIFEST_NAME);
    let bytes = std::fs::read(&p).map_err(io(&p))?;
    Manifest::parse(&bytes).map_err(|e| BundleError::Manifest(format!("{}: {e}", p.display())))
}

/// Re-hashes every file of an exploded bundle against `manifest`; symlinks are refused.
pub fn verify_exploded(dir: &Path, manifest: &Manifest) -> Result<(), BundleError> {
    for (name, digest) in manifest.digests() {
        check_name(name)?;
        let p = dir.join(name);
        let md = std::fs::symlink_metadata(&p).map_err(io(&p))?;
        if !md.file_type().is_file() {
            return Err(BundleError::Corrupted(p));
        }
        let data = std::fs::read(&p).map_err(io(&p))?;
        if !digest.eq_ignore_ascii_case(&digest_hex(&data)) {
            return Err(BundleError::Corrupted(p));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> (tempfile::TempDir, PathBuf) {
        let t = tempfile::tempdir().expect("tempdir");
        let out = t.path().join("b.orc");
        sample_with(&t, &crate::bundle::elf::tests::system_executable(), &out).expect("build");
        (t, out)
    }

    /// Builds a bundle around `exe_bytes` without the builder's checks (to test verify's).
    fn sample_with(t: &tempfile::TempDir, exe_bytes: &[u8], out: &Path) -> Result<(), BundleError> {
        let exe = t.path().join("exe");
        std::fs::write(&exe, crate::bundle::elf::tests::system_executable()).expect("write");
        build(
            &BuildOptions {
                executable: &exe,
                name: "x",
                runtime_id: "0000000000000000000000000000000000000000000000000000000000000001"
                    .parse()
                    .expect("id"),
                version: paratime_sdk::Version::new(0, 1, 0),
            },
            out,
        )?;
        // Swap the executable's bytes and digest in: rebuild the archive by hand.
        let b = Bundle::open(out, 1 << 30)?;
        let mut manifest = b.manifest.clone();
        manifest
            .digests
            .get_or_insert_default()
            .insert(EXECUTABLE_NAME.into(), digest_hex(exe_bytes));
        write_raw(out, &manifest, &[(EXECUTABLE_NAME, exe_bytes)]);
        Ok(())
    }

    /// Writes an archive: the manifest first, then `files`, no checks at all.
    fn write_raw(out: &Path, manifest: &Manifest, files: &[(&str, &[u8])]) {
        let mut zip = zip::ZipWriter::new(std::fs::File::create(out).expect("create"));
        let o = zip::write::SimpleFileOptions::default();
        zip.start_file(MANIFEST_NAME, o).expect("start");
        zip.write_all(&serde_json::to_vec(manifest).expect("json"))
            .expect("write");
        for (n, d) in files {
            zip.start_file(*n, o).expect("start");
            zip.write_all(d).expect("write");
        }
        zip.finish().expect("finish");
    }

    #[test]
    fn hostile_executables_and_names_are_refused_at_verify() {
        let t = tempfile::tempdir().expect("tempdir");
        let out = t.path().join("h.orc");
        let two = crate::bundle::elf::tests::with_second_interp("/var/lib/paratime-node/data");
        sample_with(&t, &two, &out).expect("raw build");
        let e = Bundle::open(&out, 1 << 30).expect_err("two PT_INTERP");
        assert!(e.to_string().contains("2 PT_INTERP"), "{e}");
        sample_with(&t, b"#!/bin/sh\necho hi\n", &out).expect("raw build");
        let e = Bundle::open(&out, 1 << 30).expect_err("not ELF");
        assert!(e.to_string().contains("not an ELF executable"), "{e}");

        let (_t2, good) = sample();
        let b = Bundle::open(&good, 1 << 30).expect("open");
        let exe = crate::bundle::elf::tests::system_executable();
        for bad in ["META-INF", "meta-inf", "a\nb", &"n".repeat(300)] {
            let mut m = b.manifest.clone();
            m.digests
                .get_or_insert_default()
                .insert(bad.to_string(), digest_hex(b"x"));
            write_raw(&out, &m, &[(EXECUTABLE_NAME, &exe), (bad, b"x")]);
            let e = Bundle::open(&out, 1 << 30).expect_err(bad);
            assert!(matches!(e, BundleError::BadPath(_)), "{bad}: {e}");
        }
        let mut m = b.manifest.clone();
        m.name = "n".repeat(10_000);
        write_raw(&out, &m, &[(EXECUTABLE_NAME, &exe)]);
        let e = Bundle::open(&out, 1 << 30).expect_err("long name");
        assert!(e.to_string().contains("name"), "{e}");
    }

    #[test]
    fn build_open_explode() {
        let (t, out) = sample();
        let b = Bundle::open(&out, 1 << 20).expect("open");
        assert_eq!(b.ronl.executable, EXECUTABLE_NAME);
        let dir = b.explode(t.path()).expect("explode");
        assert_eq!(
            dir.file_name().and_then(|n| n.to_str()),
            Some(b.manifest.hash_hex().as_str())
        );
        // Second explode re-hashes; tampering is detected.
        b.explode(t.path()).expect("re-explode");
        std::fs::write(dir.join(EXECUTABLE_NAME), b"tampered").expect("tamper");
        assert!(matches!(
            b.explode(t.path()),
            Err(BundleError::Corrupted(_))
        ));
        assert!(matches!(
            Bundle::open(&out, 10),
            Err(BundleError::TooLarge { .. })
        ));
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..512)) {
            let _ = Bundle::from_reader(std::io::Cursor::new(bytes), 1 << 20);
        }

        #[test]
        fn mutated_bundles_are_refused_or_intact(pos in 0usize..4096, bit in 0u8..8) {
            let (_t, out) = sample();
            let mut bytes = std::fs::read(&out).expect("read");
            let i = pos % bytes.len();
            bytes[i] ^= 1 << bit;
            // Either refused, or (a flip in unchecked ZIP metadata) the content is unchanged.
            if let Ok(b) = Bundle::from_reader(std::io::Cursor::new(bytes), 1 << 20) {
                let orig = Bundle::open(&out, 1 << 20).expect("open");
                proptest::prop_assert_eq!(b.files, orig.files);
            }
        }
    }

    /// Entries whose headers claim 16 MiB each but hold one byte: the buffers reserved from
    /// the claims stay within the archive's length in all (each entry's buffer is kept, so a
    /// reservation per entry of the archive's length would grow with the number of entries).
    #[test]
    fn lying_entry_sizes_reserve_at_most_the_archive_length_in_all() {
        let (_t, good) = sample();
        let b = Bundle::open(&good, 1 << 30).expect("open");
        let exe = b.files[EXECUTABLE_NAME].clone();
        let mut m = b.manifest.clone();
        let names: Vec<String> = (0..200).map(|i| format!("f{i}")).collect();
        for n in &names {
            m.digests
                .get_or_insert_default()
                .insert(n.clone(), digest_hex(b"x"));
        }
        let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        let stored = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Stored);
        zip.start_file(MANIFEST_NAME, stored).expect("start");
        zip.write_all(&serde_json::to_vec(&m).expect("json"))
            .expect("write");
        zip.start_file(EXECUTABLE_NAME, stored).expect("start");
        zip.write_all(&exe).expect("write");
        for n in &names {
            zip.start_file(n.as_str(), stored).expect("start");
            zip.write_all(b"x").expect("write");
        }
        let mut bytes = zip.finish().expect("finish").into_inner();
        // Every one-byte entry's uncompressed size, in its local and central headers: 16 MiB.
        let claim = (16u32 << 20).to_le_bytes();
        let mut patched = 0;
        for at in 0..bytes.len().saturating_sub(46) {
            let (sig, offset) = match bytes[at..at + 4] {
                [0x50, 0x4b, 0x03, 0x04] => (true, 22),
                [0x50, 0x4b, 0x01, 0x02] => (true, 24),
                _ => (false, 0),
            };
            if sig && bytes[at + offset..at + offset + 4] == 1u32.to_le_bytes() {
                bytes[at + offset..at + offset + 4].copy_from_slice(&claim);
                patched += 1;
            }
        }
        assert_eq!(patched, 2 * names.len(), "patched headers");
        let len = bytes.len();
        let opened = Bundle::from_reader(std::io::Cursor::new(bytes), 1 << 30);
        // Refused (a size that disagrees with the data) or opened within the bound.
        if let Ok(b) = opened {
            let capacity: usize = b.files.values().map(Vec::capacity).sum();
            assert!(
                capacity <= len + 64 * b.files.len(),
                "{capacity} bytes reserved for a {len}-byte archive of {} files",
                b.files.len()
            );
            assert!(names.iter().all(|n| b.files[n] == b"x"));
        }
    }

    #[test]
    fn manifest_hash_is_stable_and_order_independent() {
        let (_t, out) = sample();
        let b = Bundle::open(&out, 1 << 20).expect("open");
        let json = serde_json::to_string(&b.manifest).expect("json");
        let again = Manifest::parse(json.as_bytes()).expect("parse");
        assert_eq!(again.hash(), b.manifest.hash());
    }
}
