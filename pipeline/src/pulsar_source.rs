//! [`PulsarSource`]: the worker's [`EventSource`] on the partitioned events topic (DESIGN
//! sections 2 and 11, issue 9).
//!
//! - **Ownership (I5).** One consumer per partition, all on one *failover* subscription: the
//!   broker dispatches each partition to one consumer of the subscription at a time, so every
//!   content has one writer. More workers split the partitions; a worker that stops (or dies)
//!   hands its partitions over. Consumer names must differ between workers, since the broker
//!   orders failover consumers by name.
//! - **Bounded prefetch (I7).** pulsar-rs buffers at most `receiver_queue` messages per partition
//!   and asks the broker for more only as the worker reads: a worker blocked on its sink stops
//!   reading, and the broker holds the rest.
//! - **Acks after commit (I2, I3).** The worker hands `ack` a committed window's handles in
//!   delivery order; each *complete* entry it delivered is acked on its own, never cumulatively
//!   (`acks.rs`: batched entries are acked whole, so never through a window's cut, and an ack
//!   never covers an entry the worker did not see). An ack
//!   that fails, or is ignored because the partition moved to another worker, is only logged:
//!   the messages come again, to whoever owns the partition, and apply as no-ops.
//! - **Rebuilding.** A consumer that errors, ends, or stalls (`stall.rs`) is dropped and a new
//!   one subscribes on a fresh connection, with backoff. What the old one delivered and did not
//!   ack is redelivered.
//! - **Cancel-safety.** `recv` runs inside the worker's `select!` and is dropped at every tick.
//!   Reading the consumer's stream is cancel-safe (a message is taken only when it is returned),
//!   and subscribing happens in a spawned task whose handle the source keeps, so a dropped
//!   `recv` never leaves a half-subscribed consumer behind.
//! - **Closing.** `consumer.rs` subscribes, and drains the receiver queue before a close so the
//!   last acks and the close itself get through (pulsar-rs queues them behind the messages).
//!
//! - **Entries the consumer cannot unpack** (`passing.rs`). pulsar-rs drops such an entry with
//!   an error that names no message id, so the partition would stop behind it. The stall watch
//!   finds the partition stuck and peeks the entry through the admin API; the source hands its
//!   messages on and, after they commit, moves the subscription past it. First seen by hand on
//!   2026-11-25 with a Snappy-compressed entry from Pulsar's Java client (backlog 1 for good,
//!   a rebuild every `stall_after`); `tests/pulsar_run/foreign_codec.rs` covers it.

mod acks;
mod consumer;
mod passing;
mod stall;
mod subscriptions;

pub use acks::PulsarAck;
pub use subscriptions::Subscriptions;

use async_trait::async_trait;
use consumer::{drain_until_quiet, subscribe, EventConsumer};
use futures::StreamExt;
use likes_shared::bus::{BusError, EventSource, Received};
use likes_shared::retry::Backoff;
use likes_shared::telemetry::{self, TraceParent, TRACEPARENT};
use likes_shared::topics::{TopicName, TopicNameError};
use likes_sink::pulsar_admin::{AdminError, PulsarAdmin};
use likes_sink::pulsar_client::{self, ConnectError};
use passing::EntryPassing;
use pulsar::consumer::Message;
use stall::{PartitionActivity, Stall, StallWatch};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::{sleep_until, timeout, Instant};

