//! The Pulsar topics of the distributed deployment and how like events are keyed on them
//! (DESIGN sections 2, 5 and 11).
//!
//! Plain data on purpose: ingest publishes to [`TopicsConfig::topic`], the pipeline consumes it,
//! the sink dead-letters to [`TopicsConfig::dlq_topic`] and `likes-dlq` replays from there. They
//! all have to agree on the names and on the message key, and none of that needs a Pulsar client,
//! so it lives here where every crate (including the embedded `likes`, which must build without
//! one) can read it.

use crate::event::LikeEvent;
use serde::{Deserialize, Serialize};
use std::fmt;

/// The topic names and the partition count, read from `LIKES_PULSAR__*` (`LIKES_PULSAR__TOPIC`,
/// `LIKES_PULSAR__PARTITIONS`, ...). Names may be full (`persistent://tenant/ns/name`) or short
/// (`like-events`, meaning `persistent://public/default/like-events`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct TopicsConfig {
    /// The partitioned topic of like events, keyed by content id (I5).
    pub topic: String,
    /// Partitions of [`Self::topic`]: the most pipeline workers that can share the load.
    pub partitions: u32,
    /// The non-partitioned dead-letter topic (one topic keeps the letters in failure order).
    pub dlq_topic: String,
    /// The durable subscription `likes-dlq` reads the dead letters through. It exists from the
    /// moment the topic is created, so the broker keeps every letter until it is acknowledged.
    pub dlq_subscription: String,
}

impl Default for TopicsConfig {
    fn default() -> Self {
        TopicsConfig {
            topic: "persistent://public/default/like-events".into(),
            partitions: 8,
            dlq_topic: "persistent://public/default/like-events-dlq".into(),
            dlq_subscription: "likes-dlq".into(),
        }
    }
}

/// The message key of a like event: its content id in decimal. A keyed producer hashes it to
/// pick the partition, so every event of one content lands in one partition (I5).
pub fn event_key(event: &LikeEvent) -> String {
    event.content_id.get().to_string()
}

/// A topic name split into its parts, as the admin REST API addresses it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TopicName {
    pub persistent: bool,
    pub tenant: String,
    pub namespace: String,
    pub local: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bad topic name `{name}`: {reason} (expected persistent://tenant/namespace/topic or a bare topic name)")]
pub struct TopicNameError {
    pub name: String,
    pub reason: &'static str,
}

impl TopicName {
    /// Partition `n` of this partitioned topic (`<topic>-partition-<n>`), a topic of its own to
    /// the admin API: where per-partition stats are.
    pub fn partition(&self, n: u32) -> TopicName {
        TopicName {
            local: format!("{}-partition-{n}", self.local),
            ..self.clone()
        }
    }

    pub fn parse(name: &str) -> Result<Self, TopicNameError> {
        let bad = |reason| TopicNameError {
            name: name.to_owned(),
            reason,
        };
        let (persistent, path) = if let Some(rest) = name.strip_prefix("persistent://") {
            (true, rest)
        } else if let Some(rest) = name.strip_prefix("non-persistent://") {
            (false, rest)
        } else if name.contains("://") {
            return Err(bad("unknown domain"));
        } else {
            (true, name)
        };
        let parts: Vec<&str> = path.split('/').collect();
        let (tenant, namespace, local) = match parts.as_slice() {
            [local] if !name.contains("://") => ("public", "default", *local),
            [tenant, namespace, local] => (*tenant, *namespace, *local),
            _ => return Err(bad("wrong number of `/`-separated parts")),
        };
        let fine = |part: &str| {
            !part.is_empty()
                && part
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '=' | ':'))
        };
        if ![tenant, namespace, local].into_iter().all(fine) {
            return Err(bad("empty part or a character outside [A-Za-z0-9-_.=:]"));
        }
        Ok(TopicName {
            persistent,
            tenant: tenant.to_owned(),
            namespace: namespace.to_owned(),
            local: local.to_owned(),
        })
    }

    /// `persistent/tenant/ns/name`: the topic's path under `/admin/v2/`.
    pub fn rest_path(&self) -> String {
        format!(
            "{}/{}/{}/{}",
            self.domain(),
            self.tenant,
            self.namespace,
            self.local
        )
    }

    fn domain(&self) -> &'static str {
        if self.persistent {
            "persistent"
        } else {
            "non-persistent"
        }
    }
}

impl fmt::Display for TopicName {
    /// The full name, `persistent://tenant/ns/name`, as clients subscribe to it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}://{}/{}/{}",
            self.domain(),
            self.tenant,
            self.namespace,
            self.local
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_and_short_names_mean_the_same_topic() {
        let full = TopicName::parse("persistent://public/default/like-events").expect("full");
        let short = TopicName::parse("like-events").expect("short");
        assert_eq!(full, short);
        assert_eq!(short.rest_path(), "persistent/public/default/like-events");
        assert_eq!(short.to_string(), "persistent://public/default/like-events");
        assert_eq!(
            short.partition(3).to_string(),
            "persistent://public/default/like-events-partition-3"
        );
        let other = TopicName::parse("non-persistent://t/ns/x").expect("non-persistent");
        assert_eq!(other.rest_path(), "non-persistent/t/ns/x");
    }

    #[test]
    fn malformed_names_are_refused() {
        for bad in [
            "",
            "http://a/b/c",
            "persistent://a/b",
            "persistent://a/b/c/d",
            "a/b",
            "persistent://a//c",
            "like events",
        ] {
            assert!(TopicName::parse(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn the_default_names_parse() {
        let topics = TopicsConfig::default();
        assert!(TopicName::parse(&topics.topic).is_ok());
        assert!(TopicName::parse(&topics.dlq_topic).is_ok());
    }
}
