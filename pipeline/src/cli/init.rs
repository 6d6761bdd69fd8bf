//! `likes-pipeline init`: makes the deployment's durable parts exist, idempotently, so every
//! worker and ingest can start against them:
//! - the database schema (sqlx migrations under `sink/migrations/mysql`; several processes running
//!   init at once serialize on sqlx's migration lock);
//! - the partitioned events topic, the dead-letter topic and its `likes-dlq` subscription;
//! - the workers' subscription on the events topic, at its earliest message. Pulsar keeps a
//!   message only while some subscription has not acknowledged it: without this one, likes that
//!   ingest publishes before the first worker ever starts would be acked to the client (I3) and
//!   then dropped by the broker.

use super::Failure;
use anyhow::Context as _;
use likes_pipeline::PipelineConfig;
use likes_shared::topics::TopicName;
use likes_sink::pulsar_admin::{PulsarAdmin, DEFAULT_WAIT};

pub(crate) async fn run(config: &PipelineConfig) -> Result<(), Failure> {
    // Every setting first: a missing one is a usage error before anything is touched.
    let store = config.store()?;
    let admin_url = config.pulsar_admin_url()?;
    let admin = PulsarAdmin::new(admin_url, DEFAULT_WAIT)
        .map_err(|e| Failure::Usage(format!("LIKES_PULSAR_ADMIN_URL: {e}")))?;
    let events = TopicName::parse(&config.pulsar.topic)
        .map_err(|e| Failure::Usage(format!("LIKES_PULSAR__TOPIC: {e}")))?;

    let opened = store
        .build()
        .await
        .with_context(|| super::database_at(&store.url))?;
    println!(
        "database: migrations applied ({})",
        if opened.is_tidb() {
            "TiDB"
        } else {
            "MySQL protocol"
        }
    );

    let ensured = admin
        .ensure_topics(&config.pulsar)
        .await
        .context("Pulsar topics")?;
    let subscribed = admin
        .create_subscription(&events, &config.subscription)
        .await
        .context("the workers' subscription")?;
    let said = |created: bool| if created { "created" } else { "exists" };
    println!(
        "pulsar: {} ({} partitions) {}; subscription {} {}",
        config.pulsar.topic,
        config.pulsar.partitions,
        said(ensured.topic_created),
        config.subscription,
        said(subscribed)
    );
    println!(
        "pulsar: {} {}; subscription {} {}",
        config.pulsar.dlq_topic,
        said(ensured.dlq_topic_created),
        config.pulsar.dlq_subscription,
        said(ensured.dlq_subscription_created)
    );
    Ok(())
}
