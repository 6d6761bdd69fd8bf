//! Cutting the delivery stream into windows, each of which the sink commits in one transaction.
//!
//! A window closes when it holds `max_events`, when `max_age` has passed since its *first*
//! delivery, or at end of input, like vector's batcher. Starting the timer at the first item,
//! not on a free-running clock, means an idle worker never wakes to flush nothing, and a lone
//! like waits at most `max_age` before the sink sees it (DESIGN: like → TiDB-visible p99 ≤ 2 s).
//!
//! The window carries the deliveries' ack handles next to their events: the runtime acks them
//! only after the sink commits the window, which is what makes the pipeline at-least-once.

use super::Operator;
use likes_shared::bus::Delivery;
use likes_shared::telemetry::TraceParent;
use likes_shared::LikeEvent;
use std::time::{Duration, Instant};

/// Bounds of one window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowConfig {
    /// Close the window once it holds this many events. Also the bound on a window's memory
    /// (I7). `0` is treated as `1`.
    pub max_events: usize,
    /// Close the window once this much time has passed since its first event.
    pub max_age: Duration,
}

impl Default for WindowConfig {
    /// 4096 events is one multi-row statement's worth of rows for the sink; 50 ms keeps the
    /// window a small part of the 2 s end-to-end budget while still collapsing bursts.
    fn default() -> Self {
        Self {
            max_events: 4096,
            max_age: Duration::from_millis(50),
        }
    }
}

impl WindowConfig {
    pub fn build<A>(self) -> CountOrTimeWindow<A> {
        CountOrTimeWindow::new(self)
    }
}

/// A closed window: events in delivery order and the acks to send once the sink has committed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Window<A> {
    pub events: Vec<LikeEvent>,
    /// In delivery order, one per event, so a source may ack cumulatively.
    pub acks: Vec<A>,
    /// When the first event arrived (for the window-age metric and latency tracing).
    pub opened_at: Instant,
    /// `(partition, ts_ms)`: each partition in the window with its oldest event's time, for the
    /// event-time lag per partition. Kept while filling, so the commit needs no pass over the
    /// events; a worker owns a handful of partitions, so a short list, searched linearly.
    pub oldest_by_partition: Vec<(u32, u64)>,
    /// The trace contexts of the first [`MAX_TRACE_LINKS`] events that carried a sampled one: the
    /// window's span links to them (an exporter keeps about that many links a span anyway).
    pub traces: Vec<TraceParent>,
}

/// Links a window span keeps at most (the OpenTelemetry SDK's default span limit).
pub const MAX_TRACE_LINKS: usize = 128;

/// The operator that fills a window and closes it by count, by age, or at end of input.
#[derive(Debug)]
pub struct CountOrTimeWindow<A> {
    config: WindowConfig,
    events: Vec<LikeEvent>,
    acks: Vec<A>,
    oldest_by_partition: Vec<(u32, u64)>,
    traces: Vec<TraceParent>,
    /// `Some` exactly while the open window holds at least one event.
    opened_at: Option<Instant>,
    /// Buffers handed back through [`recycle`](Self::recycle), reused for the next window.
    spare: Option<(Vec<LikeEvent>, Vec<A>)>,
}

impl<A> CountOrTimeWindow<A> {
    pub fn new(config: WindowConfig) -> Self {
        let config = WindowConfig {
            max_events: config.max_events.max(1),
            ..config
        };
        Self {
            config,
            events: Vec::new(),
            acks: Vec::new(),
            oldest_by_partition: Vec::new(),
            traces: Vec::new(),
            opened_at: None,
            spare: None,
        }
    }

    pub fn config(&self) -> WindowConfig {
        self.config
    }

