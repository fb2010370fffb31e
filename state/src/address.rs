//! Staking addresses: 21 bytes = version 0 ‖ the first 20 bytes of
//! SHA-512/256("oasis-core/address: staking" ‖ 0x00 ‖ public key), shown as bech32 `oasis1…`.

use crate::crypto::PublicKey;
use bech32::{Bech32, Hrp};
use std::fmt;

const CONTEXT: &[u8] = b"oasis-core/address: staking";
const HRP: &str = "oasis";

/// A staking account address.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Address(pub [u8; 21]);

impl Address {
    /// The address of an Ed25519 public key (entity or node).
    pub fn from_public_key(pk: &PublicKey) -> Self {
        let mut data = CONTEXT.to_vec();
        data.push(0);
        data.extend_from_slice(&pk.0);
        let h = crate::encoding::hash(&data);
        let mut out = [0u8; 21];
        out[1..].copy_from_slice(&h[..20]);
        Self(out)
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hrp = Hrp::parse(HRP).expect("static HRP is valid");
        let s = bech32::encode::<Bech32>(hrp, &self.0).map_err(|_| fmt::Error)?;
        f.write_str(&s)
    }
}

impl fmt::Debug for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Address({self})")
    }
}

/// Text that is not an `oasis1…` address.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("malformed address '{text}': {reason}")]
pub struct AddressError {
    /// The text.
    pub text: String,
    /// What is wrong with it.
    pub reason: String,
}

impl std::str::FromStr for Address {
    type Err = AddressError;
    fn from_str(s: &str) -> Result<Self, AddressError> {
        let bad = |reason: String| AddressError {
            text: s.to_string(),
            reason,
        };
        let (hrp, data) = bech32::decode(s.trim()).map_err(|e| bad(e.to_string()))?;
        if hrp.as_str() != HRP {
            return Err(bad("expected the 'oasis' prefix".into()));
        }
        let arr: [u8; 21] = data
            .try_into()
            .map_err(|_| bad("expected 21 bytes".into()))?;
        if arr[0] != 0 {
            return Err(bad(format!("unknown version {}", arr[0])));
        }
        Ok(Self(arr))
    }
}

crate::crypto::text_or_bytes_serde!(Address, 21);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_and_prefix() {
        let a = Address::from_public_key(&PublicKey([7u8; 32]));
        let s = a.to_string();
        assert!(s.starts_with("oasis1"), "{s}");
        assert_eq!(s.parse::<Address>().expect("parse"), a);
        assert!("cosmos1qqqq".parse::<Address>().is_err());
    }
}
