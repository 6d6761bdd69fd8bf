//! Trending board: each pipeline worker posts the top-k of the partitions it owns; readers merge.
//! Partitions are disjoint by content, so merging per-partition lists is exact (DESIGN section 7).

use crate::ids::ContentId;
use async_trait::async_trait;
use parking_lot::Mutex;
use std::collections::HashMap;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrendingEntry {
    pub content_id: ContentId,
    /// Estimated recent likes.
    pub score: u64,
}

#[async_trait]
pub trait TrendingBoard: Send + Sync + 'static {
    /// Replaces the list posted for `partition`.
    async fn post(&self, partition: u32, top: Vec<TrendingEntry>);
    /// The merged top `limit`, highest score first.
    async fn top(&self, limit: usize) -> Vec<TrendingEntry>;
}

/// In-process board for the embedded all-in-one.
#[derive(Debug, Default)]
pub struct MemoryTrendingBoard {
    by_partition: Mutex<HashMap<u32, Vec<TrendingEntry>>>,
}

#[async_trait]
impl TrendingBoard for MemoryTrendingBoard {
    async fn post(&self, partition: u32, top: Vec<TrendingEntry>) {
        self.by_partition.lock().insert(partition, top);
    }

    async fn top(&self, limit: usize) -> Vec<TrendingEntry> {
        let mut all: Vec<TrendingEntry> = self
            .by_partition
            .lock()
            .values()
            .flatten()
            .copied()
            .collect();
        all.sort_unstable_by(|a, b| b.score.cmp(&a.score).then(a.content_id.cmp(&b.content_id)));
        all.truncate(limit);
        all
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(id: u64, score: u64) -> TrendingEntry {
        TrendingEntry {
            content_id: ContentId::new(id).expect("non-zero"),
            score,
        }
    }

    #[tokio::test]
    async fn merges_partitions_and_replaces_a_partitions_list() {
        let board = MemoryTrendingBoard::default();
        board.post(0, vec![e(1, 10), e(2, 3)]).await;
        board.post(1, vec![e(3, 7)]).await;
        assert_eq!(board.top(2).await, vec![e(1, 10), e(3, 7)]);
        board.post(0, vec![e(2, 30)]).await;
        assert_eq!(board.top(10).await, vec![e(2, 30), e(3, 7)]);
    }
}
