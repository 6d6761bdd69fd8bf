//! `PulsarPublisher` on the real broker of `infra/dev/services` (issue 7). Each test works on its
//! own freshly created topic; without the services' env file the tests fail saying how to start
//! them.
//!
//! - Every `Ok` publish is on the topic (read back from every partition), each content on one
//!   partition, one content's sequential publishes in order; entries are batched and LZ4.
//! - With the broker hung (a local listener that accepts and never answers: the connection is
//!   real, the broker just does not respond), publish `N + 1` of `max_in_flight = N` fails at
//!   once with `Full`, and the `N` fail within the send timeout instead of hanging.
//! - After a failed publish (a hung front that later forwards to the broker) the next one builds
//!   a new producer and works; so does a publish after `close`. A producer that worked and then
//!   fails is not provoked here: pulsar-rs re-creates its connection and resends on its own, and
//!   force-deleting the topic under it did not fail a publish either (they went on being acked,
//!   and the partitioned topic could then not be created again under that name).
#![cfg(feature = "pulsar")]

use futures::TryStreamExt;
use likes_ingest::pulsar_publisher::{PulsarPublisher, PulsarPublisherConfig};
use likes_shared::bus::{BusError, EventPublisher};
use likes_shared::topics::{TopicName, TopicsConfig};
use likes_shared::{Action, ContentId, LikeEvent, UserId};
use likes_sink::pulsar_admin::PulsarAdmin;
use likes_smoke::{unique_name, ServicesEnv};
use pulsar::consumer::InitialPosition;
use pulsar::message::proto::CompressionType;
use pulsar::{Consumer, ConsumerOptions, Pulsar, SubType, TokioExecutor};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::{TcpListener, TcpStream};

const WAIT: Duration = Duration::from_secs(20);
const PARTITIONS: u32 = 4;

struct Broker {
    url: String,
    topic: String,
}

/// A new partitioned topic on the running broker.
async fn fresh_topic() -> Broker {
    let env = ServicesEnv::load();
    let admin = PulsarAdmin::new(&env.get("LIKES_PULSAR_ADMIN_URL"), WAIT).expect("admin URL");
    let topic = TopicName::parse(&unique_name("ingest-publisher")).expect("topic name");
    assert!(
        admin
            .create_partitioned(&topic, PARTITIONS)
            .await
            .expect("create the topic"),
        "a fresh topic name was taken"
    );
    Broker {
        url: env.get("LIKES_PULSAR_URL"),
        topic: topic.to_string(),
    }
}

fn config(url: &str, topic: &str) -> PulsarPublisherConfig {
    let topics = TopicsConfig {
        topic: topic.to_owned(),
        ..TopicsConfig::default()
    };
    PulsarPublisherConfig::new(url, &topics)
}

fn event(content: u64, seq: u64) -> LikeEvent {
    LikeEvent {
        event_id: u128::from(content) << 64 | u128::from(seq),
        user_id: UserId::new(seq + 1).expect("non-zero"),
        content_id: ContentId::new(content).expect("non-zero"),
        action: if seq.is_multiple_of(2) {
            Action::Like
        } else {
            Action::Unlike
        },
        version: seq + 1,
        ts_ms: 1_700_000_000_000 + seq,
        source: "pulsar-publisher-test".into(),
        fill_epoch: 0,
    }
}

