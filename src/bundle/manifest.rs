//! The bundle manifest (`META-INF/MANIFEST.MF`, JSON) and its hash.

use super::{BundleError, RuntimeId};
use paratime_sdk::Version;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha512_256};
use std::collections::BTreeMap;

/// Path of the manifest inside the archive; it must be the first entry.
pub const MANIFEST_NAME: &str = "META-INF/MANIFEST.MF";

/// Largest manifest accepted, in bytes.
pub(super) const MAX_MANIFEST_SIZE: usize = 256 * 1024;
/// Longest ParaTime or component name (it is copied into every runtime log line).
pub(super) const MAX_NAME_LEN: usize = 64;
/// Most components and files in a bundle.
const MAX_COMPONENTS: usize = 16;
const MAX_FILES: usize = 1024;

/// ELF executable of a component.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ElfMetadata {
    /// File name inside the bundle.
    pub executable: String,
}

/// SGX enclave files (refused here; parsed so that the manifest hash is oasis's).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SgxMetadata {
    /// Enclave binary.
    #[serde(default)]
    pub executable: String,
    /// Enclave signature.
    #[serde(default)]
    pub signature: String,
}

/// TDX virtual machine (refused here; parsed so that the manifest hash is oasis's).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TdxMetadata {
    /// Firmware image.
    #[serde(default)]
    pub firmware: String,
    /// Kernel image.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub kernel: String,
    /// Initial RAM disk.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub initrd: String,
    /// Extra kernel command line options.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extra_kernel_options: Vec<String>,
    /// Stage 2 disk image.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub stage2_image: String,
    /// Stage 2 image format.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub stage2_format: String,
    /// Whether stage 2 persists.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub stage2_persist: bool,
    /// VM resources.
    #[serde(default)]
    pub resources: TdxResources,
}

/// Resources of a TDX virtual machine.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TdxResources {
    /// Memory in MiB.
    #[serde(default)]
    pub memory: u64,
    /// Virtual CPUs.
    #[serde(default)]
    pub cpus: u64,
    /// GPU passthrough.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpu: Option<GpuResources>,
}

/// A GPU given to a TDX virtual machine.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct GpuResources {
    /// GPU model.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub model: String,
    /// How many.
    #[serde(default)]
    pub count: u64,
}

/// An enclave identity a TEE component runs as (refused here; hashed as oasis does).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Identity {
    /// Hypervisor the measurement is for.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub hypervisor: String,
    /// MRENCLAVE ‖ MRSIGNER, written in JSON as one base64 string of 64 bytes.
    pub enclave: EnclaveIdentity,
}

/// MRENCLAVE and MRSIGNER (32 bytes each).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EnclaveIdentity {
    /// Enclave measurement.
    pub mr_enclave: [u8; 32],
    /// Signer measurement.
    pub mr_signer: [u8; 32],
}

impl Serialize for EnclaveIdentity {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use base64::Engine;
        let mut b = [0u8; 64];
        b[..32].copy_from_slice(&self.mr_enclave);
        b[32..].copy_from_slice(&self.mr_signer);
        s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(b))
    }
}

impl<'de> Deserialize<'de> for EnclaveIdentity {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use base64::Engine;
        let s = String::deserialize(d)?;
        let b = base64::engine::general_purpose::STANDARD
            .decode(s.as_bytes())
            .map_err(|e| serde::de::Error::custom(format!("enclave identity: {e}")))?;
        let b: [u8; 64] = b.try_into().map_err(|b: Vec<u8>| {
            serde::de::Error::custom(format!(
                "enclave identity is {} bytes, expected 64 (MRENCLAVE and MRSIGNER)",
                b.len()
            ))
        })?;
        let (e, s) = b.split_at(32);
        Ok(Self {
            mr_enclave: e.try_into().expect("32 bytes"),
            mr_signer: s.try_into().expect("32 bytes"),
        })
    }
}

/// One component of a bundle.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Component {
    /// `ronl` or `rofl`.
    pub kind: String,
    /// Empty for RONL.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// Component version.
    #[serde(default)]
    pub version: Version,
    /// Legacy executable field.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub executable: Option<String>,
    /// Plain ELF executable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub elf: Option<ElfMetadata>,
    /// SGX (refused here).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sgx: Option<SgxMetadata>,
    /// TDX (refused here).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tdx: Option<TdxMetadata>,
    /// Enclave identities (TEE only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub identity: Vec<Identity>,
    /// Disabled components are not run.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub disabled: bool,
}

