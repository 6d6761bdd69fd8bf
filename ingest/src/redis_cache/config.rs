//! `RedisCacheConfig`: how long Redis entries live and how long its answers may take. The URL
//! is apart (`LIKES_REDIS_URL`, DESIGN section 11).

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RedisCacheConfig {
    /// The first part of every key (`<namespace>:{u:<id>}`): several deployments (or test runs)
    /// can share one Redis without seeing each other's states.
    pub namespace: String,
    /// Longest wait for one command's answer; past it the cache is treated as down.
    pub response_timeout_ms: u64,
    /// Longest wait to (re)connect.
    pub connect_timeout_ms: u64,
    /// A user's states expire after this long unused (refreshed on every use). Far longer than
    /// the pipeline's lag: an expired state must already be in the store.
    pub state_ttl_secs: u64,
    /// A content's count expires after this long unused (refreshed on every use).
    pub count_ttl_secs: u64,
    /// Most states cached for one user; past it settled ones are forgotten, the user's fill
    /// stops being complete, and single contents are read from the store.
    pub max_states_per_user: usize,
    /// Redis is a Cluster: every script keeps to one hash slot, so an action's state and its
    /// count move in two round trips instead of one script.
    pub cluster: bool,
    /// After an outage, states written before the cache's last answer *plus* this are fenced
    /// (`StateCache::fence`). The states a Redis restarted from a snapshot has lost were written
    /// right up to its last answer, stamped by every ingest host's clock; the margin covers the
    /// hosts whose clocks run ahead of this one's.
    pub fence_margin_ms: u64,
    /// A count fill of a content that keeps changing (`count_scripts.rs`) is given up after this
    /// long and started again: far longer than the lag bound and the fence margin it waits for.
    pub fill_epoch_ttl_secs: u64,
    /// Whether a refused count fill starts a fill epoch. Off by default: a review found
    /// interleavings that leave such a count off by one for good (a change published around
    /// the cache while Redis applies the same pair's next one; a spool that drains within one
    /// hold tick across the start; on a Cluster, a tag decided after a newer untagged change was
    /// published). Off, a lost count of a content that keeps changing is answered from the
    /// store, lagging but never drifting.
    pub fill_epochs: bool,
}

impl Default for RedisCacheConfig {
    fn default() -> Self {
        RedisCacheConfig {
            namespace: "likes".into(),
            response_timeout_ms: 500,
            connect_timeout_ms: 1_000,
            state_ttl_secs: 6 * 3600,
            count_ttl_secs: 6 * 3600,
            max_states_per_user: 4_096,
            cluster: false,
            fence_margin_ms: 5_000,
            fill_epoch_ttl_secs: 600,
            fill_epochs: false,
        }
    }
}
