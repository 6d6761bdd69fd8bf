//! The reconciler on the real servers: TiDB (`LIKES_DATABASE_URL`) and MariaDB
//! (`LIKES_MARIADB_URL`), each test on both, each in a database of its own. Drift is injected
//! with plain SQL; the traffic tests apply windows (likes and unlikes, retried like the worker
//! does) while the reconciler runs, and check that it never "repairs" a count a window is moving.
//!
//! # Layout
//! - this file: a sound store, injected drift in every scope, the shared helpers.
//! - `open_window`: a window held open by hand while a repair runs (the orderings the module docs
//!   argue, made to happen on purpose).
//! - `traffic`: reconciling in a loop while two writers commit windows, with and without drift
//!   injected meanwhile.

mod open_window;
#[path = "../support/retrying.rs"]
mod retrying;
mod traffic;

use likes_shared::store::{LikeChange, LikeStore};
use likes_shared::{ContentId, UserId};
use likes_sink::mysql::{Drift, ReconcileOptions, ReconcileReport, ReconcileScope};
use likes_sink::{MySqlConfig, MySqlStore};
use likes_smoke::{fresh_database, ServicesEnv, MYSQL_SERVERS};
use std::collections::BTreeMap;

async fn store_on(server: &str) -> (MySqlStore, String) {
    let url = fresh_database(&ServicesEnv::load().get(server)).await;
    let store = MySqlConfig {
        url: url.clone(),
        ..MySqlConfig::default()
    }
    .build()
    .await
    .unwrap_or_else(|e| panic!("{server}: {e}"));
    (store, url)
}

fn c(n: u64) -> ContentId {
    ContentId::new(n).expect("non-zero")
}

fn change(content: u64, user: u64, liked: bool, version: u64) -> LikeChange {
    LikeChange {
        content_id: c(content),
        user_id: UserId::new(user).expect("non-zero"),
        liked,
        version,
        ts_ms: 1_795_581_680_000 + version,
        fill_epoch: 0,
    }
}

fn options(scope: ReconcileScope, batch_contents: usize, dry_run: bool) -> ReconcileOptions {
    ReconcileOptions {
        scope,
        batch_contents,
        dry_run,
        ..ReconcileOptions::default()
    }
}

async fn sql(store: &MySqlStore, statement: &str) {
    sqlx::raw_sql(statement)
        .execute(store.pool())
        .await
        .unwrap_or_else(|e| panic!("{statement}: {e}"));
}

/// Every count row with its update time: what "changes nothing" compares.
async fn count_rows(store: &MySqlStore) -> Vec<(u64, i64, String)> {
    sqlx::query_as(
        "SELECT content_id, count, CAST(updated_at AS CHAR) FROM like_counts ORDER BY content_id",
    )
    .fetch_all(store.pool())
    .await
    .expect("count rows")
}

/// Contents 1..=30: content n liked by users 1..=n, then users 2, 4, … of it unliked again
/// (count (n + 1) / 2); content 41 liked and unliked (a count row at 0); content 40 only ever
/// has a tombstone (no count row). Returns the counts of 1..=30.
async fn seed(store: &MySqlStore) -> BTreeMap<u64, i64> {
    let likes: Vec<LikeChange> = (1..=30u64)
        .flat_map(|n| (1..=n).map(move |u| change(n, u, true, 10)))
        .chain([change(40, 1, false, 10), change(41, 1, true, 10)])
        .collect();
    store.apply_window(&likes).await.expect("likes");
    let unlikes: Vec<LikeChange> = (1..=30u64)
        .flat_map(|n| {
            (1..=n)
                .filter(|u| u % 2 == 0)
                .map(move |u| change(n, u, false, 11))
        })
        .chain([change(41, 1, false, 11)])
        .collect();
    store.apply_window(&unlikes).await.expect("unlikes");
    (1..=30u64).map(|n| (n, (n as i64 + 1) / 2)).collect()
}

