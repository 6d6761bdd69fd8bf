//! The stall watch, on a real stall: a "ghost" consumer that holds the worker's own name and
//! never reads is made the active consumer of some partitions (failover assigns partitions over
//! the consumers sorted by name, so the two same-named consumers share them). Those partitions
//! have a backlog, the broker names "this worker" their active consumer, and nothing arrives:
//! the watch must rebuild the consumer. Once the ghost is gone the worker gets the partitions
//! and the result is exact.

use super::*;
use pulsar::{Consumer, ConsumerOptions, SubType};
use std::sync::atomic::Ordering::Relaxed;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_partition_that_delivers_nothing_despite_a_backlog_gets_the_consumer_rebuilt() {
    let _broker = BROKER.read().await;
    let started = Instant::now();
    let mut deployment = Deployment::new(4).await;
    deployment.config.stall_after_ms = 1_000;
    let name = unique_name("stalled");
    let ghost: Consumer<Vec<u8>, TokioExecutor> = deployment
        .client
        .consumer()
        .with_topic(&deployment.config.pulsar.topic)
        .with_subscription(SUBSCRIPTION)
        .with_subscription_type(SubType::Failover)
        .with_consumer_name(&name)
        .with_batch_size(1)
        .with_options(ConsumerOptions::default().with_receiver_queue_size(1))
        .build()
        .await
        .expect("ghost consumer");
    let (events, model) = events(4_000, 100, 300, 7);
    let mut producer = deployment.producer().await;
    publish(&mut producer, &events).await;
    let worker = deployment.start_worker_named(name).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while worker.rebuilds.load(Relaxed) == 0 {
        assert!(
            Instant::now() < deadline,
            "no rebuild while partitions with a backlog delivered nothing"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Dropped, not closed: its receiver queue is full, and pulsar-rs handles a close in the
    // task that waits for the queue (what `PulsarSource::close` drains first).
    drop(ghost);
    deployment.wait_exact(&model, Duration::from_secs(45)).await;
    let rebuilds = worker.rebuilds.load(Relaxed);
    worker.stop().await;
    assert_eq!(deployment.wait_acked(Duration::from_secs(10)).await, 0);
    deployment.delete().await;
    eprintln!(
        "stall: rebuilt {rebuilds} times, exact and fully acked in {:?}",
        started.elapsed()
    );
}
