//! What every sqlx backend classifies alike: errors of the connection, the pool or the driver's
//! worker, which say nothing about the batch. Each backend adds its own server error codes
//! (`sqlite/retry_logic.rs`, `mysql/retry_logic.rs`).

use likes_shared::store::StoreError;

/// Transient when the backend's `is_outage` says so for a database error, or when the error is
/// about reaching the database at all (a lost or refused connection, an exhausted or closed pool,
/// a crashed driver worker, a broken protocol exchange).
pub(crate) fn classify_with(
    e: sqlx::Error,
    is_outage: impl FnOnce(&dyn sqlx::error::DatabaseError) -> bool,
) -> StoreError {
    let transient = match &e {
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed
        | sqlx::Error::BeginFailed
        | sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_) => true,
        sqlx::Error::Database(db) => is_outage(db.as_ref()),
        _ => false,
    };
    if transient {
        StoreError::Transient(e.to_string())
    } else {
        StoreError::Permanent(e.to_string())
    }
}
