//! The embedded dead letters: one JSON object per line in `<data_dir>/dead-letters.jsonl`.
//!
//! The worker appends and fsyncs a line before it acks the batch. `likes-dlq` reads the file and
//! rewrites it whole (replay, purge) through a temporary file, fsync and rename, so a crash
//! mid-rewrite leaves either the old file or the new one, never half of each.

use super::{DeadLetter, DeadLetterError, DeadLetterPublisher};
use async_trait::async_trait;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

pub struct FileDeadLetters {
    path: PathBuf,
}

impl FileDeadLetters {
    pub fn new(path: PathBuf) -> Self {
        FileDeadLetters { path }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Every letter in the file, oldest first; none when the file does not exist.
    pub fn read_all(&self) -> Result<Vec<DeadLetter>, DeadLetterError> {
        let text = match fs::read_to_string(&self.path) {
            Ok(text) => text,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(self.error(e)),
        };
        text.lines()
            .enumerate()
            .filter(|(_, line)| !line.trim().is_empty())
            .map(|(n, line)| {
                serde_json::from_str(line).map_err(|e| {
                    DeadLetterError(format!("{} line {}: {e}", self.path.display(), n + 1))
                })
            })
            .collect()
    }

    /// Replaces the file's content with `letters`, atomically.
    pub fn rewrite(&self, letters: &[DeadLetter]) -> Result<(), DeadLetterError> {
        let mut text = Vec::new();
        for letter in letters {
            serde_json::to_writer(&mut text, letter).map_err(|e| DeadLetterError(e.to_string()))?;
            text.push(b'\n');
        }
        let tmp = self.path.with_extension("jsonl.tmp");
        let write = || -> io::Result<()> {
            let mut file = File::create(&tmp)?;
            file.write_all(&text)?;
            file.sync_all()?;
            fs::rename(&tmp, &self.path)?;
            // The rename is only durable once the directory is.
            File::open(parent_dir(&self.path))?.sync_all()
        };
        write().map_err(|e| self.error(e))
    }

    fn error(&self, e: io::Error) -> DeadLetterError {
        DeadLetterError(format!("{}: {e}", self.path.display()))
    }
}

fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    }
}

#[async_trait]
impl DeadLetterPublisher for FileDeadLetters {
    async fn publish(&self, letter: &DeadLetter) -> Result<(), DeadLetterError> {
        let mut line = serde_json::to_vec(letter).map_err(|e| DeadLetterError(e.to_string()))?;
        line.push(b'\n');
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || -> io::Result<()> {
            fs::create_dir_all(parent_dir(&path))?;
            let mut file = OpenOptions::new().create(true).append(true).open(&path)?;
            file.write_all(&line)?;
            file.sync_data()
        })
        .await
        .map_err(|e| DeadLetterError(e.to_string()))?
        .map_err(|e| self.error(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use likes_shared::{Action, ContentId, LikeEvent, UserId};

    fn refused() -> DeadLetter {
        let event = LikeEvent {
            event_id: u128::MAX,
            user_id: UserId::new(1).expect("non-zero"),
            content_id: ContentId::new(u64::MAX).expect("non-zero"),
            action: Action::Like,
            version: 5,
            ts_ms: 6,
            source: "s".into(),
            fill_epoch: 0,
        };
        DeadLetter::store_refused(vec![event], "bad".into(), 3, 9)
    }

    #[tokio::test]
    async fn letters_round_trip_through_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let letters = FileDeadLetters::new(dir.path().join("dlq/dead-letters.jsonl"));
        let raw = DeadLetter::undecodable(vec![0, 255, 9], "unknown schema version 0".into(), 4);
        letters.publish(&refused()).await.expect("publish");
        letters.publish(&raw).await.expect("publish");
        assert_eq!(
            letters.read_all().expect("read"),
            vec![refused(), raw.clone()]
        );
        letters
            .rewrite(std::slice::from_ref(&raw))
            .expect("rewrite");
        assert_eq!(letters.read_all().expect("read"), vec![raw]);
    }

    #[test]
    fn letters_written_before_kinds_existed_read_as_store_refusals() {
        let old = r#"{"events":[],"error":"permanent store error: x","attempts":1,"first_failed_at_ms":7}"#;
        let letter: DeadLetter = serde_json::from_str(old).expect("old letter");
        assert_eq!(
            letter,
            DeadLetter::store_refused(Vec::new(), "permanent store error: x".into(), 1, 7)
        );
        let raw =
            serde_json::to_value(DeadLetter::undecodable(vec![9; 3], "e".into(), 1)).expect("json");
        assert_eq!(raw["undecodable"][0]["payload_base64"], "CQkJ");
        assert_eq!(
            raw["events"],
            serde_json::json!([]),
            "old readers still find `events`"
        );
    }
}
