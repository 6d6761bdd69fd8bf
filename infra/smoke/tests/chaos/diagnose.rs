//! What the stack's Pulsar side says when pairs never reach TiDB, printed before the test fails.
//!
//! Why: twice (stops 19 and 21) a run ended with the pairs of a few contents stuck at their
//! state from before the Pulsar stop, and the logs could not tell whether their later events
//! never reached the topic, sit there undelivered, or were delivered and acked without a
//! commit. This prints each partition's subscription as the broker sees it (backlog, cursor,
//! consumers), the workers' consumer metrics, and, for every partition holding a stuck pair,
//! the pair's events found on that partition by a reader of its own.

use crate::load::Pair;
use futures::StreamExt;
use likes_shared::LikeEvent;
use pulsar::consumer::InitialPosition;
use pulsar::{Consumer, ConsumerOptions, Pulsar, SubType, TokioExecutor};
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

const TOPIC: &str = "persistent://public/default/like-events";
const SUBSCRIPTION: &str = "likes-pipeline";
/// A partition scan ends after this long without a message, or at [`SCAN_LIMIT`].
const SCAN_QUIET: Duration = Duration::from_secs(3);
const SCAN_LIMIT: Duration = Duration::from_secs(90);

/// Prints everything above for the pairs in `stuck`; events published before `since_ms` are
/// not listed.
pub async fn report(
    admin: &str,
    pulsar_url: &str,
    workers: &[&str],
    stuck: &[Pair],
    since_ms: u64,
) {
    let partitions = partition_count(admin).await;
    println!("--- like-events: {partitions} partitions, subscription {SUBSCRIPTION}");
    for partition in 0..partitions {
        println!(
            "partition {partition}: {}",
            partition_state(admin, partition).await
        );
    }
    for worker in workers {
        println!("--- {worker}/metrics (consumer lines)");
        match metrics(worker).await {
            Ok(lines) => lines.iter().for_each(|l| println!("  {l}")),
            Err(error) => println!("  unreachable: {error}"),
        }
    }
    let mut by_partition: BTreeMap<u32, BTreeSet<Pair>> = BTreeMap::new();
    for pair in stuck {
        by_partition
            .entry(partition_of(pair.1, partitions))
            .or_default()
            .insert(*pair);
    }
    for (partition, pairs) in by_partition {
        println!("--- partition {partition}: events of the stuck pairs {pairs:?}");
        if let Err(error) = scan(pulsar_url, partition, &pairs, since_ms).await {
            println!("  scan failed: {error}");
        }
    }
}

/// The partition a content's events go to: pulsar-rs routes a keyed message by murmur3 of its
/// key, the content id in decimal.
fn partition_of(content: u64, partitions: u32) -> u32 {
    pulsar::routing_policy::RoutingPolicy::compute_partition_index_for_key(
        &content.to_string(),
        partitions.max(1) as usize,
    ) as u32
}

async fn get_json(url: &str) -> Result<serde_json::Value, String> {
    let response = reqwest::get(url).await.map_err(|e| e.to_string())?;
    let status = response.status();
    let body = response.text().await.map_err(|e| e.to_string())?;
    if !status.is_success() {
        return Err(format!("{status}: {body}"));
    }
    serde_json::from_str(&body).map_err(|e| e.to_string())
}

async fn partition_count(admin: &str) -> u32 {
    let url = format!("{admin}/admin/v2/persistent/public/default/like-events/partitions");
    get_json(&url)
        .await
        .ok()
        .and_then(|v| v["partitions"].as_u64())
        .map_or(8, |n| n as u32)
}