async fn subscribe(url: &str, topic: &str) -> Consumer<Vec<u8>, TokioExecutor> {
    let client = Pulsar::builder(url, TokioExecutor)
        .build()
        .await
        .expect("connect the consumer");
    client
        .consumer()
        .with_topic(topic)
        .with_subscription(unique_name("sub"))
        .with_subscription_type(SubType::Exclusive)
        .with_options(ConsumerOptions::default().with_initial_position(InitialPosition::Earliest))
        .build()
        .await
        .expect("subscribe")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_acked_publish_is_on_the_topic_one_partition_per_content_in_order() {
    const CONTENTS: u64 = 20;
    const PER_CONTENT: u64 = 50;
    let broker = fresh_topic().await;
    let mut consumer = subscribe(&broker.url, &broker.topic).await;
    let publisher = Arc::new(
        PulsarPublisher::connect(config(&broker.url, &broker.topic))
            .await
            .expect("publisher"),
    );
    assert!(publisher.is_ready());

    // One task per content publishes its events one after another; the contents run at once.
    let tasks: Vec<_> = (1..=CONTENTS)
        .map(|content| {
            let publisher = publisher.clone();
            tokio::spawn(async move {
                let mut marks = Vec::new();
                for seq in 0..PER_CONTENT {
                    let mark = publisher
                        .publish(&event(content, seq))
                        .await
                        .unwrap_or_else(|e| panic!("publish {content}/{seq}: {e}"));
                    marks.push(mark);
                }
                marks
            })
        })
        .collect();
    for task in tasks {
        let marks = task.await.expect("publishing task");
        assert!(marks.windows(2).all(|w| w[0] <= w[1]), "marks went back");
    }

    let total = CONTENTS * PER_CONTENT;
    let mut seqs: BTreeMap<u64, Vec<u64>> = BTreeMap::new();
    let mut partitions: HashMap<u64, BTreeSet<String>> = HashMap::new();
    let mut received = BTreeSet::new();
    let mut largest_batch = 0;
    while (received.len() as u64) < total {
        let message = tokio::time::timeout(WAIT, consumer.try_next())
            .await
            .unwrap_or_else(|_| panic!("only {} of {total} events arrived", received.len()))
            .expect("consume")
            .expect("the consumer stream ended");
        let decoded = LikeEvent::decode(&message.payload.data).expect("an event");
        let content = decoded.content_id.get();
        assert_eq!(message.key(), Some(content.to_string()), "the message key");
        assert_eq!(
            decoded,
            event(content, decoded.version - 1),
            "the event as sent"
        );
        assert!(received.insert(decoded.event_id), "{decoded:?} twice");
        largest_batch = largest_batch.max(message.message_id.batch_size.unwrap_or(1));
        assert_eq!(
            message.payload.metadata.compression,
            Some(CompressionType::Lz4 as i32),
            "the entry is LZ4-compressed"
        );
        partitions
            .entry(content)
            .or_default()
            .insert(message.topic.clone());
        seqs.entry(content).or_default().push(decoded.version - 1);
        consumer.ack(&message).await.expect("ack");
    }
    assert_eq!(seqs.len() as u64, CONTENTS);
    // 20 concurrent publishers within a 2 ms batch delay: some entries hold several events.
    assert!(largest_batch > 1, "no batch held more than one event");
    for (content, seen) in &seqs {
        let expected: Vec<u64> = (0..PER_CONTENT).collect();
        assert_eq!(
            seen, &expected,
            "content {content}'s events, in publish order"
        );
        assert_eq!(
            partitions[content].len(),
            1,
            "content {content} on one partition: {:?}",
            partitions[content]
        );
    }
    let used: BTreeSet<&String> = partitions.values().flatten().collect();
    assert!(used.len() > 1, "20 contents all hashed to {used:?}");
}

/// A listener that accepts connections and never answers, until `forward` is set: from then on
/// new connections are piped to `upstream`. A hung broker first, a healthy one after.
async fn hung_front(upstream: Option<String>, forward: Arc<AtomicBool>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("address");
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((mut inbound, _)) = listener.accept().await {
            match (&upstream, forward.load(Ordering::Acquire)) {
                (Some(upstream), true) => {
                    let upstream = upstream.clone();
                    tokio::spawn(async move {
                        if let Ok(mut outbound) = TcpStream::connect(upstream).await {
                            let _ =
                                tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                        }
                    });
                }
                _ => held.push(inbound),
            }
        }
    });
    format!("pulsar://{address}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_max_in_flight_a_publish_fails_fast_and_a_hung_broker_times_out() {
    const MAX_IN_FLIGHT: usize = 4;
    let url = hung_front(None, Arc::new(AtomicBool::new(false))).await;
    let send_timeout = Duration::from_millis(1_500);
    let publisher = Arc::new(
        PulsarPublisher::new(PulsarPublisherConfig {
            max_in_flight: MAX_IN_FLIGHT,
            send_timeout_ms: send_timeout.as_millis() as u64,
            // Longer than the send timeout: the send timeout must still bound a publish.
            connect_timeout_ms: 30_000,
            ..config(&url, "like-events-test")
        })
        .expect("config"),
    );
    let started = Instant::now();
    let hanging: Vec<_> = (0..MAX_IN_FLIGHT as u64)
        .map(|seq| {
            let publisher = publisher.clone();
            tokio::spawn(async move { publisher.publish(&event(1, seq)).await })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;

    let refused_at = Instant::now();
    let refused = publisher.publish(&event(2, 0)).await;
    assert!(matches!(refused, Err(BusError::Full)), "{refused:?}");
    assert!(
        refused_at.elapsed() < Duration::from_millis(100),
        "not fast"
    );

    for publish in hanging {
        let result = publish.await.expect("publish task");
        assert!(
            matches!(result, Err(BusError::Unavailable(_))),
            "{result:?}"
        );
    }
    let took = started.elapsed();
    assert!(
        took < send_timeout + Duration::from_secs(1),
        "the hung publishes took {took:?}"
    );
    assert!(!publisher.is_ready());

    // Permits are back: a publish is tried again (and times out again, not `Full`).
    let again = publisher.publish(&event(2, 1)).await;
    assert!(matches!(again, Err(BusError::Unavailable(_))), "{again:?}");

    // A refused connection (nothing listens on port 1) fails at once, not after the timeout.
    let refused_port =
        PulsarPublisher::new(config("pulsar://127.0.0.1:1", "like-events-test")).expect("config");
    let started = Instant::now();
    let result = refused_port.publish(&event(3, 0)).await;
    assert!(
        matches!(result, Err(BusError::Unavailable(_))),
        "{result:?}"
    );
    assert!(started.elapsed() < send_timeout + Duration::from_secs(1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_failed_publish_the_next_builds_a_new_producer_and_works() {
    let broker = fresh_topic().await;
    let mut consumer = subscribe(&broker.url, &broker.topic).await;
    let upstream = broker
        .url
        .strip_prefix("pulsar://")
        .expect("a pulsar:// URL")
        .trim_end_matches('/')
        .to_owned();
    let forward = Arc::new(AtomicBool::new(false));
    let url = hung_front(Some(upstream), forward.clone()).await;
    let publisher = PulsarPublisher::new(PulsarPublisherConfig {
        send_timeout_ms: 1_000,
        ..config(&url, &broker.topic)
    })
    .expect("config");

    let failed = publisher.publish(&event(7, 0)).await;
    assert!(
        matches!(failed, Err(BusError::Unavailable(_))),
        "{failed:?}"
    );
    assert!(!publisher.is_ready());

    forward.store(true, Ordering::Release);
    publisher
        .publish(&event(7, 1))
        .await
        .expect("the publish after the broker answers again");
    assert!(publisher.is_ready());

    // Closed (as at shutdown), the producer is gone; a later publish builds another.
    publisher.close().await;
    assert!(!publisher.is_ready());
    publisher
        .publish(&event(7, 2))
        .await
        .expect("the publish after a close");

    for expected in [event(7, 1), event(7, 2)] {
        let message = tokio::time::timeout(WAIT, consumer.try_next())
            .await
            .expect("the event arrives")
            .expect("consume")
            .expect("the consumer stream ended");
        assert_eq!(
            LikeEvent::decode(&message.payload.data).expect("an event"),
            expected,
            "only the acked events are on the topic, in order"
        );
        consumer.ack(&message).await.expect("ack");
    }
}
