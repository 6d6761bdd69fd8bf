//! Passing an entry the consumer cannot unpack, through the admin API.
//!
//! pulsar-rs (6.9.1) turns an entry it cannot unpack (a codec it was built without, such as the
//! Snappy or ZSTD that Pulsar's Java client writes; a corrupt block; a malformed batch) into an
//! error without a message id: the worker can neither process nor ack it, and the partition's
//! consumer fails on it again after every rebuild, so the partition would stop behind it for
//! good. The broker can read it: a peek of the subscription's next entry answers it
//! uncompressed. So when the stall watch finds a partition stuck and peeks its next entry, the
//! source hands that entry's messages to the worker like any others (events apply, the rest is
//! dead-lettered), and once the window holding the entry's last message has committed, it moves
//! the subscription past that entry and rebuilds the consumer, which goes on after it.
//!
//! Why this is safe whatever the reason for the stall (I2, I3): the peeked entry is the first
//! one after the cursor, so everything before it was acked, hence committed; the subscription
//! moves only through that entry, and only after it committed. A consumer that was merely stuck
//! delivers the entry again after the rebuild, and a second apply is a no-op. If the cursor had
//! already moved past the entry meanwhile, moving it back only redelivers.

use super::acks::{passed_entries, PulsarAck};
use likes_shared::bus::Received;
use likes_shared::topics::TopicName;
use likes_sink::pulsar_admin::{HeadEntry, PulsarAdmin};
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

pub(crate) struct EntryPassing {
    admin: PulsarAdmin,
    topic: TopicName,
    subscription: String,
    /// Peeked messages not yet handed to the worker.
    queued: VecDeque<Received<PulsarAck>>,
    /// Per partition, the entry being passed: peeked, not yet committed.
    passing: HashMap<u32, (u64, u64)>,
    /// Entries the subscription was moved past.
    passed: Arc<AtomicU64>,
}

impl EntryPassing {
    /// Counts each entry it moves past in `passed`.
    pub(crate) fn new(
        admin: PulsarAdmin,
        topic: TopicName,
        subscription: String,
        passed: Arc<AtomicU64>,
    ) -> Self {
        EntryPassing {
            admin,
            topic,
            subscription,
            queued: VecDeque::new(),
            passing: HashMap::new(),
            passed,
        }
    }

    /// Queues the messages of `head`, the entry `partition` is stuck on. `false` when that
    /// partition is passing an entry already: its window has not committed yet, so the stall
    /// is not this entry's doing and the caller rebuilds the consumer instead.
    pub(crate) fn take(&mut self, partition: u32, head: HeadEntry) -> bool {
        if self.passing.contains_key(&partition) {
            return false;
        }
        let id = (head.ledger_id, head.entry_id);
        let messages = head.messages();
        tracing::warn!(
            partition,
            ledger = id.0,
            entry = id.1,
            messages = messages.len(),
            "the partition is stuck on an entry; reading it through the admin API"
        );
        let count = messages.len();
        for (index, payload) in messages.into_iter().enumerate() {
            let ack = PulsarAck::peeked(partition, id, index, count);
            self.queued
                .push_back(Received::decode(payload, ack, partition));
        }
        self.passing.insert(partition, id);
        true
    }

    /// The next peeked message for the worker.
    pub(crate) fn next(&mut self) -> Option<Received<PulsarAck>> {
        self.queued.pop_front()
    }

    /// After a commit of `acks`: moves the subscription past every peeked entry whose messages
    /// all committed; returns how many it moved past.
    pub(crate) async fn pass(&mut self, acks: &[PulsarAck]) -> usize {
        // Every peeked message's entry is in `passing` until its last message passes here, so
        // with none there a window holds no peeked message: no pass over its acks.
        if self.passing.is_empty() {
            return 0;
        }
        let mut moved = 0;
        for ack in passed_entries(acks) {
            let partition = ack.partition;
            if self.passing.get(&partition) == Some(&(ack.ledger_id, ack.entry_id)) {
                // Done either way: a failed move leaves the entry first, to be peeked again.
                self.passing.remove(&partition);
            }
            let topic = self.topic.partition(partition);
            match self
                .admin
                .skip_through(&topic, &self.subscription, ack.ledger_id, ack.entry_id)
                .await
            {
                Ok(()) => {
                    tracing::info!(
                        partition,
                        ledger = ack.ledger_id,
                        entry = ack.entry_id,
                        "committed an entry the consumer could not read; moved past it"
                    );
                    self.passed.fetch_add(1, Ordering::Relaxed);
                    moved += 1;
                }
                Err(error) => tracing::warn!(
                    %error,
                    partition,
                    "cannot move the subscription past a committed entry; it will be read again"
                ),
            }
        }
        moved
    }
}