#[tokio::test]
async fn a_sound_store_reports_no_drift_and_changes_nothing() {
    for server in MYSQL_SERVERS {
        let (store, _) = store_on(server).await;
        seed(&store).await;
        let before = count_rows(&store).await;
        assert_eq!(before.len(), 31, "{server}");
        for dry_run in [true, false] {
            let report = store
                .reconcile(options(ReconcileScope::All, 7, dry_run))
                .await
                .expect("reconcile");
            assert_eq!(
                report,
                ReconcileReport {
                    contents_checked: 31,
                    batches: 5,
                    ..ReconcileReport::default()
                },
                "{server} dry_run={dry_run}"
            );
            assert_eq!(
                count_rows(&store).await,
                before,
                "{server}: nothing written"
            );
        }
    }
}

#[tokio::test]
async fn injected_drift_is_reported_by_a_dry_run_and_repaired_exactly_by_a_real_run() {
    for server in MYSQL_SERVERS {
        let (store, _) = store_on(server).await;
        let expected = seed(&store).await;
        sql(
            &store,
            "UPDATE like_counts SET count = count + 5 WHERE content_id = 3",
        )
        .await;
        sql(&store, "DELETE FROM like_counts WHERE content_id = 7").await;
        sql(
            &store,
            "INSERT INTO like_counts (content_id, count, updated_at) VALUES (99, 4, NOW(3))",
        )
        .await;
        let drifted = vec![
            Drift {
                content_id: c(3),
                stored: Some(7),
                actual: 2,
            },
            Drift {
                content_id: c(7),
                stored: None,
                actual: 4,
            },
            Drift {
                content_id: c(99),
                stored: Some(4),
                actual: 0,
            },
        ];
        let before = count_rows(&store).await;

        let dry = store
            .reconcile(options(ReconcileScope::All, 4, true))
            .await
            .expect("dry run");
        assert_eq!(dry.drift, drifted, "{server}");
        assert_eq!((dry.drift_total, dry.repaired), (3, 0), "{server}");
        assert_eq!(dry.contents_checked, 32, "{server}: 1..=30, 41 and 99");
        assert_eq!(
            count_rows(&store).await,
            before,
            "{server}: a dry run writes nothing"
        );

        let range = |from, to| ReconcileScope::Range {
            from: c(from),
            to: c(to),
        };
        for (scope, want) in [
            (range(1, 2), vec![]),
            (range(8, 98), vec![]),
            (range(3, 7), drifted[..2].to_vec()),
            (range(7, u64::MAX), drifted[1..].to_vec()),
            // A sample is drawn from count rows: the missing row of 7 is not in it.
            (
                ReconcileScope::Sample { contents: 100 },
                vec![drifted[0], drifted[2]],
            ),
        ] {
            let report = store
                .reconcile(options(scope.clone(), 2, true))
                .await
                .expect("scope");
            assert_eq!(report.drift, want, "{server}: {scope:?}");
        }
        let sample = store
            .reconcile(options(ReconcileScope::Sample { contents: 5 }, 2, true))
            .await
            .expect("small sample");
        assert_eq!(
            (sample.contents_checked, sample.batches),
            (5, 3),
            "{server}"
        );
        let listed_one = store
            .reconcile(ReconcileOptions {
                drift_listed: 1,
                ..options(ReconcileScope::All, 4, true)
            })
            .await
            .expect("bounded listing");
        assert_eq!(
            (listed_one.drift, listed_one.drift_total),
            (drifted[..1].to_vec(), 3)
        );

        let repair = store
            .reconcile(options(ReconcileScope::All, 4, false))
            .await
            .expect("repair");
        assert_eq!(
            (repair.drift, repair.repaired),
            (drifted.clone(), 3),
            "{server}"
        );
        assert_eq!(
            store.count_mismatches().await.expect("I1"),
            vec![],
            "{server}"
        );
        let ids: Vec<ContentId> = expected.keys().map(|&n| c(n)).chain([c(99)]).collect();
        let want: Vec<i64> = expected.values().copied().chain([0]).collect();
        assert_eq!(store.counts(&ids).await.expect("counts"), want, "{server}");
        let after = count_rows(&store).await;
        let again = store
            .reconcile(options(ReconcileScope::All, 4, false))
            .await
            .expect("again");
        assert_eq!((again.drift_total, again.repaired), (0, 0), "{server}");
        assert_eq!(count_rows(&store).await, after, "{server}");
    }
}
