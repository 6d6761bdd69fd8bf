//! Everything the likes binaries agree on: the domain, the wire format, the clock, config and
//! the traits each backend implements.
//!
//! # Layout
//! - [`ids`] — `UserId`, `ContentId`, validated non-zero u64s.
//! - [`event`] — `LikeEvent` and its versioned fixed-layout wire encoding.
//! - [`hlc`] — the hybrid logical clock that versions events (I4).
//! - [`bus`] — `EventPublisher` / `EventSource`, durable publish and at-least-once consume.
//! - [`log`] — the embedded bus, a durable local log with group-commit fsync.
//! - [`cache`] — `StateCache`, the fast (never authoritative) state and counts.
//! - [`store`] — `LikeStore`, the source of truth.
//! - [`heavy_keeper`] — `HeavyKeeper`, a bounded-memory top-k sketch (trending, hot-key reads);
//!   [`fast_hash`] — the integer hashing it and the pipeline's maps use.
//! - [`trending`] — `TrendingBoard`, where pipeline workers post their top-k.
//! - [`topics`] — the Pulsar topic names, partitions and the event key every process agrees on.
//! - [`metrics`] — the process, runtime and dependency-call metrics every binary serves.
//! - [`heap_trim`] — gives the heap's free pages back, so a past burst does not stay resident.
//! - [`config`], [`telemetry`], [`shutdown`], [`retry`] — plumbing every binary uses.

pub mod bus;
pub mod cache;
pub mod config;
pub mod event;
pub mod fast_hash;
pub mod heap_trim;
pub mod heavy_keeper;
pub mod hlc;
pub mod ids;
pub mod log;
pub mod metrics;
pub mod retry;
pub mod shutdown;
pub mod store;
pub mod telemetry;
pub mod topics;
pub mod trending;

pub use event::{Action, LikeEvent};
pub use ids::{ContentId, UserId};
