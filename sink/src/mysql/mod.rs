//! The distributed store: TiDB (or any MySQL-protocol server: MariaDB passes the same tests)
//! through sqlx, the same schema and rules as the embedded SQLite store.
//!
//! # One window, one transaction
//! Read the window's rows with locking multi-row reads, plan the transitions
//! ([`crate::transitions`]), write the winning rows with version-guarded multi-row upserts and
//! move each touched count once. A window of any size is split into statements of at most
//! [`MySqlConfig::rows_per_statement`] rows inside the same transaction, so a statement stays
//! far below the packet and placeholder limits and TiDB's per-statement memory, while the window
//! stays all or nothing. The pipeline bounds a window's events (I7), which bounds the
//! transaction far below TiDB's `txn-total-size-limit` (100 MB; 20 000 events are ~2 MB).
//!
//! # Why optimistic transactions on TiDB
//! TiDB defaults to pessimistic transactions: every locking statement takes its locks in the
//! storage layer at once, an extra round trip per statement. Here conflicts are rare by design:
//! one worker owns a partition and so a content's rows and counter (I5); two writers meet only
//! during a failover hand-over. So each window runs `BEGIN OPTIMISTIC`: statements buffer their
//! writes, the commit's two-phase write checks every row read `FOR UPDATE` or written against
//! commits made since the transaction began, and a conflict fails the commit with 9007, which
//! [`retry_logic`] calls transient: the worker retries the whole window, which re-reads the rows
//! and re-plans, so a retry is never a blind replay of stale deltas. TiDB's own automatic retry
//! of optimistic transactions stays off (its default): it would replay the statements without
//! re-reading, and the deltas would be computed from rows that changed.
//!
//! MariaDB and MySQL have no optimistic mode; their `FOR UPDATE` reads lock the rows in key order
//! (a window's keys are sorted), so two writers of the same rows queue instead of deadlocking,
//! and a deadlock that still happens (1213) is retried like a conflict.
//!
//! # Hotspots
//! A hot content's counter row is written once per window, not once per like. New rows of one
//! content land next to each other (clustered primary key `(content_id, user_id)`), so a viral
//! item's inserts go to one TiDB region; that region splits as it grows, and one writer per
//! content keeps the load there to one transaction at a time.

mod reads;
mod reconcile;
mod retry_logic;
mod settings;
mod statements;

#[cfg(test)]
mod plan_tests;

use crate::transitions::{plan_writes, row_keys, RowKey};
use async_trait::async_trait;
use likes_shared::store::{
    ApplyOutcome, HistoryCursor, LikeChange, LikeStore, LikedItem, RowState, StoreError,
    StoredCount, UserRows,
};
use likes_shared::{ContentId, UserId};
pub use reconcile::{
    Drift, ReconcileOptions, ReconcileReport, ReconcileScope, ReconciledBatch, Reconciliation,
};
pub use retry_logic::classify;
use serde::{Deserialize, Serialize};
pub use settings::{MissingSetting, StoreTuning};
use sqlx::mysql::{MySqlConnectOptions, MySqlConnection, MySqlPoolOptions, MySqlRow};
use sqlx::{Executor, MySqlPool, Row};
use std::collections::HashMap;
use std::str::FromStr;
use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MySqlConfig {
    /// `mysql://user:password@host:port/database` (`LIKES_DATABASE_URL`).
    pub url: String,
    pub max_connections: u32,
    /// Rows per multi-row statement; a larger window becomes several statements in one
    /// transaction.
    pub rows_per_statement: usize,
    /// How long to wait for a pooled connection before reporting the store unavailable.
    pub acquire_timeout_ms: u64,
    /// How long one window's transaction may take before it counts as an outage (a half-open
    /// connection would otherwise hang the worker for the kernel's TCP timeout, ~15 min).
    pub window_timeout_ms: u64,
}

impl Default for MySqlConfig {
    fn default() -> Self {
        MySqlConfig {
            url: "mysql://root@127.0.0.1:4000/likes".into(),
            max_connections: 8,
            rows_per_statement: 1000,
            acquire_timeout_ms: 5_000,
            window_timeout_ms: 60_000,
        }
    }
}

#[derive(Debug, Clone)]
pub struct MySqlStore {
    pool: MySqlPool,
    rows_per_statement: usize,
    window_timeout: Duration,
    /// `BEGIN OPTIMISTIC` on TiDB, plain `BEGIN` elsewhere (see the module docs).
    begin: &'static str,
}

