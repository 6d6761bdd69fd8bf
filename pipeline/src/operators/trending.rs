//! Trending: the contents with the most *recent* likes in this worker's partitions.
//!
//! A [`HeavyKeeper`] counts likes per content in fixed memory; every `halve_every` its counts
//! are halved so old likes fade (a like one period ago weighs ½, two periods ¼ …), and every
//! `publish_every` the current top-k is emitted for the runtime to post to the
//! `TrendingBoard`. Partitions are disjoint by content, so boards merge worker lists exactly.
//!
//! Only likes count: an unlike is not negative popularity, and a sketch cannot subtract anyway
//! (decrements would let mice wear down elephants). Counts are of raw like events, so a user
//! who toggles counts each time; that is rare and bounded by rate limits, and the numbers are
//! estimates for ranking, never shown as like counts (those come from the store).

use super::heavy_keeper::{HeavyKeeper, HeavyKeeperConfig};
use super::Operator;
use likes_shared::trending::TrendingEntry;
use likes_shared::{Action, ContentId, LikeEvent};
use std::time::{Duration, Instant};

/// How much to keep, how fast to forget, how often to publish.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TrendingConfig {
    /// Contents per published list.
    pub k: usize,
    /// Byte budget of the sketch (see the HeavyKeeper memory formula).
    pub memory_bytes: usize,
    /// Counts are halved this often: the half-life of a like's weight.
    pub halve_every: Duration,
    /// A top-k list is emitted this often.
    pub publish_every: Duration,
}

impl Default for TrendingConfig {
    /// 100 contents in 32 KiB (DESIGN section 9); a one-minute half-life follows what is hot
    /// now rather than today; a list per second is fresher than any client polls.
    fn default() -> Self {
        Self {
            k: 100,
            memory_bytes: 32 * 1024,
            halve_every: Duration::from_secs(60),
            publish_every: Duration::from_secs(1),
        }
    }
}

impl TrendingConfig {
    pub fn build(self, now: Instant) -> TrendingTopK {
        TrendingTopK::new(self, now)
    }
}

/// The operator: liked contents in, a top-k list out every `publish_every`.
#[derive(Debug, Clone)]
pub struct TrendingTopK {
    sketch: HeavyKeeper,
    halve_every: Duration,
    publish_every: Duration,
    next_halving: Instant,
    next_publish: Instant,
}

/// A runtime stalled for longer than this many periods has forgotten everything anyway; more
/// halvings would only spin.
const MAX_CATCH_UP_HALVINGS: u32 = 32;

impl TrendingTopK {
    /// Periods start at `now`. Zero periods are raised to 1 ms so ticks cannot spin.
    pub fn new(config: TrendingConfig, now: Instant) -> Self {
        let halve_every = config.halve_every.max(Duration::from_millis(1));
        let publish_every = config.publish_every.max(Duration::from_millis(1));
        Self {
            sketch: HeavyKeeperConfig::with_memory(config.memory_bytes, config.k).build(),
            halve_every,
            publish_every,
            next_halving: now + halve_every,
            next_publish: now + publish_every,
        }
    }

    /// Counts the `Like` events of a closed window; unlikes are skipped.
    pub fn observe_likes(&mut self, events: &[LikeEvent]) {
        for event in events {
            if event.action == Action::Like {
                self.sketch.insert(event.content_id.get());
            }
        }
    }

    /// The current list, highest score first.
    pub fn top(&self) -> Vec<TrendingEntry> {
        self.sketch
            .top()
            .into_iter()
            .filter_map(|(key, score)| {
                // Keys are content ids, which are never 0, so nothing is dropped here.
                let content_id = ContentId::new(key).ok()?;
                Some(TrendingEntry { content_id, score })
            })
            .collect()
    }

    pub fn memory_bytes(&self) -> usize {
        self.sketch.memory_bytes()
    }
}

impl Operator for TrendingTopK {
    /// One liked content.
    type In = ContentId;
    type Out = Vec<TrendingEntry>;

    fn process(&mut self, content: ContentId, _now: Instant, _out: &mut Vec<Self::Out>) {
        self.sketch.insert(content.get());
    }

