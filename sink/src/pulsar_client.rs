//! Connecting to the Pulsar broker with bounded waits and errors that name what is wrong.
//!
//! pulsar-rs is patient by default: 12 connection attempts with backoff up to 30 s, and an
//! operation the broker answers `ServiceNotReady` or `ConsumerBusy` is retried every 5 s with no
//! limit. That suits a worker riding out a broker restart, not a command-line tool or a test:
//! those must say "unreachable" or "busy" and stop. [`connect`] bounds every retry by `wait` and
//! tells a malformed URL apart from an unreachable broker, because the fixes differ.

use pulsar::error::{ConnectionError, ConsumerError, ProducerError};
use pulsar::message::proto::ServerError;
use pulsar::routing_policy::RoutingPolicy;
use pulsar::{
    ConnectionRetryOptions, OperationRetryOptions, ProducerOptions, Pulsar, TokioExecutor,
};
use reqwest::Url;
use std::time::Duration;

/// The client type every Pulsar user in this crate shares.
pub type PulsarClient = Pulsar<TokioExecutor>;

#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("bad Pulsar URL `{url}`: {reason} (expected pulsar://host:port)")]
    BadUrl { url: String, reason: String },
    #[error("cannot reach the Pulsar broker at {url}: {reason}")]
    Unreachable { url: String, reason: String },
}

/// Parses `url` and checks that its scheme is one of `schemes` and that it names a host.
pub(crate) fn parse_url(url: &str, schemes: &[&str]) -> Result<Url, String> {
    let parsed = Url::parse(url).map_err(|e| e.to_string())?;
    if !schemes.contains(&parsed.scheme()) {
        return Err(format!(
            "scheme `{}` is not one of {}",
            parsed.scheme(),
            schemes.join(", ")
        ));
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err("no host".into());
    }
    Ok(parsed)
}

/// The options of every producer of like events (ingest live, `likes-dlq replay`): both must
/// route a content's events to one partition (I5), so both take them from here. pulsar-rs'
/// `RoundRobin` policy hashes the message key (murmur3) to a partition and uses round robin only
/// for keyless messages; with no policy it would ignore the key. A full outbound queue makes a
/// send wait (each caller bounds its own wait) instead of failing.
pub fn keyed_event_producer_options() -> ProducerOptions {
    ProducerOptions {
        routing_policy: Some(RoutingPolicy::RoundRobin),
        block_queue_if_full: true,
        ..ProducerOptions::default()
    }
}

/// Connects to the broker at `url` (`pulsar://host:port`), giving up after `wait`.
///
/// Connection attempts and retried operations (subscribe, create producer) are bounded too, so
/// a later `ConsumerBusy` (another exclusive consumer) comes back as an error within a few
/// seconds instead of being retried forever.
pub async fn connect(url: &str, wait: Duration) -> Result<PulsarClient, ConnectError> {
    parse_url(url, &["pulsar", "pulsar+ssl"]).map_err(|reason| ConnectError::BadUrl {
        url: url.to_owned(),
        reason,
    })?;
    let unreachable = |reason: String| ConnectError::Unreachable {
        url: url.to_owned(),
        reason,
    };
    let builder = Pulsar::builder(url, TokioExecutor)
        .with_connection_retry_options(ConnectionRetryOptions {
            min_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(1),
            max_retries: 2,
            connection_timeout: wait,
            ..ConnectionRetryOptions::default()
        })
        .with_operation_retry_options(OperationRetryOptions {
            operation_timeout: wait,
            retry_delay: Duration::from_millis(500),
            max_retries: Some(2),
        });
    match tokio::time::timeout(wait, builder.build()).await {
        Ok(Ok(client)) => Ok(client),
        Ok(Err(e)) => Err(unreachable(e.to_string())),
        Err(_) => Err(unreachable(format!("no connection within {wait:?}"))),
    }
}

/// Whether the broker refused a subscription because another consumer holds it exclusively.
pub fn is_consumer_busy(error: &pulsar::Error) -> bool {
    let connection = match error {
        pulsar::Error::Connection(e) => e,
        pulsar::Error::Consumer(ConsumerError::Connection(e)) => e,
        pulsar::Error::Producer(ProducerError::Connection(e)) => e,
        _ => return false,
    };
    matches!(
        connection,
        ConnectionError::PulsarError(Some(ServerError::ConsumerBusy), _)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_checked_before_any_connection() {
        assert!(parse_url("pulsar://127.0.0.1:6650", &["pulsar"]).is_ok());
        assert!(parse_url("http://127.0.0.1:6650", &["pulsar"]).is_err());
        assert!(parse_url("127.0.0.1:6650", &["pulsar"]).is_err());
        assert!(parse_url("pulsar://", &["pulsar"]).is_err());
        assert!(parse_url("not a url", &["pulsar"]).is_err());
    }

    #[tokio::test]
    async fn a_bad_url_is_not_reported_as_unreachable() {
        let error = connect("tcp://x:1", Duration::from_secs(1)).await.err();
        assert!(
            matches!(error, Some(ConnectError::BadUrl { .. })),
            "{error:?}"
        );
    }

    #[tokio::test]
    async fn a_closed_port_is_unreachable_within_the_wait() {
        // Port 1 on loopback: nothing listens there, the connection is refused at once.
        let started = std::time::Instant::now();
        let error = connect("pulsar://127.0.0.1:1", Duration::from_secs(3))
            .await
            .err();
        assert!(
            matches!(error, Some(ConnectError::Unreachable { .. })),
            "{error:?}"
        );
        assert!(started.elapsed() < Duration::from_secs(10));
    }
}
