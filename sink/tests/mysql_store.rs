//! `MySqlStore` on the real servers: TiDB (`LIKES_DATABASE_URL`) and MariaDB
//! (`LIKES_MARIADB_URL`), each test on both, each run in a database of its own. They fail,
//! naming the service to start, when a server is not up (`infra/dev/services up tidb mariadb`).

use likes_shared::store::{LikeChange, LikeStore, RowState, StoreError};
use likes_shared::UserId;
use likes_sink::MySqlConfig;

#[path = "support/mysql.rs"]
mod mysql;
#[path = "support/retrying.rs"]
mod retrying;
use likes_smoke::{fresh_database, ServicesEnv, MYSQL_SERVERS};
use mysql::{change, ids, store_on};
use retrying::apply_retrying;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

#[tokio::test]
async fn a_window_of_20000_events_commits_in_bounded_statements_and_again_changes_nothing() {
    for server in MYSQL_SERVERS {
        // 20 000 changes over 50 contents; 1 000 rows per statement: 20 reads and 20 upserts.
        let store = store_on(server, 1_000).await;
        let window: Vec<LikeChange> = (0..20_000u64)
            .map(|i| change(1 + i % 50, 1 + i / 50, (i / 50) % 4 != 0, 100 + i))
            .collect();
        let first = store.apply_window(&window).await.expect("first apply");
        assert_eq!(first.rows_written, 20_000, "{server}");
        let liked_per_content = 400 - 100; // 400 users per content, every fourth unliked
        let counts = store.counts(&ids(1..=50)).await.expect("counts");
        assert!(counts.iter().all(|&n| n == 300), "{server}: {counts:?}");
        assert_eq!(
            first.count_deltas.iter().map(|(_, d)| d).sum::<i64>(),
            50 * liked_per_content
        );

        let again = store.apply_window(&window).await.expect("second apply");
        assert_eq!(
            again.rows_written, 0,
            "{server}: a redelivery writes nothing"
        );
        assert!(again.count_deltas.is_empty(), "{server}");
        assert_eq!(store.counts(&ids(1..=50)).await.expect("counts"), counts);
        assert_eq!(
            store.count_mismatches().await.expect("I1"),
            vec![],
            "{server}"
        );
    }
}

#[tokio::test]
async fn older_versions_never_overwrite_and_unlikes_keep_tombstones() {
    for server in MYSQL_SERVERS {
        let store = store_on(server, 2).await;
        let user = UserId::new(9).expect("non-zero");
        store
            .apply_window(&[change(1, 9, true, 10), change(2, 9, true, 10)])
            .await
            .expect("likes");
        // Older like and unlike, and a newer unlike, in windows of statements of two rows.
        store
            .apply_window(&[
                change(1, 9, false, 5),
                change(2, 9, false, 11),
                change(3, 9, false, 1),
            ])
            .await
            .expect("mixed");
        let states = store.states(user, &ids(1..=4)).await.expect("states");
        let row = |liked, version| Some(RowState { liked, version });
        assert_eq!(
            states,
            vec![row(true, 10), row(false, 11), row(false, 1), None],
            "{server}"
        );
        assert_eq!(
            store.counts(&ids(1..=3)).await.expect("counts"),
            vec![1, 0, 0]
        );
        let history = store.history(user, None, 10).await.expect("history");
        assert_eq!(history.len(), 1, "{server}: tombstones are not history");
        assert_eq!(history[0].liked_at_ms, 1_795_581_680_010, "{server}");
        let rows = store.user_rows(user, 10).await.expect("user rows");
        assert_eq!(rows.len(), 3, "{server}: the fill sees tombstones too");
        assert_eq!(
            store.count_mismatches().await.expect("I1"),
            vec![],
            "{server}"
        );
    }
}

