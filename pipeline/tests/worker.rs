//! The worker loop against scripted backends: acks only after a commit, retries transient store
//! errors, dead-letters only the changes the store refuses for good (the good events around them
//! commit) and goes on, and stops without acking on shutdown.
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
use std::collections::{BTreeMap, VecDeque};
use std::ops::Range;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

/// Event number `n` (its id, version, time and ack): a like of `content` by user `n`.
fn delivery(n: u64, content: u64) -> Received<u64> {
    delivery_by(n, n, content, Action::Like)
}

fn delivery_by(n: u64, user: u64, content: u64, action: Action) -> Received<u64> {
    let event = LikeEvent {
        event_id: u128::from(n),
        user_id: UserId::new(user).expect("non-zero"),
        content_id: ContentId::new(content).expect("non-zero"),
        action,
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

/// Events 1..=count over 8 users and 3 contents: 24 (user, content) keys, each liked or unliked
/// two or three times, so a key's last event decides its row.
fn mixed_window(count: u64) -> Vec<Received<u64>> {
    (1..=count)
        .map(|n| {
            let action = if n % 3 == 0 {
                Action::Unlike
            } else {
                Action::Like
            };
            delivery_by(n, 1 + n % 8, 1 + n % 3, action)
        })
        .collect()
}

/// (user, content) of a delivery.
fn key_of(delivery: &Received<u64>) -> (u64, u64) {
    match delivery {
        Received::Event(d) => (d.event.user_id.get(), d.event.content_id.get()),
        Received::Undecodable(_) => panic!("not an event"),
    }
}

/// What the store should hold after `deliveries`, leaving out `refused` keys: (content, user) →
/// (liked, version) of each key's newest event.
fn rows_after(
    deliveries: &[Received<u64>],
    refused: &[(u64, u64)],
) -> BTreeMap<(u64, u64), (bool, u64)> {
    let mut rows = BTreeMap::new();
    for delivery in deliveries {
        let Received::Event(d) = delivery else {
            continue;
        };
        let (user, content) = key_of(delivery);
        if refused.contains(&(user, content)) {
            continue;
        }
        let row = rows
            .entry((content, user))
            .or_insert((d.event.action.liked(), d.event.version));
        if d.event.version >= row.1 {
            *row = (d.event.action.liked(), d.event.version);
        }
    }
    rows
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

/// Fails as told, records each committed window and what was acked when it was applied, and keeps
/// rows the way a real store does: a change overwrites its row only if its version is newer (I4).
struct ScriptedStore {
    /// Apply calls, numbered from 0 in the order they arrive, that fail transiently.
    transient_calls: Range<usize>,
    /// (user, content) keys the store refuses for good: any call holding one fails permanently.
    poison: Vec<(u64, u64)>,
    /// Calls holding more changes than this fail permanently, whatever they hold.
    max_changes: usize,
    calls: Mutex<usize>,
    acked: Arc<Mutex<Vec<u64>>>,
    committed: Mutex<Vec<Vec<LikeChange>>>,
    /// (content, user) → (liked, version).
    rows: Mutex<BTreeMap<(u64, u64), (bool, u64)>>,
}

#[async_trait]
impl LikeStore for ScriptedStore {
    async fn apply_window(&self, changes: &[LikeChange]) -> Result<ApplyOutcome, StoreError> {
        let versions: Vec<u64> = changes.iter().map(|c| c.version).collect();
        let acked = self.acked.lock().clone();
        assert!(
            versions.iter().all(|v| !acked.contains(v)),
            "acked {acked:?} before committing {versions:?}"
        );
        let call = {
            let mut calls = self.calls.lock();
            *calls += 1;
            *calls - 1
        };
        if self.transient_calls.contains(&call) {
            return Err(StoreError::Transient("connection reset".into()));
        }
        if changes.len() > self.max_changes {
            return Err(StoreError::Permanent("statement too big".into()));
        }
        if changes
            .iter()
            .any(|c| self.poison.contains(&(c.user_id.get(), c.content_id.get())))
        {
            return Err(StoreError::Permanent("value out of range".into()));
        }
        let mut rows = self.rows.lock();
        let mut rows_written = 0;
        for c in changes {
            let row = rows
                .entry((c.content_id.get(), c.user_id.get()))
                .or_insert((c.liked, 0));
            if c.version > row.1 {
                *row = (c.liked, c.version);
                rows_written += 1;
            }
        }
        self.committed.lock().push(changes.to_vec());
        Ok(ApplyOutcome {
            rows_written,
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

/// What the scripted backends do.
struct Script {
    deliveries: Vec<Received<u64>>,
    /// Wait for more deliveries (until shutdown) instead of closing after the last one.
    stay_open: bool,
    window_events: usize,
    transient_calls: Range<usize>,
    poison: Vec<(u64, u64)>,
    max_changes: usize,
}

impl Default for Script {
    fn default() -> Self {
        Script {
            deliveries: Vec::new(),
            stay_open: false,
            window_events: 2,
            transient_calls: 0..0,
            poison: Vec::new(),
            max_changes: usize::MAX,
        }
    }
}

fn harness(script: Script) -> Harness {
    let acked = Arc::new(Mutex::new(Vec::new()));
    let source = ScriptedSource {
        pending: script.deliveries.into(),
        close_when_empty: !script.stay_open,
        acked: acked.clone(),
    };
    let store = Arc::new(ScriptedStore {
        transient_calls: script.transient_calls,
        poison: script.poison,
        max_changes: script.max_changes,
        calls: Mutex::new(0),
        acked: acked.clone(),
        committed: Mutex::new(Vec::new()),
        rows: Mutex::new(BTreeMap::new()),
    });
    let letters = Arc::new(CollectedLetters::default());
    let config = WorkerConfig {
        window: WindowConfig {
            max_events: script.window_events,
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
async fn a_permanent_error_dead_letters_only_the_refused_event_and_the_stream_goes_on() {
    let deliveries = vec![
        delivery(1, 1),
        delivery(2, 1),
        delivery(3, 13),
        delivery(4, 1),
        delivery(5, 1),
        delivery(6, 1),
    ];
    let h = harness(Script {
        deliveries,
        poison: vec![(3, 13)],
        ..Script::default()
    });
    let (_trigger, shutdown) = likes_shared::shutdown::channel();
    h.worker.run(shutdown).await.expect("worker");
    let letters = h.letters.0.lock().clone();
    assert_eq!(letters.len(), 1);
    let users: Vec<u64> = letters[0].events.iter().map(|e| e.user_id.get()).collect();
    assert_eq!(users, vec![3], "the refused event only, not its window");
    assert!(
        letters[0].error.contains("out of range"),
        "{}",
        letters[0].error
    );
    assert_eq!(
        letters[0].attempts, 4,
        "the window's call, then three calls holding the event on its own"
    );
    let stored: Vec<u64> = h.store.rows.lock().values().map(|row| row.1).collect();
    assert_eq!(
        stored,
        vec![1, 2, 4, 5, 6],
        "the other event of its window and the windows around it commit"
    );
    assert_eq!(
        *h.acked.lock(),
        vec![1, 2, 3, 4, 5, 6],
        "dead-lettered events are acked once stored"
    );
}

#[tokio::test(start_paused = true)]
async fn a_poison_key_in_a_big_window_dead_letters_its_events_and_commits_the_rest() {
    let deliveries = mixed_window(64);
    let poison = (3, 2); // events 10, 34 and 58
    let h = harness(Script {
        deliveries: deliveries.clone(),
        window_events: 64,
        poison: vec![poison],
        ..Script::default()
    });
    let stats = h.worker.stats();
    let (_trigger, shutdown) = likes_shared::shutdown::channel();
    h.worker.run(shutdown).await.expect("worker");

    assert_eq!(
        *h.store.rows.lock(),
        rows_after(&deliveries, &[poison]),
        "every other key holds its newest event"
    );
    let letters = h.letters.0.lock().clone();
    assert_eq!(letters.len(), 1, "one letter for the window");
    let ids: Vec<u128> = letters[0].events.iter().map(|e| e.event_id).collect();
    assert_eq!(
        ids,
        vec![10, 34, 58],
        "every event of the poison key, no other"
    );
    assert!(letters[0].attempts >= 3, "{}", letters[0].attempts);
    assert_eq!(*h.acked.lock(), (1..=64).collect::<Vec<u64>>());
    // 24 changes: the window's call, two halves per level down to the poison (5 levels), and two
    // more tries of the poison on its own. Per-row retries would take 24 calls or more.
    let calls = *h.store.calls.lock();
    assert!(calls <= 1 + 2 * 5 + 2, "{calls} apply calls");
    assert_eq!(stats.bisections.load(Relaxed), 1);
    assert_eq!(stats.poison_changes.load(Relaxed), 1);
    assert_eq!(stats.dead_letters.load(Relaxed), 1);
}

#[tokio::test(start_paused = true)]
async fn a_window_refused_only_as_a_whole_commits_in_parts_and_dead_letters_nothing() {
    let deliveries = mixed_window(64);
    let h = harness(Script {
        deliveries: deliveries.clone(),
        window_events: 64,
        max_changes: 5, // the window's 24 changes are "too big", any 5 of them are not
        ..Script::default()
    });
    let stats = h.worker.stats();
    let (_trigger, shutdown) = likes_shared::shutdown::channel();
    h.worker.run(shutdown).await.expect("worker");

    assert_eq!(*h.store.rows.lock(), rows_after(&deliveries, &[]));
    assert!(
        h.letters.0.lock().is_empty(),
        "no change was refused on its own"
    );
    assert_eq!(*h.acked.lock(), (1..=64).collect::<Vec<u64>>());
    assert_eq!(stats.bisections.load(Relaxed), 1);
    assert_eq!(stats.poison_changes.load(Relaxed), 0);
}

#[tokio::test(start_paused = true)]
async fn two_poison_keys_and_an_outage_during_the_search() {
    let deliveries = mixed_window(64);
    let poison = [(3, 2), (8, 1)]; // events 10, 34, 58 and 15, 39, 63
    let h = harness(Script {
        deliveries: deliveries.clone(),
        window_events: 64,
        poison: poison.to_vec(),
        // The window's own call is refused; the next two (the search's first) meet an outage.
        transient_calls: 1..3,
        ..Script::default()
    });
    let stats = h.worker.stats();
    let (_trigger, shutdown) = likes_shared::shutdown::channel();
    h.worker.run(shutdown).await.expect("worker");

    assert_eq!(stats.retries.load(Relaxed), 2, "the outage was waited out");
    assert_eq!(
        *h.store.rows.lock(),
        rows_after(&deliveries, &poison),
        "every other key holds its newest event"
    );
    let letters = h.letters.0.lock().clone();
    assert_eq!(
        letters.len(),
        1,
        "one letter for the window, none for the outage"
    );
    let mut ids: Vec<u128> = letters[0].events.iter().map(|e| e.event_id).collect();
    ids.sort_unstable();
    assert_eq!(ids, vec![10, 15, 34, 39, 58, 63]);
    assert_eq!(*h.acked.lock(), (1..=64).collect::<Vec<u64>>());
}

#[tokio::test(start_paused = true)]
async fn shutdown_while_the_search_waits_out_an_outage_acks_nothing() {
    let h = harness(Script {
        deliveries: mixed_window(64),
        stay_open: true,
        window_events: 64,
        poison: vec![(3, 2)],
        // The window's own call is refused; every call of the search meets an outage.
        transient_calls: 1..usize::MAX,
        ..Script::default()
    });
    let (trigger, shutdown) = likes_shared::shutdown::channel();
    let stats = h.worker.stats();
    let running = tokio::spawn(h.worker.run(shutdown));
    tokio::time::timeout(Duration::from_secs(60), async {
        while stats.retries.load(Relaxed) < 3 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    })
    .await
    .expect("the search retries the outage");
    trigger.trigger();
    tokio::time::timeout(Duration::from_secs(5), running)
        .await
        .expect("stops promptly")
        .expect("task")
        .expect("worker");
    assert!(
        h.acked.lock().is_empty(),
        "a window whose search did not finish is never acked; it comes back after restart"
    );
    assert!(
        h.letters.0.lock().is_empty(),
        "an outage is never dead-lettered"
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
    let (trigger, shutdown) = likes_shared::shutdown::channel();
    let stats = h.worker.stats();
    let running = tokio::spawn(h.worker.run(shutdown));
    while stats.retries.load(Relaxed) < 3 {
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
