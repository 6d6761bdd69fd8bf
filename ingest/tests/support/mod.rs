//! Backends for driving `LikeService` without HTTP: a publisher that follows a script of delays
//! and refusals and remembers what it made durable, and a store that is a plain model of the
//! sink's rules (`plan_writes`), so tests can feed it the durable events and compare.

#![allow(dead_code)]

use async_trait::async_trait;
use likes_ingest::hot_counts::HotCounts;
use likes_ingest::memory_cache::MemoryStateCache;
use likes_ingest::metrics::Metrics;
use likes_ingest::service::LikeService;
use likes_ingest::Backends;
use likes_shared::bus::{BusError, DurableMark, EventPublisher};
use likes_shared::cache::StateCache;
use likes_shared::store::{
    ApplyOutcome, HistoryCursor, LikeChange, LikeStore, LikedItem, RowState, StoreError,
    StoredCount,
};
use likes_shared::trending::MemoryTrendingBoard;
use likes_shared::{ContentId, LikeEvent, UserId};
use likes_sink::transitions::plan_writes;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// What the n-th publish does: wait this long, then succeed or be refused.
#[derive(Debug, Clone, Copy)]
pub struct PublishStep {
    pub delay_ms: u64,
    pub ok: bool,
}

/// Follows its script (publishes past its end succeed at once) and keeps the durable events.
/// Like a real bus, a publish that has started finishes even if its caller goes away.
#[derive(Default)]
pub struct ScriptedPublisher {
    steps: Vec<PublishStep>,
    next: AtomicUsize,
    pub durable: Arc<Mutex<Vec<LikeEvent>>>,
}

#[async_trait]
impl EventPublisher for ScriptedPublisher {
    async fn publish(&self, event: &LikeEvent) -> Result<DurableMark, BusError> {
        let n = self.next.fetch_add(1, Ordering::SeqCst);
        let step = self.steps.get(n).copied().unwrap_or(PublishStep {
            delay_ms: 0,
            ok: true,
        });
        let durable = self.durable.clone();
        let event = event.clone();
        let (done, answer) = tokio::sync::oneshot::channel();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(step.delay_ms)).await;
            let result = if step.ok {
                let mut durable = durable.lock();
                durable.push(event);
                Ok(durable.len() as u64)
            } else {
                Err(BusError::Unavailable("scripted refusal".into()))
            };
            let _ = done.send(result);
        });
        answer
            .await
            .unwrap_or_else(|_| Err(BusError::Unavailable("publisher task lost".into())))
    }

    fn is_ready(&self) -> bool {
        true
    }
}

/// The stored rows as the sink's rules leave them; counts derived from the rows, each with the
/// fill epoch the sink's rules keep beside it.
#[derive(Default)]
pub struct ModelStore {
    rows: Mutex<HashMap<(ContentId, UserId), (RowState, u64)>>,
    epochs: Mutex<HashMap<ContentId, (u64, i64)>>,
}

#[async_trait]
impl LikeStore for ModelStore {
    async fn apply_window(&self, changes: &[LikeChange]) -> Result<ApplyOutcome, StoreError> {
        let mut rows = self.rows.lock();
        let current = rows.iter().map(|(k, (s, _))| (*k, *s)).collect();
        let plan = plan_writes(&current, changes);
        for c in &plan.rows {
            let state = RowState {
                liked: c.liked,
                version: c.version,
            };
            rows.insert((c.content_id, c.user_id), (state, c.ts_ms));
        }
        let mut epochs = self.epochs.lock();
        for (content, epoch, delta) in &plan.epoch_deltas {
            let stored = epochs.entry(*content).or_default();
            if *epoch > stored.0 {
                *stored = (*epoch, *delta);
            } else if *epoch == stored.0 {
                stored.1 += delta;
            }
        }
        Ok(ApplyOutcome {
            rows_written: plan.rows.len(),
            count_deltas: plan.deltas,
        })
    }

    async fn counts(&self, contents: &[ContentId]) -> Result<Vec<i64>, StoreError> {
        let rows = self.rows.lock();
        Ok(contents
            .iter()
            .map(|c| {
                rows.iter()
                    .filter(|((content, _), (s, _))| content == c && s.liked)
                    .count() as i64
            })
            .collect())
    }

