//! Oasis-style signatures: Ed25519 over SHA-512/256(context ‖ message), with chain-separated
//! contexts extended by ` for chain <chain context>` (oasis-facts §3).

use crate::encoding::{hash, Hash};
use base64::Engine;
use ed25519_dalek::{Signer, SigningKey, Verifier, VerifyingKey};
use serde::{Deserialize, Serialize};
use std::fmt;

/// Consensus transactions (chain-separated).
pub const CONTEXT_TX: &str = "oasis-core/consensus: tx";
/// Entity descriptors.
pub const CONTEXT_REGISTER_ENTITY: &str = "oasis-core/registry: register entity";
/// Node descriptors.
pub const CONTEXT_REGISTER_NODE: &str = "oasis-core/registry: register node";

/// Text that is not a base64 key or signature of the right length.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// Not base64.
    #[error("'{0}' is not base64")]
    NotBase64(String),
    /// Base64 of the wrong length.
    #[error("'{text}' is not {len} bytes")]
    Length {
        /// The text.
        text: String,
        /// The expected length in bytes.
        len: usize,
    },
}

/// Why a signed blob cannot be opened.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum OpenError {
    /// The signature does not verify.
    #[error("signature: invalid signature by {signer} (context '{context}')")]
    Signature {
        /// The claimed signer.
        signer: PublicKey,
        /// The domain-separation context.
        context: String,
    },
    /// The signed bytes are not the expected CBOR.
    #[error(transparent)]
    Cbor(#[from] crate::encoding::CborError),
}

/// Serde for a fixed-size byte newtype with `Display`/`FromStr`: its text form in human-readable
/// formats (JSON, YAML), raw bytes in CBOR.
macro_rules! text_or_bytes_serde {
    ($name:ident, $len:expr) => {
        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                if s.is_human_readable() {
                    s.serialize_str(&self.to_string())
                } else {
                    s.serialize_bytes(&self.0)
                }
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                if d.is_human_readable() {
                    let s = <String as serde::Deserialize>::deserialize(d)?;
                    s.parse().map_err(serde::de::Error::custom)
                } else {
                    let b = <serde_bytes::ByteBuf as serde::Deserialize>::deserialize(d)?;
                    let arr: [u8; $len] = b.into_vec().try_into().map_err(|_| {
                        serde::de::Error::custom(concat!("expected ", stringify!($len), " bytes"))
                    })?;
                    Ok(Self(arr))
                }
            }
        }
    };
}
pub(crate) use text_or_bytes_serde;

macro_rules! bytes_newtype {
    ($name:ident, $len:expr, $what:expr) => {
        #[doc = $what]
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(pub [u8; $len]);

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&base64::engine::general_purpose::STANDARD.encode(self.0))
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({self})", stringify!($name))
            }
        }

        impl std::str::FromStr for $name {
            type Err = ParseError;
            fn from_str(s: &str) -> Result<Self, ParseError> {
                let b = base64::engine::general_purpose::STANDARD
                    .decode(s.trim())
                    .map_err(|_| ParseError::NotBase64(s.to_string()))?;
                let arr: [u8; $len] = b.try_into().map_err(|_| ParseError::Length {
                    text: s.to_string(),
                    len: $len,
                })?;
                Ok(Self(arr))
            }
        }

        text_or_bytes_serde!($name, $len);
    };
}

bytes_newtype!(
    PublicKey,
    32,
    "An Ed25519 public key, shown in base64 (node, entity, p2p, consensus IDs)."
);
bytes_newtype!(SignatureBytes, 64, "An Ed25519 signature.");

impl PublicKey {
    /// The public key of a signing key.
    pub fn of(key: &SigningKey) -> Self {
        Self(key.verifying_key().to_bytes())
    }
}

/// The context string, chain-separated when a chain context is given.
pub fn context(base: &str, chain: Option<&str>) -> String {
    match chain {
        Some(c) => format!("{base} for chain {c}"),
        None => base.to_string(),
    }
}

fn digest(context: &str, msg: &[u8]) -> Hash {
    let mut data = Vec::with_capacity(context.len() + msg.len());
    data.extend_from_slice(context.as_bytes());
    data.extend_from_slice(msg);
    hash(&data)
}

/// A public key with its signature.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Signature {
    /// Signer.
    pub public_key: PublicKey,
    /// Signature over the context digest.
    pub signature: SignatureBytes,
}

impl Signature {
    /// Signs `msg` under `context`.
    pub fn sign(key: &SigningKey, context: &str, msg: &[u8]) -> Self {
        let sig = key.sign(&digest(context, msg));
        Self {
            public_key: PublicKey::of(key),
            signature: SignatureBytes(sig.to_bytes()),
        }
    }

    /// Verifies the signature of `msg` under `context`.
    pub fn verify(&self, context: &str, msg: &[u8]) -> bool {
        let Ok(vk) = VerifyingKey::from_bytes(&self.public_key.0) else {
            return false;
        };
        vk.verify(
            &digest(context, msg),
            &ed25519_dalek::Signature::from_bytes(&self.signature.0),
        )
        .is_ok()
    }
}

