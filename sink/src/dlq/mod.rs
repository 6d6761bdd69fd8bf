//! What `likes-dlq` does to the embedded dead letters (`<data_dir>/dead-letters.jsonl`):
//! summarize them, replay them into the embedded log (`<data_dir>/log`), purge old ones.
//!
//! Replay appends each letter's original events to the log, where the pipeline applies them
//! again the next time `likes` runs; that is safe because the sink skips equal and older
//! versions (I2, I4). A letter leaves the file only after all its events are durable in the log,
//! and the file is rewritten atomically, so a crash mid-replay at worst replays a letter twice.
//!
//! Replay and purge rewrite the file that a running `likes` appends to, and replay appends to a
//! log that one process owns at a time, so both first take the log's exclusive lock: they work
//! while `likes` is stopped, and say so when it is not.
//!
//! The distributed deployment's letters are on a topic instead; `topic` (feature `pulsar`) does
//! the same four things there. [`Failure`] sorts the errors of both into the exit codes scripts
//! can rely on.

#[cfg(feature = "pulsar")]
pub mod topic;
#[cfg(feature = "pulsar")]
mod topic_reader;

use crate::dead_letter::{DeadLetter, DeadLetterError, DeadLetterKind, FileDeadLetters};
use likes_shared::log::{self, LogConfig, LogPublisher, LogSource};
use likes_shared::topics::TopicsConfig;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

/// `likes-dlq`'s settings. Unknown keys are accepted on purpose: the one `LIKES_*` environment
/// configures every binary, and this one needs only a few of its keys.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct DlqConfig {
    /// The all-in-one's data dir (`LIKES_DATA_DIR`): dead letters and the log live there.
    pub data_dir: PathBuf,
    /// Bytes the log may hold; replay stops with an error past it (`LIKES_LOG_MAX_BYTES`).
    pub log_max_bytes: u64,
    /// The broker (`LIKES_PULSAR_URL`). When set, `likes-dlq` works on the dead-letter topic
    /// instead of the file (`--file` says otherwise).
    pub pulsar_url: Option<String>,
    /// The broker's admin REST API (`LIKES_PULSAR_ADMIN_URL`): topic checks and backlogs.
    pub pulsar_admin_url: Option<String>,
    /// Topic and subscription names (`LIKES_PULSAR__TOPIC`, `LIKES_PULSAR__DLQ_TOPIC`, ...).
    pub pulsar: TopicsConfig,
    /// Seconds any one wait on the broker may take (`LIKES_PULSAR_WAIT_SECS`).
    pub pulsar_wait_secs: u64,
}

impl Default for DlqConfig {
    fn default() -> Self {
        DlqConfig {
            data_dir: PathBuf::from("data"),
            log_max_bytes: LogConfig::default().max_bytes,
            pulsar_url: None,
            pulsar_admin_url: None,
            pulsar: TopicsConfig::default(),
            pulsar_wait_secs: 10,
        }
    }
}

impl DlqConfig {
    pub fn letters(&self) -> FileDeadLetters {
        FileDeadLetters::new(self.data_dir.join("dead-letters.jsonl"))
    }

