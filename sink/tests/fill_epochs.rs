//! The fill-epoch delta beside each count (`likes_sink::epoch_deltas`), written by every store
//! the sink runs on: TiDB and MariaDB (real servers, a database of their own each) and SQLite.
//! The MySQL statement relies on the server assigning `epoch_delta` before `fill_epoch`; this
//! is where that is checked on the real servers.

use likes_shared::store::{LikeChange, LikeStore, StoredCount};
use likes_sink::SqliteConfig;
use likes_smoke::MYSQL_SERVERS;

#[path = "support/mysql.rs"]
mod mysql;
use mysql::{ids, store_on};

/// A change of `fill_epoch` (0: untagged).
fn change(content: u64, user: u64, liked: bool, version: u64, fill_epoch: u64) -> LikeChange {
    LikeChange {
        fill_epoch,
        ..mysql::change(content, user, liked, version)
    }
}

fn stored(count: i64, fill_epoch: u64, epoch_delta: i64) -> StoredCount {
    StoredCount {
        count,
        fill_epoch,
        epoch_delta,
    }
}

/// Windows of tagged and untagged changes, and what each store must then hold.
async fn check(store: &dyn LikeStore, name: &str) {
    // Content 1: two likes before any epoch, then epoch 70 unlikes one and adds two.
    store
        .apply_window(&[change(1, 1, true, 10, 0), change(1, 2, true, 10, 0)])
        .await
        .expect("untagged");
    store
        .apply_window(&[
            change(1, 1, false, 20, 70),
            change(1, 3, true, 20, 70),
            change(1, 4, true, 21, 70),
            // Content 2: a like before the epoch and its unlike during it, in one window.
            change(2, 1, true, 10, 0),
            change(2, 1, false, 20, 70),
        ])
        .await
        .expect("epoch 70");
    assert_eq!(
        store.fill_counts(&ids(1..=3)).await.expect("fill counts"),
        vec![stored(3, 70, 1), stored(0, 70, -1), stored(0, 0, 0)],
        "{name}"
    );
    // A redelivery adds nothing; a change of an older epoch adds nothing; a newer epoch starts
    // over; the same epoch again adds up.
    store
        .apply_window(&[change(1, 3, true, 20, 70)])
        .await
        .expect("again");
    store
        .apply_window(&[change(1, 5, true, 22, 60)])
        .await
        .expect("epoch 60");
    store
        .apply_window(&[change(2, 2, true, 30, 90)])
        .await
        .expect("epoch 90");
    store
        .apply_window(&[change(1, 6, true, 23, 70)])
        .await
        .expect("epoch 70 again");
    assert_eq!(
        store.fill_counts(&ids(1..=2)).await.expect("fill counts"),
        vec![stored(5, 70, 2), stored(1, 90, 1)],
        "{name}"
    );
    assert_eq!(
        store.counts(&ids(1..=2)).await.expect("counts"),
        vec![5, 1],
        "{name}"
    );
}

#[tokio::test]
async fn every_store_adds_up_each_contents_newest_fill_epoch() {
    for server in MYSQL_SERVERS {
        let store = store_on(server, 1_000).await;
        check(&store, server).await;
        assert_eq!(store.count_mismatches().await.expect("I1"), vec![]);
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let sqlite = SqliteConfig {
        path: dir.path().join("likes.db"),
        ..SqliteConfig::default()
    }
    .build()
    .await
    .expect("sqlite");
    check(&sqlite, "sqlite").await;
}
