//! Bundle building, verification and every refusal, on real files.

mod common;
use common::*;
use std::io::Write;
use std::path::Path;

fn verify(p: &Path, extra: &[&str]) -> (i32, String) {
    let mut args = vec!["bundle", "verify", p.to_str().expect("utf8")];
    args.extend_from_slice(extra);
    let o = run(&args);
    (o.status.code().unwrap_or(-1), text(&o))
}

/// Writes a zip with the given (name, data, unix mode) entries.
fn craft(p: &Path, entries: &[(&str, &[u8], u32)]) {
    let f = std::fs::File::create(p).expect("create");
    let mut z = zip::ZipWriter::new(f);
    for (name, data, mode) in entries {
        let o = zip::write::SimpleFileOptions::default().unix_permissions(*mode);
        if *mode & 0o170000 == 0o120000 {
            z.add_symlink(*name, String::from_utf8_lossy(data), o)
                .expect("symlink");
        } else if name.ends_with('/') {
            z.add_directory(*name, o).expect("dir");
        } else {
            z.start_file(*name, o).expect("start");
            z.write_all(data).expect("write");
        }
    }
    z.finish().expect("finish");
}

fn manifest(files: &[(&str, &[u8])], extra: &str) -> String {
    let digests: Vec<String> = files
        .iter()
        .map(|(n, d)| format!("\"{n}\": \"{}\"", paratime_node::bundle::digest_hex(d)))
        .collect();
    format!(
        "{{\"name\":\"t\",\"id\":\"{RUNTIME_ID}\",\"components\":[{{\"kind\":\"ronl\",\"version\":{{\"major\":0,\"minor\":1}},\"elf\":{{\"executable\":\"runtime.elf\"}}{extra}}}],\"digests\":{{{}}}}}",
        digests.join(",")
    )
}

const EXE: &[u8] = b"\x7fELF-not-really-but-hashed";

