//! The worker loop against scripted backends: acks only after a commit, retries transient store
//! errors, dead-letters permanent ones and goes on, and stops without acking on shutdown.
//!
//! Every test runs on tokio's paused clock: backoff sleeps, the polling below and the timeouts
//! advance virtual time only, so nothing here waits in real time.

use async_trait::async_trait;
use likes_pipeline::operators::WindowConfig;
use likes_pipeline::{Worker, WorkerConfig};
use likes_shared::bus::{BusError, Delivery, EventSource, Received};
use likes_shared::retry::Backoff;
use likes_shared::store::{
    ApplyOutcome, HistoryCursor, LikeChange, LikeStore, LikedItem, RowState, StoreError,
};
use likes_shared::trending::MemoryTrendingBoard;
use likes_shared::{Action, ContentId, LikeEvent, UserId};
use likes_sink::dead_letter::{DeadLetter, DeadLetterError, DeadLetterKind, DeadLetterPublisher};
use parking_lot::Mutex;
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

fn delivery(n: u64, content: u64) -> Received<u64> {
    let event = LikeEvent {
        event_id: u128::from(n),
        user_id: UserId::new(n).expect("non-zero"),
        content_id: ContentId::new(content).expect("non-zero"),
        action: Action::Like,
        version: n,
        ts_ms: n,
        source: "test".into(),
    };
    Received::Event(Delivery {
        event,
        ack: n,
        partition: 0,
    })
}

/// Hands out its deliveries, then either closes or stays open (waiting forever).
struct ScriptedSource {
    pending: VecDeque<Received<u64>>,
    close_when_empty: bool,
    acked: Arc<Mutex<Vec<u64>>>,
}

#[async_trait]
impl EventSource for ScriptedSource {
    type Ack = u64;

    async fn recv(&mut self) -> Result<Option<Received<u64>>, BusError> {
        match self.pending.pop_front() {
            Some(d) => Ok(Some(d)),
            None if self.close_when_empty => Ok(None),
            None => std::future::pending().await,
        }
    }

    async fn ack(&mut self, acks: Vec<u64>) -> Result<(), BusError> {
        self.acked.lock().extend(acks);
        Ok(())
    }
}

/// Fails as told, records each committed window and what was acked when it was applied.
struct ScriptedStore {
    transient_failures: Mutex<u32>,
    permanent_for_content: Option<u64>,
    acked: Arc<Mutex<Vec<u64>>>,
    committed: Mutex<Vec<Vec<LikeChange>>>,
}

#[async_trait]
impl LikeStore for ScriptedStore {
    async fn apply_window(&self, changes: &[LikeChange]) -> Result<ApplyOutcome, StoreError> {
        let users: Vec<u64> = changes.iter().map(|c| c.user_id.get()).collect();
        let acked = self.acked.lock().clone();
        assert!(
            users.iter().all(|u| !acked.contains(u)),
            "acked {acked:?} before committing {users:?}"
        );
        {
            let mut left = self.transient_failures.lock();
            if *left > 0 {
                *left -= 1;
                return Err(StoreError::Transient("connection reset".into()));
            }
        }
        if changes
            .iter()
            .any(|c| Some(c.content_id.get()) == self.permanent_for_content)
        {
            return Err(StoreError::Permanent("value out of range".into()));
        }
        self.committed.lock().push(changes.to_vec());
        Ok(ApplyOutcome {
            rows_written: changes.len(),
            count_deltas: Vec::new(),
        })
    }

    async fn counts(&self, contents: &[ContentId]) -> Result<Vec<i64>, StoreError> {
        Ok(vec![0; contents.len()])
    }

    async fn states(
        &self,
        _: UserId,
        contents: &[ContentId],
    ) -> Result<Vec<Option<RowState>>, StoreError> {
        Ok(vec![None; contents.len()])
    }

    async fn user_rows(
        &self,
        _: UserId,
        _: usize,
    ) -> Result<Vec<(ContentId, RowState)>, StoreError> {
        Ok(Vec::new())
    }

    async fn history(
        &self,
        _: UserId,
        _: Option<HistoryCursor>,
        _: usize,
    ) -> Result<Vec<LikedItem>, StoreError> {
        Ok(Vec::new())
    }

