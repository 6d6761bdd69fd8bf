//! Which cumulative acks a committed run of deliveries allows, one per partition.
//!
//! The broker keeps one cursor per partition and moves it by whole *entries*: ingest batches
//! events, so one entry holds up to a thousand messages, and Pulsar (with batch-index acks off,
//! the default) acks a batch message's entry as a whole, cumulative or not. A window closes on a
//! count or a timer, so it can end in the middle of an entry; acking that entry would ack its
//! later messages too, which sit in the next, uncommitted window. A crash then would lose them.
//!
//! So an entry is acked only through its *last* message. Acks arrive in delivery order and a
//! partition's entries are delivered in order, each batch whole and in index order, so when the
//! last message of an entry is handed to `ack`, every message of that entry and of every entry
//! before it has been delivered and (the worker commits windows in order) committed. The plan
//! is stateless: a window that holds only the head of an entry acks nothing for it, and the
//! window holding its tail acks it.
//!
//! Why "the last complete entry in delivery order" and not "the highest id": after a consumer is
//! rebuilt, the broker redelivers from its cursor and ids go back; both would be safe (everything
//! below an id delivered to this worker was delivered to it before), but the delivery order needs
//! no comparison of ids across ledgers. An ack lower than the cursor is ignored by the broker.
//!
//! A message the source read through the admin API (`passing.rs`: an entry the consumer cannot
//! unpack) is *peeked*: the consumer never delivered it, so it cannot ack it; once its entry's
//! last message commits, the source moves the subscription past that entry instead.

use pulsar::message::proto::MessageIdData;
use std::collections::BTreeMap;

/// The handle of one delivered message: where to ack it and whether it ends its entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PulsarAck {
    pub partition: u32,
    pub ledger_id: u64,
    pub entry_id: u64,
    /// `(index, size)` when the message came in a batch entry of `size` messages.
    pub batch: Option<(i32, i32)>,
    /// Read through the admin API, not delivered by the consumer.
    pub peeked: bool,
}

impl PulsarAck {
    pub(crate) fn new(partition: u32, id: &MessageIdData, batch_size: Option<i32>) -> Self {
        PulsarAck {
            partition,
            ledger_id: id.ledger_id,
            entry_id: id.entry_id,
            batch: id.batch_index.zip(batch_size),
            peeked: false,
        }
    }

    /// Message `index` of the `count` the source peeked from entry `(ledger_id, entry_id)`.
    pub(crate) fn peeked(
        partition: u32,
        (ledger_id, entry_id): (u64, u64),
        index: usize,
        count: usize,
    ) -> Self {
        let to_i32 = |n: usize| i32::try_from(n).unwrap_or(i32::MAX);
        PulsarAck {
            partition,
            ledger_id,
            entry_id,
            batch: (count > 1).then(|| (to_i32(index), to_i32(count))),
            peeked: true,
        }
    }

    /// Whether this is the last message of its entry (or an entry of its own).
    pub fn ends_entry(&self) -> bool {
        match self.batch {
            Some((index, size)) => index >= size - 1,
            None => true,
        }
    }

    /// The id of the whole entry, as a cumulative ack sends it: no batch index, so no broker
    /// setting can read it as "part of the entry".
    pub(crate) fn entry_id(&self) -> MessageIdData {
        MessageIdData {
            ledger_id: self.ledger_id,
            entry_id: self.entry_id,
            ..MessageIdData::default()
        }
    }
}

/// The cumulative ack each partition may take after `acks` (in delivery order) committed: its
/// last complete entry the consumer delivered, if any.
pub(crate) fn cumulative_acks(acks: &[PulsarAck]) -> Vec<PulsarAck> {
    let mut last = BTreeMap::new();
    for ack in acks.iter().filter(|a| a.ends_entry() && !a.peeked) {
        last.insert(ack.partition, *ack);
    }
    last.into_values().collect()
}

