//! The event-time → committed lag of every event: from its `ts_ms` (stamped by ingest when it
//! took the like) to the commit of the window that holds it, bucketed like a Prometheus
//! histogram. DESIGN's end-to-end budget (like → TiDB-visible p99 ≤ 2 s) is about this
//! distribution, so the buckets are fine around a second and coarse beyond.
//!
//! Why every event and not one per window: a window's oldest event says how late the window is,
//! not how the likes in it fared; a p99 over windows would weigh a 10-event window like a
//! 1000-event one. The count is taken once per window into a local array, then added to the
//! shared atomics, so the cost per event is a short search in 16 bounds.

use prometheus::proto::{self, MetricFamily, MetricType};
use std::sync::atomic::{AtomicU64, Ordering};

/// The histogram's name and help on `/metrics`.
pub const NAME: &str = "likes_pipeline_event_commit_lag_seconds";
pub const HELP: &str = "From each event's ingest time (ts_ms) to the commit of its window";

/// The buckets' upper bounds, in milliseconds; one more bucket above the last (`+Inf`).
pub const BOUNDS_MS: [u64; 16] = [
    5, 10, 25, 50, 100, 250, 500, 750, 1_000, 1_500, 2_000, 3_000, 5_000, 10_000, 30_000, 60_000,
];
const BUCKETS: usize = BOUNDS_MS.len() + 1;

/// Shared by the worker (which records) and `/metrics` (which reads).
#[derive(Debug, Default)]
pub struct EventLagHistogram {
    /// Events per bucket (not cumulative), the last one above every bound.
    buckets: [AtomicU64; BUCKETS],
    sum_ms: AtomicU64,
}

/// A copy of the histogram at one moment; two of them subtract into the events in between.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventLagSnapshot {
    /// Events per bucket (not cumulative), as in [`EventLagHistogram`].
    pub buckets: [u64; BUCKETS],
    pub sum_ms: u64,
}

