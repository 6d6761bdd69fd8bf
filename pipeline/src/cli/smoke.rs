//! `likes-pipeline smoke`: the real worker loop over the embedded log into an in-memory SQLite
//! store, checked for exact counts (I1). A self-contained check that needs no services.

use anyhow::bail;
use likes_pipeline::{Worker, WorkerConfig};
use likes_shared::log::LogConfig;
use likes_shared::store::LikeStore;
use likes_shared::trending::MemoryTrendingBoard;
use likes_shared::{Action, ContentId, LikeEvent, UserId};
use likes_sink::dead_letter::FileDeadLetters;
use likes_sink::SqliteConfig;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub(crate) async fn run(events: u64) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let (publisher, source) = likes_shared::log::open(&LogConfig {
        dir: dir.path().join("log"),
        ..LogConfig::default()
    })?;
    let store = SqliteConfig {
        path: ":memory:".into(),
        ..SqliteConfig::default()
    }
    .build()
    .await?;
    // 1 000 users over 100 contents, likes and unlikes interleaved.
    let mut expected = std::collections::HashMap::new();
    let started = Instant::now();
    let mut pending = Vec::new();
    for i in 0..events {
        let (user, content) = (1 + i % 1_000, 1 + (i * 7) % 100);
        let liked = i % 3 != 2;
        expected.insert((user, content), liked);
        let event = LikeEvent {
            event_id: u128::from(i),
            user_id: UserId::new(user)?,
            content_id: ContentId::new(content)?,
            action: if liked { Action::Like } else { Action::Unlike },
            version: i + 1,
            ts_ms: i,
            source: "smoke".into(),
            fill_epoch: 0,
        };
        let publisher = publisher.clone();
        pending.push(tokio::spawn(async move {
            likes_shared::bus::EventPublisher::publish(&publisher, &event).await
        }));
        if pending.len() >= 4_096 {
            for p in pending.drain(..) {
                p.await??;
            }
        }
    }
    for p in pending.drain(..) {
        p.await??;
    }
    let published = started.elapsed();
    let (trigger, shutdown) = likes_shared::shutdown::channel();
    let worker = Worker::new(
        source,
        Arc::new(store.clone()),
        Arc::new(MemoryTrendingBoard::default()),
        Arc::new(FileDeadLetters::new(dir.path().join("dead-letters.jsonl"))),
        WorkerConfig::default(),
    );
    let stats = worker.stats();
    let applied_from = Instant::now();
    let running = tokio::spawn(worker.run(shutdown));
    while publisher.acked_offset() < events {
        if running.is_finished() {
            bail!("worker stopped early");
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let applied = applied_from.elapsed();
    trigger.trigger();
    running.await??;
    let mismatches = store.count_mismatches().await?;
    let mut want = vec![0i64; 101];
    for ((_, content), liked) in &expected {
        want[*content as usize] += i64::from(*liked);
    }
    let ids: Vec<ContentId> = (1..=100).map(ContentId::new).collect::<Result<_, _>>()?;
    let got = store.counts(&ids).await?;
    println!(
        "smoke: {events} events published (fsynced) in {published:?}, applied in {applied:?} ({} windows, {} rows)",
        stats.windows.load(std::sync::atomic::Ordering::Relaxed),
        stats.rows_written.load(std::sync::atomic::Ordering::Relaxed),
    );
    if !mismatches.is_empty() || got != want[1..] {
        bail!("counts are wrong: mismatches {mismatches:?}");
    }
    println!("smoke: counts exact for 100 contents (I1 holds)");
    Ok(())
}
