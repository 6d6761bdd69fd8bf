//! The few Pulsar admin REST calls the deployment needs, in plain HTTP (reqwest).
//!
//! Why not the binary protocol: creating topics and subscriptions and reading a subscription's
//! backlog are admin operations, and the broker answers them only on its HTTP port.
//!
//! Why check topics before touching them: the broker creates a topic the moment a client
//! produces to it or subscribes to it (`allowAutoTopicCreation`, on by default), as a
//! *non-partitioned* topic. A typo in a topic name would then pass silently and `like-events`
//! could end up with one partition. So [`ensure_topics`] creates them explicitly, and readers
//! ask [`PulsarAdmin::topic_kind`] first and refuse a missing topic.
//!
//! Why the dead-letter subscription is created with the topic: a topic without subscriptions
//! retains nothing (the default retention is zero), so letters written before `likes-dlq` ever
//! subscribed could be deleted. Created at the earliest position, the subscription holds every
//! letter until it is acknowledged.

mod head_entry;

pub use head_entry::HeadEntry;

use crate::pulsar_client::parse_url;
use likes_shared::topics::{TopicName, TopicNameError, TopicsConfig};
use reqwest::{Method, StatusCode, Url};
use std::time::Duration;

/// How long one admin call may take when the caller does not say.
pub const DEFAULT_WAIT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("bad Pulsar admin URL `{url}`: {reason} (expected http://host:port)")]
    BadUrl { url: String, reason: String },
    #[error(transparent)]
    BadTopic(#[from] TopicNameError),
    #[error("a topic needs at least one partition, not {0}")]
    ZeroPartitions(u32),
    #[error("cannot reach the Pulsar admin API at {url}: {reason}")]
    Unreachable { url: String, reason: String },
    #[error("topic {0} does not exist (`likes-pipeline init` creates the topics)")]
    MissingTopic(String),
    #[error(
        "topic {topic} exists with {existing} partitions, not the {wanted} configured: set \
         LIKES_PULSAR__PARTITIONS={existing}, or raise the count with `pulsar-admin topics \
         update-partitioned-topic` (partitions can only grow)"
    )]
    PartitionsDiffer {
        topic: String,
        existing: u32,
        wanted: u32,
    },
    #[error("topic {0} exists but is not partitioned; the events topic must be (delete it or pick another name)")]
    NotPartitioned(String),
    #[error(
        "topic {topic} has {partitions} partitions; the dead-letter topic must not be partitioned"
    )]
    Partitioned { topic: String, partitions: u32 },
    #[error("the Pulsar admin API answered {status} to {method} {url}: {body}")]
    Status {
        method: Method,
        url: String,
        status: StatusCode,
        body: String,
    },
}

/// What a topic name refers to on the broker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TopicKind {
    Missing,
    NonPartitioned,
    Partitioned(u32),
}

/// What [`ensure_topics`] found: `true` where it created something, `false` where it existed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EnsuredTopics {
    pub topic_created: bool,
    pub dlq_topic_created: bool,
    pub dlq_subscription_created: bool,
}

/// Creates the partitioned events topic, the dead-letter topic and its `likes-dlq` subscription,
/// or finds them as configured; safe to run any number of times (`likes-pipeline init`).
pub async fn ensure_topics(
    admin_url: &str,
    topics: &TopicsConfig,
) -> Result<EnsuredTopics, AdminError> {
    PulsarAdmin::new(admin_url, DEFAULT_WAIT)?
        .ensure_topics(topics)
        .await
}

/// A client of the admin REST API (`LIKES_PULSAR_ADMIN_URL`, e.g. `http://127.0.0.1:8080`).
#[derive(Debug, Clone)]
pub struct PulsarAdmin {
    http: reqwest::Client,
    base: Url,
}

impl PulsarAdmin {
    /// Checks the URL; every call made through it gives up after `wait`.
    pub fn new(admin_url: &str, wait: Duration) -> Result<Self, AdminError> {
        let bad = |reason: String| AdminError::BadUrl {
            url: admin_url.to_owned(),
            reason,
        };
        // The workspace's reqwest is built without TLS, so only plain HTTP would work.
        let base = parse_url(admin_url, &["http"]).map_err(bad)?;
        if base.cannot_be_a_base() {
            return Err(bad("not a base URL".into()));
        }
        let http = reqwest::Client::builder()
            .timeout(wait)
            .connect_timeout(wait)
            .build()
            .map_err(|e| bad(e.to_string()))?;
        Ok(PulsarAdmin { http, base })
    }

