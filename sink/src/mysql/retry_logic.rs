//! Which MySQL-protocol errors are worth retrying. Classification only; *when* to retry is the
//! worker's backoff policy (STYLE: retry logic apart from retry policy).
//!
//! Transient means the server or the cluster cannot do it *now*: the connection is gone, the
//! server is starting or stopping, a lock or another transaction got in the way (deadlock, lock
//! wait timeout, TiDB's optimistic write conflict), or TiDB's storage layer is busy, moving a
//! region or electing a leader. DESIGN section 8: an outage pauses consumption and the same
//! window is retried whole; it never produces a dead letter. Everything else (a value a column
//! cannot take, a constraint, a missing table, bad SQL) is permanent for that data: the worker
//! isolates the rows that fail and dead-letters only those.
//!
//! Unknown codes are permanent on purpose: a permanent error misread as transient would stall
//! the stream forever on one bad row, while one misread the other way costs a dead letter that
//! `likes-dlq replay` re-drives.

use likes_shared::store::StoreError;
use sqlx::mysql::MySqlDatabaseError;

/// Transient or permanent, by the error kind and the server's error number (see the module docs).
pub fn classify(e: sqlx::Error) -> StoreError {
    if let sqlx::Error::Database(db) = &e {
        let number = db
            .try_downcast_ref::<MySqlDatabaseError>()
            .map(MySqlDatabaseError::number);
        if number.is_some_and(is_conflict_number) || db.code().as_deref() == Some("40001") {
            return StoreError::Conflict(e.to_string());
        }
    }
    crate::retry_logic::classify_with(e, |db| {
        let number = db
            .try_downcast_ref::<MySqlDatabaseError>()
            .map(MySqlDatabaseError::number);
        // SQLSTATE class 08 is "connection exception"; 40001 is a serialization failure.
        let state = db.code();
        number.is_some_and(is_outage_number)
            || state
                .as_deref()
                .is_some_and(|s| s.starts_with("08") || s == "40001")
    })
}

/// Another transaction got to the same rows first; retried like any outage, counted apart.
fn is_conflict_number(number: u16) -> bool {
    matches!(number, 1020 | 1213 | 8002 | 8005 | 8022 | 9007)
}

/// Server error numbers that describe the moment, not the data.
fn is_outage_number(number: u16) -> bool {
    matches!(
        number,
        1020 // MariaDB: record changed since last read (snapshot isolation conflict)
        | 1021 // disk full, waiting for space
        | 1030 // the storage engine failed (errno 28: no space left)
        | 1040 // too many connections
        | 1053 // server shutdown in progress
        | 1114 // table is full (out of disk or tablespace)
        | 1158
            ..=1161 // network errors reading or writing packets
        | 1180 // error during COMMIT (storage engine)
        | 1203 | 1226 // the user's connection or resource limit is reached
        | 1205 // lock wait timeout
        | 1213 // deadlock: InnoDB rolled the transaction back
        | 1290 // read-only (a failover in progress)
        | 1317 // query interrupted (killed, or the server is shutting down)
        | 1927 // MariaDB: connection was killed
        | 1969 // MariaDB: statement timeout (max_statement_time)
        | 2002 | 2003 | 2006 | 2013 | 2055 // client-side: cannot connect, server gone, lost
        | 3024 // statement timeout (max_execution_time)
        | 4031 // MySQL: disconnected by the server for inactivity
        | 8002 // TiDB: SELECT FOR UPDATE write conflict, cannot retry in place
        | 8005 // TiDB: write conflict (older releases)
        | 8022 // TiDB: transaction retry failed
        | 8027 // TiDB: schema is outdated, the server is catching up
        | 8028 // TiDB: information schema changed during the transaction
        | 9001 // TiDB: PD server timeout
        | 9002 // TiDB: TiKV server timeout
        | 9003 // TiDB: TiKV server is busy
        | 9004 // TiDB: resolve lock timeout
        | 9005 // TiDB: region is unavailable
        | 9006 // TiDB: GC life time shorter than the transaction
        | 9007 // TiDB: write conflict at commit (optimistic transactions)
        | 9008 // TiDB: TiKV request retried too many times (stores unreachable)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lost_connection_is_transient_and_a_decode_error_is_not() {
        let lost = [
            sqlx::Error::Io(std::io::Error::other("reset")),
            sqlx::Error::PoolTimedOut,
            sqlx::Error::Protocol("unexpected packet".into()),
        ];
        for error in lost {
            let shown = error.to_string();
            assert!(classify(error).is_transient(), "{shown}");
        }
        assert!(!classify(sqlx::Error::Decode("bad row".into())).is_transient());
        assert!(!classify(sqlx::Error::RowNotFound).is_transient());
    }

    #[test]
    fn tidb_conflicts_and_busy_storage_are_outages_and_data_errors_are_not() {
        for n in [
            1020, 1021, 1114, 1159, 1180, 1205, 1213, 1317, 1969, 8002, 8022, 8028, 9003, 9005,
            9007,
        ] {
            assert!(is_outage_number(n), "{n}");
        }
        // Out of range, bad datetime, not null, check constraint, no such table, syntax.
        for n in [1264, 1292, 1048, 3819, 1146, 1064, 1105] {
            assert!(!is_outage_number(n), "{n}");
        }
    }

    #[test]
    fn conflicts_are_outages_counted_apart() {
        for n in [1020, 1213, 8002, 8005, 8022, 9007] {
            assert!(is_conflict_number(n) && is_outage_number(n), "{n}");
        }
        // A lock wait timeout and a busy TiKV are outages, not another writer's commit.
        for n in [1205, 9003, 2013] {
            assert!(!is_conflict_number(n), "{n}");
        }
        assert!(StoreError::Conflict("9007".into()).is_transient());
    }
}
