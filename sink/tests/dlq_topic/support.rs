//! What every test of the dead-letter topic needs: topics of its own, letters, and a reader of
//! the events topic.

use futures::TryStreamExt;
use likes_shared::topics::{TopicName, TopicsConfig};
use likes_shared::{Action, ContentId, LikeEvent, UserId};
use likes_sink::dead_letter::{DeadLetter, DeadLetterPublisher, PulsarDeadLetters};
use likes_sink::dlq::topic::{TopicDlq, TopicDlqConfig};
use likes_sink::pulsar_admin::{ensure_topics, PulsarAdmin};
use likes_sink::pulsar_client::{self, PulsarClient};
use likes_smoke::{unique_name, ServicesEnv};
use pulsar::consumer::InitialPosition;
use pulsar::{Consumer, ConsumerOptions, SubType, TokioExecutor};
use std::time::Duration;

pub const WAIT: Duration = Duration::from_secs(20);
pub const OLD_MS: u64 = 1_700_000_000_000; // 2023-11-14T22:13:20Z

/// One test's topics, created through `ensure_topics` and deleted at the end.
pub struct Topics {
    pub pulsar_url: String,
    pub admin_url: String,
    pub topics: TopicsConfig,
    pub admin: PulsarAdmin,
}

impl Topics {
    pub async fn create() -> Topics {
        let topics = Topics::named();
        ensure_topics(&topics.admin_url, &topics.topics)
            .await
            .expect("ensure_topics");
        topics
    }

    /// Names only; nothing is created.
    pub fn named() -> Topics {
        let env = ServicesEnv::load();
        let admin_url = env.get("LIKES_PULSAR_ADMIN_URL");
        Topics {
            pulsar_url: env.get("LIKES_PULSAR_URL"),
            admin: PulsarAdmin::new(&admin_url, WAIT).expect("admin url"),
            admin_url,
            topics: TopicsConfig {
                topic: unique_name("dlqtest-events"),
                partitions: 4,
                dlq_topic: unique_name("dlqtest-dlq"),
                dlq_subscription: "likes-dlq".into(),
            },
        }
    }

    pub fn config(&self) -> TopicDlqConfig {
        TopicDlqConfig {
            pulsar_url: self.pulsar_url.clone(),
            admin_url: self.admin_url.clone(),
            topics: self.topics.clone(),
            wait: WAIT,
        }
    }

    pub async fn dlq(&self) -> TopicDlq {
        TopicDlq::connect(&self.config()).await.expect("connect")
    }

    pub async fn client(&self) -> PulsarClient {
        pulsar_client::connect(&self.pulsar_url, WAIT)
            .await
            .expect("client")
    }

    pub async fn publish(&self, letters: &[DeadLetter]) {
        let publisher = PulsarDeadLetters::connect(&self.pulsar_url, &self.topics.dlq_topic, WAIT)
            .await
            .expect("publisher");
        for letter in letters {
            publisher.publish(letter).await.expect("publish letter");
        }
    }

    pub fn name(topic: &str) -> TopicName {
        TopicName::parse(topic).expect("topic name")
    }

    pub async fn delete(self) {
        for topic in [&self.topics.topic, &self.topics.dlq_topic] {
            let _ = self.admin.delete_topic(&Topics::name(topic)).await;
        }
    }
}

pub fn event(user: u64, content: u64) -> LikeEvent {
    LikeEvent {
        event_id: u128::from(user) << 64 | u128::from(content),
        user_id: UserId::new(user).expect("non-zero"),
        content_id: ContentId::new(content).expect("non-zero"),
        action: if user.is_multiple_of(2) {
            Action::Unlike
        } else {
            Action::Like
        },
        version: user * 10 + content,
        ts_ms: OLD_MS + user,
        source: "dlq-topic-test".into(),
        fill_epoch: 0,
    }
}

/// Two refused windows (one old, one new) and one undecodable record, oldest first.
pub fn letters() -> Vec<DeadLetter> {
    let now = likes_shared::hlc::now_ms();
    vec![
        DeadLetter::store_refused(
            vec![event(1, 10), event(2, 11), event(3, 10)],
            "permanent store error: out of range".into(),
            3,
            OLD_MS,
        ),
        DeadLetter::store_refused(
            vec![event(4, 12)],
            "permanent store error: x".into(),
            2,
            now,
        ),
        DeadLetter::undecodable(vec![9; 6], "unknown schema version 9".into(), now),
    ]
}

/// A consumer of the events topic from its start, made before anything is replayed into it.
pub async fn events_consumer(
    client: &PulsarClient,
    topics: &Topics,
) -> Consumer<Vec<u8>, TokioExecutor> {
    client
        .consumer()
        .with_topic(Topics::name(&topics.topics.topic).to_string())
        .with_subscription("test-reader")
        .with_subscription_type(SubType::Exclusive)
        .with_options(ConsumerOptions::default().with_initial_position(InitialPosition::Earliest))
        .build()
        .await
        .expect("events consumer")
}

/// Receives `n` events (key, partition, event), then checks that nothing more comes.
pub async fn receive(
    consumer: &mut Consumer<Vec<u8>, TokioExecutor>,
    n: usize,
) -> Vec<(String, String, LikeEvent)> {
    let mut got = Vec::new();
    while got.len() < n {
        let message = tokio::time::timeout(WAIT, consumer.try_next())
            .await
            .unwrap_or_else(|_| panic!("only {} of {n} events arrived", got.len()))
            .expect("receive")
            .expect("stream open");
        let event = LikeEvent::decode(&message.payload.data).expect("a wire-encoded event");
        got.push((message.key().expect("a key"), message.topic.clone(), event));
        consumer.ack(&message).await.expect("ack");
    }
    expect_quiet(consumer).await;
    got
}

pub async fn expect_quiet(consumer: &mut Consumer<Vec<u8>, TokioExecutor>) {
    if let Ok(extra) = tokio::time::timeout(Duration::from_secs(2), consumer.try_next()).await {
        let extra = extra.expect("receive").expect("stream open");
        panic!(
            "an unexpected event was published: {:?}",
            extra.payload.data
        );
    }
}

pub async fn listed(dlq: &TopicDlq) -> Vec<DeadLetter> {
    let backlog = dlq.letters().await.expect("list");
    assert_eq!(backlog.total, backlog.letters.len() as u64);
    backlog
        .letters
        .into_iter()
        .map(|read| read.letter)
        .collect()
}
