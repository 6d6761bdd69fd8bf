//! `/metrics` on `LIKES_ADMIN_ADDR`: the worker's counters and, per partition it owns, the
//! subscription's backlog (its lag in entries: the broker counts a producer batch, up to 1000
//! events, as one) and the event-time lag of its last commit, in Prometheus' text format. The
//! broker has no count of the messages behind a batched backlog; the event-time lag is the
//! measure of how far behind a partition is.
//!
//! Why rendered by hand: the worker already counts in atomics ([`WorkerStats`]), which the
//! runtime shares with tests; the text format of a few counters and gauges is a handful of lines,
//! and mirroring the atomics into a registry would add a second set of numbers to keep in step.
//!
//! Why the backlog comes from the admin API: pulsar-rs does not expose the partitions' last
//! message ids, and the broker's count is the one an operator alerts on. A poll every
//! [`LAG_EVERY`] keeps only the partitions the broker dispatches to this worker, so summing the
//! workers' gauges never counts a partition twice.

use crate::WorkerStats;
use likes_shared::shutdown::Shutdown;
use likes_shared::topics::TopicName;
use likes_sink::pulsar_admin::PulsarAdmin;
use parking_lot::Mutex;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;
use warp::Filter;

/// How often the partitions' backlog is read.
pub const LAG_EVERY: Duration = Duration::from_secs(5);

/// The backlog of each partition this worker owns, as last read.
#[derive(Debug, Default)]
pub struct PartitionLag {
    backlog: Mutex<BTreeMap<u32, u64>>,
}

/// What the lag poll asks about.
pub(super) struct LagPoll {
    pub admin: PulsarAdmin,
    pub topic: TopicName,
    pub partitions: u32,
    pub subscription: String,
    pub consumer_name: String,
    pub lag: Arc<PartitionLag>,
}

impl LagPoll {
    pub(super) async fn run(self, mut shutdown: Shutdown) {
        let mut ticks = tokio::time::interval(LAG_EVERY);
        loop {
            tokio::select! {
                _ = shutdown.wait() => return,
                _ = ticks.tick() => {}
            }
            let mut owned = BTreeMap::new();
            for partition in 0..self.partitions {
                let topic = self.topic.partition(partition);
                match self
                    .admin
                    .subscription_state(&topic, &self.subscription)
                    .await
                {
                    Ok(Some(state))
                        if state.active_consumer.as_deref() == Some(&self.consumer_name) =>
                    {
                        owned.insert(partition, state.backlog);
                    }
                    Ok(_) => {}
                    Err(error) => tracing::debug!(%error, partition, "lag poll: no stats"),
                }
            }
            *self.lag.backlog.lock() = owned;
        }
    }
}

/// Serves `/metrics` on `listener` until `shutdown`. Built here, outside any `async fn`, so the
/// server future is `Send` (warp's path filters trip rustc's higher-ranked `Send` check when held
/// across an await).
pub(super) fn serve(
    listener: tokio::net::TcpListener,
    stats: Arc<WorkerStats>,
    rebuilds: Arc<AtomicU64>,
    lag: Arc<PartitionLag>,
    mut shutdown: Shutdown,
) -> impl std::future::Future<Output = ()> + Send {
    warp::serve(routes(stats, rebuilds, lag))
        .incoming(listener)
        .graceful(async move { shutdown.wait().await })
        .run()
}

fn routes(
    stats: Arc<WorkerStats>,
    rebuilds: Arc<AtomicU64>,
    lag: Arc<PartitionLag>,
) -> impl Filter<Extract = (impl warp::Reply,), Error = warp::Rejection> + Clone + Send + Sync + 'static
{
    warp::path("metrics")
        .and(warp::path::end())
        .and(warp::get())
        .map(move || {
            warp::reply::with_header(
                render(&stats, rebuilds.load(Relaxed), &lag),
                warp::http::header::CONTENT_TYPE,
                warp::http::HeaderValue::from_static("text/plain; version=0.0.4"),
            )
        })
}

