//! Ingest: the HTTP front door of likes.
//!
//! A request is admitted (in-flight bound, per-IP and per-user token buckets), authenticated
//! (bearer JWT or a trusted gateway header), validated into typed ids, then applied to the state
//! cache and published durably before it is answered (DESIGN sections 4 and 7).
//!
//! # Layout
//! - [`app`] — `Application::build` / `local_addr` / `run_until_stopped`.
//! - [`filters`] — the warp routes; [`handlers`]: one function per route.
//! - [`service`] — the like/unlike/read logic behind the routes, free of HTTP; its `degraded`
//!   part answers without the state cache, marked stale.
//! - [`auth`], [`limits`], [`error`], [`metrics`] — the cross-cutting parts.
//! - [`client_addr`] — the client address limits key on (peer or trusted `X-Forwarded-For`).
//! - [`http_server`] — the accept loop and connections: header, body and idle timeouts, the
//!   connection bound; both binaries serve through it.
//! - [`web`] — the web page at `/` for browsers (the JSON index for other clients) and its
//!   files under `/assets/`, embedded from `ingest/web/`.
//! - [`readiness`] — the `/readyz` probe, cached briefly and shared by concurrent callers.
//! - [`memory_cache`] — the embedded `StateCache`.
//! - [`cache_breaker`] — `BreakerCache`: a circuit breaker in front of the state cache, so an
//!   outage degrades at once instead of costing every request a timeout (DESIGN section 8).
//! - [`hot_counts`] — `HotCounts`: the local hot-key count cache (HeavyKeeper over the reads,
//!   moka with a short TTL), in front of the state cache.
//! - [`config`] — `IngestConfig`.
//! - [`dev_token_mint`] — `DevTokenMint`: the demo's dev tokens, bounded in rate and in users.
//! - `distributed` (features `pulsar` and `redis`) — `Distributed::start`, the `likes-ingest`
//!   binary's backends (Redis, Pulsar, TiDB) and its `DistributedConfig`.
//! - [`spool`] — `SpooledPublisher`: wraps the primary publisher with a bounded local durable
//!   spool while it is down, drained in order when it is back (DESIGN section 8).
//! - `pulsar_publisher` (feature `pulsar`, on by default) — `PulsarPublisher`, the
//!   distributed deployment's `EventPublisher` on the `like-events` topic.
//! - `redis_cache` (feature `redis`, on by default) — `RedisStateCache`, the distributed
//!   deployment's `StateCache`.

pub mod app;
pub mod auth;
pub mod cache_breaker;
pub mod client_addr;
pub mod config;
pub mod dev_token_mint;
#[cfg(all(feature = "pulsar", feature = "redis"))]
pub mod distributed;
pub mod error;
pub mod filters;
pub mod handlers;
pub mod hot_counts;
pub mod http_server;
pub mod limits;
pub mod memory_cache;
pub mod metrics;
#[cfg(feature = "pulsar")]
pub mod pulsar_publisher;
pub mod readiness;
#[cfg(feature = "redis")]
pub mod redis_cache;
pub mod request_span;
pub mod service;
pub mod spool;
#[cfg(test)]
mod stub_backends;
pub mod web;

pub use app::Application;
pub use config::IngestConfig;
pub use service::Backends;
