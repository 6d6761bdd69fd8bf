//! The k heaviest keys seen so far: a min-heap on count plus a small open-addressed index.
//!
//! The sketch offers every arrival here, so membership must be O(1) and cheap: the index maps a
//! key to its heap position in a table of 2k..4k `u16`s, and each heap entry remembers its index
//! slot so sifting can keep the index current without re-hashing. Deletion is by backward shift
//! (no tombstones), so a long run of evictions never degrades lookups.

/// Bytes the heap and its index take for a given `k` (the memory formula's top-k term).
pub(crate) fn memory_bytes(k: usize) -> usize {
    k * std::mem::size_of::<Entry>() + index_len(k) * std::mem::size_of::<u16>()
}

/// Largest supported `k`: heap positions are stored as `u16` in the index, offset by one.
pub(crate) const MAX_K: usize = (u16::MAX as usize + 1) / 4;

fn index_len(k: usize) -> usize {
    // At most half full keeps linear probes short.
    (2 * k.max(1)).next_power_of_two()
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    key: u64,
    count: u32,
    /// Where this entry's position is stored in `index`.
    slot: u16,
    /// The index slot its probe starts at, kept so deletion need not re-hash (fits the padding).
    home: u16,
}

#[derive(Debug, Clone)]
pub(crate) struct TopKHeap {
    k: usize,
    /// Min-heap on `count`.
    heap: Vec<Entry>,
    /// 0 = empty, otherwise heap position + 1.
    index: Box<[u16]>,
    mask: usize,
}

impl TopKHeap {
    pub(crate) fn new(k: usize) -> Self {
        let k = k.clamp(1, MAX_K);
        let len = index_len(k);
        Self {
            k,
            heap: Vec::with_capacity(k),
            index: vec![0; len].into_boxed_slice(),
            mask: len - 1,
        }
    }

    pub(crate) fn k(&self) -> usize {
        self.k
    }

    /// One arrival of `key`, whose sketch estimate is now `estimate`. `hash` is any
    /// well-mixed hash of `key` (the sketch passes the one it already computed).
    ///
    /// A key already held counts exactly from then on (`+1` per arrival), never below the
    /// sketch: the sketch only under-counts a fingerprint's owner, so both are lower bounds of
    /// the true count and the larger is the better one. A key not held enters if there is room
    /// or if it now outweighs the lightest held key. An arrival the sketch estimates below the
    /// lightest held key is skipped without a lookup: that spares most mice the probe (about a
    /// fifth of the sketch's time on Zipf 1.0), and a held key the sketch has lost is on its
    /// way out, so its missed `+1`s only leave it a lower bound.
    #[inline]
    pub(crate) fn offer(&mut self, key: u64, hash: u64, estimate: u32) {
        // A key the sketch puts below the lightest held one is not held (held keys own their
        // buckets) or about to be evicted anyway: skip the lookup for it, which is most mice.
        if self.heap.len() == self.k && estimate < self.heap[0].count {
            return;
        }
        let home = (hash >> 48) as usize & self.mask;
        if let Some(position) = self.find(key, home) {
            let entry = &mut self.heap[position];
            entry.count = entry.count.saturating_add(1).max(estimate);
            self.sift_down(position);
        } else if estimate > 0 && self.heap.len() < self.k {
            let position = self.heap.len();
            self.heap.push(Entry {
                key,
                count: estimate,
                slot: 0,
                home: home as u16,
            });
            self.index_insert(position);
            self.sift_up(position);
        } else if self
            .heap
            .first()
            .is_some_and(|lightest| estimate > lightest.count)
        {
            self.index_remove(self.heap[0].slot as usize);
            self.heap[0] = Entry {
                key,
                count: estimate,
                slot: 0,
                home: home as u16,
            };
            self.index_insert(0);
            self.sift_down(0);
        }
    }

    /// The count of `key` if it is held (`hash` as for [`Self::offer`]).
    #[inline]
    pub(crate) fn count_of(&self, key: u64, hash: u64) -> Option<u32> {
        let home = (hash >> 48) as usize & self.mask;
        self.find(key, home)
            .map(|position| self.heap[position].count)
    }

    /// Halves every count; floor halving keeps the heap order, so nothing moves.
    pub(crate) fn halve(&mut self) {
        for entry in &mut self.heap {
            entry.count >>= 1;
        }
    }

    /// Held keys with a non-zero count, heaviest first (ties by smaller key).
    pub(crate) fn sorted(&self) -> Vec<(u64, u64)> {
        let mut top: Vec<(u64, u64)> = self
            .heap
            .iter()
            .filter(|e| e.count > 0)
            .map(|e| (e.key, e.count as u64))
            .collect();
        top.sort_unstable_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        top
    }

    #[inline]
    fn find(&self, key: u64, home: usize) -> Option<usize> {
        let mut slot = home;
        loop {
            let stored = self.index[slot];
            if stored == 0 {
                return None;
            }
            let position = stored as usize - 1;
            if self.heap[position].key == key {
                return Some(position);
            }
            slot = (slot + 1) & self.mask;
        }
    }

