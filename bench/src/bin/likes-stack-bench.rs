//! `likes-stack-bench --rate R [--seconds S]`: the end-to-end benchmark of issue 10. The stack of
//! `infra/dev/stack up` (Nginx, two `likes-ingest`, two `likes-pipeline run`) takes likes and
//! unlikes at a steady R per second for S seconds from `likes-load target --steady` through
//! Nginx; then the embedded `likes` takes the same load (`likes-load compare --steady`), and the
//! two are put side by side.
//!
//! For the stack it adds what the load tool cannot see: each member's RSS before and after, the
//! lag from each like's event time to the commit that made it visible in TiDB (the workers'
//! `likes_pipeline_event_commit_lag_seconds` histograms, subtracted before/after: every event,
//! not a sample), and the drain (from the end of the load until no worker has a backlog).
//! Exactness is the load tool's check (served counts = counts before + this run's likes).

#[path = "../shared/process_probe.rs"]
mod process_probe;

use anyhow::{bail, Context as _};
use likes_pipeline::runtime::event_lag::EventLagSnapshot;
use process_probe::{rss_kib, scrape};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, BufReader};

const MEMBERS: [&str; 5] = ["nginx", "ingest1", "ingest2", "worker1", "worker2"];
const WORKERS: [&str; 2] = ["WORKER1", "WORKER2"];
const DRAIN_LIMIT: Duration = Duration::from_secs(120);

/// What one `likes-load --steady` run printed on its `STEADY` line, and its verdict.
#[derive(Debug, Default)]
struct Steady {
    ok_rps: f64,
    p50_us: u64,
    p99_us: u64,
    errors: u64,
    exact: bool,
}

/// Where `infra/dev/services` keeps its env files and each member's pid: the directory of
/// the services' env file.
fn run_dir() -> PathBuf {
    let env_file = likes_smoke::env_file_path();
    env_file.parent().map_or_else(PathBuf::new, PathBuf::from)
}

fn stack_env() -> anyhow::Result<HashMap<String, String>> {
    let path = run_dir().join("stack.env");
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("{}: run `infra/dev/stack up` first", path.display()))?;
    Ok(likes_smoke::parse_env(&text))
}

/// Each member's RSS in MiB (Nginx: the master and its workers together).
fn rss_mib() -> Vec<(&'static str, f64)> {
    MEMBERS
        .iter()
        .map(|member| {
            let pid = std::fs::read_to_string(run_dir().join(member).join("pid"))
                .ok()
                .and_then(|p| p.trim().parse::<u32>().ok());
            let kib = pid.map_or(0, |pid| {
                let children = if *member == "nginx" {
                    children(pid)
                } else {
                    Vec::new()
                };
                std::iter::once(pid)
                    .chain(children)
                    .filter_map(|p| rss_kib(p).ok())
                    .sum()
            });
            (*member, kib as f64 / 1024.0)
        })
        .collect()
}

/// The direct children of `pid` (Nginx's worker processes).
fn children(pid: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|child| {
            std::fs::read_to_string(format!("/proc/{child}/stat"))
                .ok()
                .and_then(|stat| {
                    // After the `(comm)` field: state, then the parent's pid.
                    let rest = stat.rsplit_once(')')?.1;
                    rest.split_whitespace().nth(1)?.parse::<u32>().ok()
                })
                == Some(pid)
        })
        .collect()
}

fn worker_addrs(env: &HashMap<String, String>) -> anyhow::Result<Vec<SocketAddr>> {
    WORKERS
        .iter()
        .map(|w| {
            let key = format!("LIKES_STACK_{w}_ADMIN_URL");
            let url = env
                .get(&key)
                .with_context(|| format!("no {key} in stack.env"))?;
            url.trim_start_matches("http://")
                .trim_end_matches('/')
                .parse()
                .with_context(|| format!("{key}={url}"))
        })
        .collect()
}

/// The workers' lag histograms merged, and their backlog over every partition they own.
async fn sample(workers: &[SocketAddr]) -> anyhow::Result<(EventLagSnapshot, u64)> {
    let mut lag = EventLagSnapshot::default();
    let mut backlog = 0;
    for addr in workers {
        let text = scrape(*addr).await?;
        lag.merge(&EventLagSnapshot::from_metrics(&text).context("no lag histogram")?);
        backlog += text
            .lines()
            .filter(|l| l.starts_with("likes_pipeline_partition_backlog{"))
            .filter_map(|l| l.rsplit_once(' ')?.1.parse::<u64>().ok())
            .sum::<u64>();
    }
    Ok((lag, backlog))
}

