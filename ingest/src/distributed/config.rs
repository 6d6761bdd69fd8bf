//! `likes-ingest`'s one typed config (DESIGN section 11): defaults, `--config FILE`, then the
//! `LIKES_*` environment that configures every distributed binary (`infra/dev/services` writes
//! it). The three URLs are required and checked before anything connects.

use crate::cache_breaker::BreakerConfig;
use crate::config::IngestConfig;
use crate::hot_counts::HotCountsConfig;
use crate::pulsar_publisher::PulsarPublisherConfig;
use crate::redis_cache::RedisCacheConfig;
use crate::spool::SpoolConfig;
use likes_shared::topics::TopicsConfig;
use likes_sink::mysql::{MissingSetting, StoreTuning};
use likes_sink::MySqlConfig;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct DistributedConfig {
    /// The HTTP settings shared with `likes` (`LIKES_HTTP_ADDR`, `LIKES_AUTH__JWT_SECRET`, …).
    /// The JWT secret is required here: every instance must verify the same tokens.
    #[serde(flatten)]
    pub ingest: IngestConfig,
    /// Where the spool lives (`LIKES_DATA_DIR`).
    pub data_dir: PathBuf,
    /// `redis://host:port/` (`LIKES_REDIS_URL`). Required.
    pub redis_url: String,
    pub redis: RedisCacheConfig,
    /// The circuit breaker in front of Redis (`LIKES_REDIS_BREAKER__FAILURES_TO_OPEN`,
    /// `__COOLDOWN_MS`, `__PROBE_TIMEOUT_MS`): while open, ingest answers without Redis, stale.
    pub redis_breaker: BreakerConfig,
    /// The local hot-key count cache (`LIKES_HOT_COUNTS__TTL_MS`, `__MAX_ENTRIES`, `__TOP_K`,
    /// `__MIN_READS`, `__SKETCH_BYTES`, `__HALVE_EVERY_MS`, `__ENABLED`).
    pub hot_counts: HotCountsConfig,
    /// `pulsar://host:port` (`LIKES_PULSAR_URL`). Required.
    pub pulsar_url: String,
    /// Pulsar's admin endpoint (`LIKES_PULSAR_ADMIN_URL`). Optional: when set, start-up checks
    /// that the events topic exists and is partitioned before the producer connects (a
    /// producer on a missing topic would have the broker create it unpartitioned).
    pub pulsar_admin_url: String,
    /// The events topic and its partitions (`LIKES_PULSAR__TOPIC`, `LIKES_PULSAR__PARTITIONS`).
    pub pulsar: TopicsConfig,
    /// The producer's bounds and batching; its `url` and `topic` come from `pulsar_url` and
    /// `pulsar.topic`.
    pub publisher: PulsarPublisherConfig,
    /// TiDB or any MySQL-protocol server, read to fill the caches (`LIKES_DATABASE_URL`).
    /// Required.
    pub database_url: String,
    pub database: StoreTuning,
    /// The pipeline's enforced maximum lag from a like's publish to its commit, publish timeout
    /// included: the Redis cache may forget (and fill counts over) changes older than this.
    pub max_pipeline_lag_ms: u64,
    /// How long start-up waits for a Pulsar that does not answer yet (`LIKES_PULSAR_START_WAIT_MS`):
    /// one that is still starting is waited for; past this, the start fails naming
    /// `LIKES_PULSAR_URL` (DESIGN section 11). Once running, an outage is the spool's business.
    pub pulsar_start_wait_ms: u64,
    /// The spool's bounds (`LIKES_SPOOL__MAX_BYTES`, …); it lives in `data_dir/spool`, whatever
    /// its `dir` says.
    pub spool: SpoolConfig,
}

impl Default for DistributedConfig {
    fn default() -> Self {
        DistributedConfig {
            ingest: IngestConfig::default(),
            data_dir: PathBuf::from("data"),
            redis_url: String::new(),
            redis: RedisCacheConfig::default(),
            redis_breaker: BreakerConfig::default(),
            hot_counts: HotCountsConfig::default(),
            pulsar_url: String::new(),
            pulsar_admin_url: String::new(),
            pulsar: TopicsConfig::default(),
            publisher: PulsarPublisherConfig::default(),
            database_url: String::new(),
            database: StoreTuning {
                // Ingest reads single rows and small pages; the workers hold the big windows.
                max_connections: 16,
                ..StoreTuning::default()
            },
            max_pipeline_lag_ms: 30_000,
            pulsar_start_wait_ms: 30_000,
            spool: SpoolConfig::default(),
        }
    }
}

impl DistributedConfig {
    pub fn redis_url(&self) -> Result<&str, MissingSetting> {
        const VAR: &str = "LIKES_REDIS_URL";
        match self.redis_url.trim() {
            "" => Err(MissingSetting::Unset(VAR)),
            url if url.starts_with("redis://") || url.starts_with("unix://") => Ok(url),
            _ => Err(MissingSetting::Malformed(
                VAR,
                "expected redis://host:port/".into(),
            )),
        }
    }

    /// The producer's settings on `LIKES_PULSAR_URL` and the configured topic.
    pub fn publisher(&self) -> Result<PulsarPublisherConfig, MissingSetting> {
        const VAR: &str = "LIKES_PULSAR_URL";
        let url = self.pulsar_url.trim();
        if url.is_empty() {
            return Err(MissingSetting::Unset(VAR));
        }
        if !url.starts_with("pulsar://") {
            return Err(MissingSetting::Malformed(
                VAR,
                "expected pulsar://host:port".into(),
            ));
        }
        Ok(PulsarPublisherConfig {
            url: url.to_owned(),
            topic: self.pulsar.topic.clone(),
            ..self.publisher.clone()
        })
    }

    pub fn store(&self) -> Result<MySqlConfig, MissingSetting> {
        self.database.mysql_config(&self.database_url)
    }
}
