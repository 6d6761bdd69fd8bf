//! `likes-pipeline`'s one typed config: defaults, then `--config FILE`, then `LIKES_*` variables
//! (DESIGN section 11: the env file `infra/dev/services up` writes configures it as it is).
//!
//! Unknown keys are accepted on purpose: one `LIKES_*` environment configures every binary, and
//! this one must not refuse `LIKES_REDIS_URL` because only ingest reads it.

use crate::operators::WindowConfig;
use likes_shared::retry::Backoff;
use likes_shared::topics::TopicsConfig;
pub use likes_sink::mysql::{MissingSetting, StoreTuning};
use likes_sink::MySqlConfig;
use serde::{Deserialize, Serialize};
use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct PipelineConfig {
    /// TiDB, or any MySQL-protocol server (`LIKES_DATABASE_URL`). Required.
    pub database_url: String,
    /// Pool size and statement bounds of the store (`LIKES_DATABASE__ROWS_PER_STATEMENT`, …).
    pub database: StoreTuning,
    /// Pulsar's admin endpoint (`LIKES_PULSAR_ADMIN_URL`): `init` creates the topics there,
    /// `run` checks them and watches its partitions for a stalled consumer.
    pub pulsar_admin_url: String,
    /// The broker, `pulsar://host:port` (`LIKES_PULSAR_URL`); required by `run`.
    pub pulsar_url: String,
    /// Redis (`LIKES_REDIS_URL`), where `run` posts trending; unset or down, trending is
    /// not posted (a warning), the rest runs.
    pub redis_url: String,
    /// The state cache's keys in Redis (`LIKES_REDIS__NAMESPACE`): `reconcile` repairs its
    /// counts. Ingest's other `LIKES_REDIS__*` settings are not this binary's and are ignored.
    pub redis: CacheKeys,
    /// The pipeline's enforced maximum lag (`LIKES_MAX_PIPELINE_LAG_MS`, as ingest reads it): a
    /// cached count that moved within it may hold changes the store lacks, and is not repaired.
    pub max_pipeline_lag_ms: u64,
    /// Topic names and partitions (`LIKES_PULSAR__TOPIC`, `LIKES_PULSAR__PARTITIONS`, …).
    pub pulsar: TopicsConfig,
    /// The failover subscription the workers share on the events topic (`LIKES_SUBSCRIPTION`).
    pub subscription: String,
    /// This worker's name on the subscription (`LIKES_CONSUMER_NAME`); empty: one made of the
    /// host name and process id. Names must differ between workers.
    pub consumer_name: String,
    /// Messages buffered per partition ahead of the worker (`LIKES_RECEIVER_QUEUE`, I7). A
    /// worker behind holds them all: at 1 000 that was 8 MiB of a 25 MiB worker in pulsar-rs's
    /// queues (heaptrack, BENCHMARKS.md), so its memory followed every catch-up. 250 is 100 ms of
    /// a partition at 2 500 events/s, and drains as fast as 1 000 did.
    pub receiver_queue: u32,
    /// A partition with a backlog that delivers nothing this long gets its consumer rebuilt
    /// (`LIKES_STALL_AFTER_MS`).
    pub stall_after_ms: u64,
    /// Where `run` serves `/metrics` (`LIKES_ADMIN_ADDR`, e.g. `0.0.0.0:9464`); empty: nowhere.
    pub admin_addr: String,
    /// A window closes at this many events or this age, whichever comes first.
    pub window_max_events: usize,
    pub window_max_age_ms: u64,
    /// Between retries of an outage.
    pub backoff: Backoff,
    /// How often `run` gives the heap's free pages back (`LIKES_HEAP_TRIM_MS`; 0: never), so
    /// the memory of a catch-up does not stay resident (`likes_shared::heap_trim`).
    pub heap_trim_ms: u64,
}

impl Default for PipelineConfig {
    fn default() -> Self {
        let window = WindowConfig::default();
        PipelineConfig {
            database_url: String::new(),
            database: StoreTuning::default(),
            pulsar_admin_url: String::new(),
            pulsar_url: String::new(),
            redis_url: String::new(),
            redis: CacheKeys::default(),
            max_pipeline_lag_ms: 30_000,
            pulsar: TopicsConfig::default(),
            subscription: "likes-pipeline".into(),
            consumer_name: String::new(),
            receiver_queue: 250,
            stall_after_ms: 30_000,
            admin_addr: String::new(),
            window_max_events: window.max_events,
            window_max_age_ms: window.max_age.as_millis() as u64,
            backoff: Backoff::default(),
            heap_trim_ms: 5_000,
        }
    }
}

/// Where the state cache's keys are (see ingest's `RedisCacheConfig`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct CacheKeys {
    pub namespace: String,
}

impl Default for CacheKeys {
    fn default() -> Self {
        CacheKeys {
            namespace: "likes".into(),
        }
    }
}

impl PipelineConfig {
    /// The store's settings; fails naming `LIKES_DATABASE_URL` when it is not set.
    pub fn store(&self) -> Result<MySqlConfig, MissingSetting> {
        self.database.mysql_config(&self.database_url)
    }

    /// The admin endpoint; fails naming `LIKES_PULSAR_ADMIN_URL` when it is not set.
    pub fn pulsar_admin_url(&self) -> Result<&str, MissingSetting> {
        match self.pulsar_admin_url.trim() {
            "" => Err(MissingSetting::Unset("LIKES_PULSAR_ADMIN_URL")),
            url => Ok(url),
        }
    }

    /// The broker; fails naming `LIKES_PULSAR_URL` when it is not set.
    pub fn pulsar_url(&self) -> Result<&str, MissingSetting> {
        match self.pulsar_url.trim() {
            "" => Err(MissingSetting::Unset("LIKES_PULSAR_URL")),
            url => Ok(url),
        }
    }

    /// Where to serve `/metrics`, if anywhere; fails naming `LIKES_ADMIN_ADDR` when malformed.
    pub fn admin_addr(&self) -> Result<Option<std::net::SocketAddr>, MissingSetting> {
        match self.admin_addr.trim() {
            "" => Ok(None),
            addr => addr
                .parse()
                .map(Some)
                .map_err(|e: std::net::AddrParseError| {
                    MissingSetting::Malformed("LIKES_ADMIN_ADDR", e.to_string())
                }),
        }
    }

    /// [`Self::consumer_name`], or `likes-pipeline-<host>-<pid>` when it is empty.
    pub fn consumer_name(&self) -> String {
        match self.consumer_name.trim() {
            "" => {
                let host = std::env::var("HOSTNAME")
                    .ok()
                    .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
                    .map(|h| h.trim().to_owned())
                    .filter(|h| !h.is_empty())
                    .unwrap_or_else(|| "host".into());
                format!("likes-pipeline-{host}-{}", std::process::id())
            }
            name => name.to_owned(),
        }
    }

    pub fn window(&self) -> WindowConfig {
        WindowConfig {
            max_events: self.window_max_events,
            max_age: Duration::from_millis(self.window_max_age_ms),
        }
    }
}
