//! The store contract: the source of truth (I1) that the sink writes and reads fall back to.

use crate::ids::{ContentId, UserId};
use async_trait::async_trait;

/// The last state of one (user, content) after collapsing a window: what the sink applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LikeChange {
    pub user_id: UserId,
    pub content_id: ContentId,
    pub liked: bool,
    pub version: u64,
    pub ts_ms: u64,
    /// The event's [`crate::LikeEvent::fill_epoch`]: the sink adds the transitions of the
    /// newest fill's changes to the content's [`StoredCount::epoch_delta`].
    pub fill_epoch: u64,
}

/// A content's stored count, and how far the changes of the newest fill epoch among those the
/// store holds moved it (`likes_sink::epoch_deltas` explains the epochs).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StoredCount {
    pub count: i64,
    /// `0`: no change of any epoch was ever stored.
    pub fill_epoch: u64,
    pub epoch_delta: i64,
}

impl StoredCount {
    pub fn untagged(count: i64) -> Self {
        StoredCount {
            count,
            ..StoredCount::default()
        }
    }
}

/// One user's rows, as [`LikeStore::user_rows`] reads them.
pub type UserRows = (UserId, Vec<(ContentId, RowState)>);

/// A stored row's state, tombstones (`liked == false`) included.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RowState {
    pub liked: bool,
    pub version: u64,
}

/// What one committed window did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ApplyOutcome {
    /// Rows inserted or updated (changes older than the stored version are skipped).
    pub rows_written: usize,
    /// Count deltas derived from the row transitions actually made, one per content touched.
    pub count_deltas: Vec<(ContentId, i64)>,
}

/// One liked content in a user's history page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LikedItem {
    pub content_id: ContentId,
    pub liked_at_ms: u64,
}

/// A position in a user's history, newest first: strictly older than (liked_at_ms, content_id).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HistoryCursor {
    pub liked_at_ms: u64,
    pub content_id: ContentId,
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// Worth retrying: connection lost, deadlock, write conflict, timeout.
    #[error("transient store error: {0}")]
    Transient(String),
    /// Another transaction wrote the same rows first (TiDB's optimistic write conflict, a
    /// deadlock): transient, and counted apart, since a rising rate means workers share rows.
    #[error("write conflict: {0}")]
    Conflict(String),
    /// Retrying cannot help: the batch itself is bad or the schema refuses it.
    #[error("permanent store error: {0}")]
    Permanent(String),
}

impl StoreError {
    pub fn is_transient(&self) -> bool {
        matches!(self, StoreError::Transient(_) | StoreError::Conflict(_))
    }
}

#[async_trait]
pub trait LikeStore: Send + Sync + 'static {
    /// Applies one window in one transaction. Each change overwrites its row only if its version
    /// is newer (I4); counts move by the transitions made (I2). All or nothing.
    async fn apply_window(&self, changes: &[LikeChange]) -> Result<ApplyOutcome, StoreError>;

    /// Exact counts, 0 for contents never liked.
    async fn counts(&self, contents: &[ContentId]) -> Result<Vec<i64>, StoreError>;

    /// Exact counts with the fill epoch each holds (see [`StoredCount`]): what a cache fills a
    /// lost count from. A store that never records epochs has none to report, and this is its
    /// default: such a store only ever sees untagged changes (the embedded cache tags nothing).
    async fn fill_counts(&self, contents: &[ContentId]) -> Result<Vec<StoredCount>, StoreError> {
        Ok(self
            .counts(contents)
            .await?
            .into_iter()
            .map(StoredCount::untagged)
            .collect())
    }

    /// The stored state of each (user, content); `None` where no row exists.
    async fn states(
        &self,
        user: UserId,
        contents: &[ContentId],
    ) -> Result<Vec<Option<RowState>>, StoreError>;

    /// The user's rows, tombstones included, most recently changed first, at most `limit`: what
    /// a cold user's cached state is filled with.
    async fn user_rows(
        &self,
        user: UserId,
        limit: usize,
    ) -> Result<Vec<(ContentId, RowState)>, StoreError>;

    /// [`Self::user_rows`] of many users in one read: each user read, with its rows (at most
    /// `limit`). A user the answer leaves out was not read (the read's own bound on rows ran
    /// out first) and is asked for again; a store answers at least one of the users it is
    /// given. One read per cold user is what a like by a new visitor costs the store, and many
    /// arrive at once. The default reads one user at a time.
    async fn users_rows(
        &self,
        users: &[UserId],
        limit: usize,
    ) -> Result<Vec<UserRows>, StoreError> {
        let mut answered = Vec::with_capacity(users.len());
        for &user in users {
            answered.push((user, self.user_rows(user, limit).await?));
        }
        Ok(answered)
    }

    /// The user's liked contents, newest first, strictly after `cursor`.
    async fn history(
        &self,
        user: UserId,
        cursor: Option<HistoryCursor>,
        limit: usize,
    ) -> Result<Vec<LikedItem>, StoreError>;

    /// Cheap round trip for `/readyz`.
    async fn ping(&self) -> Result<(), StoreError>;
}
