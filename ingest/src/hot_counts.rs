//! [`HotCounts`]: the local hot-key read cache in front of the state cache (DESIGN section 2,
//! "reads": local hot-key cache → Redis → TiDB).
//!
//! Every count read is recorded in a [`HeavyKeeper`]; a content the sketch holds in its top `k`
//! with at least `min_reads` (recent) reads is *hot*, and only hot contents are kept in a small
//! moka cache with a short TTL, so one viral item does not cost every request a Redis round trip
//! while the long tail is never cached here (it would only churn the cache).
//!
//! Freshness: an entry lives at most `ttl_ms`. An action on this instance drops its content's
//! entry, so the next read takes the count from the state cache (which orders actions; two
//! actions' own answers may finish in either order) and the user who acted sees their like at
//! once (promise 2 of DESIGN section 1). A fill never replaces an entry. What can still be stale,
//! for at most the TTL: other instances' actions, and a read that began before an action and
//! fills after it. The sketch's counts are halved every `halve_every_ms` so hotness is recent.

use likes_shared::heavy_keeper::{HeavyKeeper, HeavyKeeperConfig};
use likes_shared::ContentId;
use parking_lot::Mutex;
use prometheus::{IntCounter, IntCounterVec, Opts};
use serde::{Deserialize, Serialize};
use std::time::{Duration, Instant};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HotCountsConfig {
    /// Serve hot contents' counts from the local cache at all.
    pub enabled: bool,
    /// How long a locally cached count is served (other instances' likes show after this).
    pub ttl_ms: u64,
    /// Most counts held locally.
    pub max_entries: u64,
    /// How many of the most read contents count as hot.
    pub top_k: usize,
    /// Recent reads a top-k content needs before it is cached (so a handful of reads of a
    /// quiet content is not "hot" just because the top-k has room).
    pub min_reads: u64,
    /// Byte budget of the read sketch.
    pub sketch_bytes: usize,
    /// The sketch's counts are halved this often: reads from n periods ago weigh 2^-n.
    pub halve_every_ms: u64,
}

impl Default for HotCountsConfig {
    fn default() -> Self {
        HotCountsConfig {
            enabled: true,
            ttl_ms: 500,
            max_entries: 10_000,
            top_k: 256,
            min_reads: 16,
            sketch_bytes: 32 * 1024,
            halve_every_ms: 10_000,
        }
    }
}

/// Lookups by result on `/metrics` (`result` is `hit` or `miss`: fixed labels). The hit ratio
/// is `hit / (hit + miss)`.
#[derive(Clone)]
pub struct HotCountsMetrics {
    pub hits: IntCounter,
    pub misses: IntCounter,
    lookups: IntCounterVec,
}

impl HotCountsMetrics {
    /// Unregistered metrics; `Metrics::new` registers its own.
    pub fn new() -> Result<Self, prometheus::Error> {
        let lookups = IntCounterVec::new(
            Opts::new(
                "likes_ingest_hot_counts_lookups_total",
                "Count reads by whether the local hot-key cache answered them",
            ),
            &["result"],
        )?;
        Ok(HotCountsMetrics {
            hits: lookups.with_label_values(&["hit"]),
            misses: lookups.with_label_values(&["miss"]),
            lookups,
        })
    }

    pub(crate) fn register(&self, registry: &prometheus::Registry) -> prometheus::Result<()> {
        registry.register(Box::new(self.lookups.clone()))
    }
}

struct Sketch {
    reads: HeavyKeeper,
    halved_at: Instant,
}

pub struct HotCounts {
    config: HotCountsConfig,
    /// One mutex: an insert is a few tens of nanoseconds, far below a request's cost.
    sketch: Mutex<Sketch>,
    counts: moka::sync::Cache<u64, i64>,
    metrics: HotCountsMetrics,
}

impl HotCounts {
    pub fn new(config: HotCountsConfig, metrics: HotCountsMetrics) -> Self {
        let reads = HeavyKeeperConfig::with_memory(config.sketch_bytes, config.top_k).build();
        let counts = moka::sync::Cache::builder()
            .max_capacity(config.max_entries)
            .time_to_live(Duration::from_millis(config.ttl_ms.max(1)))
            .build();
        HotCounts {
            config,
            sketch: Mutex::new(Sketch {
                reads,
                halved_at: Instant::now(),
            }),
            counts,
            metrics,
        }
    }

    /// Records one read of each of `contents` and returns the locally cached counts (`None`:
    /// read it from the state cache, then [`Self::fill`]).
    pub fn lookup(&self, contents: &[ContentId]) -> Vec<Option<i64>> {
        if !self.config.enabled {
            return vec![None; contents.len()];
        }
        self.record(contents);
        contents
            .iter()
            .map(|id| {
                let cached = self.counts.get(&id.get());
                match cached {
                    Some(_) => self.metrics.hits.inc(),
                    None => self.metrics.misses.inc(),
                }
                cached
            })
            .collect()
    }

    /// The cached count without recording a read (the degraded path's "local cache").
    pub fn peek(&self, content: ContentId) -> Option<i64> {
        self.counts.get(&content.get())
    }

    /// A count read from the state cache: kept if the content is hot and none is cached yet.
    pub fn fill(&self, content: ContentId, count: i64) {
        if self.is_hot(content) {
            self.counts
                .entry(content.get())
                .or_insert_with(|| count.max(0));
        }
    }

    /// Drops the cached count: an action moved it (the next read takes it from the state
    /// cache, which orders actions; an action's own answer may be older than another's).
    pub fn invalidate(&self, content: ContentId) {
        self.counts.invalidate(&content.get());
    }

    /// Whether `content` is among the most read now.
    pub fn is_hot(&self, content: ContentId) -> bool {
        if !self.config.enabled {
            return false;
        }
        self.sketch
            .lock()
            .reads
            .held(content.get())
            .is_some_and(|reads| reads >= self.config.min_reads)
    }

    fn record(&self, contents: &[ContentId]) {
        let mut sketch = self.sketch.lock();
        if sketch.halved_at.elapsed() >= Duration::from_millis(self.config.halve_every_ms) {
            sketch.reads.halve();
            sketch.halved_at = Instant::now();
        }
        for id in contents {
            sketch.reads.insert(id.get());
        }
    }
}

#[cfg(test)]
#[path = "hot_counts/tests.rs"]
mod tests;
