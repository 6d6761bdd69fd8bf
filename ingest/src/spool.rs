//! [`SpooledPublisher`]: ingest keeps answering while Pulsar is down (DESIGN section 8).
//!
//! It wraps the primary publisher (Pulsar, or anything that is an [`EventPublisher`]) and a
//! bounded local spool, which is the embedded durable log in its own directory under
//! `LIKES_DATA_DIR`.
//!
//! # Durability (I3)
//! A publish answers `Ok` only once the event is durable somewhere: acked by the primary, or
//! appended to the spool and fsynced (the log's group commit answers after the fsync). A kill -9
//! after a 2xx therefore loses nothing: on the next start [`SpooledPublisher::open`] finds the
//! spool non-empty and its drainer publishes what is left. The drainer trims the spool (acks the
//! log, which persists its offset and deletes drained segments) only after the primary has acked
//! those events, so a crash in between publishes them again: at-least-once, which the sink makes
//! harmless (I2, it keeps the highest version per row).
//!
//! # Order (I5)
//! One content's events must reach the topic in the order ingest answered them. So the spool is
//! all or nothing: while it holds anything, *every* publish goes to the spool behind what is
//! there, and the drainer publishes it in log order (several at a time, but confirmed in order,
//! and after a refusal it starts again from the first unconfirmed event). Live publishing
//! resumes only once the drainer has the whole spool acked by the primary *and* no append is
//! under way; that decision and the choice of a route are taken under one small lock (the
//! gate, see `gate`), so a live event can never overtake a spooled one that is still
//! undrained, and an event appended to the spool is never skipped (the drainer reads every
//! record of the log). Under steady load some append is always under way, so once the drainer
//! has caught up the gate *closes*: new publishes wait briefly for the switch instead of
//! appending. A refused in-order retry may put a duplicate on the topic: harmless, see above.
//! Events of *concurrent* publishes have no order to keep (neither waited for the other).
//!
//! # Bounds (I7)
//! The spool has a byte budget ([`SpoolConfig::max_bytes`]) and its append queue a capacity;
//! past either, a publish that needs the spool fails with [`BusError::Full`] (503 with
//! Retry-After). [`BusError::Full`] from the primary means *its* in-flight bound is reached:
//! that is overload, not an outage, and is passed on as is instead of being spooled (spooling
//! overload would only move the queue to disk). The drainer keeps at most
//! [`SpoolConfig::drain_in_flight`] events in flight.
//!
//! # Layout
//! - `config` — [`SpoolConfig`].
//! - `gate` — which way a publish goes, and the safe switch back to live publishing.
//! - `drainer` — the task that publishes the spool to the primary and trims it.

mod config;
mod drainer;
mod gate;

pub use config::SpoolConfig;

use crate::metrics::SpoolMetrics;
use async_trait::async_trait;
use gate::{Appending, Gate, Route, SWITCH_WAIT};
use likes_shared::bus::{BusError, DurableMark, EventPublisher, WallClockMarks};
use likes_shared::log::{self, LogPublisher};
use likes_shared::shutdown::Shutdown;
use likes_shared::LikeEvent;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use tokio::task::JoinHandle;
use tokio::time::{timeout_at, Instant};

