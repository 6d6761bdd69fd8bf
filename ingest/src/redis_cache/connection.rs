//! The connection to Redis and what its errors mean to the cache.

use super::RedisCacheConfig;
use likes_shared::cache::CacheError;
use redis::aio::ConnectionManager;
use redis::RedisError;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum RedisCacheError {
    #[error("LIKES_REDIS_URL is not a Redis URL: {0}")]
    Url(#[source] RedisError),
}

/// A connection to `url` with the timeouts of `config`. Does not connect: the first command
/// does, and reconnects follow failures, so ingest can start (and degrade) while Redis is down.
pub fn connection(
    url: &str,
    config: &RedisCacheConfig,
) -> Result<ConnectionManager, RedisCacheError> {
    let client = redis::Client::open(url).map_err(RedisCacheError::Url)?;
    let manager = redis::aio::ConnectionManagerConfig::new()
        .set_response_timeout(Some(Duration::from_millis(config.response_timeout_ms)))
        .set_connection_timeout(Some(Duration::from_millis(config.connect_timeout_ms)))
        .set_number_of_retries(1)
        .set_max_delay(Duration::from_millis(config.connect_timeout_ms));
    ConnectionManager::new_lazy_with_config(client, manager).map_err(RedisCacheError::Url)
}

pub(super) fn unavailable(e: RedisError) -> CacheError {
    CacheError::Unavailable(e.to_string())
}

/// Redis out of memory (`noeviction` refusing a write) and a user whose states all wait for the
/// store are both "full" (503); anything else is the cache being down.
pub(super) fn cache_error(e: RedisError) -> CacheError {
    match e.code() {
        Some("OOM") | Some("LIKESFULL") => CacheError::Full,
        _ => unavailable(e),
    }
}

/// The `error_type` label of a failed call (`db_client_operation_duration_seconds`).
pub(super) fn error_type(e: &RedisError) -> &'static str {
    match e.code() {
        Some("OOM") => "oom",
        Some("LIKESFULL") => "full",
        _ if e.is_timeout() => "timeout",
        _ if e.is_io_error() || e.is_connection_dropped() || e.is_connection_refusal() => "io",
        _ => "redis",
    }
}

/// Warns loudly unless Redis runs with `maxmemory-policy noeviction` (an evicted pending state
/// would break "pending until durable"); fails only when Redis cannot be reached.
pub(super) async fn check_eviction_policy(conn: &mut ConnectionManager) -> Result<(), CacheError> {
    let reply: Result<Vec<String>, RedisError> = redis::cmd("CONFIG")
        .arg("GET")
        .arg("maxmemory-policy")
        .query_async(conn)
        .await;
    match reply {
        Ok(pair) if pair.get(1).map(String::as_str) == Some("noeviction") => Ok(()),
        Ok(pair) => {
            tracing::error!(policy = ?pair.get(1), "Redis may evict keys: run it with \
                maxmemory-policy noeviction, or a pending state can be lost and an older one \
                filled back from the store");
            Ok(())
        }
        Err(e) if e.code().is_some() => {
            tracing::warn!(error = %e, "cannot read Redis maxmemory-policy; it must be noeviction");
            Ok(())
        }
        Err(e) => Err(unavailable(e)),
    }
}
