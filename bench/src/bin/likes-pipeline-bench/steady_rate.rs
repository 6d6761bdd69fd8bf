//! `--rate R --seconds S [--workers N]`: a steady rate offered to a fresh topic while N
//! `likes-pipeline run` processes consume it into a fresh database. Each event is stamped with
//! the wall clock as it is sent (what ingest does), and each worker counts every committed event
//! by its lag from that stamp to the commit (`likes_pipeline_event_commit_lag_seconds` in its
//! `/metrics`). Every 10 s it prints the interval's lag p50/p99 over the workers, the events they
//! consumed, and each worker's RSS; at the end the whole run's lag, the RSS spread after the
//! first interval, and I1.
//!
//! Why processes and not in-process workers: a worker's memory is only its own in its own
//! process, and this is how `run` is deployed. Why the workers' own histogram and not a probe:
//! it holds every event, not a sample, and both clocks are this machine's.

mod worker_process;

use super::{fresh_store, fresh_topic, producer, PARTITIONS};
use anyhow::Context as _;
use likes_pipeline::runtime::event_lag::EventLagSnapshot;
use likes_shared::hlc::now_ms;
use likes_shared::topics::{event_key, TopicName, TopicsConfig};
use likes_shared::{Action, ContentId, LikeEvent, UserId};
use likes_sink::pulsar_admin::PulsarAdmin;
use pulsar::producer::{Message, SendFuture};
use rand::{Rng, SeedableRng};
use std::path::PathBuf;
use std::time::{Duration, Instant};
use worker_process::{sample_all, spawn_worker, terminate, wait_serving, Sample, WorkerProcess};

/// How often the workers are sampled.
const SAMPLE_EVERY: Duration = Duration::from_secs(10);

pub struct SteadyRate {
    /// Events per second offered.
    pub rate: u64,
    pub seconds: u64,
    pub workers: usize,
    /// `likes-pipeline`, built with the same profile (default: next to this binary).
    pub worker_bin: PathBuf,
    /// `--receiver-queue`: the workers' `LIKES_RECEIVER_QUEUE` (default: theirs).
    pub receiver_queue: Option<u32>,
}

pub async fn run(
    config: SteadyRate,
    admin: &PulsarAdmin,
    admin_url: &str,
    url: &str,
) -> anyhow::Result<()> {
    let run = format!("pipeline-steady-{}", std::process::id());
    let topics = fresh_topic(admin, &run).await?;
    let (database_url, store) = fresh_store().await?;
    println!(
        "likes-pipeline-bench steady: {} events/s offered for {} s to {PARTITIONS} partitions, \
         {} worker process(es) ({})",
        config.rate,
        config.seconds,
        config.workers,
        config.worker_bin.display()
    );
    let mut workers = Vec::with_capacity(config.workers);
    for i in 0..config.workers {
        workers.push(spawn_worker(
            &config,
            &topics,
            &database_url,
            admin_url,
            url,
            i,
        )?);
    }
    let result = measure(&config, &topics, url, admin, &workers).await;
    // Stopped whatever happened, so no worker outlives the bench.
    let mut exits = Vec::new();
    for worker in workers {
        exits.push(terminate(worker.child).await?);
    }
    let (published, first, last) = result?;
    println!("workers' exit codes on SIGTERM: {exits:?}");
    let mismatches = store.count_mismatches().await?.len();
    let whole = {
        let mut all = EventLagSnapshot::default();
        for sample in &last {
            all.merge(&sample.lag);
        }
        all
    };
    let after_warmup = {
        let mut all = EventLagSnapshot::default();
        for (end, start) in last.iter().zip(&first) {
            all.merge(&end.lag.since(&start.lag));
        }
        all
    };
    println!(
        "published {published}, committed {} (redeliveries count twice), I1 mismatches {mismatches}",
        whole.count()
    );
    print_lag("whole run", &whole);
    print_lag("after the first 10 s", &after_warmup);
    for topic in [&topics.topic, &topics.dlq_topic] {
        let _ = admin.delete_topic(&TopicName::parse(topic)?).await;
    }
    anyhow::ensure!(mismatches == 0, "I1 broken");
    anyhow::ensure!(exits.iter().all(|code| *code == Some(0)), "a worker failed");
    Ok(())
}

