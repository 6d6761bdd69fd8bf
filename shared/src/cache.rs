//! The state cache contract (Redis in production, memory when embedded). A cache, never the truth
//! (I6): it answers "did I like it" and counts fast and tells ingest whether an action changed
//! anything, so only real transitions are published.
//!
//! The rules of DESIGN section 7 live here, so every backend keeps them:
//! - **Pending until durable.** An action's state is *pending* until its event is durable. The
//!   service publishes, then [`StateCache::confirm`]s; a request that finds the state it wants
//!   already there but pending publishes the same state and version again (the sink treats an
//!   equal version as a duplicate) before it answers, so a 2xx always reports a durable state.
//! - **Revert to the last durable state.** [`StateCache::revert`] restores what the last durable
//!   event said, never a state that was itself pending.
//! - **Forget only what the store holds.** An entry may be dropped only once the sink committed
//!   its newest event ([`crate::bus::CommitProgress`]); a fill from the store carries a
//!   [`FillTicket`] taken before the read, and is refused if the cache forgot, since, something
//!   that read may have missed. When nothing can be forgotten the cache is full:
//!   [`CacheError::Full`], answered 503 (I7).

use crate::bus::DurableMark;
use crate::event::Action;
use crate::ids::{ContentId, UserId};
use crate::store::{RowState, StoredCount};
use async_trait::async_trait;

/// How a count moves when a state becomes `liked` (negated: when it stops being it).
pub fn like_delta(liked: bool) -> i64 {
    if liked {
        1
    } else {
        -1
    }
}

/// The result of applying one action to the cached state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CachedApply {
    /// State after the action.
    pub liked: bool,
    /// Whether the action flipped the state.
    pub changed: bool,
    /// The version now stored: `max(requested, previous + 1)` when changed, else the previous one.
    pub version: u64,
    /// The state found (unchanged) is not durable yet: publish it again before answering.
    pub pending: bool,
    /// The cached count after the action, if the count was cached.
    pub count: Option<i64>,
    /// The fill epoch of the content's missing count that this action's move went into, for
    /// its event to carry ([`crate::LikeEvent::fill_epoch`]); `0` when none.
    pub fill_epoch: u64,
}

impl CachedApply {
    /// Whether an event must be made durable before the answer: a change, or a pending state.
    pub fn needs_publish(&self) -> bool {
        self.changed || self.pending
    }
}

/// Taken before a store read that will fill the cache: how far the sink had committed then.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FillTicket(pub DurableMark);

#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error("state cache unavailable: {0}")]
    Unavailable(String),
    /// Every entry holds something the store does not have yet; nothing can be forgotten.
    #[error("state cache is full of changes the store does not hold yet")]
    Full,
}

#[async_trait]
pub trait StateCache: Send + Sync + 'static {
    /// A ticket for a store read about to fill the cache.
    fn fill_ticket(&self) -> FillTicket;

    /// Applies `action` at `version` if the (user, content) state is known; `None` when it is
    /// cold (fill it from the store and call again).
    async fn apply(
        &self,
        user: UserId,
        content: ContentId,
        action: Action,
        version: u64,
    ) -> Result<Option<CachedApply>, CacheError>;

    /// The state `applied` reports is durable at `mark`: it becomes the entry's durable state if
    /// newer, and its current state too if a revert took it away meanwhile.
    async fn confirm(
        &self,
        user: UserId,
        content: ContentId,
        applied: &CachedApply,
        mark: DurableMark,
    ) -> Result<(), CacheError>;

    /// The publish of `applied` failed (called for every failed publish, repeats included): a
    /// change goes back to the last durable state, if the entry still holds it (a later action
    /// wins).
    async fn revert(
        &self,
        user: UserId,
        content: ContentId,
        applied: &CachedApply,
    ) -> Result<(), CacheError>;

    /// A durable event this cache did not see: it was published while the cache was
    /// unavailable (DESIGN section 8). Its state becomes the entry's if newer, the count
    /// following, as for a confirm; where the entry is unknown, a fill read before the change is
    /// refused, and the count, which cannot follow a change from an unknown state, is dropped
    /// (it may have been filled from a store that lacked the event), to be filled again from a
    /// store read after the change. Without it, a cache that comes back with its old data would take a repeat of
    /// the old state for "no change" and publish nothing, leaving the missed event the latest.
    /// Called by whoever recorded what it missed ([`Self::missed`]), once it answers again.
    async fn learn(
        &self,
        user: UserId,
        content: ContentId,
        liked: bool,
        version: u64,
    ) -> Result<(), CacheError> {
        let applied = CachedApply {
            liked,
            changed: true,
            version,
            pending: false,
            count: None,
            fill_epoch: 0,
        };
        self.confirm(user, content, &applied, 0).await
    }

    /// States written before `before_ms` (wall clock) may have missed events published while
    /// this cache was away, which outrank them: from now on a repeat of such a state is published
    /// again (as a pending state) instead of taken for "no change". Called before the missed
    /// events are learned, so no instance answers from an old entry meanwhile. The default (a
    /// cache that is never away) does nothing.
    async fn fence(&self, _before_ms: u64) -> Result<(), CacheError> {
        Ok(())
    }

    /// An event was published without this cache (it was unavailable). A cache that can tell
    /// when it is back (the breaker in front of Redis) keeps these and [`Self::learn`]s them
    /// before it answers again; the default forgets them.
    fn missed(&self, _user: UserId, _content: ContentId, _liked: bool, _version: u64) {}

    /// Durable cached states; `None` where cold. Known "no row" reads as unliked at version 0.
    async fn states(
        &self,
        user: UserId,
        contents: &[ContentId],
    ) -> Result<Vec<Option<RowState>>, CacheError>;

    /// Whether the user has been filled (and so a cold content needs a single-row read, not a
    /// whole fill again).
    async fn is_filled(&self, user: UserId) -> Result<bool, CacheError>;

    /// Fills a user from the store with their most recent rows (tombstones included). When
    /// `complete`, the rows are all the user has, so every other content is known "no row".
    /// Never overwrites a cached state. `Ok(false)`: the read may be stale, read again.
    async fn seed_user(
        &self,
        user: UserId,
        rows: &[(ContentId, RowState)],
        complete: bool,
        ticket: FillTicket,
    ) -> Result<bool, CacheError>;

    /// Fills single cold states from the store; `Ok(false)` as for [`Self::seed_user`].
    async fn seed_states(
        &self,
        user: UserId,
        states: &[(ContentId, Option<RowState>)],
        ticket: FillTicket,
    ) -> Result<bool, CacheError>;

    /// Whether the cache surely holds `content`'s count right now, known without asking it
    /// (this process moved or filled that count moments ago): an action may then move the count
    /// without reading or filling it first. `false` when unsure, which is always safe.
    fn holds_count(&self, _content: ContentId) -> bool {
        false
    }

    /// Cached counts; `None` where not cached.
    async fn counts(&self, contents: &[ContentId]) -> Result<Vec<Option<i64>>, CacheError>;

    /// Caches a count read from the store if none is cached (SET NX) and returns the value to
    /// use; `None` when the read may lack changes in flight (read again). `stored` carries the
    /// fill epoch the store holds for the content, for a cache that fills counts of contents
    /// that keep changing that way (the Redis cache; the memory cache fills from `count`).
    async fn fill_count(
        &self,
        content: ContentId,
        stored: StoredCount,
        ticket: FillTicket,
    ) -> Result<Option<i64>, CacheError>;

    /// Whether the cache answers now (for `/readyz`).
    async fn ping(&self) -> Result<(), CacheError>;
}
