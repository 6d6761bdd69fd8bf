//! Telling a stalled consumer from an idle one.
//!
//! pulsar-rs has been seen to sit silent after a broker restart: the connection is back, the
//! subscription has a backlog, and nothing arrives. A silent partition is normal when nobody
//! likes anything, and on a partition another worker owns (failover: the broker dispatches each
//! partition to one consumer only). So silence alone proves nothing; the broker's own view does.
//! Nor does silence while the worker is not asking: during a sink outage the worker retries its
//! window and reads nothing, and the receiver queue is full and still. So silence counts only
//! while the worker waits in `recv`, from the moment it started waiting (gaps between calls
//! shorter than [`BUSY_GAP`] are one wait: window ticks cancel and re-enter `recv` all the time).
//! A background task reads every partition's subscription through the admin API (into
//! [`Subscriptions`], which `/metrics` shares) and looks at the partitions silent for
//! `stall_after` that way: if the subscription there has a backlog and
//! the broker dispatches to this worker (or to nobody: our consumer of it is gone), the consumer
//! is stalled. The watch then peeks the entry the partition is stuck on (the one after the
//! subscription's cursor) and reports both; the source passes that entry through the admin API
//! (`passing.rs`) or, failing that, rebuilds the consumer. Either is safe at any time: what was
//! delivered and not acked comes again, and the sink makes that harmless (I2).
//!
//! The watch also looks for a partition on which the broker lists *two* consumers of this
//! worker. pulsar-rs can leave one behind after a broker restart: dropped inside pulsar-rs but
//! still subscribed on a live connection, so what the broker dispatches to it never reaches the
//! worker. Acks cover only delivered entries (`acks.rs`), so nothing is lost, but those entries
//! stay unacked until that consumer goes; a rebuild (a fresh connection) ends it at once. A
//! consumer built less than half of `stall_after` ago is left alone: the broker may not have
//! dropped the previous one's consumers yet.
//!
//! Why a task and not a check inside `recv`: `recv` runs inside the worker's `select!` and is
//! dropped at every window tick, which would cancel an admin call that takes longer than a tick.

use super::subscriptions::{Poll, Subscriptions, POLL_EVERY};
use likes_shared::topics::TopicName;
use likes_sink::pulsar_admin::{HeadEntry, PulsarAdmin};
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;

/// A pause between two `recv` calls longer than this means the worker was busy (committing,
/// waiting out an outage): silence is measured afresh from the next call.
pub(crate) const BUSY_GAP: Duration = Duration::from_secs(1);

/// When each partition last delivered to this worker, when the consumer was (re)built, and
/// whether the worker is waiting for events.
#[derive(Debug)]
pub(crate) struct PartitionActivity {
    inner: Mutex<Activity>,
}

#[derive(Debug)]
struct Activity {
    built_at: Instant,
    last_delivery: HashMap<u32, Instant>,
    in_recv: bool,
    /// When the worker's current wait began.
    waiting_since: Instant,
    last_left_recv: Option<Instant>,
}

/// Marks the worker as waiting in `recv` until dropped (cancellation included).
pub(crate) struct Waiting(Arc<PartitionActivity>);

impl Drop for Waiting {
    fn drop(&mut self) {
        let mut activity = self.0.inner.lock();
        activity.in_recv = false;
        activity.last_left_recv = Some(Instant::now());
    }
}

impl PartitionActivity {
    pub(crate) fn new() -> Self {
        PartitionActivity {
            inner: Mutex::new(Activity {
                built_at: Instant::now(),
                last_delivery: HashMap::new(),
                in_recv: false,
                waiting_since: Instant::now(),
                last_left_recv: None,
            }),
        }
    }

    /// The worker enters `recv`; it waits until the guard is dropped.
    pub(crate) fn waiting(self: &Arc<Self>) -> Waiting {
        let now = Instant::now();
        let mut activity = self.inner.lock();
        let busy_before = activity
            .last_left_recv
            .is_none_or(|left| now.duration_since(left) > BUSY_GAP);
        if busy_before {
            activity.waiting_since = now;
        }
        activity.in_recv = true;
        Waiting(self.clone())
    }

    pub(crate) fn delivered(&self, partition: u32) {
        self.inner
            .lock()
            .last_delivery
            .insert(partition, Instant::now());
    }

    /// A new consumer: every partition gets `stall_after` again to deliver.
    pub(crate) fn rebuilt(&self) {
        self.inner.lock().built_at = Instant::now();
    }

    /// How long the current consumer has existed.
    fn built_for(&self) -> Duration {
        self.inner.lock().built_at.elapsed()
    }

    /// The partitions of `0..partitions` silent for at least `quiet` while the worker waited.
    fn silent(&self, partitions: u32, quiet: Duration) -> Vec<u32> {
        let now = Instant::now();
        let activity = self.inner.lock();
        if !activity.in_recv {
            return Vec::new();
        }
        let since = activity.built_at.max(activity.waiting_since);
        (0..partitions)
            .filter(|p| {
                let last = activity
                    .last_delivery
                    .get(p)
                    .map_or(since, |at| (*at).max(since));
                now.duration_since(last) >= quiet
            })
            .collect()
    }
}

