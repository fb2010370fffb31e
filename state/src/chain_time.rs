//! Chain time as types: consensus heights, epochs and runtime rounds are different counters, so
//! they are different types (each encodes as its bare number). Arithmetic saturates or is
//! checked: a counter at its maximum stays there, it never wraps.

use serde::{Deserialize, Serialize};

macro_rules! counter {
    ($(#[$m:meta])* $name:ident) => {
        $(#[$m])*
        #[derive(
            Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
        )]
        #[serde(transparent)]
        pub struct $name(pub u64);

        impl $name {
            /// The next one (saturating).
            pub fn next(self) -> Self {
                Self(self.0.saturating_add(1))
            }

            /// `n` later (saturating).
            pub fn saturating_add(self, n: u64) -> Self {
                Self(self.0.saturating_add(n))
            }

            /// `n` later, if representable.
            pub fn checked_add(self, n: u64) -> Option<Self> {
                self.0.checked_add(n).map(Self)
            }

            /// `n` earlier (saturating at 0).
            pub fn saturating_sub(self, n: u64) -> Self {
                Self(self.0.saturating_sub(n))
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                self.0.fmt(f)
            }
        }

        impl From<u64> for $name {
            fn from(n: u64) -> Self {
                Self(n)
            }
        }

        impl From<$name> for u64 {
            fn from(v: $name) -> Self {
                v.0
            }
        }
    };
}

counter!(
    /// An epoch number (the registry, committees and stake debonding count in epochs).
    Epoch
);

counter!(
    /// A consensus block height (0 is the genesis state; the first block is 1).
    Height
);

counter!(
    /// A runtime round (a ParaTime's block number; 0 is the runtime's genesis block).
    Round
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_saturate_and_encode_as_their_number() {
        assert_eq!(Epoch(u64::MAX).next(), Epoch(u64::MAX));
        assert_eq!(Epoch(3).saturating_add(2), Epoch(5));
        assert_eq!(Epoch(u64::MAX).checked_add(1), None);
        assert_eq!(Epoch(1).saturating_sub(5), Epoch(0));
        assert_eq!(
            crate::encoding::canonical_cbor(&Epoch(7)),
            crate::encoding::canonical_cbor(&7u64)
        );
        assert_eq!(Epoch(7).to_string(), "7");
    }
}
