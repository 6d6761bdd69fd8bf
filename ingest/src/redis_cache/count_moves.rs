//! The Cluster's count scripts of [`RedisStateCache`], each on the content's slot on its own
//! (on one Redis the state scripts run them in the same step): `count_scripts.rs` has the Lua.

use super::connection::cache_error;
use super::scripts::{APPLY_COUNT_SCRIPT, FORGET_COUNT_SCRIPT, SETTLE_COUNT_SCRIPT};
use super::RedisStateCache;
use likes_shared::cache::CacheError;
use likes_shared::hlc::now_ms;
use likes_shared::ContentId;

impl RedisStateCache {
    /// The keys of a content's count that every count script takes first: the count, its last
    /// change, its fill epoch and the epoch's sum (`count_scripts.rs`).
    pub(super) fn count_keys(
        &self,
        invocation: &mut redis::ScriptInvocation<'_>,
        content: ContentId,
    ) {
        invocation
            .key(self.keys.count(content))
            .key(self.keys.changed(content))
            .key(self.keys.epoch(content))
            .key(self.keys.epoch_sum(content));
    }

    /// The Cluster's count move of a confirm, revert or learn, on the content's slot.
    pub(super) async fn settle_count(
        &self,
        content: ContentId,
        delta: i64,
    ) -> Result<(), CacheError> {
        let mut invocation = SETTLE_COUNT_SCRIPT.prepare_invoke();
        self.count_keys(&mut invocation, content);
        invocation
            .arg(delta)
            .arg(now_ms())
            .arg(self.config.count_ttl_secs);
        let count: Option<i64> = self
            .timed("move_count", invocation.invoke_async(&mut self.conn()))
            .await
            .map_err(cache_error)?;
        self.known_counts.record(content, count.is_some());
        Ok(())
    }

    /// The Cluster's count move of an apply, on the content's slot: the count after, and the
    /// fill epoch its event carries. `after` is what [`APPLY_SCRIPT`] said the event follows.
    pub(super) async fn apply_count(
        &self,
        content: ContentId,
        delta: i64,
        after: &str,
    ) -> Result<(Option<i64>, String), CacheError> {
        let mut invocation = APPLY_COUNT_SCRIPT.prepare_invoke();
        self.count_keys(&mut invocation, content);
        invocation
            .arg(delta)
            .arg(if delta != 0 { now_ms() } else { 0 })
            .arg(self.config.count_ttl_secs)
            .arg(after)
            .arg(self.config.fence_margin_ms);
        let moved: (Option<i64>, String) = self
            .timed("move_count", invocation.invoke_async(&mut self.conn()))
            .await
            .map_err(cache_error)?;
        self.known_counts.record(content, moved.0.is_some());
        Ok(moved)
    }

    /// Drops a cached count that cannot follow a change, recording the change (see
    /// `FORGET_COUNT_FN`).
    pub(super) async fn forget_count(&self, content: ContentId) -> Result<(), CacheError> {
        let mut invocation = FORGET_COUNT_SCRIPT.prepare_invoke();
        self.count_keys(&mut invocation, content);
        invocation.arg(now_ms()).arg(self.config.count_ttl_secs);
        self.timed("forget_count", invocation.invoke_async(&mut self.conn()))
            .await
            .map_err(cache_error)
    }
}
