//! The embedded state cache: the Redis contract (DESIGN section 7) in process memory.
//!
//! States are kept per user, like the Redis hash `likes:{u:<user_id>}`: a user is filled from the
//! store once (their recent rows) and, when that fill held all their rows, answers "not liked"
//! for any other content without asking the store again. Sharded by user (and counts by content)
//! so concurrent requests rarely share a lock; the `parking_lot` mutexes are held for a few map
//! operations and never across an `.await`.
//!
//! Bounded (I7): a shard over its share of the capacity forgets users, and a user over their
//! share of entries forgets entries and stops claiming completeness. Both are safe: a forgotten
//! state is cold and is filled from the store again before it answers.

use async_trait::async_trait;
use likes_shared::cache::{CacheError, CachedApply, StateCache};
use likes_shared::store::RowState;
use likes_shared::{Action, ContentId, UserId};
use parking_lot::Mutex;
use std::collections::HashMap;

const SHARDS: usize = 64;
/// Most states cached for one user; a fill larger than this is never complete.
pub const MAX_STATES_PER_USER: usize = 4_096;

/// A known state; `None` means "known: no row" (never liked, nothing stored).
type Known = Option<RowState>;

#[derive(Default)]
struct UserStates {
    /// Every content missing from `states` has no row.
    complete: bool,
    states: HashMap<ContentId, Known>,
}

impl UserStates {
    /// `None` when cold: not cached and not covered by a complete fill.
    fn get(&self, content: ContentId) -> Option<Known> {
        match self.states.get(&content) {
            Some(known) => Some(*known),
            None if self.complete => Some(None),
            None => None,
        }
    }

    fn set(&mut self, content: ContentId, known: Known) {
        if self.states.len() >= MAX_STATES_PER_USER && !self.states.contains_key(&content) {
            forget_some(&mut self.states, MAX_STATES_PER_USER);
            self.complete = false;
        }
        self.states.insert(content, known);
    }
}

/// Forgets an arbitrary eighth: cheap, and anything forgotten is refilled on demand.
fn forget_some<K: std::hash::Hash + Eq + Clone, V>(map: &mut HashMap<K, V>, limit: usize) {
    let drop: Vec<K> = map.keys().take(limit / 8 + 1).cloned().collect();
    for k in drop {
        map.remove(&k);
    }
}

pub struct MemoryStateCache {
    users: Vec<Mutex<HashMap<UserId, UserStates>>>,
    counts: Vec<Mutex<HashMap<ContentId, i64>>>,
    per_shard: usize,
}

fn shard_of(id: u64) -> usize {
    (id.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 58) as usize % SHARDS
}

impl MemoryStateCache {
    /// `capacity` bounds the cached users, and separately the cached counts.
    pub fn new(capacity: usize) -> Self {
        MemoryStateCache {
            users: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            counts: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            per_shard: (capacity / SHARDS).max(16),
        }
    }

    /// Runs `f` on the user's entry, creating it (and making room for it) if needed.
    fn with_user<R>(&self, user: UserId, f: impl FnOnce(&mut UserStates) -> R) -> R {
        let mut users = self.users[shard_of(user.get())].lock();
        if !users.contains_key(&user) && users.len() >= self.per_shard {
            forget_some(&mut users, self.per_shard);
        }
        f(users.entry(user).or_default())
    }

    fn move_count(&self, content: ContentId, delta: i64) -> Option<i64> {
        self.counts[shard_of(content.get())]
            .lock()
            .get_mut(&content)
            .map(|n| {
                *n += delta;
                *n
            })
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
        let liked = action.liked();
        let applied = self.with_user(user, |entry| {
            let previous = entry.get(content).or(seed)?;
            let previous_version = previous.map_or(0, |p| p.version);
            if previous.is_some_and(|p| p.liked) == liked {
                entry.set(content, previous);
                return Some((previous, previous_version, false));
            }
            // The order this cache saw wins over clock skew between ingest instances.
            let applied = version.max(previous_version + 1);
            entry.set(
                content,
                Some(RowState {
                    liked,
                    version: applied,
                }),
            );
            Some((previous, applied, true))
        });
        let Some((previous, version, changed)) = applied else {
            return Ok(None);
        };
        let count = if changed {
            self.move_count(content, if liked { 1 } else { -1 })
        } else {
            self.counts[shard_of(content.get())]
                .lock()
                .get(&content)
                .copied()
        };
        Ok(Some(CachedApply {
            liked,
            changed,
            version,
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
        if !applied.changed {
            return Ok(());
        }
        let reverted = self.with_user(user, |entry| {
            let still_ours = entry
                .get(content)
                .flatten()
                .is_some_and(|s| s.version == applied.version);
            if still_ours {
                entry.set(content, applied.previous);
            }
            still_ours
        });
        if reverted {
            self.move_count(content, if applied.liked { -1 } else { 1 });
        }
        Ok(())
    }

    async fn states(
        &self,
        user: UserId,
        contents: &[ContentId],
    ) -> Result<Vec<Option<RowState>>, CacheError> {
        let users = self.users[shard_of(user.get())].lock();
        let Some(entry) = users.get(&user) else {
            return Ok(vec![None; contents.len()]);
        };
        // Known-absent reads as a tombstone at version 0 so callers can tell it from cold.
        Ok(contents
            .iter()
            .map(|c| {
                entry.get(*c).map(|k| {
                    k.unwrap_or(RowState {
                        liked: false,
                        version: 0,
                    })
                })
            })
            .collect())
    }

    async fn seed_user(
        &self,
        user: UserId,
        rows: &[(ContentId, RowState)],
        complete: bool,
    ) -> Result<(), CacheError> {
        self.with_user(user, |entry| {
            for (content, state) in rows {
                if !entry.states.contains_key(content) {
                    entry.set(*content, Some(*state));
                }
            }
            // Contents cached before this fill keep their (newer) states; completeness holds
            // only if nothing was forgotten on the way in.
            entry.complete |= complete && rows.len() <= MAX_STATES_PER_USER;
        });
        Ok(())
    }

    async fn seed_states(
        &self,
        user: UserId,
        seeds: &[(ContentId, Option<RowState>)],
    ) -> Result<(), CacheError> {
        self.with_user(user, |entry| {
            for (content, state) in seeds {
                if entry.get(*content).is_none() {
                    entry.set(*content, *state);
                }
            }
        });
        Ok(())
    }

    async fn counts(&self, contents: &[ContentId]) -> Result<Vec<Option<i64>>, CacheError> {
        Ok(contents
            .iter()
            .map(|c| self.counts[shard_of(c.get())].lock().get(c).copied())
            .collect())
    }

    async fn fill_count(&self, content: ContentId, count: i64) -> Result<i64, CacheError> {
        let mut counts = self.counts[shard_of(content.get())].lock();
        if !counts.contains_key(&content) && counts.len() >= self.per_shard {
            forget_some(&mut counts, self.per_shard);
        }
        Ok(*counts.entry(content).or_insert(count))
    }

    async fn ping(&self) -> Result<(), CacheError> {
        Ok(())
    }
}

#[cfg(test)]
mod tests;
