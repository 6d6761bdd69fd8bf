//! The embedded store: SQLite through sqlx, the same schema and rules as TiDB.
//!
//! One window is one transaction of a few multi-row statements: read the touched rows, plan the
//! transitions ([`crate::transitions`]), upsert the winning rows, move the counts. WAL mode lets
//! ingest read while the sink writes; `synchronous=FULL` makes a commit durable before the
//! worker acks it.

mod queries;
mod retry_logic;

use crate::transitions::{plan_writes, row_keys, RowKey};
use async_trait::async_trait;
use likes_shared::store::{
    ApplyOutcome, HistoryCursor, LikeChange, LikeStore, LikedItem, RowState, StoreError,
    StoredCount,
};
use likes_shared::{ContentId, UserId};
pub(crate) use retry_logic::classify;
use serde::{Deserialize, Serialize};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::SqlitePool;
use std::collections::HashMap;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SqliteConfig {
    /// Database file; `:memory:` for a throwaway store.
    pub path: PathBuf,
    pub max_connections: u32,
}

impl Default for SqliteConfig {
    fn default() -> Self {
        SqliteConfig {
            path: PathBuf::from("data/likes.db"),
            max_connections: 4,
        }
    }
}

#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
}

/// Rows per statement: 5 binds each stays far below SQLite's 32766-parameter limit.
const CHUNK: usize = 500;

impl SqliteConfig {
    /// Opens the database, creating it and running migrations as needed.
    pub async fn build(&self) -> Result<SqliteStore, StoreError> {
        let in_memory = self.path.as_os_str() == ":memory:";
        let options = if in_memory {
            SqliteConnectOptions::from_str("sqlite::memory:").map_err(permanent)?
        } else {
            if let Some(parent) = self.path.parent().filter(|p| !p.as_os_str().is_empty()) {
                std::fs::create_dir_all(parent)
                    .map_err(|e| StoreError::Permanent(e.to_string()))?;
            }
            SqliteConnectOptions::new()
                .filename(&self.path)
                .create_if_missing(true)
        }
        .journal_mode(SqliteJournalMode::Wal)
        // FULL: each commit fsyncs the WAL before it returns. The worker acks a window right
        // after its commit and the log then deletes the acked segments, so a commit must be on
        // disk by then; with WAL's NORMAL the last commits can vanish on power loss while the log
        // no longer holds them either. One fsync per window (thousands of events), not per event.
        .synchronous(SqliteSynchronous::Full)
        .busy_timeout(Duration::from_secs(5));
        // Each in-memory connection would be its own database: keep exactly one.
        let max = if in_memory {
            1
        } else {
            self.max_connections.max(1)
        };
        let pool = SqlitePoolOptions::new()
            .max_connections(max)
            .min_connections(if in_memory { 1 } else { 0 })
            .idle_timeout(None)
            .connect_with(options)
            .await
            .map_err(classify)?;
        sqlx::migrate!("./migrations/sqlite")
            .run(&pool)
            .await
            .map_err(|e| StoreError::Permanent(format!("migration: {e}")))?;
        Ok(SqliteStore { pool })
    }
}

impl SqliteStore {
    /// Contents whose stored count differs from the number of liked rows (I1); empty when sound.
    pub async fn count_mismatches(&self) -> Result<Vec<(ContentId, i64, i64)>, StoreError> {
        queries::count_mismatches(&self.pool).await
    }
}

#[async_trait]
impl LikeStore for SqliteStore {
    async fn apply_window(&self, changes: &[LikeChange]) -> Result<ApplyOutcome, StoreError> {
        if changes.is_empty() {
            return Ok(ApplyOutcome::default());
        }
        let mut tx = self.pool.begin().await.map_err(classify)?;
        let keys = row_keys(changes);
        let mut current: HashMap<RowKey, RowState> = HashMap::with_capacity(keys.len());
        for chunk in keys.chunks(CHUNK) {
            queries::read_rows(&mut tx, chunk, &mut current).await?;
        }
        let plan = plan_writes(&current, changes);
        for chunk in plan.rows.chunks(CHUNK) {
            queries::upsert_rows(&mut tx, chunk).await?;
        }
        let now = likes_shared::hlc::now_ms();
        for chunk in plan.deltas.chunks(CHUNK) {
            queries::add_counts(&mut tx, chunk, now).await?;
        }
        for chunk in plan.epoch_deltas.chunks(CHUNK) {
            queries::add_epoch_deltas(&mut tx, chunk, now).await?;
        }
        tx.commit().await.map_err(classify)?;
        Ok(plan.into_outcome())
    }

    async fn counts(&self, contents: &[ContentId]) -> Result<Vec<i64>, StoreError> {
        let mut found = HashMap::new();
        for chunk in contents.chunks(CHUNK) {
            queries::read_counts(&self.pool, chunk, &mut found).await?;
        }
        Ok(contents
            .iter()
            .map(|c| found.get(c).copied().unwrap_or(0))
            .collect())
    }

    async fn fill_counts(&self, contents: &[ContentId]) -> Result<Vec<StoredCount>, StoreError> {
        let mut found = HashMap::new();
        for chunk in contents.chunks(CHUNK) {
            queries::read_fill_counts(&self.pool, chunk, &mut found).await?;
        }
        Ok(contents
            .iter()
            .map(|c| found.get(c).copied().unwrap_or_default())
            .collect())
    }

    async fn states(
        &self,
        user: UserId,
        contents: &[ContentId],
    ) -> Result<Vec<Option<RowState>>, StoreError> {
        let mut found = HashMap::new();
        for chunk in contents.chunks(CHUNK) {
            queries::read_states(&self.pool, user, chunk, &mut found).await?;
        }
        Ok(contents.iter().map(|c| found.get(c).copied()).collect())
    }

    async fn user_rows(
        &self,
        user: UserId,
        limit: usize,
    ) -> Result<Vec<(ContentId, RowState)>, StoreError> {
        queries::user_rows(&self.pool, user, limit).await
    }

    async fn history(
        &self,
        user: UserId,
        cursor: Option<HistoryCursor>,
        limit: usize,
    ) -> Result<Vec<LikedItem>, StoreError> {
        queries::history(&self.pool, user, cursor, limit).await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map_err(classify)?;
        Ok(())
    }
}

fn permanent(e: impl std::fmt::Display) -> StoreError {
    StoreError::Permanent(e.to_string())
}

/// Ids and versions are u64; SQLite stores them bit-for-bit as i64.
pub(crate) fn to_db(n: u64) -> i64 {
    n as i64
}

pub(crate) fn from_db(n: i64) -> u64 {
    n as u64
}

#[cfg(test)]
mod tests;
