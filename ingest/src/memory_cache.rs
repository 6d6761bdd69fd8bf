//! The embedded state cache: the Redis contract (DESIGN section 7) in process memory.
//!
//! Sharded by user (and counts by content) so concurrent requests rarely share a lock. Locks are
//! `parking_lot` mutexes held only for a few map operations and never across an `.await`.
//! Bounded (I7): a shard over its share of the capacity forgets entries, which is safe because a
//! forgotten entry is cold and refilled from the store before it answers.

use async_trait::async_trait;
use likes_shared::cache::{CacheError, CachedApply, StateCache};
use likes_shared::store::RowState;
use likes_shared::{Action, ContentId, UserId};
use parking_lot::Mutex;
use std::collections::HashMap;

const SHARDS: usize = 64;

/// A known state; `None` means "known: no row" (never liked, nothing stored).
type Known = Option<RowState>;

pub struct MemoryStateCache {
    states: Vec<Mutex<HashMap<(UserId, ContentId), Known>>>,
    counts: Vec<Mutex<HashMap<ContentId, i64>>>,
    per_shard: usize,
}

impl MemoryStateCache {
    /// `capacity` bounds the cached states and, separately, the cached counts.
    pub fn new(capacity: usize) -> Self {
        MemoryStateCache {
            states: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            counts: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            per_shard: (capacity / SHARDS).max(16),
        }
    }

    fn state_shard(&self, user: UserId) -> &Mutex<HashMap<(UserId, ContentId), Known>> {
        &self.states[(user.get().wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 58) as usize % SHARDS]
    }

    fn count_shard(&self, content: ContentId) -> &Mutex<HashMap<ContentId, i64>> {
        &self.counts[(content.get().wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 58) as usize % SHARDS]
    }

    fn make_room<K: std::hash::Hash + Eq + Clone, V>(map: &mut HashMap<K, V>, limit: usize) {
        if map.len() >= limit {
            // Forget an arbitrary eighth: cheap, and any forgotten entry is refilled on demand.
            let drop: Vec<K> = map.keys().take(limit / 8 + 1).cloned().collect();
            for k in drop {
                map.remove(&k);
            }
        }
    }
}

#[async_trait]
impl StateCache for MemoryStateCache {
    async fn apply(
        &self,
        user: UserId,
        content: ContentId,
        action: Action,
        version: u64,
        seed: Option<Option<RowState>>,
    ) -> Result<Option<CachedApply>, CacheError> {
        let mut states = self.state_shard(user).lock();
        let previous = match (states.get(&(user, content)), seed) {
            (Some(known), _) => *known,
            (None, Some(seed)) => seed,
            (None, None) => return Ok(None),
        };
        let was_liked = previous.is_some_and(|p| p.liked);
        let liked = action.liked();
        let previous_version = previous.map_or(0, |p| p.version);
        if was_liked == liked {
            Self::make_room(&mut states, self.per_shard);
            states.insert((user, content), previous);
            let count = self.count_shard(content).lock().get(&content).copied();
            return Ok(Some(CachedApply {
                liked,
                changed: false,
                version: previous_version,
                previous,
                count,
            }));
        }
        // The order this cache saw wins over clock skew between ingest instances.
        let applied = version.max(previous_version + 1);
        Self::make_room(&mut states, self.per_shard);
        states.insert(
            (user, content),
            Some(RowState {
                liked,
                version: applied,
            }),
        );
        let count = self.count_shard(content).lock().get_mut(&content).map(|n| {
            *n += if liked { 1 } else { -1 };
            *n
        });
        Ok(Some(CachedApply {
            liked,
            changed: true,
            version: applied,
            previous,
            count,
        }))
    }

    async fn revert(
        &self,
        user: UserId,
        content: ContentId,
        applied: &CachedApply,
    ) -> Result<(), CacheError> {
        let mut states = self.state_shard(user).lock();
        let still_ours = states
            .get(&(user, content))
            .copied()
            .flatten()
            .is_some_and(|s| s.version == applied.version);
        if still_ours && applied.changed {
            states.insert((user, content), applied.previous);
            if let Some(n) = self.count_shard(content).lock().get_mut(&content) {
                *n -= if applied.liked { 1 } else { -1 };
            }
        }
        Ok(())
    }

