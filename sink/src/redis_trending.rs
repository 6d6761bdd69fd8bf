//! [`RedisTrendingBoard`]: the trending board of the distributed deployment (DESIGN section 7).
//!
//! Each pipeline worker posts the top-k of a partition it owns to that partition's sorted set,
//! `likes:trending:<topic>:{p:<partition>}` (the topic names the partitions), replacing it whole and giving it a TTL: a partition whose
//! owner died stops counting once its set expires, and the next owner posts a fresh one.
//! Partitions are disjoint by content, so ingest merges them exactly by reading every
//! partition's set (one pipeline, one round trip) and keeping the best `limit`.

use async_trait::async_trait;
use likes_shared::trending::{TrendingBoard, TrendingEntry};
use likes_shared::ContentId;
use redis::aio::ConnectionManager;
use std::time::Duration;

pub struct RedisTrendingBoard {
    conn: ConnectionManager,
    topic: String,
    partitions: u32,
    ttl: Duration,
}

impl RedisTrendingBoard {
    /// A board over the `partitions` partitions of `topic`, whose posts expire `ttl` after
    /// the last one.
    pub fn new(conn: ConnectionManager, topic: &str, partitions: u32, ttl: Duration) -> Self {
        RedisTrendingBoard {
            conn,
            topic: topic.to_owned(),
            partitions,
            ttl,
        }
    }

    fn partition_key(&self, partition: u32) -> String {
        format!("likes:trending:{}:{{p:{partition}}}", self.topic)
    }
}

#[async_trait]
impl TrendingBoard for RedisTrendingBoard {
    async fn post(&self, partition: u32, top: Vec<TrendingEntry>) {
        let key = self.partition_key(partition);
        let mut pipe = redis::pipe();
        pipe.atomic().del(&key).ignore();
        if !top.is_empty() {
            let members: Vec<(u64, u64)> =
                top.iter().map(|e| (e.score, e.content_id.get())).collect();
            pipe.zadd_multiple(&key, &members)
                .ignore()
                .pexpire(&key, self.ttl.as_millis() as i64)
                .ignore();
        }
        if let Err(error) = pipe.query_async::<()>(&mut self.conn.clone()).await {
            // Trending is advisory: a lost post is replaced by the next one.
            tracing::warn!(%error, partition, "could not post trending");
        }
    }

    async fn top(&self, limit: usize) -> Vec<TrendingEntry> {
        if limit == 0 {
            return Vec::new();
        }
        let mut pipe = redis::pipe();
        for partition in 0..self.partitions {
            pipe.zrevrange_withscores(self.partition_key(partition), 0, limit as isize - 1);
        }
        let lists: Vec<Vec<(u64, f64)>> = match pipe.query_async(&mut self.conn.clone()).await {
            Ok(lists) => lists,
            Err(error) => {
                tracing::warn!(%error, "could not read trending");
                return Vec::new();
            }
        };
        let mut all: Vec<TrendingEntry> = lists
            .into_iter()
            .flatten()
            .filter_map(|(id, score)| {
                Some(TrendingEntry {
                    content_id: ContentId::new(id).ok()?,
                    score: score as u64,
                })
            })
            .collect();
        all.sort_unstable_by(|a, b| b.score.cmp(&a.score).then(a.content_id.cmp(&b.content_id)));
        all.truncate(limit);
        all
    }
}