    fn on_tick(&mut self, now: Instant, out: &mut Vec<Self::Out>) {
        let mut halvings = 0;
        while now >= self.next_halving {
            if halvings < MAX_CATCH_UP_HALVINGS {
                self.sketch.halve();
                halvings += 1;
                self.next_halving += self.halve_every;
            } else {
                self.next_halving = now + self.halve_every;
            }
        }
        if now >= self.next_publish {
            out.push(self.top());
            // From now, not from the missed deadline: a late tick must not trigger a burst.
            self.next_publish = now + self.publish_every;
        }
    }

    /// A last list, so a worker handing its partitions over leaves a fresh board behind.
    fn on_close(&mut self, out: &mut Vec<Self::Out>) {
        out.push(self.top());
    }

    fn deadline(&self) -> Option<Instant> {
        Some(self.next_halving.min(self.next_publish))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use likes_shared::UserId;

    fn like(content: u64, action: Action) -> LikeEvent {
        LikeEvent {
            event_id: 0,
            user_id: UserId::new(1).expect("non-zero"),
            content_id: ContentId::new(content).expect("non-zero"),
            action,
            version: 1,
            ts_ms: 0,
            source: String::new(),
            fill_epoch: 0,
        }
    }

    fn scores(list: &[TrendingEntry]) -> Vec<(u64, u64)> {
        list.iter().map(|e| (e.content_id.get(), e.score)).collect()
    }

    fn trending(t0: Instant) -> TrendingTopK {
        TrendingConfig {
            k: 2,
            memory_bytes: 8 * 1024,
            halve_every: Duration::from_secs(60),
            publish_every: Duration::from_secs(1),
        }
        .build(t0)
    }

    #[test]
    fn only_likes_count() {
        let mut op = trending(Instant::now());
        op.observe_likes(&[
            like(1, Action::Like),
            like(2, Action::Unlike),
            like(2, Action::Unlike),
            like(1, Action::Like),
            like(3, Action::Like),
        ]);
        assert_eq!(scores(&op.top()), vec![(1, 2), (3, 1)]);
    }

    #[test]
    fn publishes_on_schedule_and_at_close() {
        let t0 = Instant::now();
        let mut op = trending(t0);
        let mut out = Vec::new();
        op.process(ContentId::new(7).expect("non-zero"), t0, &mut out);
        assert_eq!(op.deadline(), Some(t0 + Duration::from_secs(1)));
        op.on_tick(t0 + Duration::from_millis(999), &mut out);
        assert!(out.is_empty());
        op.on_tick(t0 + Duration::from_secs(1), &mut out);
        assert_eq!(
            out.iter().map(|l| scores(l)).collect::<Vec<_>>(),
            vec![vec![(7, 1)]]
        );
        assert_eq!(op.deadline(), Some(t0 + Duration::from_secs(2)));
        op.on_close(&mut out);
        assert_eq!(out.len(), 2);
    }

    #[test]
    fn old_likes_fade_so_recent_ones_win() {
        let t0 = Instant::now();
        let mut op = trending(t0);
        let mut out = Vec::new();
        let old = ContentId::new(1).expect("non-zero");
        let new = ContentId::new(2).expect("non-zero");
        for _ in 0..100 {
            op.process(old, t0, &mut out);
        }
        // Two half-lives later `old` weighs 25; 40 fresh likes beat it.
        op.on_tick(t0 + Duration::from_secs(120), &mut out);
        for _ in 0..40 {
            op.process(new, t0 + Duration::from_secs(120), &mut out);
        }
        assert_eq!(scores(&op.top()), vec![(2, 40), (1, 25)]);
    }

    #[test]
    fn a_long_stall_forgets_without_spinning() {
        let t0 = Instant::now();
        let mut op = trending(t0);
        let mut out = Vec::new();
        op.process(ContentId::new(1).expect("non-zero"), t0, &mut out);
        let later = t0 + Duration::from_secs(60 * 1_000_000);
        op.on_tick(later, &mut out);
        assert!(op.top().is_empty());
        assert_eq!(op.deadline(), Some(later + Duration::from_secs(1)));
    }
}
