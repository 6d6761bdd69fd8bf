//! `likes-ingest-floor`: the dependency floor of the distributed like path (issue 7, DESIGN
//! section 9): what Redis and Pulsar on this box can do for a like with no HTTP and none of
//! ingest's code, at the same concurrency as the HTTP load. Each of `--concurrency` tasks loops:
//! one Lua script on the user's hash (read the state, flip it, bump the version), one `INCRBY` of
//! the content's count, one keyed send to the partitioned topic awaited until the broker acks it
//! (batching and LZ4 as ingest publishes). `likes-load target` against `likes-ingest` in the same
//! sitting gives the path's rate; the ratio of the two is the figure BENCHMARKS.md reports.
//!
//! `likes-ingest-floor [--duration SECS] [--concurrency N] [--users N] [--contents N]
//! [--rate PER_SEC]`, with the services' env loaded. It creates a partitioned topic of its own and
//! deletes it after. With `--rate` the tasks run an open loop as `likes-load` does at half of the
//! peak: likes are scheduled at that total rate, round-robin over the tasks, after a second of
//! warm-up, and latency counts from the scheduled time (a stall is charged to what queued behind).

use anyhow::Context as _;
use hdrhistogram::Histogram;
use likes_ingest::pulsar_publisher::PulsarPublisherConfig;
use likes_shared::topics::{event_key, TopicName, TopicsConfig};
use likes_shared::{Action, ContentId, LikeEvent, UserId};
use likes_sink::pulsar_admin::{PulsarAdmin, DEFAULT_WAIT};
use likes_sink::pulsar_client::{self, keyed_event_producer_options};
use pulsar::compression::{Compression, CompressionLz4};
use pulsar::producer::Message;
use rand::{Rng, SeedableRng};
use std::sync::Arc;
use std::time::{Duration, Instant};

const FLIP: &str = r#"
local f = redis.call('HGET', KEYS[1], ARGV[1])
local liked, v = '0', 0
if f then liked, v = string.match(f, '^(%d):(%d+)$') end
local next = (liked == '1') and '0' or '1'
redis.call('HSET', KEYS[1], ARGV[1], next .. ':' .. (tonumber(v) + 1))
redis.call('EXPIRE', KEYS[1], 3600)
return tonumber(next)
"#;

struct Args {
    duration: Duration,
    concurrency: usize,
    users: u64,
    contents: u64,
    rate: Option<f64>,
}

fn parse_args() -> anyhow::Result<Args> {
    let mut args = Args {
        duration: Duration::from_secs(10),
        concurrency: 64,
        users: 10_000,
        contents: 10_000,
        rate: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().with_context(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--duration" => {
                args.duration = Duration::from_secs(value.parse().context("--duration")?)
            }
            "--concurrency" => args.concurrency = value.parse().context("--concurrency")?,
            "--users" => args.users = value.parse().context("--users")?,
            "--contents" => args.contents = value.parse().context("--contents")?,
            "--rate" => args.rate = Some(value.parse().context("--rate")?),
            other => anyhow::bail!("unknown flag {other}"),
        }
    }
    Ok(args)
}

