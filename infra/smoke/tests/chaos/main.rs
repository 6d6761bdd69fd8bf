//! The whole stack under faults (issue 10, DESIGN section 8): likes and unlikes from many users
//! through Nginx while, in turn, an ingest and a worker are killed (-9) and restarted, and Redis,
//! Pulsar and TiDB are each stopped and started again. Afterwards, once the pipeline has drained:
//! every pair is in TiDB with the state of its last 2xx, I1 holds over every content, the counts
//! the API serves are TiDB's, nothing went to the dead-letter topic, and no process grew past
//! its memory bound. It prints the table of what each fault cost.
//!
//! It runs the stack of `infra/dev/services up stack` (started here, stopped at the end) on the
//! services of the env file, with the binaries `cargo test --workspace` built. It stops and starts
//! shared services, so it is a test binary of its own (cargo runs test binaries one at a time).

mod diagnose;
mod load;
mod stack;

use load::{Client, Load, Pair, PairState};
use sqlx::Row;
use stack::{Fault, Stack};
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Load before the first fault and between faults.
const STEADY: Duration = Duration::from_secs(5);
/// Longest wait for the pipeline to bring TiDB to the answered states.
const DRAIN_LIMIT: Duration = Duration::from_secs(180);
/// Peak RSS any member may reach (debug builds, a few thousand users).
const MEMORY_BOUND_MIB: u64 = 512;

