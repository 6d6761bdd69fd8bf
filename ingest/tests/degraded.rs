//! `LikeService` without its state cache (DESIGN section 8, "Redis down"), and with the local
//! hot-key cache in front of it, on the model store and the scripted publisher: no services.
//! The cache here is a `RedisStateCache` on a port nothing listens on, so every call is
//! refused at once, as a killed Redis is.

mod support;

use likes_ingest::hot_counts::{HotCounts, HotCountsConfig, HotCountsMetrics};
use likes_ingest::memory_cache::MemoryStateCache;
use likes_ingest::redis_cache::{RedisCacheConfig, RedisStateCache};
use likes_shared::hlc::HybridClock;
use likes_shared::{Action, ContentId, LikeEvent, UserId};
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use support::{Harness, PublishStep};

fn user(n: u64) -> UserId {
    UserId::new(n).expect("non-zero")
}

fn content(n: u64) -> ContentId {
    ContentId::new(n).expect("non-zero")
}

fn down(steps: Vec<PublishStep>) -> Harness {
    // Port 1 on loopback: connection refused.
    let cache = RedisStateCache::new(
        "redis://127.0.0.1:1/",
        RedisCacheConfig::default(),
        Arc::new(AtomicU64::new(0)),
    )
    .expect("a valid URL");
    Harness::on(Arc::new(cache), None, steps)
}

fn event(u: u64, c: u64, liked: bool, version: u64) -> LikeEvent {
    LikeEvent {
        event_id: 1,
        user_id: user(u),
        content_id: content(c),
        action: if liked { Action::Like } else { Action::Unlike },
        version,
        ts_ms: 1,
        source: "seed".into(),
        fill_epoch: 0,
    }
}

#[tokio::test]
async fn without_the_cache_a_like_answers_stale_only_after_its_event_is_durable() {
    let refused = PublishStep {
        delay_ms: 0,
        ok: false,
    };
    let h = down(vec![refused]);
    let error = h
        .service
        .act(user(1), content(5), Action::Like)
        .await
        .expect_err("the publish was refused");
    assert_eq!(error.status().as_u16(), 503);
    assert!(h.durable().is_empty());
    let outcome = h
        .service
        .act(user(1), content(5), Action::Like)
        .await
        .expect("published");
    assert!(
        outcome.stale && outcome.liked && outcome.changed,
        "{outcome:?}"
    );
    assert_eq!(outcome.count, 1);
    // No dedup: the same like again is published again (the sink ignores it, I2).
    let again = h
        .service
        .act(user(1), content(5), Action::Like)
        .await
        .expect("published");
    assert!(again.stale);
    let durable = h.durable();
    assert_eq!(durable.len(), 2);
    assert!(durable.iter().all(|e| e.action == Action::Like));
    assert!(durable[1].version > durable[0].version);
}

#[tokio::test]
async fn a_degraded_action_versions_above_the_stored_row_and_counts_from_the_store() {
    let h = down(vec![]);
    // A row whose version is ahead of this instance's clock (the cache bumped it, I4).
    let ahead = HybridClock::new().now() + (1 << 40);
    h.apply_to_store(&[event(1, 7, true, ahead), event(2, 7, true, 1)])
        .await;
    let outcome = h
        .service
        .act(user(1), content(7), Action::Unlike)
        .await
        .expect("published");
    assert!(outcome.stale && !outcome.liked && outcome.changed);
    assert_eq!(outcome.count, 1, "two stored likes, one taken back");
    let durable = h.durable();
    assert!(
        durable[0].version > ahead,
        "{} <= {ahead}",
        durable[0].version
    );
    // Applied by the sink, the unlike wins.
    h.apply_durable_to_store().await;
    assert_eq!(h.stored_count(content(7)).await, 1);
}

#[tokio::test]
async fn without_the_cache_reads_come_from_the_store_marked_stale() {
    let h = down(vec![]);
    h.apply_to_store(&[
        event(1, 8, true, 1),
        event(2, 8, true, 1),
        event(1, 9, false, 1),
    ])
    .await;
    let counts = h
        .service
        .read_counts(&[content(8), content(9), content(8)])
        .await
        .expect("from the store");
    assert!(counts.stale);
    assert_eq!(counts.value, vec![2, 0, 2]);
    let liked = h
        .service
        .read_liked(user(1), &[content(8), content(9), content(10)])
        .await
        .expect("from the store");
    assert!(liked.stale);
    assert_eq!(liked.value, vec![true, false, false]);
}

