//! [`AgeBound`]: what a Redis cache shared by several ingest instances may take as committed, and
//! [`SpoolHold`], which makes every instance hold back while any one of them spools.
//!
//! # Why an age, and why a hold
//! No ingest knows what the sink committed; it knows the pipeline's enforced maximum lag `L`
//! (publish timeout included, and the clock skew between hosts): a change older than `L` is in
//! the store. That holds only for events on their way to the store. An event in a spool is not:
//! it waits there for Pulsar, for as long as the outage lasts. While any instance spools, and for
//! `L` after its spool last held anything, the store may lack changes of any age, so nothing
//! counts as committed: no count is filled over a change and no settled state is forgotten. The
//! instance that spools knows it at once (its own spool); the others learn it from one Redis key
//! that spooling instances keep alive with a TTL of `L`.

use super::scripts::FENCE_SCRIPT;
use crate::spool::SpooledPublisher;
use likes_shared::bus::{CommitProgress, DurableMark};
use likes_shared::hlc::now_ms;
use likes_shared::shutdown::Shutdown;
use redis::aio::ConnectionManager;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinHandle;

/// Every change older than `max_lag_ms` is in the store, unless a spool holds events.
pub struct AgeBound {
    max_lag_ms: u64,
    spool: Option<Arc<SpooledPublisher>>,
    /// Some instance spooled within the last `max_lag_ms` (see [`SpoolHold`]).
    held: Option<Arc<AtomicBool>>,
}

impl AgeBound {
    pub fn new(max_lag_ms: u64) -> Self {
        AgeBound {
            max_lag_ms,
            spool: None,
            held: None,
        }
    }

    /// Nothing is committed while `held` says some instance spooled within the bound.
    pub fn holding(self, held: Arc<AtomicBool>) -> Self {
        AgeBound {
            held: Some(held),
            ..self
        }
    }

    /// Nothing is committed while this instance's `spool` holds events (known at once, before
    /// the hold's next tick), or while `held` says some instance spooled within the bound.
    pub fn behind(self, spool: Arc<SpooledPublisher>, held: Arc<AtomicBool>) -> Self {
        AgeBound {
            spool: Some(spool),
            ..self.holding(held)
        }
    }
}

impl CommitProgress for AgeBound {
    fn committed(&self) -> DurableMark {
        let spooling = self.spool.as_ref().is_some_and(|s| s.is_spooling());
        let held = self
            .held
            .as_ref()
            .is_some_and(|h| h.load(Ordering::Acquire));
        if spooling || held {
            return 0;
        }
        now_ms().saturating_sub(self.max_lag_ms)
    }
}

/// Keeps `key` alive in Redis (TTL `max_lag`) while this instance's spool holds events, and
/// reports whether the key exists: whether any instance spooled within `max_lag`. It also raises
/// `last_key` (no TTL) to the time the spool last held events, which a count's fill epoch
/// checks (`count_scripts.rs`): the hold alone has expired by the time an epoch completes.
pub struct SpoolHold;

impl SpoolHold {
    /// How often the spool is looked at and the key refreshed and read.
    pub const TICK: Duration = Duration::from_millis(250);

    /// Runs until `shutdown`; the flag is what [`AgeBound::behind`] takes. A Redis that does
    /// not answer leaves the flag as it was: the cache itself is down then.
    pub fn start(
        conn: ConnectionManager,
        (key, last_key): (String, String),
        max_lag: Duration,
        spooling: impl Fn() -> bool + Send + Sync + 'static,
        mut shutdown: Shutdown,
    ) -> (Arc<AtomicBool>, JoinHandle<()>) {
        let held = Arc::new(AtomicBool::new(false));
        let flag = held.clone();
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(Self::TICK);
            let ttl_ms = u64::try_from(max_lag.as_millis())
                .unwrap_or(u64::MAX)
                .max(1);
            loop {
                tokio::select! {
                    _ = shutdown.wait() => return,
                    _ = tick.tick() => {}
                }
                let mut conn = conn.clone();
                if spooling() {
                    let set: Result<(), _> = redis::cmd("SET")
                        .arg(&key)
                        .arg(now_ms())
                        .arg("PX")
                        .arg(ttl_ms)
                        .query_async(&mut conn)
                        .await;
                    let raised: Result<u64, _> = FENCE_SCRIPT
                        .key(&last_key)
                        .arg(now_ms())
                        .invoke_async(&mut conn)
                        .await;
                    if let Some(error) = set.err().or(raised.err()) {
                        tracing::warn!(%error, "could not refresh the spool hold");
                    }
                }
                let exists: Result<bool, _> =
                    redis::cmd("EXISTS").arg(&key).query_async(&mut conn).await;
                if let Ok(exists) = exists {
                    flag.store(exists, Ordering::Release);
                }
            }
        });
        (held, task)
    }
}