    async fn fill_counts(&self, contents: &[ContentId]) -> Result<Vec<StoredCount>, StoreError> {
        let counts = self.counts(contents).await?;
        let epochs = self.epochs.lock();
        Ok(contents
            .iter()
            .zip(counts)
            .map(|(c, count)| {
                let (fill_epoch, epoch_delta) = epochs.get(c).copied().unwrap_or_default();
                StoredCount {
                    count,
                    fill_epoch,
                    epoch_delta,
                }
            })
            .collect())
    }

    async fn states(
        &self,
        user: UserId,
        contents: &[ContentId],
    ) -> Result<Vec<Option<RowState>>, StoreError> {
        let rows = self.rows.lock();
        Ok(contents
            .iter()
            .map(|c| rows.get(&(*c, user)).map(|(s, _)| *s))
            .collect())
    }

    async fn user_rows(
        &self,
        user: UserId,
        limit: usize,
    ) -> Result<Vec<(ContentId, RowState)>, StoreError> {
        let rows = self.rows.lock();
        let mut mine: Vec<_> = rows
            .iter()
            .filter(|((_, u), _)| *u == user)
            .map(|((c, _), (s, ts))| (*ts, *c, *s))
            .collect();
        mine.sort_unstable_by_key(|m| std::cmp::Reverse(m.0));
        Ok(mine
            .into_iter()
            .take(limit)
            .map(|(_, c, s)| (c, s))
            .collect())
    }

    async fn history(
        &self,
        _user: UserId,
        _cursor: Option<HistoryCursor>,
        _limit: usize,
    ) -> Result<Vec<LikedItem>, StoreError> {
        Ok(Vec::new())
    }

    async fn ping(&self) -> Result<(), StoreError> {
        Ok(())
    }
}

/// Whether the durable events leave `user` liking `content`: the newest version wins.
pub fn lww_liked(events: &[LikeEvent], user: UserId, content: ContentId) -> bool {
    events
        .iter()
        .filter(|e| e.user_id == user && e.content_id == content)
        .max_by_key(|e| e.version)
        .is_some_and(|e| e.action.liked())
}

/// A service on the memory cache, the scripted publisher and the model store.
pub struct Harness {
    pub service: LikeService,
    pub publisher: Arc<ScriptedPublisher>,
    pub store: Arc<ModelStore>,
}

impl Harness {
    /// Nothing is ever committed: the store is fed only at the end.
    pub fn new(steps: Vec<PublishStep>) -> Self {
        Harness::with_cache(steps, 1_000, Arc::new(AtomicU64::new(0)))
    }

    /// A cache of `capacity` that may forget what `committed` says the store holds.
    pub fn with_cache(steps: Vec<PublishStep>, capacity: usize, committed: Arc<AtomicU64>) -> Self {
        Harness::on(
            Arc::new(MemoryStateCache::new(capacity, committed)),
            None,
            steps,
        )
    }

    /// A service on `cache`, with `hot_counts` in front of it.
    pub fn on(
        cache: Arc<dyn StateCache>,
        hot_counts: Option<Arc<HotCounts>>,
        steps: Vec<PublishStep>,
    ) -> Self {
        let publisher = Arc::new(ScriptedPublisher {
            steps,
            ..ScriptedPublisher::default()
        });
        let store = Arc::new(ModelStore::default());
        let backends = Backends {
            cache,
            store: store.clone(),
            publisher: publisher.clone(),
            trending: Arc::new(MemoryTrendingBoard::default()),
            hot_counts,
        };
        let metrics = Arc::new(Metrics::new().expect("metrics"));
        Harness {
            service: LikeService::new(backends, "test".into(), metrics),
            publisher,
            store,
        }
    }

    pub fn durable(&self) -> Vec<LikeEvent> {
        self.publisher.durable.lock().clone()
    }

    /// What the sink would do with everything durable, in one window.
    pub async fn apply_durable_to_store(&self) {
        self.apply_to_store(&self.durable()).await;
    }

    /// Applies `events` as one window.
    pub async fn apply_to_store(&self, events: &[LikeEvent]) {
        let changes: Vec<LikeChange> = events
            .iter()
            .map(|e| LikeChange {
                user_id: e.user_id,
                content_id: e.content_id,
                liked: e.action.liked(),
                version: e.version,
                ts_ms: e.ts_ms,
                fill_epoch: e.fill_epoch,
            })
            .collect();
        self.store
            .apply_window(&changes)
            .await
            .expect("model apply");
    }

    pub async fn stored_count(&self, content: ContentId) -> i64 {
        self.store.counts(&[content]).await.expect("counts")[0]
    }
}