    /// Events in the open window.
    pub fn len(&self) -> usize {
        self.events.len()
    }

    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }

    /// Hands a committed window's buffers back so the next window does not allocate. Optional:
    /// dropping windows is correct too, just slower.
    pub fn recycle(&mut self, mut window: Window<A>) {
        window.events.clear();
        window.acks.clear();
        self.spare = Some((window.events, window.acks));
    }

    fn close(&mut self, out: &mut Vec<Window<A>>) {
        let Some(opened_at) = self.opened_at.take() else {
            return;
        };
        let (next_events, next_acks) = self.spare.take().unwrap_or_else(|| {
            // Most windows fill up under load, so allocate the full size once rather than
            // doubling a dozen times per window.
            let cap = self.config.max_events.min(1 << 16);
            (Vec::with_capacity(cap), Vec::with_capacity(cap))
        });
        out.push(Window {
            events: std::mem::replace(&mut self.events, next_events),
            acks: std::mem::replace(&mut self.acks, next_acks),
            opened_at,
            oldest_by_partition: std::mem::take(&mut self.oldest_by_partition),
            traces: std::mem::take(&mut self.traces),
        });
    }

    fn is_expired(&self, now: Instant) -> bool {
        self.deadline().is_some_and(|deadline| now >= deadline)
    }
}

impl<A> Operator for CountOrTimeWindow<A> {
    type In = Delivery<A>;
    type Out = Window<A>;

    fn process(&mut self, delivery: Delivery<A>, now: Instant, out: &mut Vec<Window<A>>) {
        // Under a busy source the runtime may see deliveries before it gets round to the tick,
        // so an expired window is closed here too: a late tick must not let it grow past its
        // age with events that arrived after the deadline.
        if self.is_expired(now) {
            self.close(out);
        }
        if self.opened_at.is_none() {
            self.opened_at = Some(now);
        }
        let ts_ms = delivery.event.ts_ms;
        match self
            .oldest_by_partition
            .iter_mut()
            .find(|(partition, _)| *partition == delivery.partition)
        {
            Some((_, oldest)) => *oldest = (*oldest).min(ts_ms),
            None => self.oldest_by_partition.push((delivery.partition, ts_ms)),
        }
        if let Some(trace) = delivery.trace.filter(TraceParent::is_sampled) {
            if self.traces.len() < MAX_TRACE_LINKS {
                self.traces.push(trace);
            }
        }
        self.events.push(delivery.event);
        self.acks.push(delivery.ack);
        if self.events.len() >= self.config.max_events {
            self.close(out);
        }
    }

    fn on_tick(&mut self, now: Instant, out: &mut Vec<Window<A>>) {
        if self.is_expired(now) {
            self.close(out);
        }
    }

    fn on_close(&mut self, out: &mut Vec<Window<A>>) {
        self.close(out);
    }