    async fn states(
        &self,
        user: UserId,
        contents: &[ContentId],
    ) -> Result<Vec<Option<RowState>>, CacheError> {
        let states = self.state_shard(user).lock();
        // Known-absent reads as a tombstone at version 0 so callers can tell it from cold.
        Ok(contents
            .iter()
            .map(|c| {
                states.get(&(user, *c)).map(|k| {
                    k.unwrap_or(RowState {
                        liked: false,
                        version: 0,
                    })
                })
            })
            .collect())
    }

    async fn seed_states(
        &self,
        user: UserId,
        seeds: &[(ContentId, Option<RowState>)],
    ) -> Result<(), CacheError> {
        let mut states = self.state_shard(user).lock();
        for (content, state) in seeds {
            Self::make_room(&mut states, self.per_shard);
            states.entry((user, *content)).or_insert(*state);
        }
        Ok(())
    }

    async fn counts(&self, contents: &[ContentId]) -> Result<Vec<Option<i64>>, CacheError> {
        Ok(contents
            .iter()
            .map(|c| self.count_shard(*c).lock().get(c).copied())
            .collect())
    }

    async fn fill_count(&self, content: ContentId, count: i64) -> Result<i64, CacheError> {
        let mut counts = self.count_shard(content).lock();
        if !counts.contains_key(&content) {
            Self::make_room(&mut counts, self.per_shard);
        }
        Ok(*counts.entry(content).or_insert(count))
    }

    async fn ping(&self) -> Result<(), CacheError> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(u: u64, c: u64) -> (UserId, ContentId) {
        (
            UserId::new(u).expect("non-zero"),
            ContentId::new(c).expect("non-zero"),
        )
    }

    #[tokio::test]
    async fn cold_until_seeded_then_transitions_move_the_count() {
        let cache = MemoryStateCache::new(1_000);
        let (u, c) = ids(1, 2);
        assert_eq!(
            cache
                .apply(u, c, Action::Like, 10, None)
                .await
                .expect("apply"),
            None
        );
        assert_eq!(cache.fill_count(c, 5).await.expect("fill"), 5);
        assert_eq!(cache.fill_count(c, 99).await.expect("fill is NX"), 5);
        let liked = cache
            .apply(u, c, Action::Like, 10, Some(None))
            .await
            .expect("apply")
            .expect("seeded");
        assert!(liked.changed && liked.liked);
        assert_eq!(liked.count, Some(6));
        let again = cache
            .apply(u, c, Action::Like, 11, None)
            .await
            .expect("apply")
            .expect("warm");
        assert!(!again.changed);
        assert_eq!((again.version, again.count), (10, Some(6)));
        let unliked = cache
            .apply(u, c, Action::Unlike, 5, None)
            .await
            .expect("apply")
            .expect("warm");
        assert_eq!(
            (unliked.changed, unliked.version, unliked.count),
            (true, 11, Some(5)),
            "never lowers a version"
        );
    }

    #[tokio::test]
    async fn revert_undoes_only_its_own_change() {
        let cache = MemoryStateCache::new(1_000);
        let (u, c) = ids(1, 2);
        cache.fill_count(c, 0).await.expect("fill");
        let first = cache
            .apply(u, c, Action::Like, 10, Some(None))
            .await
            .expect("apply")
            .expect("seeded");
        cache.revert(u, c, &first).await.expect("revert");
        assert_eq!(
            cache.states(u, &[c]).await.expect("states"),
            vec![Some(RowState {
                liked: false,
                version: 0
            })]
        );
        assert_eq!(cache.counts(&[c]).await.expect("counts"), vec![Some(0)]);
        let like = cache
            .apply(u, c, Action::Like, 20, None)
            .await
            .expect("apply")
            .expect("warm");
        let _unlike = cache
            .apply(u, c, Action::Unlike, 30, None)
            .await
            .expect("apply")
            .expect("warm");
        cache
            .revert(u, c, &like)
            .await
            .expect("stale revert is a no-op");
        assert_eq!(
            cache.states(u, &[c]).await.expect("states")[0].map(|s| s.liked),
            Some(false)
        );
        assert_eq!(cache.counts(&[c]).await.expect("counts"), vec![Some(0)]);
    }
}
