//! The distributed deployment's dead letters: one Pulsar message per letter on
//! `persistent://public/default/like-events-dlq`.
//!
//! The payload is the letter's JSON, the same serde form as a line of the embedded file, so
//! `likes-dlq` reads both with one type and a letter can move between them. The kind, attempts and
//! first failure time are repeated as message properties (`error_kind`, `attempts`,
//! `first_failed_at_ms`) so they show in `pulsar-admin topics peek-messages` without decoding.
//!
//! [`DeadLetterPublisher::publish`] returns only once the broker has acked every message of the
//! letter: the worker acks the window's events right after, and a letter lost in between would
//! be a window lost for good.
//!
//! Two limits shape the messages:
//! - The broker refuses messages over 5 MB (`maxMessageSize`). A refused window can hold tens of
//!   thousands of events, so a letter is sent as parts of at most [`MAX_EVENTS_PER_MESSAGE`]
//!   events (a few hundred KB), each a complete letter with the same error, attempts and time
//!   and a `part` property (`2/3`). Replaying parts is replaying the window (I2).
//! - No batching: one letter is one broker entry, which lets `likes-dlq` count what it has read
//!   against the subscription backlog (counted in entries) and stop there.

use super::{DeadLetter, DeadLetterError, DeadLetterPublisher};
use crate::pulsar_client::{self, PulsarClient};
use async_trait::async_trait;
use pulsar::{Producer, ProducerOptions, TokioExecutor};
use std::borrow::Cow;
use std::time::Duration;
use tokio::sync::Mutex;
use tokio::time::timeout;

/// Events per message; see the module doc.
pub const MAX_EVENTS_PER_MESSAGE: usize = 2_000;

pub struct PulsarDeadLetters {
    /// A tokio mutex: sending needs `&mut Producer` across an await (enqueueing only; the wait
    /// for the broker's receipt happens after the lock is released).
    producer: Mutex<Producer<TokioExecutor>>,
    topic: String,
    wait: Duration,
}

impl PulsarDeadLetters {
    /// A producer on `topic` over an existing client (the worker shares its consumer's).
    /// `wait` bounds each step of a publish: taking the producer, enqueueing, the broker's ack.
    pub async fn new(
        client: &PulsarClient,
        topic: &str,
        wait: Duration,
    ) -> Result<Self, DeadLetterError> {
        let options = ProducerOptions {
            batch_size: None,
            ..ProducerOptions::default()
        };
        let building = client
            .producer()
            .with_topic(topic)
            .with_options(options)
            .build();
        let producer = timeout(wait, building)
            .await
            .map_err(|_| failed(topic, format!("no producer within {wait:?}")))?
            .map_err(|e| failed(topic, e.to_string()))?;
        Ok(PulsarDeadLetters {
            producer: Mutex::new(producer),
            topic: topic.to_owned(),
            wait,
        })
    }

    /// Connects to the broker at `url` and opens a producer on `topic`.
    pub async fn connect(url: &str, topic: &str, wait: Duration) -> Result<Self, DeadLetterError> {
        let client = pulsar_client::connect(url, wait)
            .await
            .map_err(|e| DeadLetterError(e.to_string()))?;
        Self::new(&client, topic, wait).await
    }

    pub fn topic(&self) -> &str {
        &self.topic
    }

    async fn send(&self, letter: &DeadLetter, part: Option<String>) -> Result<(), DeadLetterError> {
        let payload = serde_json::to_vec(letter).map_err(|e| DeadLetterError(e.to_string()))?;
        let receipt = {
            let mut producer = timeout(self.wait, self.producer.lock())
                .await
                .map_err(|_| self.failed(format!("producer busy for {:?}", self.wait)))?;
            let mut message = producer
                .create_message()
                .with_content(payload)
                .with_property("error_kind", letter.kind.name())
                .with_property("attempts", letter.attempts.to_string())
                .with_property("first_failed_at_ms", letter.first_failed_at_ms.to_string());
            if let Some(part) = part {
                message = message.with_property("part", part);
            }
            timeout(self.wait, message.send_non_blocking())
                .await
                .map_err(|_| self.failed(format!("not enqueued within {:?}", self.wait)))?
                .map_err(|e| self.failed(e.to_string()))?
        };
        timeout(self.wait, receipt)
            .await
            .map_err(|_| self.failed(format!("no broker ack within {:?}", self.wait)))?
            .map_err(|e| self.failed(e.to_string()))?;
        Ok(())
    }

    fn failed(&self, reason: String) -> DeadLetterError {
        failed(&self.topic, reason)
    }
}

fn failed(topic: &str, reason: String) -> DeadLetterError {
    DeadLetterError(format!("dead-letter topic {topic}: {reason}"))
}

/// The letter as it goes on the topic: whole, or in parts of at most `max_events` events.
fn parts(letter: &DeadLetter, max_events: usize) -> Vec<Cow<'_, DeadLetter>> {
    if letter.events.len() <= max_events {
        return vec![Cow::Borrowed(letter)];
    }
    letter
        .events
        .chunks(max_events)
        .map(|events| {
            Cow::Owned(DeadLetter {
                kind: letter.kind,
                events: events.to_vec(),
                undecodable: letter.undecodable.clone(),
                error: letter.error.clone(),
                attempts: letter.attempts,
                first_failed_at_ms: letter.first_failed_at_ms,
            })
        })
        .collect()
}

#[async_trait]
impl DeadLetterPublisher for PulsarDeadLetters {
    async fn publish(&self, letter: &DeadLetter) -> Result<(), DeadLetterError> {
        let parts = parts(letter, MAX_EVENTS_PER_MESSAGE);
        let count = parts.len();
        for (n, part) in parts.iter().enumerate() {
            let label = (count > 1).then(|| format!("{}/{count}", n + 1));
            self.send(part, label).await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use likes_shared::{Action, ContentId, LikeEvent, UserId};

    fn event(user: u64) -> LikeEvent {
        LikeEvent {
            event_id: u128::from(user),
            user_id: UserId::new(user).expect("non-zero"),
            content_id: ContentId::new(1).expect("non-zero"),
            action: Action::Like,
            version: user,
            ts_ms: user,
            source: "t".into(),
            fill_epoch: 0,
        }
    }

    #[test]
    fn big_letters_go_in_parts_that_together_hold_every_event() {
        let events: Vec<LikeEvent> = (1..=5).map(event).collect();
        let letter = DeadLetter::store_refused(events.clone(), "bad".into(), 3, 9);
        assert_eq!(parts(&letter, 5).len(), 1);
        let split = parts(&letter, 2);
        assert_eq!(split.len(), 3);
        assert!(split
            .iter()
            .all(|p| p.error == "bad" && p.attempts == 3 && p.first_failed_at_ms == 9));
        let rejoined: Vec<LikeEvent> = split.iter().flat_map(|p| p.events.clone()).collect();
        assert_eq!(rejoined, events);
    }
}
