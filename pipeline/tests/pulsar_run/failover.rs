//! Two workers split 8 partitions (failover: one owner each); one stops gracefully mid-stream
//! and the other takes its partitions over. The result is still exact (redelivered events are
//! no-ops, I2) and everything is acked.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_stopped_workers_partitions_move_to_the_other_and_the_result_stays_exact() {
    let _broker = BROKER.read().await;
    let started = Instant::now();
    let deployment = Deployment::new(8).await;
    let (events, model) = events(20_000, 500, 1_000, 2);
    let mut producer = deployment.producer().await;
    let first = deployment.start_worker("first").await;
    let second = deployment.start_worker("second").await;
    publish(&mut producer, &events[..8_000]).await;
    // Both own partitions: each has consumed some of the first part.
    let deadline = Instant::now() + Duration::from_secs(30);
    while first.events() == 0 || second.events() == 0 || first.events() + second.events() < 4_000 {
        assert!(
            Instant::now() < deadline,
            "both workers should consume: {} and {}",
            first.events(),
            second.events()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Stop one mid-stream, with events of its partitions still coming.
    let publishing = {
        let rest = events[8_000..].to_vec();
        tokio::spawn(async move {
            publish(&mut producer, &rest).await;
            producer
        })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    let stopped_after = first.events();
    let stopping = Instant::now();
    first.stop().await;
    eprintln!(
        "failover: the first worker stopped in {:?}",
        stopping.elapsed()
    );
    publishing.await.expect("publisher");
    deployment.wait_exact(&model, Duration::from_secs(45)).await;
    eprintln!(
        "failover: first consumed {stopped_after} before stopping, second {}",
        second.events()
    );
    assert!(second.events() > 0);
    second.stop().await;
    assert_eq!(deployment.wait_acked(Duration::from_secs(10)).await, 0);
    eprintln!("failover: exact and fully acked in {:?}", started.elapsed());
    deployment.delete().await;
}

/// A worker that dies mid-window (its task aborted: no commit of the open window, no acks, no
/// close) loses nothing: what it had not acked goes to the other worker. Acking a batch entry
/// through a window's cut would lose the entry's tail here.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_worker_that_dies_mid_window_loses_nothing() {
    let _broker = BROKER.read().await;
    let started = Instant::now();
    let deployment = Deployment::new(8).await;
    let (events, model) = events(20_000, 500, 1_000, 4);
    let mut producer = deployment.producer().await;
    let doomed = deployment.start_worker("doomed").await;
    let survivor = deployment.start_worker("survivor").await;
    let publishing = {
        let events = events.clone();
        tokio::spawn(async move { publish(&mut producer, &events).await })
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while doomed.events() < 3_000 {
        assert!(Instant::now() < deadline, "the doomed worker consumes");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    doomed.task.abort();
    publishing.await.expect("publisher");
    deployment.wait_exact(&model, Duration::from_secs(45)).await;
    survivor.stop().await;
    assert_eq!(deployment.wait_acked(Duration::from_secs(10)).await, 0);
    eprintln!("crash: exact and fully acked in {:?}", started.elapsed());
    deployment.delete().await;
}

/// The broker unloads the topic mid-stream (what a broker restart or a bundle move does to a
/// consumer: closed by the broker, re-looked-up, re-subscribed). The worker resumes on its own,
/// by pulsar-rs' reconnect or by the stall watch's rebuild, and the result is exact.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_worker_resumes_after_the_broker_unloads_its_topic() {
    let _broker = BROKER.read().await;
    let started = Instant::now();
    let mut deployment = Deployment::new(4).await;
    deployment.config.stall_after_ms = 2_000;
    let (events, model) = events(10_000, 300, 600, 6);
    let mut producer = deployment.producer().await;
    let worker = deployment.start_worker("unloaded").await;
    publish(&mut producer, &events[..5_000]).await;
    let unload = format!(
        "{}/admin/v2/persistent/public/default/{}/unload",
        deployment.config.pulsar_admin_url, deployment.config.pulsar.topic
    );
    let answer = reqwest::Client::new()
        .put(&unload)
        .send()
        .await
        .expect("unload");
    assert!(answer.status().is_success(), "{:?}", answer.status());
    publish(&mut producer, &events[5_000..]).await;
    deployment.wait_exact(&model, Duration::from_secs(45)).await;
    worker.stop().await;
    assert_eq!(deployment.wait_acked(Duration::from_secs(10)).await, 0);
    deployment.delete().await;
    eprintln!("unload: exact and fully acked in {:?}", started.elapsed());
}
