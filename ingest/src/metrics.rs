//! Prometheus metrics served on `/metrics`. No user ids in labels: cardinality stays fixed.

use crate::cache_breaker::BreakerMetrics;
use crate::hot_counts::HotCountsMetrics;
use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts, Registry,
    TextEncoder,
};

pub struct Metrics {
    pub registry: Registry,
    pub requests: IntCounterVec,
    pub latency: HistogramVec,
    pub events_published: IntCounter,
    pub publish_failures: IntCounter,
    /// The spool's counters; hand them to `SpooledPublisher::open_with_metrics`.
    pub spool: SpoolMetrics,
    /// The state cache breaker's counters; hand them to `BreakerCache::new`.
    pub breaker: BreakerMetrics,
    /// The hot-key read cache's hits and misses; hand them to `HotCounts::new`.
    pub hot_counts: HotCountsMetrics,
    /// Answers marked `"stale": true`: given without the state cache (DESIGN section 8).
    pub stale_answers: IntCounter,
    /// Client connections open now (at most `http.max_connections`).
    pub connections_open: IntGauge,
}

/// The spool's metrics (DESIGN section 8): how much went to the local spool, how much of it the
/// drainer has delivered, and how much waits. Cheap to clone (the counters are shared).
#[derive(Clone)]
pub struct SpoolMetrics {
    /// Events made durable in the spool because the primary refused or the spool was draining.
    pub spooled: IntCounter,
    /// Spooled events the primary has acked.
    pub drained: IntCounter,
    /// Events in the spool not yet acked by the primary.
    pub depth: IntGauge,
}

impl SpoolMetrics {
    /// Unregistered metrics; [`Metrics::new`] registers its own.
    pub fn new() -> Result<Self, prometheus::Error> {
        Ok(SpoolMetrics {
            spooled: IntCounter::new(
                "spool_events_total",
                "Events spooled locally while the bus was down or the spool draining",
            )?,
            drained: IntCounter::new(
                "spool_drained_total",
                "Spooled events published to the bus and acked",
            )?,
            depth: IntGauge::new("spool_depth", "Spooled events not yet acked by the bus")?,
        })
    }

    fn register(&self, registry: &Registry) -> Result<(), prometheus::Error> {
        registry.register(Box::new(self.spooled.clone()))?;
        registry.register(Box::new(self.drained.clone()))?;
        registry.register(Box::new(self.depth.clone()))
    }
}

impl Metrics {
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new_custom(Some("likes_ingest".into()), None)?;
        let requests = IntCounterVec::new(
            Opts::new("requests_total", "HTTP requests by route and status"),
            &["route", "status"],
        )?;
        let latency = HistogramVec::new(
            HistogramOpts::new("request_seconds", "HTTP request latency by route").buckets(vec![
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
            ]),
            &["route"],
        )?;
        let events_published =
            IntCounter::new("events_published_total", "Like events made durable")?;
        let publish_failures = IntCounter::new(
            "publish_failures_total",
            "Publishes refused or failed (503)",
        )?;
        registry.register(Box::new(requests.clone()))?;
        registry.register(Box::new(latency.clone()))?;
        registry.register(Box::new(events_published.clone()))?;
        registry.register(Box::new(publish_failures.clone()))?;
        let spool = SpoolMetrics::new()?;
        spool.register(&registry)?;
        let breaker = BreakerMetrics::new()?;
        breaker.register(&registry)?;
        let hot_counts = HotCountsMetrics::new()?;
        hot_counts.register(&registry)?;
        let stale_answers = IntCounter::new(
            "stale_answers_total",
            "Answers given without the state cache, marked stale",
        )?;
        registry.register(Box::new(stale_answers.clone()))?;
        let connections_open =
            IntGauge::new("http_connections_open", "Client connections open now")?;
        registry.register(Box::new(connections_open.clone()))?;
        Ok(Metrics {
            registry,
            requests,
            latency,
            events_published,
            publish_failures,
            spool,
            breaker,
            hot_counts,
            stale_answers,
            connections_open,
        })
    }

    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        if let Err(error) = TextEncoder::new().encode(&self.registry.gather(), &mut buf) {
            tracing::warn!(%error, "metrics encoding failed");
        }
        String::from_utf8(buf).unwrap_or_default()
    }
}