const FAULTS: [Fault; 5] = [
    Fault::Kill("ingest1", Duration::from_secs(3)),
    Fault::Kill("worker1", Duration::from_secs(5)),
    Fault::Stop("redis", Duration::from_secs(10)),
    Fault::Stop("pulsar", Duration::from_secs(20)),
    Fault::Stop("tidb", Duration::from_secs(20)),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_answered_like_survives_each_fault_and_the_counts_stay_exact() {
    let stack = Stack::up();
    let client = Arc::new(Client::new(
        stack.get("LIKES_STACK_URL"),
        stack.get("LIKES_AUTH__JWT_SECRET"),
    ));
    let db = sqlx::mysql::MySqlPoolOptions::new()
        .max_connections(2)
        .connect(stack.get("LIKES_STACK_DATABASE_URL"))
        .await
        .expect("the stack's database");
    let admin = pulsar_admin_url();
    let dead_before = dead_letters(&admin).await;
    // Ids of this run's own: earlier runs' rows stay in the database.
    let run = (std::process::id() as u64 % 10_000 + 1) * 1_000_000_000;
    let (first_user, first_content, contents) = (run, run, 40);
    let started_ms = load::wall_ms();
    let load = Load::start(
        client.clone(),
        16,
        25,
        (first_user, first_content, contents),
    );

    tokio::time::sleep(STEADY).await;
    let mut table = Vec::new();
    for (i, fault) in FAULTS.iter().enumerate() {
        load.phase.store(i + 1, Ordering::Relaxed);
        let started = Instant::now();
        let f = *fault;
        tokio::task::spawn_blocking(move || f.inflict())
            .await
            .expect("fault");
        let back = started.elapsed();
        let visible = like_visible_after(&client, &db, run + 999_999, first_content).await;
        tokio::time::sleep(STEADY).await;
        table.push((fault.label(), back, visible));
    }
    let tallies = load.tallies.clone();
    let mut pairs = load.finish().await;
    load::settle(&client, &mut pairs).await;

    let drain = drain(&db, &pairs).await;
    print_table(&tallies, &table, drain.as_ref().ok().copied());
    let drain = match drain {
        Ok(drain) => drain,
        Err(mismatches) => {
            for (pair, _, _) in &mismatches {
                report_pair(&db, *pair, &pairs[pair], started_ms).await;
            }
            let stuck: Vec<Pair> = mismatches.iter().map(|(pair, _, _)| *pair).collect();
            let workers = [
                stack.get("LIKES_STACK_WORKER1_ADMIN_URL"),
                stack.get("LIKES_STACK_WORKER2_ADMIN_URL"),
            ];
            let pulsar_url = likes_smoke::ServicesEnv::load().get("LIKES_PULSAR_URL");
            diagnose::report(&admin, &pulsar_url, &workers, &stuck, started_ms).await;
            panic!("TiDB did not reach the answered states within {DRAIN_LIMIT:?}: {mismatches:?}")
        }
    };
    for phase in 0..=FAULTS.len() {
        let t = tallies.get(phase);
        assert_eq!(
            t.wrong, 0,
            "phase {phase}: 2xx answers with the other state"
        );
        assert_eq!(
            t.other, 0,
            "phase {phase}: answers other than 2xx and 503: {t:?}"
        );
    }
    println!("drained {drain:?} after the load");
    assert_eq!(
        i1_violations(&db).await,
        Vec::<u64>::new(),
        "I1 over every content"
    );
    let served = served_counts(&client, first_content, contents).await;
    let stored = stored_counts(&db, first_content, contents).await;
    assert_eq!(served, stored, "counts the API serves = TiDB's");
    assert_eq!(
        dead_letters(&admin).await,
        dead_before,
        "no dead letters during the run"
    );
    for (member, mib) in stack.peak_rss_mib() {
        assert!(mib < MEMORY_BOUND_MIB, "{member} peaked at {mib} MiB");
    }
}

fn pulsar_admin_url() -> String {
    likes_smoke::ServicesEnv::load().get("LIKES_PULSAR_ADMIN_URL")
}

/// After a fault: how long a like sent now takes to show in TiDB (the stack is back end to end).
async fn like_visible_after(
    client: &Client,
    db: &sqlx::MySqlPool,
    user: u64,
    content: u64,
) -> Duration {
    let started = Instant::now();
    let token = client.token(user);
    // Alternate so each probe is a change that must reach TiDB.
    let like = !stored_state(db, user, content).await.unwrap_or(false);
    while !matches!(
        client.act(&token, content, like).await,
        load::Outcome::Ok { .. }
    ) {
        assert!(started.elapsed() < DRAIN_LIMIT, "no 2xx for the probe");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    while stored_state(db, user, content).await != Some(like) {
        assert!(
            started.elapsed() < DRAIN_LIMIT,
            "the probe never reached TiDB"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    started.elapsed()
}

async fn stored_state(db: &sqlx::MySqlPool, user: u64, content: u64) -> Option<bool> {
    sqlx::query("SELECT liked FROM likes WHERE content_id = ? AND user_id = ?")
        .bind(content)
        .bind(user)
        .fetch_optional(db)
        .await
        .ok()
        .flatten()
        .map(|row| row.get::<i8, _>(0) == 1)
}

/// Waits until every pair's row says what its last 2xx said (no row = never liked); the time
/// it took, or the pairs that still differ at the limit.
async fn drain(
    db: &sqlx::MySqlPool,
    pairs: &HashMap<Pair, PairState>,
) -> Result<Duration, Vec<(Pair, Option<bool>, Option<bool>)>> {
    let started = Instant::now();
    loop {
        let rows = sqlx::query(
            "SELECT user_id, content_id, liked FROM likes WHERE user_id BETWEEN ? AND ?",
        )
        .bind(pairs.keys().map(|p| p.0).min().unwrap_or(0))
        .bind(pairs.keys().map(|p| p.0).max().unwrap_or(0))
        .fetch_all(db)
        .await;
        if let Ok(rows) = rows {
            let stored: HashMap<Pair, bool> = rows
                .iter()
                .map(|r| ((r.get(0), r.get(1)), r.get::<i8, _>(2) == 1))
                .collect();
            let mismatches: Vec<_> = pairs
                .iter()
                .filter_map(|(pair, state)| {
                    let want = state.liked.unwrap_or(false);
                    let have = stored.get(pair).copied();
                    (have.unwrap_or(false) != want).then_some((*pair, state.liked, have))
                })
                .collect();
            if mismatches.is_empty() {
                return Ok(started.elapsed());
            }
            if started.elapsed() > DRAIN_LIMIT {
                return Err(mismatches.into_iter().take(20).collect());
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// A pair that ended wrong: its every action and the row TiDB holds, on one clock (ms since the
/// load started; a version's upper bits are the wall-clock ms of the action that made it).
async fn report_pair(db: &sqlx::MySqlPool, pair: Pair, state: &PairState, started_ms: u64) {
    let at = |ms: u64| ms as i64 - started_ms as i64;
    println!("pair {pair:?}: expected liked={:?}", state.liked);
    for step in &state.history {
        println!(
            "  {}..{}ms phase {:?} {} -> {}",
            at(step.sent_ms),
            at(step.answered_ms),
            (step.phase != usize::MAX).then_some(step.phase),
            if step.like { "like" } else { "unlike" },
            step.answer
        );
    }
    let row = sqlx::query("SELECT liked, version FROM likes WHERE content_id = ? AND user_id = ?")
        .bind(pair.1)
        .bind(pair.0)
        .fetch_optional(db)
        .await;
    match row {
        Ok(Some(row)) => {
            let version: u64 = row.get(1);
            println!(
                "  TiDB: liked={} version {version} (~{}ms)",
                row.get::<i8, _>(0),
                at(version >> 16)
            );
        }
        other => println!("  TiDB: {other:?}"),
    }
}

/// Contents whose stored count is not the number of their liked rows (I1).
async fn i1_violations(db: &sqlx::MySqlPool) -> Vec<u64> {
    sqlx::query(
        "SELECT k.content_id FROM \
           (SELECT content_id FROM like_counts UNION SELECT content_id FROM likes) k \
           LEFT JOIN like_counts c ON c.content_id = k.content_id \
           LEFT JOIN (SELECT content_id, SUM(liked) AS n FROM likes GROUP BY content_id) l \
             ON l.content_id = k.content_id \
         WHERE COALESCE(c.count, 0) <> COALESCE(l.n, 0)",
    )
    .fetch_all(db)
    .await
    .expect("I1 query")
    .iter()
    .map(|r| r.get(0))
    .collect()
}

async fn stored_counts(db: &sqlx::MySqlPool, first: u64, n: u64) -> BTreeMap<u64, i64> {
    let rows =
        sqlx::query("SELECT content_id, count FROM like_counts WHERE content_id BETWEEN ? AND ?")
            .bind(first)
            .bind(first + n - 1)
            .fetch_all(db)
            .await
            .expect("counts");
    let stored: HashMap<u64, i64> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    (first..first + n)
        .map(|c| (c, stored.get(&c).copied().unwrap_or(0)))
        .collect()
}

/// The counts the API serves, read past the hot-key cache's TTL.
async fn served_counts(client: &Client, first: u64, n: u64) -> BTreeMap<u64, i64> {
    tokio::time::sleep(Duration::from_secs(1)).await;
    let mut served = BTreeMap::new();
    for c in first..first + n {
        served.insert(c, client.count(c).await.expect("a count"));
    }
    served
}

/// Messages the dead-letter topic has received, in total.
async fn dead_letters(admin: &str) -> u64 {
    let url = format!("{admin}/admin/v2/persistent/public/default/like-events-dlq/stats");
    let stats: serde_json::Value = reqwest::get(url)
        .await
        .expect("DLQ stats")
        .json()
        .await
        .expect("DLQ stats JSON");
    stats["msgInCounter"].as_u64().unwrap_or(0)
}

fn print_table(
    tallies: &load::Tallies,
    faults: &[(String, Duration, Duration)],
    drain: Option<Duration>,
) {
    println!(
        "\n{:<34} {:>8} {:>8} {:>6} {:>6} {:>9} {:>13}",
        "phase", "requests", "2xx", "503", "other", "back in", "like→TiDB"
    );
    let mut rows = vec![("steady load".to_owned(), None)];
    rows.extend(faults.iter().map(|(l, b, v)| (l.clone(), Some((*b, *v)))));
    for (phase, (label, times)) in rows.into_iter().enumerate() {
        let t = tallies.get(phase);
        let (back, visible) = times.map_or(("-".into(), "-".into()), |(b, v)| {
            (
                format!("{:.1}s", b.as_secs_f64()),
                format!("{:.1}s", v.as_secs_f64()),
            )
        });
        println!(
            "{label:<34} {:>8} {:>8} {:>6} {:>6} {back:>9} {visible:>13}",
            t.requests, t.ok, t.unavailable, t.other
        );
    }
    match drain {
        Some(d) => println!("drain after the load: {:.1}s", d.as_secs_f64()),
        None => println!("drain after the load: NOT within {DRAIN_LIMIT:?}"),
    }
}
