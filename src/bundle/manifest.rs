//! The bundle manifest (`META-INF/MANIFEST.MF`, JSON) and its hash.

use super::{BundleError, RuntimeId};
use paratime_sdk::Version;
use serde::{Deserialize, Serialize};
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
    pub sgx: Option<serde_json::Value>,
    /// TDX (refused here).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tdx: Option<serde_json::Value>,
    /// Enclave identities (TEE only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity: Option<serde_json::Value>,
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
    pub sgx: Option<serde_json::Value>,
    /// Components.
    #[serde(default)]
    pub components: Vec<Component>,
    /// File name → SHA-512/256 (hex) of every other file in the bundle.
    pub digests: BTreeMap<String, String>,
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
        if self.digests.len() > MAX_FILES {
            return Err(BundleError::Manifest(format!(
                "{} files, at most {MAX_FILES}",
                self.digests.len()
            )));
        }
        if let Some((n, _)) = self
            .digests
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

    /// SHA-512/256 of the manifest's canonical CBOR encoding (map keys sorted length-first, then
    /// bytewise, as RFC 7049 canonical CBOR).
    pub fn hash(&self) -> [u8; 32] {
        let json = serde_json::to_value(self).expect("a manifest always serializes");
        crate::encoding::hash_of(&json)
    }

    /// [`Self::hash`] in hex: the bundle's directory name and on-chain `bundle_checksum`.
    pub fn hash_hex(&self) -> String {
        hex::encode(self.hash())
    }
}