/// The peeked entries whose every message is among `acks` (committed): the source moves the
/// subscription past each.
pub(crate) fn passed_entries(acks: &[PulsarAck]) -> Vec<PulsarAck> {
    acks.iter()
        .filter(|a| a.peeked && a.ends_entry())
        .copied()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn single(partition: u32, entry: u64) -> PulsarAck {
        PulsarAck {
            partition,
            ledger_id: 7,
            entry_id: entry,
            batch: None,
            peeked: false,
        }
    }

    fn batched(partition: u32, entry: u64, index: i32, size: i32) -> PulsarAck {
        PulsarAck {
            batch: Some((index, size)),
            ..single(partition, entry)
        }
    }

    fn entries(plan: &[PulsarAck]) -> Vec<(u32, u64)> {
        plan.iter().map(|a| (a.partition, a.entry_id)).collect()
    }

    /// Seen in the chaos test (2026-12-07, partition 4): after a broker restart pulsar-rs had two
    /// consumers of one partition subscribed for this worker, one of them dropped by pulsar-rs
    /// but still registered with the broker. Entries dispatched to that one never reached the
    /// worker, and the cumulative ack of a later entry delivered by the other acked them too:
    /// 807 events acked and never committed. An ack may cover only what was delivered.
    #[test]
    fn a_window_acks_only_the_entries_it_was_delivered() {
        // Entries 6 to 8 went to a consumer the worker never read from.
        let acks = [single(0, 5), single(0, 9), single(1, 2)];
        assert_eq!(
            entries(&cumulative_acks(&acks)),
            vec![(0, 5), (0, 9), (1, 2)]
        );
    }

    #[test]
    fn each_partition_acks_its_last_entry() {
        let acks = [single(0, 1), single(1, 5), single(0, 2), single(1, 6)];
        assert_eq!(entries(&cumulative_acks(&acks)), vec![(0, 2), (1, 6)]);
    }

    #[test]
    fn an_entry_cut_by_the_window_is_acked_only_with_its_tail() {
        // Window 1 ends inside entry 3 of partition 0: only entry 2 may be acked.
        let first = [
            batched(0, 2, 0, 2),
            batched(0, 2, 1, 2),
            batched(0, 3, 0, 3),
            batched(0, 3, 1, 3),
        ];
        assert_eq!(entries(&cumulative_acks(&first)), vec![(0, 2)]);
        // Window 2 holds the tail of entry 3.
        let second = [batched(0, 3, 2, 3), batched(0, 4, 0, 2)];
        assert_eq!(entries(&cumulative_acks(&second)), vec![(0, 3)]);
        // A window holding only the middle of an entry acks nothing.
        assert!(cumulative_acks(&[batched(0, 5, 1, 4)]).is_empty());
    }

    #[test]
    fn a_batch_of_one_ends_its_entry() {
        assert!(batched(0, 1, 0, 1).ends_entry());
        assert_eq!(
            entries(&cumulative_acks(&[batched(3, 1, 0, 1)])),
            vec![(3, 1)]
        );
    }

    #[test]
    fn redelivered_ids_going_back_are_acked_in_delivery_order() {
        let acks = [single(0, 9), single(0, 4), single(0, 5)];
        assert_eq!(entries(&cumulative_acks(&acks)), vec![(0, 5)]);
    }

    #[test]
    fn a_peeked_entry_is_passed_only_with_its_last_message_and_never_acked() {
        let peeked = |index| PulsarAck::peeked(0, (7, 3), index, 3);
        let first = [single(0, 2), peeked(0), peeked(1)];
        assert_eq!(entries(&cumulative_acks(&first)), vec![(0, 2)]);
        assert!(passed_entries(&first).is_empty());
        let second = [peeked(2), single(1, 8)];
        assert_eq!(entries(&cumulative_acks(&second)), vec![(1, 8)]);
        let passed: Vec<_> = passed_entries(&second).iter().map(|a| a.entry_id).collect();
        assert_eq!(passed, vec![3]);
        // An entry of one message (not a batch) ends with it.
        assert_eq!(
            passed_entries(&[PulsarAck::peeked(2, (7, 9), 0, 1)]).len(),
            1
        );
    }

    #[test]
    fn the_entry_id_carries_no_batch_index() {
        let id = batched(0, 3, 1, 2).entry_id();
        assert_eq!((id.ledger_id, id.entry_id, id.batch_index), (7, 3, None));
    }
}