#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    #[error("opening the spool in {dir}: {source}")]
    Open {
        dir: String,
        #[source]
        source: std::io::Error,
    },
    #[error("spool metrics: {0}")]
    Metrics(#[from] prometheus::Error),
    /// The drainer cannot read or trim the spool; what is spooled stays on disk.
    #[error("spool drainer: {0}")]
    Drain(#[source] BusError),
}

/// Publishes to the primary, or to the local spool while the primary is down or the spool is
/// still draining. Cheap to share (`Arc`); see the module doc for what it promises.
pub struct SpooledPublisher {
    primary: Arc<dyn EventPublisher>,
    log: LogPublisher,
    shared: Arc<SpoolShared>,
    metrics: SpoolMetrics,
    marks: WallClockMarks,
}

/// State the publisher and its drainer share.
pub(crate) struct SpoolShared {
    gate: Gate,
    /// One past the last spooled offset the primary has acked in order (the log's own acked
    /// offset follows it in batches).
    drained: AtomicU64,
    drainer_running: AtomicBool,
}

impl SpooledPublisher {
    /// Opens (or creates) the spool in `config.dir` and starts its drainer, which stops on
    /// `shutdown`. A spool left non-empty by a crash starts in spooling mode and drains.
    pub fn open(
        primary: Arc<dyn EventPublisher>,
        config: SpoolConfig,
        shutdown: Shutdown,
    ) -> Result<(Self, JoinHandle<Result<(), SpoolError>>), SpoolError> {
        Self::open_with_metrics(primary, config, shutdown, SpoolMetrics::new()?)
    }

    /// [`Self::open`], counting into `metrics` (e.g. [`crate::metrics::Metrics::spool`]).
    pub fn open_with_metrics(
        primary: Arc<dyn EventPublisher>,
        config: SpoolConfig,
        shutdown: Shutdown,
        metrics: SpoolMetrics,
    ) -> Result<(Self, JoinHandle<Result<(), SpoolError>>), SpoolError> {
        let (log, source) = log::open(&config.log_config()).map_err(|source| SpoolError::Open {
            dir: config.dir.display().to_string(),
            source,
        })?;
        let acked = log.acked_offset();
        let backlog = log.durable_offset().saturating_sub(acked);
        if backlog > 0 {
            tracing::warn!(backlog, dir = %config.dir.display(), "spool holds events from before; draining them first");
        }
        let shared = Arc::new(SpoolShared {
            gate: Gate::new(backlog > 0),
            drained: AtomicU64::new(acked),
            drainer_running: AtomicBool::new(true),
        });
        metrics.set_from(backlog, &log);
        let drainer = drainer::Drainer {
            primary: primary.clone(),
            log: log.clone(),
            source,
            shared: shared.clone(),
            metrics: metrics.clone(),
            window: config.drain_window(),
            retry: config.retry,
        };
        let handle = tokio::spawn(drainer.run(shutdown));
        let publisher = SpooledPublisher {
            primary,
            log,
            shared,
            metrics,
            marks: WallClockMarks::default(),
        };
        Ok((publisher, handle))
    }

    /// Events in the spool that the primary has not acked yet (for `/readyz` and metrics).
    pub fn depth(&self) -> u64 {
        depth(&self.log, &self.shared)
    }

    /// Whether publishes go to the spool now (it is not empty, or the primary refused last).
    pub fn is_spooling(&self) -> bool {
        self.shared.gate.is_spooling()
    }

    /// Appends `event` to the spool; `Ok` once it is fsynced.
    async fn spool(&self, event: &LikeEvent, appending: Appending<'_>) -> Result<u64, BusError> {
        let appended = self.log.publish(event).await;
        drop(appending);
        match &appended {
            Ok(_) => {
                self.metrics.spooled.inc();
                self.metrics.set_from(self.depth(), &self.log);
            }
            Err(BusError::Full) => tracing::warn!("spool full; refusing the event"),
            Err(error) => tracing::error!(%error, "cannot spool the event"),
        }
        appended
    }
}

pub(crate) fn depth(log: &LogPublisher, shared: &SpoolShared) -> u64 {
    let drained = shared
        .drained
        .load(Ordering::Acquire)
        .max(log.acked_offset());
    log.durable_offset().saturating_sub(drained)
}

#[async_trait]
impl EventPublisher for SpooledPublisher {
    /// The mark is a wall-clock time like `PulsarPublisher`'s (ack or fsync time in
    /// ms), never decreasing. A spooled event reaches the topic later than its mark says; a
    /// progress over these marks must allow for that (nothing forgets on them yet).
    async fn publish(&self, event: &LikeEvent) -> Result<DurableMark, BusError> {
        let mut may_wait = true;
        let wait_until = Instant::now() + SWITCH_WAIT;
        loop {
            match self.shared.gate.route(may_wait) {
                Route::Live => break,
                Route::Spool(appending) => {
                    self.spool(event, appending).await?;
                    return Ok(self.marks.next(0));
                }
                Route::Wait(mut change) => {
                    // Closing for the switch back to live: wait for it, then route again;
                    // past the bound (for all waits of this publish together), spool.
                    if !matches!(timeout_at(wait_until, change.changed()).await, Ok(Ok(()))) {
                        may_wait = false;
                    }
                }
            }
        }
        match self.primary.publish(event).await {
            Ok(mark) => Ok(self.marks.next(mark)),
            Err(BusError::Full) => Err(BusError::Full),
            Err(error) => {
                tracing::warn!(%error, "primary publish failed; spooling the event");
                let appending = self.shared.gate.start_spooling();
                self.spool(event, appending).await?;
                Ok(self.marks.next(0))
            }
        }
    }

    /// Ready when the primary is, or when the spool can take events and is being drained.
    fn is_ready(&self) -> bool {
        self.primary.is_ready()
            || (self.log.is_ready() && self.shared.drainer_running.load(Ordering::Acquire))
    }

    fn spool_depth(&self) -> Option<u64> {
        Some(self.depth())
    }
}