    /// See [`ensure_topics`].
    pub async fn ensure_topics(&self, topics: &TopicsConfig) -> Result<EnsuredTopics, AdminError> {
        if topics.partitions == 0 {
            return Err(AdminError::ZeroPartitions(topics.partitions));
        }
        let topic = TopicName::parse(&topics.topic)?;
        let dlq = TopicName::parse(&topics.dlq_topic)?;

        let topic_created = self.create_partitioned(&topic, topics.partitions).await?;
        if !topic_created {
            match self.topic_kind(&topic).await? {
                TopicKind::Partitioned(n) if n == topics.partitions => {}
                TopicKind::Partitioned(existing) => {
                    return Err(AdminError::PartitionsDiffer {
                        topic: topic.to_string(),
                        existing,
                        wanted: topics.partitions,
                    })
                }
                TopicKind::NonPartitioned => {
                    return Err(AdminError::NotPartitioned(topic.to_string()))
                }
                // Deleted between the two calls: say so rather than guess.
                TopicKind::Missing => return Err(AdminError::MissingTopic(topic.to_string())),
            }
        }
        let dlq_topic_created = self.create_non_partitioned(&dlq).await?;
        if !dlq_topic_created {
            if let TopicKind::Partitioned(partitions) = self.topic_kind(&dlq).await? {
                return Err(AdminError::Partitioned {
                    topic: dlq.to_string(),
                    partitions,
                });
            }
        }
        let dlq_subscription_created = self
            .create_subscription(&dlq, &topics.dlq_subscription)
            .await?;
        Ok(EnsuredTopics {
            topic_created,
            dlq_topic_created,
            dlq_subscription_created,
        })
    }

    /// Whether `topic` exists, and how many partitions it has. Asks without creating it.
    pub async fn topic_kind(&self, topic: &TopicName) -> Result<TopicKind, AdminError> {
        // Brokers answer 404 here for a missing topic; older ones answered `0` for a missing
        // and a non-partitioned topic alike, hence the stats call to tell them apart.
        let url = self.topic_url(topic, &["partitions"]);
        let Some(body) = self.call(Method::GET, url, None, &[]).await? else {
            return Ok(TopicKind::Missing);
        };
        match json_u64(&body, &["partitions"]) {
            Some(n) if n > 0 => Ok(TopicKind::Partitioned(u32::try_from(n).unwrap_or(u32::MAX))),
            _ => {
                let stats = self.topic_url(topic, &["stats"]);
                Ok(match self.call(Method::GET, stats, None, &[]).await? {
                    Some(_) => TopicKind::NonPartitioned,
                    None => TopicKind::Missing,
                })
            }
        }
    }

    /// Creates `topic` with `partitions` partitions; `false` if a topic of that name exists.
    pub async fn create_partitioned(
        &self,
        topic: &TopicName,
        partitions: u32,
    ) -> Result<bool, AdminError> {
        let url = self.topic_url(topic, &["partitions"]);
        self.create(url, Some(partitions.to_string())).await
    }

    /// Creates the non-partitioned `topic`; `false` if a topic of that name exists.
    pub async fn create_non_partitioned(&self, topic: &TopicName) -> Result<bool, AdminError> {
        self.create(self.topic_url(topic, &[]), None).await
    }

    /// Creates the durable subscription `name` on `topic` at its earliest message; `false` if it
    /// exists. On a partitioned topic it is created on every partition.
    pub async fn create_subscription(
        &self,
        topic: &TopicName,
        name: &str,
    ) -> Result<bool, AdminError> {
        // The broker auto-creates a topic it is asked to subscribe on: refuse a missing one.
        if self.topic_kind(topic).await? == TopicKind::Missing {
            return Err(AdminError::MissingTopic(topic.to_string()));
        }
        let url = self.topic_url(topic, &["subscription", name]);
        // MessageId.earliest in the REST API's JSON form.
        let earliest = r#"{"ledgerId":-1,"entryId":-1}"#.to_owned();
        self.create(url, Some(earliest)).await
    }

    /// Entries the subscription `name` on the non-partitioned `topic` has not acknowledged
    /// (counted precisely, so it is exact after individual acks); `None` when the subscription
    /// does not exist. The broker counts entries, not messages: a producer batch is one entry
    /// (apache/pulsar#7623), so this is 0 exactly when no message is left, and otherwise at
    /// least 1 and at most the messages left.
    pub async fn subscription_backlog(
        &self,
        topic: &TopicName,
        name: &str,
    ) -> Result<Option<u64>, AdminError> {
        let state = self.subscription_state(topic, name).await?;
        Ok(state.map(|s| s.backlog))
    }

