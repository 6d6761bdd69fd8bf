//! Hybrid logical clock (I4).
//!
//! A version is `wall_ms << 16 | counter`: it follows the wall clock, so versions from different
//! ingest instances compare roughly by time, yet it never goes backwards and never repeats on one
//! instance even when the wall clock steps back or many events land in the same millisecond.
//! Skew between instances is settled by the state cache, which applies
//! `max(event version, stored version + 1)` (DESIGN section 7).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

const LOGICAL_BITS: u32 = 16;

#[derive(Debug, Default)]
pub struct HybridClock {
    last: AtomicU64,
}

impl HybridClock {
    pub fn new() -> Self {
        Self::default()
    }

    /// A version strictly greater than every version this clock returned or observed.
    pub fn now(&self) -> u64 {
        self.tick(now_ms())
    }

    /// Moves the clock past a version seen elsewhere (a stored row, another instance's event).
    pub fn observe(&self, seen: u64) {
        self.last.fetch_max(seen, Ordering::AcqRel);
    }

    fn tick(&self, wall_ms: u64) -> u64 {
        let physical = wall_ms << LOGICAL_BITS;
        let mut last = self.last.load(Ordering::Acquire);
        loop {
            let next = physical.max(last + 1);
            match self
                .last
                .compare_exchange_weak(last, next, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return next,
                Err(seen) => last = seen,
            }
        }
    }
}

/// Wall-clock milliseconds since the Unix epoch (0 if the clock is before 1970).
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// The wall-clock part of a version, in Unix milliseconds.
pub fn wall_ms(version: u64) -> u64 {
    version >> LOGICAL_BITS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_repeats_or_goes_back_even_if_the_wall_clock_does() {
        let clock = HybridClock::new();
        let a = clock.tick(1_000);
        let b = clock.tick(1_000);
        let c = clock.tick(900);
        let d = clock.tick(2_000);
        assert!(a < b && b < c && c < d, "{a} {b} {c} {d}");
        assert_eq!(wall_ms(a), 1_000);
        assert_eq!(wall_ms(d), 2_000);
    }

    #[test]
    fn observe_moves_past_remote_versions() {
        let clock = HybridClock::new();
        let remote = (5_000u64 << LOGICAL_BITS) + 3;
        clock.observe(remote);
        assert!(clock.tick(1_000) > remote);
    }

    #[test]
    fn concurrent_ticks_are_unique() {
        let clock = std::sync::Arc::new(HybridClock::new());
        let handles: Vec<_> = (0..4)
            .map(|_| {
                let c = clock.clone();
                std::thread::spawn(move || (0..10_000).map(|_| c.now()).collect::<Vec<_>>())
            })
            .collect();
        let mut all: Vec<u64> = handles
            .into_iter()
            .flat_map(|h| h.join().expect("thread"))
            .collect();
        let n = all.len();
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), n);
    }
}
