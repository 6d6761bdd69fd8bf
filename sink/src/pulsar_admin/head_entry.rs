//! A subscription's next entry, read and passed through the admin API rather than a consumer.
//!
//! Why: a consumer can fail on an entry for good. pulsar-rs errors on an entry compressed with
//! a codec it was built without (Pulsar's Java client writes Snappy or ZSTD) or on a batch it
//! cannot parse, and it drops the entry without a message id, so the worker can neither
//! process it nor ack it: the partition stops behind it. The broker itself unpacks an entry's
//! compression when it answers a peek, and it moves a cursor on request. So the pipeline peeks
//! the entry its stalled partition is stuck on, processes (or dead-letters) what it holds, and
//! then moves the subscription past that one entry.

use super::{AdminError, PulsarAdmin};
use likes_shared::topics::TopicName;
use prost::Message as _;
use pulsar::message::proto::SingleMessageMetadata;
use reqwest::header::HeaderMap;
use reqwest::Method;

/// The entry after a subscription's mark-delete position, as the broker peeks it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeadEntry {
    pub ledger_id: u64,
    pub entry_id: u64,
    /// Messages in the entry when a producer batched them; then `payload` is the batch format
    /// (per message: a 4-byte big-endian size, a `SingleMessageMetadata`, the payload).
    pub batch_size: Option<u32>,
    /// Uncompressed: the broker undoes the producer's compression before answering.
    pub payload: Vec<u8>,
}

impl HeadEntry {
    /// The payloads of the entry's messages, in order: one for an entry of its own, each
    /// message's for a batch. A batch that does not parse comes back whole, as one payload, so
    /// its bytes reach the dead-letter topic as they are rather than being lost.
    pub fn messages(&self) -> Vec<Vec<u8>> {
        self.batch_size
            .and_then(|count| split_batch(&self.payload, count))
            .unwrap_or_else(|| vec![self.payload.clone()])
    }
}

/// Pulsar's batch format: per message a 4-byte big-endian metadata size, the
/// `SingleMessageMetadata`, and `payload_size` bytes of payload. `None` if it does not hold
/// `count` messages.
fn split_batch(batch: &[u8], count: u32) -> Option<Vec<Vec<u8>>> {
    if count == 0 {
        return None; // No message to hand on would leave the entry never passed.
    }
    let mut rest = batch;
    // The count comes from a header: capped so a wrong one cannot reserve much memory.
    let mut messages = Vec::with_capacity(count.min(1_024) as usize);
    for _ in 0..count {
        let (size, tail) = rest.split_first_chunk::<4>()?;
        let size = usize::try_from(u32::from_be_bytes(*size)).ok()?;
        let (metadata, tail) = tail.split_at_checked(size)?;
        let metadata = SingleMessageMetadata::decode(metadata).ok()?;
        let (payload, tail) =
            tail.split_at_checked(usize::try_from(metadata.payload_size).ok()?)?;
        messages.push(payload.to_vec());
        rest = tail;
    }
    Some(messages)
}

impl PulsarAdmin {
    /// The next entry the subscription `name` on the partition (or non-partitioned) `topic`
    /// has not acknowledged; `None` when there is none. An entry the broker cannot unpack
    /// either is an error ([`AdminError::Status`]).
    pub async fn head_entry(
        &self,
        topic: &TopicName,
        name: &str,
    ) -> Result<Option<HeadEntry>, AdminError> {
        let url = self.topic_url(topic, &["subscription", name, "position", "1"]);
        let Some(response) = self.respond(Method::GET, url.clone(), None, &[]).await? else {
            return Ok(None);
        };
        let Some((ledger_id, entry_id)) = message_id(response.headers()) else {
            return Err(AdminError::Status {
                method: Method::GET,
                url: url.to_string(),
                status: response.status(),
                body: "the answer names no X-Pulsar-Message-ID".into(),
            });
        };
        let batch_size =
            header(response.headers(), "X-Pulsar-num-batch-message").and_then(|n| n.parse().ok());
        let payload = response
            .bytes()
            .await
            .map_err(|e| self.unreachable(e))?
            .to_vec();
        Ok(Some(HeadEntry {
            ledger_id,
            entry_id,
            batch_size,
            payload,
        }))
    }

