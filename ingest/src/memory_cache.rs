//! The embedded state cache: the Redis contract (DESIGN section 7, [`likes_shared::cache`]) in
//! process memory.
//!
//! States are kept per user, like the Redis hash `likes:{u:<user_id>}`: a user is filled from the
//! store once (their recent rows) and, when that fill held all their rows, answers "not liked"
//! for any other content without asking the store again. Each (user, content) keeps its current
//! state and its last durable one, so a failed publish reverts to what a durable event said.
//! Sharded by user (and counts by content) so concurrent requests rarely share a lock; the
//! `parking_lot` mutexes are held for a few map operations and never across an `.await`, and
//! never two at once.
//!
//! Bounded (I7) in entries, not users: a user costs one plus their states, a count one. Room is
//! made by forgetting only settled entries (see `shard.rs`); a user over their share forgets
//! their own settled states and stops claiming completeness (`fill.rs`). When nothing can be
//! forgotten the cache answers [`CacheError::Full`].

mod entries;
mod fill;
mod shard;

use async_trait::async_trait;
use entries::{version, CountEntry, StateEntry, UserStates};
use fill::Seeded;
use likes_shared::bus::{CommitProgress, DurableMark};
use likes_shared::cache::{like_delta, CacheError, CachedApply, FillTicket, StateCache};
use likes_shared::store::{RowState, StoredCount};
use likes_shared::{Action, ContentId, UserId};
use parking_lot::{Mutex, MutexGuard};
use shard::Shard;
use std::sync::Arc;

/// Most states cached for one user; a fill larger than this is never complete.
pub const MAX_STATES_PER_USER: usize = 4_096;
const MAX_SHARDS: usize = 64;
/// A shard smaller than this would make one busy user crowd out everyone sharing it.
const MIN_SHARD_CAPACITY: usize = 16;
const NO_ROW: RowState = RowState {
    liked: false,
    version: 0,
};

pub struct MemoryStateCache {
    users: Vec<Mutex<Shard<UserId, UserStates>>>,
    counts: Vec<Mutex<Shard<ContentId, CountEntry>>>,
    shard_bits: u32,
    max_states_per_user: usize,
    progress: Arc<dyn CommitProgress>,
}

impl MemoryStateCache {
    /// `capacity` bounds the cached users plus states, and separately the cached counts;
    /// `progress` says what the sink has committed, which is all that may be forgotten.
    pub fn new(capacity: usize, progress: Arc<dyn CommitProgress>) -> Self {
        let mut shards = MAX_SHARDS;
        while shards > 1 && capacity / shards < MIN_SHARD_CAPACITY {
            shards /= 2;
        }
        let per_shard = (capacity / shards).max(2);
        MemoryStateCache {
            users: (0..shards)
                .map(|_| Mutex::new(Shard::new(per_shard)))
                .collect(),
            counts: (0..shards)
                .map(|_| Mutex::new(Shard::new(per_shard)))
                .collect(),
            shard_bits: shards.trailing_zeros(),
            max_states_per_user: MAX_STATES_PER_USER.min(per_shard - 1),
            progress,
        }
    }

    /// Fibonacci hashing: the top bits of a multiplicative hash spread sequential ids.
    fn shard_of(&self, id: u64) -> usize {
        match self.shard_bits {
            0 => 0,
            bits => (id.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> (64 - bits)) as usize,
        }
    }

