//! [`BreakerCache`]: a circuit breaker in front of a [`StateCache`] (DESIGN section 8, "Redis
//! down"). Without it every request would pay Redis's response timeout before degrading.
//!
//! - **Closed**: calls go through; `failures_to_open` consecutive [`CacheError::Unavailable`]s
//!   open it. Any answer from the cache, [`CacheError::Full`] included (that is Redis saying
//!   "overloaded", an answer, not an outage), resets the run.
//! - **Open**: every call fails at once with `Unavailable`, without touching the inner cache.
//! - **Probing**: once `cooldown_ms` has passed, the next call pings the inner cache first (one
//!   caller at a time; the others still fail fast). A ping that answers closes the breaker and the
//!   call goes on; one that fails opens it for another cooldown.
//!
//! The state sits behind a std mutex held for a few instructions and never across an await.
//!
//! Events published around the cache are recorded ([`StateCache::missed`]) and taught to it
//! before any call goes through again (`missed.rs`): a cache back with its old data must not
//! answer from it.

mod missed;

use missed::MissedEvents;

use async_trait::async_trait;
use likes_shared::bus::DurableMark;
use likes_shared::cache::{CacheError, CachedApply, FillTicket, StateCache};
use likes_shared::hlc::now_ms;
use likes_shared::store::{RowState, StoredCount};
use likes_shared::{Action, ContentId, UserId};
use parking_lot::Mutex;
use prometheus::{IntCounter, IntGauge};
use serde::{Deserialize, Serialize};
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BreakerConfig {
    /// Consecutive "unavailable" answers (errors or timeouts) that open the breaker.
    pub failures_to_open: u32,
    /// How long the breaker stays open before a probe may close it.
    pub cooldown_ms: u64,
    /// Longest wait for the probe's ping.
    pub probe_timeout_ms: u64,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        BreakerConfig {
            failures_to_open: 3,
            cooldown_ms: 1_000,
            probe_timeout_ms: 500,
        }
    }
}

/// The breaker's counters on `/metrics`. Cheap to clone (the counters are shared).
#[derive(Clone)]
pub struct BreakerMetrics {
    /// 1 while the breaker is open.
    pub open: IntGauge,
    /// Times it opened.
    pub opened: IntCounter,
    /// Calls refused without touching the cache.
    pub rejected: IntCounter,
    /// Events published around the cache that it has not learned yet.
    pub missed_pending: IntGauge,
    /// Missed events dropped past the bound (their states and counts wait for a repair).
    pub missed_dropped: IntCounter,
}

impl BreakerMetrics {
    /// Unregistered metrics; `Metrics::new` registers its own.
    pub fn new() -> Result<Self, prometheus::Error> {
        Ok(BreakerMetrics {
            open: IntGauge::new(
                "likes_ingest_cache_breaker_open",
                "1 while the state cache breaker is open",
            )?,
            opened: IntCounter::new(
                "likes_ingest_cache_breaker_opened_total",
                "Times the state cache breaker opened",
            )?,
            rejected: IntCounter::new(
                "likes_ingest_cache_breaker_rejected_total",
                "State cache calls failed fast by the open breaker",
            )?,
            missed_pending: IntGauge::new(
                "likes_ingest_cache_missed_events",
                "Events published around the state cache that it has not learned yet",
            )?,
            missed_dropped: IntCounter::new(
                "likes_ingest_cache_missed_events_dropped_total",
                "Missed events dropped past the bound; run likes-pipeline reconcile",
            )?,
        })
    }

    pub(crate) fn register(&self, registry: &prometheus::Registry) -> prometheus::Result<()> {
        registry.register(Box::new(self.open.clone()))?;
        registry.register(Box::new(self.opened.clone()))?;
        registry.register(Box::new(self.rejected.clone()))?;
        registry.register(Box::new(self.missed_pending.clone()))?;
        registry.register(Box::new(self.missed_dropped.clone()))
    }
}

#[derive(Debug, Default)]
struct State {
    consecutive_failures: u32,
    /// Open until then; `None` when closed.
    open_until: Option<Instant>,
    /// A caller is probing right now.
    probing: bool,
}

