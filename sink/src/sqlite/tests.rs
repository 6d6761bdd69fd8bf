use super::*;

#[tokio::test]
async fn every_commit_is_fsynced_before_the_worker_acks_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = SqliteConfig {
        path: dir.path().join("likes.db"),
        ..SqliteConfig::default()
    }
    .build()
    .await
    .expect("store");
    // Every connection of the pool, not only the first one handed out.
    let mut held = Vec::new();
    for _ in 0..SqliteConfig::default().max_connections {
        let mut conn = store.pool.acquire().await.expect("connection");
        let journal: String = sqlx::query_scalar("PRAGMA journal_mode")
            .fetch_one(&mut *conn)
            .await
            .expect("journal_mode");
        let synchronous: i64 = sqlx::query_scalar("PRAGMA synchronous")
            .fetch_one(&mut *conn)
            .await
            .expect("synchronous");
        assert_eq!(journal, "wal");
        assert_eq!(
            synchronous, 2,
            "synchronous=FULL (2): in WAL mode NORMAL (1) may lose the last commits on power loss"
        );
        held.push(conn);
    }
}