    fn user_shard(&self, user: UserId) -> MutexGuard<'_, Shard<UserId, UserStates>> {
        self.users[self.shard_of(user.get())].lock()
    }

    fn count_shard(&self, content: ContentId) -> MutexGuard<'_, Shard<ContentId, CountEntry>> {
        self.counts[self.shard_of(content.get())].lock()
    }

    /// Runs `f` on the cached (user, content) entry, if there is one.
    fn with_state<R>(
        &self,
        user: UserId,
        content: ContentId,
        f: impl FnOnce(&mut StateEntry) -> R,
    ) -> Option<R> {
        let mut shard = self.user_shard(user);
        let entry = shard
            .map
            .get_mut(&user)
            .and_then(|u| u.states.get_mut(&content))?;
        let result = f(entry);
        if entry.in_flight == 0 {
            shard.settled_something();
        }
        Some(result)
    }

    /// A count entry for a change to move; created unfilled if the count is not cached.
    fn reserve_count(&self, content: ContentId, committed: u64) -> Result<(), CacheError> {
        let mut shard = self.count_shard(content);
        if shard.touch(&content).is_some() {
            return Ok(());
        }
        if !shard.make_room(1, committed, None) {
            return Err(CacheError::Full);
        }
        shard.insert(content, CountEntry::default());
        Ok(())
    }

    /// Moves a count by `delta` and its in-flight changes by `in_flight`; the count after.
    fn move_count(&self, content: ContentId, delta: i64, in_flight: i32, mark: u64) -> Option<i64> {
        let mut shard = self.count_shard(content);
        if !shard.map.contains_key(&content) {
            // Forgotten between reserve and move (settled and swept): keep the change's trace so
            // no fill caches a count that lacks it. One entry over the bound, briefly.
            shard.insert(content, CountEntry::default());
        }
        let entry = shard.touch(&content)?;
        entry.in_flight = entry.in_flight.saturating_add_signed(in_flight);
        entry.mark = entry.mark.max(mark);
        if let Some(n) = entry.count.as_mut() {
            *n += delta;
        }
        let (count, idle) = (entry.count, entry.in_flight == 0);
        if in_flight < 0 && idle {
            shard.settled_something();
        }
        count
    }
}

#[async_trait]
impl StateCache for MemoryStateCache {
    fn fill_ticket(&self) -> FillTicket {
        FillTicket(self.progress.committed())
    }

    async fn apply(
        &self,
        user: UserId,
        content: ContentId,
        action: Action,
        requested: u64,
    ) -> Result<Option<CachedApply>, CacheError> {
        let liked = action.liked();
        let committed = self.progress.committed();
        self.reserve_count(content, committed)?;
        let applied = {
            let mut shard = self.user_shard(user);
            let Some(entry) = shard.touch(&user) else {
                return Ok(None);
            };
            let Some(found) = entry.get(content) else {
                return Ok(None);
            };
            let found_version = version(found.current);
            if found.current.is_some_and(|s| s.liked) == liked {
                let pending = found.pending();
                if pending {
                    // Published again by the caller: the entry waits for that publish too.
                    if let Some(entry) = entry.states.get_mut(&content) {
                        entry.in_flight += 1;
                    }
                }
                (found_version, false, pending)
            } else {
                if !entry.states.contains_key(&content) {
                    self.room_for_state(&mut shard, user, committed)?;
                }
                // The order this cache saw wins over clock skew between ingest instances.
                let applied = requested.max(found_version + 1);
                let Some(entry) = shard.map.get_mut(&user) else {
                    return Ok(None);
                };
                let grew = !entry.states.contains_key(&content);
                entry.states.insert(
                    content,
                    StateEntry {
                        current: Some(RowState {
                            liked,
                            version: applied,
                        }),
                        in_flight: found.in_flight + 1,
                        ..found
                    },
                );
                shard.resized(0, usize::from(grew));
                (applied, true, false)
            }
        };
        let (version, changed, pending) = applied;
        let delta = if changed { like_delta(liked) } else { 0 };
        let published = i32::from(changed || pending);
        let count = self.move_count(content, delta, published, 0);
        Ok(Some(CachedApply {
            liked,
            changed,
            version,
            pending,
            count,
            fill_epoch: 0,
        }))
    }

    async fn confirm(
        &self,
        user: UserId,
        content: ContentId,
        applied: &CachedApply,
        mark: DurableMark,
    ) -> Result<(), CacheError> {
        let state = Some(RowState {
            liked: applied.liked,
            version: applied.version,
        });
        // Entries with a publish in flight are never forgotten: a missing one had none.
        let moved = self
            .with_state(user, content, |entry| {
                entry.in_flight = entry.in_flight.saturating_sub(1);
                entry.mark = entry.mark.max(mark);
                if version(entry.durable) < applied.version {
                    entry.durable = state;
                }
                // A revert took this state away while another request made it durable.
                let back = version(entry.current) < applied.version;
                let moved = back && entry.current.is_some_and(|s| s.liked) != applied.liked;
                if back {
                    entry.current = state;
                }
                moved
            })
            .unwrap_or(false);
        let delta = if moved { like_delta(applied.liked) } else { 0 };
        self.move_count(content, delta, -1, mark);
        Ok(())
    }

