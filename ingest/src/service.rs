//! What ingest does, without HTTP: apply an action to the state cache, make it durable, answer.
//!
//! The order of a like is the contract of DESIGN section 7 ([`likes_shared::cache`]): the cache
//! decides whether the action changes anything (so repeated likes publish nothing), the event
//! carries the version the cache applied, and the answer waits for the publish. A repeated action
//! that finds its state still pending publishes it again rather than answer early. If a publish
//! fails the change goes back to the last durable state and the caller gets 503: no 2xx without a
//! durable event (I3), no cached state without one either.
//!
//! When the state cache is *unavailable* (down, timing out, or its breaker open), the answers
//! come from `degraded` instead, marked stale (DESIGN section 8): actions publish without dedup,
//! reads come from the store. `CacheError::Full` is not an outage: it stays a 503.

mod cold_users;
mod degraded;
mod reads;

use crate::error::ApiError;
use crate::hot_counts::HotCounts;
use crate::metrics::Metrics;
use futures::FutureExt;
use likes_shared::bus::{BusError, EventPublisher};
use likes_shared::cache::{like_delta, CacheError, CachedApply, StateCache};
use likes_shared::hlc::{now_ms, HybridClock};
use likes_shared::store::{HistoryCursor, LikeStore, LikedItem, RowState};
use likes_shared::trending::{TrendingBoard, TrendingEntry};
use likes_shared::{Action, ContentId, LikeEvent, UserId};
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use tracing::Instrument;

/// The backends ingest runs on; embedded or real, behind the same traits.
#[derive(Clone)]
pub struct Backends {
    pub cache: Arc<dyn StateCache>,
    pub store: Arc<dyn LikeStore>,
    pub publisher: Arc<dyn EventPublisher>,
    pub trending: Arc<dyn TrendingBoard>,
    /// The local hot-key count cache in front of `cache` (DESIGN section 2, reads); `None`
    /// serves every count from `cache` (the embedded deployment, whose cache is in memory).
    pub hot_counts: Option<Arc<HotCounts>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ActionOutcome {
    pub liked: bool,
    pub count: i64,
    /// Whether the action flipped the state. When `stale`, as far as the store knew (it may
    /// lag the events in flight); the event is published either way.
    pub changed: bool,
    /// Answered without the state cache (DESIGN section 8): the state is the request's, the
    /// count the store's (or the local cache's) and may lag.
    pub stale: bool,
}

/// A read's answer and whether it was given without the state cache (from the store, which
/// may lag the events in flight).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer<T> {
    pub value: T,
    pub stale: bool,
}

/// Why the cached path gave up: the state cache is unavailable (degrade), or an answer to give.
#[derive(Debug)]
enum Failure {
    CacheDown(String),
    Api(ApiError),
}

impl From<ApiError> for Failure {
    fn from(error: ApiError) -> Self {
        Failure::Api(error)
    }
}

/// Rows read to fill a cold user; a user with more is filled partially and the rest is read
/// per content on demand.
const USER_FILL_ROWS: usize = 1_000;

/// Store reads per request to fill the cache before giving up (503 for an action, the store's
/// answer for a read): a read is refused when the cache forgot, meanwhile, something it may have
/// missed (a race with a sink commit, rarely), or for the pipeline's lag after it learned events
/// published while it was away.
const FILL_ATTEMPTS: usize = 3;

pub struct LikeService {
    backends: Backends,
    cold_users: cold_users::ColdUserReads,
    clock: HybridClock,
    source: String,
    metrics: Arc<Metrics>,
}

impl LikeService {
    pub fn new(backends: Backends, source: String, metrics: Arc<Metrics>) -> Self {
        LikeService {
            cold_users: cold_users::ColdUserReads::new(backends.store.clone(), USER_FILL_ROWS + 1),
            backends,
            clock: HybridClock::new(),
            source,
            metrics,
        }
    }

    pub fn backends(&self) -> &Backends {
        &self.backends
    }

    #[tracing::instrument(skip(self), fields(user = user.get(), content = content.get()))]
    pub async fn act(
        &self,
        user: UserId,
        content: ContentId,
        action: Action,
    ) -> Result<ActionOutcome, ApiError> {
        let outcome = match self.act_cached(user, content, action).await {
            Ok(outcome) => outcome,
            Err(Failure::Api(error)) => return Err(error),
            Err(Failure::CacheDown(reason)) => {
                tracing::warn!(%reason, "state cache unavailable: acting without it");
                self.act_degraded(user, content, action).await?
            }
        };
        // Dropped, not replaced with this answer's count: actions on one content finish in any
        // order, and an older count written last would be served for the whole TTL. The next
        // read takes the count from the state cache, which orders them.
        if let Some(hot) = &self.backends.hot_counts {
            hot.invalidate(content);
        }
        Ok(outcome)
    }

