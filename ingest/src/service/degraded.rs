//! Answers without the state cache (DESIGN section 8, "Redis down"), every one marked stale.
//!
//! - **Actions** publish anyway, without dedup: the sink ignores an event whose version is not
//!   newer than the row's (I2, I4), so a repeated like costs an event, never a double count.
//!   The state is the request's; the version comes from the ingest clock after it has observed
//!   the stored row's version, so the event outranks what the store holds (versions the cache
//!   bumped past the clock and that are still in flight are the one thing it cannot see).
//!   `changed` and the count are as far as the store knows, which lags the events in flight: the
//!   count is the store's (or, when the store does not answer, the local hot cache's), moved by
//!   this action if the stored row says it flips. The durable ack still holds (I3): 2xx only
//!   after the publish returned Ok.
//! - **Reads** come from the store (counts of hot contents from the local cache first).
//!
//! - **Coming back**: a Redis that comes back *with its data* (stopped and started, frozen, cut
//!   off) does not know the actions taken without it. Each published one is recorded
//!   ([`likes_shared::cache::StateCache::missed`]) and the breaker teaches them to the cache
//!   before this instance uses it again (`cache_breaker/missed.rs`).
//!
//! # Known gaps
//! - Another instance that did not see the outage may answer from the old entry before this
//!   one has taught the cache; and an instance killed meanwhile takes its record with it. Those
//!   states stay behind until touched or expired; the reconciler repairs the counts (I6).
//! - An apply that reached Redis before its answer timed out leaves that entry pending; the
//!   degraded event carries a newer version for the same requested state, so the store ends the
//!   same, and the pending entry settles by age.
//! - Versions across instances: another instance's clock may be behind this one's, so its next
//!   action through Redis may carry a version below a degraded event of this one (skew only).

use super::{store_down, Answer, LikeService};
use crate::error::ApiError;
use likes_shared::bus::BusError;
use likes_shared::store::RowState;
use likes_shared::{Action, ContentId, UserId};

impl LikeService {
    pub(super) async fn act_degraded(
        &self,
        user: UserId,
        content: ContentId,
        action: Action,
    ) -> Result<super::ActionOutcome, ApiError> {
        let store = &self.backends.store;
        let ids = [content];
        let (stored, count) = tokio::join!(store.states(user, &ids), self.degraded_count(content));
        // What the store holds for this (user, content); `None` when the store did not answer.
        let stored: Option<Option<RowState>> = match stored {
            Ok(rows) => Some(rows[0]),
            Err(error) => {
                tracing::warn!(%error, "degraded action: no stored state to version above");
                None
            }
        };
        let count = count?;
        if let Some(Some(row)) = stored {
            self.clock.observe(row.version);
        }
        let liked = action.liked();
        let changed = match stored {
            Some(row) => row.is_some_and(|r| r.liked) != liked,
            // Nothing known: report what the event asks for.
            None => true,
        };
        let event = self.event(user, content, liked, self.clock.now());
        match self.backends.publisher.publish(&event).await {
            Ok(_) => {
                self.metrics.events_published.inc();
                // The cache must learn it before it answers again (see `cache_breaker`).
                self.backends
                    .cache
                    .missed(user, content, liked, event.version);
            }
            Err(error) => {
                self.metrics.publish_failures.inc();
                return Err(match error {
                    BusError::Full => ApiError::unavailable("event log is full; retry shortly"),
                    other => {
                        tracing::error!(error = %other, "degraded publish failed");
                        ApiError::unavailable("events cannot be made durable right now")
                    }
                });
            }
        }
        let moved = match (changed, liked) {
            (false, _) => 0,
            (true, true) => 1,
            (true, false) => -1,
        };
        self.metrics.stale_answers.inc();
        Ok(super::ActionOutcome {
            liked,
            count: (count + moved).max(0),
            changed,
            stale: true,
        })
    }

    /// One content's count without the state cache: the store's, else the local cache's.
    pub(super) async fn degraded_count(&self, content: ContentId) -> Result<i64, ApiError> {
        match self.backends.store.counts(&[content]).await {
            Ok(counts) => Ok(counts[0]),
            Err(error) => self.local_count(content).ok_or_else(|| store_down(error)),
        }
    }

    fn local_count(&self, content: ContentId) -> Option<i64> {
        self.backends
            .hot_counts
            .as_ref()
            .and_then(|hot| hot.peek(content))
    }

    pub(super) async fn counts_degraded(
        &self,
        contents: &[ContentId],
    ) -> Result<Answer<Vec<i64>>, ApiError> {
        let counts = self
            .backends
            .store
            .counts(contents)
            .await
            .map_err(store_down)?;
        self.metrics.stale_answers.inc();
        Ok(Answer {
            value: counts.into_iter().map(|n| n.max(0)).collect(),
            stale: true,
        })
    }

    pub(super) async fn liked_degraded(
        &self,
        user: UserId,
        contents: &[ContentId],
    ) -> Result<Answer<Vec<bool>>, ApiError> {
        let states = self.read_states(user, contents).await?;
        self.metrics.stale_answers.inc();
        Ok(Answer {
            value: states.iter().map(|s| s.is_some_and(|r| r.liked)).collect(),
            stale: true,
        })
    }
}
