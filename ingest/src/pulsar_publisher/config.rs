//! The settings of [`super::PulsarPublisher`], kept apart from the running publisher so they can
//! be read from a file or the environment, compared in tests and logged.

use likes_shared::topics::{TopicName, TopicNameError, TopicsConfig};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// How the producer compresses a batch. LZ4 is cheap on the CPU and the events (a few dozen
/// bytes with repeated content ids) compress well; `none` is there to rule compression out when
/// measuring.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EventCompression {
    None,
    Lz4,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PulsarPublisherConfig {
    /// The broker's binary protocol address, `pulsar://host:port` (`LIKES_PULSAR_URL`).
    pub url: String,
    /// The partitioned events topic ([`TopicsConfig::topic`]).
    pub topic: String,
    /// Publishes waiting for the broker at once; one more fails at once with `BusError::Full`
    /// (503 with Retry-After) instead of queueing without bound (I7).
    pub max_in_flight: usize,
    /// The most one publish may take, from taking the producer to the broker's ack. Connecting
    /// and (re)building the producer count against it too.
    pub send_timeout_ms: u64,
    /// The most connecting and building a producer may take (also bounded by the send timeout
    /// of the publish that triggered it).
    pub connect_timeout_ms: u64,
    /// Messages per batch; 0 or 1 turns batching off.
    pub batch_max_messages: u32,
    /// Bytes per batch (before compression).
    pub batch_max_bytes: usize,
    /// How long a batch waits for more messages after its first one. Each publish waits for its
    /// ack, so this is added to every publish's latency: keep it to a few milliseconds.
    pub batch_delay_ms: u64,
    pub compression: EventCompression,
}

impl Default for PulsarPublisherConfig {
    fn default() -> Self {
        PulsarPublisherConfig {
            url: "pulsar://127.0.0.1:6650".into(),
            topic: TopicsConfig::default().topic,
            max_in_flight: 4_096,
            send_timeout_ms: 5_000,
            connect_timeout_ms: 3_000,
            batch_max_messages: 1_000,
            batch_max_bytes: 128 * 1024,
            batch_delay_ms: 2,
            compression: EventCompression::Lz4,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PublisherConfigError {
    #[error(transparent)]
    BadTopic(#[from] TopicNameError),
    #[error("{0} must be at least 1")]
    Zero(&'static str),
}

impl PulsarPublisherConfig {
    /// The defaults, publishing to `topics.topic` on the broker at `url`.
    pub fn new(url: impl Into<String>, topics: &TopicsConfig) -> Self {
        PulsarPublisherConfig {
            url: url.into(),
            topic: topics.topic.clone(),
            ..PulsarPublisherConfig::default()
        }
    }

    /// The topic's full name, or why it is not one.
    pub(super) fn checked_topic(&self) -> Result<String, PublisherConfigError> {
        if self.max_in_flight == 0 {
            return Err(PublisherConfigError::Zero("max_in_flight"));
        }
        if self.send_timeout_ms == 0 {
            return Err(PublisherConfigError::Zero("send_timeout_ms"));
        }
        if self.connect_timeout_ms == 0 {
            return Err(PublisherConfigError::Zero("connect_timeout_ms"));
        }
        Ok(TopicName::parse(&self.topic)?.to_string())
    }

    pub fn send_timeout(&self) -> Duration {
        Duration::from_millis(self.send_timeout_ms)
    }

    pub fn connect_timeout(&self) -> Duration {
        Duration::from_millis(self.connect_timeout_ms)
    }

    pub fn batching(&self) -> bool {
        self.batch_max_messages > 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_fill_what_a_file_leaves_out() {
        let config: PulsarPublisherConfig =
            serde_json::from_str(r#"{"max_in_flight": 8, "compression": "none"}"#).expect("parses");
        assert_eq!(config.max_in_flight, 8);
        assert_eq!(config.compression, EventCompression::None);
        assert_eq!(config.topic, PulsarPublisherConfig::default().topic);
        assert!(serde_json::from_str::<PulsarPublisherConfig>(r#"{"max_inflight": 8}"#).is_err());
    }

    #[test]
    fn unusable_settings_are_refused() {
        let fine = PulsarPublisherConfig::new("pulsar://x:1", &TopicsConfig::default());
        assert_eq!(
            fine.checked_topic().expect("fine"),
            "persistent://public/default/like-events"
        );
        let zero = PulsarPublisherConfig {
            max_in_flight: 0,
            ..fine.clone()
        };
        assert!(zero.checked_topic().is_err());
        let bad_topic = PulsarPublisherConfig {
            topic: "a/b".into(),
            ..fine
        };
        assert!(bad_topic.checked_topic().is_err());
    }
}
