//! `likes-pipeline run`'s wiring ([`DistributedWorker`]) on the real Pulsar, TiDB and Redis:
//! events published straight to a fresh partitioned topic (batched and LZ4-compressed, keyed by
//! content, as ingest publishes them) end in a fresh database exactly as a model says, the
//! subscription is fully acked after a graceful stop, failover hands a stopped worker's
//! partitions to the other, and a payload that is not an event ends on the dead-letter topic.
//!
//! Each test has its own topics, subscription state and database, so they run in parallel.
//! They fail (never skip) when a service is missing: `ServicesEnv::load` panics naming it.

mod broker_restart;
mod cli;
mod failover;
mod foreign_codec;
mod one_worker;
mod stall;
mod two_processes;
mod undecodable;

use likes_pipeline::distributed::DistributedWorker;
use likes_pipeline::PipelineConfig;
use likes_shared::retry::Backoff;
use likes_shared::shutdown::{self, ShutdownTrigger};
use likes_shared::store::LikeStore;
use likes_shared::topics::{event_key, TopicName, TopicsConfig};
use likes_shared::{Action, ContentId, LikeEvent, UserId};
use likes_sink::pulsar_admin::{PulsarAdmin, SubscriptionState, DEFAULT_WAIT};
use likes_sink::pulsar_client::{self, keyed_event_producer_options, PulsarClient};
use likes_sink::{MySqlConfig, MySqlStore};
use likes_smoke::{fresh_database, unique_name, ServicesEnv};
use pulsar::compression::{Compression, CompressionLz4};
use pulsar::{Producer, ProducerOptions, TokioExecutor};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sqlx::Row;
use std::collections::HashMap;
use std::time::{Duration, Instant};
use tokio::task::JoinHandle;

/// Every test holds it shared; the broker restart holds it alone, so no other test of this
/// binary sees the broker go.
static BROKER: tokio::sync::RwLock<()> = tokio::sync::RwLock::const_new(());

const SUBSCRIPTION: &str = "likes-pipeline";

/// A fresh topic pair (with both subscriptions, as `init` makes them) and a fresh, migrated
/// database.
struct Deployment {
    config: PipelineConfig,
    admin: PulsarAdmin,
    store: MySqlStore,
    client: PulsarClient,
}

impl Deployment {
    async fn new(partitions: u32) -> Self {
        // Logs on `--nocapture`; quiet unless something goes wrong (RUST_LOG overrides).
        let _logs = likes_shared::telemetry::init_with_default("pulsar_run", "warn");
        let services = ServicesEnv::load();
        let topics = TopicsConfig {
            topic: unique_name("run-events"),
            partitions,
            dlq_topic: unique_name("run-dlq"),
            dlq_subscription: "likes-dlq".into(),
        };
        let admin_url = services.get("LIKES_PULSAR_ADMIN_URL");
        let admin = PulsarAdmin::new(&admin_url, DEFAULT_WAIT).expect("admin url");
        admin.ensure_topics(&topics).await.expect("topics");
        let events = TopicName::parse(&topics.topic).expect("topic name");
        admin
            .create_subscription(&events, SUBSCRIPTION)
            .await
            .expect("subscription");
        let database_url = fresh_database(&services.get("LIKES_DATABASE_URL")).await;
        // The migrations, as `init` runs them (`run` does not).
        let store = MySqlConfig {
            url: database_url.clone(),
            ..MySqlConfig::default()
        }
        .build()
        .await
        .expect("migrated store");
        let pulsar_url = services.get("LIKES_PULSAR_URL");
        let client = pulsar_client::connect(&pulsar_url, DEFAULT_WAIT)
            .await
            .expect("pulsar");
        let config = PipelineConfig {
            database_url,
            pulsar_admin_url: admin_url,
            pulsar_url,
            redis_url: services.get("LIKES_REDIS_URL"),
            pulsar: topics,
            subscription: SUBSCRIPTION.into(),
            window_max_events: 1_000,
            window_max_age_ms: 20,
            backoff: Backoff {
                initial_ms: 20,
                max_ms: 500,
            },
            ..PipelineConfig::default()
        };
        Deployment {
            config,
            admin,
            store,
            client,
        }
    }

    /// A worker with its own consumer name, running in a task.
    async fn start_worker(&self, name: &str) -> RunningWorker {
        self.start_worker_named(unique_name(name)).await
    }