/// The manifest.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// ParaTime name.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// Runtime ID.
    pub id: RuntimeId,
    /// Legacy top-level RONL version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<Version>,
    /// Legacy RONL executable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub executable: Option<String>,
    /// Legacy SGX (refused here).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sgx: Option<SgxMetadata>,
    /// Components.
    #[serde(default)]
    pub components: Vec<Component>,
    /// File name → SHA-512/256 (hex) of every other file in the bundle. Absent (or `null`)
    /// is not the same manifest as `{}`: oasis hashes the first as CBOR null.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digests: Option<BTreeMap<String, String>>,
}

/// The RONL component in a usable form.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ronl {
    /// Executable file name inside the bundle.
    pub executable: String,
    /// Version the runtime must report.
    pub version: Version,
}

impl Manifest {
    /// Length and count limits on everything the node copies around (names go into every log
    /// line, file names into paths): bounded, printable, digests exactly 64 hex digits.
    pub fn check_bounds(&self) -> Result<(), BundleError> {
        let name_ok = |n: &str| n.len() <= MAX_NAME_LEN && !n.contains(char::is_control);
        if !name_ok(&self.name) {
            return Err(BundleError::Manifest(format!(
                "name is {} bytes or holds control characters: at most {MAX_NAME_LEN} printable bytes",
                self.name.len()
            )));
        }
        if self.components.len() > MAX_COMPONENTS {
            return Err(BundleError::Manifest(format!(
                "{} components, at most {MAX_COMPONENTS}",
                self.components.len()
            )));
        }
        for c in &self.components {
            if !name_ok(&c.name) || !name_ok(&c.kind) {
                return Err(BundleError::Manifest(format!(
                    "a component kind or name is over {MAX_NAME_LEN} bytes or holds control characters"
                )));
            }
        }
        if self.digests().len() > MAX_FILES {
            return Err(BundleError::Manifest(format!(
                "{} files, at most {MAX_FILES}",
                self.digests().len()
            )));
        }
        if let Some((n, _)) = self
            .digests()
            .iter()
            .find(|(_, d)| d.len() != 64 || !d.bytes().all(|b| b.is_ascii_hexdigit()))
        {
            return Err(BundleError::Manifest(format!(
                "the digest of '{}' is not 64 hex digits (SHA-512/256)",
                crate::logging::escape_controls(&n.chars().take(255).collect::<String>())
            )));
        }
        Ok(())
    }

    /// Checks what this node can run and returns the RONL component: exactly one RONL with an
    /// ELF executable, no TEE components.
    pub fn ronl(&self) -> Result<Ronl, BundleError> {
        if self.sgx.is_some()
            || self
                .components
                .iter()
                .any(|c| c.sgx.is_some() || c.tdx.is_some())
        {
            return Err(BundleError::Tee);
        }
        let legacy = self.executable.as_ref().map(|e| Ronl {
            executable: e.clone(),
            version: self.version.unwrap_or_default(),
        });
        let ronls: Vec<&Component> = self
            .components
            .iter()
            .filter(|c| c.kind == "ronl")
            .collect();
        if let Some(other) = self
            .components
            .iter()
            .find(|c| c.kind != "ronl" && c.kind != "rofl")
        {
            return Err(BundleError::Invalid(format!(
                "unknown component kind '{}'",
                other.kind
            )));
        }
        match (legacy, ronls.as_slice()) {
            (Some(_), [_, ..]) => Err(BundleError::Invalid(
                "manifest has both a legacy top-level RONL and a `ronl` component".into(),
            )),
            (Some(r), []) => Ok(r),
            (None, [c]) => {
                if c.disabled {
                    return Err(BundleError::Invalid(
                        "the RONL component cannot be disabled".into(),
                    ));
                }
                let exe = c
                    .elf
                    .as_ref()
                    .map(|e| e.executable.clone())
                    .or_else(|| c.executable.clone());
                let executable = exe.ok_or_else(|| {
                    BundleError::Invalid("missing RONL executable in manifest/bundle".into())
                })?;
                Ok(Ronl {
                    executable,
                    version: c.version,
                })
            }
            (None, []) => Err(BundleError::Invalid(
                "bundle has no RONL component (detached bundles are not supported)".into(),
            )),
            (None, _) => Err(BundleError::Invalid(
                "manifest has more than one `ronl` component".into(),
            )),
        }
    }

