//! The pipeline: consumes like events, cuts them into windows, collapses each window to one change
//! per (user, content), commits it through the sink, then acks (DESIGN section 2).
//!
//! # Layout
//! - [`config`] — `likes-pipeline`'s typed settings ([`PipelineConfig`]).
//! - [`operators`] — the in-memory stream operators (window, collapse, deltas, HeavyKeeper top-k).
//! - [`runtime`] — the [`runtime::Worker`] loop that drives them between source, sink and acks;
//!   `runtime/poison.rs` finds the changes in a refused window that the store will not take.

pub mod config;
pub mod operators;
pub mod runtime;

pub use config::PipelineConfig;
pub use runtime::{Worker, WorkerConfig, WorkerStats};
