//! HeavyKeeper: the top-k heaviest keys of a stream in a fixed few kilobytes.
//!
//! Yang et al., "HeavyKeeper: An Accurate Algorithm for Finding Top-k Elephant Flows",
//! USENIX ATC 2018. Exact counting of every content would need memory proportional to the
//! number of contents liked (I7 forbids that); HeavyKeeper keeps `rows` arrays of `width`
//! buckets, each holding one key's fingerprint and count. An arrival whose fingerprint owns a
//! bucket increments it; one that meets another key's bucket decays that count by one with
//! probability `b^-count` ("exponential weakening"), and takes the bucket over once it reaches
//! zero. Mice hardly ever dislodge an elephant (at count 100 the odds are ~1 in 2000 per
//! arrival with b = 1.08), while a bucket held by a mouse is quickly won by an elephant, so
//! elephants' counts stay close to exact and never over-count (barring a 32-bit fingerprint
//! collision). A min-heap of the k heaviest keys, updated on every arrival, answers `top()`;
//! once a key is held there it is counted exactly while the sketch keeps it among the
//! heaviest (see `TopKHeap::offer`).
//!
//! # Memory
//! `rows * width * 8` (bucket: u32 fingerprint + u32 count)
//! `+ k * 16 + next_pow2(2k) * 2` (heap entries and their index)
//! `+ 4 * ceil(32 ln 2 / ln b)` (decay thresholds; 1156 bytes for b = 1.08)
//! `+ rows * 8` (row seeds) `+ size_of::<HeavyKeeper>()` (the fields themselves, ~100 bytes). [`HeavyKeeperConfig::with_memory`] picks the widest two rows that
//! fit a byte budget; [`HeavyKeeper::memory_bytes`] reports the exact figure.
//!
//! # Hot path
//! One `fmix64` per key, then one folded multiply per row, gives that row's bucket (high 32
//! bits, by multiply-shift) and the key's fingerprint in that row (low 32 bits); per-row
//! fingerprints make a collision in one row independent of the others. The decay decision compares a xorshift draw against a precomputed
//! `u32` threshold `⌊b^-c · 2^32⌋`: no floats, no division, no allocation per insert.
//!
//! # Recency
//! Trending means *recent* likes. [`HeavyKeeper::halve`] halves every count (buckets and heap
//! alike, which preserves both orders); calling it once per period makes a like from n periods
//! ago weigh 2^-n, an exponentially decaying count. `TrendingTopK` does that on its tick.

use crate::fast_hash::{fast_range, folded_multiply, mix64, GOLDEN};

mod top_k_heap;

use top_k_heap::TopKHeap;

/// Sizing and tuning of a [`HeavyKeeper`]. Config is separate from the running sketch.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HeavyKeeperConfig {
    /// Number of bucket arrays (`d` in the paper). 2 is the paper's and our sweet spot.
    pub rows: usize,
    /// Buckets per array (`w`).
    pub width: usize,
    /// How many heavy keys to report, 1 ..= 16384 (clamped).
    pub k: usize,
    /// Decay base `b` (> 1). Larger protects established counts more; 1.08 is the paper's.
    pub decay_base: f64,
    /// Seeds the hashes and the decay draws; fixed seeds make runs reproducible.
    pub seed: u64,
}

impl HeavyKeeperConfig {
    pub const DEFAULT_DECAY_BASE: f64 = 1.08;

    /// Two rows as wide as fit `budget_bytes` together with a top-`k` heap, per the memory
    /// formula in the module docs. At least one bucket per row however small the budget.
    pub fn with_memory(budget_bytes: usize, k: usize) -> Self {
        let rows = 2;
        let k = k.clamp(1, top_k_heap::MAX_K);
        let fixed = top_k_heap::memory_bytes(k)
            + decay_table_len(Self::DEFAULT_DECAY_BASE) * 4
            + rows * 8
            + std::mem::size_of::<HeavyKeeper>();
        let width = (budget_bytes.saturating_sub(fixed) / (rows * BUCKET_BYTES)).max(1);
        Self {
            rows,
            width,
            k,
            decay_base: Self::DEFAULT_DECAY_BASE,
            seed: 0x5EED_0F11_CE55_0B1E,
        }
    }

    pub fn build(self) -> HeavyKeeper {
        HeavyKeeper::new(self)
    }
}

const BUCKET_BYTES: usize = std::mem::size_of::<Bucket>();

#[derive(Debug, Clone, Copy, Default)]
struct Bucket {
    fingerprint: u32,
    /// 0 = empty (the fingerprint is then meaningless).
    count: u32,
}

