//! A window held open, statement by statement, while a repair runs.

use super::{c, change, options, sql, store_on};
use likes_shared::store::LikeStore;
use likes_sink::mysql::{Drift, ReconcileScope};
use likes_smoke::MYSQL_SERVERS;
use sqlx::{Connection, Executor, MySqlConnection};
use std::time::Duration;

/// One window by hand, statement by statement, as `MySqlStore::apply_window` runs it, so a test
/// can hold it open at a chosen point: `user` likes `content` (a new row).
struct WindowByHand {
    conn: MySqlConnection,
    content: u64,
}

impl WindowByHand {
    async fn begin(url: &str, tidb: bool, content: u64, user: u64) -> Self {
        let mut conn = MySqlConnection::connect(url).await.expect("connect");
        conn.execute(if tidb { "BEGIN OPTIMISTIC" } else { "BEGIN" })
            .await
            .expect("begin");
        let read = format!(
            "SELECT liked FROM likes WHERE (content_id, user_id) IN (({content},{user})) FOR UPDATE"
        );
        let rows = conn.fetch_all(read.as_str()).await.expect("read rows");
        assert!(rows.is_empty(), "a new like");
        let write = format!(
            "INSERT INTO likes VALUES ({content},{user},1,{},'2026-11-25 00:00:00.000')",
            1_000 + user
        );
        conn.execute(write.as_str()).await.expect("write row");
        WindowByHand { conn, content }
    }

    async fn add_count(&mut self) -> Result<(), sqlx::Error> {
        let add = format!(
            "INSERT INTO like_counts (content_id, count, updated_at) VALUES ({},1,NOW(3)) \
             ON DUPLICATE KEY UPDATE count = count + VALUES(count)",
            self.content
        );
        self.conn.execute(add.as_str()).await.map(drop)
    }

    async fn commit(mut self) -> Result<(), sqlx::Error> {
        self.conn.execute("COMMIT").await.map(drop)
    }
}

/// The orderings the module docs argue, made to happen on purpose: a repair runs while a window
/// that likes the drifted content is open, and the window's delta lands on the repaired count.
#[tokio::test]
async fn a_window_open_during_a_repair_adds_its_like_to_the_repaired_count() {
    for server in MYSQL_SERVERS {
        let (store, url) = store_on(server).await;
        let tidb = store.is_tidb();
        store
            .apply_window(&[change(1, 1, true, 1), change(1, 2, true, 1)])
            .await
            .expect("likes");
        sql(
            &store,
            "UPDATE like_counts SET count = count + 5 WHERE content_id = 1",
        )
        .await;

        // The window has written its liked row, not yet its count (TiDB: both, buffered).
        let mut window = WindowByHand::begin(&url, tidb, 1, 3).await;
        if tidb {
            window.add_count().await.expect("buffered count");
        }
        let repair = store
            .reconcile(options(ReconcileScope::All, 10, false))
            .await
            .expect("repair");
        assert_eq!(
            repair.drift,
            vec![Drift {
                content_id: c(1),
                stored: Some(7),
                actual: 2
            }],
            "{server}: the open window's like is not in the recount"
        );
        if tidb {
            let conflict = window
                .commit()
                .await
                .expect_err("the repair wrote the count first");
            assert!(
                conflict.to_string().contains("9007"),
                "{server}: {conflict}"
            );
            let (content, user) = (1, 3);
            let mut retried = WindowByHand::begin(&url, tidb, content, user).await;
            retried.add_count().await.expect("count");
            retried.commit().await.expect("the retried window commits");
        } else {
            window
                .add_count()
                .await
                .expect("the repair's locks are gone");
            window.commit().await.expect("commit");
        }
        assert_eq!(
            store.counts(&[c(1)]).await.expect("count"),
            vec![3],
            "{server}"
        );
        assert_eq!(
            store.count_mismatches().await.expect("I1"),
            vec![],
            "{server}"
        );

        if tidb {
            continue;
        }
        // MariaDB: a window holding the count row makes the repair wait, and is in its snapshot.
        sql(
            &store,
            "UPDATE like_counts SET count = count + 5 WHERE content_id = 1",
        )
        .await;
        let mut window = WindowByHand::begin(&url, tidb, 1, 4).await;
        window
            .add_count()
            .await
            .expect("count locked by the window");
        let waiting = {
            let store = store.clone();
            tokio::spawn(async move {
                store
                    .reconcile(options(ReconcileScope::All, 10, false))
                    .await
            })
        };
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert!(
            !waiting.is_finished(),
            "the repair waits for the window's lock"
        );
        window.commit().await.expect("commit");
        let repair = tokio::time::timeout(Duration::from_secs(30), waiting)
            .await
            .expect("the repair goes on once the window commits")
            .expect("join")
            .expect("repair");
        assert_eq!(
            repair.drift,
            vec![Drift {
                content_id: c(1),
                stored: Some(9),
                actual: 4
            }],
            "{server}: the window is in both the locked count and the recount"
        );
        assert_eq!(
            store.counts(&[c(1)]).await.expect("count"),
            vec![4],
            "{server}"
        );
    }
}
