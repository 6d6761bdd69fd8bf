//! The sink: turns collapsed windows into committed rows and exact counts.
//!
//! # Layout
//! - [`transitions`] — which rows a window writes and how far counts move (I2, I4); no I/O.
//! - [`dead_letter`] — `DeadLetterPublisher`, the embedded file of dead letters and (feature
//!   `pulsar`) the dead-letter topic.
//! - [`dlq`] — what `likes-dlq` does to the letters: summarize, replay, purge; the file always,
//!   the topic with the `pulsar` feature.
//! - [`sqlite`] — the embedded store (SQLite via sqlx), one transaction per window.
//! - [`mysql`] — the distributed store (TiDB, or MariaDB/MySQL), the same rules and schema, and
//!   its reconciler.
//! - `pulsar_client`, `pulsar_admin` (feature `pulsar`) — connecting to the broker with bounded
//!   waits; creating and inspecting topics through the admin REST API (`ensure_topics`).
//! - `redis_counts` (feature `redis`) — the state cache's key names and the reconciler's repair
//!   of its cached counts.
//! - `redis_trending` (feature `redis`) — `RedisTrendingBoard`: workers post their partitions'
//!   top-k to Redis, ingest merges them.
//!
//! # Features
//! `pulsar` (off by default) brings the Pulsar client, which needs protoc and OpenSSL to build.
//! The embedded `likes` depends on this crate without it, so it builds with Rust alone;
//! likes-pipeline turns it on, and so does `cargo build --workspace`.

pub mod dead_letter;
pub mod dlq;
pub mod epoch_deltas;
pub mod mysql;
#[cfg(feature = "pulsar")]
pub mod pulsar_admin;
#[cfg(feature = "pulsar")]
pub mod pulsar_client;
#[cfg(feature = "redis")]
pub mod redis_counts;
#[cfg(feature = "redis")]
pub mod redis_trending;
mod retry_logic;
pub mod sqlite;
pub mod transitions;
mod utc;

pub use mysql::{MySqlConfig, MySqlStore};
pub use sqlite::{SqliteConfig, SqliteStore};
