//! The event bus contract: ingest publishes, the pipeline consumes and acks.
//!
//! `publish` resolves only once the event is durable (acked by Pulsar, or fsynced to the local
//! log): ingest answers 2xx only after it (I3). Consumption is at-least-once: a delivery that
//! is not acked comes back after a restart or failover, which the sink makes harmless (I2).
//! Every record is handed over, decodable or not, so that every record can be acked.

use crate::event::{LikeEvent, WireError};
use crate::telemetry::TraceParent;
use async_trait::async_trait;

#[derive(Debug, thiserror::Error)]
pub enum BusError {
    /// The bus is at its bound (queue or log size): shed load, retry later (503).
    #[error("event bus is full")]
    Full,
    /// The bus cannot take events now (broker down, log closed).
    #[error("event bus unavailable: {0}")]
    Unavailable(String),
    #[error("event bus I/O: {0}")]
    Io(#[from] std::io::Error),
}

/// Where a published event became durable, in the order the sink commits events: the embedded
/// log's offset plus one; a broker-backed publisher may use its ack time. Compared with
/// [`CommitProgress::committed`] to tell whether the store holds an event yet.
pub type DurableMark = u64;

/// Durable marks from the wall clock (milliseconds), never lower than one handed out before nor
/// than the floor a call gives: what a broker-backed publisher returns (the time of the ack or
/// the fsync). One per publisher.
#[derive(Debug, Default)]
pub struct WallClockMarks(std::sync::atomic::AtomicU64);

impl WallClockMarks {
    pub fn next(&self, floor: DurableMark) -> DurableMark {
        let now = crate::hlc::now_ms().max(floor).max(1);
        self.0
            .fetch_max(now, std::sync::atomic::Ordering::AcqRel)
            .max(now)
    }
}

#[async_trait]
pub trait EventPublisher: Send + Sync + 'static {
    /// Makes `event` durable; returns once it is (and not before), with its mark.
    async fn publish(&self, event: &LikeEvent) -> Result<DurableMark, BusError>;

    /// Whether publishing is expected to work now (for `/readyz`).
    fn is_ready(&self) -> bool;

    /// Events this publisher made durable locally that are not on the bus yet: the depth of
    /// ingest's spool while the broker is (or was) down (DESIGN section 8), for `/readyz`.
    /// `None` for a publisher without a spool.
    fn spool_depth(&self) -> Option<u64> {
        None
    }
}

/// How far the sink has committed: every event whose [`DurableMark`] is at or below
/// `committed()` is in the store. A cache may forget an entry only once its newest event is
/// (DESIGN section 7, "forget only what the store holds"): a refill from a store that lacks it
/// would bring back an older state.
pub trait CommitProgress: Send + Sync + 'static {
    fn committed(&self) -> DurableMark;
}

/// A progress set by hand: tests, and deployments that derive it from elsewhere.
impl CommitProgress for std::sync::atomic::AtomicU64 {
    fn committed(&self) -> DurableMark {
        self.load(std::sync::atomic::Ordering::Acquire)
    }
}

/// One event handed to the pipeline, with the handle that acknowledges it.
#[derive(Debug, Clone)]
pub struct Delivery<A> {
    pub event: LikeEvent,
    pub ack: A,
    /// The partition the event came from (content-keyed, so one content is in one partition).
    pub partition: u32,
    /// The trace context of the publish, when the record carried one.
    pub trace: Option<TraceParent>,
}

/// A record that arrived intact but does not decode as a [`LikeEvent`] (a newer schema, a
/// foreign producer). It still has to be acked, or a source that acks cumulatively could never
/// move past it; the worker dead-letters its bytes and then acks it.
#[derive(Debug, Clone)]
pub struct UndecodableRecord<A> {
    pub payload: Vec<u8>,
    pub error: WireError,
    pub ack: A,
    pub partition: u32,
}

/// What a source hands the worker, in delivery order.
#[derive(Debug, Clone)]
pub enum Received<A> {
    Event(Delivery<A>),
    Undecodable(UndecodableRecord<A>),
}

impl<A> Received<A> {
    /// The partition the record came from.
    pub fn partition(&self) -> u32 {
        match self {
            Received::Event(delivery) => delivery.partition,
            Received::Undecodable(record) => record.partition,
        }
    }

    /// The publish's trace context, for a source whose records carry one.
    pub fn with_trace(mut self, trace: Option<TraceParent>) -> Self {
        if let Received::Event(delivery) = &mut self {
            delivery.trace = trace;
        }
        self
    }

    /// Decodes a record's payload: every source turns bytes into deliveries the same way.
    pub fn decode(payload: Vec<u8>, ack: A, partition: u32) -> Self {
        match LikeEvent::decode(&payload) {
            Ok(event) => Received::Event(Delivery {
                event,
                ack,
                partition,
                trace: None,
            }),
            Err(error) => Received::Undecodable(UndecodableRecord {
                payload,
                error,
                ack,
                partition,
            }),
        }
    }
}

#[async_trait]
pub trait EventSource: Send + 'static {
    type Ack: Clone + Send + Sync + std::fmt::Debug + 'static;

    /// The next record, decoded or not; `None` once the source is closed. Must be cancel-safe:
    /// the pipeline calls it inside `select!` with ticks and shutdown.
    async fn recv(&mut self) -> Result<Option<Received<Self::Ack>>, BusError>;

    /// Acknowledges deliveries whose effects the sink has committed. Acks arrive in delivery
    /// order, so a source may ack cumulatively.
    async fn ack(&mut self, acks: Vec<Self::Ack>) -> Result<(), BusError>;

    /// Lets go of the source at a stop, after the last ack: a broker-backed source sends what
    /// acks it still holds and closes its consumer, so the broker hands its partitions to
    /// another worker at once instead of after a session timeout. Nothing to do by default.
    async fn close(&mut self) {}
}
