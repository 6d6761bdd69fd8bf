//! The [`Gate`]: which way each publish goes, and the one safe moment to switch back to live.
//!
//! Publishing is *live* (to the primary) or *spooling* (to the spool, behind what is there).
//! The switch to spooling happens at the first refusal. The switch back must never let a live
//! event overtake a spooled one of the same content, nor leave a record in the spool unseen, so
//! it is taken under the gate's lock and only when (1) every record in the spool is acked by
//! the primary and trimmed, and (2) no publish that chose the spool is still appending (its
//! record would land after the check).
//!
//! Under steady load (2) almost never holds: some append is always waiting for its fsync. So
//! once the drainer has caught up with the spool it *closes* the gate: new publishes wait (for a
//! bounded time) instead of appending, the appends under way finish and are drained, and the
//! gate opens to live publishing and wakes the waiters. A refusal during the drain, or the
//! drainer stopping, cancels the close; the waiters then spool as before. A waiter that has
//! waited [`SWITCH_WAIT`] spools anyway: safe, since the switch waits for its append too.

use likes_shared::log::LogPublisher;
use parking_lot::Mutex;
use std::time::Duration;
use tokio::sync::{watch, Notify};

/// The longest a publish waits for a closing gate to open before it spools instead.
pub(crate) const SWITCH_WAIT: Duration = Duration::from_secs(1);

pub(crate) struct Gate {
    /// A std mutex: held for a few instructions, never across an await.
    state: Mutex<GateState>,
    /// Bumped on every change a waiter cares about (opened, close cancelled); waiters
    /// subscribe under the lock, so none misses the change that frees it.
    changes: watch::Sender<u64>,
    /// Woken when the last append under way finishes, so a caught-up drainer looks again.
    pub(crate) appends_done: Notify,
}

#[derive(Debug, Default)]
struct GateState {
    /// Everything goes to the spool (it is not empty, or the primary refused).
    spooling: bool,
    /// The drainer has caught up: new publishes wait for the switch back instead of appending.
    closing: bool,
    /// Publishes that chose the spool and whose append has not finished.
    appending: usize,
}

/// Where one publish goes.
pub(crate) enum Route<'a> {
    Live,
    Spool(Appending<'a>),
    /// The gate is closing: wait for a change, then route again.
    Wait(watch::Receiver<u64>),
}

/// Counts one append under way until dropped (also when the publish is cancelled: its record
/// may still land, and the drainer reads every record, so it is delivered all the same).
pub(crate) struct Appending<'a> {
    gate: &'a Gate,
}

impl Drop for Appending<'_> {
    fn drop(&mut self) {
        let mut state = self.gate.state.lock();
        state.appending -= 1;
        if state.appending == 0 {
            self.gate.appends_done.notify_one();
        }
    }
}

impl Gate {
    pub(crate) fn new(spooling: bool) -> Self {
        Gate {
            state: Mutex::new(GateState {
                spooling,
                ..GateState::default()
            }),
            changes: watch::channel(0).0,
            appends_done: Notify::new(),
        }
    }