    async fn ping(&self) -> Result<(), StoreError> {
        Ok(())
    }
}

#[derive(Default)]
struct CollectedLetters(Mutex<Vec<DeadLetter>>);

#[async_trait]
impl DeadLetterPublisher for CollectedLetters {
    async fn publish(&self, letter: &DeadLetter) -> Result<(), DeadLetterError> {
        self.0.lock().push(letter.clone());
        Ok(())
    }
}

struct Harness {
    acked: Arc<Mutex<Vec<u64>>>,
    store: Arc<ScriptedStore>,
    letters: Arc<CollectedLetters>,
    worker: Worker<ScriptedSource>,
}

fn harness(
    deliveries: Vec<Received<u64>>,
    close: bool,
    transient: u32,
    permanent: Option<u64>,
) -> Harness {
    let acked = Arc::new(Mutex::new(Vec::new()));
    let source = ScriptedSource {
        pending: deliveries.into(),
        close_when_empty: close,
        acked: acked.clone(),
    };
    let store = Arc::new(ScriptedStore {
        transient_failures: Mutex::new(transient),
        permanent_for_content: permanent,
        acked: acked.clone(),
        committed: Mutex::new(Vec::new()),
    });
    let letters = Arc::new(CollectedLetters::default());
    let config = WorkerConfig {
        window: WindowConfig {
            max_events: 2,
            max_age: Duration::from_secs(3600),
        },
        backoff: Backoff {
            initial_ms: 1,
            max_ms: 5,
        },
        ..WorkerConfig::default()
    };
    let worker = Worker::new(
        source,
        store.clone(),
        Arc::new(MemoryTrendingBoard::default()),
        letters.clone(),
        config,
    );
    Harness {
        acked,
        store,
        letters,
        worker,
    }
}

#[tokio::test(start_paused = true)]
async fn transient_errors_are_retried_and_acks_follow_the_commit() {
    let h = harness((1..=5).map(|n| delivery(n, 1)).collect(), true, 3, None);
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
    assert_eq!(stats.retries.load(std::sync::atomic::Ordering::Relaxed), 3);
    assert!(
        h.letters.0.lock().is_empty(),
        "a transient error never dead-letters"
    );
}

#[tokio::test(start_paused = true)]
async fn a_permanent_error_dead_letters_its_window_and_the_stream_goes_on() {
    let deliveries = vec![
        delivery(1, 1),
        delivery(2, 1),
        delivery(3, 13),
        delivery(4, 1),
        delivery(5, 1),
        delivery(6, 1),
    ];
    let h = harness(deliveries, true, 0, Some(13));
    let (_trigger, shutdown) = likes_shared::shutdown::channel();
    h.worker.run(shutdown).await.expect("worker");
    let letters = h.letters.0.lock().clone();
    assert_eq!(letters.len(), 1);
    let users: Vec<u64> = letters[0].events.iter().map(|e| e.user_id.get()).collect();
    assert_eq!(users, vec![3, 4], "the window holding the bad event, whole");
    assert!(
        letters[0].error.contains("out of range"),
        "{}",
        letters[0].error
    );
    assert_eq!(letters[0].attempts, 1);
    assert_eq!(
        h.store.committed.lock().len(),
        2,
        "the windows before and after still commit"
    );
    assert_eq!(
        *h.acked.lock(),
        vec![1, 2, 3, 4, 5, 6],
        "dead-lettered events are acked once stored"
    );
}

#[tokio::test(start_paused = true)]
async fn shutdown_during_retries_acks_nothing() {
    let h = harness(vec![delivery(1, 1), delivery(2, 1)], false, u32::MAX, None);
    let (trigger, shutdown) = likes_shared::shutdown::channel();
    let stats = h.worker.stats();
    let running = tokio::spawn(h.worker.run(shutdown));
    while stats.retries.load(std::sync::atomic::Ordering::Relaxed) < 3 {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    trigger.trigger();
    tokio::time::timeout(Duration::from_secs(5), running)
        .await
        .expect("stops promptly")
        .expect("task")
        .expect("worker");
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
    let h = harness(deliveries, true, 0, None);
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
