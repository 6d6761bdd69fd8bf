//! Hands the heap's free pages back to the kernel every few seconds.
//!
//! Why: glibc's malloc keeps what a burst freed (in each thread's arena, below the top of each
//! heap) for reuse, and only gives back a free top above 128 KiB. A pipeline worker that once
//! caught up on a backlog, its receiver queues full (TiDB's auto-analyze on a shared box is
//! enough to cause one), keeps that burst's peak as its resident size for good: the 10-minute
//! runs in BENCHMARKS.md stepped up by 3–6 MiB once and never came down, and one
//! `malloc_trim(0)` from a debugger gave back 2.4 of a worker's 29.5 MiB. `malloc_trim(0)` walks
//! every arena and releases whole free pages anywhere in them (glibc ≥ 2.8), so this is a bound
//! on what a past burst can cost, not a cure for live memory: what the process holds, it keeps.
//!
//! A trim costs about as much as what it gives back: 7 ms for a 64 MiB burst freed
//! (`shared/tests/heap_trim.rs`), next to nothing when there is nothing to give. It runs on
//! tokio's blocking pool, never on a thread that runs tasks. Off glibc (musl, macOS) it does
//! nothing.

use crate::shutdown::Shutdown;
use std::time::{Duration, Instant};

/// Trims the heap every `every` until shutdown.
#[derive(Debug, Clone, Copy)]
pub struct HeapTrim {
    pub every: Duration,
}

impl HeapTrim {
    /// `None` for a zero period: trimming off.
    pub fn every(period: Duration) -> Option<Self> {
        (!period.is_zero()).then_some(HeapTrim { every: period })
    }

    pub async fn run(self, mut shutdown: Shutdown) {
        let mut ticks = tokio::time::interval(self.every);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticks.tick().await;
        loop {
            tokio::select! {
                biased;
                _ = shutdown.wait() => return,
                _ = ticks.tick() => match tokio::task::spawn_blocking(trim_now).await {
                    Ok(took) => tracing::trace!(micros = took.as_micros() as u64, "heap trimmed"),
                    // The runtime is shutting down.
                    Err(_) => return,
                },
            }
        }
    }
}

/// Releases the free pages of every malloc arena now; returns how long it took.
pub fn trim_now() -> Duration {
    let started = Instant::now();
    release_free_pages();
    started.elapsed()
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn release_free_pages() {
    // SAFETY: malloc_trim takes no pointers and is thread-safe: it locks each arena in turn,
    // as malloc and free do.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn release_free_pages() {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_zero_period_turns_trimming_off() {
        assert!(HeapTrim::every(Duration::ZERO).is_none());
        let trim = HeapTrim::every(Duration::from_secs(5)).expect("on");
        assert_eq!(trim.every, Duration::from_secs(5));
    }

    #[tokio::test(start_paused = true)]
    async fn it_stops_on_shutdown() {
        let (trigger, shutdown) = crate::shutdown::channel();
        let task = tokio::spawn(
            HeapTrim::every(Duration::from_millis(10))
                .expect("on")
                .run(shutdown),
        );
        tokio::time::sleep(Duration::from_millis(55)).await;
        assert!(!task.is_finished());
        trigger.trigger();
        tokio::time::timeout(Duration::from_secs(1), task)
            .await
            .expect("stopped")
            .expect("no panic");
    }
}
