//! A distributed stack for one test: a fresh partitioned topic on the real Pulsar, a fresh TiDB
//! database with the schema, the shared Redis, and `likes-ingest` instances started in process
//! on them (port 0, a temp data dir each).

use futures::TryStreamExt;
use likes_ingest::auth::Authenticator;
use likes_ingest::distributed::{Distributed, DistributedConfig};
use likes_shared::topics::{TopicName, TopicsConfig};
use likes_shared::{LikeEvent, UserId};
use likes_sink::pulsar_admin::PulsarAdmin;
use likes_sink::MySqlConfig;
use likes_smoke::{fresh_database, unique_name, ServicesEnv};
use pulsar::consumer::InitialPosition;
use pulsar::{Consumer, ConsumerOptions, Pulsar, SubType, TokioExecutor};
use std::time::Duration;

pub const SECRET: &str = "distributed-ingest-tests-secret-of-32-bytes";
pub const PARTITIONS: u32 = 4;
const WAIT: Duration = Duration::from_secs(20);

pub struct Stack {
    pub config: DistributedConfig,
    pub dirs: Vec<tempfile::TempDir>,
}

impl Stack {
    pub async fn new() -> Stack {
        let env = ServicesEnv::load();
        let admin_url = env.get("LIKES_PULSAR_ADMIN_URL");
        let admin = PulsarAdmin::new(&admin_url, WAIT).expect("admin URL");
        let topic = TopicName::parse(&unique_name("ingest-stack")).expect("topic name");
        assert!(
            admin
                .create_partitioned(&topic, PARTITIONS)
                .await
                .expect("create the topic"),
            "a fresh topic name was taken"
        );
        let database_url = fresh_database(&env.get("LIKES_TIDB_URL")).await;
        MySqlConfig {
            url: database_url.clone(),
            ..MySqlConfig::default()
        }
        .build()
        .await
        .expect("schema");
        let mut config = DistributedConfig {
            redis_url: env.get("LIKES_REDIS_URL"),
            pulsar_url: env.get("LIKES_PULSAR_URL"),
            pulsar_admin_url: admin_url,
            pulsar: TopicsConfig {
                topic: topic.to_string(),
                partitions: PARTITIONS,
                ..TopicsConfig::default()
            },
            database_url,
            ..DistributedConfig::default()
        };
        config.ingest.http_addr = "127.0.0.1:0".into();
        config.ingest.auth.jwt_secret = SECRET.into();
        // The tests send many requests as one user from one address.
        config.ingest.rate.per_user_per_sec = 100_000;
        config.ingest.rate.per_user_burst = 100_000;
        config.ingest.rate.per_ip_per_sec = 100_000;
        config.ingest.rate.per_ip_burst = 100_000;
        Stack {
            config,
            dirs: Vec::new(),
        }
    }

    /// One more `likes-ingest` on the stack, with a data dir of its own.
    pub async fn start_ingest(&mut self) -> Distributed {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = DistributedConfig {
            data_dir: dir.path().to_path_buf(),
            ..self.config.clone()
        };
        self.dirs.push(dir);
        Distributed::start(config)
            .await
            .expect("likes-ingest starts")
    }

    /// Every event on the topic so far, from every partition: read until the reader's
    /// subscription has no backlog left on any partition (a quiet spell alone is no proof: a
    /// partition whose ledger is being recovered after a broker restart can be silent a while).
    pub async fn events(&self) -> Vec<LikeEvent> {
        let subscription = unique_name("reader");
        let mut consumer = self.reader(&subscription).await;
        let admin = PulsarAdmin::new(&self.config.pulsar_admin_url, WAIT).expect("admin URL");
        let deadline = std::time::Instant::now() + Duration::from_secs(120);
        let mut events = Vec::new();
        loop {
            match tokio::time::timeout(Duration::from_secs(1), consumer.try_next()).await {
                Ok(next) => {
                    let message = next.expect("receive").expect("the stream goes on");
                    events.push(LikeEvent::decode(&message.payload.data).expect("an event"));
                    consumer.ack(&message).await.expect("ack");
                }
                Err(_) if self.backlog(&admin, &subscription).await == 0 => return events,
                Err(_) => assert!(
                    std::time::Instant::now() < deadline,
                    "the topic was not read to its end"
                ),
            }
        }
    }

    /// What `subscription` has not acknowledged, over all partitions (an unknown count while
    /// some partition does not have it yet).
    async fn backlog(&self, admin: &PulsarAdmin, subscription: &str) -> u64 {
        let topic = TopicName::parse(&self.config.pulsar.topic).expect("topic name");
        admin
            .backlog_over_partitions(&topic, PARTITIONS, subscription)
            .await
            .expect("subscription stats")
            .unwrap_or(u64::MAX)
    }

    async fn reader(&self, subscription: &str) -> Consumer<Vec<u8>, TokioExecutor> {
        let client = Pulsar::builder(&self.config.pulsar_url, TokioExecutor)
            .build()
            .await
            .expect("connect the reader");
        client
            .consumer()
            .with_topic(&self.config.pulsar.topic)
            .with_subscription(subscription)
            .with_subscription_type(SubType::Exclusive)
            .with_options(
                ConsumerOptions::default().with_initial_position(InitialPosition::Earliest),
            )
            .build()
            .await
            .expect("subscribe")
    }
}

pub fn token(user: u64) -> String {
    Authenticator::new(SECRET.as_bytes(), None)
        .issue(UserId::new(user).expect("non-zero"), 600)
        .expect("token")
}

/// Held by every test of this binary: the outage tests stop shared services, which must not
/// happen under another test.
pub async fn exclusive() -> tokio::sync::MutexGuard<'static, ()> {
    static SERVICES: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    SERVICES.lock().await
}
