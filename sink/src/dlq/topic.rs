//! What `likes-dlq` does to the dead-letter topic of the distributed deployment
//! (`like-events-dlq`): list and show the letters, replay them into `like-events`, purge old
//! ones. The letters are read through the durable subscription `likes-dlq`
//! ([`super::topic_reader`] says how without consuming them).
//!
//! Replay publishes each chosen letter's events to the events topic the way ingest does (key =
//! content id, hashed to a partition, payload = the event's wire encoding), waits for the
//! broker's receipt of every one, and only then acknowledges the letter. A failure stops the
//! replay; the letters acknowledged so far are done and the rest stay. A crash between the
//! re-publish and the ack replays that letter again next time, which is harmless: the sink
//! keeps the highest version per (user, content) and moves counts only on real transitions
//! (I2, I4). For the same reason a second replay of the same letters changes nothing, and
//! normally finds none: acknowledged letters are gone from the subscription.
//!
//! Both topics are checked through the admin API before use, because the broker would silently
//! create a missing (mistyped) one.

pub use super::topic_reader::{Backlog, TopicLetter, MAX_LETTERS_PER_RUN};

use super::topic_reader::LetterReader;
use super::{purge_cutoff_ms, replayable, DlqConfig, Failure, ReplayReport};
use crate::dead_letter::{DeadLetter, DeadLetterKind};
use crate::pulsar_admin::{AdminError, PulsarAdmin, TopicKind};
use crate::pulsar_client::{self, ConnectError, PulsarClient};
use futures::future::try_join_all;
use likes_shared::topics::{event_key, TopicName, TopicNameError, TopicsConfig};
use pulsar::{Producer, TokioExecutor};
use std::time::Duration;
use tokio::time::timeout;

/// Where the topic mode connects and what it works on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicDlqConfig {
    pub pulsar_url: String,
    pub admin_url: String,
    pub topics: TopicsConfig,
    /// Bound on each wait: connecting, subscribing, each receive, each publish receipt.
    pub wait: Duration,
}