fn env(name: &str) -> anyhow::Result<String> {
    std::env::var(name).with_context(|| format!("{name} is not set (load the services' env file)"))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = parse_args()?;
    let admin = PulsarAdmin::new(&env("LIKES_PULSAR_ADMIN_URL")?, DEFAULT_WAIT)?;
    let topic = TopicName::parse(&format!("likes-floor-{}", std::process::id()))?;
    admin
        .create_partitioned(&topic, TopicsConfig::default().partitions)
        .await?;
    let redis = redis::Client::open(env("LIKES_REDIS_URL")?)?;
    let conn = redis::aio::ConnectionManager::new(redis).await?;
    let defaults = PulsarPublisherConfig::default();
    let client = pulsar_client::connect(&env("LIKES_PULSAR_URL")?, Duration::from_secs(10)).await?;
    let mut options = keyed_event_producer_options();
    options.batch_size = Some(defaults.batch_max_messages);
    options.batch_byte_size = Some(defaults.batch_max_bytes);
    options.batch_timeout = Some(Duration::from_millis(defaults.batch_delay_ms));
    options.compression = Some(Compression::Lz4(CompressionLz4::default()));
    let producer = client
        .producer()
        .with_topic(topic.to_string())
        .with_options(options)
        .build()
        .await?;
    let producer = Arc::new(tokio::sync::Mutex::new(producer));
    let script = Arc::new(redis::Script::new(FLIP));
    let start = Instant::now();
    let warmup = if args.rate.is_some() {
        Duration::from_secs(1)
    } else {
        Duration::ZERO
    };
    let deadline = start + warmup + args.duration;
    let (rate, concurrency) = (args.rate, args.concurrency);
    let tasks: Vec<_> = (0..args.concurrency)
        .map(|task| {
            let (mut conn, producer, script) = (conn.clone(), producer.clone(), script.clone());
            let (users, contents) = (args.users, args.contents);
            tokio::spawn(async move {
                let mut rng = rand::rngs::SmallRng::seed_from_u64(task as u64);
                let mut latency = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
                for sent in 0u64.. {
                    let started = match rate {
                        Some(rate) => {
                            let slot = sent * concurrency as u64 + task as u64;
                            let at = start + Duration::from_secs_f64(slot as f64 / rate);
                            tokio::time::sleep_until(at.into()).await;
                            at
                        }
                        None => Instant::now(),
                    };
                    if started >= deadline {
                        break;
                    }
                    let (user, content) = (rng.gen_range(1..=users), zipf_ish(&mut rng, contents));
                    let liked: i64 = script
                        .key(format!("floor:{{u:{user}}}"))
                        .arg(content)
                        .invoke_async(&mut conn)
                        .await?;
                    let _: i64 = redis::cmd("INCRBY")
                        .arg(format!("floor:{{c:{content}}}:n"))
                        .arg(if liked == 1 { 1 } else { -1 })
                        .query_async(&mut conn)
                        .await?;
                    let event = LikeEvent {
                        event_id: rng.gen(),
                        user_id: UserId::new(user)?,
                        content_id: ContentId::new(content)?,
                        action: if liked == 1 {
                            Action::Like
                        } else {
                            Action::Unlike
                        },
                        version: rng.gen(),
                        ts_ms: 0,
                        source: "floor".into(),
                        fill_epoch: 0,
                    };
                    let message = Message {
                        payload: event.encode(),
                        partition_key: Some(event_key(&event)),
                        ..Message::default()
                    };
                    let receipt = producer.lock().await.send_non_blocking(message).await?;
                    receipt.await?;
                    if started >= start + warmup {
                        latency.saturating_record(started.elapsed().as_micros() as u64);
                    }
                }
                anyhow::Ok(latency)
            })
        })
        .collect();
    let mut all = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
    for task in tasks {
        all.add(task.await??)?;
    }
    let ms = |q: f64| all.value_at_quantile(q) as f64 / 1000.0;
    let offered = args
        .rate
        .map_or(String::new(), |r| format!(" at {r:.0}/s offered"));
    println!(
        "floor (Lua script + INCRBY + Pulsar send-and-ack, no HTTP), {} tasks{offered}: {:.0} likes/s, p50 {:.2} ms, p99 {:.2} ms",
        args.concurrency,
        all.len() as f64 / args.duration.as_secs_f64(),
        ms(0.50),
        ms(0.99),
    );
    if let Err(error) = admin.delete_topic(&topic).await {
        eprintln!("could not delete {topic}: {error}");
    }
    Ok(())
}

/// A cheap skew toward low ids (the HTTP load draws Zipf(1.0)); the floor's Redis and Pulsar
/// costs do not depend on which content it is.
fn zipf_ish(rng: &mut impl Rng, n: u64) -> u64 {
    let x: f64 = rng.gen();
    ((n as f64).powf(x) as u64).clamp(1, n)
}
