//! What the store tests on the real MySQL-protocol servers share: a store on a database of its
//! own, and changes to give it.
// Each test crate uses its own share of these.
#![allow(dead_code)]

use likes_shared::store::LikeChange;
use likes_shared::{ContentId, UserId};
use likes_sink::{MySqlConfig, MySqlStore};
use likes_smoke::{fresh_database, ServicesEnv};

/// A `MySqlStore` on a new database of `server` (an env name of `MYSQL_SERVERS`).
pub async fn store_on(server: &str, rows_per_statement: usize) -> MySqlStore {
    let url = fresh_database(&ServicesEnv::load().get(server)).await;
    MySqlConfig {
        url,
        rows_per_statement,
        ..MySqlConfig::default()
    }
    .build()
    .await
    .unwrap_or_else(|e| panic!("{server}: {e}"))
}

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