enum Gate {
    Pass,
    Probe,
    Reject,
}

pub struct BreakerCache {
    inner: Arc<dyn StateCache>,
    config: BreakerConfig,
    state: Mutex<State>,
    metrics: BreakerMetrics,
    missed: MissedEvents,
    /// When the cache last answered (wall ms): where a fence goes after an outage.
    last_answer_ms: AtomicU64,
}

impl BreakerCache {
    pub fn new(inner: Arc<dyn StateCache>, config: BreakerConfig, metrics: BreakerMetrics) -> Self {
        BreakerCache {
            inner,
            config,
            state: Mutex::new(State::default()),
            missed: MissedEvents::new(
                metrics.missed_pending.clone(),
                metrics.missed_dropped.clone(),
            ),
            metrics,
            last_answer_ms: AtomicU64::new(now_ms()),
        }
    }

    /// Whether calls fail fast now (open, probing included).
    pub fn is_open(&self) -> bool {
        self.state.lock().open_until.is_some()
    }

    fn gate(&self) -> Gate {
        let mut state = self.state.lock();
        match state.open_until {
            None => Gate::Pass,
            Some(until) if state.probing || Instant::now() < until => Gate::Reject,
            Some(_) => {
                state.probing = true;
                Gate::Probe
            }
        }
    }

    fn open(&self, state: &mut State) {
        if state.open_until.is_none() {
            self.metrics.opened.inc();
            self.metrics.open.set(1);
            tracing::warn!(
                failures = state.consecutive_failures,
                cooldown_ms = self.config.cooldown_ms,
                "state cache breaker opened: degrading without it"
            );
        }
        state.open_until = Some(Instant::now() + Duration::from_millis(self.config.cooldown_ms));
    }

    fn close(&self, state: &mut State) {
        self.last_answer_ms.store(now_ms(), Ordering::Relaxed);
        if state.open_until.take().is_some() {
            self.metrics.open.set(0);
            tracing::info!("state cache breaker closed: the cache answers again");
        }
        state.consecutive_failures = 0;
    }

    fn record<T>(&self, result: &Result<T, CacheError>) {
        let mut state = self.state.lock();
        match result {
            Err(CacheError::Unavailable(_)) => {
                state.consecutive_failures = state.consecutive_failures.saturating_add(1);
                if state.consecutive_failures >= self.config.failures_to_open.max(1) {
                    self.open(&mut state);
                }
            }
            // An answer, `Full` included: the cache is there.
            Ok(_) | Err(CacheError::Full) => self.close(&mut state),
        }
    }

    fn rejected(&self) -> CacheError {
        self.metrics.rejected.inc();
        CacheError::Unavailable("state cache breaker is open".into())
    }

    /// One ping; closes the breaker on an answer, re-opens it for a cooldown otherwise.
    async fn probe(&self) -> Result<(), CacheError> {
        // Resets `probing` even if the caller is dropped mid-probe, so the breaker cannot stay
        // stuck open with nobody probing.
        struct Probing<'a>(&'a Mutex<State>);
        impl Drop for Probing<'_> {
            fn drop(&mut self) {
                self.0.lock().probing = false;
            }
        }
        let _probing = Probing(&self.state);
        let wait = Duration::from_millis(self.config.probe_timeout_ms);
        let answer = match tokio::time::timeout(wait, self.inner.ping()).await {
            Ok(answer) => answer,
            Err(_) => Err(CacheError::Unavailable("probe timed out".into())),
        };
        let mut state = self.state.lock();
        match &answer {
            Ok(()) | Err(CacheError::Full) => self.close(&mut state),
            Err(CacheError::Unavailable(_)) => self.open(&mut state),
        }
        answer
    }

    async fn guarded<T>(
        &self,
        call: impl Future<Output = Result<T, CacheError>>,
    ) -> Result<T, CacheError> {
        match self.gate() {
            Gate::Pass => {}
            Gate::Reject => return Err(self.rejected()),
            Gate::Probe => self.probe().await?,
        }
        if let Err(error) = self.missed.teach(self.inner.as_ref()).await {
            let failed: Result<T, CacheError> = Err(error);
            self.record(&failed);
            return failed;
        }
        let result = call.await;
        self.record(&result);
        result
    }
}