#[tokio::test]
async fn history_pages_newest_first_across_equal_times() {
    for server in MYSQL_SERVERS {
        let store = store_on(server, 1_000).await;
        let user = UserId::new(4).expect("non-zero");
        // Ten likes, two per millisecond.
        let window: Vec<LikeChange> = (1..=10u64)
            .map(|c| LikeChange {
                ts_ms: 1_700_000_000_000 + c / 2,
                fill_epoch: 0,
                ..change(c, 4, true, c)
            })
            .collect();
        store.apply_window(&window).await.expect("apply");
        let mut seen = Vec::new();
        let mut cursor = None;
        loop {
            let page = store.history(user, cursor, 3).await.expect("page");
            let Some(last) = page.last() else { break };
            cursor = Some(likes_shared::store::HistoryCursor {
                liked_at_ms: last.liked_at_ms,
                content_id: last.content_id,
            });
            seen.extend(page.iter().map(|item| item.content_id.get()));
        }
        assert_eq!(seen, (1..=10).rev().collect::<Vec<_>>(), "{server}");
    }
}

#[tokio::test]
async fn two_writers_on_the_same_rows_are_retried_and_stay_exact() {
    for server in MYSQL_SERVERS {
        let store = Arc::new(store_on(server, 1_000).await);
        let retries = Arc::new(AtomicU64::new(0));
        // Two writers (a failover hand-over) apply interleaved windows over the same 5 contents
        // and 40 users; versions are unique, so the final state is the newest change per row.
        let mut expected: BTreeMap<(u64, u64), (bool, u64)> = BTreeMap::new();
        let mut writers = Vec::new();
        for writer in 0..2u64 {
            let windows: Vec<Vec<LikeChange>> = (0..30u64)
                .map(|round| {
                    (0..200u64)
                        .map(|i| {
                            let version = 1 + (round * 200 + i) * 2 + writer;
                            change(
                                1 + i % 5,
                                1 + (i * 7 + round) % 40,
                                (i + round + writer) % 3 != 0,
                                version,
                            )
                        })
                        .collect()
                })
                .collect();
            for c in windows.iter().flatten() {
                let key = (c.content_id.get(), c.user_id.get());
                let entry = expected.entry(key).or_insert((c.liked, c.version));
                if c.version > entry.1 {
                    *entry = (c.liked, c.version);
                }
            }
            let (store, retries) = (store.clone(), retries.clone());
            writers.push(tokio::spawn(async move {
                for window in &windows {
                    apply_retrying(&store, window, &retries).await;
                }
            }));
        }
        for writer in writers {
            writer.await.expect("writer");
        }
        let want: Vec<i64> = (1..=5u64)
            .map(|c| {
                expected
                    .iter()
                    .filter(|((content, _), (liked, _))| *content == c && *liked)
                    .count() as i64
            })
            .collect();
        assert_eq!(
            store.counts(&ids(1..=5)).await.expect("counts"),
            want,
            "{server}"
        );
        assert_eq!(
            store.count_mismatches().await.expect("I1"),
            vec![],
            "{server}"
        );
        let retried = retries.load(Ordering::Relaxed);
        eprintln!("{server}: {retried} transient retries");
        if store.is_tidb() {
            // Sixty windows of two writers on the same five counter rows: TiDB's optimistic
            // commits must have met (runs saw 6-7 conflicts), or this test proved nothing.
            assert!(retried > 0, "{server}: the writers never conflicted");
        }
    }
}

