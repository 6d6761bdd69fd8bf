//! The commands of `likes-pipeline`, one file each, and how they fail: a usage problem (a bad
//! argument, a missing or malformed setting) exits 2, a failure 1, drift found by a dry-run
//! reconcile 3, each with one line on stderr so scripts can tell "fix the invocation" from "retry
//! later" from "look at the counts".

mod cached_counts;
pub(crate) mod init;
pub(crate) mod reconcile;
pub(crate) mod run;
pub(crate) mod smoke;

use std::process::ExitCode;

#[derive(Debug, thiserror::Error)]
pub(crate) enum Failure {
    #[error("{0}")]
    Usage(String),
    #[error(transparent)]
    Failed(#[from] anyhow::Error),
    /// `reconcile --dry-run` found drift (exit 3, so a scheduled check can alert).
    #[error("{0} contents drifted (dry run: nothing repaired)")]
    DriftFound(u64),
}

impl From<likes_pipeline::config::MissingSetting> for Failure {
    fn from(missing: likes_pipeline::config::MissingSetting) -> Self {
        Failure::Usage(missing.to_string())
    }
}

impl Failure {
    pub(crate) fn report(self) -> ExitCode {
        match self {
            Failure::Usage(message) => {
                eprintln!("likes-pipeline: {message}");
                ExitCode::from(2)
            }
            Failure::Failed(error) => {
                eprintln!("likes-pipeline: {error:#}");
                ExitCode::from(1)
            }
            Failure::DriftFound(contents) => {
                eprintln!("likes-pipeline: {}", Failure::DriftFound(contents));
                ExitCode::from(3)
            }
        }
    }
}

/// The context of a failure to open the store: which setting, and where it points.
pub(crate) fn database_at(url: &str) -> String {
    format!(
        "database at LIKES_DATABASE_URL ({})",
        likes_shared::config::redacted_url(url)
    )
}
