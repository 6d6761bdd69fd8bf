//! The two modes' sequences of phases, on two runtimes: the servers on one, the load on another
//! (separate thread pools, sized by the options), so baseline and service see the same split.

use crate::driver::{self, Plan};
use crate::report::{ratio_text, Summary};
use crate::targets::{self, Hello, BENCH_SECRET};
use crate::verify::{self, Exactness};
use crate::workload::{
    expected_deltas, BatchGetSession, HelloSession, ReadIds, ReadSession, WriteSession, Zipf,
};
use anyhow::Context as _;
use hyper::header::HeaderValue;
use rand::rngs::SmallRng;
use rand::SeedableRng;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::runtime::Runtime;

#[derive(Debug, Clone)]
pub struct Options {
    pub target: Option<SocketAddr>,
    pub jwt_secret: String,
    pub duration: Duration,
    pub warmup: Duration,
    pub half_duration: Duration,
    pub concurrency: usize,
    pub users: u64,
    pub contents: usize,
    pub zipf_s: f64,
    pub server_threads: usize,
    pub load_threads: usize,
    pub baseline: bool,
    pub seed: u64,
    /// `--hottest N`: the GET phase that reads only the N most read contents.
    pub hottest: u64,
    /// `--batch N`: ids per `batchGet` page.
    pub batch: usize,
    /// `--steady R`: one open-loop write phase at R likes/s for `duration` instead of the
    /// closed-loop phases (the end-to-end benchmark: a rate the deployment is to sustain).
    pub steady: Option<f64>,
}

/// What the likes phases measured, and the write sessions' model for the exactness check.
struct LikesRun {
    write: Summary,
    read: Summary,
    hot_read: Summary,
    batch: Summary,
    batch_page: usize,
    half: Summary,
    half_rate: f64,
    sessions: Vec<WriteSession>,
}

fn runtime(name: &str, threads: usize) -> anyhow::Result<Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads.max(1))
        .thread_name(name)
        .enable_all()
        .build()
        .with_context(|| format!("building the {name} runtime"))
}

/// Runs every phase and prints as it goes; `Ok(false)` if the counts were not exact.
pub fn run(o: &Options) -> anyhow::Result<bool> {
    let load = runtime("load", o.load_threads)?;
    let server = runtime("server", o.server_threads)?;
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!(
        "likes-load: {} connections, {}s warm-up + {}s per phase, {} users, {} contents (Zipf s={}), \
         {} server / {} load runtime worker thread(s)",
        o.concurrency,
        o.warmup.as_secs_f64(),
        o.duration.as_secs_f64(),
        o.users,
        o.contents,
        o.zipf_s,
        o.server_threads,
        o.load_threads
    );
    println!(
        "machine: {cores} cores shared by the servers and this load generator, over loopback; \
         absolute figures are for this box only, the ratios are the comparable part\n"
    );
    println!("load average before: {}", loadavg());
    println!("{}", Summary::header());
    let measured = Plan {
        warmup: o.warmup,
        measure: o.duration,
        rate: None,
    };

    let hello = if o.baseline {
        let h = server.block_on(Hello::start())?;
        let host = HeaderValue::try_from(h.addr.to_string())?;
        let sessions = (0..o.concurrency)
            .map(|_| HelloSession { host: host.clone() })
            .collect();
        let (_, tally) = load.block_on(driver::run(h.addr, sessions, measured))?;
        server.block_on(h.stop())?;
        let s = Summary::new(
            "baseline: warp hello GET",
            o.concurrency,
            &tally,
            o.duration,
        );
        println!("{}", s.row());
        Some(s)
    } else {
        None
    };

    let verdict = match o.target {
        None => {
            let dir = tempfile::Builder::new()
                .prefix("likes-bench-")
                .tempdir()
                .context("making a temp data dir")?;
            let app = server.block_on(targets::start_embedded(dir.path()))?;
            let tokens = targets::mint_tokens(BENCH_SECRET, o.users, 3600)?;
            let sessions = drive(&load, app.addr, o, &tokens, hello.as_ref())?;
            let drained = load.block_on(verify::wait_drained(
                app.addr,
                &app.worker_stats,
                Duration::from_secs(60),
            ))?;
            println!(
                "pipeline drained {:.2}s after the load stopped",
                drained.as_secs_f64()
            );
            let (deltas, tainted) = expected_deltas(&sessions);
            let verdict = load.block_on(verify::check_embedded(
                app.addr,
                app.store.clone(),
                server.handle(),
                &deltas,
                &tainted,
            ))?;
            server.block_on(app.stop())?;
            verdict
        }
        Some(addr) => {
            anyhow::ensure!(
                !o.jwt_secret.is_empty(),
                "target mode needs the instance's JWT secret (--jwt-secret or LIKES_AUTH__JWT_SECRET)"
            );
            let tokens = targets::mint_tokens(&o.jwt_secret, o.users, 3600)?;
            let all: Vec<u64> = (1..=o.contents as u64).collect();
            let before = load.block_on(verify::served_counts(addr, &all))?;
            let sessions = drive(&load, addr, o, &tokens, hello.as_ref())?;
            let (deltas, tainted) = expected_deltas(&sessions);
            // An external instance may serve hot counts from a local cache with a short TTL
            // (likes-ingest: 500 ms): what is checked is what it serves once that has passed.
            std::thread::sleep(std::time::Duration::from_secs(2));
            load.block_on(verify::check_served(addr, &before, &deltas, &tainted))?
        }
    };
    println!("{}", verdict.text());
    println!("load average after: {}", loadavg());
    print_notes(&verdict);
    Ok(verdict.is_exact())
}