    fn deadline(&self) -> Option<Instant> {
        self.opened_at.map(|opened| opened + self.config.max_age)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use likes_shared::{Action, ContentId, UserId};

    const AGE: Duration = Duration::from_millis(50);

    fn delivery(n: u64) -> Delivery<u64> {
        let event = LikeEvent {
            event_id: n as u128,
            user_id: UserId::new(n).expect("non-zero"),
            content_id: ContentId::new(1).expect("non-zero"),
            action: Action::Like,
            version: n,
            ts_ms: n,
            source: String::new(),
            fill_epoch: 0,
        };
        Delivery {
            event,
            ack: n,
            partition: 0,
            trace: None,
        }
    }

    fn windows(max_events: usize) -> CountOrTimeWindow<u64> {
        WindowConfig {
            max_events,
            max_age: AGE,
        }
        .build()
    }

    /// Feeds `(item, ms since t0)` then closes the input; returns the acks of each window.
    fn run(max_events: usize, input: &[(u64, u64)], ticks: &[u64]) -> Vec<Vec<u64>> {
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let mut op = windows(max_events);
        let mut out = Vec::new();
        let mut ticks = ticks.iter().peekable();
        for &(n, ms) in input {
            while let Some(&&tick) = ticks.peek() {
                if tick > ms {
                    break;
                }
                op.on_tick(at(tick), &mut out);
                ticks.next();
            }
            op.process(delivery(n), at(ms), &mut out);
        }
        for &tick in ticks {
            op.on_tick(at(tick), &mut out);
        }
        op.on_close(&mut out);
        out.into_iter().map(|w| w.acks).collect()
    }

    #[test]
    fn closes_on_count_and_at_end_of_input() {
        let batches = run(2, &[(1, 0), (2, 0), (3, 0)], &[]);
        assert_eq!(batches, vec![vec![1, 2], vec![3]]);
    }

    #[test]
    fn closes_on_age_measured_from_the_first_event() {
        let batches = run(10, &[(1, 0), (2, 40), (3, 60)], &[50]);
        assert_eq!(batches, vec![vec![1, 2], vec![3]]);
    }

    #[test]
    fn timer_starts_with_the_first_event_not_the_clock() {
        // Nothing for 100 ms, then two events 40 ms apart: one window, the tick at 120 is early.
        let batches = run(10, &[(1, 100), (2, 140)], &[120]);
        assert_eq!(batches, vec![vec![1, 2]]);
    }

    #[test]
    fn an_expired_window_closes_before_a_late_event_joins_it() {
        let batches = run(10, &[(1, 0), (2, 70)], &[]);
        assert_eq!(batches, vec![vec![1], vec![2]]);
    }

    #[test]
    fn nothing_in_nothing_out() {
        assert_eq!(run(10, &[], &[0, 100]), Vec::<Vec<u64>>::new());
    }

    #[test]
    fn zero_max_events_means_one() {
        assert_eq!(run(0, &[(1, 0), (2, 0)], &[]), vec![vec![1], vec![2]]);
    }

    #[test]
    fn deadline_is_first_event_plus_max_age_and_clears_on_close() {
        let t0 = Instant::now();
        let mut op = windows(10);
        let mut out = Vec::new();
        assert_eq!(op.deadline(), None);
        op.process(delivery(1), t0, &mut out);
        op.process(delivery(2), t0 + Duration::from_millis(30), &mut out);
        assert_eq!(op.deadline(), Some(t0 + AGE));
        op.on_tick(t0 + AGE - Duration::from_millis(1), &mut out);
        assert!(out.is_empty());
        op.on_tick(t0 + AGE, &mut out);
        assert_eq!(op.deadline(), None);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].opened_at, t0);
        let events: Vec<u64> = out[0].events.iter().map(|e| e.user_id.get()).collect();
        assert_eq!(events, vec![1, 2]);
    }

    #[test]
    fn each_window_keeps_the_oldest_event_time_of_each_partition() {
        let t0 = Instant::now();
        let mut op = windows(3);
        let mut out = Vec::new();
        for (n, partition) in [(5, 0), (3, 1), (4, 0), (9, 2)] {
            let mut delivery = delivery(n);
            delivery.partition = partition;
            op.process(delivery, t0, &mut out);
        }
        op.on_close(&mut out);
        let oldest: Vec<Vec<(u32, u64)>> =
            out.iter().map(|w| w.oldest_by_partition.clone()).collect();
        assert_eq!(oldest, vec![vec![(0, 4), (1, 3)], vec![(2, 9)]]);
    }

    #[test]
    fn recycled_buffers_are_reused_empty() {
        let t0 = Instant::now();
        let mut op = windows(2);
        let mut out = Vec::new();
        op.process(delivery(1), t0, &mut out);
        op.process(delivery(2), t0, &mut out);
        let first = out.pop().expect("closed on count");
        let buffer = first.events.as_ptr();
        op.recycle(first);
        op.process(delivery(3), t0, &mut out);
        op.process(delivery(4), t0, &mut out);
        op.process(delivery(5), t0, &mut out);
        op.on_close(&mut out);
        let acks: Vec<Vec<u64>> = out.iter().map(|w| w.acks.clone()).collect();
        assert_eq!(acks, vec![vec![3, 4], vec![5]]);
        // The window after the recycled one was filled in the recycled buffer.
        assert_eq!(out[1].events.as_ptr(), buffer);
    }
}