/// Publishes at the rate, samples every 10 s, then waits until the workers drained the topic.
/// Returns what was published and the samples after the first interval and at the end.
async fn measure(
    config: &SteadyRate,
    topics: &TopicsConfig,
    url: &str,
    admin: &PulsarAdmin,
    workers: &[WorkerProcess],
) -> anyhow::Result<(u64, Vec<Sample>, Vec<Sample>)> {
    for worker in workers {
        wait_serving(worker.metrics).await?;
    }
    let started = Instant::now();
    let publishing = tokio::spawn(publish_steadily(
        url.to_owned(),
        topics.topic.clone(),
        config.rate,
        Duration::from_secs(config.seconds),
    ));
    let mut previous = sample_all(workers).await?;
    let mut first = None;
    let mut rss_after_first: Vec<Vec<u64>> = vec![Vec::new(); workers.len()];
    let mut ticks =
        tokio::time::interval_at(tokio::time::Instant::now() + SAMPLE_EVERY, SAMPLE_EVERY);
    while started.elapsed() < Duration::from_secs(config.seconds) && !publishing.is_finished() {
        ticks.tick().await;
        let now = sample_all(workers).await?;
        print_interval(started.elapsed(), &previous, &now);
        if first.is_some() {
            for (rss, sample) in rss_after_first.iter_mut().zip(&now) {
                rss.push(sample.rss_kib);
            }
        }
        first.get_or_insert_with(|| now.clone());
        previous = now;
    }
    let published = publishing.await??;
    let drained_from = Instant::now();
    let topic = TopicName::parse(&topics.topic)?;
    loop {
        let backlog = admin
            .backlog_over_partitions(&topic, PARTITIONS, "likes-pipeline")
            .await?
            .unwrap_or(u64::MAX);
        if backlog == 0 {
            break;
        }
        anyhow::ensure!(
            drained_from.elapsed() < Duration::from_secs(300),
            "{backlog} still unacked 5 minutes after the publisher stopped"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    println!(
        "drained {:.1?} after the publisher stopped",
        drained_from.elapsed()
    );
    for (i, rss) in rss_after_first.iter().enumerate() {
        print_rss(i, rss);
    }
    let last = sample_all(workers).await?;
    let first = first.unwrap_or_else(|| last.clone());
    Ok((published, first, last))
}

fn print_interval(at: Duration, previous: &[Sample], now: &[Sample]) {
    let mut lag = EventLagSnapshot::default();
    let mut events = 0;
    for (before, after) in previous.iter().zip(now) {
        lag.merge(&after.lag.since(&before.lag));
        events += after.events.saturating_sub(before.events);
    }
    let rss: Vec<String> = now
        .iter()
        .map(|s| format!("{:.1}", s.rss_kib as f64 / 1024.0))
        .collect();
    println!(
        "t={:>4.0}s consumed {:>7.0} ev/s, lag p50 {} p99 {} ({} committed), RSS MiB [{}]",
        at.as_secs_f64(),
        events as f64 / SAMPLE_EVERY.as_secs_f64(),
        ms(lag.quantile_ms(0.5)),
        ms(lag.quantile_ms(0.99)),
        lag.count(),
        rss.join(", ")
    );
}

fn print_lag(what: &str, lag: &EventLagSnapshot) {
    println!(
        "lag event time -> committed, {what}: p50 {} p99 {} p99.9 {} over {} events (mean {:.1} ms)",
        ms(lag.quantile_ms(0.5)),
        ms(lag.quantile_ms(0.99)),
        ms(lag.quantile_ms(0.999)),
        lag.count(),
        lag.sum_ms as f64 / lag.count().max(1) as f64
    );
}

fn print_rss(worker: usize, rss_kib: &[u64]) {
    let (Some(min), Some(max)) = (rss_kib.iter().min(), rss_kib.iter().max()) else {
        println!("worker {worker}: no RSS samples after the first interval");
        return;
    };
    let mean = rss_kib.iter().sum::<u64>() as f64 / rss_kib.len() as f64;
    let spread = rss_kib
        .iter()
        .map(|rss| (*rss as f64 - mean).abs() / mean * 100.0)
        .fold(0.0, f64::max);
    println!(
        "worker {worker}: RSS after the first 10 s, {} samples: min {:.1} MiB, max {:.1} MiB, \
         mean {:.1} MiB, largest deviation from the mean ±{spread:.1}%",
        rss_kib.len(),
        *min as f64 / 1024.0,
        *max as f64 / 1024.0,
        mean / 1024.0
    );
}

fn ms(value: Option<f64>) -> String {
    match value {
        Some(ms) => format!("{ms:.0} ms"),
        None => "-".into(),
    }
}

/// Offers `rate` events/s for `duration`: every 10 ms it sends what is due since the start, so
/// a late tick catches up instead of lowering the rate. The receipts go to a task that awaits
/// them through a queue of 2 s of events: a broker that falls further behind slows the sender.
/// Returns how many events the broker acknowledged.
async fn publish_steadily(
    url: String,
    topic: String,
    rate: u64,
    duration: Duration,
) -> anyhow::Result<u64> {
    let mut producer = producer(&url, &topic).await?;
    let (receipts, mut pending) =
        tokio::sync::mpsc::channel::<SendFuture>((rate as usize * 2).max(1));
    let confirming = tokio::spawn(async move {
        let mut confirmed = 0u64;
        while let Some(receipt) = pending.recv().await {
            receipt.await?;
            confirmed += 1;
        }
        anyhow::Ok(confirmed)
    });
    let mut rng = rand::rngs::SmallRng::seed_from_u64(11);
    let started = Instant::now();
    let mut sent = 0u64;
    let mut ticks = tokio::time::interval(Duration::from_millis(10));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    while started.elapsed() < duration {
        ticks.tick().await;
        let due = (rate as f64 * started.elapsed().min(duration).as_secs_f64()) as u64;
        while sent < due {
            let event = LikeEvent {
                event_id: u128::from(sent),
                user_id: UserId::new(rng.gen_range(1..=50_000)).context("user id")?,
                content_id: ContentId::new(rng.gen_range(1..=10_000)).context("content id")?,
                action: if rng.gen_bool(0.9) {
                    Action::Like
                } else {
                    Action::Unlike
                },
                version: sent + 1,
                ts_ms: now_ms(),
                source: "pipeline-bench-steady".into(),
                fill_epoch: 0,
            };
            let message = Message {
                payload: event.encode(),
                partition_key: Some(event_key(&event)),
                ..Message::default()
            };
            let receipt = producer.send_non_blocking(message).await?;
            receipts
                .send(receipt)
                .await
                .map_err(|_| anyhow::anyhow!("the receipt task ended"))?;
            sent += 1;
        }
    }
    drop(receipts);
    let confirmed = confirming.await??;
    let offered_for = started.elapsed();
    println!(
        "publisher: {confirmed} events confirmed, {:.0} ev/s over {offered_for:.1?}",
        confirmed as f64 / offered_for.as_secs_f64()
    );
    Ok(confirmed)
}
