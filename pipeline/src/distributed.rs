//! One worker of the distributed deployment (`likes-pipeline run`): the [`Worker`] loop between
//! the events topic ([`PulsarSource`]), TiDB ([`likes_sink::MySqlStore`]), the dead-letter topic
//! ([`PulsarDeadLetters`]) and the trending board on Redis ([`RedisTrendingBoard`], each
//! content's entry in its partition's slot: [`PartitionedBoard`]).
//!
//! [`DistributedWorker::build`] checks everything once and fails with one line naming the setting
//! or the fix (DESIGN section 11): a worker started before `likes-pipeline init` would otherwise
//! subscribe to a topic the broker creates on the spot, unpartitioned, or commit into a database
//! without tables. It runs no migrations: `init` does, with the privileges that takes. Redis is
//! the exception: trending is advisory (I6), so Redis unset or down only means no trending.
//!
//! In the library, not the binary, so tests run the very wiring `run` runs, in-process, with their
//! own topic and database (the binary adds the signal and the exit code).

mod metrics;
mod partitioned_board;

pub use partitioned_board::PartitionedBoard;

use crate::pulsar_source::{ConsumerCounters, PulsarSource, PulsarSourceConfig, PulsarSourceError};
use crate::runtime::WorkerError;
use crate::{PipelineConfig, Worker, WorkerConfig, WorkerStats};
use likes_shared::config::redacted_url;
use likes_shared::heap_trim::HeapTrim;
use likes_shared::shutdown::Shutdown;
use likes_shared::store::{LikeStore, StoreError};
use likes_shared::topics::TopicName;
use likes_shared::trending::{MemoryTrendingBoard, TrendingBoard};
use likes_shared::ContentId;
use likes_sink::dead_letter::{DeadLetterError, PulsarDeadLetters};
use likes_sink::mysql::MissingSetting;
use likes_sink::pulsar_admin::{AdminError, PulsarAdmin, TopicKind};
use likes_sink::redis_trending::RedisTrendingBoard;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

/// Bounds connecting, subscribing and each admin call at start-up, and the close at the end.
const START_WAIT: Duration = Duration::from_secs(10);
/// How long a trending post counts after the worker's last one (ingest reads it meanwhile).
const TRENDING_TTL: Duration = Duration::from_secs(60);