/// A CBOR blob with one signature (`{untrusted_raw_value, signature}`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Signed {
    /// The signed bytes; decode only after verifying.
    pub untrusted_raw_value: serde_bytes::ByteBuf,
    /// The signature.
    pub signature: Signature,
}

impl Signed {
    /// Signs the canonical CBOR of `v`.
    pub fn sign<T: Serialize>(key: &SigningKey, context: &str, v: &T) -> Self {
        let raw = crate::encoding::canonical_cbor(v);
        let signature = Signature::sign(key, context, &raw);
        Self {
            untrusted_raw_value: serde_bytes::ByteBuf::from(raw),
            signature,
        }
    }

    /// Verifies and decodes.
    pub fn open<T: serde::de::DeserializeOwned>(&self, context: &str) -> Result<T, OpenError> {
        Ok(crate::encoding::from_cbor(self.verified(context)?)?)
    }

    /// [`Self::open`] for bytes from outside: the body is decoded only if it cannot take more
    /// than `limit` bytes of memory ([`crate::encoding::from_cbor_within`]) — anyone can sign.
    pub fn open_within<T: serde::de::DeserializeOwned>(
        &self,
        context: &str,
        limit: usize,
    ) -> Result<T, OpenError> {
        Ok(crate::encoding::from_cbor_within(
            self.verified(context)?,
            limit,
        )?)
    }

    /// The signed bytes, once the signature verifies under `context`.
    fn verified(&self, context: &str) -> Result<&[u8], OpenError> {
        if !self.signature.verify(context, &self.untrusted_raw_value) {
            return Err(OpenError::Signature {
                signer: self.signature.public_key,
                context: context.to_string(),
            });
        }
        Ok(&self.untrusted_raw_value)
    }
}

/// A CBOR blob with several signatures (`{untrusted_raw_value, signatures}`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MultiSigned {
    /// The signed bytes; decode only after verifying.
    pub untrusted_raw_value: serde_bytes::ByteBuf,
    /// The signatures.
    pub signatures: Vec<Signature>,
}

impl MultiSigned {
    /// Signs the canonical CBOR of `v` with every key.
    pub fn sign<T: Serialize>(keys: &[&SigningKey], context: &str, v: &T) -> Self {
        let raw = crate::encoding::canonical_cbor(v);
        let signatures = keys
            .iter()
            .map(|k| Signature::sign(k, context, &raw))
            .collect();
        Self {
            untrusted_raw_value: serde_bytes::ByteBuf::from(raw),
            signatures,
        }
    }

    /// Verifies every signature and decodes; returns the signers too.
    pub fn open<T: serde::de::DeserializeOwned>(
        &self,
        context: &str,
    ) -> Result<(T, Vec<PublicKey>), OpenError> {
        for s in &self.signatures {
            if !s.verify(context, &self.untrusted_raw_value) {
                return Err(OpenError::Signature {
                    signer: s.public_key,
                    context: context.to_string(),
                });
            }
        }
        let v = crate::encoding::from_cbor(&self.untrusted_raw_value)?;
        Ok((v, self.signatures.iter().map(|s| s.public_key).collect()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(b: u8) -> SigningKey {
        SigningKey::from_bytes(&[b; 32])
    }

    #[test]
    fn contexts_separate_chains_and_kinds() {
        let k = key(1);
        let s = Signature::sign(&k, &context(CONTEXT_TX, Some("aa")), b"msg");
        assert!(s.verify(&context(CONTEXT_TX, Some("aa")), b"msg"));
        assert!(
            !s.verify(&context(CONTEXT_TX, Some("bb")), b"msg"),
            "another chain"
        );
        assert!(!s.verify(CONTEXT_REGISTER_NODE, b"msg"), "another kind");
        assert!(
            !s.verify(&context(CONTEXT_TX, Some("aa")), b"msh"),
            "another message"
        );
    }

    #[test]
    fn forged_signed_blob_is_refused() {
        let k = key(2);
        let mut s = Signed::sign(&k, CONTEXT_REGISTER_ENTITY, &"hello");
        assert_eq!(
            s.open::<String>(CONTEXT_REGISTER_ENTITY).expect("valid"),
            "hello"
        );
        s.untrusted_raw_value =
            serde_bytes::ByteBuf::from(crate::encoding::canonical_cbor(&"evil"));
        assert!(s.open::<String>(CONTEXT_REGISTER_ENTITY).is_err());
    }

    #[test]
    fn keys_show_as_base64() {
        let pk = PublicKey([0u8; 32]);
        assert_eq!(
            pk.to_string(),
            "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="
        );
        assert_eq!(pk.to_string().parse::<PublicKey>().expect("parse"), pk);
        let json = serde_json::to_string(&pk).expect("json");
        assert_eq!(json, "\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\"");
    }
}
