//! The worker loop: the one place that owns a `select!` (STYLE: operators never spawn).
//!
//! `source → window → collapse → sink (one transaction) → ack → trending`. A window's acks go back
//! only after its transaction commits, so a crash anywhere means redelivery, never loss, and the
//! sink's transition-derived deltas make redelivery harmless (I2). While the store fails
//! transiently the loop retries the same window with backoff and reads nothing new: the bounded
//! source queue then holds the broker back (I7). A permanent failure dead-letters the window and
//! the stream goes on. A record that does not decode is dead-lettered with its bytes and acked in
//! its place in the stream.

use crate::operators::{
    ContentDeltas, CountOrTimeWindow, Operator, PerUserCollapse, TrendingConfig, TrendingTopK,
    Window, WindowConfig,
};
use likes_shared::bus::{BusError, EventSource, Received, UndecodableRecord};
use likes_shared::hlc::now_ms;
use likes_shared::retry::Backoff;
use likes_shared::shutdown::Shutdown;
use likes_shared::store::{LikeChange, LikeStore};
use likes_shared::trending::{TrendingBoard, TrendingEntry};
use likes_sink::dead_letter::{DeadLetter, DeadLetterPublisher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;
use tokio::time::sleep_until;

/// The worker's clock is tokio's, so tests with a paused clock (`start_paused`) move window ages,
/// trending ticks and backoff sleeps together without waiting in real time. Outside such tests
/// it reads `std::time::Instant::now()`.
fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}

#[derive(Debug, Clone, Default)]
pub struct WorkerConfig {
    pub window: WindowConfig,
    pub trending: TrendingConfig,
    pub backoff: Backoff,
    /// Which slot of the trending board this worker posts to.
    pub board_slot: u32,
}