/// One line: messages in, the subscription's backlog and active consumer, each consumer's
/// counters, and the cursor's mark-delete and read positions against the last entry.
async fn partition_state(admin: &str, partition: u32) -> String {
    let base =
        format!("{admin}/admin/v2/persistent/public/default/like-events-partition-{partition}");
    let stats = match get_json(&format!("{base}/stats?getPreciseBacklog=true")).await {
        Ok(stats) => stats,
        Err(error) => return format!("no stats: {error}"),
    };
    let sub = &stats["subscriptions"][SUBSCRIPTION];
    let consumers: Vec<String> = sub["consumers"]
        .as_array()
        .map(|cs| {
            cs.iter()
                .map(|c| {
                    format!(
                        "{} out={} unacked={} permits={}",
                        c["consumerName"],
                        c["msgOutCounter"],
                        c["unackedMessages"],
                        c["availablePermits"]
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    let internal = get_json(&format!("{base}/internalStats"))
        .await
        .unwrap_or_default();
    let cursor = &internal["cursors"][SUBSCRIPTION];
    format!(
        "in={} backlog={} active={} consumers={consumers:?} markDelete={} read={} lastConfirmed={}",
        stats["msgInCounter"],
        sub["msgBacklog"],
        sub["activeConsumerName"],
        cursor["markDeletePosition"],
        cursor["readPosition"],
        internal["lastConfirmedEntry"],
    )
}

/// The worker's `/metrics` lines about its consumer: lag, rebuilds, passed entries.
async fn metrics(admin_url: &str) -> Result<Vec<String>, String> {
    let text = reqwest::get(format!("{admin_url}/metrics"))
        .await
        .map_err(|e| e.to_string())?
        .text()
        .await
        .map_err(|e| e.to_string())?;
    Ok(text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.contains("_bucket"))
        .filter(|l| {
            ["lag", "rebuild", "passed", "consumed", "events"]
                .iter()
                .any(|k| l.contains(k))
        })
        .map(str::to_owned)
        .collect())
}

/// Reads `partition` from its start on a subscription of its own (non-durable, so nothing is
/// left behind) and prints every event of `pairs` published since `since_ms`, with its id.
async fn scan(
    pulsar_url: &str,
    partition: u32,
    pairs: &BTreeSet<Pair>,
    since_ms: u64,
) -> Result<(), String> {
    let client: Pulsar<TokioExecutor> = Pulsar::builder(pulsar_url, TokioExecutor)
        .build()
        .await
        .map_err(|e| e.to_string())?;
    let mut consumer: Consumer<Vec<u8>, TokioExecutor> = client
        .consumer()
        .with_topic(format!("{TOPIC}-partition-{partition}"))
        .with_subscription(format!("chaos-scan-{}", std::process::id()))
        .with_subscription_type(SubType::Exclusive)
        .with_options(
            ConsumerOptions::default()
                .durable(false)
                .with_initial_position(InitialPosition::Earliest),
        )
        .build()
        .await
        .map_err(|e| e.to_string())?;
    let started = Instant::now();
    let (mut read, mut listed) = (0u64, 0u64);
    while started.elapsed() < SCAN_LIMIT {
        let message = match tokio::time::timeout(SCAN_QUIET, consumer.next()).await {
            Ok(Some(Ok(message))) => message,
            Ok(Some(Err(error))) => return Err(error.to_string()),
            Ok(None) | Err(_) => break,
        };
        read += 1;
        let publish_ms = message.metadata().publish_time;
        let id = message.message_id();
        let (ledger, entry, index) = (id.ledger_id, id.entry_id, id.batch_index.unwrap_or(-1));
        if publish_ms < since_ms {
            continue;
        }
        let Ok(event) = LikeEvent::decode(&message.payload.data) else {
            continue;
        };
        if pairs.contains(&(event.user_id.get(), event.content_id.get())) {
            listed += 1;
            println!(
                "  {ledger}:{entry}:{index} published {}ms user {} content {} {:?} version {} (~{}ms) source {}",
                publish_ms as i64 - since_ms as i64,
                event.user_id.get(),
                event.content_id.get(),
                event.action,
                event.version,
                (event.version >> 16) as i64 - since_ms as i64,
                event.source,
            );
        }
    }
    println!(
        "  read {read} messages, {listed} of the stuck pairs, in {:?}",
        started.elapsed()
    );
    let _ = consumer.close().await;
    Ok(())
}