/// The sketch plus its top-k heap. See the module docs.
#[derive(Debug, Clone)]
pub struct HeavyKeeper {
    /// Row-major, `rows * width`.
    buckets: Box<[Bucket]>,
    width: u32,
    seed: u64,
    row_seeds: Box<[u64]>,
    /// `decay_below[c]`: decay a count of `c` when a uniform u32 draw is below this.
    decay_below: Box<[u32]>,
    rng: u64,
    top: TopKHeap,
}

/// Counts at which `b^-c · 2^32` still rounds to at least 1; beyond them decay never happens.
fn decay_table_len(base: f64) -> usize {
    let base = sane_base(base);
    (32.0 * std::f64::consts::LN_2 / base.ln()).ceil() as usize + 1
}

fn sane_base(base: f64) -> f64 {
    if base.is_finite() && base > 1.0001 {
        base
    } else {
        HeavyKeeperConfig::DEFAULT_DECAY_BASE
    }
}

impl HeavyKeeper {
    /// Builds the sketch. Zero rows or width are raised to 1; a decay base ≤ 1 (or NaN) falls
    /// back to 1.08, since it would make decay certain and counts meaningless.
    pub fn new(config: HeavyKeeperConfig) -> Self {
        let rows = config.rows.max(1);
        let width = config.width.clamp(1, u32::MAX as usize);
        let base = sane_base(config.decay_base);
        let decay_below = (0..decay_table_len(base))
            .map(|count| {
                let threshold = base.powi(-(count as i32)) * 4_294_967_296.0;
                // Index 0 is never consulted (an empty bucket is taken, not decayed).
                threshold.min(u32::MAX as f64) as u32
            })
            .collect();
        let row_seeds = (0..rows as u64)
            .map(|row| mix64(config.seed, row.wrapping_add(0x9E37_79B9)))
            .collect();
        Self {
            buckets: vec![Bucket::default(); rows * width].into_boxed_slice(),
            width: width as u32,
            seed: config.seed,
            row_seeds,
            decay_below,
            // xorshift must not start at zero.
            rng: mix64(config.seed, 0xD1CE) | 1,
            top: TopKHeap::new(config.k),
        }
    }

    /// Bytes held, per the formula in the module docs.
    pub fn memory_bytes(&self) -> usize {
        self.buckets.len() * BUCKET_BYTES
            + top_k_heap::memory_bytes(self.top.k())
            + self.decay_below.len() * 4
            + self.row_seeds.len() * 8
            + std::mem::size_of::<Self>()
    }

    pub fn k(&self) -> usize {
        self.top.k()
    }

    /// Counts one arrival of `key`.
    #[inline]
    pub fn insert(&mut self, key: u64) {
        // One strong mix per key; each row then re-mixes it with one multiply, which is all the
        // independence two or three rows need.
        let hash = mix64(key, self.seed);
        let mut estimate = 0u32;
        for (row, &row_seed) in self.row_seeds.iter().enumerate() {
            let row_hash = folded_multiply(hash ^ row_seed, GOLDEN);
            let fingerprint = row_hash as u32;
            let column = fast_range((row_hash >> 32) as u32, self.width);
            let bucket = &mut self.buckets[row * self.width as usize + column];
            if bucket.count == 0 {
                *bucket = Bucket {
                    fingerprint,
                    count: 1,
                };
            } else if bucket.fingerprint == fingerprint {
                bucket.count = bucket.count.saturating_add(1);
            } else {
                let threshold = self.decay_below.get(bucket.count as usize).copied();
                if threshold.is_some_and(|t| next_u32(&mut self.rng) < t) {
                    bucket.count -= 1;
                    if bucket.count == 0 {
                        *bucket = Bucket {
                            fingerprint,
                            count: 1,
                        };
                    }
                }
                if bucket.fingerprint != fingerprint {
                    continue;
                }
            }
            estimate = estimate.max(bucket.count);
        }
        self.top.offer(key, hash, estimate);
    }

    /// The heaviest keys with their estimated counts, highest first (ties by smaller key); at
    /// most `k`, fewer if fewer distinct keys have a non-zero count.
    pub fn top(&self) -> Vec<(u64, u64)> {
        self.top.sorted()
    }

    /// The estimated count of `key` if it is among the top `k` now, `None` otherwise: one hash
    /// and one index probe, no allocation (what a per-request "is it hot?" needs; [`Self::top`]
    /// sorts).
    #[inline]
    pub fn held(&self, key: u64) -> Option<u64> {
        self.top
            .count_of(key, mix64(key, self.seed))
            .filter(|&count| count > 0)
            .map(u64::from)
    }

