//! The distributed deployment's ingest: the HTTP API on Redis (state cache, trending), Pulsar
//! (the events topic) and TiDB (fills), behind the same traits as the embedded all-in-one.
//!
//! Start-up checks every dependency once and stops with one line naming the setting when one is
//! missing or unreachable (DESIGN section 11): an ingest that starts on a wrong URL would answer
//! 503 to everything while looking alive. After start-up, outages degrade instead (section 8).
//!
//! Shutdown, after mini-redis: the signal stops the listener, requests in flight are answered
//! (each waits for its publish), then the producer is closed so the broker sees a clean close.

mod config;

pub use config::DistributedConfig;

use crate::app::{Application, BuildError};
use crate::cache_breaker::BreakerCache;
use crate::hot_counts::HotCounts;
use crate::metrics::Metrics;
use crate::pulsar_publisher::PulsarPublisher;
use crate::redis_cache::{self, AgeBound, RedisCacheError, RedisStateCache, SpoolHold};
use crate::service::Backends;
use crate::spool::{SpoolConfig, SpoolError, SpooledPublisher};
use likes_shared::bus::BusError;
use likes_shared::cache::{CacheError, StateCache};
use likes_shared::config::redacted_url;
use likes_shared::shutdown::{self, ShutdownTrigger};
use likes_shared::store::{LikeStore, StoreError};
use likes_shared::topics::TopicName;
use likes_shared::ContentId;
use likes_sink::mysql::MissingSetting;
use likes_sink::pulsar_admin::{self, AdminError, PulsarAdmin, TopicKind};
use likes_sink::redis_counts::Keys;
use likes_sink::redis_trending::RedisTrendingBoard;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// How long a partition's trending post counts after its worker last posted it.
const TRENDING_TTL: Duration = Duration::from_secs(60);
/// Between two start-up attempts on a Pulsar that is not ready.
const START_RETRY: Duration = Duration::from_millis(500);

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Missing(#[from] MissingSetting),
    #[error("Redis at LIKES_REDIS_URL ({url}): {reason}")]
    Redis { url: String, reason: String },
    #[error("Pulsar at LIKES_PULSAR_URL ({url}): {source}")]
    Pulsar { url: String, source: BusError },
    #[error("database at LIKES_DATABASE_URL ({url}): {source}")]
    Store { url: String, source: StoreError },
    #[error(
        "database at LIKES_DATABASE_URL ({url}) has no likes tables (run `likes-pipeline init` \
         first): {source}"
    )]
    Schema { url: String, source: StoreError },
    #[error("the events topic {topic}: {reason} (run `likes-pipeline init` first)")]
    Topic { topic: String, reason: String },
    #[error("Pulsar's admin endpoint at LIKES_PULSAR_ADMIN_URL ({url}) did not answer in time: {reason}")]
    PulsarAdmin { url: String, reason: String },
    #[error("the spool in LIKES_DATA_DIR: {0}")]
    Spool(#[from] SpoolError),
    #[error(transparent)]
    Build(#[from] BuildError),
}

/// A running `likes-ingest`.
pub struct Distributed {
    pub addr: SocketAddr,
    trigger: ShutdownTrigger,
    server: JoinHandle<()>,
    drainer: JoinHandle<Result<(), SpoolError>>,
    spool_hold: JoinHandle<()>,
    pulsar: Arc<PulsarPublisher>,
}

impl Distributed {
    pub async fn start(config: DistributedConfig) -> Result<Distributed, StartError> {
        let redis_url = config.redis_url()?;
        let publisher_config = config.publisher()?;
        let store_config = config.store()?;
        let redis_error = |reason: String| StartError::Redis {
            url: redacted_url(redis_url),
            reason,
        };
        let store = store_config
            .connect()
            .await
            .map_err(|source| StartError::Store {
                url: redacted_url(&store_config.url),
                source,
            })?;
        // Ingest runs no migrations (the workers' `init` does); without the tables every fill
        // would fail, so say it now.
        if let Err(source) = store.counts(&[ContentId::MIN]).await {
            return Err(StartError::Schema {
                url: redacted_url(&store_config.url),
                source,
            });
        }
        // A Pulsar that is still starting (just restarted with the rest of a deployment) is
        // waited for; one that stays away fails the start, naming the setting (DESIGN 11).
        let give_up = Instant::now() + Duration::from_millis(config.pulsar_start_wait_ms);
        check_topic(&config, give_up).await?;
        let pulsar_url = redacted_url(&publisher_config.url);
        let pulsar_error = |source| StartError::Pulsar {
            url: pulsar_url.clone(),
            source,
        };
        let metrics = Arc::new(Metrics::new().map_err(BuildError::from)?);
        let pulsar = PulsarPublisher::new(publisher_config)
            .map_err(|e| pulsar_error(BusError::Unavailable(e.to_string())))?
            .with_call_metrics(metrics.calls.clone());
        while let Err(error) = pulsar.connect_now().await {
            if Instant::now() >= give_up {
                return Err(pulsar_error(error));
            }
            tracing::warn!(url = %pulsar_url, %error, "Pulsar not ready; waiting for it");
            tokio::time::sleep(START_RETRY).await;
        }
        let pulsar = Arc::new(pulsar);
        let (trigger, shutdown) = shutdown::channel();
        let spool_config = SpoolConfig {
            dir: config.data_dir.join("spool"),
            ..config.spool.clone()
        };
        let (spool, drainer) = SpooledPublisher::open_with_metrics(
            pulsar.clone(),
            spool_config,
            shutdown.clone(),
            metrics.spool.clone(),
        )?;
        let spool = Arc::new(spool);
        let conn = redis_cache::connection(redis_url, &config.redis)
            .map_err(|e: RedisCacheError| redis_error(e.to_string()))?;
        let spooling = spool.clone();
        let (held, hold_task) = SpoolHold::start(
            conn.clone(),
            {
                let keys = Keys::new(&config.redis.namespace);
                (keys.spool_hold(), keys.spool_last())
            },
            Duration::from_millis(config.max_pipeline_lag_ms),
            // Spooling lasts until the spool is drained whole (see the spool's gate).
            move || spooling.is_spooling(),
            shutdown.clone(),
        );
        let progress =
            Arc::new(AgeBound::new(config.max_pipeline_lag_ms).behind(spool.clone(), held));
        let cache = RedisStateCache::with_connection(conn, config.redis.clone(), progress)
            .with_call_metrics(metrics.calls.clone());
        cache
            .ping()
            .await
            .map_err(|e: CacheError| redis_error(e.to_string()))?;
        cache
            .check_eviction_policy()
            .await
            .map_err(|e| redis_error(e.to_string()))?;
        let trending = RedisTrendingBoard::new(
            cache.connection(),
            &config.pulsar.topic,
            config.pulsar.partitions,
            TRENDING_TTL,
        );
        // Start-up talked to Redis directly (a wrong URL must stop the start); from here on an
        // outage degrades (DESIGN section 8), and the breaker keeps it from costing every request
        // a timeout.
        let cache = BreakerCache::new(
            Arc::new(cache),
            config.redis_breaker.clone(),
            metrics.breaker.clone(),
        );
        let hot_counts = HotCounts::new(config.hot_counts.clone(), metrics.hot_counts.clone());
        let backends = Backends {
            cache: Arc::new(cache),
            store: Arc::new(store),
            publisher: spool,
            trending: Arc::new(trending),
            hot_counts: Some(Arc::new(hot_counts)),
        };
        let app =
            Application::build_with_metrics(&config.ingest, backends, shutdown, metrics).await?;
        let addr = app.local_addr();
        let server = tokio::spawn(app.run_until_stopped());
        Ok(Distributed {
            addr,
            trigger,
            server,
            drainer,
            spool_hold: hold_task,
            pulsar,
        })
    }

    /// Serves until `signal`, then stops gracefully.
    pub async fn serve_until(self, signal: impl std::future::Future<Output = ()>) {
        signal.await;
        self.stop().await;
    }

    /// Stops accepting, answers the requests in flight, stops the spool's drainer (what it
    /// holds stays on disk for the next start), closes the producer.
    pub async fn stop(self) {
        self.trigger.trigger();
        if let Err(error) = self.server.await {
            tracing::error!(%error, "the HTTP server task failed");
        }
        match self.drainer.await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => tracing::error!(%error, "the spool drainer failed"),
            Err(error) => tracing::error!(%error, "the spool drainer task failed"),
        }
        if let Err(error) = self.spool_hold.await {
            tracing::error!(%error, "the spool hold task failed");
        }
        self.pulsar.close().await;
    }
}

