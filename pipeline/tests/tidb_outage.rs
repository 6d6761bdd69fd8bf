//! DESIGN section 8, "TiDB down": the worker pauses and retries with backoff, and an outage
//! never becomes a dead letter. A TiDB of this test's own is stopped for 20 s while events keep
//! arriving; afterwards every event has landed exactly once, no letter was written, and I1 holds.

use likes_pipeline::operators::WindowConfig;
use likes_pipeline::{Worker, WorkerConfig};
use likes_shared::bus::EventPublisher;
use likes_shared::log::LogConfig;
use likes_shared::retry::Backoff;
use likes_shared::store::LikeStore;
use likes_shared::trending::MemoryTrendingBoard;
use likes_shared::{Action, ContentId, LikeEvent, UserId};
use likes_sink::dead_letter::FileDeadLetters;
use likes_sink::MySqlConfig;
use likes_smoke::{fresh_database, PrivateTidb};
use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

const CONTENTS: u64 = 20;

fn event(i: u64) -> LikeEvent {
    LikeEvent {
        event_id: u128::from(i),
        user_id: UserId::new(1 + i % 997).expect("non-zero"),
        content_id: ContentId::new(1 + i % CONTENTS).expect("non-zero"),
        action: if i % 5 == 4 {
            Action::Unlike
        } else {
            Action::Like
        },
        version: 1 + i,
        ts_ms: 1_795_581_680_000 + i,
        source: "outage-test".into(),
        fill_epoch: 0,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tidb_stopped_for_20_s_mid_stream_loses_nothing_and_dead_letters_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut tidb = PrivateTidb::start(&dir.path().join("tidb")).await;
    let url = fresh_database(&tidb.server_url()).await;
    let store = Arc::new(
        MySqlConfig {
            url,
            acquire_timeout_ms: 1_000,
            ..MySqlConfig::default()
        }
        .build()
        .await
        .expect("store"),
    );
    let (publisher, source) = likes_shared::log::open(&LogConfig {
        dir: dir.path().join("log"),
        ..LogConfig::default()
    })
    .expect("log");
    let letters = dir.path().join("dead-letters.jsonl");
    let worker = Worker::new(
        source,
        store.clone(),
        Arc::new(MemoryTrendingBoard::default()),
        Arc::new(FileDeadLetters::new(letters.clone())),
        WorkerConfig {
            window: WindowConfig {
                max_events: 500,
                max_age: Duration::from_millis(50),
            },
            backoff: Backoff {
                initial_ms: 50,
                max_ms: 1_000,
            },
            ..WorkerConfig::default()
        },
    );
    let stats = worker.stats();
    let (trigger, shutdown) = likes_shared::shutdown::channel();
    let running = tokio::spawn(worker.run(shutdown));

    // 200 events every 100 ms for 30 s: the outage runs from second 5 to second 25.
    let total = 60_000u64;
    let producer = {
        let publisher = publisher.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(100));
            for batch in 0..total / 200 {
                tick.tick().await;
                for i in batch * 200..(batch + 1) * 200 {
                    publisher.publish(&event(i)).await.expect("publish");
                }
            }
        })
    };
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert!(
        publisher.acked_offset() > 0,
        "windows commit before the outage"
    );
    tidb.stop();
    let acked_at_stop = publisher.acked_offset();
    tokio::time::sleep(Duration::from_secs(20)).await;
    let acked_during = publisher.acked_offset() - acked_at_stop;
    tidb.restart().await;
    producer.await.expect("producer");

    let deadline = Instant::now() + Duration::from_secs(120);
    while publisher.acked_offset() < total {
        assert!(
            !running.is_finished(),
            "the worker stopped: {:?}",
            running.await
        );
        assert!(
            Instant::now() < deadline,
            "not drained: {} of {total} acked",
            publisher.acked_offset()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    trigger.trigger();
    running.await.expect("join").expect("worker");

    assert!(
        acked_during <= 500,
        "nothing is acked while TiDB is down ({acked_during} were)"
    );
    assert!(
        stats.retries.load(Ordering::Relaxed) > 0,
        "the outage was retried"
    );
    assert_eq!(
        stats.dead_letters.load(Ordering::Relaxed),
        0,
        "no dead letters for an outage"
    );
    assert!(!letters.exists(), "no dead-letter file");

    let mut last: BTreeMap<(u64, u64), bool> = BTreeMap::new();
    for i in 0..total {
        let e = event(i);
        last.insert(
            (e.content_id.get(), e.user_id.get()),
            e.action == Action::Like,
        );
    }
    let contents: Vec<ContentId> = (1..=CONTENTS)
        .map(|c| ContentId::new(c).expect("non-zero"))
        .collect();
    let want: Vec<i64> = (1..=CONTENTS)
        .map(|c| {
            last.iter()
                .filter(|((content, _), liked)| *content == c && **liked)
                .count() as i64
        })
        .collect();
    assert_eq!(store.counts(&contents).await.expect("counts"), want);
    assert_eq!(store.count_mismatches().await.expect("I1"), vec![]);
    eprintln!(
        "outage: {} retries, {} windows, {acked_during} events acked while down",
        stats.retries.load(Ordering::Relaxed),
        stats.windows.load(Ordering::Relaxed)
    );
}
