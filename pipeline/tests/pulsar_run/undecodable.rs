//! A payload that is not a like event (a foreign producer, a newer schema) is dead-lettered with
//! its bytes and acked in its place; the events around it, on its partition too, still commit.

use super::*;
use likes_sink::dead_letter::DeadLetterKind;
use likes_sink::dlq::topic::{TopicDlq, TopicDlqConfig};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn garbage_goes_to_the_dead_letter_topic_and_the_partition_keeps_flowing() {
    let _broker = BROKER.read().await;
    let started = Instant::now();
    let deployment = Deployment::new(2).await;
    let (events, model) = events(4_000, 50, 200, 3);
    let mut producer = deployment.producer().await;
    let worker = deployment.start_worker("poison").await;
    publish(&mut producer, &events[..2_000]).await;
    // Keyed like an event of content 1, so it sits in a partition among real events.
    let garbage = b"\xffnot a like event".to_vec();
    producer
        .create_message()
        .with_key("1")
        .with_content(garbage.clone())
        .send_non_blocking()
        .await
        .expect("enqueued")
        .await
        .expect("published");
    publish(&mut producer, &events[2_000..]).await;
    deployment.wait_exact(&model, Duration::from_secs(45)).await;
    assert_eq!(
        worker
            .stats
            .dead_letters
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );
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
        "undecodable: dead-lettered, rest exact, in {:?}",
        started.elapsed()
    );
    deployment.delete().await;
}
