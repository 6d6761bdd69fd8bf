//! What the embedded cache keeps: per (user, content) the current and the last durable state,
//! per user whether their fill was complete, per content the count and what is in flight.

use super::shard::Evictable;
use likes_shared::store::RowState;
use likes_shared::ContentId;
use std::collections::HashMap;

/// A known state; `None` means "known: no row" (never liked, nothing stored).
pub(super) type Known = Option<RowState>;

pub(super) fn version(known: Known) -> u64 {
    known.map_or(0, |s| s.version)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct StateEntry {
    /// What the last action set; answers the next action.
    pub current: Known,
    /// What the last durable event said; what reads and reverts use.
    pub durable: Known,
    /// The newest durable mark behind the entry (0: it came from the store).
    pub mark: u64,
    /// Publishes of this entry's states not resolved yet (a change, or a repeat of a pending
    /// state); the entry stays until each is confirmed or reverted.
    pub in_flight: u32,
}

impl StateEntry {
    pub fn stored(known: Known) -> Self {
        StateEntry {
            current: known,
            durable: known,
            mark: 0,
            in_flight: 0,
        }
    }

    pub fn pending(&self) -> bool {
        version(self.current) != version(self.durable)
    }

    fn settled_mark(&self, committed: u64) -> Option<u64> {
        (self.in_flight == 0 && !self.pending() && self.mark <= committed).then_some(self.mark)
    }
}

#[derive(Debug, Default)]
pub(super) struct UserStates {
    /// Every content missing from `states` has no row.
    pub complete: bool,
    pub states: HashMap<ContentId, StateEntry>,
    pub(super) last_used: u64,
}

impl UserStates {
    /// `None` when cold: not cached and not covered by a complete fill.
    pub fn get(&self, content: ContentId) -> Option<StateEntry> {
        match self.states.get(&content) {
            Some(entry) => Some(*entry),
            None if self.complete => Some(StateEntry::stored(None)),
            None => None,
        }
    }

    /// Forgets settled states until `room` more fit under `max`; returns whether they fit now
    /// and the highest mark forgotten. The user is no longer complete after it.
    pub fn forget_settled(&mut self, max: usize, room: usize, committed: u64) -> (bool, u64) {
        let mut forgotten = 0;
        let mut len = self.states.len();
        if len + room > max {
            self.complete = false;
        }
        self.states.retain(|_, entry| {
            if len + room <= max {
                return true;
            }
            match entry.settled_mark(committed) {
                Some(mark) => {
                    forgotten = forgotten.max(mark);
                    len -= 1;
                    false
                }
                None => true,
            }
        });
        (len + room <= max, forgotten)
    }
}

impl Evictable for UserStates {
    fn size(&self) -> usize {
        1 + self.states.len()
    }

    fn settled_mark(&self, committed: u64) -> Option<u64> {
        self.states
            .values()
            .try_fold(0, |max, e| e.settled_mark(committed).map(|m| m.max(max)))
    }

    fn last_used(&self) -> u64 {
        self.last_used
    }

    fn set_last_used(&mut self, tick: u64) {
        self.last_used = tick;
    }
}

#[derive(Debug, Default)]
pub(super) struct CountEntry {
    /// `None` until filled from the store: created by a change on an uncached count, it cannot
    /// be filled before that change is committed (the store read would lack it).
    pub count: Option<i64>,
    /// Changes applied whose publish has not resolved yet.
    pub in_flight: u32,
    /// The newest durable mark of a change to this count.
    pub mark: u64,
    pub(super) last_used: u64,
}

impl Evictable for CountEntry {
    fn size(&self) -> usize {
        1
    }

    fn settled_mark(&self, committed: u64) -> Option<u64> {
        (self.in_flight == 0 && self.mark <= committed).then_some(self.mark)
    }

    fn last_used(&self) -> u64 {
        self.last_used
    }

    fn set_last_used(&mut self, tick: u64) {
        self.last_used = tick;
    }
}