    fn index_insert(&mut self, position: usize) {
        let mut slot = self.heap[position].home as usize;
        while self.index[slot] != 0 {
            slot = (slot + 1) & self.mask;
        }
        self.index[slot] = (position + 1) as u16;
        self.heap[position].slot = slot as u16;
    }

    /// Empties `hole` and shifts later entries of its probe run back so none is left unreachable.
    fn index_remove(&mut self, mut hole: usize) {
        self.index[hole] = 0;
        let mut next = hole;
        loop {
            next = (next + 1) & self.mask;
            let stored = self.index[next];
            if stored == 0 {
                return;
            }
            let position = stored as usize - 1;
            let ideal = self.heap[position].home as usize;
            // The entry may fill the hole if the hole lies on its probe path (ideal ..= next).
            if next.wrapping_sub(ideal) & self.mask >= next.wrapping_sub(hole) & self.mask {
                self.index[hole] = stored;
                self.heap[position].slot = hole as u16;
                self.index[next] = 0;
                hole = next;
            }
        }
    }

    fn swap(&mut self, a: usize, b: usize) {
        self.heap.swap(a, b);
        self.index[self.heap[a].slot as usize] = (a + 1) as u16;
        self.index[self.heap[b].slot as usize] = (b + 1) as u16;
    }

    fn sift_down(&mut self, mut position: usize) {
        let len = self.heap.len();
        loop {
            let left = 2 * position + 1;
            if left >= len {
                return;
            }
            let right = left + 1;
            let child = if right < len && self.heap[right].count < self.heap[left].count {
                right
            } else {
                left
            };
            if self.heap[child].count >= self.heap[position].count {
                return;
            }
            self.swap(position, child);
            position = child;
        }
    }

    fn sift_up(&mut self, mut position: usize) {
        while position > 0 {
            let parent = (position - 1) / 2;
            if self.heap[parent].count <= self.heap[position].count {
                return;
            }
            self.swap(position, parent);
            position = parent;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fast_hash::mix64;

    fn offer(top: &mut TopKHeap, key: u64, estimate: u32) {
        top.offer(key, mix64(key, 0), estimate);
    }

    fn assert_consistent(top: &TopKHeap) {
        for (position, entry) in top.heap.iter().enumerate() {
            assert_eq!(
                top.find(entry.key, entry.home as usize),
                Some(position),
                "index lost {}",
                entry.key
            );
            assert_eq!(top.index[entry.slot as usize] as usize, position + 1);
            if position > 0 {
                assert!(
                    top.heap[(position - 1) / 2].count <= entry.count,
                    "heap order"
                );
            }
        }
        let used = top.index.iter().filter(|&&s| s != 0).count();
        assert_eq!(used, top.heap.len());
    }

    #[test]
    fn keeps_the_k_heaviest_and_counts_held_keys_exactly() {
        let mut top = TopKHeap::new(2);
        offer(&mut top, 1, 5);
        offer(&mut top, 2, 3);
        offer(&mut top, 3, 4); // evicts 2 (3 < 4)
        offer(&mut top, 1, 4); // held: +1, more than the sketch's stale 4
        offer(&mut top, 4, 4); // does not beat the lightest (3 at 4)
        assert_eq!(top.sorted(), vec![(1, 6), (3, 4)]);
        offer(&mut top, 1, 3); // the sketch ranks it below the lightest: skipped
        assert_eq!(top.sorted(), vec![(1, 6), (3, 4)]);
        offer(&mut top, 3, 4); // the lightest itself still counts
        assert_eq!(top.sorted(), vec![(1, 6), (3, 5)]);
        assert_consistent(&top);
    }

    #[test]
    fn index_survives_heavy_churn() {
        // Many keys crowding three home slots of a tiny index, evicting each other: a broken
        // backward shift leaves held keys unfindable, which `assert_consistent` catches.
        let mut top = TopKHeap::new(8);
        for round in 1..2_000u32 {
            let key = (round as u64 * 7919) % 61;
            top.offer(key, (key % 3) << 48, round / 3 + (key as u32 % 5));
            assert_consistent(&top);
        }
        assert_eq!(top.heap.len(), 8);
    }

    #[test]
    fn halving_keeps_order_and_hides_zeros() {
        let mut top = TopKHeap::new(3);
        offer(&mut top, 1, 1);
        offer(&mut top, 2, 4);
        offer(&mut top, 3, 9);
        top.halve();
        assert_eq!(top.sorted(), vec![(3, 4), (2, 2)]);
        assert_consistent(&top);
    }

    #[test]
    fn memory_formula_matches_the_layout() {
        assert_eq!(std::mem::size_of::<Entry>(), 16);
        assert_eq!(memory_bytes(100), 100 * 16 + 256 * 2);
    }
}
