//! The read paths: counts (local hot cache → state cache → store) and states (state cache →
//! store), each falling back to the store, stale, when the state cache is unavailable.

use super::{cache_down, fill_refused, store_down, Answer, Failure, LikeService, FILL_ATTEMPTS};
use crate::error::ApiError;
use likes_shared::store::RowState;
use likes_shared::{ContentId, UserId};
use std::collections::HashMap;

impl LikeService {
    /// Counts for `contents`: [`Self::read_counts`] without saying whether they are stale.
    pub async fn counts(&self, contents: &[ContentId]) -> Result<Vec<i64>, ApiError> {
        Ok(self.read_counts(contents).await?.value)
    }

    /// Counts for `contents`: hot ones from the local cache, the rest from the state cache
    /// (filling misses from the store); from the store, stale, when the state cache is down.
    pub async fn read_counts(&self, contents: &[ContentId]) -> Result<Answer<Vec<i64>>, ApiError> {
        let Some(hot) = &self.backends.hot_counts else {
            return self.counts_or_degraded(contents).await;
        };
        let counts = hot.lookup(contents);
        let missing = misses(contents, &counts);
        if missing.is_empty() {
            return Ok(Answer {
                value: counts.into_iter().flatten().collect(),
                stale: false,
            });
        }
        let read = self.counts_or_degraded(&missing).await?;
        let read_stale = read.stale;
        let read: HashMap<ContentId, i64> = missing.into_iter().zip(read.value).collect();
        if !read_stale {
            for (id, n) in &read {
                hot.fill(*id, *n);
            }
        }
        Ok(Answer {
            value: merge(contents, counts, &read, 0),
            stale: read_stale,
        })
    }

    async fn counts_or_degraded(
        &self,
        contents: &[ContentId],
    ) -> Result<Answer<Vec<i64>>, ApiError> {
        match self.counts_cached(contents).await {
            Ok(value) => Ok(Answer {
                value,
                stale: false,
            }),
            Err(Failure::Api(error)) => Err(error),
            Err(Failure::CacheDown(reason)) => {
                tracing::debug!(%reason, "state cache unavailable: counts from the store");
                self.counts_degraded(contents).await
            }
        }
    }

    /// Counts from the state cache alone, filling misses from the store.
    pub(super) async fn counts_cached(&self, contents: &[ContentId]) -> Result<Vec<i64>, Failure> {
        Ok(self.counts_filled(contents).await?.0)
    }

    /// [`Self::counts_cached`], and the contents whose count the cache still does not hold: it
    /// refused every fill (the store may lack a change in flight), so theirs is the store's.
    pub(super) async fn counts_filled(
        &self,
        contents: &[ContentId],
    ) -> Result<(Vec<i64>, Vec<ContentId>), Failure> {
        let cache = &self.backends.cache;
        let mut uncached = Vec::new();
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
                .fill_counts(&missing)
                .await
                .map_err(store_down)?;
            let mut again = Vec::new();
            for (id, stored) in missing.into_iter().zip(stored) {
                // SET NX: a count cached meanwhile (and moved by a like) wins over the store's.
                match cache
                    .fill_count(id, stored, ticket)
                    .await
                    .map_err(cache_down)?
                {
                    Some(value) => {
                        filled.insert(id, value);
                    }
                    // The store lacks changes in flight; after the last try, its value is the
                    // best there is (only this answer is off, nothing cached is).
                    None if attempt == FILL_ATTEMPTS => {
                        filled.insert(id, stored.count);
                        uncached.push(id);
                    }
                    None => again.push(id),
                }
            }
            missing = again;
        }
        let counts = merge(contents, cached, &filled, 0)
            .into_iter()
            .map(|n| n.max(0))
            .collect();
        Ok((counts, uncached))
    }

    /// Whether `user` likes each of `contents`: [`Self::read_liked`] without saying whether the
    /// states are stale.
    pub async fn liked(&self, user: UserId, contents: &[ContentId]) -> Result<Vec<bool>, ApiError> {
        Ok(self.read_liked(user, contents).await?.value)
    }

    /// Whether `user` likes each of `contents` (durable states), from the state cache, filling
    /// misses from the store; from the store, stale, when the state cache is down.
    pub async fn read_liked(
        &self,
        user: UserId,
        contents: &[ContentId],
    ) -> Result<Answer<Vec<bool>>, ApiError> {
        match self.liked_cached(user, contents).await {
            Ok(value) => Ok(Answer {
                value,
                stale: false,
            }),
            Err(Failure::Api(error)) => Err(error),
            Err(Failure::CacheDown(reason)) => {
                tracing::debug!(%reason, "state cache unavailable: states from the store");
                self.liked_degraded(user, contents).await
            }
        }
    }

    async fn liked_cached(
        &self,
        user: UserId,
        contents: &[ContentId],
    ) -> Result<Vec<bool>, Failure> {
        const NO_ROW: RowState = RowState {
            liked: false,
            version: 0,
        };
        let cache = &self.backends.cache;
        let mut cached = cache.states(user, contents).await.map_err(cache_down)?;
        if cached.iter().any(Option::is_none) && !cache.is_filled(user).await.map_err(cache_down)? {
            if !self.fill_user(user).await? {
                return Err(fill_refused());
            }
            cached = cache.states(user, contents).await.map_err(cache_down)?;
        }
        let missing = misses(contents, &cached);
        let mut filled = HashMap::with_capacity(missing.len());
        if !missing.is_empty() {
            let mut seeded = None;
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
                    seeded = Some(seeds);
                    break;
                }
            }
            let Some(seeds) = seeded else {
                return Err(fill_refused());
            };
            // Re-read: a concurrent action may have won over the seed, and the cache holds it.
            // A content missing again was forgotten to make room (a later one of this page, or
            // another request): what the store said, accepted by the seed, still stands.
            let now = cache.states(user, &missing).await.map_err(cache_down)?;
            for ((id, stored), current) in seeds.into_iter().zip(now) {
                filled.insert(id, current.or(stored).unwrap_or(NO_ROW));
            }
        }
        Ok(merge(contents, cached, &filled, NO_ROW)
            .iter()
            .map(|s| s.liked)
            .collect())
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
