//! [`SpoolConfig`]: where the spool lives, how large it may grow and how it drains.

use likes_shared::log::LogConfig;
use likes_shared::retry::Backoff;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SpoolConfig {
    /// Directory of the spool's log (its segments and drain offset), under `LIKES_DATA_DIR`.
    /// One process at a time: the log locks it.
    pub dir: PathBuf,
    /// Spooling is refused (503) while the spool's files hold more than this many bytes. Whole
    /// segments count, and the newest segment stays on disk even once drained (segments are
    /// therefore kept to at most a quarter of this).
    pub max_bytes: u64,
    /// A spool segment is closed once it holds this many bytes; drained segments are deleted.
    pub segment_bytes: u64,
    /// Spool appends waiting for the log's writer; past it, spooling answers 503.
    pub queue_capacity: usize,
    /// Spooled events the drainer has published and not yet seen acked, at most. The drain has
    /// to outpace new events (they queue behind it), so this is large; keep it below the
    /// primary's own in-flight bound (`PulsarPublisherConfig::max_in_flight`).
    pub drain_in_flight: usize,
    /// The drainer's wait between attempts while the primary refuses (full jitter, capped).
    pub retry: Backoff,
}

impl Default for SpoolConfig {
    fn default() -> Self {
        SpoolConfig {
            dir: PathBuf::from("data/spool"),
            max_bytes: 1 << 30,
            segment_bytes: 16 << 20,
            queue_capacity: 16_384,
            drain_in_flight: 1_024,
            retry: Backoff {
                initial_ms: 100,
                max_ms: 5_000,
            },
        }
    }
}

impl SpoolConfig {
    /// The embedded log's settings for this spool. A segment is at most a quarter of
    /// `max_bytes`: the newest segment is never deleted, drained or not, and must not hold the
    /// spool at its budget once everything in it is drained.
    pub fn log_config(&self) -> LogConfig {
        let defaults = LogConfig::default();
        LogConfig {
            dir: self.dir.clone(),
            segment_bytes: self.segment_bytes.min(self.max_bytes / 4).max(1),
            max_bytes: self.max_bytes,
            queue_capacity: self.queue_capacity.max(1),
            max_batch: defaults.max_batch,
        }
    }

    /// `drain_in_flight`, at least one.
    pub fn drain_window(&self) -> usize {
        self.drain_in_flight.max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_fields_are_refused_and_missing_ones_default() {
        let config: SpoolConfig =
            serde_json::from_str(r#"{"dir": "/tmp/s", "max_bytes": 10}"#).expect("parses");
        assert_eq!(config.dir, PathBuf::from("/tmp/s"));
        assert_eq!(config.max_bytes, 10);
        assert_eq!(
            config.drain_in_flight,
            SpoolConfig::default().drain_in_flight
        );
        assert!(serde_json::from_str::<SpoolConfig>(r#"{"max_byte": 10}"#).is_err());
    }

    #[test]
    fn a_segment_is_at_most_a_quarter_of_the_budget() {
        let small = SpoolConfig {
            max_bytes: 1_000,
            ..SpoolConfig::default()
        };
        assert_eq!(small.log_config().segment_bytes, 250);
        let default = SpoolConfig::default();
        assert_eq!(default.log_config().segment_bytes, default.segment_bytes);
    }
}