fn render(stats: &WorkerStats, rebuilds: u64, lag: &PartitionLag) -> String {
    let mut out = String::new();
    let counters: [(&str, &str, u64); 9] = [
        (
            "events_total",
            "Events received from the bus",
            stats.events.load(Relaxed),
        ),
        (
            "windows_total",
            "Windows committed and acked",
            stats.windows.load(Relaxed),
        ),
        (
            "rows_written_total",
            "Rows the store wrote",
            stats.rows_written.load(Relaxed),
        ),
        (
            "retries_total",
            "Store calls repeated after an outage",
            stats.retries.load(Relaxed),
        ),
        (
            "dead_letters_total",
            "Dead letters published",
            stats.dead_letters.load(Relaxed),
        ),
        (
            "bisections_total",
            "Windows the store refused for good, searched for poison",
            stats.bisections.load(Relaxed),
        ),
        (
            "poison_changes_total",
            "Changes the store refused on their own",
            stats.poison_changes.load(Relaxed),
        ),
        (
            "consumer_rebuilds_total",
            "Pulsar consumers dropped and subscribed anew (errors, stalls)",
            rebuilds,
        ),
        (
            "commit_seconds_count",
            "Windows timed from close to ack",
            stats.windows.load(Relaxed),
        ),
    ];
    for (name, help, value) in counters {
        let _ = writeln!(
            out,
            "# HELP likes_pipeline_{name} {help}\n# TYPE likes_pipeline_{name} counter\nlikes_pipeline_{name} {value}"
        );
    }
    let seconds = stats.commit_micros.load(Relaxed) as f64 / 1e6;
    let _ = writeln!(
        out,
        "# HELP likes_pipeline_commit_seconds_sum Time from a window's close to its ack, summed\n\
         # TYPE likes_pipeline_commit_seconds_sum counter\nlikes_pipeline_commit_seconds_sum {seconds}"
    );
    let gauges = [
        (
            "window_events_sum",
            "counter",
            "Events in committed windows (over windows_total: the mean window size)",
            stats.window_events.load(Relaxed) as f64,
        ),
        (
            "largest_window_events",
            "gauge",
            "Events in the largest window committed",
            stats.largest_window.load(Relaxed) as f64,
        ),
        (
            "event_lag_seconds",
            "gauge",
            "From the oldest event of the last committed window (ingest time) to its commit",
            stats.event_lag_ms.load(Relaxed) as f64 / 1e3,
        ),
    ];
    for (name, kind, help, value) in gauges {
        let _ = writeln!(
            out,
            "# HELP likes_pipeline_{name} {help}\n# TYPE likes_pipeline_{name} {kind}\nlikes_pipeline_{name} {value}"
        );
    }
    stats.event_commit_lag.snapshot().render(&mut out);
    let _ = writeln!(
        out,
        "# HELP likes_pipeline_partition_backlog Entries not acked yet (a producer batch is one), per partition this worker owns\n\
         # TYPE likes_pipeline_partition_backlog gauge"
    );
    let owned: Vec<(u32, u64)> = lag.backlog.lock().iter().map(|(p, b)| (*p, *b)).collect();
    for (partition, backlog) in &owned {
        let _ = writeln!(
            out,
            "likes_pipeline_partition_backlog{{partition=\"{partition}\"}} {backlog}"
        );
    }
    // Only the partitions the broker dispatches to this worker (as last polled): a partition
    // that moved keeps its last lag in the stats, and another worker reports it now.
    let _ = writeln!(
        out,
        "# HELP likes_pipeline_partition_event_lag_seconds From the oldest event of the partition \
         in the last window that held any (ingest time) to its commit, per partition this worker \
         owns\n# TYPE likes_pipeline_partition_event_lag_seconds gauge"
    );
    let event_lags = stats.partition_event_lag_ms.lock();
    for (partition, _) in &owned {
        if let Some(ms) = event_lags.get(partition) {
            let seconds = *ms as f64 / 1e3;
            let _ = writeln!(
                out,
                "likes_pipeline_partition_event_lag_seconds{{partition=\"{partition}\"}} {seconds}"
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_and_owned_partitions_are_rendered() {
        let stats = WorkerStats::default();
        stats.events.store(42, Relaxed);
        stats.windows.store(2, Relaxed);
        stats.commit_micros.store(1_500_000, Relaxed);
        stats.window_events.store(42, Relaxed);
        stats.largest_window.store(30, Relaxed);
        stats.event_lag_ms.store(250, Relaxed);
        stats
            .event_commit_lag
            .record_window(1_000, [900, 100].into_iter());
        // Partition 5 moved away after a commit: its lag is not this worker's to report.
        stats
            .partition_event_lag_ms
            .lock()
            .extend([(3, 1_250), (5, 40)]);
        let lag = PartitionLag::default();
        lag.backlog.lock().insert(3, 7);
        let text = render(&stats, 1, &lag);
        assert!(text.contains("likes_pipeline_events_total 42\n"), "{text}");
        assert!(
            text.contains("likes_pipeline_window_events_sum 42\n"),
            "{text}"
        );
        assert!(
            text.contains("likes_pipeline_largest_window_events 30\n"),
            "{text}"
        );
        assert!(
            text.contains("likes_pipeline_event_lag_seconds 0.25\n"),
            "{text}"
        );
        assert!(
            text.contains("likes_pipeline_consumer_rebuilds_total 1\n"),
            "{text}"
        );
        assert!(
            text.contains("likes_pipeline_commit_seconds_sum 1.5\n"),
            "{text}"
        );
        assert!(
            text.contains("likes_pipeline_commit_seconds_count 2\n"),
            "{text}"
        );
        assert!(
            text.contains("likes_pipeline_partition_backlog{partition=\"3\"} 7\n"),
            "{text}"
        );
        assert!(
            text.contains("likes_pipeline_partition_event_lag_seconds{partition=\"3\"} 1.25\n"),
            "{text}"
        );
        assert!(!text.contains("partition=\"5\""), "{text}");
        assert!(
            text.contains("likes_pipeline_event_commit_lag_seconds_bucket{le=\"0.1\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("likes_pipeline_event_commit_lag_seconds_count 2\n"),
            "{text}"
        );
    }
}
