//! `/metrics` on `LIKES_ADMIN_ADDR`: the process, the worker's counters ([`WorkerCollector`])
//! and, per partition it owns, the subscription's backlog (its lag in entries: the broker counts
//! a producer batch, up to 1000 events, as one) and the event-time lag of its last commit. The
//! broker has no count of the messages behind a batched backlog; the event-time lag is the
//! measure of how far behind a partition is.
//!
//! Why the backlog comes from the admin API: pulsar-rs does not expose the partitions' last
//! message ids, and the broker's count is the one an operator alerts on. The source's stall
//! watch reads the subscriptions every few seconds ([`Subscriptions`]); only the partitions the
//! broker dispatches to this worker are reported, so summing the workers' gauges never counts a
//! partition twice.

use crate::pulsar_source::{ConsumerCounters, Subscriptions};
use crate::runtime::stats::{family, sample};
use crate::{WorkerCollector, WorkerStats};
use likes_shared::shutdown::Shutdown;
use prometheus::core::{Collector, Desc};
use prometheus::proto::{MetricFamily, MetricType};
use prometheus::Registry;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use warp::Filter;

/// The registry a worker serves: the process, the runtime, [`WorkerCollector`] and the
/// partitions' lag.
pub(super) fn registry(
    stats: Arc<WorkerStats>,
    counters: ConsumerCounters,
    owned: OwnedPartitions,
) -> Result<Registry, prometheus::Error> {
    let registry = Registry::new();
    likes_shared::metrics::register_process_metrics(&registry)?;
    registry.register(Box::new(WorkerCollector::new(stats.clone())?))?;
    registry.register(Box::new(PartitionCollector::new(stats, counters, owned)?))?;
    Ok(registry)
}

/// Serves `/metrics` on `listener` until `shutdown`. Built here, outside any `async fn`, so the
/// server future is `Send` (warp's path filters trip rustc's higher-ranked `Send` check when held
/// across an await).
pub(super) fn serve(
    listener: tokio::net::TcpListener,
    registry: Registry,
    mut shutdown: Shutdown,
) -> impl std::future::Future<Output = ()> + Send {
    warp::serve(routes(registry))
        .incoming(listener)
        .graceful(async move { shutdown.wait().await })
        .run()
}

fn routes(
    registry: Registry,
) -> impl Filter<Extract = (impl warp::Reply,), Error = warp::Rejection> + Clone + Send + Sync + 'static
{
    warp::path("metrics")
        .and(warp::path::end())
        .and(warp::get())
        .map(move || {
            warp::reply::with_header(
                likes_shared::metrics::render(&registry),
                warp::http::header::CONTENT_TYPE,
                warp::http::HeaderValue::from_static("text/plain; version=0.0.4"),
            )
        })
}

const REBUILDS: (&str, &str) = (
    "likes_pipeline_consumer_rebuilds_total",
    "Pulsar consumers dropped and subscribed anew (errors, stalls)",
);
const PASSED_ENTRIES: (&str, &str) = (
    "likes_pipeline_passed_entries_total",
    "Entries the Pulsar consumer could not unpack, read through the admin API, committed and \
     moved past",
);
const POLL_ERRORS: (&str, &str) = (
    "likes_pipeline_lag_poll_errors_total",
    "Partition stats the Pulsar admin API did not give to the subscription poll (their backlog \
     gauges are missing, and the stall watch cannot look at them)",
);
const BACKLOG: (&str, &str) = (
    "likes_pipeline_partition_backlog",
    "Entries not acked yet (a producer batch is one), per partition this worker owns",
);
const PARTITION_EVENT_LAG: (&str, &str) = (
    "likes_pipeline_partition_event_lag_seconds",
    "From the oldest event of the partition in the last window that held any (ingest time) to \
     its commit, per partition this worker owns",
);

/// The partitions this worker owns: those whose subscription, as last read, has `consumer`
/// for its active consumer.
pub(super) struct OwnedPartitions {
    pub subscriptions: Arc<Subscriptions>,
    pub consumer: String,
}

/// The consumer's counters and, per partition this worker owns (as last polled), its backlog
/// and event-time lag.
struct PartitionCollector {
    stats: Arc<WorkerStats>,
    counters: ConsumerCounters,
    owned: OwnedPartitions,
    descs: Vec<Desc>,
}

impl PartitionCollector {
    fn new(
        stats: Arc<WorkerStats>,
        counters: ConsumerCounters,
        owned: OwnedPartitions,
    ) -> Result<Self, prometheus::Error> {
        let descs = [
            (REBUILDS, vec![]),
            (PASSED_ENTRIES, vec![]),
            (POLL_ERRORS, vec![]),
            (BACKLOG, vec!["partition".to_owned()]),
            (PARTITION_EVENT_LAG, vec!["partition".to_owned()]),
        ]
        .into_iter()
        .map(|((name, help), labels)| {
            Desc::new(name.into(), help.into(), labels, Default::default())
        })
        .collect::<Result<_, _>>()?;
        Ok(PartitionCollector {
            stats,
            counters,
            owned,
            descs,
        })
    }
}