    /// Moves the subscription `name` on the partition (or non-partitioned) `topic` to just past
    /// the entry `(ledger_id, entry_id)`, as if everything through it had been acknowledged.
    /// The broker disconnects the subscription's consumers on that topic; they subscribe again.
    /// Moving it back (the entry was passed already) only redelivers.
    pub async fn skip_through(
        &self,
        topic: &TopicName,
        name: &str,
        ledger_id: u64,
        entry_id: u64,
    ) -> Result<(), AdminError> {
        let url = self.topic_url(topic, &["subscription", name, "resetcursor"]);
        // `excluded`: the position after the entry. The field is `isExcluded` in Pulsar's Java
        // class, but its JSON name has no `is` (a broker ignores the unknown `isExcluded`).
        let body = serde_json::json!({
            "ledgerId": ledger_id,
            "entryId": entry_id,
            "partitionIndex": -1,
            "excluded": true,
        });
        match self
            .call(Method::POST, url, Some(body.to_string()), &[])
            .await?
        {
            Some(_) => Ok(()),
            None => Err(AdminError::MissingTopic(topic.to_string())),
        }
    }
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|value| value.to_str().ok())
}

/// `ledger:entry` from the peek's `X-Pulsar-Message-ID` header.
fn message_id(headers: &HeaderMap) -> Option<(u64, u64)> {
    let (ledger, entry) = header(headers, "X-Pulsar-Message-ID")?.split_once(':')?;
    Some((ledger.parse().ok()?, entry.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    /// The body of a peek of a Snappy batch of "aaaaa" and "bbb" from Pulsar's Java client
    /// (Pulsar 3.0.7; the broker answered it uncompressed, with `X-Pulsar-num-batch-message: 2`).
    const PEEKED_BATCH: &[u8] = b"\0\0\0\x09\x12\x011\x18\x05\x30\0\x40\0aaaaa\
        \0\0\0\x09\x12\x011\x18\x03\x30\0\x40\x01bbb";

    fn entry(batch_size: Option<u32>, payload: &[u8]) -> HeadEntry {
        HeadEntry {
            ledger_id: 4,
            entry_id: 0,
            batch_size,
            payload: payload.to_vec(),
        }
    }

    #[test]
    fn a_batch_splits_into_its_messages() {
        assert_eq!(
            entry(Some(2), PEEKED_BATCH).messages(),
            vec![b"aaaaa".to_vec(), b"bbb".to_vec()]
        );
        assert_eq!(entry(None, b"cccccc").messages(), vec![b"cccccc".to_vec()]);
    }

    #[test]
    fn a_batch_that_does_not_parse_comes_back_whole() {
        for (count, bytes) in [
            (3, PEEKED_BATCH),                            // fewer messages than the header says
            (2, &PEEKED_BATCH[..PEEKED_BATCH.len() - 1]), // the last payload cut short
            (1, b"\xff\xff\xff\xff".as_slice()),          // a metadata size past the end
            (1, b"\0\0\0\x02\xff\xff".as_slice()),        // metadata that is not protobuf
            (0, PEEKED_BATCH),                            // a batch of no message
        ] {
            assert_eq!(entry(Some(count), bytes).messages(), vec![bytes.to_vec()]);
        }
    }

    #[test]
    fn the_message_id_header_is_ledger_colon_entry() {
        let mut headers = HeaderMap::new();
        assert_eq!(message_id(&headers), None);
        headers.insert("X-Pulsar-Message-ID", HeaderValue::from_static("12:345"));
        assert_eq!(message_id(&headers), Some((12, 345)));
        headers.insert("X-Pulsar-Message-ID", HeaderValue::from_static("12"));
        assert_eq!(message_id(&headers), None);
    }
}
