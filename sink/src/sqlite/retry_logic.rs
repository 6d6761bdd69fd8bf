//! Which SQLite errors are worth retrying. Classification only; *when* to retry is the worker's
//! backoff policy (STYLE: retry logic apart from retry policy).

use likes_shared::store::StoreError;

/// Transient: the database or the machine cannot do it *now* (busy, locked, out of memory, disk
/// I/O error, disk full, file cannot be opened, lock protocol, a lost connection or crashed
/// connection worker). DESIGN section 8: an outage pauses the worker, which retries the same
/// window with backoff; dead-lettering there would empty the stream into the letters file for a
/// disk hiccup. Permanent: this batch can never be written (constraint, type mismatch, value too
/// big, an SQL or schema error), so it is dead-lettered and the stream goes on.
pub(crate) fn classify(e: sqlx::Error) -> StoreError {
    crate::retry_logic::classify_with(e, |db| {
        db.code()
            .and_then(|code| code.parse::<u32>().ok())
            .is_some_and(is_outage_code)
    })
}

/// SQLite result codes that describe the database or the machine, not the batch. sqlx reports
/// extended codes (SQLITE_IOERR_FSYNC is 1034); the primary code is the low byte.
fn is_outage_code(code: u32) -> bool {
    const BUSY: u32 = 5;
    const LOCKED: u32 = 6;
    const NOMEM: u32 = 7;
    const IOERR: u32 = 10;
    const FULL: u32 = 13;
    const CANTOPEN: u32 = 14;
    const PROTOCOL: u32 = 15;
    matches!(
        code & 0xff,
        BUSY | LOCKED | NOMEM | IOERR | FULL | CANTOPEN | PROTOCOL
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use sqlx::error::{DatabaseError, ErrorKind};
    use sqlx::sqlite::SqliteConnection;
    use sqlx::Connection;
    use std::borrow::Cow;

    fn is_transient(e: sqlx::Error) -> bool {
        classify(e).is_transient()
    }

    /// A database error carrying a chosen SQLite result code, for the conditions a test cannot
    /// cause on demand (a failing disk, out of memory). The code is what `classify` reads.
    #[derive(Debug)]
    struct Coded(u32);

    impl std::fmt::Display for Coded {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "(code: {}) scripted", self.0)
        }
    }

    impl std::error::Error for Coded {}

    impl DatabaseError for Coded {
        fn message(&self) -> &str {
            "scripted"
        }
        fn code(&self) -> Option<Cow<'_, str>> {
            Some(self.0.to_string().into())
        }
        fn as_error(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
            self
        }
        fn as_error_mut(&mut self) -> &mut (dyn std::error::Error + Send + Sync + 'static) {
            self
        }
        fn into_error(self: Box<Self>) -> Box<dyn std::error::Error + Send + Sync + 'static> {
            self
        }
        fn kind(&self) -> ErrorKind {
            ErrorKind::Other
        }
    }

    async fn scratch() -> (tempfile::TempDir, SqliteConnection) {
        let dir = tempfile::tempdir().expect("tempdir");
        let options = sqlx::sqlite::SqliteConnectOptions::new()
            .filename(dir.path().join("scratch.db"))
            .create_if_missing(true);
        let conn = SqliteConnection::connect_with(&options)
            .await
            .expect("connect");
        (dir, conn)
    }

    async fn fails(conn: &mut SqliteConnection, sql: &str) -> sqlx::Error {
        sqlx::query(sql)
            .execute(conn)
            .await
            .expect_err("the statement fails")
    }

    #[tokio::test]
    async fn a_full_disk_is_an_outage_not_a_bad_batch() {
        let (_dir, mut conn) = scratch().await;
        for sql in [
            "CREATE TABLE t (b BLOB)",
            "PRAGMA max_page_count = 3", // the database cannot grow: SQLITE_FULL
        ] {
            sqlx::query(sql).execute(&mut conn).await.expect(sql);
        }
        let full = fails(&mut conn, "INSERT INTO t VALUES (zeroblob(100000))").await;
        assert!(full.to_string().contains("(code: 13)"), "{full}");
        assert!(is_transient(full));
    }

    #[tokio::test]
    async fn a_database_that_cannot_be_opened_is_an_outage() {
        let dir = tempfile::tempdir().expect("tempdir");
        // A directory where the file should be: SQLITE_CANTOPEN, as on a missing mount.
        let error = crate::SqliteConfig {
            path: dir.path().to_path_buf(),
            ..crate::SqliteConfig::default()
        }
        .build()
        .await
        .expect_err("a directory is not a database");
        assert!(error.is_transient(), "{error}");
    }

    #[tokio::test]
    async fn a_batch_the_schema_refuses_is_permanent() {
        let (_dir, mut conn) = scratch().await;
        sqlx::query("CREATE TABLE t (id INTEGER PRIMARY KEY, n INTEGER NOT NULL)")
            .execute(&mut conn)
            .await
            .expect("create");
        let refused = [
            ("INSERT INTO t (id, n) VALUES (1, NULL)", "(code: 1299)"), // CONSTRAINT_NOTNULL
            ("INSERT INTO t (id, n) VALUES ('x', 1)", "(code: 20)"),    // MISMATCH
            ("SELECT zeroblob(2000000000)", "(code: 18)"),              // TOOBIG
            ("SELECT n FROM no_such_table", "(code: 1)"),               // schema (SQL) error
        ];
        for (sql, code) in refused {
            let error = fails(&mut conn, sql).await;
            assert!(error.to_string().contains(code), "{sql}: {error}");
            assert!(!is_transient(error), "{sql}");
        }
    }

    #[test]
    fn sqlite_outage_codes_are_transient_with_their_extended_codes() {
        let outages = [
            5,    // BUSY
            517,  // BUSY_SNAPSHOT
            6,    // LOCKED
            7,    // NOMEM
            10,   // IOERR
            266,  // IOERR_READ
            778,  // IOERR_WRITE
            1034, // IOERR_FSYNC
            13,   // FULL
            14,   // CANTOPEN
            15,   // PROTOCOL
        ];
        for code in outages {
            assert!(is_transient(Coded(code).into()), "code {code}");
        }
        for code in [19, 2067, 20, 18, 1, 25] {
            assert!(!is_transient(Coded(code).into()), "code {code}");
        }
    }

    #[test]
    fn a_lost_connection_or_worker_is_transient() {
        let lost = [
            sqlx::Error::WorkerCrashed,
            sqlx::Error::Io(std::io::Error::other("disk hiccup")),
            sqlx::Error::Protocol("unexpected response".into()),
            sqlx::Error::Tls("handshake".into()),
            sqlx::Error::PoolTimedOut,
        ];
        for error in lost {
            let shown = error.to_string();
            assert!(is_transient(error), "{shown}");
        }
        assert!(!is_transient(sqlx::Error::Decode("bad row".into())));
    }
}
