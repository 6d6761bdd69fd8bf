//! [`KnownCounts`]: the count keys this process moved moments ago.
//!
//! An action must find its content's count cached before it moves it: a move on a missing key is
//! lost to the count, and the fill after it is refused as possibly stale. So an action reads (and
//! if need be fills) the count first, one round trip more, unless the count is known here. A key
//! this process moved within `window` had its TTL (hours) reset by that move, so it is still
//! there, on a Redis that does not evict (see the cache's module docs): on a hot content the
//! read is skipped. If the key went anyway (deleted by hand, a Redis restart), the move reports
//! it missing and the action answers as on any miss, from a fill or the store.

use likes_shared::ContentId;
use moka::sync::Cache;
use std::time::Duration;

/// Most contents remembered; past it moka drops the least used, which only costs a read.
const MAX_KNOWN: u64 = 100_000;

/// Longest a move is trusted: far inside any sensible count TTL.
const MAX_WINDOW: Duration = Duration::from_secs(60);

pub struct KnownCounts {
    moved: Cache<u64, ()>,
}

impl KnownCounts {
    /// Trusts a move for a quarter of `count_ttl` (at most a minute).
    pub fn new(count_ttl: Duration) -> Self {
        KnownCounts {
            moved: Cache::builder()
                .max_capacity(MAX_KNOWN)
                .time_to_live((count_ttl / 4).min(MAX_WINDOW))
                .build(),
        }
    }

    pub fn contains(&self, content: ContentId) -> bool {
        self.moved.contains_key(&content.get())
    }

    /// A move found the key (`true`, and reset its TTL) or found it missing (`false`).
    pub fn record(&self, content: ContentId, present: bool) {
        if present {
            self.moved.insert(content.get(), ());
        } else {
            self.moved.invalidate(&content.get());
        }
    }
}
