//! Logging setup for every binary: `tracing` with key/value fields, filtered by `RUST_LOG`
//! (default `info`). Metrics are served by ingest's `/metrics`.

use tracing_subscriber::EnvFilter;

/// Installs the global subscriber; a second call (tests) is a no-op.
pub fn init() {
    init_with_default("info");
}

/// [`init`] with another filter for when `RUST_LOG` is unset: a command-line tool may quiet a
/// chatty dependency (pulsar-rs logs every subscribe attempt at `warn`).
pub fn init_with_default(filter: &str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(filter));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .try_init();
}
