//! Runtime IDs (oasis `common.Namespace`): 32 bytes, shown as 64 hex characters. The first 8
//! bytes are big-endian flags: bit 63 = test runtime, bit 62 = key manager; bits 61..0 must be 0.

use std::fmt;
use std::str::FromStr;

/// A ParaTime's runtime ID.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RuntimeId(pub [u8; 32]);

const FLAG_TEST: u64 = 1 << 63;
const FLAG_KEY_MANAGER: u64 = 1 << 62;

/// A malformed runtime ID.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("malformed runtime ID '{value}': {reason}")]
pub struct RuntimeIdError {
    value: String,
    reason: String,
}

impl RuntimeId {
    fn flags(&self) -> u64 {
        u64::from_be_bytes(self.0[..8].try_into().expect("8 bytes"))
    }

    /// Bit 63: a test runtime.
    pub fn is_test(&self) -> bool {
        self.flags() & FLAG_TEST != 0
    }

    /// Bit 62: a key manager runtime.
    pub fn is_key_manager(&self) -> bool {
        self.flags() & FLAG_KEY_MANAGER != 0
    }

    /// Validates the flag bits of raw bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Result<Self, RuntimeIdError> {
        let id = Self(bytes);
        if id.flags() & !(FLAG_TEST | FLAG_KEY_MANAGER) != 0 {
            return Err(RuntimeIdError {
                value: id.to_string(),
                reason:
                    "malformed namespace: reserved flag bits 61..0 of the first 8 bytes are set"
                        .into(),
            });
        }
        Ok(id)
    }
}

impl FromStr for RuntimeId {
    type Err = RuntimeIdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = |reason: &str| RuntimeIdError {
            value: s.to_string(),
            reason: reason.to_string(),
        };
        let bytes = hex::decode(s.trim()).map_err(|_| err("expected 64 hexadecimal characters"))?;
        let arr: [u8; 32] = bytes
            .try_into()
            .map_err(|_| err("expected 64 hexadecimal characters (32 bytes)"))?;
        Self::from_bytes(arr)
    }
}

impl fmt::Display for RuntimeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for RuntimeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RuntimeId({self})")
    }
}

impl serde::Serialize for RuntimeId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> serde::Deserialize<'de> for RuntimeId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags() {
        let id: RuntimeId = "8000000000000000000000000000000000000000000000000000000000000001"
            .parse()
            .expect("test id");
        assert!(id.is_test() && !id.is_key_manager());
        let km: RuntimeId = "4000000000000000000000000000000000000000000000000000000000000001"
            .parse()
            .expect("km id");
        assert!(km.is_key_manager());
        let e = "0100000000000000000000000000000000000000000000000000000000000001"
            .parse::<RuntimeId>()
            .expect_err("reserved");
        assert!(e.to_string().contains("malformed namespace"));
        assert!("00".parse::<RuntimeId>().is_err());
    }
}