/// The closed-loop phases and their ratios to `hello`, or with `--steady` the one steady
/// phase; the write sessions, whose model the exactness check needs.
fn drive(
    load: &Runtime,
    addr: SocketAddr,
    o: &Options,
    tokens: &[HeaderValue],
    hello: Option<&Summary>,
) -> anyhow::Result<Vec<WriteSession>> {
    match o.steady {
        None => {
            let likes = drive_likes(load, addr, o, tokens)?;
            print_likes(&likes, hello);
            Ok(likes.sessions)
        }
        Some(rate) => drive_steady(load, addr, o, tokens, rate),
    }
}

/// Likes and unlikes at `rate` per second (open loop) for `duration`, after the warm-up. The
/// `STEADY` line is for scripts that compare two targets' runs.
fn drive_steady(
    load: &Runtime,
    addr: SocketAddr,
    o: &Options,
    tokens: &[HeaderValue],
    rate: f64,
) -> anyhow::Result<Vec<WriteSession>> {
    let host = HeaderValue::try_from(addr.to_string())?;
    let zipf = Arc::new(Zipf::new(o.contents, o.zipf_s));
    let plan = Plan {
        warmup: o.warmup,
        measure: o.duration,
        rate: Some(rate),
    };
    let sessions = WriteSession::partition(&host, &zipf, tokens, o.concurrency, o.seed);
    let (sessions, tally) = load.block_on(driver::run(addr, sessions, plan))?;
    let steady = Summary::new(
        &format!("likes: like @ {rate:.0}/s (steady)"),
        o.concurrency,
        &tally,
        o.duration,
    );
    println!("{}", steady.row());
    println!(
        "STEADY offered={rate:.0} ok_rps={:.1} p50_us={} p99_us={} errors={}",
        steady.rps,
        steady.p50_us,
        steady.p99_us,
        steady.errors.values().sum::<u64>()
    );
    Ok(sessions)
}

