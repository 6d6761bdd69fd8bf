//! Builders the MySQL store tests share.
// Each test crate uses its own share of these.
#![allow(dead_code)]

use likes_shared::store::LikeChange;
use likes_shared::{ContentId, UserId};

/// An untagged change whose event time follows its version.
pub fn change(content: u64, user: u64, liked: bool, version: u64) -> LikeChange {
    LikeChange {
        content_id: ContentId::new(content).expect("non-zero"),
        user_id: UserId::new(user).expect("non-zero"),
        liked,
        version,
        ts_ms: 1_795_581_680_000 + version,
        fill_epoch: 0,
    }
}

pub fn ids(range: std::ops::RangeInclusive<u64>) -> Vec<ContentId> {
    range
        .map(|c| ContentId::new(c).expect("non-zero"))
        .collect()
}
