//! `likes-pipeline-bench`: how fast `likes-pipeline run`'s worker drains a backlog from Pulsar into
//! TiDB, with one and with two workers on 8 partitions, against a baseline measured in the same
//! invocation on a copy of the same backlog: a plain failover consumer that receives and acks
//! every message (no decode, no window, no store). Each side gets its own topic pre-filled with
//! the same events (keyed by content, batched and LZ4 as ingest publishes), then starts; the
//! time is until every event is acked. The result in TiDB is checked: I1 holds.
//!
//! `likes-pipeline-bench [--events N]` (default 200000), with the services' env loaded.
//! `--receiver-queue M` sets the workers' receiver queue (messages per partition) in either mode.
//!
//! `likes-pipeline-bench --rate R --seconds S [--workers N] [--worker-bin PATH]`: instead, a
//! steady rate offered while N `likes-pipeline run` processes consume (`steady_rate.rs`): the
//! event-time → committed lag p50/p99 and each worker's RSS every 10 s.

mod steady_rate;

use anyhow::Context as _;
use likes_pipeline::distributed::DistributedWorker;
use likes_pipeline::PipelineConfig;
use likes_shared::shutdown;
use likes_shared::topics::{event_key, TopicName, TopicsConfig};
use likes_shared::{Action, ContentId, LikeEvent, UserId};
use likes_sink::pulsar_admin::{PulsarAdmin, DEFAULT_WAIT};
use likes_sink::pulsar_client::{self, keyed_event_producer_options};
use likes_sink::MySqlConfig;
use pulsar::compression::{Compression, CompressionLz4};
use pulsar::producer::Message;
use pulsar::{ConsumerOptions, ProducerOptions, SubType};
use rand::{Rng, SeedableRng};
use std::time::{Duration, Instant};

const PARTITIONS: u32 = 8;
const SUBSCRIPTION: &str = "likes-pipeline";

fn env(name: &str) -> anyhow::Result<String> {
    std::env::var(name).with_context(|| format!("{name} is not set (load the services' env file)"))
}

fn events(n: usize) -> Vec<LikeEvent> {
    let mut rng = rand::rngs::SmallRng::seed_from_u64(7);
    (0..n as u64)
        .map(|i| LikeEvent {
            event_id: u128::from(i),
            user_id: UserId::new(rng.gen_range(1..=50_000)).expect("non-zero"),
            content_id: ContentId::new(rng.gen_range(1..=10_000)).expect("non-zero"),
            action: if rng.gen_bool(0.9) {
                Action::Like
            } else {
                Action::Unlike
            },
            version: i + 1,
            ts_ms: likes_shared::hlc::now_ms(),
            source: "pipeline-bench".into(),
            fill_epoch: 0,
        })
        .collect()
}

/// A new topic with the workers' subscription at the earliest message, filled with `events`.
async fn filled_topic(
    admin: &PulsarAdmin,
    url: &str,
    run: &str,
    events: &[LikeEvent],
) -> anyhow::Result<TopicsConfig> {
    let topics = fresh_topic(admin, run).await?;
    let mut producer = producer(url, &topics.topic).await?;
    let mut receipts = Vec::with_capacity(events.len());
    for event in events {
        let message = Message {
            payload: event.encode(),
            partition_key: Some(event_key(event)),
            ..Message::default()
        };
        receipts.push(producer.send_non_blocking(message).await?);
    }
    for receipt in receipts {
        receipt.await?;
    }
    Ok(topics)
}

/// A new database on the services' TiDB, its URL and the store on it (schema applied).
async fn fresh_store() -> anyhow::Result<(String, likes_sink::MySqlStore)> {
    let url = likes_smoke::fresh_database(&env("LIKES_DATABASE_URL")?).await;
    let store = MySqlConfig {
        url: url.clone(),
        ..MySqlConfig::default()
    }
    .build()
    .await?;
    Ok((url, store))
}

/// A new partitioned topic and dead-letter topic, with the workers' subscription.
async fn fresh_topic(admin: &PulsarAdmin, run: &str) -> anyhow::Result<TopicsConfig> {
    let topics = TopicsConfig {
        topic: format!("{run}-events"),
        partitions: PARTITIONS,
        dlq_topic: format!("{run}-dlq"),
        ..TopicsConfig::default()
    };
    admin.ensure_topics(&topics).await?;
    admin
        .create_subscription(&TopicName::parse(&topics.topic)?, SUBSCRIPTION)
        .await?;
    Ok(topics)
}

/// A producer that batches and compresses as ingest's does, routing by key.
async fn producer(
    url: &str,
    topic: &str,
) -> anyhow::Result<pulsar::Producer<pulsar::TokioExecutor>> {
    let client = pulsar_client::connect(url, DEFAULT_WAIT).await?;
    let producer = client
        .producer()
        .with_topic(topic)
        .with_options(ProducerOptions {
            batch_size: Some(1_000),
            batch_byte_size: Some(128 * 1024),
            batch_timeout: Some(Duration::from_millis(5)),
            compression: Some(Compression::Lz4(CompressionLz4::default())),
            ..keyed_event_producer_options()
        })
        .build()
        .await?;
    Ok(producer)
}

