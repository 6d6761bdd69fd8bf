//! What a worker counts while it runs, and [`WorkerCollector`], which serves it to Prometheus.
//!
//! The counts are plain atomics the loop bumps (and tests read) plus the crate's histograms;
//! the collector turns them into metric families at each scrape, so there is one set of
//! numbers, read by both. The embedded `likes` registers it beside ingest's metrics, a
//! `likes-pipeline run` worker on its own `/metrics` with the partitions' lag
//! (`distributed/metrics.rs`).

use super::event_lag::{self, EventLagHistogram};
use likes_shared::hlc::now_ms;
use prometheus::core::{Collector, Desc};
use prometheus::proto::{self, MetricFamily, MetricType};
use prometheus::{Histogram, HistogramOpts};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

/// Running totals, readable while the worker runs (tests, metrics).
#[derive(Debug)]
pub struct WorkerStats {
    pub events: AtomicU64,
    pub windows: AtomicU64,
    pub rows_written: AtomicU64,
    /// Store calls repeated after an outage (a transient error).
    pub retries: AtomicU64,
    /// Of those, the ones another transaction caused (a write conflict, a deadlock).
    pub write_conflicts: AtomicU64,
    /// Letters published: one per window with refused changes, one per undecodable record.
    pub dead_letters: AtomicU64,
    /// Windows the store refused for good, searched for the changes it refuses.
    pub bisections: AtomicU64,
    /// Changes the store refused on their own, whose events were dead-lettered.
    pub poison_changes: AtomicU64,
    /// Events per committed window.
    pub window_sizes: Histogram,
    /// How long each window stayed open, from its first event to its close, in seconds.
    pub window_durations: Histogram,
    /// From a window's close to its ack, in seconds.
    pub commit_durations: Histogram,
    /// Each call of the store's `apply_window` (one transaction), in seconds, failed ones too.
    pub transactions: Histogram,
    /// The largest committed window.
    pub largest_window: AtomicU64,
    /// When the last window committed (wall ms), or when the worker started: a worker that
    /// stops committing shows as the age of this, which grows, while its lag gauges keep the
    /// values of their last commit.
    pub last_commit_ms: AtomicU64,
    /// From the oldest event of the last committed window (its ingest time) to the commit, in
    /// milliseconds: how far the store lags the likes, in event time.
    pub event_lag_ms: AtomicU64,
    /// The same per partition, from the last committed window that held events of it: a
    /// partition whose owner falls behind shows here while the others stay low. Entries stay
    /// after the partition moves away; readers keep those of the partitions they own.
    pub partition_event_lag_ms: parking_lot::Mutex<BTreeMap<u32, u64>>,
    /// Every committed event by its lag from ingest time to commit (`runtime/event_lag.rs`).
    pub event_commit_lag: EventLagHistogram,
}

/// A histogram with options written here, which the crate cannot refuse: a valid name, no
/// labels, bounds that increase.
fn histogram(name: &str, help: &str, buckets: &[f64]) -> Histogram {
    Histogram::with_opts(HistogramOpts::new(name, help).buckets(buckets.to_vec()))
        .expect("static histogram options are valid")
}

impl Default for WorkerStats {
    fn default() -> Self {
        WorkerStats {
            events: AtomicU64::default(),
            windows: AtomicU64::default(),
            rows_written: AtomicU64::default(),
            retries: AtomicU64::default(),
            write_conflicts: AtomicU64::default(),
            dead_letters: AtomicU64::default(),
            bisections: AtomicU64::default(),
            poison_changes: AtomicU64::default(),
            window_sizes: histogram(
                "likes_pipeline_window_events",
                "Events per committed window",
                &[
                    1.0, 10.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0, 10000.0,
                ],
            ),
            window_durations: histogram(
                "likes_pipeline_window_duration_seconds",
                "From a window's first event to its close (its age or the count closed it)",
                &[0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5],
            ),
            commit_durations: histogram(
                "likes_pipeline_commit_duration_seconds",
                "From a window's close to its ack (collapse, transaction, retries, ack)",
                &[
                    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
                ],
            ),
            transactions: histogram(
                "likes_sink_transaction_duration_seconds",
                "One window's transaction in the store, failed ones included",
                &[
                    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                ],
            ),
            largest_window: AtomicU64::default(),
            last_commit_ms: AtomicU64::new(now_ms()),
            event_lag_ms: AtomicU64::default(),
            partition_event_lag_ms: parking_lot::Mutex::default(),
            event_commit_lag: EventLagHistogram::default(),
        }
    }
}

impl WorkerStats {
    /// The histograms the crate keeps, for [`WorkerCollector`].
    fn histograms(&self) -> [&Histogram; 4] {
        [
            &self.window_sizes,
            &self.window_durations,
            &self.commit_durations,
            &self.transactions,
        ]
    }
}

/// Serves a worker's [`WorkerStats`] to a Prometheus registry, read at each scrape.
pub struct WorkerCollector {
    stats: Arc<WorkerStats>,
    descs: Vec<Desc>,
}

