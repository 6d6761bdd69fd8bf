//! Filling the cache from the store, and making room for what comes in: the two places where
//! something may be forgotten, so the two that must keep "forget only what the store holds".

use super::entries::{StateEntry, UserStates};
use super::shard::Shard;
use super::MemoryStateCache;
use likes_shared::cache::{CacheError, FillTicket};
use likes_shared::store::RowState;
use likes_shared::{ContentId, UserId};

impl MemoryStateCache {
    /// Room for one more state of `user`: their own settled states first, then the shard's.
    pub(super) fn room_for_state(
        &self,
        shard: &mut Shard<UserId, UserStates>,
        user: UserId,
        committed: u64,
    ) -> Result<(), CacheError> {
        let max = self.max_states_per_user;
        let entry = shard.map.get_mut(&user).ok_or(CacheError::Full)?;
        if entry.states.len() + 1 > max {
            let before = entry.states.len();
            let (fits, forgotten) = entry.forget_settled(max, 1, committed);
            let after = entry.states.len();
            shard.resized(before, after);
            shard.forgot(forgotten);
            if !fits {
                return Err(CacheError::Full);
            }
        }
        if shard.make_room(1, committed, Some(&user)) {
            Ok(())
        } else {
            Err(CacheError::Full)
        }
    }

    /// Inserts states read from the store (at `ticket`) where cold. What became of them: all
    /// in without forgetting any of the user's others, all in, or not all fitted; `Stale` when
    /// the shard forgot, meanwhile (making room for these), something the read may have missed.
    pub(super) fn seed(
        &self,
        shard: &mut Shard<UserId, UserStates>,
        user: UserId,
        states: impl Iterator<Item = (ContentId, Option<RowState>)>,
        ticket: FillTicket,
        committed: u64,
    ) -> Result<Seeded, CacheError> {
        if !shard.accepts_fill(ticket.0) {
            return Ok(Seeded::Stale);
        }
        if !shard.map.contains_key(&user) {
            if !shard.make_room(1, committed, None) {
                return Err(CacheError::Full);
            }
            shard.insert(user, UserStates::default());
        }
        let mut outcome = Seeded::AllKeptAll;
        for (content, known) in states {
            let entry = shard.touch(&user).ok_or(CacheError::Full)?;
            if entry.get(content).is_some() {
                continue;
            }
            if entry.states.len() >= self.max_states_per_user {
                outcome = Seeded::AllForgotOthers;
            }
            if self.room_for_state(shard, user, committed).is_err() {
                return Ok(Seeded::Partial);
            }
            if !shard.accepts_fill(ticket.0) {
                return Ok(Seeded::Stale);
            }
            let entry = shard.map.get_mut(&user).ok_or(CacheError::Full)?;
            entry.states.insert(content, StateEntry::stored(known));
            shard.resized(0, 1);
        }
        Ok(outcome)
    }
}

/// What a fill did; see [`MemoryStateCache::seed`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Seeded {
    AllKeptAll,
    AllForgotOthers,
    Partial,
    Stale,
}
