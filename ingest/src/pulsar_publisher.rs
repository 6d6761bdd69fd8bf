//! [`PulsarPublisher`]: the distributed deployment's [`EventPublisher`], a pulsar-rs producer on
//! the partitioned `like-events` topic (DESIGN sections 2, 5, 11).
//!
//! # What a publish promises
//! [`EventPublisher::publish`] returns `Ok` only once the broker has acked *that* message (I3):
//! each publish enqueues its message and then awaits its own send receipt. Batching (a few
//! milliseconds) and LZ4 compression only group messages on the wire; a batch is acked as a
//! whole, and every publish in it resolves from that ack.
//!
//! # Routing
//! The message key is [`event_key`] (the content id) and the routing policy is pulsar-rs'
//! `RoundRobin`, which hashes a message's key (murmur3) to a partition; without a policy a
//! partitioned producer ignores the key. `likes-dlq replay` routes the same way, so replayed and
//! live events of one content land on one partition (I5). Within a batch the key travels in each
//! message's own metadata, so consumers still see it. A consumer acking batched messages must ack
//! an entry only once all its messages are committed (pulsar-rs acks the whole entry).
//!
//! # Bounds (I7): nothing waits forever
//! - In flight: at most `max_in_flight` publishes at once (a semaphore); one more fails at once
//!   with [`BusError::Full`], which ingest answers with 503 and Retry-After.
//! - Time: every await of a publish (taking the producer, connecting, building it, enqueueing,
//!   the ack) is under one deadline, `send_timeout_ms` from the start; past it the publish fails
//!   with [`BusError::Unavailable`]. Connecting is bounded by `connect_timeout_ms` as well.
//!
//! # Rebuilding
//! pulsar-rs itself re-creates a producer's broker connection and resends its pending messages
//! (a broker restart, a topic unloaded), within the client's operation timeout. What it gives up
//! on reaches us as a send error or as no ack before our deadline, and then the producer is
//! dropped (with its client connection): a half-open connection looks exactly like a slow
//! broker. The producer is created lazily, so the next publish connects and builds a new one. The generation counter keeps a late failure of an
//! old producer from dropping the new one.
//!
//! # The durable mark
//! Pulsar message ids do not order events across partitions, and nothing outside this process
//! knows a local counter. The mark is therefore the wall-clock time of the ack in milliseconds,
//! never lower than a mark this publisher returned before ([`DurableMark`] allows a broker's ack
//! time). What it means for the caches: a `CommitProgress` over Pulsar has to report a time `T`
//! such that every message acked by `T` is in the store (from the pipeline's committed
//! positions and their publish times, less the clock skew between ingest hosts). That belongs
//! to the pipeline side and is not implemented here; until it is, nothing may forget on the
//! strength of these marks (a progress of 0 forgets nothing).

mod config;

pub use config::{EventCompression, PublisherConfigError, PulsarPublisherConfig};

use async_trait::async_trait;
use likes_shared::bus::{BusError, DurableMark, EventPublisher, WallClockMarks};
use likes_shared::metrics::ClientMetrics;
use likes_shared::telemetry::{self, TraceParent, TRACEPARENT};
use likes_shared::topics::event_key;
use likes_shared::LikeEvent;
use likes_sink::pulsar_client::{self, PulsarClient};
use pulsar::compression::{Compression, CompressionLz4};
use pulsar::producer::SendFuture;
use pulsar::{Producer, ProducerOptions, TokioExecutor};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::sync::{Mutex, Semaphore};
use tokio::time::{timeout_at, Instant};
use tracing::Instrument;

pub struct PulsarPublisher {
    config: PulsarPublisherConfig,
    /// The full topic name, checked once.
    topic: String,
    in_flight: Semaphore,
    /// A tokio mutex: enqueueing needs `&mut Producer` across an await. It is held only to
    /// enqueue (and to build a missing producer), never while waiting for an ack.
    slot: Mutex<ProducerSlot>,
    /// Whether the last attempt (build, send, ack) worked; `/readyz` reads it.
    healthy: AtomicBool,
    marks: WallClockMarks,
    /// Where each publish's duration goes (`messaging_client_operation_duration_seconds`).
    calls: Option<ClientMetrics>,
}

#[derive(Default)]
struct ProducerSlot {
    live: Option<LiveProducer>,
    /// Counts producers built; a failure is charged to the generation that sent the message.
    generation: u64,
}

struct LiveProducer {
    producer: Producer<TokioExecutor>,
    /// Kept so that dropping the producer also drops the connection it was built on.
    _client: PulsarClient,
}