    /// Parses `META-INF/MANIFEST.MF` as oasis-node does, including its legacy quirk: a
    /// non-zero top-level `version` is the version of the first RONL component with no name.
    pub fn parse(json: &[u8]) -> Result<Self, serde_json::Error> {
        let mut m: Self = serde_json::from_slice(json)?;
        if let Some(v) = m.version.filter(|v| *v != Version::default()) {
            if let Some(c) = m.legacy_ronl_mut() {
                c.version = v;
            }
        }
        Ok(m)
    }

    fn legacy_ronl_mut(&mut self) -> Option<&mut Component> {
        self.components
            .iter_mut()
            .find(|c| c.kind == "ronl" && c.name.is_empty())
    }

    /// The file digests (none when the manifest has no `digests`).
    pub fn digests(&self) -> &BTreeMap<String, String> {
        static NONE: BTreeMap<String, String> = BTreeMap::new();
        self.digests.as_ref().unwrap_or(&NONE)
    }

    /// The manifest hash, as oasis-node computes it (`go/runtime/bundle/manifest.go`):
    /// SHA-512/256 of the manifest struct's canonical CBOR — map keys sorted length-first then
    /// bytewise, the runtime ID and the digests as byte strings, empty fields omitted, absent
    /// digests as null. A RONL component that took its version from the top-level `version` is
    /// hashed without it, so the hash is that of the JSON as written.
    pub fn hash(&self) -> [u8; 32] {
        let mut m = self.clone();
        if m.version.is_some_and(|v| v != Version::default()) {
            if let Some(c) = m.legacy_ronl_mut() {
                c.version = Version::default();
            }
        }
        let mut out = Vec::with_capacity(512);
        ciborium::into_writer(&cbor::manifest(&m), &mut out)
            .expect("CBOR encoding into memory cannot fail");
        Sha512_256::digest(&out).into()
    }

    /// [`Self::hash`] in hex: the bundle's directory name and on-chain `bundle_checksum`.
    pub fn hash_hex(&self) -> String {
        hex::encode(self.hash())
    }
}

/// The canonical CBOR form of a manifest, field by field as oasis's Go structs encode it.
mod cbor {
    use super::*;
    use ciborium::Value;

