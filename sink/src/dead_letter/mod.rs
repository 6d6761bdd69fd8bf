//! Where what the pipeline cannot apply goes: a window the store refuses for good (a permanent
//! error), or a record that does not decode as an event. Kept with the error, attempts and first
//! failure time so it can be inspected and replayed, and so the rest of the stream keeps flowing.
//! Replay is safe because the sink's apply is idempotent (I2).
//!
//! # Layout
//! - [`DeadLetter`] and [`DeadLetterPublisher`] — what a letter holds and where the worker sends it.
//! - [`file`] — [`FileDeadLetters`], the embedded JSON-lines file (`likes-dlq` reads and edits it).
//! - `pulsar` — `PulsarDeadLetters`, the distributed deployment's dead-letter topic (feature
//!   `pulsar`); the same JSON per message.

mod file;
#[cfg(feature = "pulsar")]
mod pulsar;

pub use file::FileDeadLetters;
#[cfg(feature = "pulsar")]
pub use pulsar::{PulsarDeadLetters, MAX_EVENTS_PER_MESSAGE};

use async_trait::async_trait;
use likes_shared::LikeEvent;
use serde::{Deserialize, Serialize};

/// Why a letter was written: what `likes-dlq list` groups by and `replay --error` selects.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum DeadLetterKind {
    /// The store refused the window for good; [`DeadLetter::events`] holds it, replayable.
    #[default]
    StoreRefused,
    /// Records that arrived intact but did not decode; [`DeadLetter::undecodable`] holds their
    /// bytes. Replaying them would only dead-letter them again.
    Undecodable,
}

impl DeadLetterKind {
    pub const ALL: [DeadLetterKind; 2] =
        [DeadLetterKind::StoreRefused, DeadLetterKind::Undecodable];

    pub fn name(self) -> &'static str {
        match self {
            DeadLetterKind::StoreRefused => "store_refused",
            DeadLetterKind::Undecodable => "undecodable",
        }
    }
}

/// A dead-lettered batch: the original events (or raw records) plus why and when they failed.
///
/// The JSON form stays readable by code that knows only `events`, `error`, `attempts` and
/// `first_failed_at_ms`: the newer fields are extra keys (ignored there) and default here, so
/// letters written before them read as store refusals.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeadLetter {
    #[serde(default)]
    pub kind: DeadLetterKind,
    pub events: Vec<LikeEvent>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub undecodable: Vec<RawRecord>,
    pub error: String,
    pub attempts: u32,
    pub first_failed_at_ms: u64,
}

/// A record's bytes exactly as the bus held them (base64 in JSON).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RawRecord {
    #[serde(rename = "payload_base64", with = "base64_bytes")]
    pub payload: Vec<u8>,
}

impl DeadLetter {
    /// A window the store refused for good after `attempts` tries.
    pub fn store_refused(
        events: Vec<LikeEvent>,
        error: String,
        attempts: u32,
        first_failed_at_ms: u64,
    ) -> Self {
        DeadLetter {
            kind: DeadLetterKind::StoreRefused,
            events,
            undecodable: Vec::new(),
            error,
            attempts,
            first_failed_at_ms,
        }
    }

    /// One record that does not decode, seen at `at_ms`.
    pub fn undecodable(payload: Vec<u8>, error: String, at_ms: u64) -> Self {
        DeadLetter {
            kind: DeadLetterKind::Undecodable,
            events: Vec::new(),
            undecodable: vec![RawRecord { payload }],
            error,
            attempts: 1,
            first_failed_at_ms: at_ms,
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("cannot dead-letter a batch: {0}")]
pub struct DeadLetterError(pub String);

#[async_trait]
pub trait DeadLetterPublisher: Send + Sync + 'static {
    /// Returns once the letter is durable; only then may the batch be acked.
    async fn publish(&self, letter: &DeadLetter) -> Result<(), DeadLetterError>;
}

mod base64_bytes {
    use base64::engine::general_purpose::STANDARD;
    use base64::Engine as _;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&STANDARD.encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(deserializer)?;
        STANDARD.decode(text).map_err(serde::de::Error::custom)
    }
}
