//! Which acks a committed run of deliveries allows: each complete entry the consumer delivered,
//! acked on its own.
//!
//! The broker keeps one cursor per partition and moves it by whole *entries*: ingest batches
//! events, so one entry holds up to a thousand messages, and Pulsar (with batch-index acks off,
//! the default) acks a batch message's entry as a whole. A window closes on a count or a timer,
//! so it can end in the middle of an entry; acking that entry would ack its later messages too,
//! which sit in the next, uncommitted window. A crash then would lose them. So an entry is acked
//! only with its *last* message: batches are delivered whole and in index order, so by then every
//! message of the entry has been delivered and (the worker commits windows in order) committed.
//!
//! Why individual acks and not one cumulative ack per partition: a cumulative ack covers every
//! entry before it, also those this worker never saw. That is not hypothetical. After a broker
//! restart pulsar-rs can leave a partition with two consumers of this worker registered, one of
//! them dropped inside pulsar-rs but still known to the broker; entries the broker dispatched to
//! it never reach the worker. The chaos test caught a cumulative ack of a later entry covering
//! 807 such events, acked and never committed (2026-12-07). An individual ack covers only what
//! committed; what went to a lost consumer stays unacked and is redelivered once that consumer is
//! gone (a rebuild, a restart). The broker's cursor moves over contiguous acked entries, and an
//! ack of an entry acked before (a redelivery) is ignored.
//!
//! A message the source read through the admin API (`passing.rs`: an entry the consumer cannot
//! unpack) is *peeked*: the consumer never delivered it, so it cannot ack it; once its entry's
//! last message commits, the source moves the subscription past that entry instead.

use pulsar::message::proto::MessageIdData;
use std::collections::BTreeSet;

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

    /// The id of the whole entry, as its ack sends it: no batch index, so no broker setting can
    /// read it as "part of the entry".
    pub(crate) fn entry_id(&self) -> MessageIdData {
        MessageIdData {
            ledger_id: self.ledger_id,
            entry_id: self.entry_id,
            ..MessageIdData::default()
        }
    }
}

/// The entries the consumer delivered whose every message is among `acks` (committed), each
/// once, in delivery order: what may be acked.
pub(crate) fn entry_acks(acks: &[PulsarAck]) -> Vec<PulsarAck> {
    let mut seen = BTreeSet::new();
    acks.iter()
        .filter(|a| a.ends_entry() && !a.peeked)
        .filter(|a| seen.insert((a.partition, a.ledger_id, a.entry_id)))
        .copied()
        .collect()
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
        assert_eq!(entries(&entry_acks(&acks)), vec![(0, 5), (0, 9), (1, 2)]);
    }

    #[test]
    fn each_delivered_entry_is_acked_once() {
        let acks = [
            single(0, 1),
            single(1, 5),
            single(0, 2),
            single(1, 6),
            single(0, 1),
        ];
        assert_eq!(
            entries(&entry_acks(&acks)),
            vec![(0, 1), (1, 5), (0, 2), (1, 6)]
        );
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
        assert_eq!(entries(&entry_acks(&first)), vec![(0, 2)]);
        // Window 2 holds the tail of entry 3.
        let second = [batched(0, 3, 2, 3), batched(0, 4, 0, 2)];
        assert_eq!(entries(&entry_acks(&second)), vec![(0, 3)]);
        // A window holding only the middle of an entry acks nothing.
        assert!(entry_acks(&[batched(0, 5, 1, 4)]).is_empty());
    }

    #[test]
    fn a_batch_of_one_ends_its_entry() {
        assert!(batched(0, 1, 0, 1).ends_entry());
        assert_eq!(entries(&entry_acks(&[batched(3, 1, 0, 1)])), vec![(3, 1)]);
    }

    #[test]
    fn redelivered_ids_going_back_are_acked_in_delivery_order() {
        let acks = [single(0, 9), single(0, 4), single(0, 5)];
        assert_eq!(entries(&entry_acks(&acks)), vec![(0, 9), (0, 4), (0, 5)]);
    }

    #[test]
    fn a_peeked_entry_is_passed_only_with_its_last_message_and_never_acked() {
        let peeked = |index| PulsarAck::peeked(0, (7, 3), index, 3);
        let first = [single(0, 2), peeked(0), peeked(1)];
        assert_eq!(entries(&entry_acks(&first)), vec![(0, 2)]);
        assert!(passed_entries(&first).is_empty());
        let second = [peeked(2), single(1, 8)];
        assert_eq!(entries(&entry_acks(&second)), vec![(1, 8)]);
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
