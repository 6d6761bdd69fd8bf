//! The worker loop against scripted backends: acks only after a commit, retries transient store
//! errors, dead-letters only the changes the store refuses for good (the good events around them
//! commit) and goes on, and stops without acking on shutdown.
//!
//! Every test runs on tokio's paused clock: backoff sleeps, the polling below and the timeouts
//! advance virtual time only, so nothing here waits in real time.
//!
//! `scripted.rs` holds the backends; `poison.rs` the tests of a window the store refuses.

mod poison;
mod scripted;

use likes_shared::bus::Received;
use likes_sink::dead_letter::DeadLetterKind;
use scripted::{delivery, harness, shut_down_during_retries, Script};
use std::sync::atomic::Ordering::Relaxed;

#[tokio::test(start_paused = true)]
async fn transient_errors_are_retried_and_acks_follow_the_commit() {
    let h = harness(Script {
        deliveries: (1..=5).map(|n| delivery(n, 1)).collect(),
        transient_calls: 0..3,
        ..Script::default()
    });
    let stats = h.worker.stats();
    let (_trigger, shutdown) = likes_shared::shutdown::channel();
    h.worker.run(shutdown).await.expect("worker");
    assert_eq!(*h.acked.lock(), vec![1, 2, 3, 4, 5]);
    let committed: Vec<usize> = h.store.committed.lock().iter().map(Vec::len).collect();
    assert_eq!(
        committed,
        vec![2, 2, 1],
        "windows of two, the last closed at end of input"
    );
    assert_eq!(stats.retries.load(Relaxed), 3);
    assert!(
        h.letters.0.lock().is_empty(),
        "a transient error never dead-letters"
    );
}

#[tokio::test(start_paused = true)]
async fn shutdown_during_retries_acks_nothing() {
    let h = harness(Script {
        deliveries: vec![delivery(1, 1), delivery(2, 1)],
        stay_open: true,
        transient_calls: 0..usize::MAX,
        ..Script::default()
    });
    shut_down_during_retries(h.worker).await;
    assert!(
        h.acked.lock().is_empty(),
        "an uncommitted window is never acked; it comes back after restart"
    );
    assert!(h.letters.0.lock().is_empty());
}

#[tokio::test(start_paused = true)]
async fn an_undecodable_record_is_dead_lettered_after_the_window_before_it_commits() {
    let unreadable = Received::decode(vec![9; 60], 2, 0);
    assert!(matches!(unreadable, Received::Undecodable(_)));
    let deliveries = vec![delivery(1, 1), unreadable, delivery(3, 1), delivery(4, 1)];
    let h = harness(Script {
        deliveries,
        ..Script::default()
    });
    let (_trigger, shutdown) = likes_shared::shutdown::channel();
    h.worker.run(shutdown).await.expect("worker");
    let committed: Vec<Vec<u64>> = h
        .store
        .committed
        .lock()
        .iter()
        .map(|w| w.iter().map(|c| c.user_id.get()).collect())
        .collect();
    assert_eq!(
        committed,
        vec![vec![1], vec![3, 4]],
        "the open window closes before the record"
    );
    assert_eq!(
        *h.acked.lock(),
        vec![1, 2, 3, 4],
        "acks stay in delivery order"
    );
    let letters = h.letters.0.lock().clone();
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0].kind, DeadLetterKind::Undecodable);
    assert!(letters[0].events.is_empty());
    assert_eq!(letters[0].undecodable[0].payload, vec![9; 60]);
    assert!(
        letters[0].error.contains("schema version 9"),
        "{}",
        letters[0].error
    );
}