/// A window holding a row the schema refuses fails whole and permanently, and writes nothing:
/// the worker then isolates that row. Two refusals: a check constraint an operator added, and
/// an event time no DATETIME can hold.
#[tokio::test]
async fn a_row_the_schema_refuses_fails_the_window_permanently_and_writes_nothing() {
    for server in MYSQL_SERVERS {
        let store = store_on(server, 1_000).await;
        if store.is_tidb() {
            sqlx::query("SET GLOBAL tidb_enable_check_constraint = ON")
                .execute(store.pool())
                .await
                .expect("enable check constraints");
        }
        sqlx::query("ALTER TABLE likes ADD CONSTRAINT no_user_666 CHECK (user_id <> 666)")
            .execute(store.pool())
            .await
            .expect("add constraint");
        let far_future = LikeChange {
            ts_ms: 253_402_300_800_000, // 10000-01-01
            ..change(2, 7, true, 3)
        };
        for poison in [change(1, 666, true, 2), far_future] {
            let window = [change(1, 5, true, 1), poison, change(3, 5, true, 4)];
            match store.apply_window(&window).await {
                Err(StoreError::Permanent(e)) => eprintln!("{server}: refused: {e}"),
                other => panic!("{server}: expected a permanent error, got {other:?}"),
            }
            assert_eq!(
                store.counts(&ids(1..=3)).await.expect("counts"),
                vec![0, 0, 0],
                "{server}: all or nothing"
            );
        }
        sqlx::query("ALTER TABLE likes DROP CONSTRAINT no_user_666")
            .execute(store.pool())
            .await
            .expect("drop constraint");
        store
            .apply_window(&[change(1, 666, true, 2)])
            .await
            .expect("applies once the cause is gone");
        assert_eq!(store.counts(&ids(1..=1)).await.expect("counts"), vec![1]);
    }
}

/// The errors a real conflict produces are the transient ones: TiDB's optimistic write conflict
/// at commit (9007) and InnoDB's deadlock (1213).
#[tokio::test]
async fn real_write_conflicts_and_deadlocks_classify_as_transient() {
    use sqlx::{Connection, Executor, MySqlConnection};
    for server in MYSQL_SERVERS {
        let url = fresh_database(&ServicesEnv::load().get(server)).await;
        let mut a = MySqlConnection::connect(&url).await.expect("connect a");
        let mut b = MySqlConnection::connect(&url).await.expect("connect b");
        a.execute("CREATE TABLE t (id INT PRIMARY KEY, v INT NOT NULL)")
            .await
            .expect("create");
        a.execute("INSERT INTO t VALUES (1, 0), (2, 0)")
            .await
            .expect("insert");
        let version: String = sqlx::query_scalar("SELECT VERSION()")
            .fetch_one(&mut a)
            .await
            .expect("version");
        let error = if version.contains("TiDB") {
            a.execute("BEGIN OPTIMISTIC").await.expect("begin");
            a.execute("UPDATE t SET v = 1 WHERE id = 1")
                .await
                .expect("a");
            b.execute("UPDATE t SET v = 2 WHERE id = 1")
                .await
                .expect("b");
            a.execute("COMMIT").await.expect_err("a write conflict")
        } else {
            a.execute("BEGIN").await.expect("begin a");
            b.execute("BEGIN").await.expect("begin b");
            a.execute("UPDATE t SET v = 1 WHERE id = 1")
                .await
                .expect("a 1");
            b.execute("UPDATE t SET v = 1 WHERE id = 2")
                .await
                .expect("b 2");
            let waiting = tokio::spawn(async move {
                let result = a.execute("UPDATE t SET v = 2 WHERE id = 2").await;
                (a, result)
            });
            tokio::time::sleep(std::time::Duration::from_millis(300)).await;
            let second = b.execute("UPDATE t SET v = 2 WHERE id = 1").await;
            let (_a, first) = waiting.await.expect("join");
            // InnoDB picks one victim; the other statement goes through.
            match (first, second) {
                (Err(e), Ok(_)) | (Ok(_), Err(e)) => e,
                other => panic!("{server}: expected one deadlock victim, got {other:?}"),
            }
        };
        let shown = error.to_string();
        let code = if version.contains("TiDB") {
            "9007"
        } else {
            "1213"
        };
        assert!(shown.contains(code), "{server}: {shown}");
        assert!(
            likes_sink::mysql::classify(error).is_transient(),
            "{server}: {shown}"
        );
    }
}