impl EventLagHistogram {
    /// Records the events of one window, committed at `committed_ms`, by their `ts_ms`.
    pub fn record_window(&self, committed_ms: u64, ts_ms: impl Iterator<Item = u64>) {
        let mut counts = [0u64; BUCKETS];
        let mut sum_ms = 0u64;
        for ts in ts_ms {
            let lag = committed_ms.saturating_sub(ts);
            sum_ms = sum_ms.saturating_add(lag);
            counts[BOUNDS_MS.partition_point(|bound| *bound < lag)] += 1;
        }
        for (bucket, count) in self.buckets.iter().zip(counts) {
            if count > 0 {
                bucket.fetch_add(count, Ordering::Relaxed);
            }
        }
        self.sum_ms.fetch_add(sum_ms, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> EventLagSnapshot {
        EventLagSnapshot {
            buckets: std::array::from_fn(|i| self.buckets[i].load(Ordering::Relaxed)),
            sum_ms: self.sum_ms.load(Ordering::Relaxed),
        }
    }
}

impl EventLagSnapshot {
    pub fn count(&self) -> u64 {
        self.buckets.iter().sum()
    }

    /// The events recorded since `earlier`.
    pub fn since(&self, earlier: &EventLagSnapshot) -> EventLagSnapshot {
        EventLagSnapshot {
            buckets: std::array::from_fn(|i| self.buckets[i].saturating_sub(earlier.buckets[i])),
            sum_ms: self.sum_ms.saturating_sub(earlier.sum_ms),
        }
    }

    /// Adds another worker's events.
    pub fn merge(&mut self, other: &EventLagSnapshot) {
        for (mine, theirs) in self.buckets.iter_mut().zip(other.buckets) {
            *mine += theirs;
        }
        self.sum_ms += other.sum_ms;
    }

    /// The `q` quantile in milliseconds, interpolated linearly inside its bucket as Prometheus'
    /// `histogram_quantile` does (so it is only as fine as the buckets); `None` without events.
    /// Above the last bound it answers that bound: the lag is at least that.
    pub fn quantile_ms(&self, q: f64) -> Option<f64> {
        let total = self.count();
        if total == 0 {
            return None;
        }
        let rank = q.clamp(0.0, 1.0) * total as f64;
        let mut below = 0u64;
        for (i, count) in self.buckets.iter().enumerate() {
            if *count > 0 && (below + count) as f64 >= rank {
                let Some(upper) = BOUNDS_MS.get(i) else {
                    return Some(BOUNDS_MS[BOUNDS_MS.len() - 1] as f64);
                };
                let lower = if i == 0 { 0 } else { BOUNDS_MS[i - 1] };
                let within = (rank - below as f64) / *count as f64;
                return Some(lower as f64 + (upper - lower) as f64 * within);
            }
            below += count;
        }
        Some(BOUNDS_MS[BOUNDS_MS.len() - 1] as f64)
    }

    /// Reads `likes_pipeline_event_commit_lag_seconds` back from a worker's `/metrics` text
    /// (cumulative buckets, as rendered); `None` if the text has not all of them.
    pub fn from_metrics(text: &str) -> Option<EventLagSnapshot> {
        let mut cumulative = [None; BUCKETS];
        let mut sum_ms = None;
        for line in text.lines() {
            let Some(rest) = line.strip_prefix("likes_pipeline_event_commit_lag_seconds") else {
                continue;
            };
            if let Some(rest) = rest.strip_prefix("_bucket{le=\"") {
                let (le, value) = rest.split_once("\"} ")?;
                let index = match le {
                    "+Inf" => BOUNDS_MS.len(),
                    seconds => {
                        let ms = (seconds.parse::<f64>().ok()? * 1e3).round() as u64;
                        BOUNDS_MS.iter().position(|bound| *bound == ms)?
                    }
                };
                cumulative[index] = Some(value.parse::<u64>().ok()?);
            } else if let Some(value) = rest.strip_prefix("_sum ") {
                sum_ms = Some((value.parse::<f64>().ok()? * 1e3).round() as u64);
            }
        }
        let mut snapshot = EventLagSnapshot {
            sum_ms: sum_ms?,
            ..EventLagSnapshot::default()
        };
        let mut below = 0;
        for (bucket, cumulative) in snapshot.buckets.iter_mut().zip(cumulative) {
            let cumulative = cumulative?;
            *bucket = cumulative.saturating_sub(below);
            below = cumulative;
        }
        Some(snapshot)
    }

    /// This histogram as a Prometheus family (cumulative buckets, seconds).
    pub fn family(&self) -> MetricFamily {
        let mut cumulative = 0u64;
        let buckets = BOUNDS_MS
            .iter()
            .zip(self.buckets)
            .map(|(bound, count)| {
                cumulative += count;
                let mut bucket = proto::Bucket::default();
                bucket.set_upper_bound(*bound as f64 / 1e3);
                bucket.set_cumulative_count(cumulative);
                bucket
            })
            .collect();
        let mut histogram = proto::Histogram::default();
        histogram.set_bucket(buckets);
        histogram.set_sample_count(self.count());
        histogram.set_sample_sum(self.sum_ms as f64 / 1e3);
        let mut metric = proto::Metric::default();
        metric.set_histogram(histogram);
        super::stats::family(NAME, HELP, MetricType::HISTOGRAM, vec![metric])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_by_upper_bound_inclusive() {
        let histogram = EventLagHistogram::default();
        // Lags 0, 5, 6, 2000, 2001 and 70000 ms.
        histogram.record_window(
            100_000,
            [100_000, 99_995, 99_994, 98_000, 97_999, 30_000].into_iter(),
        );
        let snapshot = histogram.snapshot();
        assert_eq!(snapshot.buckets[0], 2);
        assert_eq!(snapshot.buckets[1], 1);
        assert_eq!(snapshot.buckets[10], 1);
        assert_eq!(snapshot.buckets[11], 1);
        assert_eq!(snapshot.buckets[16], 1);
        assert_eq!(snapshot.count(), 6);
        assert_eq!(snapshot.sum_ms, 5 + 6 + 2_000 + 2_001 + 70_000);
    }

    #[test]
    fn quantiles_interpolate_inside_the_bucket() {
        let histogram = EventLagHistogram::default();
        // 100 events in (100, 250] ms.
        histogram.record_window(1_000, std::iter::repeat_n(800, 100));
        let snapshot = histogram.snapshot();
        assert_eq!(snapshot.quantile_ms(0.5), Some(175.0));
        assert_eq!(snapshot.quantile_ms(1.0), Some(250.0));
        assert_eq!(EventLagSnapshot::default().quantile_ms(0.5), None);
    }

    #[test]
    fn rendered_text_reads_back_the_same() {
        let histogram = EventLagHistogram::default();
        histogram.record_window(10_000, [9_999, 9_000, 8_000, 1_000].into_iter());
        let mut text = Vec::new();
        prometheus::Encoder::encode(
            &prometheus::TextEncoder::new(),
            &[histogram.snapshot().family()],
            &mut text,
        )
        .expect("encodes");
        let text = String::from_utf8(text).expect("utf-8");
        assert!(
            text.contains("likes_pipeline_event_commit_lag_seconds_count 4\n"),
            "{text}"
        );
        assert_eq!(
            EventLagSnapshot::from_metrics(&text),
            Some(histogram.snapshot())
        );
        let later = EventLagHistogram::default();
        later.record_window(10_000, [9_999, 9_000, 8_000, 1_000, 9_990].into_iter());
        let between = later.snapshot().since(&histogram.snapshot());
        assert_eq!(between.count(), 1);
        assert_eq!(between.sum_ms, 10);
    }
}