impl Collector for PartitionCollector {
    fn desc(&self) -> Vec<&Desc> {
        self.descs.iter().collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let rebuilds = self.counters.rebuilds.load(Relaxed) as f64;
        let passed = self.counters.passed_entries.load(Relaxed) as f64;
        let subscriptions = &self.owned.subscriptions;
        let poll_errors = subscriptions.poll_errors() as f64;
        let owned = subscriptions.owned_backlog(&self.owned.consumer);
        let backlog = owned
            .iter()
            .map(|(p, b)| {
                sample(
                    MetricType::GAUGE,
                    *b as f64,
                    &[("partition", p.to_string())],
                )
            })
            .collect();
        // Only the partitions the broker dispatches to this worker (as last polled): a partition
        // that moved keeps its last lag in the stats, and another worker reports it now.
        let event_lags = self.stats.partition_event_lag_ms.lock();
        let event_lag = owned
            .iter()
            .filter_map(|(p, _)| {
                let seconds = *event_lags.get(p)? as f64 / 1e3;
                Some(sample(
                    MetricType::GAUGE,
                    seconds,
                    &[("partition", p.to_string())],
                ))
            })
            .collect();
        vec![
            family(
                REBUILDS.0,
                REBUILDS.1,
                MetricType::COUNTER,
                vec![sample(MetricType::COUNTER, rebuilds, &[])],
            ),
            family(
                PASSED_ENTRIES.0,
                PASSED_ENTRIES.1,
                MetricType::COUNTER,
                vec![sample(MetricType::COUNTER, passed, &[])],
            ),
            family(
                POLL_ERRORS.0,
                POLL_ERRORS.1,
                MetricType::COUNTER,
                vec![sample(MetricType::COUNTER, poll_errors, &[])],
            ),
            family(BACKLOG.0, BACKLOG.1, MetricType::GAUGE, backlog),
            family(
                PARTITION_EVENT_LAG.0,
                PARTITION_EVENT_LAG.1,
                MetricType::GAUGE,
                event_lag,
            ),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use likes_sink::pulsar_admin::SubscriptionState;
    use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

    #[tokio::test]
    async fn counters_and_owned_partitions_are_rendered() -> Result<(), prometheus::Error> {
        let stats = Arc::new(WorkerStats::default());
        stats.events.store(42, Relaxed);
        stats.windows.store(2, Relaxed);
        stats.commit_durations.observe(1.0);
        stats.commit_durations.observe(0.5);
        stats.window_sizes.observe(12.0);
        stats.window_sizes.observe(30.0);
        stats.window_durations.observe(0.05);
        stats.largest_window.store(30, Relaxed);
        stats.event_lag_ms.store(250, Relaxed);
        stats.write_conflicts.store(3, Relaxed);
        stats
            .event_commit_lag
            .record_window(1_000, [900, 100].into_iter());
        // Partition 5 moved away after a commit: its lag is not this worker's to report.
        stats
            .partition_event_lag_ms
            .lock()
            .extend([(3, 1_250), (5, 40)]);
        let subscriptions = Arc::new(Subscriptions::default());
        let state = |backlog, active: &str| SubscriptionState {
            backlog,
            active_consumer: Some(active.to_owned()),
            consumers: vec![active.to_owned()],
        };
        subscriptions.set(3, Some(state(7, "worker-a")));
        subscriptions.set(4, Some(state(9, "worker-b")));
        let counters = ConsumerCounters {
            rebuilds: Arc::new(AtomicU64::new(1)),
            passed_entries: Arc::new(AtomicU64::new(2)),
        };
        let owned = OwnedPartitions {
            subscriptions,
            consumer: "worker-a".to_owned(),
        };
        let registry = registry(stats, counters, owned)?;
        let text = likes_shared::metrics::render(&registry);
        for expected in [
            "likes_pipeline_events_total 42\n",
            "likes_pipeline_window_events_sum 42\n",
            "likes_pipeline_window_events_count 2\n",
            "likes_pipeline_window_duration_seconds_count 1\n",
            "likes_pipeline_largest_window_events 30\n",
            "likes_pipeline_event_lag_seconds 0.25\n",
            "likes_pipeline_consumer_rebuilds_total 1\n",
            "likes_pipeline_passed_entries_total 2\n",
            "likes_pipeline_lag_poll_errors_total 0\n",
            "likes_pipeline_last_commit_age_seconds ",
            "likes_pipeline_commit_duration_seconds_sum 1.5\n",
            "likes_pipeline_commit_duration_seconds_count 2\n",
            "likes_sink_write_conflicts_total 3\n",
            "likes_sink_transaction_duration_seconds_count 0\n",
            "likes_pipeline_partition_backlog{partition=\"3\"} 7\n",
            "likes_pipeline_partition_event_lag_seconds{partition=\"3\"} 1.25\n",
            "likes_pipeline_event_commit_lag_seconds_bucket{le=\"0.1\"} 1\n",
            "likes_pipeline_event_commit_lag_seconds_count 2\n",
            "process_resident_memory_bytes ",
            "tokio_runtime_alive_tasks ",
        ] {
            assert!(text.contains(expected), "no {expected:?} in\n{text}");
        }
        assert!(!text.contains("partition=\"5\""), "{text}");
        assert!(
            !text.contains("partition=\"4\""),
            "another worker's partition: {text}"
        );
        Ok(())
    }
}
