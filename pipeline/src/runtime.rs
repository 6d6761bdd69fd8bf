//! The worker loop: the one place that owns a `select!` (STYLE: operators never spawn).
//!
//! `source → window → collapse → sink (one transaction) → ack → trending`. A window's acks go back
//! only after its transaction commits, so a crash anywhere means redelivery, never loss, and the
//! sink's transition-derived deltas make redelivery harmless (I2). While the store fails
//! transiently the loop retries the same window with backoff and reads nothing new: the bounded
//! source queue then holds the broker back (I7). A permanent failure starts a search for the
//! changes the store refuses (`runtime/poison.rs`): the rest of the window commits, only the
//! refused changes' events are dead-lettered, and the stream goes on. A record that does not
//! decode is dead-lettered with its bytes and acked in its place in the stream.

pub mod event_lag;
mod poison;
pub(crate) mod stats;

pub use stats::{WorkerCollector, WorkerStats};

use crate::operators::{
    ContentDeltas, CountOrTimeWindow, Operator, PerUserCollapse, TrendingConfig, TrendingTopK,
    Window, WindowConfig,
};
use likes_shared::bus::{BusError, EventSource, Received, UndecodableRecord};
use likes_shared::hlc::now_ms;
use likes_shared::retry::Backoff;
use likes_shared::shutdown::Shutdown;
use likes_shared::store::{LikeChange, LikeStore};
use likes_shared::telemetry;
use likes_shared::trending::{TrendingBoard, TrendingEntry};
use likes_sink::dead_letter::{DeadLetter, DeadLetterPublisher};
use poison::{Applied, PoisonChange, RetryingStore};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;
use tokio::time::sleep_until;
use tracing::Instrument;

/// The worker's clock is tokio's, so tests with a paused clock (`start_paused`) move window ages,
/// trending ticks and backoff sleeps together without waiting in real time. Outside such tests
/// it reads `std::time::Instant::now()`.
fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}

