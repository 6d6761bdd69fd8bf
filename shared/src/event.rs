//! The event every stage passes on, and its wire form.
//!
//! The wire form is a documented fixed layout rather than protobuf: the event has seven scalar
//! fields and a short string, encoding is a handful of `copy_from_slice`s, and a one-byte schema
//! version in front lets a later layout be decoded beside this one. All integers little-endian:
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 1 | schema version (`2`) |
//! | 1 | 1 | action (`1` like, `2` unlike) |
//! | 2 | 16 | event_id (u128) |
//! | 18 | 8 | user_id |
//! | 26 | 8 | content_id |
//! | 34 | 8 | version (HLC, see [`crate::hlc`]) |
//! | 42 | 8 | ts_ms (wall clock at ingest, Unix ms) |
//! | 50 | 8 | fill_epoch (see [`LikeEvent::fill_epoch`]; `0`: none) |
//! | 58 | 1 | source length `n` (≤ 255) |
//! | 59 | n | source (UTF-8 ingest instance id) |
//!
//! Schema version `1` (no `fill_epoch`: its source length sits at 50) still decodes, with
//! `fill_epoch` 0, so spools and logs written before the change drain.

use crate::ids::{ContentId, IdError, UserId};
use serde::{Deserialize, Serialize};

/// The schema version this build writes.
pub const WIRE_VERSION: u8 = 2;
const FIXED_LEN: usize = 59;
/// The fixed part of schema version 1, the shortest a record of any version can be.
const FIXED_LEN_V1: usize = 51;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Like,
    Unlike,
}

impl Action {
    pub fn liked(self) -> bool {
        matches!(self, Action::Like)
    }
}

/// One user's like or unlike of one content, as accepted by ingest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LikeEvent {
    pub event_id: u128,
    pub user_id: UserId,
    pub content_id: ContentId,
    pub action: Action,
    /// Hybrid logical clock value; the highest version of a (user, content) wins (I4).
    pub version: u64,
    pub ts_ms: u64,
    pub source: String,
    /// The count fill of this content that was under way in the state cache when the cache
    /// applied this event, `0` when none was: the sink keeps, beside the content's count, how
    /// far the events of the newest fill moved it, and the cache subtracts that from the store's
    /// count when the fill completes (ingest's `count_scripts` module explains why). Absent in
    /// JSON written before it existed (dead letters): none.
    #[serde(default)]
    pub fill_epoch: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    #[error("event is {0} bytes, shorter than its fixed part")]
    Truncated(usize),
    #[error("unknown schema version {0}")]
    UnknownVersion(u8),
    #[error("unknown action {0}")]
    UnknownAction(u8),
    #[error("bad id: {0}")]
    BadId(#[from] IdError),
    #[error("source is not valid UTF-8 or its length does not match")]
    BadSource,
}

