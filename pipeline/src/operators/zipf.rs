//! A seeded Zipf stream, the workload the trending sketch and the benches are measured on.
//!
//! Likes follow a power law: a few contents get most of them. `Zipf(s)` over `n` keys gives
//! rank `r` (1-based) probability `r^-s / H(n, s)`. Sampling is by inverse CDF: precompute the
//! cumulative weights once, draw a uniform number, binary-search it. That is exact for any `s`
//! (unlike rejection samplers tuned for `s > 1`) and fast enough to generate tens of millions
//! of events for a benchmark.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Draws ranks `1..=n` with probability proportional to `rank^-exponent`.
#[derive(Debug, Clone)]
pub struct ZipfSampler {
    /// `cumulative[i]` = total weight of ranks `1..=i+1`.
    cumulative: Vec<f64>,
    rng: StdRng,
}

impl ZipfSampler {
    /// `n` ≥ 1 keys; `exponent` ≥ 0 (0 is uniform); the same `seed` gives the same stream.
    pub fn new(n: usize, exponent: f64, seed: u64) -> Self {
        let mut total = 0.0;
        let cumulative = (1..=n.max(1))
            .map(|rank| {
                total += (rank as f64).powf(-exponent);
                total
            })
            .collect();
        Self {
            cumulative,
            rng: StdRng::seed_from_u64(seed),
        }
    }

    /// The next rank, in `1..=n`.
    pub fn next_rank(&mut self) -> u64 {
        let total = self.cumulative.last().copied().unwrap_or(0.0);
        let target = self.rng.gen::<f64>() * total;
        // The first rank whose cumulative weight exceeds the target.
        let index = self.cumulative.partition_point(|&weight| weight <= target);
        index.min(self.cumulative.len() - 1) as u64 + 1
    }

    /// `len` ranks in a `Vec`.
    pub fn take(&mut self, len: usize) -> Vec<u64> {
        (0..len).map(|_| self.next_rank()).collect()
    }
}

/// The `k` most frequent keys of `stream` with their exact counts, most frequent first (ties
/// by smaller key): the ground truth the sketch is scored against.
pub fn exact_top_k(stream: &[u64], k: usize) -> Vec<(u64, u64)> {
    let mut counts: std::collections::HashMap<u64, u64> = Default::default();
    for &key in stream {
        *counts.entry(key).or_default() += 1;
    }
    let mut all: Vec<(u64, u64)> = counts.into_iter().collect();
    all.sort_unstable_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    all.truncate(k);
    all
}

/// Precision@k of `reported` against the exact counts of `stream`: the share of reported keys
/// that belong in the true top k. A key tied with the true k-th count counts as correct, since
/// which of several tied keys is "the" top k is arbitrary.
pub fn precision_at_k(stream: &[u64], reported: &[(u64, u64)], k: usize) -> f64 {
    if k == 0 {
        return 1.0;
    }
    let mut counts: std::collections::HashMap<u64, u64> = Default::default();
    for &key in stream {
        *counts.entry(key).or_default() += 1;
    }
    let mut sorted: Vec<u64> = counts.values().copied().collect();
    sorted.sort_unstable_by(|a, b| b.cmp(a));
    let kth = sorted.get(k - 1).copied().unwrap_or(0).max(1);
    let hits = reported
        .iter()
        .take(k)
        .filter(|(key, _)| counts.get(key).copied().unwrap_or(0) >= kth)
        .count();
    hits as f64 / k as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_stream_other_seed_other_stream() {
        let a = ZipfSampler::new(1000, 1.0, 1).take(100);
        assert_eq!(a, ZipfSampler::new(1000, 1.0, 1).take(100));
        assert_ne!(a, ZipfSampler::new(1000, 1.0, 2).take(100));
    }

    #[test]
    fn frequencies_follow_the_power_law() {
        let n = 100_000;
        let stream = ZipfSampler::new(1000, 1.0, 7).take(n);
        assert!(stream.iter().all(|&r| (1..=1000).contains(&r)));
        let share = |rank: u64| stream.iter().filter(|&&r| r == rank).count() as f64 / n as f64;
        // H(1000, 1) ≈ 7.485: rank 1 ≈ 13.4 %, rank 2 ≈ 6.7 %, rank 10 ≈ 1.34 %.
        assert!((share(1) - 0.1336).abs() < 0.005, "{}", share(1));
        assert!((share(2) - 0.0668).abs() < 0.004, "{}", share(2));
        assert!((share(10) - 0.01336).abs() < 0.002, "{}", share(10));
    }

    #[test]
    fn exponent_zero_is_uniform() {
        let stream = ZipfSampler::new(4, 0.0, 3).take(40_000);
        for rank in 1..=4 {
            let n = stream.iter().filter(|&&r| r == rank).count();
            assert!((9_500..10_500).contains(&n), "rank {rank}: {n}");
        }
    }

    #[test]
    fn precision_counts_ties_with_the_kth_as_correct() {
        let stream = [1, 1, 1, 2, 2, 3, 3, 4];
        assert_eq!(exact_top_k(&stream, 2), vec![(1, 3), (2, 2)]);
        assert_eq!(precision_at_k(&stream, &[(1, 3), (3, 2)], 2), 1.0);
        assert_eq!(precision_at_k(&stream, &[(1, 3), (4, 1)], 2), 0.5);
    }
}