    /// Halves every count: the recency step, see the module docs.
    pub fn halve(&mut self) {
        for bucket in self.buckets.iter_mut() {
            bucket.count >>= 1;
        }
        self.top.halve();
    }
}

/// xorshift64*: a few cycles per draw, plenty random for coin flips against a threshold.
#[inline(always)]
fn next_u32(state: &mut u64) -> u32 {
    let mut x = *state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *state = x;
    (x.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 32) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    const KIB_32: usize = 32 * 1024;

    #[test]
    fn exact_on_a_few_keys() {
        let mut sketch = HeavyKeeperConfig::with_memory(KIB_32, 3).build();
        let stream = [5u64, 1, 5, 2, 5, 1, 3, 5, 1, 4, 5];
        for &key in &stream {
            sketch.insert(key);
        }
        assert_eq!(sketch.top(), vec![(5, 5), (1, 3), (2, 1)]);
    }

    #[test]
    fn fewer_keys_than_k_reports_all_of_them() {
        let mut sketch = HeavyKeeperConfig::with_memory(4096, 10).build();
        sketch.insert(9);
        sketch.insert(9);
        sketch.insert(8);
        assert_eq!(sketch.top(), vec![(9, 2), (8, 1)]);
    }

    #[test]
    fn one_bucket_keeps_the_elephant_against_mice() {
        // A single bucket per row: the elephant must hold it while mice try to decay it.
        let config = HeavyKeeperConfig {
            rows: 1,
            width: 1,
            k: 1,
            decay_base: 1.08,
            seed: 1,
        };
        let mut sketch = config.build();
        for i in 0..10_000u64 {
            sketch.insert(1);
            if i % 3 == 0 {
                sketch.insert(1_000 + i);
            }
        }
        let top = sketch.top();
        assert_eq!(top.len(), 1);
        assert_eq!(top[0].0, 1);
        assert!(top[0].1 >= 9_990, "{top:?}");
    }

    #[test]
    fn decay_thresholds_follow_b_to_the_minus_count() {
        let sketch = HeavyKeeperConfig::with_memory(KIB_32, 100).build();
        let table = &sketch.decay_below;
        assert_eq!(table.len(), 290);
        let p1 = table[1] as f64 / 4_294_967_296.0;
        assert!((p1 - 1.0 / 1.08).abs() < 1e-9);
        let p50 = table[50] as f64 / 4_294_967_296.0;
        assert!((p50 - 1.08f64.powi(-50)).abs() < 1e-9);
        assert!(table.windows(2).skip(1).all(|w| w[0] >= w[1]));
        assert_eq!(table[table.len() - 1], 0);
    }

    #[test]
    fn memory_stays_within_the_budget_and_uses_most_of_it() {
        for budget in [8 * 1024, KIB_32, 256 * 1024] {
            let sketch = HeavyKeeperConfig::with_memory(budget, 100).build();
            assert!(sketch.memory_bytes() <= budget, "{budget}");
            assert!(
                sketch.memory_bytes() + 2 * BUCKET_BYTES > budget,
                "{budget}"
            );
        }
    }

    #[test]
    fn halving_halves_and_keeps_the_order() {
        let mut sketch = HeavyKeeperConfig::with_memory(KIB_32, 2).build();
        for (key, n) in [(1u64, 8), (2, 4), (3, 1)] {
            for _ in 0..n {
                sketch.insert(key);
            }
        }
        sketch.halve();
        assert_eq!(sketch.top(), vec![(1, 4), (2, 2)]);
        // After the halving, new arrivals can overtake: recency, not lifetime totals.
        for _ in 0..5 {
            sketch.insert(2);
        }
        assert_eq!(sketch.top(), vec![(2, 7), (1, 4)]);
    }

    #[test]
    fn held_reports_the_top_keys_and_only_them() {
        let mut sketch = HeavyKeeperConfig::with_memory(KIB_32, 2).build();
        for (key, n) in [(1u64, 9), (2, 5), (3, 1)] {
            for _ in 0..n {
                sketch.insert(key);
            }
        }
        assert_eq!(sketch.held(1), Some(9));
        assert_eq!(sketch.held(2), Some(5));
        assert_eq!(sketch.held(3), None, "not in the top 2");
        assert_eq!(sketch.held(4), None, "never seen");
    }
}
