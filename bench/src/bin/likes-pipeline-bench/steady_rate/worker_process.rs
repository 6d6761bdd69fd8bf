//! The bench's `likes-pipeline run` processes: started with their own `/metrics` address,
//! sampled (the lag histogram, the events consumed, the resident memory), stopped with SIGTERM.

use super::{SteadyRate, PARTITIONS};
use anyhow::Context as _;
use likes_pipeline::runtime::event_lag::EventLagSnapshot;
use likes_shared::topics::TopicsConfig;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

#[path = "../../../shared/process_probe.rs"]
mod process_probe;
use process_probe::{rss_kib, scrape};

/// One `likes-pipeline run` process and where it serves `/metrics`.
pub(super) struct WorkerProcess {
    pub(super) child: Child,
    pub(super) metrics: std::net::SocketAddr,
}

/// One look at a worker.
#[derive(Clone)]
pub(super) struct Sample {
    pub(super) lag: EventLagSnapshot,
    pub(super) events: u64,
    pub(super) rss_kib: u64,
}

pub(super) fn spawn_worker(
    config: &SteadyRate,
    topics: &TopicsConfig,
    database_url: &str,
    admin_url: &str,
    url: &str,
    index: usize,
) -> anyhow::Result<WorkerProcess> {
    // A free port now, for the worker to bind: the bench must know where to scrape.
    let metrics = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?;
    let mut command = Command::new(&config.worker_bin);
    if let Some(queue) = config.receiver_queue {
        command.env("LIKES_RECEIVER_QUEUE", queue.to_string());
    }
    let child = command
        .arg("run")
        .env("RUST_LOG", "warn")
        .env("LIKES_DATABASE_URL", database_url)
        .env("LIKES_PULSAR_ADMIN_URL", admin_url)
        .env("LIKES_PULSAR_URL", url)
        .env("LIKES_PULSAR__TOPIC", &topics.topic)
        .env("LIKES_PULSAR__PARTITIONS", PARTITIONS.to_string())
        .env("LIKES_PULSAR__DLQ_TOPIC", &topics.dlq_topic)
        .env(
            "LIKES_CONSUMER_NAME",
            format!("steady-{index}-{}", std::process::id()),
        )
        .env("LIKES_ADMIN_ADDR", metrics.to_string())
        .stdout(Stdio::null())
        .spawn()
        .with_context(|| {
            format!(
                "spawn {} (build it with --release too)",
                config.worker_bin.display()
            )
        })?;
    Ok(WorkerProcess { child, metrics })
}

pub(super) async fn wait_serving(addr: std::net::SocketAddr) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    while scrape(addr).await.is_err() {
        anyhow::ensure!(
            Instant::now() < deadline,
            "no /metrics on {addr} within 30 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}

pub(super) async fn sample_all(workers: &[WorkerProcess]) -> anyhow::Result<Vec<Sample>> {
    let mut samples = Vec::with_capacity(workers.len());
    for worker in workers {
        let text = scrape(worker.metrics).await?;
        let lag = EventLagSnapshot::from_metrics(&text).context("no lag histogram in /metrics")?;
        let events = text
            .lines()
            .find_map(|line| line.strip_prefix("likes_pipeline_events_total "))
            .and_then(|value| value.parse().ok())
            .context("no events_total in /metrics")?;
        samples.push(Sample {
            lag,
            events,
            rss_kib: rss_kib(worker.child.id())?,
        });
    }
    Ok(samples)
}

/// SIGTERM `child` (the graceful stop), and its exit code once it exits (30 s at most).
pub(super) async fn terminate(mut child: Child) -> anyhow::Result<Option<i32>> {
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()?;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(status.code());
        }
        if Instant::now() > deadline {
            child.kill()?;
            anyhow::bail!("a worker did not exit within 30 s of SIGTERM");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
