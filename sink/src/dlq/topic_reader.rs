//! Reading the dead-letter topic's backlog through the durable subscription, and knowing when
//! it has been read.
//!
//! A Pulsar consumer has no end of topic: past the last message it waits for the next one
//! forever. So after subscribing the reader asks the admin API for the subscription's backlog
//! (a precise count of unacknowledged entries) and stops once it has read that many. Each
//! receive is bounded by `wait` as well, so a count that is off (a letter purged by retention,
//! a stats hiccup) ends the read with a warning instead of a hang. Letters published after the
//! count was taken are left for the next run.
//!
//! Reading never acknowledges: the caller acks exactly the letters it is done with, then
//! [`LetterReader::close`]s the consumer, and the broker hands the rest to the next consumer of
//! the subscription (it redelivers what a closed consumer did not ack). That is how `list` and
//! `show` leave every letter in place.

use super::topic::TopicDlqError;
use crate::dead_letter::DeadLetter;
use crate::pulsar_admin::PulsarAdmin;
use crate::pulsar_client::{is_consumer_busy, PulsarClient};
use futures::TryStreamExt;
use likes_shared::topics::TopicName;
use pulsar::consumer::InitialPosition;
use pulsar::message::proto::MessageIdData;
use pulsar::{Consumer, ConsumerOptions, SubType, TokioExecutor};
use std::time::Duration;
use tokio::time::timeout;
use tracing::warn;

/// Letters one run reads at most (I7): a larger backlog is worked through in several runs.
pub const MAX_LETTERS_PER_RUN: u64 = 10_000;

/// A letter as read from the topic.
#[derive(Debug, Clone)]
pub struct TopicLetter {
    pub letter: DeadLetter,
    /// When the broker took the message (Unix ms).
    pub publish_time_ms: u64,
    pub(super) id: MessageIdData,
}

/// What one read found.
#[derive(Debug, Clone)]
pub struct Backlog {
    /// The letters read, oldest first.
    pub letters: Vec<TopicLetter>,
    /// The subscription's backlog when the read began (may exceed `letters.len()`).
    pub total: u64,
}

pub(super) struct LetterReader {
    consumer: Consumer<Vec<u8>, TokioExecutor>,
    topic: String,
    wait: Duration,
}

impl LetterReader {
    /// Subscribes to `topic` as `subscription` (exclusive, durable) and reads its backlog.
    pub(super) async fn open(
        client: &PulsarClient,
        admin: &PulsarAdmin,
        topic: &TopicName,
        subscription: &str,
        wait: Duration,
    ) -> Result<(Self, Backlog), TopicDlqError> {
        let full = topic.to_string();
        let subscribing = client
            .consumer()
            .with_topic(&full)
            .with_subscription(subscription)
            // Exclusive: two readers would each get part of the letters and number them
            // differently; the second is refused (`Busy`) instead.
            .with_subscription_type(SubType::Exclusive)
            .with_consumer_name(format!("likes-dlq-{}", std::process::id()))
            .with_options(
                ConsumerOptions::default()
                    .durable(true)
                    .with_initial_position(InitialPosition::Earliest),
            )
            .build::<Vec<u8>>();
        let consumer = match timeout(wait, subscribing).await {
            Err(_) => {
                return Err(TopicDlqError::pulsar(
                    "subscribe",
                    &full,
                    format!("no answer within {wait:?}"),
                ))
            }
            Ok(Err(e)) if is_consumer_busy(&e) => {
                return Err(TopicDlqError::Busy {
                    topic: full,
                    subscription: subscription.to_owned(),
                })
            }
            Ok(Err(e)) => return Err(TopicDlqError::pulsar("subscribe", &full, e.to_string())),
            Ok(Ok(consumer)) => consumer,
        };
        let mut reader = LetterReader {
            consumer,
            topic: full,
            wait,
        };
        // Asked only now: the subscription exists (created by `init`, or just now at the
        // earliest message), so its backlog is the number of letters there are to read.
        let total = admin
            .subscription_backlog(topic, subscription)
            .await?
            .unwrap_or(0);
        let letters = reader.read(total.min(MAX_LETTERS_PER_RUN)).await?;
        Ok((reader, Backlog { letters, total }))
    }

