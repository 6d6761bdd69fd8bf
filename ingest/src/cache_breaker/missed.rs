//! [`MissedEvents`]: the events this instance published while its state cache was unavailable,
//! and those whose confirm it did not answer, kept until the cache has learned them (DESIGN
//! section 8, "Redis down").
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
//! A Redis restarted from a snapshot has also lost what it answered after that snapshot: the
//! changes this instance confirmed in its last [`RECENT_WINDOW_MS`] before the outage are
//! therefore taught first, oldest first. Learning is idempotent by version (a state the cache
//! holds at that version or newer is left alone), so teaching them to a cache that lost nothing
//! moves nothing, and to one that did, it puts back the states *and* the count moves it lost.
//!
//! Bounded: past `MAX_MISSED` the oldest are dropped (counted); their pairs' cached states and
//! counts may then stay behind until touched again, expired, or repaired by
//! `likes-pipeline reconcile`. So may changes older than the window that a snapshot lost (the
//! fence still republishes their states on a repeat).

use likes_shared::cache::{CacheError, StateCache};
use likes_shared::{ContentId, UserId};
use parking_lot::Mutex;
use prometheus::{IntCounter, IntGauge};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};

/// Most events kept; a 10 s outage at 10k degraded actions/s fits.
pub const MAX_MISSED: usize = 100_000;

/// How far back confirmed changes are kept to teach again after an outage (wall ms): a snapshot
/// taken once a minute loses at most that.
pub const RECENT_WINDOW_MS: u64 = 60_000;

/// Most confirmed changes kept for that.
const MAX_RECENT: usize = 100_000;

/// One (user, content)'s state at a version, to teach the cache: an event published without
/// it, or a change it confirmed lately.
#[derive(Debug, Clone, Copy)]
struct Change {
    user: UserId,
    content: ContentId,
    liked: bool,
    version: u64,
}

impl Change {
    fn new((user, content): (UserId, ContentId), (liked, version): (bool, u64)) -> Self {
        Change {
            user,
            content,
            liked,
            version,
        }
    }
}

/// The events, and the last time the cache answered before the first of them (wall ms).
#[derive(Default)]
struct Queue {
    events: VecDeque<Change>,
    since_ms: u64,
}

pub struct MissedEvents {
    queue: Mutex<Queue>,
    /// Changes the cache confirmed lately, with when (wall ms), oldest first.
    recent: Mutex<VecDeque<(u64, Change)>>,
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
            recent: Mutex::new(VecDeque::new()),
            pending: AtomicBool::new(false),
            learning: tokio::sync::Mutex::new(()),
            gauge,
            dropped,
        }
    }

    /// A change the cache confirmed at `now_ms`: kept for [`RECENT_WINDOW_MS`], in case the
    /// cache comes back from a snapshot taken before it.
    pub fn confirmed(&self, pair: (UserId, ContentId), state: (bool, u64), now_ms: u64) {
        let mut recent = self.recent.lock();
        while recent.len() >= MAX_RECENT
            || recent
                .front()
                .is_some_and(|(at, _)| at + RECENT_WINDOW_MS < now_ms)
        {
            recent.pop_front();
        }
        recent.push_back((now_ms, Change::new(pair, state)));
    }

    /// `answered_ms`: when the cache last answered (the fence, if this starts a run of misses).
    /// The first miss of a run puts the changes confirmed lately ahead of it, to be taught again.
    pub fn record(&self, pair: (UserId, ContentId), state: (bool, u64), answered_ms: u64) {
        let mut queue = self.queue.lock();
        if queue.events.is_empty() {
            queue.since_ms = answered_ms;
            let recent = std::mem::take(&mut *self.recent.lock());
            queue
                .events
                .extend(recent.into_iter().map(|(_, change)| change));
        }
        if queue.events.len() >= MAX_MISSED {
            queue.events.pop_front();
            self.dropped.inc();
        }
        queue.events.push_back(Change::new(pair, state));
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
