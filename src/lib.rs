//! The embedded all-in-one: ingest, pipeline and sink in one process, on embedded backends
//! (durable local log, in-memory state cache, SQLite) behind the same traits the distributed
//! deployment uses. `cargo run --release` runs it; tests start it on port 0 with a temp dir.
//!
//! # Layout
//! - [`EmbeddedConfig`] — the binary's typed config (`LIKES_*` variables, `--config` file).
//! - [`Embedded::start`] — opens the backends, starts the worker and the HTTP server.

use anyhow::Context as _;
use likes_ingest::memory_cache::MemoryStateCache;
use likes_ingest::metrics::Metrics;
use likes_ingest::{Application, Backends, IngestConfig};
use likes_pipeline::operators::WindowConfig;
use likes_pipeline::{Worker, WorkerCollector, WorkerConfig, WorkerStats};
use likes_shared::log::LogConfig;
use likes_shared::retry::Backoff;
use likes_shared::shutdown::{self, ShutdownTrigger};
use likes_shared::trending::MemoryTrendingBoard;
use likes_sink::dead_letter::FileDeadLetters;
use likes_sink::{SqliteConfig, SqliteStore};
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinHandle;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct EmbeddedConfig {
    /// Where the log, the database, the dead letters and the JWT secret live (`LIKES_DATA_DIR`).
    pub data_dir: PathBuf,
    /// The HTTP settings shared with `likes-ingest` (`LIKES_HTTP_ADDR`, `LIKES_AUTH__…`).
    #[serde(flatten)]
    pub ingest: IngestConfig,
    /// Cached users plus (user, content) states, and separately cached counts.
    pub cache_capacity: usize,
    /// Bytes the local log may hold before ingest answers 503.
    pub log_max_bytes: u64,
    /// A window closes at this many events or this age, whichever comes first.
    pub window_max_events: usize,
    pub window_max_age_ms: u64,
}

impl Default for EmbeddedConfig {
    fn default() -> Self {
        let mut ingest = IngestConfig::default();
        // The loopback demo hands out tokens so the README's curl examples work as printed.
        ingest.auth.dev_tokens = true;
        EmbeddedConfig {
            data_dir: PathBuf::from("data"),
            ingest,
            cache_capacity: 1_000_000,
            log_max_bytes: LogConfig::default().max_bytes,
            window_max_events: WindowConfig::default().max_events,
            window_max_age_ms: 50,
        }
    }
}

/// A running all-in-one.
pub struct Embedded {
    pub addr: SocketAddr,
    pub store: SqliteStore,
    pub worker_stats: Arc<WorkerStats>,
    trigger: ShutdownTrigger,
    server: JoinHandle<()>,
    worker: JoinHandle<Result<(), likes_pipeline::runtime::WorkerError>>,
}

impl Embedded {
    pub async fn start(mut config: EmbeddedConfig) -> anyhow::Result<Embedded> {
        let dir = &config.data_dir;
        std::fs::create_dir_all(dir)
            .with_context(|| format!("creating data dir {}", dir.display()))?;
        if config.ingest.auth.jwt_secret.is_empty() {
            config.ingest.auth.jwt_secret = local_secret(&dir.join("jwt.secret"))?;
        }
        let (trigger, shutdown) = shutdown::channel();
        let log = LogConfig {
            dir: dir.join("log"),
            max_bytes: config.log_max_bytes,
            ..LogConfig::default()
        };
        let (publisher, source) = likes_shared::log::open(&log).context("opening the local log")?;
        let store = SqliteConfig {
            path: dir.join("likes.db"),
            ..SqliteConfig::default()
        }
        .build()
        .await
        .context("opening the SQLite store")?;
        let board = Arc::new(MemoryTrendingBoard::default());
        let worker = Worker::new(
            source,
            Arc::new(store.clone()),
            board.clone(),
            Arc::new(FileDeadLetters::new(dir.join("dead-letters.jsonl"))),
            WorkerConfig {
                window: WindowConfig {
                    max_events: config.window_max_events,
                    max_age: Duration::from_millis(config.window_max_age_ms),
                },
                backoff: Backoff::default(),
                ..WorkerConfig::default()
            },
        );
        let worker_stats = worker.stats();
        let worker = tokio::spawn(worker.run(shutdown.clone()));
        catch_up(&publisher, &worker).await;
        let backends = Backends {
            cache: Arc::new(MemoryStateCache::new(
                config.cache_capacity,
                Arc::new(publisher.clone()),
            )),
            store: Arc::new(store.clone()),
            publisher: Arc::new(publisher),
            trending: board,
            // The embedded cache is in memory already: a local cache in front would add nothing.
            hot_counts: None,
        };
        // One `/metrics` for the process: ingest's, with the worker's counters beside them.
        let metrics = Metrics::new().context("metrics")?;
        metrics
            .registry
            .register(Box::new(WorkerCollector::new(worker_stats.clone())?))
            .context("registering the worker's metrics")?;
        let app =
            Application::build_with_metrics(&config.ingest, backends, shutdown, Arc::new(metrics))
                .await?;
        let addr = app.local_addr();
        let server = tokio::spawn(app.run_until_stopped());
        Ok(Embedded {
            addr,
            store,
            worker_stats,
            trigger,
            server,
            worker,
        })
    }

    /// Serves until `signal`, then stops gracefully. If the worker ends first (its source or
    /// dead-letter file failed), the server stops too and the error is returned: likes would
    /// otherwise keep being acknowledged into a log that nothing applies.
    pub async fn serve_until(
        mut self,
        signal: impl std::future::Future<Output = ()>,
    ) -> anyhow::Result<()> {
        tokio::select! {
            _ = signal => self.stop().await,
            ended = &mut self.worker => {
                self.trigger.trigger();
                self.server.await.context("server task")?;
                match ended.context("worker task")? {
                    Ok(()) => anyhow::bail!("the pipeline worker stopped unexpectedly"),
                    Err(error) => Err(error).context("the pipeline worker failed"),
                }
            }
        }
    }

    /// Stops taking requests, answers those in flight, commits the open window, and returns.
    pub async fn stop(self) -> anyhow::Result<()> {
        self.trigger.trigger();
        self.server.await.context("server task")?;
        self.worker.await.context("worker task")??;
        Ok(())
    }
}

/// Waits until the worker has applied everything the log held at start. Caches fill from the
/// store on a miss, so serving before the replay of a crash's backlog would cache counts that
/// lack acknowledged likes.
async fn catch_up<T>(publisher: &likes_shared::log::LogPublisher, worker: &JoinHandle<T>) {
    let target = publisher.durable_offset();
    if publisher.acked_offset() >= target {
        return;
    }
    tracing::info!(
        backlog = target - publisher.acked_offset(),
        "applying the log's backlog before serving"
    );
    // A worker that stopped (its error is returned by `stop`) will not catch up: serve anyway.
    while publisher.acked_offset() < target && !worker.is_finished() {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The demo's signing secret: made once, kept in the data dir so tokens survive restarts.
fn local_secret(path: &std::path::Path) -> anyhow::Result<String> {
    if let Ok(secret) = std::fs::read_to_string(path) {
        if !secret.trim().is_empty() {
            return Ok(secret.trim().to_owned());
        }
    }
    let secret: String = (0..32)
        .map(|_| format!("{:02x}", rand::random::<u8>()))
        .collect();
    std::fs::write(path, &secret).with_context(|| format!("writing {}", path.display()))?;
    Ok(secret)
}