impl MySqlConfig {
    /// Connects and runs the migrations under `sink/migrations/mysql` (idempotent; several
    /// processes starting at once serialize on sqlx's migration lock): what the worker and
    /// `init` do.
    pub async fn build(&self) -> Result<MySqlStore, StoreError> {
        let store = self.connect().await?;
        sqlx::migrate!("./migrations/mysql")
            .run(&store.pool)
            .await
            .map_err(|e| match e {
                sqlx::migrate::MigrateError::Execute(e) => classify(e),
                other => StoreError::Permanent(format!("migration: {other}")),
            })?;
        Ok(store)
    }

    /// Connects to a database whose schema exists, without touching it: what operator tools
    /// (`likes-pipeline reconcile`) use, so they need no DDL privileges.
    pub async fn connect(&self) -> Result<MySqlStore, StoreError> {
        let options = MySqlConnectOptions::from_str(&self.url)
            .map_err(|e| StoreError::Permanent(format!("database url: {e}")))?;
        let pool = MySqlPoolOptions::new()
            .max_connections(self.max_connections.max(1))
            .acquire_timeout(Duration::from_millis(self.acquire_timeout_ms))
            // Connections idle in a pool die on server restarts and load balancer timeouts;
            // testing one before use costs a round trip per acquire, cheaper than failing a
            // window's first statement and retrying it.
            .test_before_acquire(true)
            // The window's locking reads need REPEATABLE READ: under READ COMMITTED MariaDB and
            // MySQL take no gap locks, and two writers of a row that does not exist yet (a
            // failover hand-over) would both read it absent and both count 0→1 (I1, I2). A
            // server default must not decide that. TiDB's REPEATABLE READ is snapshot isolation,
            // which its optimistic windows expect as well.
            .after_connect(|conn, _meta| {
                Box::pin(async move {
                    conn.execute("SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ")
                        .await
                        .map(|_| ())
                })
            })
            .connect_with(options)
            .await
            .map_err(classify)?;
        let version: String = sqlx::query_scalar("SELECT VERSION()")
            .fetch_one(&pool)
            .await
            .map_err(classify)?;
        let begin = if version.contains("TiDB") {
            "BEGIN OPTIMISTIC"
        } else {
            "BEGIN"
        };
        Ok(MySqlStore {
            pool,
            rows_per_statement: self.rows_per_statement.max(1),
            window_timeout: Duration::from_millis(self.window_timeout_ms.max(1)),
            begin,
        })
    }
}

impl MySqlStore {
    /// One window, one transaction (see the module docs).
    async fn apply_in_transaction(
        &self,
        changes: &[LikeChange],
    ) -> Result<ApplyOutcome, StoreError> {
        if changes.is_empty() {
            return Ok(ApplyOutcome::default());
        }
        let keys = row_keys(changes);
        let mut tx = self.pool.begin_with(self.begin).await.map_err(classify)?;
        let mut current: HashMap<RowKey, RowState> = HashMap::with_capacity(keys.len());
        for chunk in keys.chunks(self.rows_per_statement) {
            let sql = statements::select_rows_for_update(chunk);
            for row in fetch_text(&mut tx, &sql).await? {
                let key = (reads::content(&row, 0)?, reads::user(&row, 1)?);
                current.insert(key, reads::row_state(&row, 2, 3)?);
            }
        }
        let plan = plan_writes(&current, changes);
        for chunk in plan.rows.chunks(self.rows_per_statement) {
            execute_text(&mut tx, &statements::upsert_rows(chunk)).await?;
        }
        let now = likes_shared::hlc::now_ms();
        for chunk in plan.deltas.chunks(self.rows_per_statement) {
            execute_text(&mut tx, &statements::add_counts(chunk, now)).await?;
        }
        for chunk in plan.epoch_deltas.chunks(self.rows_per_statement) {
            execute_text(&mut tx, &statements::add_epoch_deltas(chunk, now)).await?;
        }
        tx.commit().await.map_err(classify)?;
        Ok(plan.into_outcome())
    }

    /// Whether the server is TiDB (optimistic windows) rather than MySQL or MariaDB.
    pub fn is_tidb(&self) -> bool {
        self.begin == "BEGIN OPTIMISTIC"
    }