impl PulsarPublisher {
    /// Checks `config` without connecting; the first publish connects.
    pub fn new(config: PulsarPublisherConfig) -> Result<Self, PublisherConfigError> {
        let topic = config.checked_topic()?;
        Ok(PulsarPublisher {
            in_flight: Semaphore::new(config.max_in_flight.min(Semaphore::MAX_PERMITS)),
            config,
            topic,
            slot: Mutex::new(ProducerSlot::default()),
            healthy: AtomicBool::new(false),
            marks: WallClockMarks::default(),
            calls: None,
        })
    }

    /// Times every publish, from its start to the broker's ack or the failure, into `calls`.
    pub fn with_call_metrics(mut self, calls: ClientMetrics) -> Self {
        self.calls = Some(calls);
        self
    }

    /// Like [`Self::new`], then connects and builds the producer, so that a start with an
    /// unreachable broker or a missing permission says so at once.
    pub async fn connect(config: PulsarPublisherConfig) -> Result<Self, BusError> {
        let publisher = Self::new(config).map_err(|e| BusError::Unavailable(e.to_string()))?;
        publisher.connect_now().await?;
        Ok(publisher)
    }

    /// Connects and builds the producer now instead of at the first publish (within the
    /// connect timeout). Its error is only news: a later publish tries again.
    pub async fn connect_now(&self) -> Result<(), BusError> {
        let deadline = Instant::now() + self.config.connect_timeout();
        let mut slot = self.slot.lock().await;
        self.ensure_producer(&mut slot, deadline).await
    }

    pub fn config(&self) -> &PulsarPublisherConfig {
        &self.config
    }

    /// Publishes `event` with extra message `properties` (the trace context of DESIGN section 5
    /// is one). Same promise as [`EventPublisher::publish`].
    pub async fn publish_with_properties(
        &self,
        event: &LikeEvent,
        properties: &[(&str, &str)],
    ) -> Result<DurableMark, BusError> {
        let started = Instant::now();
        let (result, error_type) = self.send(event, properties, started).await;
        if let Some(calls) = &self.calls {
            calls.messaging_call("pulsar", "send", started.elapsed(), error_type);
        }
        result
    }

    /// One publish under one deadline from `started`; the error's `error_type` label beside it.
    async fn send(
        &self,
        event: &LikeEvent,
        properties: &[(&str, &str)],
        started: Instant,
    ) -> (Result<DurableMark, BusError>, Option<&'static str>) {
        let Ok(_permit) = self.in_flight.try_acquire() else {
            return (Err(BusError::Full), Some("full"));
        };
        let deadline = started + self.config.send_timeout();
        let (receipt, generation) = match self.enqueue(event, properties, deadline).await {
            Ok(enqueued) => enqueued,
            Err(error) => return (Err(error), Some("unavailable")),
        };
        match timeout_at(deadline, receipt).await {
            Ok(Ok(_)) => {
                self.healthy.store(true, Ordering::Release);
                (Ok(self.marks.next(0)), None)
            }
            Ok(Err(error)) => {
                let reason = format!("send failed: {error}");
                (Err(self.discard(generation, reason).await), Some("send"))
            }
            Err(_) => {
                let reason = format!("no broker ack within {:?}", self.config.send_timeout());
                (Err(self.discard(generation, reason).await), Some("timeout"))
            }
        }
    }

    /// Closes the producer and tells the broker (at shutdown, once the in-flight publishes are
    /// answered). pulsar-rs does not promise to flush a batch still being filled: a publish
    /// still waiting then fails (it never reported durable), so nothing answered 2xx is lost.
    /// A later publish builds a new producer. Bounded by the send timeout.
    pub async fn close(&self) {
        self.healthy.store(false, Ordering::Release);
        let deadline = Instant::now() + self.config.send_timeout();
        let Ok(mut slot) = timeout_at(deadline, self.slot.lock()).await else {
            tracing::warn!(topic = %self.topic, "producer busy; not closed");
            return;
        };
        if let Some(mut live) = slot.live.take() {
            match timeout_at(deadline, live.producer.close()).await {
                Ok(Ok(())) => {}
                Ok(Err(error)) => {
                    tracing::warn!(topic = %self.topic, %error, "closing the producer")
                }
                Err(_) => tracing::warn!(topic = %self.topic, "the producer did not close in time"),
            }
        }
    }

    /// Enqueues the message on the producer (building it first if there is none) and returns its
    /// receipt and the producer's generation.
    async fn enqueue(
        &self,
        event: &LikeEvent,
        properties: &[(&str, &str)],
        deadline: Instant,
    ) -> Result<(SendFuture, u64), BusError> {
        let mut slot = timeout_at(deadline, self.slot.lock())
            .await
            .map_err(|_| self.unavailable("producer busy until the send timeout".into()))?;
        self.ensure_producer(&mut slot, deadline).await?;
        let generation = slot.generation;
        let Some(live) = slot.live.as_mut() else {
            return Err(self.unavailable("no producer".into()));
        };
        let mut message = live
            .producer
            .create_message()
            .with_key(event_key(event))
            .with_content(event.encode());
        for (key, value) in properties {
            message = message.with_property(*key, *value);
        }
        let enqueued = match timeout_at(deadline, message.send_non_blocking()).await {
            Ok(Ok(receipt)) => return Ok((receipt, generation)),
            Ok(Err(error)) => format!("send failed: {error}"),
            Err(_) => "not enqueued before the send timeout".to_owned(),
        };
        slot.live = None;
        self.healthy.store(false, Ordering::Release);
        Err(self.unavailable(enqueued))
    }

