//! One worker owns every partition: all events commit exactly, after a graceful stop the
//! subscription holds nothing unacked (the acks reached the broker, batched entries included),
//! and the worker's trending is on Redis for ingest to read.

use super::*;
use likes_shared::trending::TrendingBoard;
use likes_sink::redis_trending::RedisTrendingBoard;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_worker_commits_every_event_exactly_and_acks_them_all() {
    let _broker = BROKER.read().await;
    let started = Instant::now();
    let mut deployment = Deployment::new(4).await;
    deployment.config.admin_addr = "127.0.0.1:0".into();
    let (events, model) = events(20_000, 500, 1_000, 1);
    let mut producer = deployment.producer().await;
    // Half before the worker starts (a backlog), half while it runs.
    publish(&mut producer, &events[..10_000]).await;
    let worker = deployment.start_worker("one").await;
    publish(&mut producer, &events[10_000..]).await;
    deployment.wait_exact(&model, Duration::from_secs(45)).await;
    assert!(
        worker.events() >= events.len() as u64,
        "{}",
        worker.events()
    );
    // The broker dispatches every partition to this worker: what the stall watch relies on.
    for partition in 0..4 {
        let state = deployment.partition_state(partition).await;
        assert_eq!(state.active_consumer.as_deref(), Some(worker.name.as_str()));
    }
    // `/metrics`: the counters, window sizes and event-time lag, and for each partition it owns
    // a backlog gauge and an event-time lag gauge.
    let url = format!(
        "http://{}/metrics",
        worker.metrics.expect("metrics address")
    );
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let text = reqwest::get(&url)
            .await
            .expect("metrics")
            .text()
            .await
            .expect("body");
        let events_line = format!("likes_pipeline_events_total {}", worker.events());
        let gauges = text.matches("likes_pipeline_partition_backlog{").count();
        let event_lags = partition_event_lags(&text);
        // Every committed event is in some window; the event-time lag is there too.
        let windowed = format!("likes_pipeline_window_events_sum {}\n", worker.events());
        // And each in the event-time → committed histogram.
        let lags = likes_pipeline::runtime::event_lag::EventLagSnapshot::from_metrics(&text)
            .map(|lags| lags.count());
        if text.contains(&events_line)
            && gauges == 4
            && text.contains(&windowed)
            && text.contains("likes_pipeline_event_lag_seconds ")
            && event_lags.len() == 4
            && lags == Some(worker.events())
        {
            // Each partition's lag is a real duration: its events' ts_ms (hours ago) to the commit.
            for (partition, seconds) in &event_lags {
                assert!(*seconds > 0.0, "partition {partition}: {seconds}\n{text}");
            }
            break;
        }
        assert!(Instant::now() < deadline, "metrics incomplete:\n{text}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    worker.stop().await;
    assert_eq!(deployment.wait_acked(Duration::from_secs(10)).await, 0);
    let redis = redis::Client::open(deployment.config.redis_url.as_str()).expect("redis url");
    let board = RedisTrendingBoard::new(
        redis::aio::ConnectionManager::new(redis)
            .await
            .expect("redis"),
        &deployment.config.pulsar.topic,
        deployment.config.pulsar.partitions,
        Duration::from_secs(60),
    );
    let trending = board.top(10).await;
    assert_eq!(trending.len(), 10, "{trending:?}");
    eprintln!(
        "one worker: exact and fully acked in {:?}",
        started.elapsed()
    );
    deployment.delete().await;
}

/// `(partition, seconds)` of each `likes_pipeline_partition_event_lag_seconds` line.
fn partition_event_lags(text: &str) -> Vec<(u32, f64)> {
    text.lines()
        .filter_map(|line| {
            let rest =
                line.strip_prefix("likes_pipeline_partition_event_lag_seconds{partition=\"")?;
            let (partition, value) = rest.split_once("\"} ")?;
            Some((partition.parse().ok()?, value.parse().ok()?))
        })
        .collect()
}