/// Counters and gauges of [`WorkerStats`]: name, help, whether a counter, and the reading.
type Reading = (
    &'static str,
    &'static str,
    MetricType,
    fn(&WorkerStats) -> f64,
);

const READINGS: [Reading; 11] = [
    (
        "likes_pipeline_events_total",
        "Events received from the bus",
        MetricType::COUNTER,
        |s| s.events.load(Relaxed) as f64,
    ),
    (
        "likes_pipeline_windows_total",
        "Windows committed and acked",
        MetricType::COUNTER,
        |s| s.windows.load(Relaxed) as f64,
    ),
    (
        "likes_pipeline_rows_written_total",
        "Rows the store wrote",
        MetricType::COUNTER,
        |s| s.rows_written.load(Relaxed) as f64,
    ),
    (
        "likes_pipeline_retries_total",
        "Store calls repeated after an outage or a write conflict",
        MetricType::COUNTER,
        |s| s.retries.load(Relaxed) as f64,
    ),
    (
        "likes_sink_write_conflicts_total",
        "Transactions that lost to another writer of the same rows (retried)",
        MetricType::COUNTER,
        |s| s.write_conflicts.load(Relaxed) as f64,
    ),
    (
        "likes_pipeline_dead_letters_total",
        "Dead letters published",
        MetricType::COUNTER,
        |s| s.dead_letters.load(Relaxed) as f64,
    ),
    (
        "likes_pipeline_bisections_total",
        "Windows the store refused for good, searched for poison",
        MetricType::COUNTER,
        |s| s.bisections.load(Relaxed) as f64,
    ),
    (
        "likes_pipeline_poison_changes_total",
        "Changes the store refused on their own",
        MetricType::COUNTER,
        |s| s.poison_changes.load(Relaxed) as f64,
    ),
    (
        "likes_pipeline_largest_window_events",
        "Events in the largest window committed",
        MetricType::GAUGE,
        |s| s.largest_window.load(Relaxed) as f64,
    ),
    (
        "likes_pipeline_last_commit_age_seconds",
        "Since the last window committed (or the worker started); grows while nothing commits",
        MetricType::GAUGE,
        |s| now_ms().saturating_sub(s.last_commit_ms.load(Relaxed)) as f64 / 1e3,
    ),
    (
        "likes_pipeline_event_lag_seconds",
        "From the oldest event of the last committed window (ingest time) to its commit",
        MetricType::GAUGE,
        |s| s.event_lag_ms.load(Relaxed) as f64 / 1e3,
    ),
];

/// The histogram kept in [`EventLagHistogram`]'s own atomics: name and help.
const EVENT_COMMIT_LAG: (&str, &str) = (event_lag::NAME, event_lag::HELP);

impl WorkerCollector {
    pub fn new(stats: Arc<WorkerStats>) -> Result<Self, prometheus::Error> {
        let mut descs = Vec::new();
        let (lag_name, lag_help) = EVENT_COMMIT_LAG;
        for (name, help) in READINGS
            .iter()
            .map(|(name, help, _, _)| (*name, *help))
            .chain([(lag_name, lag_help)])
        {
            descs.push(Desc::new(
                name.into(),
                help.into(),
                Vec::new(),
                Default::default(),
            )?);
        }
        for histogram in stats.histograms() {
            descs.extend(histogram.desc().into_iter().cloned());
        }
        Ok(WorkerCollector { stats, descs })
    }
}

impl Collector for WorkerCollector {
    fn desc(&self) -> Vec<&Desc> {
        self.descs.iter().collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let stats = &*self.stats;
        let mut families: Vec<MetricFamily> = READINGS
            .iter()
            .map(|(name, help, kind, read)| {
                family(name, help, *kind, vec![sample(*kind, read(stats), &[])])
            })
            .collect();
        families.push(stats.event_commit_lag.snapshot().family());
        for histogram in stats.histograms() {
            families.extend(histogram.collect());
        }
        families
    }
}

/// A family of `metrics`, all of one kind.
pub(crate) fn family(
    name: &str,
    help: &str,
    kind: MetricType,
    metrics: Vec<proto::Metric>,
) -> MetricFamily {
    let mut family = MetricFamily::default();
    family.set_name(name.into());
    family.set_help(help.into());
    family.set_field_type(kind);
    family.set_metric(metrics);
    family
}

/// One counter or gauge sample with `labels`.
pub(crate) fn sample(kind: MetricType, value: f64, labels: &[(&str, String)]) -> proto::Metric {
    let mut metric = proto::Metric::default();
    metric.set_label(
        labels
            .iter()
            .map(|(name, value)| {
                let mut pair = proto::LabelPair::default();
                pair.set_name((*name).into());
                pair.set_value(value.clone());
                pair
            })
            .collect(),
    );
    if kind == MetricType::COUNTER {
        let mut counter = proto::Counter::default();
        counter.set_value(value);
        metric.set_counter(counter);
    } else {
        let mut gauge = proto::Gauge::default();
        gauge.set_value(value);
        metric.set_gauge(gauge);
    }
    metric
}
