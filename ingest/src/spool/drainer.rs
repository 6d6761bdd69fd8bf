//! The drainer: publishes the spool to the primary in log order and trims it behind the acks.
//!
//! One task owns the spool's [`LogSource`]. It keeps up to `window` events in flight to the
//! primary (a [`FuturesOrdered`], so answers are taken in log order), and an event counts as
//! drained only once it *and every event before it* is acked by the primary. The first refusal
//! drops the rest of the window, waits (full-jitter backoff) and starts again from that event:
//! events go out again in order, and one already acked after the refused one is sent twice,
//! which the sink makes harmless. The log is acked (offset persisted, drained segments deleted)
//! in batches behind the drained offset; whatever is not yet acked there is published again
//! after a crash.
//!
//! When nothing is left to drain, the drainer asks the gate to switch back to live publishing
//! (see the module doc of `spool`); until the gate agrees it waits for more records or for the
//! appends under way to finish.

use super::{depth, SpoolError, SpoolShared};
use crate::metrics::SpoolMetrics;
use futures::future::BoxFuture;
use futures::stream::{FuturesOrdered, StreamExt};
use likes_shared::bus::{BusError, DurableMark, EventPublisher, EventSource, Received};
use likes_shared::log::{LogPublisher, LogSource};
use likes_shared::retry::Backoff;
use likes_shared::shutdown::Shutdown;
use likes_shared::LikeEvent;
use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// The log is acked at least this often while draining (each ack is an fsync and a rename).
const ACK_EVERY: u64 = 512;

pub(crate) struct Drainer {
    pub primary: Arc<dyn EventPublisher>,
    pub log: LogPublisher,
    pub source: LogSource,
    pub shared: Arc<SpoolShared>,
    pub metrics: SpoolMetrics,
    pub window: usize,
    pub retry: Backoff,
}

/// Read from the spool, not yet drained, in log order. `None` for a record that does not
/// decode: it cannot be published, so it is skipped (logged) and acked with the rest.
struct Pending {
    offset: u64,
    event: Option<LikeEvent>,
}

type Publish = BoxFuture<'static, Result<DurableMark, BusError>>;

impl Drainer {
    pub(crate) async fn run(mut self, mut shutdown: Shutdown) -> Result<(), SpoolError> {
        let result = self.drain(&mut shutdown).await;
        self.shared.drainer_running.store(false, Ordering::Release);
        self.shared.gate.cancel_closing();
        if let Err(error) = &result {
            tracing::error!(%error, "spool drainer stopped; spooled events stay on disk");
        }
        result
    }

    async fn drain(&mut self, shutdown: &mut Shutdown) -> Result<(), SpoolError> {
        // Records read and not yet drained; the first `in_flight.len()` of them are in flight.
        let mut pending: VecDeque<Pending> = VecDeque::with_capacity(self.window);
        let mut in_flight: FuturesOrdered<Publish> = FuturesOrdered::new();
        let mut attempt: u32 = 0;
        let mut unacked: u64 = 0;
        loop {
            while in_flight.len() < pending.len() {
                let next = &pending[in_flight.len()];
                in_flight.push_back(self.send(next.event.clone()));
            }
            // Ack in batches while behind, and at once when caught up (the switch back to live
            // needs the spool trimmed): an ack is an fsync, and acking every time the window
            // runs dry would slow the drain to the pace of the appends it has to outrun.
            let caught_up = pending.is_empty()
                && self.shared.drained.load(Ordering::Acquire) >= self.log.durable_offset();
            if unacked >= ACK_EVERY || (unacked > 0 && caught_up) {
                self.ack().await?;
                unacked = 0;
            }
            if pending.is_empty() && unacked == 0 {
                self.shared.gate.try_go_live(&self.log, self.window as u64);
            }
            tokio::select! {
                biased;
                _ = shutdown.wait() => break,
                Some(answer) = in_flight.next(), if !in_flight.is_empty() => match answer {
                    Ok(_) => {
                        attempt = 0;
                        if let Some(done) = pending.pop_front() {
                            self.shared.drained.store(done.offset + 1, Ordering::Release);
                            self.metrics.drained.inc();
                            unacked += 1;
                        }
                        self.set_depth();
                    }
                    Err(error) => {
                        self.shared.gate.cancel_closing();
                        in_flight = FuturesOrdered::new();
                        let wait = self.retry.delay(attempt);
                        attempt = attempt.saturating_add(1);
                        tracing::warn!(%error, ?wait, backlog = depth(&self.log, &self.shared), "primary refused a spooled event; retrying in order");
                        if unacked > 0 {
                            self.ack().await?;
                            unacked = 0;
                        }
                        tokio::select! {
                            biased;
                            _ = shutdown.wait() => break,
                            _ = tokio::time::sleep(wait) => {}
                        }
                    }
                },
                received = self.source.recv(), if pending.len() < self.window => {
                    match received.map_err(SpoolError::Drain)? {
                        Some(Received::Event(delivery)) => pending.push_back(Pending {
                            offset: delivery.ack,
                            event: Some(delivery.event),
                        }),
                        Some(Received::Undecodable(record)) => {
                            tracing::error!(error = %record.error, offset = record.ack, "undecodable spool record; skipped");
                            pending.push_back(Pending { offset: record.ack, event: None });
                        }
                        None => return Err(SpoolError::Drain(BusError::Unavailable("spool log closed".into()))),
                    }
                }
                // Drained, but an append was under way when the gate was asked: ask again
                // once it is done (its record, if it made it, arrives through `recv` anyway).
                _ = self.shared.gate.appends_done.notified(), if pending.is_empty() => {}
            }
        }
        // Stopping: trim what the primary has acked; everything else stays for the next start.
        if unacked > 0 {
            self.ack().await?;
        }
        Ok(())
    }

    /// Publishes one spooled event to the primary; a skipped record "succeeds" at once.
    fn send(&self, event: Option<LikeEvent>) -> Publish {
        let primary = self.primary.clone();
        Box::pin(async move {
            match event {
                Some(event) => primary.publish(&event).await,
                None => Ok(0),
            }
        })
    }

    /// Acks the log up to the drained offset: persists it and deletes drained segments.
    async fn ack(&mut self) -> Result<(), SpoolError> {
        let drained = self.shared.drained.load(Ordering::Acquire);
        if drained == 0 || drained <= self.source.acked_offset() {
            return Ok(());
        }
        self.source
            .ack(vec![drained - 1])
            .await
            .map_err(SpoolError::Drain)?;
        self.set_depth();
        Ok(())
    }

    fn set_depth(&self) {
        self.metrics
            .set_from(depth(&self.log, &self.shared), &self.log);
    }
}
