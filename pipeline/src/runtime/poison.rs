//! Finding the poison in a window the store refuses for good.
//!
//! A window commits in one transaction, so one change the store can never take (a value a column
//! cannot hold, a row a constraint refuses) makes the whole window fail permanently. Dead-lettering
//! the window would park the good likes around that change until someone replays them, and leave
//! them out of the counts meanwhile (issue 8: "a poison record in a window must not dead-letter the
//! good events around it"). So on a permanent refusal the worker searches: it splits the refused
//! changes in halves and applies each half in its own transaction, splits again whatever is
//! refused, and stops at single changes. Only a change the store refuses on its own
//! [`WorkerConfig::permanent_attempts`] times is poison; everything else has committed by then,
//! and only the poison's events are dead-lettered.
//!
//! Why halves, not one row at a time: a window is thousands of changes, and a transaction per row
//! would be thousands of round trips for one bad row. Halving costs at most two calls per level
//! for each poison change, O(k log n) calls for k poison changes among n, and nothing at all
//! unless a window is refused.
//!
//! Why committing halves is safe: apply is idempotent by version (I2, I4). If the worker stops
//! mid-search the window stays unacked and comes back whole; the halves that already committed
//! then find their rows at equal versions and write nothing, and counts move only by transitions.
//!
//! Why outages are waited out inside the search: an outage is not the window's fault (DESIGN
//! section 8), so a transient error on a half is retried with the same backoff as a whole window,
//! consumption stays paused, and shutdown interrupts the wait with the window unacked. And since
//! a store cannot know every error code an outage may bring, a single change refused while the
//! store does not answer a ping is not counted against it: the search waits and tries again.
//!
//! [`WorkerConfig::permanent_attempts`]: super::WorkerConfig::permanent_attempts

use super::WorkerStats;
use likes_shared::hlc::now_ms;
use likes_shared::retry::Backoff;
use likes_shared::shutdown::Shutdown;
use likes_shared::store::{ApplyOutcome, LikeChange, LikeStore, StoreError};
use likes_shared::LikeEvent;
use std::collections::HashSet;
use std::ops::Range;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;
use tracing::Instrument;

/// The store as the worker calls it: outages waited out with backoff until shutdown.
pub(super) struct RetryingStore<'a> {
    store: &'a dyn LikeStore,
    backoff: Backoff,
    stats: &'a WorkerStats,
    shutdown: &'a mut Shutdown,
    /// When the window's first call failed, transiently or not: the dead letter's
    /// `first_failed_at_ms`.
    pub first_failed_at_ms: Option<u64>,
}

/// How one [`RetryingStore::apply`] ended.
pub(super) enum Applied {
    Committed(ApplyOutcome),
    /// Refused for good: applying the same changes again cannot help.
    Refused(StoreError),
    /// Shutdown came while waiting out an outage; nothing of these changes committed.
    Interrupted,
}

/// Shutdown came during a search; what committed stays committed, the window stays unacked.
pub(super) struct Interrupted;

/// A change the store refused on its own `permanent_attempts` times: its key's events go to the
/// dead letters.
#[derive(Debug)]
pub(super) struct PoisonChange {
    pub change: LikeChange,
    /// The last refusal.
    pub error: StoreError,
    /// Failed calls that held this change, the window's own included.
    pub attempts: u32,
}

impl<'a> RetryingStore<'a> {
    pub fn new(
        store: &'a dyn LikeStore,
        backoff: Backoff,
        stats: &'a WorkerStats,
        shutdown: &'a mut Shutdown,
    ) -> Self {
        RetryingStore {
            store,
            backoff,
            stats,
            shutdown,
            first_failed_at_ms: None,
        }
    }

    /// Applies `changes` in one transaction, retrying outages, until it commits, is refused for
    /// good, or shutdown interrupts a wait. Adds each failed call to `failures`.
    pub async fn apply(&mut self, changes: &[LikeChange], failures: &mut u32) -> Applied {
        let mut attempt = 0u32;
        loop {
            let started = std::time::Instant::now();
            let transaction = tracing::info_span!(
                "apply_window",
                otel.kind = "client",
                db.operation.name = "apply_window",
                changes = changes.len(),
            );
            let applied = self
                .store
                .apply_window(changes)
                .instrument(transaction)
                .await;
            self.stats
                .transactions
                .observe(started.elapsed().as_secs_f64());
            let error = match applied {
                Ok(outcome) => {
                    self.stats
                        .rows_written
                        .fetch_add(outcome.rows_written as u64, Relaxed);
                    return Applied::Committed(outcome);
                }
                Err(error) => error,
            };
            self.first_failed_at_ms.get_or_insert_with(now_ms);
            *failures = failures.saturating_add(1);
            if !error.is_transient() {
                return Applied::Refused(error);
            }
            self.stats.retries.fetch_add(1, Relaxed);
            if matches!(error, StoreError::Conflict(_)) {
                self.stats.write_conflicts.fetch_add(1, Relaxed);
            }
            let wait = self.backoff.delay(attempt);
            tracing::warn!(
                %error,
                attempt,
                ?wait,
                changes = changes.len(),
                "apply failed; retrying"
            );
            attempt = attempt.saturating_add(1);
            if !self.sleep(wait).await {
                return Applied::Interrupted;
            }
        }
    }

