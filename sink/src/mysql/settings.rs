//! The store settings every distributed binary reads the same way: `LIKES_DATABASE_URL` plus
//! the pool and statement bounds, checked before anything connects so that a missing or
//! malformed URL is one line naming the variable (DESIGN section 11).

use super::MySqlConfig;
use serde::{Deserialize, Serialize};

/// Pool size and statement bounds (`LIKES_DATABASE__MAX_CONNECTIONS`, …); the URL is apart.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct StoreTuning {
    pub max_connections: u32,
    pub rows_per_statement: usize,
    pub acquire_timeout_ms: u64,
    pub window_timeout_ms: u64,
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

/// A setting a binary cannot run without, or cannot read; the message names the variable.
#[derive(Debug, thiserror::Error)]
pub enum MissingSetting {
    #[error("{0} is not set (see --help)")]
    Unset(&'static str),
    #[error("{0} is malformed: {1}")]
    Malformed(&'static str, String),
}

impl StoreTuning {
    /// The store's settings at `url` (`LIKES_DATABASE_URL`), or why there are none.
    pub fn mysql_config(&self, url: &str) -> Result<MySqlConfig, MissingSetting> {
        const VAR: &str = "LIKES_DATABASE_URL";
        let url = url.trim();
        if url.is_empty() {
            return Err(MissingSetting::Unset(VAR));
        }
        if !(url.starts_with("mysql://") || url.starts_with("mariadb://")) {
            return Err(MissingSetting::Malformed(
                VAR,
                "expected mysql://user:password@host:port/database".into(),
            ));
        }
        if let Err(e) = url.parse::<sqlx::mysql::MySqlConnectOptions>() {
            return Err(MissingSetting::Malformed(VAR, e.to_string()));
        }
        Ok(MySqlConfig {
            url: url.to_owned(),
            max_connections: self.max_connections,
            rows_per_statement: self.rows_per_statement,
            acquire_timeout_ms: self.acquire_timeout_ms,
            window_timeout_ms: self.window_timeout_ms,
        })
    }
}