#[test]
fn build_verify_inspect_and_flipped_byte() {
    let d = NodeDir::new();
    let b = d.build_bundle();
    let (code, out) = verify(&b, &[]);
    assert_eq!(code, 0, "{out}");
    let o = run(&["bundle", "inspect", b.to_str().expect("utf8")]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("inspect prints JSON");
    assert_eq!(v["id"], RUNTIME_ID);
    assert_eq!(v["components"][0]["kind"], "ronl");
    assert_eq!(v["manifest_hash"].as_str().map(str::len), Some(64));
    // Flip one byte in the middle of the file: the archive or a digest check must fail.
    let mut bytes = std::fs::read(&b).expect("read");
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x01;
    let t = d.path().join("flipped.orc");
    std::fs::write(&t, bytes).expect("write");
    let (code, out) = verify(&t, &[]);
    assert_ne!(code, 0, "{out}");
}

#[test]
fn refusals_name_the_reason() {
    let d = NodeDir::new();
    let m = manifest(&[("runtime.elf", EXE)], "");
    type Entry<'a> = (&'a str, Vec<u8>, u32);
    let cases: Vec<(&str, Vec<Entry<'_>>, &str)> = vec![
        (
            "manifest-not-first",
            vec![
                ("runtime.elf", EXE.to_vec(), 0o644),
                ("META-INF/MANIFEST.MF", m.clone().into_bytes(), 0o644),
            ],
            "invalid manifest file name",
        ),
        (
            "traversal",
            vec![
                ("META-INF/MANIFEST.MF", m.clone().into_bytes(), 0o644),
                ("../evil", EXE.to_vec(), 0o644),
            ],
            "failed to sanitize path '../evil'",
        ),
        (
            "absolute",
            vec![
                ("META-INF/MANIFEST.MF", m.clone().into_bytes(), 0o644),
                ("/etc/evil", EXE.to_vec(), 0o644),
            ],
            "failed to sanitize path",
        ),
        (
            "directory",
            vec![
                ("META-INF/MANIFEST.MF", m.clone().into_bytes(), 0o644),
                ("sub/", Vec::new(), 0o755),
            ],
            "failed to sanitize path 'sub/'",
        ),
        (
            "symlink",
            vec![
                ("META-INF/MANIFEST.MF", m.clone().into_bytes(), 0o644),
                ("runtime.elf", b"/etc/shadow".to_vec(), 0o120777),
            ],
            "is a symbolic link",
        ),
        (
            "missing-digest",
            vec![
                ("META-INF/MANIFEST.MF", m.clone().into_bytes(), 0o644),
                ("runtime.elf", EXE.to_vec(), 0o644),
                ("extra", b"x".to_vec(), 0o644),
            ],
            "missing digest: 'extra'",
        ),
        (
            "wrong-digest",
            vec![
                ("META-INF/MANIFEST.MF", m.clone().into_bytes(), 0o644),
                ("runtime.elf", b"tampered".to_vec(), 0o644),
            ],
            "invalid digest: 'runtime.elf'",
        ),
        (
            "tee",
            vec![
                (
                    "META-INF/MANIFEST.MF",
                    manifest(
                        &[("runtime.elf", EXE)],
                        ",\"sgx\":{\"executable\":\"runtime.sgxs\"}",
                    )
                    .into_bytes(),
                    0o644,
                ),
                ("runtime.elf", EXE.to_vec(), 0o644),
            ],
            "TEE (SGX/TDX) components: not supported",
        ),
    ];
    for (name, entries, want) in cases {
        let p = d.path().join(format!("{name}.orc"));
        let e: Vec<(&str, &[u8], u32)> = entries
            .iter()
            .map(|(n, b, m)| (*n, b.as_slice(), *m))
            .collect();
        craft(&p, &e);
        let (code, out) = verify(&p, &[]);
        assert_eq!(code, 1, "{name}: {out}");
        assert!(out.contains(want), "{name}: expected '{want}' in: {out}");
    }
    // The same archive around a real executable passes; around a script or headers that only
    // start like ELF, it is refused with the reason.
    let real = std::fs::read("/bin/true").expect("/bin/true");
    let script = b"#!/bin/sh\ncat /var/lib/paratime-node/data/identity.pem\n".to_vec();
    for (exe, want) in [
        (real, None),
        (EXE.to_vec(), Some("malformed ELF headers")),
        (script, Some("not an ELF executable")),
    ] {
        let m = manifest(&[("runtime.elf", &exe)], "");
        let p = d.path().join("exe.orc");
        craft(
            &p,
            &[
                ("META-INF/MANIFEST.MF", m.as_bytes(), 0o644),
                ("runtime.elf", &exe, 0o755),
            ],
        );
        let (code, out) = verify(&p, &[]);
        match want {
            None => assert_eq!(code, 0, "{out}"),
            Some(w) => {
                assert_eq!(code, 1, "{out}");
                assert!(out.contains(w), "expected '{w}' in: {out}");
            }
        }
    }
    // An entry named like the manifest's directory would break explode.
    let real = std::fs::read("/bin/true").expect("/bin/true");
    let m = manifest(&[("runtime.elf", &real), ("META-INF", b"x")], "");
    let p = d.path().join("metainf.orc");
    craft(
        &p,
        &[
            ("META-INF/MANIFEST.MF", m.as_bytes(), 0o644),
            ("runtime.elf", &real, 0o755),
            ("META-INF", b"x", 0o644),
        ],
    );
    let (code, out) = verify(&p, &[]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("failed to sanitize path 'META-INF'"), "{out}");
}

#[test]
fn oversized_bundle_is_refused() {
    let d = NodeDir::new();
    let b = d.build_bundle();
    let (code, out) = verify(&b, &["--max-bundle-size", "64kb"]);
    assert_eq!(code, 1);
    assert!(
        out.contains("over runtime.max_bundle_size (64000 bytes)"),
        "{out}"
    );
    // A zip bomb: small file, large content.
    let bomb = d.path().join("bomb.orc");
    let zeros = vec![0u8; 8 << 20];
    let m = manifest(&[("runtime.elf", &zeros)], "");
    craft(
        &bomb,
        &[
            ("META-INF/MANIFEST.MF", m.as_bytes(), 0o644),
            ("runtime.elf", &zeros, 0o755),
        ],
    );
    assert!(std::fs::metadata(&bomb).expect("md").len() < 1 << 20);
    let (code, out) = verify(&bomb, &["--max-bundle-size", "1mb"]);
    assert_eq!(code, 1);
    assert!(out.contains("over runtime.max_bundle_size"), "{out}");
}

#[test]
fn runtime_id_flags_are_checked() {
    let d = NodeDir::new();
    let o = d.build_bundle_with(
        "0100000000000000000000000000000000000000000000000000000000000001",
        &d.path().join("x.orc"),
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o).contains("malformed namespace"), "{}", text(&o));
}