/// When the admin endpoint is known: the events topic must exist, partitioned, before a producer
/// connects to it (see [`DistributedConfig::pulsar_admin_url`]).
async fn check_topic(config: &DistributedConfig, until: Instant) -> Result<(), StartError> {
    let admin_url = config.pulsar_admin_url.trim();
    if admin_url.is_empty() {
        return Ok(());
    }
    let failed = |reason: String| StartError::Topic {
        topic: config.pulsar.topic.clone(),
        reason,
    };
    let topic = TopicName::parse(&config.pulsar.topic).map_err(|e| failed(e.to_string()))?;
    let admin = PulsarAdmin::new(admin_url, pulsar_admin::DEFAULT_WAIT)
        .map_err(|e| failed(format!("LIKES_PULSAR_ADMIN_URL: {e}")))?;
    loop {
        let not_yet = match admin.topic_kind(&topic).await {
            Ok(TopicKind::Partitioned(_)) => return Ok(()),
            Ok(TopicKind::Missing) => return Err(failed("does not exist".into())),
            Ok(TopicKind::NonPartitioned) => return Err(failed("is not partitioned".into())),
            // Not answering, or answering that it cannot yet: a Pulsar still starting.
            Err(e @ AdminError::Unreachable { .. }) => e,
            Err(e @ AdminError::Status { status, .. }) if status.is_server_error() => e,
            Err(e) => return Err(failed(format!("cannot ask Pulsar's admin endpoint: {e}"))),
        };
        if Instant::now() >= until {
            return Err(StartError::PulsarAdmin {
                url: redacted_url(admin_url),
                reason: not_yet.to_string(),
            });
        }
        tracing::warn!(error = %not_yet, "Pulsar's admin endpoint not ready; waiting for it");
        tokio::time::sleep(START_RETRY).await;
    }
}