/// What the watch found wrong with a partition.
#[derive(Debug)]
pub(crate) enum Stall {
    /// A backlog and no delivery, with the entry it is stuck on when the broker could peek it.
    Silent {
        partition: u32,
        head: Option<HeadEntry>,
    },
    /// The broker lists more than one consumer of this worker there: rebuild, do not peek.
    Duplicated { partition: u32 },
}

/// The watch over one source's partitions.
pub(crate) struct StallWatch {
    pub admin: PulsarAdmin,
    pub topic: TopicName,
    pub partitions: u32,
    pub subscription: String,
    pub consumer_name: String,
    pub activity: Arc<PartitionActivity>,
    pub subscriptions: Arc<Subscriptions>,
    pub stall_after: Duration,
}

impl StallWatch {
    /// Reads the subscriptions and checks them every [`POLL_EVERY`] (or `stall_after / 2`, if
    /// shorter) until the source drops `stalled`'s receiver; sends the partition found stalled.
    pub(crate) async fn run(self, stalled: mpsc::Sender<Stall>) {
        let every = (self.stall_after / 2)
            .min(POLL_EVERY)
            .max(Duration::from_millis(100));
        let mut ticks = tokio::time::interval(every);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut failing = false;
        loop {
            tokio::select! {
                _ = stalled.closed() => return,
                _ = ticks.tick() => {}
            }
            let poll = Poll {
                admin: &self.admin,
                topic: &self.topic,
                partitions: self.partitions,
                subscription: &self.subscription,
            };
            failing = self.subscriptions.poll(poll, failing).await;
            if let Some(mut stall) = self.find_stalled() {
                if let Stall::Silent { partition, head } = &mut stall {
                    *head = self.peek(*partition).await;
                }
                // Full means a report is already waiting for the source.
                let _ = stalled.try_send(stall);
            }
        }
    }

    /// A stall in the subscriptions as just read. A read from before the consumer was (re)built
    /// may still list the old one's consumers; `settled` leaves a young consumer alone.
    fn find_stalled(&self) -> Option<Stall> {
        let silent = self.activity.silent(self.partitions, self.stall_after);
        let settled = self.activity.built_for() >= self.stall_after / 2;
        for partition in 0..self.partitions {
            let silent = silent.contains(&partition);
            if !silent && !settled {
                continue;
            }
            let Some(state) = self.subscriptions.state(partition) else {
                continue;
            };
            let mine = state
                .consumers
                .iter()
                .filter(|name| **name == self.consumer_name)
                .count();
            if settled && mine > 1 {
                tracing::warn!(
                    partition,
                    consumers = mine,
                    "the broker lists more than one consumer of this worker on the partition"
                );
                return Some(Stall::Duplicated { partition });
            }
            let ours = state
                .active_consumer
                .as_deref()
                .is_none_or(|name| name == self.consumer_name);
            if silent && ours && state.backlog > 0 {
                tracing::warn!(
                    partition,
                    backlog = state.backlog,
                    silent_for = ?self.stall_after,
                    "partition has a backlog but delivers nothing"
                );
                return Some(Stall::Silent {
                    partition,
                    head: None,
                });
            }
        }
        None
    }

    /// The entry `partition` is stuck on, if the broker can read it.
    async fn peek(&self, partition: u32) -> Option<HeadEntry> {
        let topic = self.topic.partition(partition);
        match self.admin.head_entry(&topic, &self.subscription).await {
            Ok(head) => head,
            Err(error) => {
                // A broker that cannot unpack the entry either answers 500 here: the consumer is
                // rebuilt, as for any stall, and the partition stays behind that entry.
                tracing::warn!(%error, partition, "cannot peek the stalled partition's next entry");
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_partition_is_silent_until_it_delivers_and_a_rebuild_resets_all() {
        let activity = Arc::new(PartitionActivity::new());
        let _waiting = activity.waiting();
        let quiet = Duration::from_secs(10);
        assert!(activity.silent(2, quiet).is_empty());
        tokio::time::advance(Duration::from_secs(6)).await;
        activity.delivered(1);
        tokio::time::advance(Duration::from_secs(6)).await;
        assert_eq!(activity.silent(2, quiet), vec![0]);
        activity.rebuilt();
        assert!(activity.silent(2, quiet).is_empty());
        tokio::time::advance(Duration::from_secs(11)).await;
        assert_eq!(activity.silent(2, quiet), vec![0, 1]);
    }

    #[tokio::test(start_paused = true)]
    async fn silence_counts_only_while_the_worker_waits() {
        let activity = Arc::new(PartitionActivity::new());
        let quiet = Duration::from_secs(10);
        // Busy in the sink for a minute: nothing is silent.
        tokio::time::advance(Duration::from_secs(60)).await;
        assert!(activity.silent(1, quiet).is_empty());
        // Back in recv: silence starts now, and short gaps (window ticks) do not reset it.
        let waiting = activity.waiting();
        tokio::time::advance(Duration::from_secs(6)).await;
        drop(waiting);
        tokio::time::advance(Duration::from_millis(50)).await;
        let _waiting = activity.waiting();
        assert!(activity.silent(1, quiet).is_empty());
        tokio::time::advance(Duration::from_secs(5)).await;
        assert_eq!(activity.silent(1, quiet), vec![0]);
    }
}