    pub fn pool(&self) -> &MySqlPool {
        &self.pool
    }

    /// Contents whose stored count differs from the number of liked rows (I1); empty when sound.
    pub async fn count_mismatches(&self) -> Result<Vec<(ContentId, i64, i64)>, StoreError> {
        reads::count_mismatches(&self.pool).await
    }
}

/// `/readyz` and the worker's outage check must answer even when a connection hangs.
const PING_TIMEOUT: Duration = Duration::from_secs(5);

/// `work`, or a transient error once `limit` has passed.
async fn within<T>(
    limit: Duration,
    what: &str,
    work: impl std::future::Future<Output = Result<T, StoreError>>,
) -> Result<T, StoreError> {
    tokio::time::timeout(limit, work).await.unwrap_or_else(|_| {
        Err(StoreError::Transient(format!(
            "{what} timed out after {} ms",
            limit.as_millis()
        )))
    })
}

/// Runs one text statement (see [`statements`] for why text). Concrete types on purpose: the
/// generic `raw_sql(..).fetch_all(&mut *tx)` inside an `async_trait` method trips rustc's
/// higher-ranked `Send` check.
async fn fetch_text(conn: &mut MySqlConnection, sql: &str) -> Result<Vec<MySqlRow>, StoreError> {
    conn.fetch_all(sqlx::raw_sql(sql)).await.map_err(classify)
}

async fn execute_text(conn: &mut MySqlConnection, sql: &str) -> Result<u64, StoreError> {
    conn.execute(sqlx::raw_sql(sql))
        .await
        .map(|done| done.rows_affected())
        .map_err(classify)
}

#[async_trait]
impl LikeStore for MySqlStore {
    async fn apply_window(&self, changes: &[LikeChange]) -> Result<ApplyOutcome, StoreError> {
        // A window that times out may or may not have committed; retrying it is safe either
        // way (I2: the retry re-reads the rows and finds its own versions).
        within(
            self.window_timeout,
            "window",
            self.apply_in_transaction(changes),
        )
        .await
    }

    async fn counts(&self, contents: &[ContentId]) -> Result<Vec<i64>, StoreError> {
        let mut found = HashMap::with_capacity(contents.len());
        for chunk in contents.chunks(self.rows_per_statement) {
            reads::counts(&self.pool, chunk, &mut found).await?;
        }
        Ok(contents
            .iter()
            .map(|c| found.get(c).copied().unwrap_or(0))
            .collect())
    }

    async fn fill_counts(&self, contents: &[ContentId]) -> Result<Vec<StoredCount>, StoreError> {
        let mut found = HashMap::with_capacity(contents.len());
        for chunk in contents.chunks(self.rows_per_statement) {
            reads::fill_counts(&self.pool, chunk, &mut found).await?;
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
        let mut found = HashMap::with_capacity(contents.len());
        for chunk in contents.chunks(self.rows_per_statement) {
            reads::states(&self.pool, user, chunk, &mut found).await?;
        }
        Ok(contents.iter().map(|c| found.get(c).copied()).collect())
    }

    async fn user_rows(
        &self,
        user: UserId,
        limit: usize,
    ) -> Result<Vec<(ContentId, RowState)>, StoreError> {
        reads::user_rows(&self.pool, user, limit).await
    }

    async fn users_rows(
        &self,
        users: &[UserId],
        limit: usize,
    ) -> Result<Vec<UserRows>, StoreError> {
        let mut answered = Vec::with_capacity(users.len());
        for chunk in users.chunks(self.rows_per_statement) {
            answered.extend(reads::users_rows(&self.pool, chunk, limit).await?);
        }
        Ok(answered)
    }

    async fn history(
        &self,
        user: UserId,
        cursor: Option<HistoryCursor>,
        limit: usize,
    ) -> Result<Vec<LikedItem>, StoreError> {
        reads::history(&self.pool, user, cursor, limit).await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        let select = async {
            sqlx::query("SELECT 1")
                .fetch_one(&self.pool)
                .await
                .map_err(classify)?
                .try_get::<i64, _>(0)
                .map_err(classify)
        };
        let one = within(PING_TIMEOUT, "ping", select).await?;
        if one == 1 {
            Ok(())
        } else {
            Err(StoreError::Transient(format!("SELECT 1 returned {one}")))
        }
    }
}