    fn log(&self) -> LogConfig {
        LogConfig {
            dir: self.data_dir.join("log"),
            max_bytes: self.log_max_bytes,
            ..LogConfig::default()
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DlqError {
    #[error(transparent)]
    Letters(#[from] DeadLetterError),
    #[error(
        "the log at {0} is in use, most likely by a running `likes`: stop it first \
         (replay and purge work on a stopped service)"
    )]
    LogInUse(PathBuf),
    #[error("cannot open the log at {dir}: {source}")]
    Log {
        dir: PathBuf,
        source: std::io::Error,
    },
    #[error("appending to the log failed after {appended} of {total} events (no letter was removed): {source}")]
    Append {
        appended: usize,
        total: usize,
        source: likes_shared::bus::BusError,
    },
    #[error("bad duration `{0}`: expected a number and a unit, e.g. 90s, 30m, 12h, 7d")]
    Duration(String),
}

/// How a `likes-dlq` command failed, for scripts: each has its own exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// Anything else: I/O, a replay that stopped part way, a refused publish.
    Other,
    /// A bad argument or setting: usage, an unknown KIND, a bad DUR, no letter N, a bad topic
    /// name, a missing required URL.
    BadArgument,
    /// The broker or its admin API cannot be reached, or its URL is malformed.
    Unreachable,
    /// The dead-letter topic (or, for replay, the events topic) does not exist.
    MissingTopic,
    /// Someone else holds what the command needs: a running `likes` owns the log, or another
    /// `likes-dlq` holds the exclusive subscription.
    Busy,
}

impl Failure {
    /// The process exit code; documented in `likes-dlq --help` and the README.
    pub fn exit_code(self) -> u8 {
        match self {
            Failure::Other => 1,
            Failure::BadArgument => 2,
            Failure::Unreachable => 3,
            Failure::MissingTopic => 4,
            Failure::Busy => 5,
        }
    }
}

impl DlqError {
    pub fn failure(&self) -> Failure {
        match self {
            DlqError::Duration(_) => Failure::BadArgument,
            DlqError::LogInUse(_) => Failure::Busy,
            DlqError::Letters(_) | DlqError::Log { .. } | DlqError::Append { .. } => Failure::Other,
        }
    }
}

/// What `likes-dlq list` reports.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Summary {
    pub letters: usize,
    pub events: usize,
    pub undecodable_records: usize,
    pub oldest_first_failed_at_ms: Option<u64>,
    pub kinds: BTreeMap<DeadLetterKind, usize>,
}

pub fn summarize(letters: &[DeadLetter]) -> Summary {
    let mut summary = Summary {
        letters: letters.len(),
        ..Summary::default()
    };
    for letter in letters {
        summary.events += letter.events.len();
        summary.undecodable_records += letter.undecodable.len();
        *summary.kinds.entry(letter.kind).or_default() += 1;
        let oldest = summary.oldest_first_failed_at_ms.get_or_insert(u64::MAX);
        *oldest = (*oldest).min(letter.first_failed_at_ms);
    }
    summary
}

/// What a replay did (or, dry, would do).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ReplayReport {
    pub letters: usize,
    pub events: usize,
    /// Letters left in the file: not selected, or undecodable (replaying raw bytes that do not
    /// decode would only dead-letter them again).
    pub kept: usize,
}

/// Replays the store-refused letters (only those of `kind`, when given) into the log.
pub async fn replay(
    config: &DlqConfig,
    kind: Option<DeadLetterKind>,
    dry_run: bool,
) -> Result<ReplayReport, DlqError> {
    let letters = config.letters();
    // The lock first: once held, no `likes` appends letters behind this rewrite's back.
    let owned = if dry_run {
        None
    } else {
        Some(open_log(config)?)
    };
    let (chosen, kept): (Vec<DeadLetter>, Vec<DeadLetter>) = letters
        .read_all()?
        .into_iter()
        .partition(|letter| replayable(letter, kind));
    let report = ReplayReport {
        letters: chosen.len(),
        events: chosen.iter().map(|l| l.events.len()).sum(),
        kept: kept.len(),
    };
    let Some((publisher, _source)) = owned else {
        return Ok(report);
    };
    if chosen.is_empty() {
        return Ok(report);
    }
    let payloads: Vec<Vec<u8>> = chosen
        .iter()
        .flat_map(|letter| letter.events.iter().map(|event| event.encode()))
        .collect();
    append_all(&publisher, payloads).await?;
    letters.rewrite(&kept)?;
    Ok(report)
}

/// Whether replay (of `kind`, or of every kind) takes `letter`: only store refusals are, as
/// replaying raw bytes that do not decode would only dead-letter them again.
fn replayable(letter: &DeadLetter, kind: Option<DeadLetterKind>) -> bool {
    letter.kind == DeadLetterKind::StoreRefused && kind.is_none_or(|k| k == letter.kind)
}