    /// Routes one publish. `may_wait: false` (a publish that already waited) spools even
    /// while the gate is closing.
    pub(crate) fn route(&self, may_wait: bool) -> Route<'_> {
        let mut state = self.state.lock();
        if !state.spooling {
            return Route::Live;
        }
        if state.closing && may_wait {
            return Route::Wait(self.changes.subscribe());
        }
        state.appending += 1;
        Route::Spool(Appending { gate: self })
    }

    /// The primary refused: from now on everything goes to the spool, this event first.
    pub(crate) fn start_spooling(&self) -> Appending<'_> {
        let mut state = self.state.lock();
        if !state.spooling {
            tracing::warn!("primary publisher refused; spooling events locally");
        }
        state.spooling = true;
        state.appending += 1;
        Appending { gate: self }
    }

    /// Called by the drainer when it has drained and acked all it has read. Opens the gate if
    /// the spool is wholly trimmed and no append is under way (see the module doc), and
    /// returns whether publishing is live. Otherwise, if at most `near` records remain,
    /// closes it so the appends under way can finish without new ones behind them.
    pub(crate) fn try_go_live(&self, log: &LogPublisher, near: u64) -> bool {
        let mut state = self.state.lock();
        if !state.spooling {
            return true;
        }
        let backlog = log.durable_offset().saturating_sub(log.acked_offset());
        if state.appending == 0 && backlog == 0 {
            state.spooling = false;
            state.closing = false;
            self.changes.send_modify(|n| *n += 1);
            tracing::info!("spool drained; publishing live again");
            return true;
        }
        if backlog <= near {
            state.closing = true;
        }
        false
    }

    /// The drain cannot finish soon (a refusal, or the drainer stops): waiters spool again.
    pub(crate) fn cancel_closing(&self) {
        let mut state = self.state.lock();
        if state.closing {
            state.closing = false;
            self.changes.send_modify(|n| *n += 1);
        }
    }

    pub(crate) fn is_spooling(&self) -> bool {
        self.state.lock().spooling
    }

    #[cfg(test)]
    pub(crate) fn appending(&self) -> usize {
        self.state.lock().appending
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spool::SpoolConfig;
    use likes_shared::bus::{EventPublisher, EventSource};
    use likes_shared::event::Action;
    use likes_shared::log::{self, LogSource};
    use likes_shared::{ContentId, LikeEvent, UserId};

    fn event() -> LikeEvent {
        LikeEvent {
            event_id: 1,
            user_id: UserId::new(1).expect("user id"),
            content_id: ContentId::new(1).expect("content id"),
            action: Action::Like,
            version: 1,
            ts_ms: 1,
            source: "gate-test".into(),
            fill_epoch: 0,
        }
    }

    fn log_in(dir: &std::path::Path) -> (LogPublisher, LogSource) {
        let config = SpoolConfig {
            dir: dir.to_path_buf(),
            ..SpoolConfig::default()
        };
        log::open(&config.log_config()).expect("log opens")
    }

    fn spooled(route: Route<'_>) -> Appending<'_> {
        match route {
            Route::Spool(appending) => appending,
            Route::Live => panic!("expected the spool, got live"),
            Route::Wait(_) => panic!("expected the spool, got a wait"),
        }
    }

    #[tokio::test]
    async fn publishing_stays_spooled_while_an_append_is_under_way() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (log, _source) = log_in(dir.path());
        let gate = Gate::new(true);
        let appending = spooled(gate.route(true));
        // The spool is empty (nothing durable, nothing to ack), but an append chose it: going
        // live now would let a later event overtake it.
        assert!(!gate.try_go_live(&log, 0));
        drop(appending);
        assert!(gate.try_go_live(&log, 0));
        assert!(matches!(gate.route(true), Route::Live));
    }

    #[tokio::test]
    async fn publishing_stays_spooled_until_every_durable_record_is_acked() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (log, mut source) = log_in(dir.path());
        let gate = Gate::new(true);
        let appending = spooled(gate.route(true));
        log.publish(&event()).await.expect("appended");
        drop(appending);
        assert!(
            !gate.try_go_live(&log, 0),
            "a durable record is not drained yet"
        );
        source.ack(vec![0]).await.expect("acked");
        assert!(gate.try_go_live(&log, 0));
    }

    #[tokio::test]
    async fn a_closing_gate_holds_new_publishes_until_it_opens() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (log, _source) = log_in(dir.path());
        let gate = Gate::new(true);
        let appending = spooled(gate.route(true));
        assert!(!gate.try_go_live(&log, 16), "an append is under way");
        let Route::Wait(waiter) = gate.route(true) else {
            panic!("a closing gate makes new publishes wait");
        };
        // A publish that has waited long enough spools; the switch then waits for it too.
        let late = spooled(gate.route(false));
        drop(appending);
        assert!(!gate.try_go_live(&log, 16));
        assert!(!waiter.has_changed().expect("sender alive"));
        drop(late);
        assert!(gate.try_go_live(&log, 16));
        assert!(
            waiter.has_changed().expect("sender alive"),
            "the waiter is woken"
        );
        assert!(matches!(gate.route(true), Route::Live));
    }

    #[tokio::test]
    async fn a_cancelled_close_sends_waiters_to_the_spool() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (log, _source) = log_in(dir.path());
        let gate = Gate::new(true);
        let appending = spooled(gate.route(true));
        assert!(!gate.try_go_live(&log, 16));
        let Route::Wait(waiter) = gate.route(true) else {
            panic!("a closing gate makes new publishes wait");
        };
        gate.cancel_closing();
        assert!(
            waiter.has_changed().expect("sender alive"),
            "the waiter is woken"
        );
        let _second = spooled(gate.route(true));
        assert_eq!(gate.appending(), 2);
        drop(appending);
    }

    #[tokio::test]
    async fn a_far_behind_drainer_does_not_close_the_gate() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (log, _source) = log_in(dir.path());
        for _ in 0..3 {
            log.publish(&event()).await.expect("appended");
        }
        let gate = Gate::new(true);
        assert!(!gate.try_go_live(&log, 2), "three records are not drained");
        let _spooled = spooled(gate.route(true));
    }

    #[test]
    fn a_refusal_switches_to_the_spool_at_once() {
        let gate = Gate::new(false);
        assert!(matches!(gate.route(true), Route::Live));
        let appending = gate.start_spooling();
        assert!(gate.is_spooling());
        let second = spooled(gate.route(true));
        assert_eq!(gate.appending(), 2);
        drop((appending, second));
        assert_eq!(gate.appending(), 0);
    }
}
