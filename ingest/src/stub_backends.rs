//! Backends for unit tests of the HTTP layer: the embedded cache and trending board, a publisher
//! that is always ready, and a store that answers nothing but `ping` (and counts them). Tests
//! that need the real write path run the embedded all-in-one instead (`tests/api.rs`).

use crate::auth::Authenticator;
use crate::client_addr::ClientAddrSource;
use crate::config::RateLimitConfig;
use crate::filters::Context;
use crate::limits::Admission;
use crate::memory_cache::MemoryStateCache;
use crate::metrics::Metrics;
use crate::readiness::ReadinessProbe;
use crate::service::{Backends, LikeService};
use async_trait::async_trait;
use likes_shared::bus::{BusError, DurableMark, EventPublisher};
use likes_shared::store::{
    ApplyOutcome, HistoryCursor, LikeChange, LikeStore, LikedItem, RowState, StoreError,
};
use likes_shared::trending::MemoryTrendingBoard;
use likes_shared::{ContentId, LikeEvent, UserId};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// A store whose only working call is `ping`; the others say they are not part of the stub.
#[derive(Debug, Default)]
pub struct PingOnlyStore {
    pings: AtomicUsize,
    /// How long each ping takes, so concurrent callers overlap.
    ping_delay: Duration,
}

impl PingOnlyStore {
    pub fn with_ping_delay(ping_delay: Duration) -> Self {
        PingOnlyStore {
            pings: AtomicUsize::new(0),
            ping_delay,
        }
    }

    /// Pings started so far.
    pub fn pings(&self) -> usize {
        self.pings.load(Ordering::SeqCst)
    }
}

fn not_stubbed() -> StoreError {
    StoreError::Permanent("not part of the ping-only stub store".into())
}

#[async_trait]
impl LikeStore for PingOnlyStore {
    async fn apply_window(&self, _: &[LikeChange]) -> Result<ApplyOutcome, StoreError> {
        Err(not_stubbed())
    }

    async fn counts(&self, _: &[ContentId]) -> Result<Vec<i64>, StoreError> {
        Err(not_stubbed())
    }

    async fn states(
        &self,
        _: UserId,
        _: &[ContentId],
    ) -> Result<Vec<Option<RowState>>, StoreError> {
        Err(not_stubbed())
    }

    async fn user_rows(
        &self,
        _: UserId,
        _: usize,
    ) -> Result<Vec<(ContentId, RowState)>, StoreError> {
        Err(not_stubbed())
    }

    async fn history(
        &self,
        _: UserId,
        _: Option<HistoryCursor>,
        _: usize,
    ) -> Result<Vec<LikedItem>, StoreError> {
        Err(not_stubbed())
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.pings.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(self.ping_delay).await;
        Ok(())
    }
}

/// Accepts every event at once and is always ready.
#[derive(Debug, Default)]
pub struct AcceptingPublisher;

#[async_trait]
impl EventPublisher for AcceptingPublisher {
    async fn publish(&self, _: &LikeEvent) -> Result<DurableMark, BusError> {
        Ok(1)
    }

    fn is_ready(&self) -> bool {
        true
    }
}

pub fn backends_with_store(store: Arc<dyn LikeStore>) -> Backends {
    Backends {
        cache: Arc::new(MemoryStateCache::new(
            1_000,
            Arc::new(std::sync::atomic::AtomicU64::new(0)),
        )),
        store,
        publisher: Arc::new(AcceptingPublisher),
        trending: Arc::new(MemoryTrendingBoard::default()),
        hot_counts: None,
    }
}

pub fn backends() -> Backends {
    backends_with_store(Arc::new(PingOnlyStore::default()))
}

/// What the routes and handlers run on, over `backends`, with default limits.
pub fn context(backends: Backends) -> Arc<Context> {
    let metrics = Arc::new(Metrics::new().expect("metrics register"));
    let readiness = ReadinessProbe::new(
        backends.clone(),
        ReadinessProbe::FRESH_FOR,
        ReadinessProbe::PING_TIMEOUT,
    );
    Arc::new(Context {
        service: LikeService::new(backends, "stub".into(), metrics.clone()),
        auth: Authenticator::new(&[7; 32], None),
        admission: Admission::new(&RateLimitConfig::default(), metrics.rate_limited.clone()),
        metrics,
        body_limit: 16 * 1024,
        client_addr: ClientAddrSource::Peer,
        readiness,
        dev_tokens: false,
        dev_token_mint: crate::dev_token_mint::DevTokenMint::new(&Default::default()),
    })
}
