//! `likes-sink-bench`: the sink's window commit against plain multi-row INSERTs of the same rows,
//! on the same server in the same run (DESIGN section 9: the sink reaches ≥ 0.5 of that rate).
//!
//! For each server (TiDB `LIKES_DATABASE_URL`, MariaDB `LIKES_MARIADB_URL`, whichever are set)
//! and each window size, it alternates, window by window: the baseline (one transaction of plain
//! `INSERT … VALUES` statements of the same rows, `rows_per_statement` rows each, into a copy of
//! the `likes` table: no reads, no version guard, no counts) and `MySqlStore::apply_window` (locking
//! reads, planned transitions, version-guarded upserts, count upserts). Alternating cancels
//! drift in the machine's load. Rows are new likes by fresh users over Zipf-like contents, so
//! every row is an insert on both sides, as for a flood of new likes.
//!
//! `likes-sink-bench [--windows N] [--sizes 1000,5000,20000]`, with the services' env loaded.

use anyhow::{bail, Context as _};
use likes_shared::store::{LikeChange, LikeStore};
use likes_shared::{ContentId, UserId};
use likes_sink::MySqlConfig;
use sqlx::Executor as _;
use std::fmt::Write as _;
use std::time::{Duration, Instant};

struct Args {
    windows: usize,
    sizes: Vec<usize>,
}

fn parse_args() -> anyhow::Result<Args> {
    let mut args = Args {
        windows: 15,
        sizes: vec![1_000, 5_000, 20_000],
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().with_context(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--windows" => args.windows = value.parse().context("--windows")?,
            "--sizes" => {
                args.sizes = value
                    .split(',')
                    .map(|s| s.trim().parse().context("--sizes"))
                    .collect::<anyhow::Result<_>>()?
            }
            other => bail!("unknown flag {other}"),
        }
    }
    Ok(args)
}

/// `size` new likes: users unique across the run, contents skewed (a quarter of the rows on ten
/// hot contents, the rest over 10 000).
fn window(size: usize, first_user: u64) -> Vec<LikeChange> {
    (0..size as u64)
        .map(|i| {
            let content = if i % 4 == 0 {
                1 + i % 10
            } else {
                11 + (i * 7919) % 10_000
            };
            LikeChange {
                content_id: ContentId::new(content).expect("non-zero"),
                user_id: UserId::new(first_user + i).expect("non-zero"),
                liked: true,
                version: first_user + i,
                ts_ms: 1_795_581_680_000 + i,
                fill_epoch: 0,
            }
        })
        .collect()
}

fn plain_insert(rows: &[LikeChange]) -> String {
    let mut sql = String::from(
        "INSERT INTO plain_likes (content_id, user_id, liked, version, updated_at) VALUES ",
    );
    for (i, r) in rows.iter().enumerate() {
        let sep = if i == 0 { "" } else { "," };
        let _ = write!(
            sql,
            "{sep}({},{},{},{},FROM_UNIXTIME({}))",
            r.content_id.get(),
            r.user_id.get(),
            u8::from(r.liked),
            r.version,
            r.ts_ms / 1000
        );
    }
    sql
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

struct Side {
    rows: usize,
    latencies: Vec<Duration>,
}

impl Side {
    fn rows_per_s(&self) -> f64 {
        self.rows as f64 / self.latencies.iter().sum::<Duration>().as_secs_f64()
    }
    fn line(&mut self) -> String {
        self.latencies.sort_unstable();
        format!(
            "{:>9.0} rows/s, p50 {:>7.1} ms, p99 {:>7.1} ms",
            self.rows_per_s(),
            percentile(&self.latencies, 0.5).as_secs_f64() * 1e3,
            percentile(&self.latencies, 0.99).as_secs_f64() * 1e3
        )
    }
}

async fn run_server(name: &str, server_url: &str, args: &Args) -> anyhow::Result<()> {
    let url = likes_smoke::fresh_database(server_url).await;
    let config = MySqlConfig {
        url,
        ..MySqlConfig::default()
    };
    let store = config.build().await.context("store")?;
    store
        .pool()
        .execute("CREATE TABLE plain_likes LIKE likes")
        .await
        .context("baseline table")?;
    let mut next_user = 1u64;
    for &size in &args.sizes {
        let mut plain = Side {
            rows: 0,
            latencies: Vec::new(),
        };
        let mut sink = Side {
            rows: 0,
            latencies: Vec::new(),
        };
        // One warm-up round per side, not measured.
        for round in 0..=args.windows {
            let rows = window(size, next_user);
            next_user += size as u64;
            let started = Instant::now();
            let mut tx = store.pool().begin().await?;
            for chunk in rows.chunks(config.rows_per_statement) {
                tx.execute(sqlx::raw_sql(&plain_insert(chunk))).await?;
            }
            tx.commit().await?;
            let plain_took = started.elapsed();

            let rows = window(size, next_user);
            next_user += size as u64;
            let started = Instant::now();
            store.apply_window(&rows).await?;
            let sink_took = started.elapsed();
            if round > 0 {
                plain.rows += size;
                plain.latencies.push(plain_took);
                sink.rows += size;
                sink.latencies.push(sink_took);
            }
        }
        let ratio = sink.rows_per_s() / plain.rows_per_s();
        println!("{name} window {size:>6}: plain INSERT {}", plain.line());
        println!(
            "{name} window {size:>6}: sink apply   {}  ratio {ratio:.2}",
            sink.line()
        );
    }
    if !store.count_mismatches().await?.is_empty() {
        bail!("{name}: counts drifted (I1)");
    }
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = parse_args()?;
    let servers: Vec<(&str, String)> = [
        ("TiDB", "LIKES_DATABASE_URL"),
        ("MariaDB", "LIKES_MARIADB_URL"),
    ]
    .into_iter()
    .filter_map(|(name, var)| std::env::var(var).ok().map(|url| (name, url)))
    .collect();
    if servers.is_empty() {
        bail!(
            "neither LIKES_DATABASE_URL nor LIKES_MARIADB_URL is set: load the services' env file"
        );
    }
    println!(
        "{} windows per size and side, alternating; rows/s over the summed window latencies",
        args.windows
    );
    for (name, url) in servers {
        run_server(name, &url, &args).await?;
    }
    Ok(())
}
