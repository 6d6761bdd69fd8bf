//! The state cache contract (Redis in production, memory when embedded). A cache, never the truth
//! (I6): it answers "did I like it" and counts fast and tells ingest whether an action changed
//! anything, so only real transitions are published.

use crate::event::Action;
use crate::ids::{ContentId, UserId};
use crate::store::RowState;
use async_trait::async_trait;

/// The result of applying one action to the cached state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CachedApply {
    /// State after the action.
    pub liked: bool,
    /// Whether the action flipped the state.
    pub changed: bool,
    /// The version now stored: `max(requested, previous + 1)` when changed, else the previous one.
    pub version: u64,
    /// The state before, so a failed publish can be undone exactly.
    pub previous: Option<RowState>,
    /// The cached count after the action, if the count was cached.
    pub count: Option<i64>,
}

#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error("state cache unavailable: {0}")]
    Unavailable(String),
}

#[async_trait]
pub trait StateCache: Send + Sync + 'static {
    /// Applies `action` at `version` if the (user, content) state is known. Returns `None` when
    /// it is cold: the caller then reads the store and calls again with `seed` (the stored row,
    /// `None` for no row), which is used only if the state is still cold.
    async fn apply(
        &self,
        user: UserId,
        content: ContentId,
        action: Action,
        version: u64,
        seed: Option<Option<RowState>>,
    ) -> Result<Option<CachedApply>, CacheError>;

    /// Undoes `applied` if the stored version is still the one it set (a later action wins).
    async fn revert(
        &self,
        user: UserId,
        content: ContentId,
        applied: &CachedApply,
    ) -> Result<(), CacheError>;

    /// Cached states; `None` where cold.
    async fn states(
        &self,
        user: UserId,
        contents: &[ContentId],
    ) -> Result<Vec<Option<RowState>>, CacheError>;

    /// Fills a cold user from the store with their most recent rows (tombstones included). When
    /// `complete`, the rows are all the user has, so every other content is known "no row" and
    /// needs no store read. Never overwrites a cached state.
    async fn seed_user(
        &self,
        user: UserId,
        rows: &[(ContentId, RowState)],
        complete: bool,
    ) -> Result<(), CacheError>;

    /// Fills single cold states from the store (never overwrites a cached one).
    async fn seed_states(
        &self,
        user: UserId,
        states: &[(ContentId, Option<RowState>)],
    ) -> Result<(), CacheError>;

    /// Cached counts; `None` where not cached.
    async fn counts(&self, contents: &[ContentId]) -> Result<Vec<Option<i64>>, CacheError>;

    /// Caches `count` if none is cached (SET NX) and returns the cached value.
    async fn fill_count(&self, content: ContentId, count: i64) -> Result<i64, CacheError>;

    /// Whether the cache answers now (for `/readyz`).
    async fn ping(&self) -> Result<(), CacheError>;
}
