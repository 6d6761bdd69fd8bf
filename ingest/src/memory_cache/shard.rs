//! One lock's worth of the cache: a map with a size bound that forgets only what the store holds.
//!
//! Eviction forgets the least recently used *settled* values (nothing pending, their newest event
//! committed by the sink), an eighth of the shard at once so the O(n) sweep is paid once per n/8
//! inserts. The highest mark ever forgotten is kept, so a fill read from the store before that
//! mark was committed is refused instead of resurrecting an older state. When too little is
//! settled and the sink has not moved since the last sweep, the next one is skipped: the shard is
//! full (503), not spinning.

use std::collections::HashMap;
use std::hash::Hash;

pub(super) trait Evictable {
    /// Units of the bound this value takes.
    fn size(&self) -> usize;
    /// The mark of the newest event behind the value, if the store holds all of it.
    fn settled_mark(&self, committed: u64) -> Option<u64>;
    fn last_used(&self) -> u64;
    fn set_last_used(&mut self, tick: u64);
}

pub(super) struct Shard<K, V> {
    pub map: HashMap<K, V>,
    used: usize,
    capacity: usize,
    forgotten: u64,
    fruitless_at: Option<u64>,
    /// Counts uses: the order values were last touched in.
    clock: u64,
}

impl<K: Hash + Eq + Clone, V: Evictable> Shard<K, V> {
    pub fn new(capacity: usize) -> Self {
        Shard {
            map: HashMap::new(),
            used: 0,
            capacity: capacity.max(1),
            forgotten: 0,
            fruitless_at: None,
            clock: 0,
        }
    }

    /// Whether a store read taken at `ticket` may fill this shard: it saw everything forgotten.
    pub fn accepts_fill(&self, ticket: u64) -> bool {
        self.forgotten <= ticket
    }

    /// Accounts for a value that grew or shrank in place.
    pub fn resized(&mut self, before: usize, after: usize) {
        self.used = (self.used + after).saturating_sub(before);
    }

    /// Something may have become settled without the sink moving (a revert, a publish that
    /// resolved): the next sweep is worth its cost again.
    pub fn settled_something(&mut self) {
        self.fruitless_at = None;
    }

    /// Records that something with `mark` was forgotten outside a sweep.
    pub fn forgot(&mut self, mark: u64) {
        self.forgotten = self.forgotten.max(mark);
    }

    /// The value, marked as just used.
    pub fn touch(&mut self, key: &K) -> Option<&mut V> {
        self.clock += 1;
        let tick = self.clock;
        let value = self.map.get_mut(key)?;
        value.set_last_used(tick);
        Some(value)
    }

    pub fn insert(&mut self, key: K, mut value: V) {
        self.clock += 1;
        value.set_last_used(self.clock);
        self.used += value.size();
        if let Some(old) = self.map.insert(key, value) {
            self.used -= old.size();
        }
    }

    /// Makes room for `need` more units, forgetting settled values (never `keep`), least
    /// recently used first; false when that is not possible now.
    pub fn make_room(&mut self, need: usize, committed: u64, keep: Option<&K>) -> bool {
        if self.used + need <= self.capacity {
            return true;
        }
        if self.fruitless_at == Some(committed) {
            return false;
        }
        let target = self.capacity.saturating_sub(need.max(self.capacity / 8));
        let mut candidates: Vec<(u64, K, usize, u64)> = self
            .map
            .iter()
            .filter(|(k, _)| keep != Some(*k))
            .filter_map(|(k, v)| {
                let mark = v.settled_mark(committed)?;
                Some((v.last_used(), k.clone(), v.size(), mark))
            })
            .collect();
        let settled: usize = candidates.iter().map(|c| c.2).sum();
        if self.used.saturating_sub(settled) + need > self.capacity {
            self.fruitless_at = Some(committed);
            return false;
        }
        candidates.sort_unstable_by_key(|c| c.0);
        for (_, key, size, mark) in candidates {
            if self.used <= target {
                break;
            }
            self.map.remove(&key);
            self.used -= size;
            self.forgotten = self.forgotten.max(mark);
        }
        let room = self.used + need <= self.capacity;
        self.fruitless_at = (!room).then_some(committed);
        room
    }
}
