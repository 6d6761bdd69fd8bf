//! The in-memory stream operators between the event bus and the sink.
//!
//! A worker's data path is `source → window → collapse → deltas / trending → sink → ack`.
//! Everything here is synchronous, single-threaded and free of I/O: the runtime loop
//! (`runtime.rs`) owns the one `select!` over the source, the next deadline and shutdown, and
//! calls into these types. Keeping operators free of clocks, tasks and channels is what lets
//! their tests pass explicit `Instant`s instead of sleeping, and keeps the hot path at a few
//! nanoseconds per event (DESIGN section 9: ≥ 5 M events/s per core).
//!
//! Operators that hold state over time (the window, trending) implement [`Operator`]; the
//! per-window steps that are pure functions of one closed window (collapse, deltas) are plain
//! types with reusable buffers, because a trait would add nothing but ceremony there.
//!
//! # Layout
//! - [`window`] — [`CountOrTimeWindow`] cuts deliveries into [`Window`]s bounded by size and age.
//! - [`collapse`] — [`PerUserCollapse`] keeps one change per (user, content): the newest (I4).
//! - [`deltas`] — [`ContentDeltas`], the per-content *estimated* net change of a window.
//! - [`heavy_keeper`] — [`HeavyKeeper`], a bounded-memory top-k sketch of heavy hitters
//!   (re-exported from `likes_shared::heavy_keeper`).
//! - [`trending`] — [`TrendingTopK`], recent-likes top-k built on the sketch, posted periodically.
//! - [`zipf`] — a seeded Zipf stream generator for tests and benches.

pub mod collapse;
pub mod deltas;
pub mod heavy_keeper;
pub mod trending;
pub mod window;
pub mod zipf;

pub use collapse::{collapse, PerUserCollapse};
pub use deltas::ContentDeltas;
pub use heavy_keeper::{HeavyKeeper, HeavyKeeperConfig};
pub use trending::{TrendingConfig, TrendingTopK};
pub use window::{CountOrTimeWindow, Window, WindowConfig};

use std::time::Instant;

/// One step of the stream, in the spirit of Arroyo's operator trait: only [`process`] is
/// required; the hooks default to no-ops.
///
/// Outputs are pushed into a caller-owned `Vec` rather than returned, so the runtime reuses one
/// buffer per stage and a step that emits nothing (the common case) allocates nothing.
///
/// `now` is passed in rather than read inside: the runtime reads the clock once per wake-up
/// (reading it per event would cost more than the operator), and tests drive time explicitly.
///
/// [`process`]: Operator::process
pub trait Operator {
    type In;
    type Out;

    /// Handles one input, pushing any outputs it completes.
    fn process(&mut self, item: Self::In, now: Instant, out: &mut Vec<Self::Out>);

    /// Called when the runtime wakes up at (or after) [`deadline`](Operator::deadline).
    fn on_tick(&mut self, _now: Instant, _out: &mut Vec<Self::Out>) {}

    /// End of input (shutdown or source closed): flush whatever is held.
    fn on_close(&mut self, _out: &mut Vec<Self::Out>) {}

    /// When this operator next needs an `on_tick`, so the runtime can sleep exactly that long
    /// instead of polling. `None`: no tick needed until more input arrives.
    fn deadline(&self) -> Option<Instant> {
        None
    }
}
