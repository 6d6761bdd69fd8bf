//! The distributed backend of the API suite: `likes-ingest` (Redis, Pulsar, TiDB) and one
//! pipeline worker, both in process, on a fresh topic, a fresh TiDB database and a Redis
//! namespace of their own, so tests that share the real services never see each other.

use super::SECRET;
use likes_ingest::distributed::{Distributed, DistributedConfig};
use likes_ingest::redis_cache::RedisCacheConfig;
use likes_ingest::IngestConfig;
use likes_pipeline::config::PipelineConfig;
use likes_pipeline::distributed::DistributedWorker;
use likes_pipeline::runtime::WorkerError;
use likes_shared::shutdown::{self, ShutdownTrigger};
use likes_shared::topics::{TopicName, TopicsConfig};
use likes_sink::pulsar_admin::{PulsarAdmin, DEFAULT_WAIT};
use likes_sink::{MySqlConfig, MySqlStore};
use likes_smoke::{fresh_database, unique_name, ServicesEnv};
use tokio::task::JoinHandle;

pub struct DistributedApp {
    pub ingest: Distributed,
    pub store: MySqlStore,
    /// The worker's `/metrics` address (`LIKES_ADMIN_ADDR` on port 0).
    pub worker_metrics: Option<std::net::SocketAddr>,
    worker_stop: ShutdownTrigger,
    worker: JoinHandle<Result<(), WorkerError>>,
    _data_dir: tempfile::TempDir,
}

impl DistributedApp {
    /// What `likes-pipeline init` does, on new names; then the worker and ingest.
    pub async fn start(tweak: impl FnOnce(&mut IngestConfig)) -> DistributedApp {
        let env = ServicesEnv::load();
        let admin_url = env.get("LIKES_PULSAR_ADMIN_URL");
        let name = unique_name("api");
        let topics = TopicsConfig {
            topic: name.clone(),
            partitions: 2,
            dlq_topic: format!("{name}-dlq"),
            ..TopicsConfig::default()
        };
        let worker_config = PipelineConfig {
            database_url: fresh_database(&env.get("LIKES_TIDB_URL")).await,
            pulsar_admin_url: admin_url.clone(),
            pulsar_url: env.get("LIKES_PULSAR_URL"),
            redis_url: env.get("LIKES_REDIS_URL"),
            pulsar: topics.clone(),
            window_max_age_ms: 5,
            admin_addr: "127.0.0.1:0".into(),
            ..PipelineConfig::default()
        };
        let admin = PulsarAdmin::new(&admin_url, DEFAULT_WAIT).expect("admin URL");
        admin.ensure_topics(&topics).await.expect("topics");
        let topic = TopicName::parse(&topics.topic).expect("topic name");
        admin
            .create_subscription(&topic, &worker_config.subscription)
            .await
            .expect("the workers' subscription");
        let store = MySqlConfig {
            url: worker_config.database_url.clone(),
            ..MySqlConfig::default()
        }
        .build()
        .await
        .expect("schema");
        let worker = DistributedWorker::build(&worker_config)
            .await
            .expect("the worker starts");
        let worker_metrics = worker.metrics_addr();
        let (worker_stop, worker_shutdown) = shutdown::channel();
        let worker = tokio::spawn(worker.run(worker_shutdown));
        let data_dir = tempfile::tempdir().expect("tempdir");
        let mut config = DistributedConfig {
            data_dir: data_dir.path().to_path_buf(),
            redis_url: worker_config.redis_url.clone(),
            redis: RedisCacheConfig {
                namespace: name,
                ..RedisCacheConfig::default()
            },
            pulsar_url: worker_config.pulsar_url.clone(),
            pulsar_admin_url: admin_url,
            pulsar: topics,
            database_url: worker_config.database_url.clone(),
            ..DistributedConfig::default()
        };
        config.ingest.http_addr = "127.0.0.1:0".into();
        config.ingest.auth.jwt_secret = SECRET.into();
        // As the embedded demo: tokens for loopback callers, so the suite's token tests run.
        config.ingest.auth.dev_tokens = true;
        tweak(&mut config.ingest);
        let ingest = Distributed::start(config)
            .await
            .expect("likes-ingest starts");
        DistributedApp {
            ingest,
            store,
            worker_metrics,
            worker_stop,
            worker,
            _data_dir: data_dir,
        }
    }

    pub async fn stop(self) {
        self.ingest.stop().await;
        self.worker_stop.trigger();
        self.worker
            .await
            .expect("worker task")
            .expect("the worker stops cleanly");
    }
}