    /// Connects and builds the producer if the slot has none, within `deadline` and the connect
    /// timeout.
    async fn ensure_producer(
        &self,
        slot: &mut ProducerSlot,
        deadline: Instant,
    ) -> Result<(), BusError> {
        if slot.live.is_some() {
            return Ok(());
        }
        let deadline = deadline.min(Instant::now() + self.config.connect_timeout());
        let wait = deadline.saturating_duration_since(Instant::now());
        let built = timeout_at(deadline, self.build(wait))
            .await
            .unwrap_or_else(|_| Err(format!("no producer within {wait:?}")));
        match built {
            Ok(live) => {
                slot.live = Some(live);
                slot.generation += 1;
                self.healthy.store(true, Ordering::Release);
                Ok(())
            }
            Err(reason) => {
                self.healthy.store(false, Ordering::Release);
                Err(self.unavailable(reason))
            }
        }
    }

    async fn build(&self, wait: Duration) -> Result<LiveProducer, String> {
        let client = pulsar_client::connect(&self.config.url, wait.max(Duration::from_millis(1)))
            .await
            .map_err(|e| e.to_string())?;
        let producer = client
            .producer()
            .with_topic(&self.topic)
            .with_options(self.producer_options())
            .build()
            .await
            .map_err(|e| format!("cannot create a producer: {e}"))?;
        // Without partitions the key routes nothing and one content's order is not kept (I5);
        // e.g. a topic the broker auto-created because none existed when ingest started.
        if producer.partitions().is_none() {
            return Err(format!(
                "topic {} is not partitioned (run `likes-pipeline init`)",
                self.topic
            ));
        }
        Ok(LiveProducer {
            producer,
            _client: client,
        })
    }

    fn producer_options(&self) -> ProducerOptions {
        let config = &self.config;
        let batching = config.batching();
        ProducerOptions {
            batch_size: batching.then_some(config.batch_max_messages),
            batch_byte_size: batching.then_some(config.batch_max_bytes),
            batch_timeout: batching.then(|| Duration::from_millis(config.batch_delay_ms)),
            compression: Some(match config.compression {
                EventCompression::None => Compression::None,
                EventCompression::Lz4 => Compression::Lz4(CompressionLz4::default()),
            }),
            // Routing by key as `likes-dlq replay` does; enqueueing waits (bounded by the
            // deadline) when the outbound channel is full: the semaphore is the real bound.
            ..pulsar_client::keyed_event_producer_options()
        }
    }

    /// Drops the producer of `generation` (if still the live one) so the next publish builds a
    /// new one; returns the error to report.
    async fn discard(&self, generation: u64, reason: String) -> BusError {
        self.healthy.store(false, Ordering::Release);
        // Bounded like everything else: if another publish holds the slot for longer than a
        // send timeout, it is rebuilding or failing the producer itself.
        let deadline = Instant::now() + self.config.send_timeout();
        if let Ok(mut slot) = timeout_at(deadline, self.slot.lock()).await {
            if slot.generation == generation {
                slot.live = None;
            }
        }
        tracing::warn!(topic = %self.topic, %reason, "publish failed; the producer will be rebuilt");
        self.unavailable(reason)
    }

    fn unavailable(&self, reason: String) -> BusError {
        BusError::Unavailable(format!("{}: {reason}", self.topic))
    }
}

#[async_trait]
impl EventPublisher for PulsarPublisher {
    /// While traces are exported, in a producer span whose context rides in the message's
    /// `traceparent` property, for the worker's window span to link to.
    async fn publish(&self, event: &LikeEvent) -> Result<DurableMark, BusError> {
        if !telemetry::traces_enabled() {
            return self.publish_with_properties(event, &[]).await;
        }
        let span = tracing::info_span!(
            "publish",
            otel.name = %format_args!("send {}", self.topic),
            otel.kind = "producer",
            messaging.system = "pulsar",
            messaging.operation.type = "send",
            messaging.destination.name = %self.topic,
        );
        async {
            let context = TraceParent::current();
            let properties: Vec<(&str, &str)> = context
                .iter()
                .map(|context| (TRACEPARENT, context.0.as_str()))
                .collect();
            self.publish_with_properties(event, &properties).await
        }
        .instrument(span)
        .await
    }

    fn is_ready(&self) -> bool {
        self.healthy.load(Ordering::Acquire)
    }
}
