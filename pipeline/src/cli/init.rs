//! `likes-pipeline init`: makes the deployment's durable parts exist, idempotently, so every
//! worker and ingest can start against them: the database schema (sqlx migrations under
//! `sink/migrations/mysql`; several processes running init at once serialize on sqlx's
//! migration lock).

use super::Failure;
use anyhow::Context as _;
use likes_pipeline::PipelineConfig;

pub(crate) async fn run(config: &PipelineConfig) -> Result<(), Failure> {
    let store = config.store()?;
    let opened = store
        .build()
        .await
        .with_context(|| format!("database at LIKES_DATABASE_URL ({})", redacted(&store.url)))?;
    println!(
        "database: migrations applied ({})",
        if opened.is_tidb() {
            "TiDB"
        } else {
            "MySQL protocol"
        }
    );
    Ok(())
}

/// The URL without its password, for messages.
pub(crate) fn redacted(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let credentials = &url[scheme + 3..at];
            let user = credentials.split(':').next().unwrap_or_default();
            format!("{}{user}:***{}", &url[..scheme + 3], &url[at..])
        }
        _ => url.to_string(),
    }
}