    async fn revert(
        &self,
        user: UserId,
        content: ContentId,
        applied: &CachedApply,
    ) -> Result<(), CacheError> {
        let reverted = self
            .with_state(user, content, |entry| {
                entry.in_flight = entry.in_flight.saturating_sub(1);
                let still_pending = applied.changed
                    && version(entry.current) == applied.version
                    && version(entry.durable) != applied.version;
                if !still_pending {
                    return false;
                }
                let moved = entry.durable.is_some_and(|s| s.liked) != applied.liked;
                entry.current = entry.durable;
                moved
            })
            .unwrap_or(false);
        let delta = if reverted {
            -like_delta(applied.liked)
        } else {
            0
        };
        self.move_count(content, delta, -1, 0);
        Ok(())
    }

    async fn states(
        &self,
        user: UserId,
        contents: &[ContentId],
    ) -> Result<Vec<Option<RowState>>, CacheError> {
        let mut shard = self.user_shard(user);
        let Some(entry) = shard.touch(&user) else {
            return Ok(vec![None; contents.len()]);
        };
        Ok(contents
            .iter()
            .map(|c| entry.get(*c).map(|e| e.durable.unwrap_or(NO_ROW)))
            .collect())
    }

    async fn is_filled(&self, user: UserId) -> Result<bool, CacheError> {
        Ok(self.user_shard(user).map.contains_key(&user))
    }

    async fn seed_user(
        &self,
        user: UserId,
        rows: &[(ContentId, RowState)],
        complete: bool,
        ticket: FillTicket,
    ) -> Result<bool, CacheError> {
        let committed = self.progress.committed();
        let mut shard = self.user_shard(user);
        let seeded = self.seed(
            &mut shard,
            user,
            rows.iter().map(|(c, s)| (*c, Some(*s))),
            ticket,
            committed,
        )?;
        if seeded == Seeded::Stale {
            return Ok(false);
        }
        let all_in = seeded == Seeded::AllKeptAll;
        if let Some(entry) = shard.map.get_mut(&user) {
            // Contents cached before this fill keep their (newer) states; completeness holds
            // only if every row found room without forgetting any other.
            entry.complete |= complete && all_in;
        }
        Ok(true)
    }

    async fn seed_states(
        &self,
        user: UserId,
        states: &[(ContentId, Option<RowState>)],
        ticket: FillTicket,
    ) -> Result<bool, CacheError> {
        let committed = self.progress.committed();
        let mut shard = self.user_shard(user);
        match self.seed(&mut shard, user, states.iter().copied(), ticket, committed)? {
            Seeded::Stale => Ok(false),
            Seeded::Partial => Err(CacheError::Full),
            Seeded::AllKeptAll | Seeded::AllForgotOthers => Ok(true),
        }
    }

    async fn counts(&self, contents: &[ContentId]) -> Result<Vec<Option<i64>>, CacheError> {
        Ok(contents
            .iter()
            .map(|c| {
                let mut shard = self.count_shard(*c);
                shard.touch(c)?.count
            })
            .collect())
    }

    /// Fill epochs are the Redis cache's: this one knows exactly what the sink committed, and
    /// fills from the stored count alone.
    async fn fill_count(
        &self,
        content: ContentId,
        stored: StoredCount,
        ticket: FillTicket,
    ) -> Result<Option<i64>, CacheError> {
        let count = stored.count;
        let committed = self.progress.committed();
        let mut shard = self.count_shard(content);
        let fresh = shard.accepts_fill(ticket.0);
        if let Some(entry) = shard.touch(&content) {
            if entry.count.is_none() && fresh && entry.in_flight == 0 && entry.mark <= ticket.0 {
                entry.count = Some(count);
            }
            return Ok(entry.count);
        }
        if !fresh {
            return Ok(None);
        }
        if shard.make_room(1, committed, None) {
            shard.insert(
                content,
                CountEntry {
                    count: Some(count),
                    ..CountEntry::default()
                },
            );
        }
        // Cached or not, exact: nothing about an uncached content is in flight.
        Ok(Some(count))
    }

    async fn ping(&self) -> Result<(), CacheError> {
        Ok(())
    }
}

#[cfg(test)]
mod tests;
