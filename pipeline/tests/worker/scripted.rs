//! The scripted backends the worker tests drive: a source that hands out deliveries, a store
//! that fails as told and keeps rows by version, and a dead-letter publisher that collects.

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
use likes_sink::dead_letter::{DeadLetter, DeadLetterError, DeadLetterPublisher};
use parking_lot::Mutex;
use std::collections::{BTreeMap, VecDeque};
use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

/// Event number `n` (its id, version, time and ack): a like of `content` by user `n`.
pub fn delivery(n: u64, content: u64) -> Received<u64> {
    delivery_by(n, n, content, Action::Like)
}

pub fn delivery_by(n: u64, user: u64, content: u64, action: Action) -> Received<u64> {
    let event = LikeEvent {
        event_id: u128::from(n),
        user_id: UserId::new(user).expect("non-zero"),
        content_id: ContentId::new(content).expect("non-zero"),
        action,
        version: n,
        ts_ms: n,
        source: "test".into(),
        fill_epoch: 0,
    };
    Received::Event(Delivery {
        event,
        ack: n,
        partition: 0,
        trace: None,
    })
}

/// Events 1..=count over 8 users and 3 contents: 24 (user, content) keys, each liked or unliked
/// two or three times, so a key's last event decides its row.
pub fn mixed_window(count: u64) -> Vec<Received<u64>> {
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
pub fn key_of(delivery: &Received<u64>) -> (u64, u64) {
    match delivery {
        Received::Event(d) => (d.event.user_id.get(), d.event.content_id.get()),
        Received::Undecodable(_) => panic!("not an event"),
    }
}

/// What the store should hold after `deliveries`, leaving out `refused` keys: (content, user) →
/// (liked, version) of each key's newest event.
pub fn rows_after(
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
pub struct ScriptedSource {
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
pub struct ScriptedStore {
    /// Apply calls, numbered from 0 in the order they arrive, that fail transiently.
    pub transient_calls: Range<usize>,
    /// (user, content) keys the store refuses for good: any call holding one fails permanently.
    pub poison: Vec<(u64, u64)>,
    /// The store is down until this many apply calls have been made: those calls fail with an
    /// error misclassified as permanent (an outage code the store does not know), and `ping`
    /// fails meanwhile.
    pub down_for_calls: usize,
    /// Calls holding more changes than this fail permanently, whatever they hold.
    pub max_changes: usize,
    pub calls: Mutex<usize>,
    pub acked: Arc<Mutex<Vec<u64>>>,
    pub committed: Mutex<Vec<Vec<LikeChange>>>,
    /// (content, user) → (liked, version).
    pub rows: Mutex<BTreeMap<(u64, u64), (bool, u64)>>,
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
        if call < self.down_for_calls {
            return Err(StoreError::Permanent("error 1234: unknown outage".into()));
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
        if *self.calls.lock() < self.down_for_calls {
            return Err(StoreError::Transient("connection refused".into()));
        }
        Ok(())
    }
}

#[derive(Default)]
pub struct CollectedLetters(pub Mutex<Vec<DeadLetter>>);

#[async_trait]
impl DeadLetterPublisher for CollectedLetters {
    async fn publish(&self, letter: &DeadLetter) -> Result<(), DeadLetterError> {
        self.0.lock().push(letter.clone());
        Ok(())
    }
}

pub struct Harness {
    pub acked: Arc<Mutex<Vec<u64>>>,
    pub store: Arc<ScriptedStore>,
    pub letters: Arc<CollectedLetters>,
    pub worker: Worker<ScriptedSource>,
}

/// What the scripted backends do.
pub struct Script {
    pub deliveries: Vec<Received<u64>>,
    /// Wait for more deliveries (until shutdown) instead of closing after the last one.
    pub stay_open: bool,
    /// The worker's `max_events`.
    pub window_events: usize,
    /// The rest as in [`ScriptedStore`].
    pub transient_calls: Range<usize>,
    pub poison: Vec<(u64, u64)>,
    pub down_for_calls: usize,
    pub max_changes: usize,
}

impl Default for Script {
    fn default() -> Self {
        Script {
            deliveries: Vec::new(),
            stay_open: false,
            window_events: 2,
            transient_calls: 0..0,
            poison: Vec::new(),
            down_for_calls: 0,
            max_changes: usize::MAX,
        }
    }
}

pub fn harness(script: Script) -> Harness {
    let acked = Arc::new(Mutex::new(Vec::new()));
    let source = ScriptedSource {
        pending: script.deliveries.into(),
        close_when_empty: !script.stay_open,
        acked: acked.clone(),
    };
    let store = Arc::new(ScriptedStore {
        transient_calls: script.transient_calls,
        poison: script.poison,
        down_for_calls: script.down_for_calls,
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

/// Runs the worker until it has retried an outage three times, then shuts it down and waits for
/// it to stop (both bounded, in the paused clock's virtual time).
pub async fn shut_down_during_retries(worker: Worker<ScriptedSource>) {
    let (trigger, shutdown) = likes_shared::shutdown::channel();
    let stats = worker.stats();
    let running = tokio::spawn(worker.run(shutdown));
    tokio::time::timeout(Duration::from_secs(60), async {
        while stats.retries.load(std::sync::atomic::Ordering::Relaxed) < 3 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    })
    .await
    .expect("the worker retries the outage");
    trigger.trigger();
    tokio::time::timeout(Duration::from_secs(5), running)
        .await
        .expect("stops promptly")
        .expect("task")
        .expect("worker");
}