    /// A map with its keys in canonical order (length first, then bytewise), keeping only the
    /// entries that are present.
    fn map(entries: Vec<(&'static str, Option<Value>)>) -> Value {
        let mut e: Vec<(&str, Value)> = entries
            .into_iter()
            .filter_map(|(k, v)| v.map(|v| (k, v)))
            .collect();
        e.sort_by(|a, b| (a.0.len(), a.0).cmp(&(b.0.len(), b.0)));
        Value::Map(
            e.into_iter()
                .map(|(k, v)| (Value::Text(k.into()), v))
                .collect(),
        )
    }

    fn text(s: &str) -> Value {
        Value::Text(s.into())
    }

    fn nonempty(s: &str) -> Option<Value> {
        (!s.is_empty()).then(|| text(s))
    }

    fn uint(n: u64) -> Value {
        Value::Integer(n.into())
    }

    fn nonzero(n: u64) -> Option<Value> {
        (n != 0).then(|| uint(n))
    }

    fn version(v: &Version) -> Option<Value> {
        (*v != Version::default()).then(|| {
            map(vec![
                ("major", nonzero(v.major.into())),
                ("minor", nonzero(v.minor.into())),
                ("patch", nonzero(v.patch.into())),
            ])
        })
    }

    fn sgx(s: &SgxMetadata) -> Value {
        map(vec![
            ("executable", Some(text(&s.executable))),
            ("signature", Some(text(&s.signature))),
        ])
    }

    fn tdx(t: &TdxMetadata) -> Value {
        let r = &t.resources;
        let gpu = r.gpu.as_ref().map(|g| {
            map(vec![
                ("model", nonempty(&g.model)),
                ("count", Some(uint(g.count))),
            ])
        });
        let options = (!t.extra_kernel_options.is_empty())
            .then(|| Value::Array(t.extra_kernel_options.iter().map(|o| text(o)).collect()));
        map(vec![
            ("firmware", Some(text(&t.firmware))),
            ("kernel", nonempty(&t.kernel)),
            ("initrd", nonempty(&t.initrd)),
            ("extra_kernel_options", options),
            ("stage2_image", nonempty(&t.stage2_image)),
            ("stage2_format", nonempty(&t.stage2_format)),
            (
                "stage2_persist",
                t.stage2_persist.then_some(Value::Bool(true)),
            ),
            (
                "resources",
                Some(map(vec![
                    ("memory", Some(uint(r.memory))),
                    ("cpus", Some(uint(r.cpus))),
                    ("gpu", gpu),
                ])),
            ),
        ])
    }

    fn identity(i: &Identity) -> Value {
        map(vec![
            ("hypervisor", nonempty(&i.hypervisor)),
            (
                "enclave",
                Some(map(vec![
                    (
                        "mr_enclave",
                        Some(Value::Bytes(i.enclave.mr_enclave.to_vec())),
                    ),
                    (
                        "mr_signer",
                        Some(Value::Bytes(i.enclave.mr_signer.to_vec())),
                    ),
                ])),
            ),
        ])
    }

    fn component(c: &Component) -> Value {
        let identity = (!c.identity.is_empty())
            .then(|| Value::Array(c.identity.iter().map(identity).collect()));
        map(vec![
            ("kind", Some(text(&c.kind))),
            ("name", nonempty(&c.name)),
            ("version", version(&c.version)),
            ("executable", c.executable.as_deref().and_then(nonempty)),
            (
                "elf",
                c.elf
                    .as_ref()
                    .map(|e| map(vec![("executable", Some(text(&e.executable)))])),
            ),
            ("sgx", c.sgx.as_ref().map(sgx)),
            ("tdx", c.tdx.as_ref().map(tdx)),
            ("identity", identity),
            ("disabled", c.disabled.then_some(Value::Bool(true))),
        ])
    }

    /// A digest that is not 32 bytes of hex (refused by `check_bounds` before anything is
    /// trusted) is hashed as its text, so that the hash still commits to it.
    fn digest(d: &str) -> Value {
        match hex::decode(d) {
            Ok(b) if b.len() == 32 => Value::Bytes(b),
            _ => text(d),
        }
    }

    pub(super) fn manifest(m: &Manifest) -> Value {
        let components = (!m.components.is_empty())
            .then(|| Value::Array(m.components.iter().map(component).collect()));
        let digests = Some(match &m.digests {
            None => Value::Null,
            Some(d) => {
                let mut e: Vec<(&String, &String)> = d.iter().collect();
                e.sort_by(|a, b| (a.0.len(), a.0).cmp(&(b.0.len(), b.0)));
                Value::Map(e.into_iter().map(|(k, v)| (text(k), digest(v))).collect())
            }
        });
        map(vec![
            ("name", nonempty(&m.name)),
            ("id", Some(Value::Bytes(m.id.0.to_vec()))),
            ("version", m.version.as_ref().and_then(version)),
            ("executable", m.executable.as_deref().and_then(nonempty)),
            ("sgx", m.sgx.as_ref().map(sgx)),
            ("components", components),
            ("digests", digests),
        ])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ZERO_ID: &str = "0000000000000000000000000000000000000000000000000000000000000000";

    fn digest(first: u8) -> String {
        let mut d = [0u8; 32];
        d[0] = first;
        hex::encode(d)
    }

    fn empty() -> Manifest {
        Manifest {
            name: String::new(),
            id: RuntimeId([0; 32]),
            version: None,
            executable: None,
            sgx: None,
            components: Vec::new(),
            digests: None,
        }
    }

    fn sgx() -> SgxMetadata {
        SgxMetadata {
            executable: "exe".into(),
            signature: "sig".into(),
        }
    }

    fn tdx(initrd: &str) -> TdxMetadata {
        TdxMetadata {
            firmware: "firmware".into(),
            kernel: "kernel".into(),
            initrd: initrd.into(),
            extra_kernel_options: vec!["opt1".into(), "opt2".into()],
            stage2_image: "image".into(),
            stage2_format: String::new(),
            stage2_persist: false,
            resources: TdxResources {
                memory: 1,
                cpus: 2,
                gpu: None,
            },
        }
    }

    fn identity() -> Vec<Identity> {
        let mut mr_enclave = [0u8; 32];
        mr_enclave[..3].copy_from_slice(&[1, 2, 3]);
        let mut mr_signer = [0u8; 32];
        mr_signer[..3].copy_from_slice(&[3, 4, 5]);
        vec![Identity {
            hypervisor: "hypervisor".into(),
            enclave: EnclaveIdentity {
                mr_enclave,
                mr_signer,
            },
        }]
    }

    fn digests() -> Option<BTreeMap<String, String>> {
        Some([("a".into(), digest(1)), ("b".into(), digest(2))].into())
    }

    fn full() -> Manifest {
        Manifest {
            name: "name".into(),
            version: Some(Version::default()),
            components: vec![Component {
                kind: "ronl".into(),
                name: "name".into(),
                version: Version::new(1, 2, 3),
                executable: None,
                elf: Some(ElfMetadata {
                    executable: "exe".into(),
                }),
                sgx: Some(sgx()),
                tdx: Some(tdx("initrd")),
                identity: identity(),
                disabled: true,
            }],
            digests: digests(),
            ..empty()
        }
    }

    fn cbor_len(m: &Manifest) -> usize {
        let mut out = Vec::new();
        ciborium::into_writer(&cbor::manifest(m), &mut out).expect("encode");
        out.len()
    }

    /// oasis-core's `go/runtime/bundle/manifest_test.go` vectors.
    #[test]
    fn manifest_hash_matches_oasis_core_test_vectors() {
        let e = empty();
        let mut out = Vec::new();
        ciborium::into_writer(&cbor::manifest(&e), &mut out).expect("encode");
        let mut want = hex::decode("a26269645820").expect("hex");
        want.extend([0u8; 32]);
        want.push(0x67);
        want.extend(b"digests");
        want.push(0xf6);
        assert_eq!(hex::encode(&out), hex::encode(&want));
        assert_eq!(out.len(), 47);
        assert_eq!(
            e.hash_hex(),
            "dcc4f7c821d750caf4656cdee9f0bed52bee7697a00bab0aefb836149252cb1f"
        );

        let f = full();
        assert_eq!(cbor_len(&f), 514);
        assert_eq!(
            f.hash_hex(),
            "2ddf81b85d08dbecb24571ba75858ec94871800b674d581cf37214c0d56263c3"
        );

        let mut mini = full();
        let c = &mut mini.components[0];
        c.version = Version::default();
        c.elf = None;
        c.sgx = None;
        c.tdx.as_mut().expect("tdx").initrd.clear();
        c.disabled = false;
        assert_eq!(
            mini.hash_hex(),
            "07c7b90d8412bf8efa6e96132888ac64dad330b0c1b538458fd05ee7a908617b"
        );

        let legacy = Manifest {
            name: "name".into(),
            version: Some(Version::new(1, 2, 3)),
            executable: Some("exe".into()),
            sgx: Some(sgx()),
            components: vec![Component {
                kind: "ronl".into(),
                name: "ronl".into(),
                version: Version::default(),
                executable: Some("exe".into()),
                elf: None,
                sgx: Some(sgx()),
                tdx: Some(tdx("initrd")),
                identity: Vec::new(),
                disabled: true,
            }],
            digests: digests(),
            ..empty()
        };
        assert_eq!(
            legacy.hash_hex(),
            "bd2987c59d2c672dee5c723b2d01adf6a7030c67efa368c342b54f887c1fe188"
        );
    }

    /// The JSON form hashes the same as the struct, whatever its field order and spacing; the
    /// legacy top-level version is copied into the RONL component and left out of its hash.
    #[test]
    fn parsed_manifests_hash_as_written() {
        let json = serde_json::to_string(&full()).expect("json");
        assert_eq!(
            Manifest::parse(json.as_bytes()).expect("parse").hash(),
            full().hash()
        );
        let legacy = format!(
            r#"{{"components":[{{"kind":"ronl"}}],"version":{{"major":1,"minor":2,"patch":3}},
                "id":"{ZERO_ID}","name":"name"}}"#
        );
        let m = Manifest::parse(legacy.as_bytes()).expect("parse");
        assert_eq!(m.components[0].version, Version::new(1, 2, 3));
        let mut unquirked = m.clone();
        unquirked.components[0].version = Version::default();
        assert_eq!(m.hash(), unquirked.hash());
        assert_eq!(
            m.hash_hex(),
            "b6a5429df78418d412e6a446d1530665527bec2db3196ba8eaa0d288ca321ecc"
        );
        // `{}` and absent digests are different manifests.
        let with_empty = Manifest {
            digests: Some(BTreeMap::new()),
            ..empty()
        };
        assert_ne!(with_empty.hash(), empty().hash());
    }

    #[test]
    fn enclave_identity_must_be_64_bytes_of_base64() {
        let json = format!(
            r#"{{"id":"{ZERO_ID}","components":[{{"kind":"ronl","identity":[{{"enclave":"AAAA"}}]}}]}}"#
        );
        let e = Manifest::parse(json.as_bytes()).expect_err("3 bytes");
        assert!(e.to_string().contains("expected 64"), "{e}");
    }
}
