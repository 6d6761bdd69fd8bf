//! Two workers split 8 partitions (failover: one owner each); one stops gracefully mid-stream
//! and the other takes its partitions over. The result is still exact (redelivered events are
//! no-ops, I2) and everything is acked.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_stopped_workers_partitions_move_to_the_other_and_the_result_stays_exact() {
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
    first.stop().await;
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