    /// A worker with the consumer name `name`, running in a task.
    async fn start_worker_named(&self, name: String) -> RunningWorker {
        let config = PipelineConfig {
            consumer_name: name,
            ..self.config.clone()
        };
        let worker = DistributedWorker::build(&config)
            .await
            .expect("worker starts");
        let stats = worker.stats();
        let name = worker.consumer_name().to_owned();
        let metrics = worker.metrics_addr();
        let rebuilds = worker.consumer_rebuilds();
        let passed_entries = worker.passed_entries();
        let (trigger, stop) = shutdown::channel();
        RunningWorker {
            task: tokio::spawn(worker.run(stop)),
            trigger,
            stats,
            name,
            metrics,
            rebuilds,
            passed_entries,
        }
    }

    /// A producer that batches and compresses like ingest's, routing by key.
    async fn producer(&self) -> Producer<TokioExecutor> {
        self.client
            .producer()
            .with_topic(&self.config.pulsar.topic)
            .with_options(ProducerOptions {
                batch_size: Some(500),
                batch_byte_size: Some(128 * 1024),
                batch_timeout: Some(Duration::from_millis(5)),
                compression: Some(Compression::Lz4(CompressionLz4::default())),
                ..keyed_event_producer_options()
            })
            .build()
            .await
            .expect("producer")
    }

    /// Deletes the test's topics (on success; a failed test leaves them to look at).
    async fn delete(self) {
        for topic in [&self.config.pulsar.topic, &self.config.pulsar.dlq_topic] {
            let name = TopicName::parse(topic).expect("topic name");
            let _ = self.admin.delete_topic(&name).await;
        }
    }

    /// The subscription on one partition, as the broker's stats describe it.
    async fn partition_state(&self, partition: u32) -> SubscriptionState {
        let topic = TopicName::parse(&self.config.pulsar.topic).expect("topic name");
        self.admin
            .subscription_state(&topic.partition(partition), SUBSCRIPTION)
            .await
            .expect("stats")
            .expect("the subscription exists")
    }

    /// Entries (a producer batch is one) the workers' subscription has not acked, over every
    /// partition: 0 exactly when no message is left.
    async fn backlog(&self) -> u64 {
        let topic = TopicName::parse(&self.config.pulsar.topic).expect("topic name");
        self.admin
            .backlog_over_partitions(&topic, self.config.pulsar.partitions, SUBSCRIPTION)
            .await
            .expect("stats")
            .expect("the subscription exists on every partition")
    }