    async fn act_cached(
        &self,
        user: UserId,
        content: ContentId,
        action: Action,
    ) -> Result<ActionOutcome, Failure> {
        // Fill the count first so the transition below moves a cached value the caller sees;
        // on a count this instance moved moments ago, one round trip is saved. A count the cache
        // refuses to take (the store may lack a change in flight) is the store's, read here.
        let mut stored = None;
        if !self.backends.cache.holds_count(content) {
            let (counts, uncached) = self.counts_filled(&[content]).await?;
            if !uncached.is_empty() {
                stored = Some(counts[0]);
            }
        }
        let applied = self.apply_to_cache(user, content, action).await?;
        // A degraded action later must version above what the cache applied.
        self.clock.observe(applied.version);
        let mut stale = false;
        if applied.needs_publish() {
            // `false`: durable, but the cache went away before it heard so.
            stale = !self.make_durable(user, content, &applied).await?;
        }
        let count = match (applied.count, stored) {
            (Some(n), _) => n,
            // Still not cached: the store's count, read just before, lacks this change (its
            // event is on its way), so it is added; the caller sees their own like (DESIGN
            // section 1) without the store being read again.
            (None, Some(n)) if applied.changed => n + like_delta(applied.liked),
            (None, Some(n)) => n,
            (None, None) => match self.counts_cached(&[content]).await {
                Ok(counts) => counts[0],
                // The event is durable: answer, from the store.
                Err(Failure::CacheDown(_)) => {
                    stale = true;
                    self.degraded_count(content).await?
                }
                Err(failure) => return Err(failure),
            },
        };
        if stale {
            self.metrics.stale_answers.inc();
        }
        Ok(ActionOutcome {
            liked: applied.liked,
            count: count.max(0),
            changed: applied.changed,
            stale,
        })
    }

    /// Publishes the state `applied` reports and waits until it is durable (DESIGN section 7,
    /// "pending until durable"). A pending state found by a repeated action is published again
    /// with the same version: the sink treats it as a duplicate, and the answer then stands on
    /// a durable event whichever publish lands. A failed change goes back to the last durable
    /// state and the caller gets 503. `Ok(false)`: durable, but the cache was unavailable for the
    /// confirm (the breaker records the event as missed and teaches it when the cache is back).
    async fn make_durable(
        &self,
        user: UserId,
        content: ContentId,
        applied: &CachedApply,
    ) -> Result<bool, ApiError> {
        let event = LikeEvent {
            fill_epoch: applied.fill_epoch,
            ..self.event(user, content, applied.liked, applied.version)
        };
        let cache = self.backends.cache.clone();
        let publisher = self.backends.publisher.clone();
        let metrics = self.metrics.clone();
        let applied = *applied;
        // A client that goes away drops this request's future. The publish and its confirm or
        // revert must still run to the end: the entry would otherwise wait for a publish that
        // nothing resolves, and could never be forgotten. The task stays in the request's span,
        // so the publish is part of the request's trace.
        let settle = tokio::spawn(
            async move {
            // A publisher that panics must still resolve the entry: as a failed publish.
            let published = AssertUnwindSafe(publisher.publish(&event))
                .catch_unwind()
                .await
                .unwrap_or_else(|_| Err(BusError::Unavailable("publisher panicked".into())));
            match published {
                Ok(mark) => {
                    metrics.events_published.inc();
                    match cache.confirm(user, content, &applied, mark).await {
                        Ok(()) => Ok(true),
                        Err(CacheError::Unavailable(reason)) => {
                            tracing::warn!(%reason, "published, but the cache missed the confirm");
                            Ok(false)
                        }
                        Err(full) => Err(cache_full(full)),
                    }
                }
                Err(error) => {
                    metrics.publish_failures.inc();
                    if let Err(revert) = cache.revert(user, content, &applied).await {
                        tracing::error!(%revert, "could not revert a cached state after a failed publish");
                    }
                    Err(match error {
                        BusError::Full => ApiError::unavailable("event log is full; retry shortly"),
                        other => {
                            tracing::error!(error = %other, "publish failed");
                            ApiError::unavailable("events cannot be made durable right now")
                        }
                    })
                }
            }
        }
            .in_current_span(),
        );
        settle.await.map_err(|error| {
            tracing::error!(%error, "publish task failed");
            ApiError::unavailable("events cannot be made durable right now")
        })?
    }