/// Runs `likes-load ARGS`, echoing its output, and reads its `STEADY` line and exit status;
/// `ended` hears when the load phase is over (the tool checks counts after it).
async fn steady_load(
    args: &[&str],
    mut ended: Option<tokio::sync::oneshot::Sender<Instant>>,
) -> anyhow::Result<Steady> {
    let exe = std::env::current_exe()?.with_file_name("likes-load");
    let mut child = tokio::process::Command::new(&exe)
        .args(args)
        .stdout(Stdio::piped())
        .spawn()
        .with_context(|| {
            format!(
                "{} (build it: cargo build --release -p likes-bench)",
                exe.display()
            )
        })?;
    let stdout = child.stdout.take().context("likes-load's stdout")?;
    let mut lines = BufReader::new(stdout).lines();
    let mut steady = Steady::default();
    let mut seen = false;
    while let Some(line) = lines.next_line().await? {
        println!("  | {line}");
        if let Some(fields) = line.strip_prefix("STEADY ") {
            seen = true;
            if let Some(tell) = ended.take() {
                let _ = tell.send(Instant::now());
            }
            for (key, value) in fields.split_whitespace().filter_map(|f| f.split_once('=')) {
                match key {
                    "ok_rps" => steady.ok_rps = value.parse()?,
                    "p50_us" => steady.p50_us = value.parse()?,
                    "p99_us" => steady.p99_us = value.parse()?,
                    "errors" => steady.errors = value.parse()?,
                    _ => {}
                }
            }
        }
    }
    steady.exact = child.wait().await?.success();
    anyhow::ensure!(seen, "likes-load printed no STEADY line");
    Ok(steady)
}

fn ms(micros: u64) -> String {
    format!("{:.1} ms", micros as f64 / 1000.0)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let (mut rate, mut seconds) = (None, 60u64);
    while let Some(arg) = args.next() {
        let value = args
            .next()
            .with_context(|| format!("{arg} needs a value"))?;
        match arg.as_str() {
            "--rate" => rate = Some(value.parse::<u64>().context("--rate")?),
            "--seconds" => seconds = value.parse().context("--seconds")?,
            other => bail!("unknown argument {other} (--rate R [--seconds S])"),
        }
    }
    let rate = rate.context("--rate R (likes per second) is required")?;
    let env = stack_env()?;
    let url = env.get("LIKES_STACK_URL").context("no LIKES_STACK_URL")?;
    let secret = env
        .get("LIKES_AUTH__JWT_SECRET")
        .context("no LIKES_AUTH__JWT_SECRET")?;
    let workers = worker_addrs(&env)?;
    let (rate_arg, secs_arg) = (rate.to_string(), seconds.to_string());

    println!("== the stack: {rate} likes/s for {seconds} s through Nginx at {url}");
    let rss_before = rss_mib();
    let (lag_before, _) = sample(&workers).await?;
    // Drained: no backlog left on any partition, watched from the end of the load phase while
    // the load tool checks its counts.
    let (tell, heard) = tokio::sync::oneshot::channel::<Instant>();
    let watched = workers.clone();
    let drain = tokio::spawn(async move {
        let ended = heard
            .await
            .context("the load ended without a STEADY line")?;
        loop {
            let (_, backlog) = sample(&watched).await?;
            if backlog == 0 {
                return Ok::<_, anyhow::Error>(ended.elapsed());
            }
            anyhow::ensure!(
                ended.elapsed() < DRAIN_LIMIT,
                "still {backlog} behind after {DRAIN_LIMIT:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    let stack = steady_load(
        &[
            "target",
            "--url",
            url,
            "--jwt-secret",
            secret,
            "--steady",
            &rate_arg,
            "--duration",
            &secs_arg,
            "--no-baseline",
        ],
        Some(tell),
    )
    .await?;
    let drained = drain.await??;
    let (lag_after, _) = sample(&workers).await?;
    let lag = lag_after.since(&lag_before);
    let rss_after = rss_mib();

    println!("== the embedded likes, the same load");
    let embedded = steady_load(
        &[
            "compare",
            "--steady",
            &rate_arg,
            "--duration",
            &secs_arg,
            "--no-baseline",
        ],
        None,
    )
    .await?;

    let q = |q: f64| {
        lag.quantile_ms(q)
            .map_or("n/a".into(), |v| format!("{v:.0} ms"))
    };
    println!("\n== end to end, {rate} likes/s offered for {seconds} s");
    println!(
        "{:<28} {:>12} {:>12} {:>10}",
        "", "stack", "embedded", "ratio"
    );
    println!(
        "{:<28} {:>12.0} {:>12.0} {:>10.3}",
        "2xx/s",
        stack.ok_rps,
        embedded.ok_rps,
        stack.ok_rps / embedded.ok_rps.max(1e-9)
    );
    for (what, s, e) in [
        ("p50", stack.p50_us, embedded.p50_us),
        ("p99", stack.p99_us, embedded.p99_us),
    ] {
        println!(
            "{what:<28} {:>12} {:>12} {:>10.2}",
            ms(s),
            ms(e),
            s as f64 / (e.max(1)) as f64
        );
    }
    println!(
        "{:<28} {:>12} {:>12}",
        "errors", stack.errors, embedded.errors
    );
    println!("{:<28} {:>12} {:>12}", "exact", stack.exact, embedded.exact);
    println!(
        "like → TiDB (stack)          p50 {} p99 {} over {} events (changes: repeats publish nothing; target p99 ≤ 2 s)",
        q(0.50),
        q(0.99),
        lag.count()
    );
    println!(
        "drain (stack)                {:.1} s after the load",
        drained.as_secs_f64()
    );
    println!("RSS (MiB)                    before → after");
    for ((member, before), (_, after)) in rss_before.iter().zip(&rss_after) {
        println!("  {member:<26} {before:>7.1} → {after:.1}");
    }
    if !(stack.exact && embedded.exact) {
        bail!("counts not exact (see the load tool's output)");
    }
    Ok(())
}
