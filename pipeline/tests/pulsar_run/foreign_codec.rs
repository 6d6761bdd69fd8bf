//! Entries the workers' client cannot unpack. Pulsar's Java client (a foreign producer, run by
//! `infra/dev/services pulsar-java`) writes Snappy-compressed entries; pulsar-rs is built with
//! LZ4 only, so its consumer errors on them and never hands them to the worker. The broker can
//! unpack them: the events among them must still apply, what is not an event must reach the
//! dead-letter topic, and the partition must keep flowing past them.

use super::*;
use likes_sink::dead_letter::DeadLetterKind;
use likes_sink::dlq::topic::{TopicDlq, TopicDlqConfig};
use std::path::Path;
use std::process::Command;
use std::sync::atomic::Ordering::Relaxed;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn entries_the_client_cannot_unpack_still_apply_or_are_dead_lettered() {
    let _broker = BROKER.read().await;
    let started = Instant::now();
    let mut deployment = Deployment::new(2).await;
    deployment.config.stall_after_ms = 1_000;
    let (events, mut model) = events(4_000, 50, 200, 11);
    let worker = deployment.start_worker("foreign").await;
    let mut producer = deployment.producer().await;
    publish(&mut producer, &events[..2_000]).await;

    // One Snappy batch of three likes of content 1, then one Snappy message that is no event.
    let foreign: Vec<LikeEvent> = (0..3)
        .map(|i| LikeEvent {
            event_id: 0xf0_0000 + u128::from(i),
            user_id: UserId::new(9_001 + i).expect("non-zero"),
            content_id: ContentId::new(1).expect("non-zero"),
            action: Action::Like,
            version: 1_000_000 + i,
            ts_ms: 1_795_581_690_000,
            source: "java-client".into(),
            fill_epoch: 0,
        })
        .collect();
    for event in &foreign {
        let key = (event.user_id.get(), event.content_id.get());
        model.latest.insert(key, (event.version, true));
    }
    let garbage = b"\xfesnappy, and not an event".to_vec();
    let topic = &deployment.config.pulsar.topic;
    let encoded: Vec<Vec<u8>> = foreign.iter().map(LikeEvent::encode).collect();
    java_produce(topic, "SNAPPY", "1", &encoded);
    java_produce(topic, "SNAPPY", "1", std::slice::from_ref(&garbage));
    publish(&mut producer, &events[2_000..]).await;

    deployment.wait_exact(&model, Duration::from_secs(60)).await;
    assert_eq!(worker.stats.dead_letters.load(Relaxed), 1);
    // At least the two Snappy entries (a slow start may pass a healthy entry too, harmlessly).
    assert!(worker.passed_entries.load(Relaxed) >= 2);
    worker.stop().await;
    assert_eq!(deployment.wait_acked(Duration::from_secs(10)).await, 0);

    let dlq = TopicDlq::connect(&TopicDlqConfig {
        pulsar_url: deployment.config.pulsar_url.clone(),
        admin_url: deployment.config.pulsar_admin_url.clone(),
        topics: deployment.config.pulsar.clone(),
        wait: Duration::from_secs(10),
    })
    .await
    .expect("dead-letter topic");
    let backlog = dlq.letters().await.expect("letters");
    assert_eq!(backlog.letters.len(), 1, "{backlog:?}");
    let letter = &backlog.letters[0].letter;
    assert_eq!(letter.kind, DeadLetterKind::Undecodable);
    assert_eq!(letter.undecodable[0].payload, garbage);
    eprintln!(
        "foreign codec: events applied, garbage dead-lettered, exact in {:?}",
        started.elapsed()
    );
    deployment.delete().await;
}

/// Publishes `payloads` with `key` through the Java client, compressed with `compression`, in
/// one batch entry; returns once the broker acked them.
fn java_produce(topic: &str, compression: &str, key: &str, payloads: &[Vec<u8>]) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let hex = payloads
        .iter()
        .map(|p| p.iter().map(|b| format!("{b:02x}")).collect::<String>());
    let output = Command::new(root.join("infra/dev/services"))
        .arg("pulsar-java")
        .arg(root.join("infra/dev/pulsar/ForeignProducer.java"))
        .arg(ServicesEnv::load().get("LIKES_PULSAR_URL"))
        .args([topic, compression, key])
        .args(hex)
        .output()
        .expect("infra/dev/services runs");
    assert!(
        output.status.success(),
        "the Java producer failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}
