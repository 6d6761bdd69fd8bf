//! [`MissedEvents`]: the events this instance published while its state cache was unavailable,
//! kept until the cache has learned them (DESIGN section 8, "Redis down").
//!
//! # Why
//! Without the cache, actions publish without dedup: harmless to the store (the newest version
//! wins). But a Redis that comes back with its old data (stopped and started, frozen, cut off)
//! still holds the states from before, and would answer a repeat of such a state with "no
//! change", publish nothing, and leave the missed event the newest in the store: the 2xx would
//! report a state the store does not have. So before this instance uses the cache again it
//! first [fences](StateCache::fence) it at the last time the cache answered (another instance
//! that answers from an old entry meanwhile publishes a repeat instead of taking it for no
//! change), then hands the missed events to [`StateCache::learn`] in order; until they all are,
//! its callers wait (or go around the cache if it fails).
//!
//! Bounded: past `MAX_MISSED` the oldest are dropped (counted); their pairs' cached states and
//! counts may then stay behind until touched again, expired, or repaired by
//! `likes-pipeline reconcile`.

use likes_shared::cache::{CacheError, StateCache};
use likes_shared::{ContentId, UserId};
use parking_lot::Mutex;
use prometheus::{IntCounter, IntGauge};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};

/// Most events kept; a 10 s outage at 10k degraded actions/s fits.
pub const MAX_MISSED: usize = 100_000;

#[derive(Debug, Clone, Copy)]
struct Missed {
    user: UserId,
    content: ContentId,
    liked: bool,
    version: u64,
}

/// The events, and the last time the cache answered before the first of them (wall ms).
#[derive(Default)]
struct Queue {
    events: VecDeque<Missed>,
    since_ms: u64,
}

pub struct MissedEvents {
    queue: Mutex<Queue>,
    /// `queue` is not empty: checked on every call, without the lock.
    pending: AtomicBool,
    /// One task hands them over at a time; the others wait for it.
    learning: tokio::sync::Mutex<()>,
    gauge: IntGauge,
    dropped: IntCounter,
}

impl MissedEvents {
    pub fn new(gauge: IntGauge, dropped: IntCounter) -> Self {
        MissedEvents {
            queue: Mutex::new(Queue::default()),
            pending: AtomicBool::new(false),
            learning: tokio::sync::Mutex::new(()),
            gauge,
            dropped,
        }
    }

    /// `answered_ms`: when the cache last answered (the fence, if this starts a run of misses).
    pub fn record(
        &self,
        (user, content): (UserId, ContentId),
        (liked, version): (bool, u64),
        answered_ms: u64,
    ) {
        let mut queue = self.queue.lock();
        if queue.events.is_empty() {
            queue.since_ms = answered_ms;
        }
        if queue.events.len() >= MAX_MISSED {
            queue.events.pop_front();
            self.dropped.inc();
        }
        queue.events.push_back(Missed {
            user,
            content,
            liked,
            version,
        });
        self.gauge.set(queue.events.len() as i64);
        self.pending.store(true, Ordering::Release);
    }

    /// Hands every recorded event to `cache` in order. Callers that find another task doing so
    /// wait for it (it is a few round trips per missed event), so that the cache is not taken
    /// for down meanwhile; an error when the cache fails: the caller goes around it.
    pub async fn teach(&self, cache: &dyn StateCache) -> Result<(), CacheError> {
        if !self.pending.load(Ordering::Acquire) {
            return Ok(());
        }
        let _one = self.learning.lock().await;
        if !self.pending.load(Ordering::Acquire) {
            return Ok(());
        }
        let since = self.queue.lock().since_ms;
        cache.fence(since).await?;
        loop {
            let next = self.queue.lock().events.front().copied();
            let Some(m) = next else {
                break;
            };
            cache.learn(m.user, m.content, m.liked, m.version).await?;
            let mut queue = self.queue.lock();
            queue.events.pop_front();
            self.gauge.set(queue.events.len() as i64);
        }
        let queue = self.queue.lock();
        if queue.events.is_empty() {
            self.pending.store(false, Ordering::Release);
            tracing::info!("the state cache learned every event it missed");
        }
        Ok(())
    }
}