#[async_trait]
impl StateCache for BreakerCache {
    fn fill_ticket(&self) -> FillTicket {
        self.inner.fill_ticket()
    }

    async fn apply(
        &self,
        user: UserId,
        content: ContentId,
        action: Action,
        version: u64,
    ) -> Result<Option<CachedApply>, CacheError> {
        self.guarded(self.inner.apply(user, content, action, version))
            .await
    }

    async fn confirm(
        &self,
        user: UserId,
        content: ContentId,
        applied: &CachedApply,
        mark: DurableMark,
    ) -> Result<(), CacheError> {
        let state = (applied.liked, applied.version);
        match self
            .guarded(self.inner.confirm(user, content, applied, mark))
            .await
        {
            Ok(()) => {
                self.missed.confirmed((user, content), state, now_ms());
                Ok(())
            }
            // The event is durable and the cache did not hear it: it may have lost the apply
            // too (back from a snapshot taken before it), so it learns the event when back.
            Err(CacheError::Unavailable(reason)) => {
                StateCache::missed(self, user, content, state.0, state.1);
                Err(CacheError::Unavailable(reason))
            }
            Err(other) => Err(other),
        }
    }

    async fn revert(
        &self,
        user: UserId,
        content: ContentId,
        applied: &CachedApply,
    ) -> Result<(), CacheError> {
        self.guarded(self.inner.revert(user, content, applied))
            .await
    }

    async fn fence(&self, before_ms: u64) -> Result<(), CacheError> {
        self.guarded(self.inner.fence(before_ms)).await
    }

    async fn learn(
        &self,
        user: UserId,
        content: ContentId,
        liked: bool,
        version: u64,
    ) -> Result<(), CacheError> {
        self.guarded(self.inner.learn(user, content, liked, version))
            .await
    }

    fn missed(&self, user: UserId, content: ContentId, liked: bool, version: u64) {
        let answered = self.last_answer_ms.load(Ordering::Relaxed);
        self.missed
            .record((user, content), (liked, version), answered);
    }

    async fn states(
        &self,
        user: UserId,
        contents: &[ContentId],
    ) -> Result<Vec<Option<RowState>>, CacheError> {
        self.guarded(self.inner.states(user, contents)).await
    }

    async fn is_filled(&self, user: UserId) -> Result<bool, CacheError> {
        self.guarded(self.inner.is_filled(user)).await
    }

    async fn seed_user(
        &self,
        user: UserId,
        rows: &[(ContentId, RowState)],
        complete: bool,
        ticket: FillTicket,
    ) -> Result<bool, CacheError> {
        self.guarded(self.inner.seed_user(user, rows, complete, ticket))
            .await
    }

    async fn seed_states(
        &self,
        user: UserId,
        states: &[(ContentId, Option<RowState>)],
        ticket: FillTicket,
    ) -> Result<bool, CacheError> {
        self.guarded(self.inner.seed_states(user, states, ticket))
            .await
    }

    fn holds_count(&self, content: ContentId) -> bool {
        self.inner.holds_count(content)
    }

    async fn counts(&self, contents: &[ContentId]) -> Result<Vec<Option<i64>>, CacheError> {
        self.guarded(self.inner.counts(contents)).await
    }

    async fn fill_count(
        &self,
        content: ContentId,
        stored: StoredCount,
        ticket: FillTicket,
    ) -> Result<Option<i64>, CacheError> {
        self.guarded(self.inner.fill_count(content, stored, ticket))
            .await
    }

    async fn ping(&self) -> Result<(), CacheError> {
        match self.gate() {
            Gate::Pass => {
                let result = self.inner.ping().await;
                self.record(&result);
                result
            }
            Gate::Reject => Err(self.rejected()),
            Gate::Probe => self.probe().await,
        }
    }
}

#[cfg(test)]
#[path = "cache_breaker/tests.rs"]
mod tests;