    /// What the subscription `name` has not acknowledged over the `partitions` partitions of
    /// `topic`; `None` while it does not exist on some partition.
    pub async fn backlog_over_partitions(
        &self,
        topic: &TopicName,
        partitions: u32,
        name: &str,
    ) -> Result<Option<u64>, AdminError> {
        let mut total = 0;
        for partition in 0..partitions {
            match self
                .subscription_backlog(&topic.partition(partition), name)
                .await?
            {
                Some(backlog) => total += backlog,
                None => return Ok(None),
            }
        }
        Ok(Some(total))
    }

    /// The subscription `name` on the non-partitioned `topic` (or one partition of a partitioned
    /// topic, `<topic>-partition-<n>`): its precise backlog and, for a failover subscription,
    /// the consumer the broker dispatches to. `None` when the subscription does not exist. The
    /// pipeline asks it to tell a stalled consumer (its partition has a backlog and it is the
    /// active consumer, yet nothing arrives) from an idle one.
    pub async fn subscription_state(
        &self,
        topic: &TopicName,
        name: &str,
    ) -> Result<Option<SubscriptionState>, AdminError> {
        let url = self.topic_url(topic, &["stats"]);
        let query = [("getPreciseBacklog", "true")];
        let body = self
            .call(Method::GET, url, None, &query)
            .await?
            .ok_or_else(|| AdminError::MissingTopic(topic.to_string()))?;
        Ok(subscription_state(&body, name))
    }

    /// Deletes `topic` (all partitions, with its subscriptions, even if in use); `false` if it
    /// did not exist. For tests and operators cleaning up; nothing in the pipeline deletes.
    pub async fn delete_topic(&self, topic: &TopicName) -> Result<bool, AdminError> {
        let url = match self.topic_kind(topic).await? {
            TopicKind::Missing => return Ok(false),
            TopicKind::Partitioned(_) => self.topic_url(topic, &["partitions"]),
            TopicKind::NonPartitioned => self.topic_url(topic, &[]),
        };
        let query = [("force", "true")];
        Ok(self
            .call(Method::DELETE, url, None, &query)
            .await?
            .is_some())
    }

    /// `PUT` that treats 409 Conflict (exists) as `false`.
    async fn create(&self, url: Url, body: Option<String>) -> Result<bool, AdminError> {
        match self.call(Method::PUT, url, body, &[]).await {
            Ok(_) => Ok(true),
            Err(AdminError::Status { status, .. }) if status == StatusCode::CONFLICT => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// One call: `Some(body)` on success, `None` on 404, an error otherwise.
    async fn call(
        &self,
        method: Method,
        url: Url,
        body: Option<String>,
        query: &[(&str, &str)],
    ) -> Result<Option<String>, AdminError> {
        let Some(response) = self.respond(method, url, body, query).await? else {
            return Ok(None);
        };
        Ok(Some(
            response.text().await.map_err(|e| self.unreachable(e))?,
        ))
    }

    /// One call whose successful response the caller reads (body and headers): `None` on 404,
    /// an error (with the start of the broker's answer) otherwise.
    async fn respond(
        &self,
        method: Method,
        mut url: Url,
        body: Option<String>,
        query: &[(&str, &str)],
    ) -> Result<Option<reqwest::Response>, AdminError> {
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        let mut request = self.http.request(method.clone(), url.clone());
        if let Some(body) = body {
            request = request
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body);
        }
        let response = request.send().await.map_err(|e| self.unreachable(e))?;
        let status = response.status();
        if status == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if !status.is_success() {
            let text = response.text().await.map_err(|e| self.unreachable(e))?;
            return Err(AdminError::Status {
                method,
                url: url.to_string(),
                status,
                body: text.chars().take(300).collect(),
            });
        }
        Ok(Some(response))
    }

    fn unreachable(&self, error: reqwest::Error) -> AdminError {
        AdminError::Unreachable {
            url: self.base.to_string(),
            reason: with_causes(&error.without_url()),
        }
    }

    /// `<base>/admin/v2/<domain>/<tenant>/<ns>/<topic>/<rest...>`, each segment escaped.
    fn topic_url(&self, topic: &TopicName, rest: &[&str]) -> Url {
        let mut url = self.base.clone();
        url.set_query(None);
        if let Ok(mut segments) = url.path_segments_mut() {
            // `new` refused URLs that cannot be a base, so this branch is always taken.
            segments.pop_if_empty().extend(["admin", "v2"]);
            segments.extend(topic.rest_path().split('/'));
            segments.extend(rest);
        }
        url
    }
}

/// One subscription as the broker's topic stats describe it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscriptionState {
    /// Entries not acknowledged yet (counted precisely; a producer batch is one entry).
    pub backlog: u64,
    /// The consumer the broker dispatches to (failover and exclusive subscriptions); `None`
    /// when no consumer is connected.
    pub active_consumer: Option<String>,
    /// The names of the consumers connected to it, one per consumer (a name can repeat).
    pub consumers: Vec<String>,
}

