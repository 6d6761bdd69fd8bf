//! Identifiers. Both are unsigned 64-bit integers and never zero: zero is what a missing or
//! defaulted field decodes to, so refusing it at the edge keeps such bugs out of the store.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::num::NonZeroU64;

/// Why an id was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("{0} must be a positive integer")]
    NotANumber(&'static str),
    #[error("{0} must not be 0")]
    Zero(&'static str),
    #[error("{0} must be written without leading zeros")]
    LeadingZero(&'static str),
}

macro_rules! id_type {
    ($name:ident, $label:literal) => {
        #[doc = concat!("A validated, non-zero ", $label, ".")]
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "u64", into = "u64")]
        pub struct $name(NonZeroU64);

        impl $name {
            /// The smallest id, 1.
            pub const MIN: Self = Self(NonZeroU64::MIN);

            /// Parses the canonical decimal form used in URLs (`/v1/contents/42`): digits only,
            /// no sign, no spaces, no leading zeros.
            pub fn parse(text: &str) -> Result<Self, IdError> {
                // `u64::from_str` accepts a leading '+', which no client should send.
                if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(IdError::NotANumber($label));
                }
                // One spelling per id: `042` and `42` must not both name user 42.
                if text.len() > 1 && text.starts_with('0') {
                    return Err(IdError::LeadingZero($label));
                }
                let n: u64 = text.parse().map_err(|_| IdError::NotANumber($label))?;
                Self::new(n)
            }

            pub fn new(n: u64) -> Result<Self, IdError> {
                NonZeroU64::new(n).map(Self).ok_or(IdError::Zero($label))
            }

            pub fn get(self) -> u64 {
                self.0.get()
            }
        }

        impl TryFrom<u64> for $name {
            type Error = IdError;
            fn try_from(n: u64) -> Result<Self, IdError> {
                Self::new(n)
            }
        }

        impl From<$name> for u64 {
            fn from(id: $name) -> u64 {
                id.get()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}", self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.0)
            }
        }
    };
}

id_type!(UserId, "user_id");
id_type!(ContentId, "content_id");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_accepts_only_positive_decimal_u64() {
        assert_eq!(ContentId::parse("42").map(ContentId::get), Ok(42));
        assert_eq!(
            ContentId::parse("18446744073709551615").map(ContentId::get),
            Ok(u64::MAX)
        );
        assert_eq!(ContentId::parse("0"), Err(IdError::Zero("content_id")));
        for bad in ["", "+1", "-1", "1.0", "abc", "18446744073709551616", " 1"] {
            assert_eq!(
                ContentId::parse(bad),
                Err(IdError::NotANumber("content_id")),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn parse_accepts_one_spelling_per_id() {
        for padded in ["042", "00", "0042", "01"] {
            assert_eq!(
                UserId::parse(padded),
                Err(IdError::LeadingZero("user_id")),
                "{padded:?}"
            );
        }
        assert_eq!(UserId::parse("42").map(UserId::get), Ok(42));
    }

    #[test]
    fn serde_refuses_zero() {
        assert!(serde_json_like_from_u64(0).is_err());
        assert_eq!(serde_json_like_from_u64(7).map(UserId::get), Ok(7));
    }

    fn serde_json_like_from_u64(n: u64) -> Result<UserId, IdError> {
        UserId::try_from(n)
    }
}
