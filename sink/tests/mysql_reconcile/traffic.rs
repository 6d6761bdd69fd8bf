//! Reconciling in a loop while two writers commit windows (likes and unlikes, retried like the
//! worker does) on a few hot contents.

use super::retrying::apply_retrying;
use super::{c, change, options, seed, sql, store_on};
use likes_shared::store::{LikeChange, LikeStore};
use likes_shared::ContentId;
use likes_sink::mysql::{ReconcileReport, ReconcileScope};
use likes_sink::MySqlStore;
use likes_smoke::MYSQL_SERVERS;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Windows each writer applies in the traffic tests, and changes per window.
const WINDOWS_PER_WRITER: u64 = 300;
const CHANGES_PER_WINDOW: u64 = 12;

/// The hot contents of the traffic tests, apart from the seeded ones: few, so that nearly
/// every window moves every hot count.
const HOT: std::ops::RangeInclusive<u64> = 101..=103;

/// A well-mixed 64-bit hash (splitmix64's finalizer): the traffic's "random" choices, repeatable.
fn mix(mut x: u64) -> u64 {
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// Two writers on the hot contents, 40 users each, liking and unliking at random (so the
/// counts keep moving up and down), until each has applied `windows` windows; returns the
/// exact final count of each hot content.
fn spawn_traffic(
    store: &MySqlStore,
    windows: u64,
) -> (Vec<tokio::task::JoinHandle<()>>, BTreeMap<u64, i64>) {
    let hot = HOT.end() - HOT.start() + 1;
    let mut newest: BTreeMap<(u64, u64), (bool, u64)> = BTreeMap::new();
    let mut writers = Vec::new();
    for writer in 0..2u64 {
        let planned: Vec<Vec<LikeChange>> = (0..windows)
            .map(|round| {
                (0..CHANGES_PER_WINDOW)
                    .map(|i| {
                        let n = (round * CHANGES_PER_WINDOW + i) * 2 + writer;
                        let dice = mix(n);
                        let user = 1 + dice % 40 + writer * 40;
                        let content = HOT.start() + (dice >> 8) % hot;
                        change(content, user, (dice >> 16) & 1 == 0, 100 + n)
                    })
                    .collect()
            })
            .collect();
        for c in planned.iter().flatten() {
            let entry = newest
                .entry((c.content_id.get(), c.user_id.get()))
                .or_insert((c.liked, 0));
            if c.version > entry.1 {
                *entry = (c.liked, c.version);
            }
        }
        let store = store.clone();
        writers.push(tokio::spawn(async move {
            for window in &planned {
                apply_retrying(&store, window, &AtomicU64::new(0)).await;
            }
        }));
    }
    let mut exact: BTreeMap<u64, i64> = HOT.map(|n| (n, 0)).collect();
    for ((content, _), (liked, _)) in newest {
        *exact.entry(content).or_default() += i64::from(liked);
    }
    (writers, exact)
}

/// The scopes the traffic tests cycle through: everything in small batches, the hot contents
/// alone in batches of two, and a sample.
fn scope_of_round(round: u64) -> (ReconcileScope, usize) {
    match round % 3 {
        0 => (ReconcileScope::All, 3),
        1 => (
            ReconcileScope::Range {
                from: c(*HOT.start()),
                to: c(*HOT.end()),
            },
            2,
        ),
        _ => (ReconcileScope::Sample { contents: 8 }, 2),
    }
}

async fn assert_exact(store: &MySqlStore, exact: &BTreeMap<u64, i64>, server: &str) {
    let ids: Vec<ContentId> = exact.keys().map(|&n| c(n)).collect();
    let want: Vec<i64> = exact.values().copied().collect();
    assert_eq!(store.counts(&ids).await.expect("counts"), want, "{server}");
    assert_eq!(
        store.count_mismatches().await.expect("I1"),
        vec![],
        "{server}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reconciling_while_windows_commit_finds_no_drift_and_counts_stay_exact() {
    for server in MYSQL_SERVERS {
        let (store, _) = store_on(server).await;
        let seeded = seed(&store).await;
        let (writers, mut exact) = spawn_traffic(&store, WINDOWS_PER_WRITER);
        let mut rounds = 0u64;
        while !writers.iter().all(|w| w.is_finished()) {
            assert!(rounds < 100_000, "{server}: the writers never finish");
            let (scope, batch) = scope_of_round(rounds);
            let dry_run = rounds.is_multiple_of(2);
            let report = store
                .reconcile(options(scope.clone(), batch, dry_run))
                .await
                .unwrap_or_else(|e| panic!("{server}: {e}"));
            assert_eq!(
                (report.drift, report.repaired),
                (vec![], 0),
                "{server}: round {rounds} {scope:?} dry_run={dry_run} saw a window as drift"
            );
            rounds += 1;
        }
        for writer in writers {
            writer.await.expect("writer");
        }
        eprintln!("{server}: {rounds} reconcile runs during the traffic");
        assert!(rounds >= 10, "{server}: too little overlap ({rounds} runs)");
        // Cold contents keep their seeded counts; hot ones moved to the newest states.
        exact.extend(seeded);
        exact.insert(41, 0);
        assert_exact(&store, &exact, server).await;
    }
}

/// Drift is injected (+5 on a hot count) again and again while windows commit. A right repair
/// removes exactly the injected amount, so every drift found is a positive multiple of 5 (or the
/// count row deleted before the traffic), the amounts removed add up to what was injected, and
/// the counts end exact. A repair that undid a window's delta would show as other amounts.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn drift_injected_while_windows_commit_is_repaired_exactly_once() {
    for server in MYSQL_SERVERS {
        let (store, _) = store_on(server).await;
        let seeded = seed(&store).await;
        // Before the traffic: a missing count row, and a hot count 5 too high from the start.
        sql(&store, "DELETE FROM like_counts WHERE content_id = 20").await;
        sql(
            &store,
            "INSERT INTO like_counts (content_id, count, updated_at) VALUES (101, 5, NOW(3))",
        )
        .await;
        let injected = Arc::new(AtomicU64::new(1));
        let stop = Arc::new(AtomicBool::new(false));
        let (writers, mut exact) = spawn_traffic(&store, WINDOWS_PER_WRITER);
        let injector = {
            let (store, injected, stop) = (store.clone(), injected.clone(), stop.clone());
            tokio::spawn(async move {
                let mut round = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let statement = format!(
                        "UPDATE like_counts SET count = count + 5 WHERE content_id = {}",
                        HOT.start() + round % (HOT.end() - HOT.start() + 1)
                    );
                    // Only a count row that exists takes the +5 (a hot one appears with its first like).
                    let done = sqlx::raw_sql(&statement).execute(store.pool()).await;
                    if done.is_ok_and(|done| done.rows_affected() == 1) {
                        injected.fetch_add(1, Ordering::Relaxed);
                    }
                    round += 1;
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            })
        };
        let (mut removed, mut retries, mut rounds) = (0i64, 0u64, 0u64);
        // The excess a run removed; panics on drift that is not injected.
        let check = |report: &ReconcileReport, dry_run: bool, what: &str| -> i64 {
            let mut removed = 0;
            assert_eq!(
                report.drift_total,
                report.drift.len() as u64,
                "{server}: all listed"
            );
            for drift in &report.drift {
                if drift.content_id == c(20) && drift.stored.is_none() {
                    assert_eq!(drift.actual, 10, "{server}: {what}");
                    continue;
                }
                let excess = drift.stored.unwrap_or(0) - drift.actual;
                assert!(
                    excess > 0 && excess % 5 == 0,
                    "{server}: {what}: {drift:?} is not injected drift: a window was undone"
                );
                if !dry_run {
                    removed += excess;
                }
            }
            removed
        };
        while !writers.iter().all(|w| w.is_finished()) {
            assert!(rounds < 100_000, "{server}: the writers never finish");
            let (scope, batch) = scope_of_round(rounds);
            let dry_run = rounds % 4 == 3;
            let report = store
                .reconcile(options(scope.clone(), batch, dry_run))
                .await
                .unwrap_or_else(|e| panic!("{server}: {e}"));
            let what = format!("round {rounds} {scope:?} dry_run={dry_run}");
            removed += check(&report, dry_run, &what);
            retries += report.retries;
            rounds += 1;
        }
        stop.store(true, Ordering::Relaxed);
        injector.await.expect("injector");
        for writer in writers {
            writer.await.expect("writer");
        }
        let last = store
            .reconcile(options(ReconcileScope::All, 3, false))
            .await
            .expect("final run");
        let removed_after = check(&last, false, "final run");
        let injected = injected.load(Ordering::Relaxed) as i64;
        eprintln!(
            "{server}: {rounds} runs ({retries} retries), {injected} injections, \
             {removed} removed during the traffic and {removed_after} after it"
        );
        assert!(rounds >= 10, "{server}: too little overlap ({rounds} runs)");
        assert!(
            removed >= 5 * injected / 2,
            "{server}: most repairs must happen while windows commit"
        );
        assert_eq!(
            removed + removed_after,
            5 * injected,
            "{server}: each injection repaired once"
        );
        exact.extend(seeded);
        exact.insert(41, 0);
        assert_exact(&store, &exact, server).await;
    }
}
