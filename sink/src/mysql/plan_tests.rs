//! The window's locking read must go through the primary key on every server: on MariaDB a
//! read through `by_user` would lock every row of each user in the window, across contents that
//! other workers own (I5), and queue or deadlock windows of different partitions. Checked with
//! EXPLAIN on the real servers, after giving the optimizer a reason to prefer `by_user` (users
//! with few rows, contents with many).

use super::statements::select_rows_for_update;
use crate::{MySqlConfig, MySqlStore};
use likes_shared::store::{LikeChange, LikeStore};
use likes_shared::{ContentId, UserId};
use likes_smoke::{fresh_database, ServicesEnv, MYSQL_SERVERS};
use sqlx::Row;

async fn store_with_rows(server: &str) -> MySqlStore {
    let url = fresh_database(&ServicesEnv::load().get(server)).await;
    let store = MySqlConfig {
        url,
        ..MySqlConfig::default()
    }
    .build()
    .await
    .expect("store");
    // 20 contents with 2 000 users each, every user with one row: `by_user` looks as selective
    // as the primary key, and MariaDB then picks it (seen on the benchmark's tables).
    let window: Vec<LikeChange> = (0..40_000u64)
        .map(|i| LikeChange {
            content_id: ContentId::new(1 + i % 20).expect("non-zero"),
            user_id: UserId::new(1 + i).expect("non-zero"),
            liked: true,
            version: 1 + i,
            ts_ms: 1_795_581_680_000,
            fill_epoch: 0,
        })
        .collect();
    store.apply_window(&window).await.expect("rows");
    for sql in ["ANALYZE TABLE likes"] {
        sqlx::query(sql).execute(store.pool()).await.expect(sql);
    }
    store
}

#[tokio::test]
async fn the_window_read_uses_the_primary_key() {
    for server in MYSQL_SERVERS {
        let store = store_with_rows(server).await;
        let keys: Vec<_> = (1..=5u64)
            .map(|n| {
                (
                    ContentId::new(n).expect("non-zero"),
                    UserId::new(n * 21).expect("non-zero"),
                )
            })
            .collect();
        let explain = format!("EXPLAIN {}", select_rows_for_update(&keys));
        let plan: Vec<String> = sqlx::raw_sql(&explain)
            .fetch_all(store.pool())
            .await
            .expect("explain")
            .iter()
            .map(|row| {
                (0..row.len())
                    .map(|i| {
                        row.try_get::<Option<String>, _>(i)
                            .ok()
                            .flatten()
                            .unwrap_or_default()
                    })
                    .collect::<Vec<_>>()
                    .join(" | ")
            })
            .collect();
        let text = plan.join("\n");
        if store.is_tidb() {
            assert!(text.contains("Batch_Point_Get"), "{server}:\n{text}");
        } else {
            assert!(
                plan.iter().any(|line| line.contains("| PRIMARY |")),
                "{server}: the read must use PRIMARY:\n{text}"
            );
            assert!(!text.contains("| by_user |"), "{server}:\n{text}");
        }
    }
}