#[derive(Debug, Clone)]
pub struct WorkerConfig {
    pub window: WindowConfig,
    pub trending: TrendingConfig,
    /// Between retries of an outage, and between tries of a change the store refused.
    pub backoff: Backoff,
    /// How many times the store must refuse one change on its own before its events are
    /// dead-lettered (`0` counts as `1`). More than one covers an outage the store classified as
    /// permanent; each try after the first waits like an outage retry.
    pub permanent_attempts: u32,
    /// Which slot of the trending board this worker posts to.
    pub board_slot: u32,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        WorkerConfig {
            window: WindowConfig::default(),
            trending: TrendingConfig::default(),
            backoff: Backoff::default(),
            permanent_attempts: 3,
            board_slot: 0,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    #[error("event source failed: {0}")]
    Source(#[from] BusError),
    #[error("dead-letter publish failed: {0}")]
    DeadLetter(#[from] likes_sink::dead_letter::DeadLetterError),
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
                    // Shutdown while retrying: the window stays unacked, for the next owner.
                    self.source.close().await;
                    return Ok(());
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
                    self.source.close().await;
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

    /// [`Self::commit_window`] in the window's span, which links to the publishes of the likes
    /// it holds (a window holds the likes of many requests). The links go on before the span
    /// first starts, so the sampler sees them (`telemetry::FollowsSampledLinks`).
    async fn commit(
        &mut self,
        window: Window<S::Ack>,
        shutdown: &mut Shutdown,
    ) -> Result<bool, WorkerError> {
        let span = tracing::info_span!(
            "commit",
            otel.name = "commit window",
            events = window.events.len(),
            trace_id = tracing::field::Empty,
        );
        if telemetry::traces_enabled() {
            for trace in &window.traces {
                trace.link_from(&span);
            }
            telemetry::record_trace_id(&span);
        }
        self.commit_window(window, shutdown).instrument(span).await
    }

    /// Applies one window and acks it; `Ok(false)` if shutdown interrupted the retries.
    ///
    /// If the store refuses the window for good, the changes it takes commit in smaller
    /// transactions and only the events of the ones it refuses are dead-lettered
    /// (`runtime/poison.rs`).
    async fn commit_window(
        &mut self,
        window: Window<S::Ack>,
        shutdown: &mut Shutdown,
    ) -> Result<bool, WorkerError> {
        let started = now();
        self.stats.window_durations.observe(
            started
                .saturating_duration_since(window.opened_at)
                .as_secs_f64(),
        );
        let mut changes = std::mem::take(&mut self.changes);
        changes.clear();
        self.collapse.collapse_into(&window.events, &mut changes);
        let mut store =
            RetryingStore::new(&*self.store, self.config.backoff, &self.stats, shutdown);
        let mut failures = 0u32;
        let poison = match store.apply(&changes, &mut failures).await {
            Applied::Committed(outcome) => {
                // The per-content estimate exists only for this line: skip its pass over the
                // window unless the line is going to be written.
                if tracing::enabled!(tracing::Level::DEBUG) {
                    tracing::debug!(
                        rows = outcome.rows_written,
                        contents = self.deltas.estimate(&changes).len(),
                        "window committed"
                    );
                }
                Vec::new()
            }
            // Shutdown while waiting out an outage: the window stays unacked.
            Applied::Interrupted => return Ok(false),
            Applied::Refused(error) => {
                tracing::warn!(
                    %error,
                    changes = changes.len(),
                    "window refused; searching for the changes the store refuses"
                );
                self.stats.bisections.fetch_add(1, Ordering::Relaxed);
                let attempts = self.config.permanent_attempts;
                let search = poison::search_poison(&mut store, &changes, error, failures, attempts);
                match search.await {
                    Ok(poison) => poison,
                    // What committed stays committed: the window comes back whole after a
                    // restart and finds those rows at equal versions (I2, I4).
                    Err(poison::Interrupted) => return Ok(false),
                }
            }
        };
        let first_failed_at_ms = store.first_failed_at_ms.unwrap_or_else(now_ms);
        if !poison.is_empty() {
            self.dead_letter_poison(&window, poison, first_failed_at_ms)
                .await?;
        }
        self.changes = changes;
        self.source.ack(window.acks.clone()).await?;
        self.stats.windows.fetch_add(1, Ordering::Relaxed);
        let took = now().saturating_duration_since(started);
        self.stats.commit_durations.observe(took.as_secs_f64());
        let size = window.events.len() as u64;
        self.stats.window_sizes.observe(size as f64);
        self.stats.largest_window.fetch_max(size, Ordering::Relaxed);
        let committed_ms = now_ms();
        self.stats
            .last_commit_ms
            .store(committed_ms, Ordering::Relaxed);
        if let Some(oldest) = window.oldest_by_partition.iter().map(|(_, ts)| *ts).min() {
            let lag = committed_ms.saturating_sub(oldest);
            self.stats.event_lag_ms.store(lag, Ordering::Relaxed);
        }
        self.stats
            .event_commit_lag
            .record_window(committed_ms, window.events.iter().map(|e| e.ts_ms));
        {
            let mut lags = self.stats.partition_event_lag_ms.lock();
            for (partition, oldest) in &window.oldest_by_partition {
                lags.insert(*partition, committed_ms.saturating_sub(*oldest));
            }
        }
        self.trending.observe_likes(&window.events);
        self.window.recycle(window);
        Ok(true)
    }

    /// One letter for a window's refused changes: all their events, the first one's error and
    /// attempts. Returns once it is durable, so the window may be acked.
    async fn dead_letter_poison(
        &self,
        window: &Window<S::Ack>,
        poison: Vec<PoisonChange>,
        first_failed_at_ms: u64,
    ) -> Result<(), WorkerError> {
        let events = poison::events_of(&poison, &window.events);
        let changes = poison.len();
        let Some(first) = poison.into_iter().next() else {
            return Ok(());
        };
        tracing::error!(
            error = %first.error,
            changes,
            events = events.len(),
            "dead-lettering the refused changes' events"
        );
        let letter = DeadLetter::store_refused(
            events,
            first.error.to_string(),
            first.attempts,
            first_failed_at_ms,
        );
        self.dead_letters.publish(&letter).await?;
        self.stats.dead_letters.fetch_add(1, Ordering::Relaxed);
        self.stats
            .poison_changes
            .fetch_add(changes as u64, Ordering::Relaxed);
        Ok(())
    }
}