    /// The event of `user` setting `content` to `liked` at `version`.
    fn event(&self, user: UserId, content: ContentId, liked: bool, version: u64) -> LikeEvent {
        LikeEvent {
            event_id: rand::random::<u128>(),
            user_id: user,
            content_id: content,
            action: if liked { Action::Like } else { Action::Unlike },
            version,
            ts_ms: now_ms(),
            source: self.source.clone(),
            fill_epoch: 0,
        }
    }

    async fn apply_to_cache(
        &self,
        user: UserId,
        content: ContentId,
        action: Action,
    ) -> Result<CachedApply, Failure> {
        let cache = &self.backends.cache;
        for attempt in 0..=FILL_ATTEMPTS {
            if let Some(applied) = cache
                .apply(user, content, action, self.clock.now())
                .await
                .map_err(cache_down)?
            {
                return Ok(applied);
            }
            if attempt == FILL_ATTEMPTS {
                break;
            }
            if attempt == 0 && !cache.is_filled(user).await.map_err(cache_down)? {
                if !self.fill_user(user).await? {
                    break;
                }
                continue;
            }
            // Filled, but this content is not among the rows a fill holds: read it alone.
            let ticket = cache.fill_ticket();
            let stored = self.read_states(user, &[content]).await?;
            cache
                .seed_states(user, &[(content, stored[0])], ticket)
                .await
                .map_err(cache_down)?;
        }
        Err(ApiError::unavailable("state cache is busy; retry shortly").into())
    }

    async fn read_states(
        &self,
        user: UserId,
        contents: &[ContentId],
    ) -> Result<Vec<Option<RowState>>, ApiError> {
        let stored = self
            .backends
            .store
            .states(user, contents)
            .await
            .map_err(store_down)?;
        if let Some(newest) = stored.iter().flatten().map(|r| r.version).max() {
            self.clock.observe(newest);
        }
        Ok(stored)
    }

    /// Fills a cold user's cached states with their most recent rows (DESIGN section 7).
    /// `Ok(false)`: every fill was refused (the store may lack changes the cache has seen).
    async fn fill_user(&self, user: UserId) -> Result<bool, Failure> {
        for _ in 0..FILL_ATTEMPTS {
            let ticket = self.backends.cache.fill_ticket();
            let mut rows = self.cold_users.rows(user).await.map_err(store_down)?;
            let complete = rows.len() <= USER_FILL_ROWS;
            rows.truncate(USER_FILL_ROWS);
            if let Some(newest) = rows.iter().map(|(_, r)| r.version).max() {
                self.clock.observe(newest);
            }
            let seeded = self
                .backends
                .cache
                .seed_user(user, &rows, complete, ticket)
                .await
                .map_err(cache_down)?;
            if seeded {
                return Ok(true);
            }
        }
        Ok(false)
    }

    pub async fn history(
        &self,
        user: UserId,
        cursor: Option<HistoryCursor>,
        limit: usize,
    ) -> Result<Vec<LikedItem>, ApiError> {
        self.backends
            .store
            .history(user, cursor, limit)
            .await
            .map_err(store_down)
    }

    pub async fn trending(&self, limit: usize) -> Vec<TrendingEntry> {
        self.backends.trending.top(limit).await
    }
}

/// Every fill of a read was refused: the cache forgot, or missed while it was away, changes the
/// store may not hold yet (for at most the pipeline's lag). The read answers from the store,
/// stale, as when the cache is down. (An action answers 503 instead: going around the cache
/// would publish without dedup and report `changed` as far as a lagging store knows.)
fn fill_refused() -> Failure {
    Failure::CacheDown(
        "the store may lack changes the cache has not seen; reading it anyway".into(),
    )
}

/// An unavailable cache is degraded around; a full one is a 503 (I7).
fn cache_down(e: CacheError) -> Failure {
    match e {
        CacheError::Unavailable(reason) => Failure::CacheDown(reason),
        full => Failure::Api(cache_full(full)),
    }
}

fn cache_full(e: CacheError) -> ApiError {
    tracing::warn!(error = %e, "state cache full of changes the store does not hold yet");
    ApiError::unavailable("too many changes waiting for the store; retry shortly")
}

fn store_down(e: likes_shared::store::StoreError) -> ApiError {
    tracing::error!(error = %e, "store failed");
    ApiError::unavailable("store unavailable")
}
