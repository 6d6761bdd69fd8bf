//! Prometheus metrics served on `/metrics` (the crate, and why it is the one for every binary:
//! `likes_shared::metrics`). No user or content id in any label: cardinality stays fixed.
//!
//! HTTP is `http_server_request_duration_seconds` by `http_route`, `http_request_method` and
//! `http_response_status_code`, as OpenTelemetry's semantic conventions name it: its `_count`
//! is the request rate, its 5xx series the errors. Ingest's own numbers are `likes_ingest_*`.

use crate::cache_breaker::BreakerMetrics;
use crate::hot_counts::HotCountsMetrics;
use likes_shared::metrics::{register_process_metrics, ClientMetrics};
use prometheus::{
    HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts, Registry,
};

pub struct Metrics {
    pub registry: Registry,
    /// `http_server_request_duration_seconds{http_route, http_request_method,
    /// http_response_status_code}`.
    pub http: HistogramVec,
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
    /// Requests refused by admission control, by which limit; hand them to `Admission::new`.
    pub rate_limited: RateLimitMetrics,
    /// Calls to Redis and Pulsar (and the store, when ingest reads it), by operation and error.
    pub calls: ClientMetrics,
}

/// `likes_ingest_rate_limited_total{limit}`: which bound refused a request (429). Cheap to clone.
#[derive(Clone)]
pub struct RateLimitMetrics {
    /// The per-user token bucket.
    pub user: IntCounter,
    /// The per-client-address token bucket.
    pub client: IntCounter,
    /// The bound on requests in flight.
    pub in_flight: IntCounter,
    family: IntCounterVec,
}

impl RateLimitMetrics {
    /// Unregistered metrics; [`Metrics::new`] registers its own.
    pub fn new() -> Result<Self, prometheus::Error> {
        let family = IntCounterVec::new(
            Opts::new(
                "likes_ingest_rate_limited_total",
                "Requests refused with 429, by the limit that refused them",
            ),
            &["limit"],
        )?;
        Ok(RateLimitMetrics {
            user: family.with_label_values(&["user"]),
            client: family.with_label_values(&["client"]),
            in_flight: family.with_label_values(&["in_flight"]),
            family,
        })
    }
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
    /// Bytes on disk, and the budget past which a publish that needs the spool is refused
    /// (503): how close an outage has brought the instance to refusing likes.
    pub bytes: IntGauge,
    pub max_bytes: IntGauge,
}

impl SpoolMetrics {
    /// Unregistered metrics; [`Metrics::new`] registers its own.
    pub fn new() -> Result<Self, prometheus::Error> {
        Ok(SpoolMetrics {
            spooled: IntCounter::new(
                "likes_ingest_spool_events_total",
                "Events spooled locally while the bus was down or the spool draining",
            )?,
            drained: IntCounter::new(
                "likes_ingest_spool_drained_total",
                "Spooled events published to the bus and acked",
            )?,
            depth: IntGauge::new(
                "likes_ingest_spool_depth",
                "Spooled events not yet acked by the bus",
            )?,
            bytes: IntGauge::new(
                "likes_ingest_spool_bytes",
                "Bytes the spool holds on disk (trimmed a segment at a time once acked)",
            )?,
            max_bytes: IntGauge::new(
                "likes_ingest_spool_max_bytes",
                "The spool's byte budget: past it, likes that need the spool are refused (503)",
            )?,
        })
    }

    /// The gauges from the spool's `depth` (events) and its log's bytes.
    pub(crate) fn set_from(&self, depth: u64, log: &likes_shared::log::LogPublisher) {
        let gauge = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        let (bytes, max_bytes) = log.bytes();
        self.depth.set(gauge(depth));
        self.bytes.set(gauge(bytes));
        self.max_bytes.set(gauge(max_bytes));
    }

    fn register(&self, registry: &Registry) -> Result<(), prometheus::Error> {
        registry.register(Box::new(self.spooled.clone()))?;
        registry.register(Box::new(self.drained.clone()))?;
        registry.register(Box::new(self.bytes.clone()))?;
        registry.register(Box::new(self.max_bytes.clone()))?;
        registry.register(Box::new(self.depth.clone()))
    }
}

impl Metrics {
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        register_process_metrics(&registry)?;
        let http = HistogramVec::new(
            HistogramOpts::new(
                "http_server_request_duration_seconds",
                "Duration of HTTP server requests",
            )
            .buckets(vec![
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
            ]),
            &[
                "http_route",
                "http_request_method",
                "http_response_status_code",
            ],
        )?;
        let events_published = IntCounter::new(
            "likes_ingest_events_published_total",
            "Like events made durable",
        )?;
        let publish_failures = IntCounter::new(
            "likes_ingest_publish_failures_total",
            "Publishes refused or failed (503)",
        )?;
        registry.register(Box::new(http.clone()))?;
        registry.register(Box::new(events_published.clone()))?;
        registry.register(Box::new(publish_failures.clone()))?;
        let spool = SpoolMetrics::new()?;
        spool.register(&registry)?;
        let breaker = BreakerMetrics::new()?;
        breaker.register(&registry)?;
        let hot_counts = HotCountsMetrics::new()?;
        hot_counts.register(&registry)?;
        let stale_answers = IntCounter::new(
            "likes_ingest_stale_answers_total",
            "Answers given without the state cache, marked stale",
        )?;
        registry.register(Box::new(stale_answers.clone()))?;
        let connections_open = IntGauge::new(
            "likes_ingest_http_connections_open",
            "Client connections open now",
        )?;
        registry.register(Box::new(connections_open.clone()))?;
        let rate_limited = RateLimitMetrics::new()?;
        registry.register(Box::new(rate_limited.family.clone()))?;
        let calls = ClientMetrics::new()?;
        calls.register(&registry)?;
        Ok(Metrics {
            registry,
            http,
            events_published,
            publish_failures,
            spool,
            breaker,
            hot_counts,
            stale_answers,
            connections_open,
            rate_limited,
            calls,
        })
    }

    pub fn render(&self) -> String {
        likes_shared::metrics::render(&self.registry)
    }
}