    /// Whether the store answers a ping: a refusal from a store that does not is an outage.
    async fn answers_ping(&mut self) -> bool {
        self.store.ping().await.is_ok()
    }

    /// Waits `wait`; `false` if shutdown came first.
    async fn sleep(&mut self, wait: Duration) -> bool {
        tokio::select! {
            biased;
            _ = self.shutdown.wait() => false,
            _ = tokio::time::sleep(wait) => true,
        }
    }
}

/// Changes the search still has to apply: a slice of the window's changes, with the failed calls
/// that already held them.
struct Suspect {
    range: Range<usize>,
    failures: u32,
    /// Times the store refused this range as a single change.
    refused_alone: u32,
}

/// Commits every change of a refused window that the store takes and returns the ones it refuses
/// on their own `permanent_attempts` times (`0` counts as `1`), in the window's order.
///
/// `refused` and `failures` come from the window's own call: its error and how many calls failed.
pub(super) async fn search_poison(
    store: &mut RetryingStore<'_>,
    changes: &[LikeChange],
    refused: StoreError,
    failures: u32,
    permanent_attempts: u32,
) -> Result<Vec<PoisonChange>, Interrupted> {
    let mut search = Search {
        changes,
        permanent_attempts,
        suspects: Vec::new(),
        poison: Vec::new(),
    };
    let window = Suspect {
        range: 0..changes.len(),
        failures,
        refused_alone: 0,
    };
    search.after_refusal(window, refused);
    let mut outage_waits = 0u32;
    while let Some(mut suspect) = search.suspects.pop() {
        if suspect.refused_alone > 0 {
            // Another chance for a single refused change, in case the refusal was an outage
            // classified as permanent; spaced like outage retries.
            let wait = store.backoff.delay(suspect.refused_alone - 1);
            if !store.sleep(wait).await {
                return Err(Interrupted);
            }
        }
        let slice = &changes[suspect.range.clone()];
        match store.apply(slice, &mut suspect.failures).await {
            Applied::Committed(_) => {}
            Applied::Refused(error) if suspect.range.len() == 1 && !store.answers_ping().await => {
                // Refused while the store cannot even answer a ping: an outage behind an error
                // the store did not recognise as one. Waited out like any outage; it does not
                // count as a refusal of this change.
                tracing::warn!(%error, "change refused while the store is unreachable; waiting");
                if !store.sleep(store.backoff.delay(outage_waits)).await {
                    return Err(Interrupted);
                }
                outage_waits = outage_waits.saturating_add(1);
                search.suspects.push(suspect);
            }
            Applied::Refused(error) => search.after_refusal(suspect, error),
            Applied::Interrupted => return Err(Interrupted),
        }
    }
    Ok(search.poison)
}

/// The state of one search over a window's changes.
struct Search<'c> {
    changes: &'c [LikeChange],
    permanent_attempts: u32,
    /// Ranges to apply next, depth first with the earlier half on top: at most two per level of
    /// halving, so O(log n).
    suspects: Vec<Suspect>,
    poison: Vec<PoisonChange>,
}

impl Search<'_> {
    /// Splits a refused range in halves to apply next, tries a single change again, or, once the
    /// store has refused it on its own `permanent_attempts` times, declares it poison.
    fn after_refusal(&mut self, suspect: Suspect, error: StoreError) {
        let Range { start, end } = suspect.range;
        if end - start > 1 {
            let middle = start + (end - start) / 2;
            for range in [middle..end, start..middle] {
                self.suspects.push(Suspect {
                    range,
                    failures: suspect.failures,
                    refused_alone: 0,
                });
            }
            return;
        }
        // One change; a window is never empty, but a refused empty one would have nothing to find.
        let &[change] = &self.changes[start..end] else {
            return;
        };
        if suspect.refused_alone + 1 >= self.permanent_attempts {
            tracing::error!(
                %error,
                content_id = change.content_id.get(),
                attempts = suspect.failures,
                "change refused on its own; dead-lettering its events"
            );
            self.poison.push(PoisonChange {
                change,
                error,
                attempts: suspect.failures,
            });
        } else {
            tracing::warn!(
                %error,
                refusals = suspect.refused_alone + 1,
                "change refused on its own; trying it again"
            );
            self.suspects.push(Suspect {
                refused_alone: suspect.refused_alone + 1,
                ..suspect
            });
        }
    }
}

/// The window's events for the poison changes' (user, content) keys, in window order: every
/// event a poison change collapsed, older versions included, so a replay carries them all.
pub(super) fn events_of(poison: &[PoisonChange], events: &[LikeEvent]) -> Vec<LikeEvent> {
    let keys: HashSet<(u64, u64)> = poison
        .iter()
        .map(|p| (p.change.user_id.get(), p.change.content_id.get()))
        .collect();
    events
        .iter()
        .filter(|e| keys.contains(&(e.user_id.get(), e.content_id.get())))
        .cloned()
        .collect()
}