#[tokio::test]
async fn with_a_working_cache_nothing_is_stale() {
    let h = Harness::new(vec![]);
    let outcome = h
        .service
        .act(user(1), content(3), Action::Like)
        .await
        .expect("liked");
    assert!(!outcome.stale);
    let counts = h.service.read_counts(&[content(3)]).await.expect("counts");
    assert_eq!((counts.value, counts.stale), (vec![1], false));
    let liked = h
        .service
        .read_liked(user(1), &[content(3)])
        .await
        .expect("states");
    assert_eq!((liked.value, liked.stale), (vec![true], false));
}

#[tokio::test]
async fn a_hot_content_is_served_locally_and_an_action_shows_at_once() {
    let metrics = HotCountsMetrics::new().expect("metrics");
    let config = HotCountsConfig {
        ttl_ms: 60_000,
        top_k: 8,
        min_reads: 4,
        ..HotCountsConfig::default()
    };
    let hot = Arc::new(HotCounts::new(config, metrics.clone()));
    let cache = MemoryStateCache::new(1_000, Arc::new(AtomicU64::new(0)));
    let h = Harness::on(Arc::new(cache), Some(hot.clone()), vec![]);
    let viral = content(11);
    for _ in 0..20 {
        assert_eq!(h.service.counts(&[viral]).await.expect("counts"), vec![0]);
    }
    assert!(hot.is_hot(viral));
    assert!(metrics.hits.get() >= 15, "hits {}", metrics.hits.get());
    let hits = metrics.hits.get();
    let outcome = h
        .service
        .act(user(1), viral, Action::Like)
        .await
        .expect("liked");
    assert_eq!(outcome.count, 1);
    // The action dropped the local count: the next read goes through and shows the like, and
    // the one after is served locally again.
    assert_eq!(h.service.counts(&[viral]).await.expect("counts"), vec![1]);
    assert_eq!(metrics.hits.get(), hits, "read through after the action");
    assert_eq!(h.service.counts(&[viral]).await.expect("counts"), vec![1]);
    assert_eq!(metrics.hits.get(), hits + 1);
    // A cold content is read through.
    let misses = metrics.misses.get();
    assert_eq!(
        h.service.counts(&[content(12)]).await.expect("counts"),
        vec![0]
    );
    assert_eq!(metrics.misses.get(), misses + 1);
    assert_eq!(hot.peek(content(12)), None);
}

/// Two likes of a hot content whose publishes finish in the other order than Redis counted
/// them: the local cache must not end on the older count.
#[tokio::test]
async fn actions_finishing_out_of_order_leave_no_older_count_in_the_hot_cache() {
    let config = HotCountsConfig {
        ttl_ms: 60_000,
        top_k: 8,
        min_reads: 4,
        ..HotCountsConfig::default()
    };
    let hot = Arc::new(HotCounts::new(
        config,
        HotCountsMetrics::new().expect("metrics"),
    ));
    let cache = MemoryStateCache::new(1_000, Arc::new(AtomicU64::new(0)));
    // The first like's publish is slow, the second's quick.
    let slow = PublishStep {
        delay_ms: 200,
        ok: true,
    };
    let h = Harness::on(Arc::new(cache), Some(hot.clone()), vec![slow]);
    let viral = content(21);
    for _ in 0..20 {
        h.service.counts(&[viral]).await.expect("counts");
    }
    assert!(hot.is_hot(viral));
    let service = &h.service;
    let (first, second) = tokio::join!(service.act(user(1), viral, Action::Like), async {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        service.act(user(2), viral, Action::Like).await
    });
    assert_eq!(
        (first.expect("like").count, second.expect("like").count),
        (1, 2)
    );
    assert_eq!(
        h.service.counts(&[viral]).await.expect("counts"),
        vec![2],
        "the slower, older answer replaced the newer count"
    );
}
