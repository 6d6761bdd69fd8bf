//! Learning an event the cache missed (`StateCache::learn`: published by an instance that could
//! not reach Redis). Where the cache knows the user's state, the count follows the learned one as
//! for a confirm. Where it does not (the user's hash expired, or Redis came back empty), the
//! count cannot follow: the state the event replaced is unknown. A count cached then may have
//! been filled from a store that lacked the event (another instance, back first, filled it while
//! this one still published around the cache), so it must not be served on, and no fill read
//! before the learn may take its place: it is filled again from a store read after that.

use super::{cache_with, fresh_ids};
use likes_ingest::redis_cache::RedisCacheConfig;
use likes_shared::cache::StateCache;
use likes_shared::hlc::now_ms;
use likes_shared::store::StoredCount;
use likes_shared::{ContentId, UserId};
use std::sync::atomic::Ordering;

async fn a_learned_event_moves_the_count_only_where_the_user_is_known(cluster: bool) {
    let (cache, progress) = cache_with(RedisCacheConfig {
        cluster,
        ..RedisCacheConfig::default()
    });
    let (known, c) = fresh_ids();
    let unknown = UserId::new(known.get() + 2).expect("id");
    let elsewhere = ContentId::new(c.get() + 2).expect("id");
    progress.store(now_ms() - 60_000, Ordering::Release);
    let before = cache.fill_ticket();
    assert_eq!(
        cache
            .fill_count(c, StoredCount::untagged(0), before)
            .await
            .expect("fill"),
        Some(0)
    );
    assert_eq!(
        cache
            .fill_count(elsewhere, StoredCount::untagged(3), before)
            .await
            .expect("fill"),
        Some(3)
    );
    assert!(cache
        .seed_user(known, &[], true, before)
        .await
        .expect("seed"));

    let version = |ms: u64| ms << 16;
    cache
        .learn(known, c, true, version(now_ms()))
        .await
        .expect("learn");
    assert_eq!(
        cache.counts(&[c]).await.expect("counts"),
        vec![Some(1)],
        "a known user's like moves the count"
    );

    cache
        .learn(unknown, c, true, version(now_ms()))
        .await
        .expect("learn");
    assert_eq!(
        cache.counts(&[c, elsewhere]).await.expect("counts"),
        vec![None, Some(3)],
        "the count may lack the unknown user's like: not served; other counts stay"
    );
    assert_eq!(
        cache
            .fill_count(c, StoredCount::untagged(1), before)
            .await
            .expect("fill"),
        None,
        "a store read from before the learn may lack the like"
    );
    progress.store(now_ms() + 1, Ordering::Release);
    assert_eq!(
        cache
            .fill_count(c, StoredCount::untagged(2), cache.fill_ticket())
            .await
            .expect("fill"),
        Some(2),
        "a store read after it has the like"
    );
}

#[tokio::test]
async fn on_one_redis() {
    a_learned_event_moves_the_count_only_where_the_user_is_known(false).await;
}

#[tokio::test]
async fn with_the_cluster_scripts() {
    a_learned_event_moves_the_count_only_where_the_user_is_known(true).await;
}