/// The window's locking reads rely on REPEATABLE READ (gap locks on MariaDB/MySQL: without them
/// two writers of a missing row both plan 0→1 and both count it). A server whose default is
/// READ COMMITTED must not change that: the store's own sessions run REPEATABLE READ.
#[tokio::test]
async fn store_sessions_run_repeatable_read_even_on_a_read_committed_server() {
    let server = "LIKES_MARIADB_URL";
    let url = fresh_database(&ServicesEnv::load().get(server)).await;
    let admin = MySqlConfig {
        url: url.clone(),
        max_connections: 1,
        ..MySqlConfig::default()
    }
    .build()
    .await
    .expect("admin store");
    sqlx::query("SET GLOBAL TRANSACTION ISOLATION LEVEL READ COMMITTED")
        .execute(admin.pool())
        .await
        .expect("server default: read committed");
    let store = MySqlConfig {
        url,
        ..MySqlConfig::default()
    }
    .build()
    .await;
    // Restore the shared server's default before any assertion can fail.
    sqlx::query("SET GLOBAL TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        .execute(admin.pool())
        .await
        .expect("restore the default");
    let store = store.expect("store");
    let level: String = sqlx::query_scalar("SELECT @@SESSION.tx_isolation")
        .fetch_one(store.pool())
        .await
        .expect("isolation level");
    assert_eq!(level, "REPEATABLE-READ");
}

/// A connection that stops answering mid-window (a half-open TCP connection, a frozen server)
/// must not hang the worker for the kernel's TCP timeout: the window fails as an outage after
/// `window_timeout_ms` and is retried; once the path answers again, the retry commits.
#[tokio::test]
async fn a_window_on_a_connection_that_stops_answering_times_out_as_an_outage() {
    use std::sync::atomic::AtomicBool;
    let url = fresh_database(&ServicesEnv::load().get("LIKES_MARIADB_URL")).await;
    let (prefix, rest) = url.split_once('@').expect("user@host");
    let (server, database) = rest.split_once('/').expect("host/database");
    // A proxy in front of the server that can stop forwarding, as a dead network path does.
    let frozen = Arc::new(AtomicBool::new(false));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let proxy = listener.local_addr().expect("addr");
    let server = server.to_string();
    let frozen_in_proxy = frozen.clone();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let upstream = tokio::net::TcpStream::connect(&server)
                .await
                .expect("upstream");
            let (client_read, client_write) = client.into_split();
            let (server_read, server_write) = upstream.into_split();
            tokio::spawn(pump(client_read, server_write, frozen_in_proxy.clone()));
            tokio::spawn(pump(server_read, client_write, frozen_in_proxy.clone()));
        }
    });
    let store = MySqlConfig {
        url: format!("{prefix}@{proxy}/{database}"),
        window_timeout_ms: 1_000,
        ..MySqlConfig::default()
    }
    .build()
    .await
    .expect("store through the proxy");
    store
        .apply_window(&[change(1, 1, true, 1)])
        .await
        .expect("first window");
    frozen.store(true, Ordering::Relaxed);
    let started = std::time::Instant::now();
    let outcome = store.apply_window(&[change(1, 2, true, 2)]).await;
    let took = started.elapsed();
    assert!(
        matches!(&outcome, Err(StoreError::Transient(e)) if e.contains("timed out")),
        "{outcome:?}"
    );
    assert!(took < std::time::Duration::from_secs(5), "{took:?}");
    assert!(store.ping().await.is_err(), "ping times out too");
    frozen.store(false, Ordering::Relaxed);
    let retries = AtomicU64::new(0);
    apply_retrying(&store, &[change(1, 2, true, 2)], &retries).await;
    assert_eq!(store.counts(&ids(1..=1)).await.expect("counts"), vec![2]);
}

/// Copies bytes one way, holding them while `frozen` is set.
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    frozen: Arc<std::sync::atomic::AtomicBool>,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        while frozen.load(Ordering::Relaxed) {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}