    /// Waits (up to `limit`) until the subscription's backlog is 0; returns the last one seen.
    async fn wait_acked(&self, limit: Duration) -> u64 {
        let deadline = Instant::now() + limit;
        loop {
            let backlog = self.backlog().await;
            if backlog == 0 || Instant::now() > deadline {
                return backlog;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Waits until the database holds exactly `model` (every row's liked state, every count,
    /// I1); panics with the last difference after `limit`.
    async fn wait_exact(&self, model: &Model, limit: Duration) {
        let deadline = Instant::now() + limit;
        loop {
            let difference = self.difference(model).await;
            match difference {
                None => return,
                Some(why) if Instant::now() > deadline => {
                    panic!("the store never matched the model: {why}")
                }
                Some(_) => tokio::time::sleep(Duration::from_millis(250)).await,
            }
        }
    }

    async fn difference(&self, model: &Model) -> Option<String> {
        let rows = sqlx::query("SELECT content_id, user_id, liked FROM likes")
            .fetch_all(self.store.pool())
            .await
            .expect("rows");
        let stored: HashMap<(u64, u64), bool> = rows
            .iter()
            .map(|row| {
                let content: u64 = row.get(0);
                let user: u64 = row.get(1);
                let liked: i8 = row.get(2);
                ((user, content), liked == 1)
            })
            .collect();
        let wanted = model.states();
        if stored != wanted {
            let missing = wanted
                .iter()
                .filter(|(k, v)| stored.get(k) != Some(v))
                .count();
            return Some(format!(
                "{} rows stored, {} in the model, {missing} differ",
                stored.len(),
                wanted.len()
            ));
        }
        let ids: Vec<ContentId> = model
            .contents()
            .into_iter()
            .map(|c| ContentId::new(c).expect("non-zero"))
            .collect();
        let counts = self.store.counts(&ids).await.expect("counts");
        let liked = model.counts();
        let want: Vec<i64> = model
            .contents()
            .iter()
            .map(|c| liked.get(c).copied().unwrap_or(0))
            .collect();
        if counts != want {
            return Some("like_counts differ from the model".into());
        }
        let mismatches = self.store.count_mismatches().await.expect("mismatches");
        if !mismatches.is_empty() {
            return Some(format!("I1 broken: {mismatches:?}"));
        }
        None
    }
}

struct RunningWorker {
    task: JoinHandle<Result<(), likes_pipeline::runtime::WorkerError>>,
    trigger: ShutdownTrigger,
    stats: std::sync::Arc<likes_pipeline::WorkerStats>,
    /// Its consumer name on the subscription.
    name: String,
    /// Where it serves `/metrics`, if the config asked for it.
    metrics: Option<std::net::SocketAddr>,
    /// How many times its consumer was rebuilt.
    rebuilds: std::sync::Arc<std::sync::atomic::AtomicU64>,
    /// How many entries its consumer could not read it passed through the admin API.
    passed_entries: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl RunningWorker {
    /// SIGTERM's path: commit and ack the open window, close the consumer.
    async fn stop(self) {
        self.trigger.trigger();
        tokio::time::timeout(Duration::from_secs(30), self.task)
            .await
            .expect("the worker stops within 30 s")
            .expect("join")
            .expect("the worker ends without an error");
    }

    fn events(&self) -> u64 {
        self.stats.events.load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// The stream of events and the state it must leave: per (user, content) the action of the
/// highest version (I4), whatever order duplicates arrive in.
struct Model {
    latest: HashMap<(u64, u64), (u64, bool)>,
}

impl Model {
    fn states(&self) -> HashMap<(u64, u64), bool> {
        self.latest
            .iter()
            .map(|(k, (_, liked))| (*k, *liked))
            .collect()
    }

    fn contents(&self) -> Vec<u64> {
        let mut contents: Vec<u64> = self.latest.keys().map(|(_, c)| *c).collect();
        contents.sort_unstable();
        contents.dedup();
        contents
    }

    /// Liked rows per content (contents with none left out), in one pass: the 200k-event
    /// tests have 10k contents.
    fn counts(&self) -> HashMap<u64, i64> {
        let mut counts = HashMap::new();
        for ((_, content), (_, liked)) in &self.latest {
            if *liked {
                *counts.entry(*content).or_insert(0) += 1;
            }
        }
        counts
    }
}

/// `count` events over `contents` contents and `users` users: likes and unlikes with versions
/// increasing per (user, content), plus about 5% duplicates (an earlier event sent again,
/// possibly after a newer one). Returns them in publish order, with the model they must leave.
fn events(count: usize, contents: u64, users: u64, seed: u64) -> (Vec<LikeEvent>, Model) {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut sent: Vec<LikeEvent> = Vec::with_capacity(count);
    let mut latest = HashMap::new();
    for i in 0..count as u64 {
        if i > 0 && rng.gen_ratio(1, 20) {
            let again = sent[rng.gen_range(0..sent.len())].clone();
            sent.push(again);
            continue;
        }
        let user = rng.gen_range(1..=users);
        let content = rng.gen_range(1..=contents);
        let liked = rng.gen_ratio(2, 3);
        let version = 1_000 + i;
        latest.insert((user, content), (version, liked));
        sent.push(LikeEvent {
            event_id: u128::from(seed) << 64 | u128::from(i),
            user_id: UserId::new(user).expect("non-zero"),
            content_id: ContentId::new(content).expect("non-zero"),
            action: if liked { Action::Like } else { Action::Unlike },
            version,
            ts_ms: 1_795_581_680_000 + i,
            source: "pulsar-run-test".into(),
            fill_epoch: 0,
        });
    }
    (sent, Model { latest })
}

/// Publishes `events` keyed by content and waits for the broker's acks.
async fn publish(producer: &mut Producer<TokioExecutor>, events: &[LikeEvent]) {
    for chunk in events.chunks(2_000) {
        let mut receipts = Vec::with_capacity(chunk.len());
        for event in chunk {
            receipts.push(
                producer
                    .create_message()
                    .with_key(event_key(event))
                    .with_content(event.encode())
                    .send_non_blocking()
                    .await
                    .expect("enqueued"),
            );
        }
        for receipt in receipts {
            receipt.await.expect("published");
        }
    }
}
