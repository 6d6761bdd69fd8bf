//! [`Subscriptions`]: the broker's view of the worker's subscription on each partition, read
//! through the admin API by the stall watch and shared with `/metrics`.
//!
//! # Why one poll
//! The stall watch needs each partition's consumers and backlog; the lag gauges need the backlog
//! of the partitions the broker dispatches to this worker. Both come from the same stats call, so
//! one poll feeds both: one admin call per partition per [`POLL_EVERY`] and worker, not two
//! pollers each reading every partition.

use likes_shared::topics::TopicName;
use likes_sink::pulsar_admin::{PulsarAdmin, SubscriptionState};
use parking_lot::Mutex;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

/// How often the partitions' stats are read (more often when `stall_after / 2` is shorter).
pub const POLL_EVERY: Duration = Duration::from_secs(5);

/// Each partition's subscription as last read.
#[derive(Debug, Default)]
pub struct Subscriptions {
    states: Mutex<BTreeMap<u32, SubscriptionState>>,
    /// Partition stats the admin API did not give: while it fails, those partitions are missing
    /// here (and their backlog gauges with them), and this says why.
    poll_errors: AtomicU64,
}

/// What one poll asks about.
pub(super) struct Poll<'a> {
    pub admin: &'a PulsarAdmin,
    pub topic: &'a TopicName,
    pub partitions: u32,
    pub subscription: &'a str,
}

impl Subscriptions {
    /// The backlog of each partition the broker dispatches to `consumer`, as last read.
    pub fn owned_backlog(&self, consumer: &str) -> Vec<(u32, u64)> {
        self.states
            .lock()
            .iter()
            .filter(|(_, s)| s.active_consumer.as_deref() == Some(consumer))
            .map(|(p, s)| (*p, s.backlog))
            .collect()
    }

    pub fn poll_errors(&self) -> u64 {
        self.poll_errors.load(Relaxed)
    }

    /// `partition`'s subscription as last read; `None` if the last read gave nothing.
    pub(crate) fn state(&self, partition: u32) -> Option<SubscriptionState> {
        self.states.lock().get(&partition).cloned()
    }

    /// Records what a read of `partition` gave (`None`: no subscription there, or no answer).
    pub(crate) fn set(&self, partition: u32, state: Option<SubscriptionState>) {
        let mut states = self.states.lock();
        match state {
            Some(state) => states.insert(partition, state),
            None => states.remove(&partition),
        };
    }

    /// Reads every partition once. Returns whether some read failed; `was_failing` (the last
    /// poll's answer) makes it say so once when reads start failing and once when they work again.
    pub(super) async fn poll(&self, poll: Poll<'_>, was_failing: bool) -> bool {
        let mut failed = None;
        for partition in 0..poll.partitions {
            let topic = poll.topic.partition(partition);
            match poll
                .admin
                .subscription_state(&topic, poll.subscription)
                .await
            {
                Ok(state) => self.set(partition, state),
                Err(error) => {
                    self.poll_errors.fetch_add(1, Relaxed);
                    self.set(partition, None);
                    failed = Some((partition, error));
                }
            }
        }
        match (&failed, was_failing) {
            (Some((partition, error)), false) => {
                tracing::warn!(%error, partition, "subscription poll: the admin API gave no stats")
            }
            (None, true) => tracing::info!("subscription poll: the admin API answers again"),
            _ => {}
        }
        failed.is_some()
    }
}
