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

    pub fn window(&self) -> WindowConfig {
        WindowConfig {
            max_events: self.window_max_events,
            max_age: Duration::from_millis(self.window_max_age_ms),
        }
    }
}
