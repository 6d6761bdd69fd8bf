//! [`PartitionedBoard`]: posts a worker's top-k to the board slot of each content's partition.
//!
//! The trending board has one slot per partition of the events topic, and ingest merges the
//! slots (DESIGN section 7). A worker owns several partitions, and which ones changes with
//! failover, but its HeavyKeeper keeps one top-k over all of them. Posting that list to one slot
//! would let two workers overwrite each other's. So the list is split by the partition each
//! content is published to, with the same hash the keyed producers route by (pulsar-rs'
//! `RoundRobin` policy on the content-id key): a slot then only ever holds contents of its own
//! partition, whose one owner is the only worker that counts them (I5). A partition missing from
//! a post keeps its last list until the board's TTL drops it.

use async_trait::async_trait;
use likes_shared::trending::{TrendingBoard, TrendingEntry};
use pulsar::routing_policy::RoutingPolicy;
use std::collections::BTreeMap;
use std::sync::Arc;

pub struct PartitionedBoard {
    board: Arc<dyn TrendingBoard>,
    partitions: u32,
}

impl PartitionedBoard {
    pub fn new(board: Arc<dyn TrendingBoard>, partitions: u32) -> Self {
        PartitionedBoard {
            board,
            partitions: partitions.max(1),
        }
    }

    /// The partition a keyed producer sends `content`'s events to.
    fn partition_of(&self, content: u64) -> u32 {
        let key = content.to_string();
        RoutingPolicy::compute_partition_index_for_key(&key, self.partitions as usize) as u32
    }
}

#[async_trait]
impl TrendingBoard for PartitionedBoard {
    /// Ignores `slot`: each entry goes to its content's partition.
    async fn post(&self, _slot: u32, top: Vec<TrendingEntry>) {
        let mut by_partition: BTreeMap<u32, Vec<TrendingEntry>> = BTreeMap::new();
        for entry in top {
            let partition = self.partition_of(entry.content_id.get());
            by_partition.entry(partition).or_default().push(entry);
        }
        for (partition, entries) in by_partition {
            self.board.post(partition, entries).await;
        }
    }

    async fn top(&self, limit: usize) -> Vec<TrendingEntry> {
        self.board.top(limit).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use likes_shared::trending::MemoryTrendingBoard;
    use likes_shared::ContentId;

    fn entry(content: u64, score: u64) -> TrendingEntry {
        TrendingEntry {
            content_id: ContentId::new(content).expect("non-zero"),
            score,
        }
    }

    #[tokio::test]
    async fn two_workers_posting_disjoint_contents_do_not_overwrite_each_other() {
        let memory = Arc::new(MemoryTrendingBoard::default());
        let board = PartitionedBoard::new(memory.clone(), 8);
        // Contents of different partitions, as two owners would hold them.
        let a = (1..200).find(|c| board.partition_of(*c) == 0).expect("one");
        let b = (1..200).find(|c| board.partition_of(*c) == 5).expect("one");
        board.post(0, vec![entry(a, 10)]).await;
        board.post(0, vec![entry(b, 7)]).await;
        assert_eq!(memory.top(10).await, vec![entry(a, 10), entry(b, 7)]);
    }

    #[test]
    fn contents_land_in_the_partition_the_producer_routes_them_to() {
        let board = PartitionedBoard::new(Arc::new(MemoryTrendingBoard::default()), 8);
        for content in [1u64, 42, 1_000_000] {
            let routed = RoutingPolicy::compute_partition_index_for_key(&content.to_string(), 8);
            assert_eq!(board.partition_of(content) as usize, routed);
        }
    }
}
