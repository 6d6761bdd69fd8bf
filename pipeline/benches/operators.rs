//! Throughput of the in-memory operators, each next to a baseline measured in the same run, so
//! results read as ratios on whatever machine runs them (DESIGN section 9).
//!
//! - `pipeline/operators`: window → collapse → deltas → trending over a Zipf(1.0) stream of
//!   like events; `pipeline/baseline_move_and_sort` does the least any pipeline must: move the
//!   deliveries into windows and sort each window by key.
//! - `heavy_keeper/insert`: sketch updates alone; `heavy_keeper/baseline_exact_hashmap`: an
//!   exact `HashMap<u64, u64>` count of the same keys (std hasher) plus the final sort, which
//!   is what the sketch replaces.
//!
//! Times are the benchmark thread's *on-CPU* time (Linux `/proc/thread-self/schedstat`), not wall
//! time: the bench machines are shared, and time spent descheduled while another build runs is
//! not the operators' cost. Where schedstat is missing it falls back to wall time.
//!
//! Run: `cargo bench -p likes-pipeline --bench operators -- --warm-up-time 1 --measurement-time 3`

use criterion::measurement::{Measurement, ValueFormatter, WallTime};
use criterion::{black_box, criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use likes_pipeline::operators::zipf::ZipfSampler;
use likes_pipeline::operators::{
    ContentDeltas, CountOrTimeWindow, HeavyKeeperConfig, Operator, PerUserCollapse, TrendingConfig,
    Window, WindowConfig,
};
use likes_shared::bus::Delivery;
use likes_shared::{Action, ContentId, LikeEvent, UserId};
use std::collections::HashMap;
use std::time::Instant;

const EVENTS: usize = 1_000_000;
const CONTENTS: usize = 1_000_000;
const USERS: u64 = 10_000_000;

/// Zipf(1.0) contents, uniform users, 1 in 5 an unlike, versions increasing, empty `source` so
/// cloning the input (outside the timed part) does not allocate per event.
fn like_stream() -> Vec<Delivery<u64>> {
    let mut contents = ZipfSampler::new(CONTENTS, 1.0, 1);
    (0..EVENTS as u64)
        .map(|n| {
            // Users spread uniformly (a multiplicative hash of the sequence number).
            let user = (n.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 20) % USERS + 1;
            let event = LikeEvent {
                event_id: n as u128,
                user_id: UserId::new(user).expect("non-zero"),
                content_id: ContentId::new(contents.next_rank()).expect("ranks start at 1"),
                action: if n % 5 == 4 {
                    Action::Unlike
                } else {
                    Action::Like
                },
                version: n + 1,
                ts_ms: n,
                source: String::new(),
                fill_epoch: 0,
            };
            Delivery {
                event,
                ack: n,
                partition: 0,
                trace: None,
            }
        })
        .collect()
}

/// The worker's per-event path, minus I/O: what the runtime will do with each delivery.
fn run_operators(stream: Vec<Delivery<u64>>) -> usize {
    let now = Instant::now();
    let mut windows = WindowConfig::default().build::<u64>();
    let mut collapse = PerUserCollapse::new();
    let mut deltas = ContentDeltas::new();
    let mut trending = TrendingConfig::default().build(now);
    let mut closed: Vec<Window<u64>> = Vec::new();
    let mut changes = Vec::new();
    let mut rows = 0;
    let mut flush = |closed: &mut Vec<Window<u64>>, windows: &mut CountOrTimeWindow<u64>| {
        for window in closed.drain(..) {
            collapse.collapse_into(&window.events, &mut changes);
            rows += deltas.estimate(&changes).len() + changes.len();
            trending.observe_likes(&window.events);
            windows.recycle(window);
        }
    };
    for delivery in stream {
        windows.process(delivery, now, &mut closed);
        flush(&mut closed, &mut windows);
    }
    windows.on_close(&mut closed);
    flush(&mut closed, &mut windows);
    rows + trending.top().len()
}

fn baseline_move_and_sort(stream: Vec<Delivery<u64>>) -> usize {
    let mut sum = 0;
    for chunk in stream.chunks(WindowConfig::default().max_events) {
        let mut keys: Vec<(u64, u64)> = chunk
            .iter()
            .map(|d| (d.event.content_id.get(), d.event.user_id.get()))
            .collect();
        keys.sort_unstable();
        sum += keys.len();
    }
    drop(black_box(stream));
    sum
}

/// Criterion measurement: nanoseconds this thread spent on a CPU.
struct ThreadCpuTime {
    /// Only for its formatter, which prints nanoseconds as durations.
    wall: WallTime,
    started: Instant,
}

impl ThreadCpuTime {
    fn new() -> Self {
        Self {
            wall: WallTime,
            started: Instant::now(),
        }
    }

    fn now_ns(&self) -> u64 {
        std::fs::read_to_string("/proc/thread-self/schedstat")
            .ok()
            .and_then(|stat| stat.split_whitespace().next()?.parse().ok())
            .unwrap_or_else(|| self.started.elapsed().as_nanos() as u64)
    }
}

impl Measurement for ThreadCpuTime {
    type Intermediate = u64;
    type Value = u64;

    fn start(&self) -> u64 {
        self.now_ns()
    }
    fn end(&self, started: u64) -> u64 {
        self.now_ns().saturating_sub(started)
    }
    fn add(&self, a: &u64, b: &u64) -> u64 {
        a + b
    }
    fn zero(&self) -> u64 {
        0
    }
    fn to_f64(&self, ns: &u64) -> f64 {
        *ns as f64
    }
    fn formatter(&self) -> &dyn ValueFormatter {
        self.wall.formatter()
    }
}

type Bench = Criterion<ThreadCpuTime>;

fn pipeline(c: &mut Bench) {
    let stream = like_stream();
    let mut group = c.benchmark_group("pipeline");
    group.throughput(Throughput::Elements(EVENTS as u64));
    group.sample_size(10);
    group.bench_function("operators", |b| {
        b.iter_batched(|| stream.clone(), run_operators, BatchSize::LargeInput)
    });
    group.bench_function("baseline_move_and_sort", |b| {
        b.iter_batched(
            || stream.clone(),
            baseline_move_and_sort,
            BatchSize::LargeInput,
        )
    });
    group.finish();
}

fn heavy_keeper(c: &mut Bench) {
    let keys = ZipfSampler::new(CONTENTS, 1.0, 3).take(EVENTS);
    let mut group = c.benchmark_group("heavy_keeper");
    group.throughput(Throughput::Elements(EVENTS as u64));
    group.sample_size(10);
    group.bench_function("insert", |b| {
        b.iter(|| {
            let mut sketch = HeavyKeeperConfig::with_memory(32 * 1024, 100).build();
            for &key in &keys {
                sketch.insert(key);
            }
            sketch.top()
        })
    });
    group.bench_function("baseline_exact_hashmap", |b| {
        b.iter(|| {
            let mut counts: HashMap<u64, u64> = HashMap::new();
            for &key in &keys {
                *counts.entry(key).or_default() += 1;
            }
            let mut all: Vec<(u64, u64)> = counts.into_iter().collect();
            all.sort_unstable_by_key(|&(_, count)| std::cmp::Reverse(count));
            all.truncate(100);
            all
        })
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().with_measurement(ThreadCpuTime::new());
    targets = pipeline, heavy_keeper
}
criterion_main!(benches);
