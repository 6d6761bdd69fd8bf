//! The metrics every likes binary serves on `/metrics`: the process, the tokio runtime, and the
//! latency of each call to a dependency (Redis, Pulsar, the store), named after OpenTelemetry's
//! semantic conventions so a dashboard built for any OTel-instrumented service reads them.
//!
//! Why the `prometheus` crate, for every binary, and not OpenTelemetry metrics with a Prometheus
//! exporter: Prometheus pulls, and the crate renders its text format straight from the atomics
//! the hot paths bump (a counter is one `fetch_add`, no SDK aggregation pipeline, no export
//! interval, no second copy of the numbers). The OpenTelemetry Prometheus exporter is not
//! maintained any more upstream, and OTLP metrics would need a collector in front of
//! Prometheus. Traces, where OpenTelemetry is the standard, go through OpenTelemetry.
//!
//! Each process has one [`Registry`] per served `/metrics`, never the crate's global one: tests
//! run many instances in one process, and each must count only its own.

use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;
use prometheus::{HistogramOpts, HistogramVec, IntGauge, Registry};
use std::time::Duration;

pub use prometheus::Error as MetricsError;

/// Latency buckets of one call to a dependency, in seconds: a Redis script is well under a
/// millisecond on loopback, a Pulsar ack a few, a store transaction tens to hundreds.
const CALL_BUCKETS: [f64; 14] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

/// How each call to a dependency went: `db_client_operation_duration_seconds` (Redis, the
/// store) and `messaging_client_operation_duration_seconds` (Pulsar), with `error_type` empty
/// for a call that succeeded, as the conventions have it. Errors are the `error_type!=""`
/// series of the same histogram, so an error ratio never divides two differently-sampled
/// numbers. Cheap to clone.
#[derive(Clone)]
pub struct ClientMetrics {
    db: HistogramVec,
    messaging: HistogramVec,
}

impl ClientMetrics {
    /// Unregistered; [`Self::register`] puts them in a registry.
    pub fn new() -> Result<Self, MetricsError> {
        let calls = |name: &str, help: &str, labels: &[&str]| {
            HistogramVec::new(
                HistogramOpts::new(name, help).buckets(CALL_BUCKETS.to_vec()),
                labels,
            )
        };
        Ok(ClientMetrics {
            db: calls(
                "db_client_operation_duration_seconds",
                "Duration of calls to a database or cache, by system and operation",
                &["db_system_name", "db_operation_name", "error_type"],
            )?,
            messaging: calls(
                "messaging_client_operation_duration_seconds",
                "Duration of calls to the message broker, by operation",
                &["messaging_system", "messaging_operation_name", "error_type"],
            )?,
        })
    }

    pub fn register(&self, registry: &Registry) -> Result<(), MetricsError> {
        registry.register(Box::new(self.db.clone()))?;
        registry.register(Box::new(self.messaging.clone()))
    }

    /// One call to a database or cache; `error` names what went wrong, `None` when it worked.
    pub fn db_call(
        &self,
        system: &str,
        operation: &str,
        took: Duration,
        error: Option<&'static str>,
    ) {
        self.db
            .with_label_values(&[system, operation, error.unwrap_or("")])
            .observe(took.as_secs_f64());
    }

    /// One call to the message broker.
    pub fn messaging_call(
        &self,
        system: &str,
        operation: &str,
        took: Duration,
        error: Option<&'static str>,
    ) {
        self.messaging
            .with_label_values(&[system, operation, error.unwrap_or("")])
            .observe(took.as_secs_f64());
    }
}

/// Registers what every binary reports about itself: the process (`process_resident_memory_bytes`,
/// `process_open_fds`, CPU seconds, start time; Linux only) and the tokio runtime that serves
/// the scrape (`tokio_runtime_alive_tasks`, workers, global queue depth).
pub fn register_process_metrics(registry: &Registry) -> Result<(), MetricsError> {
    #[cfg(target_os = "linux")]
    registry.register(Box::new(
        prometheus::process_collector::ProcessCollector::for_self(),
    ))?;
    registry.register(Box::new(RuntimeCollector::new()?))
}

/// The tokio runtime the scrape runs on, read at each scrape (tokio keeps the counts itself).
struct RuntimeCollector {
    alive_tasks: IntGauge,
    workers: IntGauge,
    global_queue_depth: IntGauge,
    descs: Vec<Desc>,
}

impl RuntimeCollector {
    fn new() -> Result<Self, MetricsError> {
        let alive_tasks = IntGauge::new(
            "tokio_runtime_alive_tasks",
            "Tasks spawned on the runtime and not finished",
        )?;
        let workers = IntGauge::new("tokio_runtime_workers", "Worker threads of the runtime")?;
        let global_queue_depth = IntGauge::new(
            "tokio_runtime_global_queue_depth",
            "Tasks waiting in the runtime's global queue",
        )?;
        let descs = [&alive_tasks, &workers, &global_queue_depth]
            .iter()
            .flat_map(|gauge| gauge.desc().into_iter().cloned())
            .collect();
        Ok(RuntimeCollector {
            alive_tasks,
            workers,
            global_queue_depth,
            descs,
        })
    }
}

impl Collector for RuntimeCollector {
    fn desc(&self) -> Vec<&Desc> {
        self.descs.iter().collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return Vec::new();
        };
        let metrics = runtime.metrics();
        let as_gauge = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
        self.alive_tasks.set(as_gauge(metrics.num_alive_tasks()));
        self.workers.set(as_gauge(metrics.num_workers()));
        self.global_queue_depth
            .set(as_gauge(metrics.global_queue_depth()));
        [&self.alive_tasks, &self.workers, &self.global_queue_depth]
            .iter()
            .flat_map(|gauge| gauge.collect())
            .collect()
    }
}

/// The registry's families in Prometheus' text format.
pub fn render(registry: &Registry) -> String {
    use prometheus::Encoder;
    let mut buf = Vec::new();
    if let Err(error) = prometheus::TextEncoder::new().encode(&registry.gather(), &mut buf) {
        tracing::warn!(%error, "metrics encoding failed");
    }
    String::from_utf8(buf).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn process_runtime_and_call_metrics_render() -> Result<(), MetricsError> {
        let registry = Registry::new();
        register_process_metrics(&registry)?;
        let calls = ClientMetrics::new()?;
        calls.register(&registry)?;
        calls.db_call("redis", "apply", Duration::from_micros(300), None);
        calls.messaging_call("pulsar", "send", Duration::from_millis(3), Some("timeout"));
        let text = render(&registry);
        for expected in [
            "tokio_runtime_alive_tasks ",
            "tokio_runtime_workers ",
            "process_resident_memory_bytes ",
            "process_open_fds ",
            "db_client_operation_duration_seconds_count{db_operation_name=\"apply\",db_system_name=\"redis\",error_type=\"\"} 1",
            "messaging_client_operation_duration_seconds_count{error_type=\"timeout\",messaging_operation_name=\"send\",messaging_system=\"pulsar\"} 1",
        ] {
            assert!(text.contains(expected), "no {expected:?} in\n{text}");
        }
        Ok(())
    }
}
