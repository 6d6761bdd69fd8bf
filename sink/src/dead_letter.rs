//! Where a window goes when the store refuses it for good (a permanent error): kept with the
//! error, attempts and first failure time so it can be inspected and replayed, and so the rest of
//! the stream keeps flowing. Replay is safe because the sink's apply is idempotent (I2).

use async_trait::async_trait;
use likes_shared::LikeEvent;
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::PathBuf;

/// A dead-lettered batch: the original events plus why and when they failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeadLetter {
    pub events: Vec<LikeEvent>,
    pub error: String,
    pub attempts: u32,
    pub first_failed_at_ms: u64,
}

#[derive(Debug, thiserror::Error)]
#[error("cannot dead-letter a batch: {0}")]
pub struct DeadLetterError(pub String);

#[async_trait]
pub trait DeadLetterPublisher: Send + Sync + 'static {
    /// Returns once the letter is durable; only then may the batch be acked.
    async fn publish(&self, letter: &DeadLetter) -> Result<(), DeadLetterError>;
}

/// Embedded dead letters: one JSON object per line in a local file, fsynced.
pub struct FileDeadLetters {
    path: PathBuf,
}

impl FileDeadLetters {
    pub fn new(path: PathBuf) -> Self {
        FileDeadLetters { path }
    }

    /// Every letter in the file, oldest first.
    pub fn read_all(&self) -> Result<Vec<DeadLetter>, DeadLetterError> {
        let text = match std::fs::read_to_string(&self.path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(DeadLetterError(e.to_string())),
        };
        text.lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| serde_json::from_str(l).map_err(|e| DeadLetterError(e.to_string())))
            .collect()
    }
}

#[async_trait]
impl DeadLetterPublisher for FileDeadLetters {
    async fn publish(&self, letter: &DeadLetter) -> Result<(), DeadLetterError> {
        let mut line = serde_json::to_vec(letter).map_err(|e| DeadLetterError(e.to_string()))?;
        line.push(b'\n');
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || -> std::io::Result<()> {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)?;
            }
            let mut file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)?;
            file.write_all(&line)?;
            file.sync_data()
        })
        .await
        .map_err(|e| DeadLetterError(e.to_string()))?
        .map_err(|e| DeadLetterError(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use likes_shared::{Action, ContentId, UserId};

    #[tokio::test]
    async fn letters_round_trip_through_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let letters = FileDeadLetters::new(dir.path().join("dlq/dead-letters.jsonl"));
        let event = LikeEvent {
            event_id: u128::MAX,
            user_id: UserId::new(1).expect("non-zero"),
            content_id: ContentId::new(u64::MAX).expect("non-zero"),
            action: Action::Like,
            version: 5,
            ts_ms: 6,
            source: "s".into(),
        };
        let letter = DeadLetter {
            events: vec![event],
            error: "bad".into(),
            attempts: 3,
            first_failed_at_ms: 9,
        };
        letters.publish(&letter).await.expect("publish");
        letters.publish(&letter).await.expect("publish");
        assert_eq!(
            letters.read_all().expect("read"),
            vec![letter.clone(), letter]
        );
    }
}