/// Letters that first failed before this are older than `older_than` at `now_ms`.
fn purge_cutoff_ms(older_than: Duration, now_ms: u64) -> u64 {
    now_ms.saturating_sub(u64::try_from(older_than.as_millis()).unwrap_or(u64::MAX))
}

/// Appends in bounded groups, far below the log's queue capacity; each append resolves once
/// fsynced, so when this returns every payload is durable.
async fn append_all(publisher: &LogPublisher, payloads: Vec<Vec<u8>>) -> Result<(), DlqError> {
    const IN_FLIGHT: usize = 1_024;
    let total = payloads.len();
    let mut appended = 0;
    let mut payloads = payloads.into_iter().peekable();
    while payloads.peek().is_some() {
        let group: Vec<_> = payloads
            .by_ref()
            .take(IN_FLIGHT)
            .map(|payload| publisher.append(payload))
            .collect();
        let size = group.len();
        futures::future::try_join_all(group)
            .await
            .map_err(|source| DlqError::Append {
                appended,
                total,
                source,
            })?;
        appended += size;
    }
    Ok(())
}

/// Removes letters that first failed before `now_ms - older_than`; returns how many.
pub async fn purge(
    config: &DlqConfig,
    older_than: Duration,
    now_ms: u64,
) -> Result<usize, DlqError> {
    let _owned = open_log(config)?;
    let letters = config.letters();
    let cutoff = purge_cutoff_ms(older_than, now_ms);
    let all = letters.read_all()?;
    let before = all.len();
    let kept: Vec<DeadLetter> = all
        .into_iter()
        .filter(|letter| letter.first_failed_at_ms >= cutoff)
        .collect();
    if kept.len() < before {
        letters.rewrite(&kept)?;
    }
    Ok(before - kept.len())
}

fn open_log(config: &DlqConfig) -> Result<(LogPublisher, LogSource), DlqError> {
    let log = config.log();
    log::open(&log).map_err(|source| {
        if source.kind() == std::io::ErrorKind::WouldBlock {
            DlqError::LogInUse(log.dir)
        } else {
            DlqError::Log {
                dir: log.dir,
                source,
            }
        }
    })
}

/// `90s`, `30m`, `12h`, `7d`.
pub fn parse_duration(text: &str) -> Result<Duration, DlqError> {
    let bad = || DlqError::Duration(text.to_owned());
    let digits = text.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    let amount: u64 = digits.parse().map_err(|_| bad())?;
    let unit_secs = match &text[digits.len()..] {
        "s" => 1,
        "m" => 60,
        "h" => 3_600,
        "d" => 86_400,
        _ => return Err(bad()),
    };
    amount
        .checked_mul(unit_secs)
        .map(Duration::from_secs)
        .ok_or_else(bad)
}

/// `ms` since the Unix epoch as `YYYY-MM-DDTHH:MM:SS.mmmZ`.
pub fn format_utc(ms: u64) -> String {
    let mut out = String::with_capacity(24);
    // Writing to a String cannot fail.
    let _ = crate::utc::Civil::from_unix_ms(ms).write(&mut out, 'T');
    out.push('Z');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_times_read_and_print_as_documented() {
        assert_eq!(parse_duration("90s").ok(), Some(Duration::from_secs(90)));
        assert_eq!(
            parse_duration("7d").ok(),
            Some(Duration::from_secs(604_800))
        );
        assert!(parse_duration("7").is_err());
        assert!(parse_duration("d").is_err());
        assert!(parse_duration("3w").is_err());
        assert_eq!(format_utc(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(format_utc(1_700_000_000_123), "2023-11-14T22:13:20.123Z");
        assert_eq!(format_utc(951_782_400_000), "2000-02-29T00:00:00.000Z");
    }
}