async fn backlog(admin: &PulsarAdmin, topic: &str) -> anyhow::Result<u64> {
    let topic = TopicName::parse(topic)?;
    let backlog = admin
        .backlog_over_partitions(&topic, PARTITIONS, SUBSCRIPTION)
        .await?;
    Ok(backlog.unwrap_or(u64::MAX))
}

async fn drained(admin: &PulsarAdmin, topic: &str, started: Instant) -> anyhow::Result<Duration> {
    while backlog(admin, topic).await? > 0 {
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(600),
            "not drained in 10 minutes"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(started.elapsed())
}

/// The baseline: receive and ack every message, nothing else.
async fn plain_consumer(admin: &PulsarAdmin, url: &str, topic: &str) -> anyhow::Result<Duration> {
    use futures::TryStreamExt;
    let client = pulsar_client::connect(url, DEFAULT_WAIT).await?;
    let mut consumer: pulsar::Consumer<Vec<u8>, _> = client
        .consumer()
        .with_topic(topic)
        .with_subscription(SUBSCRIPTION)
        .with_subscription_type(SubType::Failover)
        .with_options(ConsumerOptions::default())
        .build()
        .await?;
    let started = Instant::now();
    let reading = async {
        while let Some(message) = consumer.try_next().await? {
            consumer.ack(&message).await?;
        }
        anyhow::Ok(())
    };
    tokio::select! {
        result = reading => { result?; anyhow::bail!("the consumer ended") }
        took = drained(admin, topic, started) => took,
    }
}

async fn workers(
    config: &PipelineConfig,
    admin: &PulsarAdmin,
    n: usize,
) -> anyhow::Result<Duration> {
    let (trigger, stop) = shutdown::channel();
    let mut tasks = Vec::new();
    let started = Instant::now();
    for i in 0..n {
        let config = PipelineConfig {
            consumer_name: format!("bench-worker-{i}-{}", std::process::id()),
            ..config.clone()
        };
        let worker = DistributedWorker::build(&config).await?;
        tasks.push(tokio::spawn(worker.run(stop.clone())));
    }
    let took = drained(admin, &config.pulsar.topic, started).await?;
    trigger.trigger();
    for task in tasks {
        task.await??;
    }
    Ok(took)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut n = 200_000usize;
    let mut steady = steady_rate::SteadyRate {
        rate: 0,
        seconds: 60,
        workers: 2,
        worker_bin: std::env::current_exe()?.with_file_name("likes-pipeline"),
        receiver_queue: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut value = || args.next().with_context(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--events" => n = value()?.parse()?,
            "--rate" => steady.rate = value()?.parse()?,
            "--seconds" => steady.seconds = value()?.parse()?,
            "--workers" => steady.workers = value()?.parse()?,
            "--worker-bin" => steady.worker_bin = value()?.into(),
            "--receiver-queue" => steady.receiver_queue = Some(value()?.parse()?),
            other => anyhow::bail!("unknown flag {other}"),
        }
    }
    let (admin_url, url) = (env("LIKES_PULSAR_ADMIN_URL")?, env("LIKES_PULSAR_URL")?);
    let admin = PulsarAdmin::new(&admin_url, DEFAULT_WAIT)?;
    if steady.rate > 0 {
        return steady_rate::run(steady, &admin, &admin_url, &url).await;
    }
    let events = events(n);
    let run = format!("pipeline-bench-{}", std::process::id());
    println!("likes-pipeline-bench: {n} events over 10 000 contents and 50 000 users, {PARTITIONS} partitions");
    let base = filled_topic(&admin, &url, &format!("{run}-plain"), &events).await?;
    let took = plain_consumer(&admin, &url, &base.topic).await?;
    let plain = n as f64 / took.as_secs_f64();
    println!("baseline, plain consumer (receive + ack):  {plain:>9.0} events/s ({took:.2?})");
    for count in [1usize, 2] {
        let topics = filled_topic(&admin, &url, &format!("{run}-w{count}"), &events).await?;
        let (database_url, store) = fresh_store().await?;
        let config = PipelineConfig {
            database_url,
            pulsar_admin_url: admin_url.clone(),
            pulsar_url: url.clone(),
            pulsar: topics.clone(),
            receiver_queue: steady
                .receiver_queue
                .unwrap_or(PipelineConfig::default().receiver_queue),
            ..PipelineConfig::default()
        };
        let took = workers(&config, &admin, count).await?;
        let rate = n as f64 / took.as_secs_f64();
        let mismatches = store.count_mismatches().await?.len();
        println!(
            "{count} worker(s), window → TiDB → ack:   {rate:>9.0} events/s ({took:.2?}), ratio to baseline {:.3}, I1 mismatches {mismatches}",
            rate / plain
        );
        anyhow::ensure!(mismatches == 0, "I1 broken");
        for t in [&topics.topic, &topics.dlq_topic] {
            let _ = admin.delete_topic(&TopicName::parse(t)?).await;
        }
    }
    for t in [&base.topic, &base.dlq_topic] {
        let _ = admin.delete_topic(&TopicName::parse(t)?).await;
    }
    Ok(())
}