/// How a [`PulsarSource`] subscribes.
#[derive(Debug, Clone)]
pub struct PulsarSourceConfig {
    /// The broker, `pulsar://host:port` (`LIKES_PULSAR_URL`).
    pub url: String,
    /// The partitioned events topic, full or short name.
    pub topic: String,
    /// Its partition count (checked by the caller through the admin API).
    pub partitions: u32,
    /// The failover subscription the workers share.
    pub subscription: String,
    /// This worker's consumer name; must differ between workers.
    pub consumer_name: String,
    /// Messages buffered per partition (the prefetch bound), also the flow permits asked for.
    pub receiver_queue: u32,
    /// Bounds connecting, subscribing, and closing.
    pub wait: Duration,
    /// Between two subscribe attempts after a failure.
    pub backoff: Backoff,
    /// The admin API, for the stall watch; without it only errors trigger a rebuild.
    pub admin_url: Option<String>,
    /// How long a partition with a backlog may deliver nothing before the consumer is rebuilt.
    pub stall_after: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum PulsarSourceError {
    #[error(transparent)]
    BadTopic(#[from] TopicNameError),
    #[error(transparent)]
    Connect(#[from] ConnectError),
    #[error(transparent)]
    Admin(#[from] AdminError),
    #[error("cannot subscribe {subscription} on {topic}: {reason}")]
    Subscribe {
        topic: String,
        subscription: String,
        reason: String,
    },
}

/// What a [`PulsarSource`] counts.
#[derive(Debug, Clone, Default)]
pub struct ConsumerCounters {
    /// Consumers dropped and subscribed anew (errors, ended streams, stalls, passed entries).
    pub rebuilds: Arc<AtomicU64>,
    /// Entries the consumer could not read, committed through the admin API and moved past.
    pub passed_entries: Arc<AtomicU64>,
}

/// Where the consumer is.
enum ConsumerState {
    Ready(Box<EventConsumer>),
    /// Subscribing in a task (see the module doc on cancel-safety).
    Subscribing(JoinHandle<Result<EventConsumer, String>>),
    /// Between attempts: the next one starts at `retry_at`.
    Waiting {
        retry_at: Instant,
    },
    /// After [`EventSource::close`]: `recv` answers `None`.
    Closed,
}

pub struct PulsarSource {
    config: PulsarSourceConfig,
    topic: TopicName,
    state: ConsumerState,
    /// Subscribe attempts and rebuilds since the last delivered message (for the backoff): a
    /// consumer that fails right after every rebuild must not spin.
    failures: u32,
    /// Each partition's topic as the consumer names it, learned from its messages: the key
    /// `ack_with_id` wants.
    partition_topics: HashMap<u32, String>,
    activity: Arc<PartitionActivity>,
    counters: ConsumerCounters,
    /// The subscriptions as the stall watch last read them; empty without an admin URL.
    subscriptions: Arc<Subscriptions>,
    /// Partitions the stall watch found stalled; `None` without an admin URL.
    stalls: Option<mpsc::Receiver<Stall>>,
    /// Entries read through the admin API; `None` without an admin URL.
    passing: Option<EntryPassing>,
}

/// What one wait in `recv` ended with. Large, but only ever moved once, never stored.
#[allow(clippy::large_enum_variant)]
enum Outcome {
    Message(Message<Vec<u8>>),
    Rebuild(String),
    Stalled(Stall),
}

impl PulsarSource {
    /// Connects, subscribes, and starts the stall watch; fails when the broker cannot be
    /// reached or refuses the subscription within `config.wait`.
    pub async fn connect(config: PulsarSourceConfig) -> Result<Self, PulsarSourceError> {
        let topic = TopicName::parse(&config.topic)?;
        let client = pulsar_client::connect(&config.url, config.wait).await?;
        let consumer = subscribe(&client, &topic, &config)
            .await
            .map_err(|reason| PulsarSourceError::Subscribe {
                topic: topic.to_string(),
                subscription: config.subscription.clone(),
                reason,
            })?;
        let activity = Arc::new(PartitionActivity::new());
        let admin = match &config.admin_url {
            Some(url) => Some(PulsarAdmin::new(url, config.wait)?),
            None => None,
        };
        let counters = ConsumerCounters::default();
        let passing = admin.clone().map(|admin| {
            EntryPassing::new(
                admin,
                topic.clone(),
                config.subscription.clone(),
                counters.passed_entries.clone(),
            )
        });
        let subscriptions = Arc::new(Subscriptions::default());
        let stalls = match admin {
            None => None,
            Some(admin) => {
                let (report, stalls) = mpsc::channel(1);
                let watch = StallWatch {
                    admin,
                    topic: topic.clone(),
                    partitions: config.partitions,
                    subscription: config.subscription.clone(),
                    consumer_name: config.consumer_name.clone(),
                    activity: activity.clone(),
                    subscriptions: subscriptions.clone(),
                    stall_after: config.stall_after,
                };
                tokio::spawn(watch.run(report));
                Some(stalls)
            }
        };
        tracing::info!(
            topic = %topic,
            subscription = %config.subscription,
            consumer = %config.consumer_name,
            "subscribed"
        );
        Ok(PulsarSource {
            topic,
            state: ConsumerState::Ready(Box::new(consumer)),
            failures: 0,
            partition_topics: HashMap::new(),
            activity,
            counters,
            subscriptions,
            stalls,
            passing,
            config,
        })
    }

    pub fn consumer_name(&self) -> &str {
        &self.config.consumer_name
    }

    /// The consumer's counters, readable while the source runs (metrics, tests).
    pub fn counters(&self) -> ConsumerCounters {
        self.counters.clone()
    }

    /// The subscription on each partition as the broker last described it (`/metrics` reads
    /// the backlog of the partitions this worker owns from it).
    pub fn subscriptions(&self) -> Arc<Subscriptions> {
        self.subscriptions.clone()
    }

    /// Drops the consumer (its partitions go to another consumer, what it did not ack comes
    /// again) and starts subscribing anew, on a fresh connection: a client stuck after a
    /// broker restart is the usual reason to get here.
    fn rebuild(&mut self, why: &str) {
        self.counters.rebuilds.fetch_add(1, Ordering::Relaxed);
        let wait = match self.failures {
            0 => Duration::ZERO,
            n => self.config.backoff.delay(n - 1),
        };
        self.failures = self.failures.saturating_add(1);
        tracing::warn!(why, ?wait, "rebuilding the Pulsar consumer");
        // The new consumer gets its `stall_after` from now, not from when the old one stalled.
        self.activity.rebuilt();
        self.state = ConsumerState::Waiting {
            retry_at: Instant::now() + wait,
        };
    }

    /// Returns once the consumer is ready (`false`: closed), subscribing (again) as needed.
    /// Cancel-safe.
    async fn ready(&mut self) -> bool {
        loop {
            match &mut self.state {
                ConsumerState::Ready(_) => return true,
                ConsumerState::Closed => return false,
                ConsumerState::Waiting { retry_at } => {
                    sleep_until(*retry_at).await;
                    let (topic, config) = (self.topic.clone(), self.config.clone());
                    self.state = ConsumerState::Subscribing(tokio::spawn(async move {
                        let client = pulsar_client::connect(&config.url, config.wait)
                            .await
                            .map_err(|e| e.to_string())?;
                        subscribe(&client, &topic, &config).await
                    }));
                }
                ConsumerState::Subscribing(task) => {
                    let error = match task.await {
                        Ok(Ok(consumer)) => {
                            tracing::info!("Pulsar consumer rebuilt");
                            self.activity.rebuilt();
                            self.state = ConsumerState::Ready(Box::new(consumer));
                            continue;
                        }
                        Ok(Err(error)) => error,
                        Err(join) => join.to_string(),
                    };
                    let wait = self.config.backoff.delay(self.failures);
                    self.failures = self.failures.saturating_add(1);
                    tracing::warn!(%error, ?wait, "cannot subscribe; retrying");
                    self.state = ConsumerState::Waiting {
                        retry_at: Instant::now() + wait,
                    };
                }
            }
        }
    }

    /// Acks each complete entry the consumer delivered among `acks`, on its own (`acks.rs`).
    async fn ack_delivered(&mut self, acks: &[PulsarAck]) {
        let ConsumerState::Ready(consumer) = &mut self.state else {
            tracing::debug!(acks = acks.len(), "no consumer; acks left for redelivery");
            return;
        };
        for ack in acks::entry_acks(acks) {
            let partition = ack.partition;
            let Some(topic) = self.partition_topics.get(&partition) else {
                continue; // Unreachable: an ack comes from a delivery, which named its topic.
            };
            if let Err(error) = consumer.ack_with_id(topic, ack.entry_id()).await {
                // The partition's consumer is gone (being rebuilt): its messages come again.
                tracing::warn!(%error, partition, "ack failed; the messages will be redelivered");
            }
        }
    }

    fn delivered(&mut self, message: Message<Vec<u8>>) -> Received<PulsarAck> {
        let partition = partition_of(&message.topic);
        self.activity.delivered(partition);
        self.failures = 0;
        let ack = PulsarAck::new(
            partition,
            message.message_id(),
            message.message_id.batch_size,
        );
        self.partition_topics
            .entry(partition)
            .or_insert_with(|| message.topic.clone());
        // Read only when this worker traces: a string per message otherwise for nothing.
        let trace = telemetry::traces_enabled()
            .then(|| {
                message
                    .metadata()
                    .properties
                    .iter()
                    .find(|property| property.key == TRACEPARENT)
                    .map(|property| TraceParent(property.value.clone()))
            })
            .flatten();
        Received::decode(message.payload.data, ack, partition).with_trace(trace)
    }
}

/// The partition of a partition topic's name (`…-partition-3`); 0 for a topic without
/// partitions.
fn partition_of(topic: &str) -> u32 {
    topic
        .rsplit_once("-partition-")
        .and_then(|(_, n)| n.parse().ok())
        .unwrap_or(0)
}

#[async_trait]
impl EventSource for PulsarSource {
    type Ack = PulsarAck;

    async fn recv(&mut self) -> Result<Option<Received<PulsarAck>>, BusError> {
        let _waiting = self.activity.waiting();
        loop {
            if let Some(record) = self.passing.as_mut().and_then(EntryPassing::next) {
                self.activity.delivered(record.partition());
                return Ok(Some(record));
            }
            if !self.ready().await {
                return Ok(None);
            }
            let ConsumerState::Ready(consumer) = &mut self.state else {
                continue;
            };
            let stalls = &mut self.stalls;
            let stalled = async {
                match stalls {
                    Some(stalls) => stalls.recv().await,
                    None => std::future::pending().await,
                }
            };
            let outcome = tokio::select! {
                next = consumer.next() => match next {
                    Some(Ok(message)) => Outcome::Message(message),
                    Some(Err(error)) => Outcome::Rebuild(format!("consumer error: {error}")),
                    None => Outcome::Rebuild("the consumer's stream ended".into()),
                },
                Some(stall) = stalled => Outcome::Stalled(stall),
            };
            match outcome {
                Outcome::Message(message) => return Ok(Some(self.delivered(message))),
                Outcome::Rebuild(why) => self.rebuild(&why),
                Outcome::Stalled(Stall::Duplicated { partition }) => self.rebuild(&format!(
                    "partition {partition} has a second consumer of this worker"
                )),
                Outcome::Stalled(Stall::Silent { partition, head }) => {
                    let taken = match (head, &mut self.passing) {
                        (Some(head), Some(passing)) => passing.take(partition, head),
                        _ => false,
                    };
                    if !taken {
                        self.rebuild(&format!("partition {partition} stalled"));
                    }
                }
            }
        }
    }

    async fn ack(&mut self, acks: Vec<PulsarAck>) -> Result<(), BusError> {
        self.ack_delivered(&acks).await;
        if let Some(passing) = &mut self.passing {
            if passing.pass(&acks).await > 0 {
                // The broker disconnected the moved partition's consumer; a new one starts
                // after the entry at once (pulsar-rs would wait for its topic refresh).
                self.rebuild("moved past an entry the consumer could not read");
            }
        }
        Ok(())
    }

    async fn close(&mut self) {
        let state = std::mem::replace(&mut self.state, ConsumerState::Closed);
        self.stalls = None; // Ends the stall watch.
        let ConsumerState::Ready(mut consumer) = state else {
            return;
        };
        let deadline = Instant::now() + self.config.wait;
        let drained = drain_until_quiet(&mut consumer, &self.config, deadline).await;
        match timeout(
            deadline.saturating_duration_since(Instant::now()),
            consumer.close(),
        )
        .await
        {
            Ok(Ok(())) => tracing::info!(drained, "Pulsar consumer closed"),
            Ok(Err(error)) => tracing::warn!(%error, "closing the Pulsar consumer failed"),
            Err(_) => tracing::warn!("the Pulsar consumer did not close in time; dropping it"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_are_read_from_the_topic_name() {
        assert_eq!(partition_of("persistent://public/default/e-partition-3"), 3);
        assert_eq!(
            partition_of("persistent://public/default/e-partition-12"),
            12
        );
        assert_eq!(partition_of("persistent://public/default/e"), 0);
    }
}
