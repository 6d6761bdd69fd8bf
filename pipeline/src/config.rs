//! `likes-pipeline`'s one typed config: defaults, then `--config FILE`, then `LIKES_*` variables
//! (DESIGN section 11: the env file `infra/dev/services up` writes configures it as it is).
//!
//! Unknown keys are accepted on purpose: one `LIKES_*` environment configures every binary, and
//! this one must not refuse `LIKES_REDIS_URL` because only ingest reads it.

use crate::operators::WindowConfig;
use likes_shared::retry::Backoff;
use likes_shared::topics::TopicsConfig;
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
    /// Pulsar's admin endpoint (`LIKES_PULSAR_ADMIN_URL`): `init` creates the topics there.
    pub pulsar_admin_url: String,
    /// Topic names and partitions (`LIKES_PULSAR__TOPIC`, `LIKES_PULSAR__PARTITIONS`, …).
    pub pulsar: TopicsConfig,
    /// The failover subscription the workers share on the events topic (`LIKES_SUBSCRIPTION`).
    pub subscription: String,
    /// A window closes at this many events or this age, whichever comes first.
    pub window_max_events: usize,
    pub window_max_age_ms: u64,
    /// Between retries of an outage.
    pub backoff: Backoff,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct StoreTuning {
    pub max_connections: u32,
    pub rows_per_statement: usize,
    pub acquire_timeout_ms: u64,
    pub window_timeout_ms: u64,
}

impl Default for PipelineConfig {
    fn default() -> Self {
        let window = WindowConfig::default();
        PipelineConfig {
            database_url: String::new(),
            database: StoreTuning::default(),
            pulsar_admin_url: String::new(),
            pulsar: TopicsConfig::default(),
            subscription: "likes-pipeline".into(),
            window_max_events: window.max_events,
            window_max_age_ms: window.max_age.as_millis() as u64,
            backoff: Backoff::default(),
        }
    }
}

impl Default for StoreTuning {
    fn default() -> Self {
        let store = MySqlConfig::default();
        StoreTuning {
            max_connections: store.max_connections,
            rows_per_statement: store.rows_per_statement,
            acquire_timeout_ms: store.acquire_timeout_ms,
            window_timeout_ms: store.window_timeout_ms,
        }
    }
}

/// A setting the command cannot run without, or cannot read; the message names the variable.
#[derive(Debug, thiserror::Error)]
pub enum MissingSetting {
    #[error("{0} is not set (see `likes-pipeline --help`)")]
    Unset(&'static str),
    #[error("{0} is malformed: {1}")]
    Malformed(&'static str, String),
}

impl PipelineConfig {
    /// The store's settings; fails naming `LIKES_DATABASE_URL` when it is not set.
    pub fn store(&self) -> Result<MySqlConfig, MissingSetting> {
        if self.database_url.trim().is_empty() {
            return Err(MissingSetting::Unset("LIKES_DATABASE_URL"));
        }
        let url = self.database_url.trim();
        if !(url.starts_with("mysql://") || url.starts_with("mariadb://")) {
            return Err(MissingSetting::Malformed(
                "LIKES_DATABASE_URL",
                "expected mysql://user:password@host:port/database".into(),
            ));
        }
        if let Err(e) = url.parse::<sqlx::mysql::MySqlConnectOptions>() {
            return Err(MissingSetting::Malformed(
                "LIKES_DATABASE_URL",
                e.to_string(),
            ));
        }
        Ok(MySqlConfig {
            url: self.database_url.clone(),
            max_connections: self.database.max_connections,
            rows_per_statement: self.database.rows_per_statement,
            acquire_timeout_ms: self.database.acquire_timeout_ms,
            window_timeout_ms: self.database.window_timeout_ms,
        })
    }

    /// The admin endpoint; fails naming `LIKES_PULSAR_ADMIN_URL` when it is not set.
    pub fn pulsar_admin_url(&self) -> Result<&str, MissingSetting> {
        match self.pulsar_admin_url.trim() {
            "" => Err(MissingSetting::Unset("LIKES_PULSAR_ADMIN_URL")),
            url => Ok(url),
        }
    }

    pub fn window(&self) -> WindowConfig {
        WindowConfig {
            max_events: self.window_max_events,
            max_age: Duration::from_millis(self.window_max_age_ms),
        }
    }
}