    async fn read(&mut self, entries: u64) -> Result<Vec<TopicLetter>, TopicDlqError> {
        let mut progress = EntryCount::default();
        let mut letters = Vec::new();
        while progress.complete < entries {
            let message = match timeout(self.wait, self.consumer.try_next()).await {
                Err(_) => {
                    warn!(
                        read = progress.complete,
                        expected = entries,
                        topic = %self.topic,
                        "no further letter within the wait; working with those read"
                    );
                    break;
                }
                Ok(Ok(Some(message))) => message,
                Ok(Ok(None)) => break,
                Ok(Err(e)) => {
                    return Err(TopicDlqError::pulsar("receive", &self.topic, e.to_string()))
                }
            };
            progress.saw(message.message_id(), message.message_id.batch_size);
            let publish_time_ms = message.metadata().publish_time;
            letters.push(TopicLetter {
                id: message.message_id().clone(),
                letter: decode(message.payload.data, publish_time_ms),
                publish_time_ms,
            });
        }
        Ok(letters)
    }

    /// Acknowledges one letter: the broker will not hand it out again.
    pub(super) async fn ack(&mut self, letter: &TopicLetter) -> Result<(), TopicDlqError> {
        timeout(
            self.wait,
            self.consumer.ack_with_id(&self.topic, letter.id.clone()),
        )
        .await
        .map_err(|_| TopicDlqError::pulsar("ack", &self.topic, "timed out".into()))?
        .map_err(|e| TopicDlqError::pulsar("ack", &self.topic, e.to_string()))
    }

    /// Closes the consumer; what it did not ack goes to the subscription's next consumer.
    /// Acks are sent on the same connection before the close, so once this returns the
    /// broker has them.
    pub(super) async fn close(mut self) -> Result<(), TopicDlqError> {
        timeout(self.wait, self.consumer.close())
            .await
            .map_err(|_| TopicDlqError::pulsar("close", &self.topic, "timed out".into()))?
            .map_err(|e| TopicDlqError::pulsar("close", &self.topic, e.to_string()))
    }
}

/// A message that is not a letter (a foreign producer, a corrupted payload) is shown as an
/// undecodable letter holding its bytes, dated by its publish time: it can be listed, shown and
/// purged, and is never replayed.
fn decode(payload: Vec<u8>, publish_time_ms: u64) -> DeadLetter {
    match serde_json::from_slice(&payload) {
        Ok(letter) => letter,
        Err(e) => DeadLetter::undecodable(
            payload,
            format!("message is not a dead letter (JSON): {e}"),
            publish_time_ms,
        ),
    }
}

/// Counts broker entries read. The backlog counts entries, and an entry may be a batch of
/// messages (this crate's producers do not batch, others might): an entry counts once its last
/// message has arrived.
#[derive(Debug, Default)]
struct EntryCount {
    complete: u64,
}

impl EntryCount {
    fn saw(&mut self, id: &MessageIdData, batch_size: Option<i32>) {
        let last_of_entry = match (id.batch_index, batch_size) {
            (Some(index), Some(size)) if size > 1 => index >= size - 1,
            _ => true,
        };
        if last_of_entry {
            self.complete += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dead_letter::DeadLetterKind;

    fn id(entry: u64, batch_index: Option<i32>) -> MessageIdData {
        MessageIdData {
            ledger_id: 1,
            entry_id: entry,
            batch_index,
            ..MessageIdData::default()
        }
    }

    #[test]
    fn an_entry_counts_once_its_whole_batch_is_read() {
        let mut count = EntryCount::default();
        count.saw(&id(0, None), None);
        assert_eq!(count.complete, 1);
        count.saw(&id(1, Some(0)), Some(3));
        count.saw(&id(1, Some(1)), Some(3));
        assert_eq!(count.complete, 1);
        count.saw(&id(1, Some(2)), Some(3));
        assert_eq!(count.complete, 2);
        count.saw(&id(2, Some(0)), Some(1));
        assert_eq!(count.complete, 3);
    }

    #[test]
    fn a_message_that_is_not_a_letter_reads_as_an_undecodable_one() {
        let letter = decode(b"{not json".to_vec(), 42);
        assert_eq!(letter.kind, DeadLetterKind::Undecodable);
        assert_eq!(letter.first_failed_at_ms, 42);
        assert_eq!(letter.undecodable[0].payload, b"{not json");
    }
}