/// Writes (closed loop), reads (closed loop), then writes at half the measured write peak
/// (open loop). The write sessions carry on from the first phase into the third.
fn drive_likes(
    load: &Runtime,
    addr: SocketAddr,
    o: &Options,
    tokens: &[HeaderValue],
) -> anyhow::Result<LikesRun> {
    let host = HeaderValue::try_from(addr.to_string())?;
    let zipf = Arc::new(Zipf::new(o.contents, o.zipf_s));
    let closed = Plan {
        warmup: o.warmup,
        measure: o.duration,
        rate: None,
    };
    let sessions = WriteSession::partition(&host, &zipf, tokens, o.concurrency, o.seed);
    let (sessions, tally) = load.block_on(driver::run(addr, sessions, closed))?;
    let (puts, deletes) = sessions
        .iter()
        .fold((0, 0), |(p, d), s| (p + s.puts, d + s.deletes));
    let write = Summary::new(
        &format!(
            "likes: PUT/DELETE like ({:.0}% PUT)",
            100.0 * puts as f64 / (puts + deletes).max(1) as f64
        ),
        o.concurrency,
        &tally,
        o.duration,
    );
    println!("{}", write.row());

    let reads = |ids: &ReadIds, salt: u64| -> Vec<ReadSession> {
        (0..o.concurrency)
            .map(|c| ReadSession {
                host: host.clone(),
                ids: ids.clone(),
                rng: SmallRng::seed_from_u64(o.seed.wrapping_add(salt + c as u64)),
            })
            .collect()
    };
    let all = ReadIds::Zipf(zipf.clone());
    let (_, tally) = load.block_on(driver::run(addr, reads(&all, 1_000), closed))?;
    let read = Summary::new("likes: GET content", o.concurrency, &tally, o.duration);
    println!("{}", read.row());

    let hottest = ReadIds::Hottest(o.hottest.min(o.contents as u64));
    let (_, tally) = load.block_on(driver::run(addr, reads(&hottest, 2_000), closed))?;
    let label = format!("likes: GET {} hottest contents", o.hottest);
    let hot_read = Summary::new(&label, o.concurrency, &tally, o.duration);
    println!("{}", hot_read.row());

    let pages = (0..o.concurrency)
        .map(|c| BatchGetSession {
            host: host.clone(),
            ids: all.clone(),
            page: o.batch,
            rng: SmallRng::seed_from_u64(o.seed.wrapping_add(3_000 + c as u64)),
        })
        .collect();
    let (_, tally) = load.block_on(driver::run(addr, pages, closed))?;
    let label = format!("likes: batchGet {} ids", o.batch);
    let batch = Summary::new(&label, o.concurrency, &tally, o.duration);
    println!("{}", batch.row());

    let half_rate = write.rps / 2.0;
    let open = Plan {
        warmup: Duration::from_secs(1),
        measure: o.half_duration,
        rate: Some(half_rate.max(1.0)),
    };
    let (sessions, tally) = load.block_on(driver::run(addr, sessions, open))?;
    let half = Summary::new(
        &format!("likes: like @ {half_rate:.0}/s (50% peak)"),
        o.concurrency,
        &tally,
        o.half_duration,
    );
    println!("{}", half.row());
    Ok(LikesRun {
        write,
        read,
        hot_read,
        batch,
        batch_page: o.batch,
        half,
        half_rate,
        sessions,
    })
}

/// Other work on the box skews every figure: print it so a run can be judged.
fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg").map_or_else(
        |_| "unknown".to_owned(),
        |l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "),
    )
}

fn print_likes(likes: &LikesRun, hello: Option<&Summary>) {
    let base = hello.map_or(0.0, |h| h.rps);
    println!();
    println!(
        "likes write rps / hello rps: {}   (DESIGN §9: ≥ 0.50)",
        ratio_text(likes.write.rps, base)
    );
    println!(
        "likes GET rps / hello rps:   {}",
        ratio_text(likes.read.rps, base)
    );
    println!(
        "likes GET hottest / hello:   {}",
        ratio_text(likes.hot_read.rps, base)
    );
    println!(
        "likes batchGet / hello:      {}   (pages of up to {} ids per request)",
        ratio_text(likes.batch.rps, base),
        likes.batch_page
    );
    println!(
        "p99 at 50% of write peak ({:.0}/s offered, {:.0}/s answered 2xx): {}   (DESIGN §9: ≤ 10 ms)",
        likes.half_rate,
        likes.half.rps,
        crate::report::millis(likes.half.p99_us)
    );
}

fn print_notes(verdict: &Exactness) {
    println!();
    println!("notes:");
    println!(
        "- servers and load generator share this machine's cores; the load runs on its own \
         runtime, but the log's fsync thread and SQLite's connection threads compete with both"
    );
    println!(
        "- every 200 to a like/unlike waits for the embedded log's group-commit fsync (one fsync \
         covers many appends), so write latency includes the disk's flush time"
    );
    println!(
        "- open-loop latency is measured from each request's scheduled time (no coordinated omission)"
    );
    if verdict.store_mismatches.is_none() {
        println!(
            "- external instance: the store was not inspected; served counts were checked, 2 s \
             after the load (past any local cache's TTL), against the counts before the run plus \
             this run's likes"
        );
    }
}
