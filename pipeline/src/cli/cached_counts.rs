//! The Redis side of `likes-pipeline reconcile`: after each batch is checked in the store, the
//! state cache's counts of its contents are set to the store's (I6: caches never decide truth,
//! and this is what repairs them), except those that moved within the lag bound, which may hold
//! changes the store does not have yet (see `likes_sink::redis_counts`). While some ingest's
//! spool holds events nothing is repaired over a change at all.
//!
//! Redis is optional here: without `LIKES_REDIS_URL` only the store is reconciled, and a Redis
//! that fails part-way stops the cache's repair (said in the report), not the store's.

use likes_pipeline::PipelineConfig;
use likes_shared::hlc::now_ms;
use likes_shared::ContentId;
use likes_sink::redis_counts::{repair_counts, CountRepair, Keys};
use redis::aio::ConnectionManager;

pub(crate) struct CachedCounts {
    conn: ConnectionManager,
    keys: Keys,
    max_lag_ms: u64,
    pub totals: CountRepair,
    pub failure: Option<String>,
}

impl CachedCounts {
    /// `None` without `LIKES_REDIS_URL`; a URL Redis does not accept is a failure from the start.
    pub async fn open(config: &PipelineConfig) -> Option<CachedCounts> {
        let url = config.redis_url.trim();
        if url.is_empty() {
            return None;
        }
        let opened = async {
            let client = redis::Client::open(url)?;
            ConnectionManager::new(client).await
        };
        match opened.await {
            Ok(conn) => Some(CachedCounts {
                conn,
                keys: Keys::new(&config.redis.namespace),
                max_lag_ms: config.max_pipeline_lag_ms,
                totals: CountRepair::default(),
                failure: None,
            }),
            Err(error) => {
                eprintln!("likes-pipeline: Redis at LIKES_REDIS_URL: {error}; its counts are not repaired");
                None
            }
        }
    }

    /// What may be taken as committed now: to be read before the store's batch is.
    pub async fn committed(&mut self) -> u64 {
        let held: Result<bool, _> = redis::cmd("EXISTS")
            .arg(self.keys.spool_hold())
            .query_async(&mut self.conn)
            .await;
        match held {
            Ok(false) => now_ms().saturating_sub(self.max_lag_ms),
            // A spool holds events (or Redis does not say): nothing moved is repaired.
            Ok(true) | Err(_) => 0,
        }
    }

    /// Repairs the cached counts of `counts` read after `committed`.
    pub async fn repair(&mut self, counts: &[(ContentId, i64)], committed: u64) {
        if self.failure.is_some() {
            return;
        }
        match repair_counts(&mut self.conn, &self.keys, counts, committed).await {
            Ok(done) => {
                self.totals.repaired += done.repaired;
                self.totals.skipped += done.skipped;
            }
            Err(error) => self.failure = Some(error.to_string()),
        }
    }

    pub fn report(&self) -> String {
        match &self.failure {
            None => format!(
                "redis: {} cached counts repaired, {} skipped (moved within the lag bound)",
                self.totals.repaired, self.totals.skipped
            ),
            Some(error) => format!(
                "redis: stopped after {} cached counts repaired: {error}",
                self.totals.repaired
            ),
        }
    }
}
