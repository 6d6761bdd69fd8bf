//! What ingest does, without HTTP: apply an action to the state cache, make it durable, answer.
//!
//! The order of a like is the contract of DESIGN section 7 ([`likes_shared::cache`]): the cache
//! decides whether the action changes anything (so repeated likes publish nothing), the event
//! carries the version the cache applied, and the answer waits for the publish. A repeated action
//! that finds its state still pending publishes it again rather than answer early. If a publish
//! fails the change goes back to the last durable state and the caller gets 503: no 2xx without a
//! durable event (I3), no cached state without one either.

use crate::error::ApiError;
use crate::metrics::Metrics;
use futures::FutureExt;
use likes_shared::bus::{BusError, EventPublisher};
use likes_shared::cache::{CacheError, CachedApply, StateCache};
use likes_shared::hlc::{now_ms, HybridClock};
use likes_shared::store::{HistoryCursor, LikeStore, LikedItem, RowState};
use likes_shared::trending::{TrendingBoard, TrendingEntry};
use likes_shared::{Action, ContentId, LikeEvent, UserId};
use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;

/// The backends ingest runs on; embedded or real, behind the same traits.
#[derive(Clone)]
pub struct Backends {
    pub cache: Arc<dyn StateCache>,
    pub store: Arc<dyn LikeStore>,
    pub publisher: Arc<dyn EventPublisher>,
    pub trending: Arc<dyn TrendingBoard>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ActionOutcome {
    pub liked: bool,
    pub count: i64,
    pub changed: bool,
}

/// Rows read to fill a cold user; a user with more is filled partially and the rest is read
/// per content on demand.
const USER_FILL_ROWS: usize = 1_000;

/// Store reads per request to fill the cache before giving up with 503: a read is refused when
/// the cache forgot, meanwhile, something it may have missed; that races a sink commit, rarely.
const FILL_ATTEMPTS: usize = 3;

pub struct LikeService {
    backends: Backends,
    clock: HybridClock,
    source: String,
    metrics: Arc<Metrics>,
}

impl LikeService {
    pub fn new(backends: Backends, source: String, metrics: Arc<Metrics>) -> Self {
        LikeService {
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
        // Fill the count first so the transition below moves a cached value the caller sees.
        self.counts(&[content]).await?;
        let applied = self.apply_to_cache(user, content, action).await?;
        if applied.needs_publish() {
            self.make_durable(user, content, &applied).await?;
        }
        let count = match applied.count {
            Some(n) => n,
            None => self.counts(&[content]).await?[0],
        };
        Ok(ActionOutcome {
            liked: applied.liked,
            count: count.max(0),
            changed: applied.changed,
        })
    }

    /// Publishes the state `applied` reports and waits until it is durable (DESIGN section 7,
    /// "pending until durable"). A pending state found by a repeated action is published again
    /// with the same version: the sink treats it as a duplicate, and the answer then stands on
    /// a durable event whichever publish lands. A failed change goes back to the last durable
    /// state and the caller gets 503.
    async fn make_durable(
        &self,
        user: UserId,
        content: ContentId,
        applied: &CachedApply,
    ) -> Result<(), ApiError> {
        let event = LikeEvent {
            event_id: rand::random::<u128>(),
            user_id: user,
            content_id: content,
            action: if applied.liked {
                Action::Like
            } else {
                Action::Unlike
            },
            version: applied.version,
            ts_ms: now_ms(),
            source: self.source.clone(),
        };
        let cache = self.backends.cache.clone();
        let publisher = self.backends.publisher.clone();
        let metrics = self.metrics.clone();
        let applied = *applied;
        // A client that goes away drops this request's future. The publish and its confirm or
        // revert must still run to the end: the entry would otherwise wait for a publish that
        // nothing resolves, and could never be forgotten.
        let settle = tokio::spawn(async move {
            // A publisher that panics must still resolve the entry: as a failed publish.
            let published = AssertUnwindSafe(publisher.publish(&event))
                .catch_unwind()
                .await
                .unwrap_or_else(|_| Err(BusError::Unavailable("publisher panicked".into())));
            match published {
                Ok(mark) => {
                    metrics.events_published.inc();
                    cache
                        .confirm(user, content, &applied, mark)
                        .await
                        .map_err(cache_down)
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
        });
        settle.await.map_err(|error| {
            tracing::error!(%error, "publish task failed");
            ApiError::unavailable("events cannot be made durable right now")
        })?
    }

    async fn apply_to_cache(
        &self,
        user: UserId,
        content: ContentId,
        action: Action,
    ) -> Result<CachedApply, ApiError> {
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
                self.fill_user(user).await?;
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
        Err(ApiError::unavailable("state cache is busy; retry shortly"))
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
    async fn fill_user(&self, user: UserId) -> Result<(), ApiError> {
        for _ in 0..FILL_ATTEMPTS {
            let ticket = self.backends.cache.fill_ticket();
            let mut rows = self
                .backends
                .store
                .user_rows(user, USER_FILL_ROWS + 1)
                .await
                .map_err(store_down)?;
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
                return Ok(());
            }
        }
        Err(ApiError::unavailable("state cache is busy; retry shortly"))
    }

    /// Counts for `contents`, from the cache, filling misses from the store.
    pub async fn counts(&self, contents: &[ContentId]) -> Result<Vec<i64>, ApiError> {
        let cache = &self.backends.cache;
        let cached = cache.counts(contents).await.map_err(cache_down)?;
        let mut missing = misses(contents, &cached);
        let mut filled = HashMap::with_capacity(missing.len());
        for attempt in 1..=FILL_ATTEMPTS {
            if missing.is_empty() {
                break;
            }
            let ticket = cache.fill_ticket();
            let stored = self
                .backends
                .store
                .counts(&missing)
                .await
                .map_err(store_down)?;
            let mut again = Vec::new();
            for (id, n) in missing.into_iter().zip(stored) {
                // SET NX: a count cached meanwhile (and moved by a like) wins over the store's.
                match cache.fill_count(id, n, ticket).await.map_err(cache_down)? {
                    Some(value) => {
                        filled.insert(id, value);
                    }
                    // The store lacks changes in flight; after the last try, its value is the
                    // best there is (only this answer is off, nothing cached is).
                    None if attempt == FILL_ATTEMPTS => {
                        filled.insert(id, n);
                    }
                    None => again.push(id),
                }
            }
            missing = again;
        }
        Ok(merge(contents, cached, &filled, 0)
            .into_iter()
            .map(|n| n.max(0))
            .collect())
    }

    /// Whether `user` likes each of `contents` (durable states), from the cache, filling misses
    /// from the store.
    pub async fn liked(&self, user: UserId, contents: &[ContentId]) -> Result<Vec<bool>, ApiError> {
        const NO_ROW: RowState = RowState {
            liked: false,
            version: 0,
        };
        let cache = &self.backends.cache;
        let mut cached = cache.states(user, contents).await.map_err(cache_down)?;
        if cached.iter().any(Option::is_none) && !cache.is_filled(user).await.map_err(cache_down)? {
            self.fill_user(user).await?;
            cached = cache.states(user, contents).await.map_err(cache_down)?;
        }
        let missing = misses(contents, &cached);
        let mut filled = HashMap::with_capacity(missing.len());
        if !missing.is_empty() {
            let mut seeded = false;
            for _ in 0..FILL_ATTEMPTS {
                let ticket = cache.fill_ticket();
                let stored = self.read_states(user, &missing).await?;
                let seeds: Vec<(ContentId, Option<RowState>)> =
                    missing.iter().copied().zip(stored).collect();
                if cache
                    .seed_states(user, &seeds, ticket)
                    .await
                    .map_err(cache_down)?
                {
                    seeded = true;
                    break;
                }
            }
            if !seeded {
                return Err(ApiError::unavailable("state cache is busy; retry shortly"));
            }
            // Re-read: a concurrent action may have won over the seed, and the cache holds it.
            let now = cache.states(user, &missing).await.map_err(cache_down)?;
            for (id, current) in missing.into_iter().zip(now) {
                filled.insert(id, current.unwrap_or(NO_ROW));
            }
        }
        Ok(merge(contents, cached, &filled, NO_ROW)
            .iter()
            .map(|s| s.liked)
            .collect())
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

/// The distinct ids whose cached value is missing.
fn misses<T>(contents: &[ContentId], cached: &[Option<T>]) -> Vec<ContentId> {
    let mut missing: Vec<ContentId> = contents
        .iter()
        .zip(cached)
        .filter(|(_, c)| c.is_none())
        .map(|(id, _)| *id)
        .collect();
    missing.sort_unstable();
    missing.dedup();
    missing
}

/// Cached values where present, else the filled ones, in the order of `contents`.
fn merge<T: Copy>(
    contents: &[ContentId],
    cached: Vec<Option<T>>,
    filled: &HashMap<ContentId, T>,
    default: T,
) -> Vec<T> {
    contents
        .iter()
        .zip(cached)
        .map(|(id, c)| c.or_else(|| filled.get(id).copied()).unwrap_or(default))
        .collect()
}

fn cache_down(e: CacheError) -> ApiError {
    match e {
        CacheError::Full => {
            tracing::warn!("state cache full of changes the store does not hold yet");
            ApiError::unavailable("too many changes waiting for the store; retry shortly")
        }
        other => {
            tracing::error!(error = %other, "state cache failed");
            ApiError::unavailable("state cache unavailable")
        }
    }
}

fn store_down(e: likes_shared::store::StoreError) -> ApiError {
    tracing::error!(error = %e, "store failed");
    ApiError::unavailable("store unavailable")
}
