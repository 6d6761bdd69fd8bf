//! The Redis key names of the state cache (DESIGN section 7) and the repair of its cached
//! counts from the store (I6), shared by ingest (which keeps the cache) and
//! `likes-pipeline reconcile` (which repairs it).
//!
//! Every key carries a hash tag (`{u:..}`, `{c:..}`) so one user's hash, and one content's count
//! with its last-change time, each sit in one Redis Cluster slot: every script touches one slot.
//!
//! # Why a repair may skip a count
//! A cached count is the store's plus the changes on their way to it. The reconciler's count is
//! the store's at its read; a content whose cached count moved after `committed` (taken before
//! that read, see ingest's `AgeBound`) may hold a change the read lacks, so it is left alone and
//! reported as skipped. Only counts that are cached are repaired: a missing one is filled from the
//! store by the next read.

use likes_shared::{ContentId, UserId};
use redis::aio::ConnectionManager;
use redis::{RedisError, Script};
use std::sync::LazyLock;

/// The key names under one namespace (`likes` by default).
#[derive(Debug, Clone)]
pub struct Keys {
    namespace: String,
}

impl Keys {
    pub fn new(namespace: &str) -> Self {
        Keys {
            namespace: namespace.to_owned(),
        }
    }

    /// The hash of a user's states.
    pub fn user(&self, user: UserId) -> String {
        format!("{}:{{u:{}}}", self.namespace, user.get())
    }

    /// A content's cached count.
    pub fn count(&self, content: ContentId) -> String {
        format!("{}:{{c:{}}}:n", self.namespace, content.get())
    }

    /// When the count last moved (wall-clock ms): a store read from before may lack the move.
    pub fn changed(&self, content: ContentId) -> String {
        format!("{}:{{c:{}}}:t", self.namespace, content.get())
    }

    /// The fill epoch under way while the count is missing (its start, Redis wall-clock ms),
    /// the sum of its changes' moves, and the highest epoch started: ingest's `count_scripts`.
    pub fn epoch(&self, content: ContentId) -> String {
        format!("{}:{{c:{}}}:e", self.namespace, content.get())
    }

    pub fn epoch_sum(&self, content: ContentId) -> String {
        format!("{}:{{c:{}}}:a", self.namespace, content.get())
    }

    pub fn epoch_high(&self, content: ContentId) -> String {
        format!("{}:{{c:{}}}:h", self.namespace, content.get())
    }

    /// Wall-clock ms of the last time some ingest's spool held events (no TTL): a fill epoch
    /// that started after may complete only if no spool held events since just before it.
    pub fn spool_last(&self) -> String {
        format!("{}:spool-last", self.namespace)
    }

    /// Wall-clock ms before which a cached state may have missed events published while the
    /// cache was away (ingest's `StateCache::fence`): a repeat of such a state is published.
    pub fn fence(&self) -> String {
        format!("{}:fence", self.namespace)
    }

    /// Alive while some ingest's spool holds events, and for the lag bound after (ingest's
    /// `SpoolHold`): then nothing counts as committed.
    pub fn spool_hold(&self) -> String {
        format!("{}:spool-hold", self.namespace)
    }
}

/// KEYS: count, last change. ARGV: the store's count, committed ms. Returns 1 repaired, 0 right
/// already or not cached, -1 moved after `committed` (skipped).
const REPAIR: &str = r#"#!lua flags=allow-oom
local n = redis.call('GET', KEYS[1])
if not n then return 0 end
local t = redis.call('GET', KEYS[2])
if t and tonumber(t) > tonumber(ARGV[2]) then return -1 end
if n == ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'KEEPTTL')
return 1
"#;

static REPAIR_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(REPAIR));

/// What a repair did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CountRepair {
    /// Cached counts set to the store's.
    pub repaired: u64,
    /// Cached counts that moved after `committed`: left alone.
    pub skipped: u64,
}

/// Sets every cached count of `counts` that differs from the store's, unless it moved after
/// `committed_ms` (see the module docs). One script per content, pipelined.
pub async fn repair_counts(
    conn: &mut ConnectionManager,
    keys: &Keys,
    counts: &[(ContentId, i64)],
    committed_ms: u64,
) -> Result<CountRepair, RedisError> {
    let mut report = CountRepair::default();
    for chunk in counts.chunks(500) {
        let mut pipe = redis::pipe();
        for (content, count) in chunk {
            pipe.invoke_script(
                REPAIR_SCRIPT
                    .key(keys.count(*content))
                    .key(keys.changed(*content))
                    .arg(*count)
                    .arg(committed_ms),
            );
        }
        let outcomes: Vec<i64> = match pipe.query_async(conn).await {
            Ok(outcomes) => outcomes,
            // A pipeline of EVALSHA fails whole on a Redis that lost its scripts: load, retry.
            Err(e) if e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript) => {
                REPAIR_SCRIPT.prepare_invoke().load_async(conn).await?;
                pipe.query_async(conn).await?
            }
            Err(e) => return Err(e),
        };
        for outcome in outcomes {
            match outcome {
                1 => report.repaired += 1,
                -1 => report.skipped += 1,
                _ => {}
            }
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_carry_hash_tags() {
        let (u, c) = (UserId::new(7).expect("id"), ContentId::new(9).expect("id"));
        let keys = Keys::new("likes");
        assert_eq!(keys.user(u), "likes:{u:7}");
        assert_eq!(keys.count(c), "likes:{c:9}:n");
        assert_eq!(keys.changed(c), "likes:{c:9}:t");
    }
}