/// Why a worker cannot start. The causes are error sources, not part of the message: the
/// binary prints the chain (`message: cause`) on one line.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Missing(#[from] MissingSetting),
    #[error("Pulsar admin API at LIKES_PULSAR_ADMIN_URL")]
    Admin(#[from] AdminError),
    #[error("the topic {topic}: {reason} (run `likes-pipeline init` first)")]
    Topic { topic: String, reason: String },
    #[error("database at LIKES_DATABASE_URL ({url})")]
    Store { url: String, source: StoreError },
    #[error(
        "database at LIKES_DATABASE_URL ({url}) has no likes tables (run `likes-pipeline init` \
         first)"
    )]
    Schema { url: String, source: StoreError },
    #[error("Pulsar at LIKES_PULSAR_URL ({url})")]
    Pulsar {
        url: String,
        source: PulsarSourceError,
    },
    #[error("the dead-letter topic")]
    DeadLetters(#[from] DeadLetterError),
    #[error("metrics registry")]
    Metrics(#[source] prometheus::Error),
    #[error("cannot listen on LIKES_ADMIN_ADDR ({addr})")]
    AdminAddr {
        addr: String,
        source: std::io::Error,
    },
}

/// A worker wired to the real services, ready to run.
pub struct DistributedWorker {
    worker: Worker<PulsarSource>,
    consumer_name: String,
    partitions: u32,
    counters: ConsumerCounters,
    heap_trim: Option<HeapTrim>,
    /// `/metrics`, when `LIKES_ADMIN_ADDR` is set: bound at build, served by `run`.
    metrics: Option<(tokio::net::TcpListener, prometheus::Registry)>,
}

impl DistributedWorker {
    /// Checks the settings, the topics and the schema, connects, and subscribes.
    pub async fn build(config: &PipelineConfig) -> Result<Self, StartError> {
        // Every setting first: a missing one is reported before anything connects.
        let store_config = config.store()?;
        let pulsar_url = config.pulsar_url()?.to_owned();
        let admin_url = config.pulsar_admin_url()?.to_owned();
        let admin_addr = config.admin_addr()?;
        let admin = PulsarAdmin::new(&admin_url, START_WAIT)?;
        let partitions = check_topics(&admin, config).await?;

        let store_error = |source| StartError::Store {
            url: redacted_url(&store_config.url),
            source,
        };
        let store = store_config.connect().await.map_err(store_error)?;
        if let Err(source) = store.counts(&[ContentId::MIN]).await {
            return Err(StartError::Schema {
                url: redacted_url(&store_config.url),
                source,
            });
        }

        let dead_letters =
            PulsarDeadLetters::connect(&pulsar_url, &config.pulsar.dlq_topic, START_WAIT).await?;
        let consumer_name = config.consumer_name();
        let source = PulsarSource::connect(PulsarSourceConfig {
            url: pulsar_url.clone(),
            topic: config.pulsar.topic.clone(),
            partitions,
            subscription: config.subscription.clone(),
            consumer_name: consumer_name.clone(),
            receiver_queue: config.receiver_queue,
            wait: START_WAIT,
            backoff: config.backoff,
            admin_url: Some(admin_url.clone()),
            stall_after: Duration::from_millis(config.stall_after_ms),
        })
        .await
        .map_err(|source| StartError::Pulsar {
            url: redacted_url(&pulsar_url),
            source,
        })?;
        let counters = source.counters();
        let subscriptions = source.subscriptions();
        let worker = Worker::new(
            source,
            Arc::new(store) as Arc<dyn LikeStore>,
            Arc::new(PartitionedBoard::new(
                trending_board(config, partitions)?,
                partitions,
            )),
            Arc::new(dead_letters),
            WorkerConfig {
                window: config.window(),
                backoff: config.backoff,
                ..WorkerConfig::default()
            },
        );
        let metrics = match admin_addr {
            None => None,
            Some(addr) => {
                let listener = tokio::net::TcpListener::bind(addr)
                    .await
                    .map_err(|source| StartError::AdminAddr {
                        addr: addr.to_string(),
                        source,
                    })?;
                let owned = metrics::OwnedPartitions {
                    subscriptions,
                    consumer: consumer_name.clone(),
                };
                let registry = metrics::registry(worker.stats(), counters.clone(), owned)
                    .map_err(StartError::Metrics)?;
                Some((listener, registry))
            }
        };
        Ok(DistributedWorker {
            worker,
            consumer_name,
            partitions,
            counters,
            heap_trim: HeapTrim::every(Duration::from_millis(config.heap_trim_ms)),
            metrics,
        })
    }

    /// Where `/metrics` is served (`LIKES_ADMIN_ADDR`, with the port the system picked for 0).
    pub fn metrics_addr(&self) -> Option<std::net::SocketAddr> {
        self.metrics
            .as_ref()
            .and_then(|(listener, _)| listener.local_addr().ok())
    }

    pub fn stats(&self) -> Arc<WorkerStats> {
        self.worker.stats()
    }

    /// How many times the worker's consumer was rebuilt (see `pulsar_source`).
    pub fn consumer_rebuilds(&self) -> Arc<AtomicU64> {
        self.counters.rebuilds.clone()
    }

    /// How many entries its consumer could not read the worker passed (`pulsar_source/passing.rs`).
    pub fn passed_entries(&self) -> Arc<AtomicU64> {
        self.counters.passed_entries.clone()
    }

    /// The name this worker has on the subscription.
    pub fn consumer_name(&self) -> &str {
        &self.consumer_name
    }

    /// The events topic's partitions, as the broker reported them.
    pub fn partitions(&self) -> u32 {
        self.partitions
    }

    /// Runs until `shutdown`; then commits and acks the open window and closes the consumer,
    /// so the partitions move to another worker at once.
    pub async fn run(self, shutdown: Shutdown) -> Result<(), WorkerError> {
        let mut beside = Vec::new();
        if let Some((listener, registry)) = self.metrics {
            beside.push(tokio::spawn(metrics::serve(
                listener,
                registry,
                shutdown.clone(),
            )));
        }
        if let Some(trim) = self.heap_trim {
            beside.push(tokio::spawn(trim.run(shutdown.clone())));
        }
        let ended = self.worker.run(shutdown).await;
        // They stop with the same signal; an error ends the worker without one.
        for task in beside {
            task.abort();
        }
        ended
    }
}

/// The events topic must exist, partitioned, and the dead-letter topic must exist: the broker
/// would create either on first use, unpartitioned and (for the letters) with no subscription
/// to keep them. Returns the events topic's partitions.
async fn check_topics(admin: &PulsarAdmin, config: &PipelineConfig) -> Result<u32, StartError> {
    let topic_error = |topic: &str, reason: String| StartError::Topic {
        topic: topic.to_owned(),
        reason,
    };
    let events = &config.pulsar.topic;
    let name = TopicName::parse(events).map_err(|e| topic_error(events, e.to_string()))?;
    let partitions = match admin.topic_kind(&name).await? {
        TopicKind::Partitioned(n) => n,
        TopicKind::Missing => return Err(topic_error(events, "does not exist".into())),
        TopicKind::NonPartitioned => {
            return Err(topic_error(events, "is not partitioned".into()));
        }
    };
    if partitions != config.pulsar.partitions {
        tracing::warn!(
            topic = %name,
            partitions,
            configured = config.pulsar.partitions,
            "the topic's partition count differs from LIKES_PULSAR__PARTITIONS; using the topic's"
        );
    }
    let dlq = &config.pulsar.dlq_topic;
    let dlq_name = TopicName::parse(dlq).map_err(|e| topic_error(dlq, e.to_string()))?;
    if admin.topic_kind(&dlq_name).await? == TopicKind::Missing {
        return Err(topic_error(dlq, "does not exist".into()));
    }
    Ok(partitions)
}

/// Redis when `LIKES_REDIS_URL` is set (connecting lazily: Redis down means failed posts, each
/// a warning); otherwise an in-process board nobody reads, with a warning now.
fn trending_board(
    config: &PipelineConfig,
    partitions: u32,
) -> Result<Arc<dyn TrendingBoard>, StartError> {
    let url = config.redis_url.trim();
    if url.is_empty() {
        tracing::warn!("LIKES_REDIS_URL is not set: trending is not posted");
        return Ok(Arc::new(MemoryTrendingBoard::default()));
    }
    let malformed =
        |e: redis::RedisError| MissingSetting::Malformed("LIKES_REDIS_URL", e.to_string());
    let client = redis::Client::open(url).map_err(malformed)?;
    let manager = redis::aio::ConnectionManagerConfig::new()
        .set_response_timeout(Some(Duration::from_secs(2)))
        .set_connection_timeout(Some(Duration::from_secs(2)))
        .set_number_of_retries(1)
        .set_max_delay(Duration::from_secs(2));
    let conn =
        redis::aio::ConnectionManager::new_lazy_with_config(client, manager).map_err(malformed)?;
    Ok(Arc::new(RedisTrendingBoard::new(
        conn,
        &config.pulsar.topic,
        partitions,
        TRENDING_TTL,
    )))
}