impl LikeEvent {
    /// Appends the wire form to `out`. Sources longer than 255 bytes are cut at a char boundary.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        let mut n = self.source.len().min(255);
        while !self.source.is_char_boundary(n) {
            n -= 1;
        }
        out.reserve(FIXED_LEN + n);
        out.push(WIRE_VERSION);
        out.push(match self.action {
            Action::Like => 1,
            Action::Unlike => 2,
        });
        out.extend_from_slice(&self.event_id.to_le_bytes());
        out.extend_from_slice(&self.user_id.get().to_le_bytes());
        out.extend_from_slice(&self.content_id.get().to_le_bytes());
        out.extend_from_slice(&self.version.to_le_bytes());
        out.extend_from_slice(&self.ts_ms.to_le_bytes());
        out.extend_from_slice(&self.fill_epoch.to_le_bytes());
        out.push(n as u8);
        out.extend_from_slice(&self.source.as_bytes()[..n]);
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(FIXED_LEN + self.source.len());
        self.encode_into(&mut out);
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, WireError> {
        if bytes.len() < FIXED_LEN_V1 {
            return Err(WireError::Truncated(bytes.len()));
        }
        let fixed = match bytes[0] {
            1 => FIXED_LEN_V1,
            WIRE_VERSION => FIXED_LEN,
            other => return Err(WireError::UnknownVersion(other)),
        };
        if bytes.len() < fixed {
            return Err(WireError::Truncated(bytes.len()));
        }
        let action = match bytes[1] {
            1 => Action::Like,
            2 => Action::Unlike,
            other => return Err(WireError::UnknownAction(other)),
        };
        let u64_at = |at: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&bytes[at..at + 8]);
            u64::from_le_bytes(b)
        };
        let mut id = [0u8; 16];
        id.copy_from_slice(&bytes[2..18]);
        let n = bytes[fixed - 1] as usize;
        let fill_epoch = if fixed == FIXED_LEN { u64_at(50) } else { 0 };
        let source = bytes
            .get(fixed..)
            .filter(|rest| rest.len() == n)
            .and_then(|rest| std::str::from_utf8(rest).ok())
            .ok_or(WireError::BadSource)?;
        Ok(LikeEvent {
            event_id: u128::from_le_bytes(id),
            user_id: UserId::new(u64_at(18))?,
            content_id: ContentId::new(u64_at(26))?,
            action,
            version: u64_at(34),
            ts_ms: u64_at(42),
            source: source.to_owned(),
            fill_epoch,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn event(source: &str) -> LikeEvent {
        LikeEvent {
            event_id: 0x0102_0304_0506_0708_090a_0b0c_0d0e_0f10,
            user_id: UserId::new(7).expect("non-zero"),
            content_id: ContentId::new(42).expect("non-zero"),
            action: Action::Unlike,
            version: 99,
            ts_ms: 1_700_000_000_000,
            source: source.to_owned(),
            fill_epoch: 0,
        }
    }

    #[test]
    fn layout_is_as_documented() {
        let bytes = LikeEvent {
            fill_epoch: 1_795_581_680_000,
            ..event("i1")
        }
        .encode();
        assert_eq!(bytes.len(), 61);
        assert_eq!(&bytes[..2], &[2, 2]);
        assert_eq!(&bytes[18..26], &7u64.to_le_bytes());
        assert_eq!(&bytes[26..34], &42u64.to_le_bytes());
        assert_eq!(&bytes[50..58], &1_795_581_680_000u64.to_le_bytes());
        assert_eq!(&bytes[58..], &[2, b'i', b'1']);
    }

    #[test]
    fn schema_version_1_still_decodes_without_a_fill_epoch() {
        let mut v1 = event("i1").encode();
        v1.drain(50..58);
        v1[0] = 1;
        assert_eq!(LikeEvent::decode(&v1), Ok(event("i1")));
        assert_eq!(LikeEvent::decode(&v1[..50]), Err(WireError::Truncated(50)));
        let mut short_v2 = v1.clone();
        short_v2[0] = 2;
        assert_eq!(
            LikeEvent::decode(&short_v2[..53]),
            Err(WireError::Truncated(53))
        );
    }

    #[test]
    fn bad_input_is_refused_not_guessed() {
        let good = event("x").encode();
        assert_eq!(
            LikeEvent::decode(&good[..10]),
            Err(WireError::Truncated(10))
        );
        let mut v = good.clone();
        v[0] = 9;
        assert_eq!(LikeEvent::decode(&v), Err(WireError::UnknownVersion(9)));
        let mut a = good.clone();
        a[1] = 3;
        assert_eq!(LikeEvent::decode(&a), Err(WireError::UnknownAction(3)));
        let mut z = good.clone();
        z[26..34].copy_from_slice(&[0; 8]);
        assert!(matches!(LikeEvent::decode(&z), Err(WireError::BadId(_))));
        let mut long = good;
        long.push(b'!');
        assert_eq!(LikeEvent::decode(&long), Err(WireError::BadSource));
    }

    #[test]
    fn long_sources_are_cut_at_a_char_boundary() {
        let source = "é".repeat(200); // 400 bytes
        let decoded = LikeEvent::decode(&event(&source).encode()).expect("decodes");
        assert_eq!(decoded.source.len(), 254);
    }

    proptest! {
        #[test]
        fn roundtrip(id: u128, user in 1u64.., content in 1u64.., like: bool, version: u64,
                     ts: u64, fill_epoch: u64, source in ".{0,40}") {
            let e = LikeEvent {
                event_id: id,
                user_id: UserId::new(user).expect("non-zero"),
                content_id: ContentId::new(content).expect("non-zero"),
                action: if like { Action::Like } else { Action::Unlike },
                version,
                ts_ms: ts,
                source: source.chars().take(60).collect::<String>(),
                fill_epoch,
            };
            let decoded = LikeEvent::decode(&e.encode()).expect("roundtrip");
            prop_assert_eq!(decoded, e);
        }
    }
}