fn subscription_state(stats: &str, name: &str) -> Option<SubscriptionState> {
    let value: serde_json::Value = serde_json::from_str(stats).ok()?;
    let subscription = value.get("subscriptions")?.get(name)?;
    Some(SubscriptionState {
        backlog: subscription
            .get("msgBacklog")
            .and_then(serde_json::Value::as_u64)
            .unwrap_or(0),
        active_consumer: subscription
            .get("activeConsumerName")
            .and_then(serde_json::Value::as_str)
            .map(str::to_owned),
        consumers: subscription
            .get("consumers")
            .and_then(serde_json::Value::as_array)
            .map(|consumers| {
                consumers
                    .iter()
                    .filter_map(|c| c.get("consumerName")?.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default(),
    })
}

/// `error: cause: cause`, since reqwest's own message ("error sending request") leaves out
/// what went wrong (connection refused, a timeout).
fn with_causes(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(e) = cause {
        text.push_str(": ");
        text.push_str(&e.to_string());
        cause = e.source();
    }
    text
}

/// The unsigned integer at `path` in a JSON document, if there is one.
fn json_u64(body: &str, path: &[&str]) -> Option<u64> {
    let value: serde_json::Value = serde_json::from_str(body).ok()?;
    path.iter()
        .try_fold(&value, |value, key| value.get(key))?
        .as_u64()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_escape_each_segment_and_keep_a_base_path() {
        let admin = PulsarAdmin::new("http://h:8080/", DEFAULT_WAIT).expect("admin");
        let topic = TopicName::parse("like-events").expect("topic");
        assert_eq!(
            admin.topic_url(&topic, &["subscription", "a b/c"]).as_str(),
            "http://h:8080/admin/v2/persistent/public/default/like-events/subscription/a%20b%2Fc"
        );
        let proxied = PulsarAdmin::new("http://h/pulsar", DEFAULT_WAIT).expect("admin");
        assert_eq!(
            proxied.topic_url(&topic, &[]).as_str(),
            "http://h/pulsar/admin/v2/persistent/public/default/like-events"
        );
    }

    #[test]
    fn only_plain_http_admin_urls_are_accepted() {
        for bad in ["https://h:8080", "pulsar://h:6650", "h:8080", ""] {
            assert!(
                matches!(
                    PulsarAdmin::new(bad, DEFAULT_WAIT),
                    Err(AdminError::BadUrl { .. })
                ),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn backlogs_are_read_from_the_stats_document() {
        let stats = r#"{"subscriptions":{"likes-dlq":{"msgBacklog":3}}}"#;
        assert_eq!(
            json_u64(stats, &["subscriptions", "likes-dlq", "msgBacklog"]),
            Some(3)
        );
        assert_eq!(
            json_u64(stats, &["subscriptions", "other", "msgBacklog"]),
            None
        );
        assert_eq!(json_u64("not json", &["x"]), None);
    }

    #[test]
    fn a_subscription_state_names_its_active_consumer() {
        let stats = r#"{"subscriptions":{"w":{"msgBacklog":7,"activeConsumerName":"a",
            "consumers":[{"consumerName":"a"},{"consumerName":"b"},{"consumerName":"a"}]},"x":{}}}"#;
        assert_eq!(
            subscription_state(stats, "w"),
            Some(SubscriptionState {
                backlog: 7,
                active_consumer: Some("a".into()),
                consumers: vec!["a".into(), "b".into(), "a".into()],
            })
        );
        assert_eq!(
            subscription_state(stats, "x"),
            Some(SubscriptionState {
                backlog: 0,
                active_consumer: None,
                consumers: Vec::new(),
            })
        );
        assert_eq!(subscription_state(stats, "y"), None);
    }
}
