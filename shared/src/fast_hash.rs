//! Small, fast, non-cryptographic hashing for integer keys.
//!
//! The pipeline operators and the sketch hash nothing but u64 ids, millions of times per second, and their keys are not
//! attacker-chosen in a way that matters: a flood of colliding ids can only slow one worker's
//! window, which the window's size bound already caps (I7). SipHash (std's default) would cost
//! more than the rest of the collapse step, so we use multiply-and-fold mixing instead, as
//! FxHash, wyhash and foldhash do, rather than pull in a crate for twenty lines.

use std::hash::{BuildHasher, Hasher};

/// An odd 64-bit constant with well spread bits (2^64 / golden ratio).
pub const GOLDEN: u64 = 0x9E37_79B9_7F4A_7C15;

/// Multiplies into 128 bits and folds the halves together: every input bit reaches every output
/// bit in one multiply, which is why one round is enough for hash-table use.
#[inline(always)]
pub fn folded_multiply(a: u64, b: u64) -> u64 {
    let full = (a as u128).wrapping_mul(b as u128);
    (full as u64) ^ ((full >> 64) as u64)
}

/// A strong 64-bit finaliser (MurmurHash3's `fmix64`) of `key` under `seed`: a bijection, so
/// distinct keys never collide before the caller reduces the range. Used where the sketch needs
/// independent, well distributed bits for bucket index and fingerprint.
#[inline(always)]
pub fn mix64(key: u64, seed: u64) -> u64 {
    let mut x = key ^ seed;
    x ^= x >> 33;
    x = x.wrapping_mul(0xFF51_AFD7_ED55_8CCD);
    x ^= x >> 33;
    x = x.wrapping_mul(0xC4CE_B9FE_1A85_EC53);
    x ^ (x >> 33)
}

/// Maps a uniformly distributed `x` onto `0..n` without a division (Lemire's fast range).
#[inline(always)]
pub fn fast_range(x: u32, n: u32) -> usize {
    ((x as u64 * n as u64) >> 32) as usize
}

/// `Hasher` for `HashMap`s keyed by ids.
#[derive(Debug, Clone, Copy, Default)]
pub struct FoldHasher {
    state: u64,
}

impl Hasher for FoldHasher {
    #[inline(always)]
    fn write_u64(&mut self, word: u64) {
        self.state = folded_multiply(self.state ^ word, GOLDEN);
    }

    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        // Only reached for non-integer keys, which the operators do not use; correct, not fast.
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.write_u64(u64::from_le_bytes(word));
        }
    }

    #[inline(always)]
    fn finish(&self) -> u64 {
        self.state
    }
}

/// `BuildHasher` for [`FoldHasher`]: `HashMap<K, V, BuildFoldHasher>`.
#[derive(Debug, Clone, Copy, Default)]
pub struct BuildFoldHasher;

impl BuildHasher for BuildFoldHasher {
    type Hasher = FoldHasher;

    #[inline(always)]
    fn build_hasher(&self) -> FoldHasher {
        FoldHasher { state: GOLDEN }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn mix64_spreads_sequential_keys_evenly_over_a_small_range() {
        let mut buckets = [0u32; 64];
        for key in 0..64_000u64 {
            buckets[fast_range((mix64(key, 7) >> 32) as u32, 64)] += 1;
        }
        // Expect 1000 each; a broken mixer (identity, low bits only) lands far outside this.
        assert!(
            buckets.iter().all(|&n| (850..1150).contains(&n)),
            "{buckets:?}"
        );
    }

    #[test]
    fn seeds_give_different_hashes() {
        assert_ne!(mix64(1, 1), mix64(1, 2));
    }

    #[test]
    fn fold_hasher_separates_pairs_of_small_ids() {
        let hashes: HashSet<u64> = (0..100u64)
            .flat_map(|a| (0..100u64).map(move |b| (a, b)))
            .map(|pair| BuildFoldHasher.hash_one(pair))
            .collect();
        assert_eq!(hashes.len(), 10_000);
    }

    #[test]
    fn fast_range_stays_in_range() {
        assert_eq!(fast_range(u32::MAX, 10), 9);
        assert_eq!(fast_range(0, 10), 0);
    }
}
