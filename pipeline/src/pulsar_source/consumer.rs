//! Making and letting go of the pulsar-rs consumer: how it subscribes (failover, bounded
//! prefetch) and how it is drained before a close.

use super::PulsarSourceConfig;
use futures::StreamExt;
use likes_shared::topics::TopicName;
use likes_sink::pulsar_client::PulsarClient;
use pulsar::consumer::InitialPosition;
use pulsar::{Consumer, ConsumerOptions, SubType, TokioExecutor};
use std::time::Duration;
use tokio::time::{timeout, Instant};

pub(super) type EventConsumer = Consumer<Vec<u8>, TokioExecutor>;

/// Subscribes `config.consumer_name` to every partition of `topic` on the failover
/// subscription, within `config.wait`.
pub(super) async fn subscribe(
    client: &PulsarClient,
    topic: &TopicName,
    config: &PulsarSourceConfig,
) -> Result<EventConsumer, String> {
    let queue = config.receiver_queue.max(1);
    let building = client
        .consumer()
        .with_topic(topic.to_string())
        .with_subscription(&config.subscription)
        .with_subscription_type(SubType::Failover)
        .with_consumer_name(&config.consumer_name)
        // Flow permits: what the broker may push ahead of the reads, per partition.
        .with_batch_size(queue)
        // A partition whose consumer failed is subscribed again at this interval.
        .with_topic_refresh(Duration::from_secs(10))
        .with_options(
            ConsumerOptions::default()
                .durable(true)
                // `init` creates the subscription at the earliest message; this only matters
                // if it was deleted since.
                .with_initial_position(InitialPosition::Earliest)
                .with_receiver_queue_size(queue),
        )
        .build::<Vec<u8>>();
    match timeout(config.wait, building).await {
        Ok(Ok(consumer)) => Ok(consumer),
        Ok(Err(error)) => Err(error.to_string()),
        Err(_) => Err(format!("no answer within {:?}", config.wait)),
    }
}

/// The most messages one producer batch can hold (ingest's `batch_max_messages` default); a
/// batch entry is pushed to the receiver queue whole, however few permits are left.
const LARGEST_BATCH: u64 = 1_000;

/// Reads and drops what the consumer has buffered until it is quiet, until it has dropped
/// enough that every partition's earlier acks must have been handled, or until `deadline`;
/// returns how many messages that was.
///
/// Why: pulsar-rs handles a consumer's acks and its close in the same task that pushes messages
/// into the receiver queue, in arrival order; with the queue full that task waits for the
/// worker to read, and the last window's acks and the close wait behind it. What is ahead of an
/// ack in a partition's task is at most its receiver queue, its flow permits (both
/// `receiver_queue`) and one batch, hence the bound: a busy topic, which is never quiet, does
/// not hold a stop up for the whole `deadline`. Dropped messages are not acked, so the
/// partitions' next owner gets them.
pub(super) async fn drain_until_quiet(
    consumer: &mut EventConsumer,
    config: &PulsarSourceConfig,
    deadline: Instant,
) -> u64 {
    const QUIET: Duration = Duration::from_millis(200);
    let per_partition = 2 * u64::from(config.receiver_queue.max(1)) + LARGEST_BATCH;
    let enough = u64::from(config.partitions.max(1)) * per_partition;
    let mut drained = 0u64;
    while drained < enough && Instant::now() < deadline {
        match timeout(QUIET, consumer.next()).await {
            Ok(Some(_)) => drained += 1,
            Ok(None) | Err(_) => break,
        }
    }
    drained
}
