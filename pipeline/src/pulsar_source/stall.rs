//! Telling a stalled consumer from an idle one.
//!
//! pulsar-rs has been seen to sit silent after a broker restart: the connection is back, the
//! subscription has a backlog, and nothing arrives. A silent partition is normal when nobody
//! likes anything, and on a partition another worker owns (failover: the broker dispatches each
//! partition to one consumer only). So silence alone proves nothing; the broker's own view does.
//! A background task looks at the partitions this worker has heard nothing from for
//! `stall_after` and asks the admin API about each: if the subscription there has a backlog and
//! the broker dispatches to this worker (or to nobody: our consumer of it is gone), the consumer
//! is stalled and the source rebuilds it. Rebuilding is safe at any time: what was delivered and
//! not acked comes again, and the sink makes that harmless (I2).
//!
//! Why a task and not a check inside `recv`: `recv` runs inside the worker's `select!` and is
//! dropped at every window tick, which would cancel an admin call that takes longer than a tick.

use likes_shared::topics::TopicName;
use likes_sink::pulsar_admin::PulsarAdmin;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;

/// When each partition last delivered to this worker, and when the consumer was (re)built.
#[derive(Debug)]
pub(crate) struct PartitionActivity {
    inner: Mutex<Activity>,
}

#[derive(Debug)]
struct Activity {
    built_at: Instant,
    last_delivery: HashMap<u32, Instant>,
}

impl PartitionActivity {
    pub(crate) fn new() -> Self {
        PartitionActivity {
            inner: Mutex::new(Activity {
                built_at: Instant::now(),
                last_delivery: HashMap::new(),
            }),
        }
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

    /// The partitions of `0..partitions` silent for at least `quiet`.
    fn silent(&self, partitions: u32, quiet: Duration) -> Vec<u32> {
        let now = Instant::now();
        let activity = self.inner.lock();
        (0..partitions)
            .filter(|p| {
                let last = activity
                    .last_delivery
                    .get(p)
                    .map_or(activity.built_at, |at| (*at).max(activity.built_at));
                now.duration_since(last) >= quiet
            })
            .collect()
    }
}

/// The watch over one source's partitions.
pub(crate) struct StallWatch {
    pub admin: PulsarAdmin,
    pub topic: TopicName,
    pub partitions: u32,
    pub subscription: String,
    pub consumer_name: String,
    pub activity: Arc<PartitionActivity>,
    pub stall_after: Duration,
}

impl StallWatch {
    /// Checks every `stall_after / 2` until the source drops `stalled`'s receiver; sends the
    /// partition found stalled.
    pub(crate) async fn run(self, stalled: mpsc::Sender<u32>) {
        let every = (self.stall_after / 2).max(Duration::from_millis(100));
        let mut ticks = tokio::time::interval(every);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = stalled.closed() => return,
                _ = ticks.tick() => {}
            }
            if let Some(partition) = self.find_stalled().await {
                // Full means a report is already waiting for the source.
                let _ = stalled.try_send(partition);
            }
        }
    }

    async fn find_stalled(&self) -> Option<u32> {
        for partition in self.activity.silent(self.partitions, self.stall_after) {
            let topic = TopicName {
                local: format!("{}-partition-{partition}", self.topic.local),
                ..self.topic.clone()
            };
            let state = match self
                .admin
                .subscription_state(&topic, &self.subscription)
                .await
            {
                Ok(Some(state)) => state,
                Ok(None) => continue,
                Err(error) => {
                    tracing::debug!(%error, partition, "stall check: no stats");
                    continue;
                }
            };
            let ours = state
                .active_consumer
                .as_deref()
                .is_none_or(|name| name == self.consumer_name);
            if ours && state.backlog > 0 {
                tracing::warn!(
                    partition,
                    backlog = state.backlog,
                    silent_for = ?self.stall_after,
                    "partition has a backlog but delivers nothing; rebuilding the consumer"
                );
                return Some(partition);
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_partition_is_silent_until_it_delivers_and_a_rebuild_resets_all() {
        let activity = PartitionActivity::new();
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
}