#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    #[error("event source failed: {0}")]
    Source(#[from] BusError),
    #[error("dead-letter publish failed: {0}")]
    DeadLetter(#[from] likes_sink::dead_letter::DeadLetterError),
}

/// Running totals, readable while the worker runs (tests, metrics).
#[derive(Debug, Default)]
pub struct WorkerStats {
    pub events: AtomicU64,
    pub windows: AtomicU64,
    pub rows_written: AtomicU64,
    pub retries: AtomicU64,
    pub dead_letters: AtomicU64,
}

pub struct Worker<S: EventSource> {
    source: S,
    store: Arc<dyn LikeStore>,
    board: Arc<dyn TrendingBoard>,
    dead_letters: Arc<dyn DeadLetterPublisher>,
    config: WorkerConfig,
    stats: Arc<WorkerStats>,
    window: CountOrTimeWindow<S::Ack>,
    collapse: PerUserCollapse,
    /// The collapsed changes of the window being committed; reused across windows.
    changes: Vec<LikeChange>,
    deltas: ContentDeltas,
    trending: TrendingTopK,
}

enum Step<A> {
    Continue,
    /// Dead-letter and ack this record once every window before it has committed.
    Undecodable(UndecodableRecord<A>),
    Stop,
}

impl<S: EventSource> Worker<S> {
    pub fn new(
        source: S,
        store: Arc<dyn LikeStore>,
        board: Arc<dyn TrendingBoard>,
        dead_letters: Arc<dyn DeadLetterPublisher>,
        config: WorkerConfig,
    ) -> Self {
        Worker {
            source,
            store,
            board,
            dead_letters,
            window: config.window.build(),
            collapse: PerUserCollapse::new(),
            changes: Vec::new(),
            deltas: ContentDeltas::new(),
            trending: config.trending.build(now()),
            config,
            stats: Arc::default(),
        }
    }

    pub fn stats(&self) -> Arc<WorkerStats> {
        self.stats.clone()
    }

    /// Runs until shutdown or the source closes, committing what it holds before returning.
    pub async fn run(mut self, mut shutdown: Shutdown) -> Result<(), WorkerError> {
        let mut closed: Vec<Window<S::Ack>> = Vec::new();
        let mut lists: Vec<Vec<TrendingEntry>> = Vec::new();
        loop {
            let deadline = match (self.window.deadline(), self.trending.deadline()) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            let step = tokio::select! {
                // Shutdown first: a busy source must not starve it.
                biased;
                _ = shutdown.wait() => {
                    self.window.on_close(&mut closed);
                    Step::Stop
                }
                _ = sleep_until(deadline.unwrap_or_else(now).into()), if deadline.is_some() => {
                    let tick = now();
                    self.window.on_tick(tick, &mut closed);
                    self.trending.on_tick(tick, &mut lists);
                    Step::Continue
                }
                next = self.source.recv() => match next? {
                    Some(Received::Event(delivery)) => {
                        self.stats.events.fetch_add(1, Ordering::Relaxed);
                        self.window.process(delivery, now(), &mut closed);
                        Step::Continue
                    }
                    Some(Received::Undecodable(record)) => {
                        // Sources ack cumulatively, so this record's ack must come after those of
                        // every event before it: the open window closes and commits first.
                        self.window.on_close(&mut closed);
                        Step::Undecodable(record)
                    }
                    None => {
                        self.window.on_close(&mut closed);
                        Step::Stop
                    }
                },
            };
            for window in closed.drain(..) {
                if !self.commit(window, &mut shutdown).await? {
                    return Ok(()); // shutdown while retrying: the window stays unacked.
                }
            }
            for list in lists.drain(..) {
                self.board.post(self.config.board_slot, list).await;
            }
            match step {
                Step::Continue => {}
                Step::Undecodable(record) => self.dead_letter_undecodable(record).await?,
                Step::Stop => {
                    self.board
                        .post(self.config.board_slot, self.trending.top())
                        .await;
                    return Ok(());
                }
            }
        }
    }

    /// Keeps the bytes of a record that no retry can decode, then acks it so the stream goes on.
    async fn dead_letter_undecodable(
        &mut self,
        record: UndecodableRecord<S::Ack>,
    ) -> Result<(), WorkerError> {
        tracing::error!(
            error = %record.error,
            bytes = record.payload.len(),
            partition = record.partition,
            "undecodable record; dead-lettering it"
        );
        let letter = DeadLetter::undecodable(
            record.payload,
            format!("undecodable event: {}", record.error),
            now_ms(),
        );
        self.dead_letters.publish(&letter).await?;
        self.stats.dead_letters.fetch_add(1, Ordering::Relaxed);
        self.source.ack(vec![record.ack]).await?;
        Ok(())
    }

    /// Applies one window and acks it; `Ok(false)` if shutdown interrupted the retries.
    #[tracing::instrument(skip_all, fields(events = window.events.len()))]
    async fn commit(
        &mut self,
        window: Window<S::Ack>,
        shutdown: &mut Shutdown,
    ) -> Result<bool, WorkerError> {
        let mut changes = std::mem::take(&mut self.changes);
        changes.clear();
        self.collapse.collapse_into(&window.events, &mut changes);
        let mut attempt = 0u32;
        let mut first_failed_at_ms = None;
        loop {
            match self.store.apply_window(&changes).await {
                Ok(outcome) => {
                    self.stats
                        .rows_written
                        .fetch_add(outcome.rows_written as u64, Ordering::Relaxed);
                    // The per-content estimate exists only for this line: skip its pass over the
                    // window unless the line is going to be written.
                    if tracing::enabled!(tracing::Level::DEBUG) {
                        tracing::debug!(
                            rows = outcome.rows_written,
                            contents = self.deltas.estimate(&changes).len(),
                            "window committed"
                        );
                    }
                    break;
                }
                Err(error) if error.is_transient() => {
                    first_failed_at_ms.get_or_insert_with(now_ms);
                    self.stats.retries.fetch_add(1, Ordering::Relaxed);
                    let wait = self.config.backoff.delay(attempt);
                    tracing::warn!(%error, attempt, ?wait, "window apply failed; retrying");
                    attempt = attempt.saturating_add(1);
                    tokio::select! {
                        biased;
                        _ = shutdown.wait() => return Ok(false),
                        _ = tokio::time::sleep(wait) => {}
                    }
                }
                Err(error) => {
                    tracing::error!(%error, events = window.events.len(), "window refused; dead-lettering it");
                    let letter = DeadLetter::store_refused(
                        window.events.clone(),
                        error.to_string(),
                        attempt + 1,
                        first_failed_at_ms.unwrap_or_else(now_ms),
                    );
                    self.dead_letters.publish(&letter).await?;
                    self.stats.dead_letters.fetch_add(1, Ordering::Relaxed);
                    break;
                }
            }
        }
        self.changes = changes;
        self.source.ack(window.acks.clone()).await?;
        self.stats.windows.fetch_add(1, Ordering::Relaxed);
        self.trending.observe_likes(&window.events);
        self.window.recycle(window);
        Ok(true)
    }
}
