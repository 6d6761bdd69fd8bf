//! The pipeline: consumes like events, cuts them into windows, collapses each window to one change
//! per (user, content), commits it through the sink, then acks (DESIGN section 2).
//!
//! # Layout
//! - [`config`] — `likes-pipeline`'s typed settings ([`PipelineConfig`]).
//! - `distributed` (feature `pulsar`) — `likes-pipeline run`'s wiring: the worker between the
//!   events topic, TiDB, the dead-letter topic and the trending board on Redis.
//! - [`operators`] — the in-memory stream operators (window, collapse, deltas, HeavyKeeper top-k).
//! - [`runtime`] — the [`runtime::Worker`] loop that drives them between source, sink and acks;
//!   `runtime/poison.rs` finds the changes in a refused window that the store will not take.
//! - `pulsar_source` (feature `pulsar`) — the worker's source on the partitioned events topic:
//!   failover-owned partitions, acks of each delivered entry after commit, stall rebuilds.

pub mod config;
#[cfg(feature = "pulsar")]
pub mod distributed;
pub mod operators;
#[cfg(feature = "pulsar")]
pub mod pulsar_source;
pub mod runtime;

pub use config::PipelineConfig;
pub use runtime::{Worker, WorkerCollector, WorkerConfig, WorkerStats};
