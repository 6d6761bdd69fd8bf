//! One worker owns every partition: all events commit exactly, and after a graceful stop the
//! subscription holds nothing unacked (the acks reached the broker, batched entries included).

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_worker_commits_every_event_exactly_and_acks_them_all() {
    let started = Instant::now();
    let deployment = Deployment::new(4).await;
    let (events, model) = events(20_000, 500, 1_000, 1);
    let mut producer = deployment.producer().await;
    // Half before the worker starts (a backlog), half while it runs.
    publish(&mut producer, &events[..10_000]).await;
    let worker = deployment.start_worker("one").await;
    publish(&mut producer, &events[10_000..]).await;
    deployment.wait_exact(&model, Duration::from_secs(45)).await;
    assert!(
        worker.events() >= events.len() as u64,
        "{}",
        worker.events()
    );
    worker.stop().await;
    assert_eq!(deployment.wait_acked(Duration::from_secs(10)).await, 0);
    eprintln!(
        "one worker: exact and fully acked in {:?}",
        started.elapsed()
    );
}