impl TopicDlqConfig {
    /// From `likes-dlq`'s settings; an admin URL given on the command line wins.
    pub fn new(
        config: &DlqConfig,
        pulsar_url: String,
        admin_url: Option<String>,
    ) -> Result<Self, TopicDlqError> {
        let admin_url = admin_url
            .or_else(|| config.pulsar_admin_url.clone())
            .filter(|url| !url.is_empty())
            .ok_or(TopicDlqError::MissingSetting(
                "LIKES_PULSAR_ADMIN_URL (or --pulsar-admin URL)",
            ))?;
        Ok(TopicDlqConfig {
            pulsar_url,
            admin_url,
            topics: config.pulsar.clone(),
            wait: Duration::from_secs(config.pulsar_wait_secs.max(1)),
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TopicDlqError {
    #[error("{0} is not set; working on the dead-letter topic needs it")]
    MissingSetting(&'static str),
    #[error(transparent)]
    BadTopic(#[from] TopicNameError),
    #[error(transparent)]
    Admin(#[from] AdminError),
    #[error(transparent)]
    Connect(#[from] ConnectError),
    #[error(
        "the subscription `{subscription}` on {topic} is held by another consumer (another \
         likes-dlq?); try again once it is done"
    )]
    Busy { topic: String, subscription: String },
    #[error("cannot {what} on {topic}: {reason}")]
    Pulsar {
        what: &'static str,
        topic: String,
        reason: String,
    },
    #[error("no letter {n}: there are {count} (numbered from 1)")]
    NoLetter { n: usize, count: usize },
    #[error(
        "replay stopped after {replayed} of {total} letters (those are acknowledged, the rest \
         stay on the topic): {reason}"
    )]
    Replay {
        replayed: usize,
        total: usize,
        reason: String,
    },
}

impl TopicDlqError {
    pub(super) fn pulsar(what: &'static str, topic: &str, reason: String) -> Self {
        TopicDlqError::Pulsar {
            what,
            topic: topic.to_owned(),
            reason,
        }
    }

    pub fn failure(&self) -> Failure {
        match self {
            TopicDlqError::MissingSetting(_)
            | TopicDlqError::BadTopic(_)
            | TopicDlqError::NoLetter { .. } => Failure::BadArgument,
            TopicDlqError::Connect(_) => Failure::Unreachable,
            TopicDlqError::Admin(e) => match e {
                AdminError::BadUrl { .. } | AdminError::Unreachable { .. } => Failure::Unreachable,
                AdminError::MissingTopic(_) => Failure::MissingTopic,
                AdminError::BadTopic(_) | AdminError::ZeroPartitions(_) => Failure::BadArgument,
                _ => Failure::Other,
            },
            TopicDlqError::Busy { .. } => Failure::Busy,
            TopicDlqError::Pulsar { .. } | TopicDlqError::Replay { .. } => Failure::Other,
        }
    }
}

/// A connection to the broker and its admin API, and the names to work on.
pub struct TopicDlq {
    client: PulsarClient,
    admin: PulsarAdmin,
    dlq: TopicName,
    events: TopicName,
    subscription: String,
    wait: Duration,
}

impl TopicDlq {
    /// Checks the URLs and names, that the dead-letter topic exists (and is one topic, not
    /// partitioned: one topic keeps the letters in order), then connects.
    pub async fn connect(config: &TopicDlqConfig) -> Result<Self, TopicDlqError> {
        let dlq = TopicName::parse(&config.topics.dlq_topic)?;
        let events = TopicName::parse(&config.topics.topic)?;
        let admin = PulsarAdmin::new(&config.admin_url, config.wait)?;
        match admin.topic_kind(&dlq).await? {
            TopicKind::Missing => return Err(AdminError::MissingTopic(dlq.to_string()).into()),
            TopicKind::Partitioned(partitions) => {
                return Err(AdminError::Partitioned {
                    topic: dlq.to_string(),
                    partitions,
                }
                .into())
            }
            TopicKind::NonPartitioned => {}
        }
        let client = pulsar_client::connect(&config.pulsar_url, config.wait).await?;
        Ok(TopicDlq {
            client,
            admin,
            dlq,
            events,
            subscription: config.topics.dlq_subscription.clone(),
            wait: config.wait,
        })
    }

    /// The dead-letter topic's full name.
    pub fn dlq_topic(&self) -> String {
        self.dlq.to_string()
    }

    /// The events topic's full name (where replay publishes).
    pub fn events_topic(&self) -> String {
        self.events.to_string()
    }

    /// The letters waiting on the subscription, oldest first, without consuming any.
    pub async fn letters(&self) -> Result<Backlog, TopicDlqError> {
        let (reader, backlog) = self.open().await?;
        reader.close().await?;
        Ok(backlog)
    }

    /// Letter `n` of [`Self::letters`] (1 = oldest), without consuming any.
    pub async fn letter(&self, n: usize) -> Result<DeadLetter, TopicDlqError> {
        let letters = self.letters().await?.letters;
        let count = letters.len();
        n.checked_sub(1)
            .and_then(|i| letters.into_iter().nth(i))
            .map(|read| read.letter)
            .ok_or(TopicDlqError::NoLetter { n, count })
    }

    /// Re-publishes the store-refused letters (only those of `kind`, when given) to the events
    /// topic, acknowledging each letter once all its events are acked by the broker. A dry run
    /// reads and counts, and acknowledges nothing.
    pub async fn replay(
        &self,
        kind: Option<DeadLetterKind>,
        dry_run: bool,
    ) -> Result<ReplayReport, TopicDlqError> {
        if !dry_run && self.admin.topic_kind(&self.events).await? == TopicKind::Missing {
            return Err(AdminError::MissingTopic(self.events.to_string()).into());
        }
        let (mut reader, backlog) = self.open().await?;
        let (chosen, kept): (Vec<&TopicLetter>, Vec<&TopicLetter>) = backlog
            .letters
            .iter()
            .partition(|read| replayable(&read.letter, kind));
        let report = ReplayReport {
            letters: chosen.len(),
            events: chosen.iter().map(|read| read.letter.events.len()).sum(),
            kept: kept.len(),
        };
        if dry_run || chosen.is_empty() {
            reader.close().await?;
            return Ok(report);
        }
        let result = self.republish_and_ack(&mut reader, &chosen).await;
        // Close in every case: it delivers the acks made so far and frees the subscription.
        let closed = reader.close().await;
        result?;
        closed?;
        Ok(report)
    }

    async fn republish_and_ack(
        &self,
        reader: &mut LetterReader,
        chosen: &[&TopicLetter],
    ) -> Result<(), TopicDlqError> {
        let stopped = |replayed: usize, reason: String| TopicDlqError::Replay {
            replayed,
            total: chosen.len(),
            reason,
        };
        let mut producer = self
            .events_producer()
            .await
            .map_err(|e| stopped(0, e.to_string()))?;
        for (replayed, read) in chosen.iter().enumerate() {
            self.republish(&mut producer, &read.letter)
                .await
                .map_err(|reason| stopped(replayed, reason))?;
            reader
                .ack(read)
                .await
                .map_err(|e| stopped(replayed, e.to_string()))?;
        }
        Ok(())
    }

    /// A producer on the events topic routing by message key, exactly as ingest publishes.
    async fn events_producer(&self) -> Result<Producer<TokioExecutor>, TopicDlqError> {
        let topic = self.events.to_string();
        let building = self
            .client
            .producer()
            .with_topic(&topic)
            .with_options(crate::pulsar_client::keyed_event_producer_options())
            .build();
        timeout(self.wait, building)
            .await
            .map_err(|_| TopicDlqError::pulsar("create a producer", &topic, "timed out".into()))?
            .map_err(|e| TopicDlqError::pulsar("create a producer", &topic, e.to_string()))
    }

    /// Publishes every event of `letter`, then waits for all the broker's receipts.
    async fn republish(
        &self,
        producer: &mut Producer<TokioExecutor>,
        letter: &DeadLetter,
    ) -> Result<(), String> {
        let mut receipts = Vec::with_capacity(letter.events.len());
        for event in &letter.events {
            let sending = producer
                .create_message()
                .with_key(event_key(event))
                .with_content(event.encode())
                .send_non_blocking();
            let receipt = timeout(self.wait, sending)
                .await
                .map_err(|_| format!("event not enqueued within {:?}", self.wait))?
                .map_err(|e| e.to_string())?;
            receipts.push(receipt);
        }
        timeout(self.wait, try_join_all(receipts))
            .await
            .map_err(|_| format!("no broker ack within {:?}", self.wait))?
            .map_err(|e| e.to_string())?;
        Ok(())
    }

    /// Acknowledges (removes) the letters that first failed more than `older_than` before
    /// `now_ms`; returns how many.
    pub async fn purge(&self, older_than: Duration, now_ms: u64) -> Result<usize, TopicDlqError> {
        let cutoff = purge_cutoff_ms(older_than, now_ms);
        let (mut reader, backlog) = self.open().await?;
        let mut purged = 0;
        let mut result = Ok(());
        for read in &backlog.letters {
            if read.letter.first_failed_at_ms < cutoff {
                result = reader.ack(read).await;
                if result.is_err() {
                    break;
                }
                purged += 1;
            }
        }
        let closed = reader.close().await;
        result?;
        closed?;
        Ok(purged)
    }

    async fn open(&self) -> Result<(LetterReader, Backlog), TopicDlqError> {
        LetterReader::open(
            &self.client,
            &self.admin,
            &self.dlq,
            &self.subscription,
            self.wait,
        )
        .await
    }
}
