//! One poison record among good ones, on the real TiDB: the good events land, only the poison
//! is dead-lettered; once the cause is fixed `likes-dlq replay` re-drives it and it lands once;
//! replaying the same letter again changes nothing (I2).
//!
//! The poison is a row the schema refuses: a check constraint an operator added (user 666 may
//! not like anything). The worker runs over the embedded log with the embedded dead-letter
//! file; the dead-letter topic's replay is tested in the sink's Pulsar tests.

use likes_pipeline::operators::WindowConfig;
use likes_pipeline::{Worker, WorkerConfig};
use likes_shared::bus::EventPublisher;
use likes_shared::log::{LogConfig, LogPublisher};
use likes_shared::retry::Backoff;
use likes_shared::store::LikeStore;
use likes_shared::trending::MemoryTrendingBoard;
use likes_shared::{Action, ContentId, LikeEvent, UserId};
use likes_sink::dead_letter::FileDeadLetters;
use likes_sink::dlq::{self, DlqConfig};
use likes_sink::{MySqlConfig, MySqlStore};
use likes_smoke::{fresh_database, ServicesEnv};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

const POISON_USER: u64 = 666;

fn like(i: u64, user: u64) -> LikeEvent {
    LikeEvent {
        event_id: u128::from(i),
        user_id: UserId::new(user).expect("non-zero"),
        content_id: ContentId::new(1 + i % 4).expect("non-zero"),
        action: Action::Like,
        version: 1_000 + i,
        ts_ms: 1_795_581_680_000 + i,
        source: "poison-test".into(),
        fill_epoch: 0,
    }
}

/// Runs a worker over the log in `data_dir` until everything in it is applied, then stops it.
async fn drain(data_dir: &Path, store: &Arc<MySqlStore>, publish: &[LikeEvent]) {
    let (publisher, source): (LogPublisher, _) = likes_shared::log::open(&LogConfig {
        dir: data_dir.join("log"),
        ..LogConfig::default()
    })
    .expect("log");
    for event in publish {
        publisher.publish(event).await.expect("publish");
    }
    let worker = Worker::new(
        source,
        store.clone(),
        Arc::new(MemoryTrendingBoard::default()),
        Arc::new(FileDeadLetters::new(data_dir.join("dead-letters.jsonl"))),
        WorkerConfig {
            window: WindowConfig {
                max_events: 1_000,
                max_age: Duration::from_millis(20),
            },
            backoff: Backoff {
                initial_ms: 10,
                max_ms: 100,
            },
            ..WorkerConfig::default()
        },
    );
    let (trigger, shutdown) = likes_shared::shutdown::channel();
    let running = tokio::spawn(worker.run(shutdown));
    let deadline = Instant::now() + Duration::from_secs(60);
    while publisher.acked_offset() < publisher.durable_offset() {
        assert!(
            Instant::now() < deadline,
            "the worker did not drain the log"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    trigger.trigger();
    running.await.expect("join").expect("worker");
}

async fn counts(store: &MySqlStore) -> Vec<i64> {
    let ids: Vec<ContentId> = (1..=4)
        .map(|c| ContentId::new(c).expect("non-zero"))
        .collect();
    store.counts(&ids).await.expect("counts")
}

#[tokio::test]
async fn a_poison_record_is_dead_lettered_alone_and_replays_once_after_the_fix() {
    let url = fresh_database(&ServicesEnv::load().get("LIKES_DATABASE_URL")).await;
    let store = Arc::new(
        MySqlConfig {
            url,
            ..MySqlConfig::default()
        }
        .build()
        .await
        .expect("store"),
    );
    for sql in [
        "SET GLOBAL tidb_enable_check_constraint = ON",
        "ALTER TABLE likes ADD CONSTRAINT no_user_666 CHECK (user_id <> 666)",
    ] {
        sqlx::query(sql).execute(store.pool()).await.expect(sql);
    }
    // 400 likes over 4 contents by 100 users, and two by the poison user in the same window.
    let mut events: Vec<LikeEvent> = (0..400).map(|i| like(i, 1 + i / 4)).collect();
    events.insert(123, like(400, POISON_USER));
    events.insert(321, like(401, POISON_USER));
    let data = tempfile::tempdir().expect("tempdir");
    drain(data.path(), &store, &events).await;

    assert_eq!(
        counts(&store).await,
        vec![100, 100, 100, 100],
        "the good events landed"
    );
    let config = DlqConfig {
        data_dir: data.path().to_path_buf(),
        ..DlqConfig::default()
    };
    let letters = config.letters().read_all().expect("letters");
    assert_eq!(letters.len(), 1, "{letters:?}");
    let mut parked: Vec<u64> = letters[0].events.iter().map(|e| e.version).collect();
    parked.sort_unstable();
    assert_eq!(
        parked,
        vec![1_400, 1_401],
        "only the poison events are dead-lettered"
    );
    assert!(
        letters[0].error.contains("no_user_666"),
        "{}",
        letters[0].error
    );

    // The operator fixes the cause, then replays; a copy of the letters file replays again.
    sqlx::query("ALTER TABLE likes DROP CONSTRAINT no_user_666")
        .execute(store.pool())
        .await
        .expect("drop constraint");
    let file = data.path().join("dead-letters.jsonl");
    let copy = std::fs::read(&file).expect("letters file");
    let report = dlq::replay(&config, None, false).await.expect("replay");
    assert_eq!((report.letters, report.events), (1, 2));
    drain(data.path(), &store, &[]).await;
    assert_eq!(
        counts(&store).await,
        vec![101, 101, 100, 100],
        "applied once"
    );
    assert!(
        config.letters().read_all().expect("letters").is_empty(),
        "nothing dead-lettered again"
    );

    std::fs::write(&file, copy).expect("restore the letter");
    let again = dlq::replay(&config, None, false)
        .await
        .expect("replay again");
    assert_eq!(again.events, 2);
    drain(data.path(), &store, &[]).await;
    assert_eq!(
        counts(&store).await,
        vec![101, 101, 100, 100],
        "a second replay changes nothing"
    );
    assert_eq!(store.count_mismatches().await.expect("I1"), vec![]);
}
