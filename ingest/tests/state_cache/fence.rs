//! The fence after an outage (`StateCache::fence`): a settled state written before it may have
//! missed events published while the cache was away, so a repeat of it is published again (as a
//! pending state, the count unmoved) instead of taken for "no change". Each test fences a
//! namespace of its own: the fence covers every state under one namespace.

use super::{cache_with, fresh_ids};
use likes_ingest::redis_cache::RedisCacheConfig;
use likes_shared::cache::StateCache;
use likes_shared::hlc::now_ms;
use likes_shared::store::StoredCount;
use likes_shared::Action;

async fn a_repeat_of_a_state_older_than_the_fence_is_published_again(cluster: bool) {
    let config = RedisCacheConfig {
        namespace: format!("fence-test-{}", rand::random::<u64>()),
        cluster,
        fence_margin_ms: 0,
        ..RedisCacheConfig::default()
    };
    let (cache, _) = cache_with(config);
    let (u, c) = fresh_ids();
    let t = cache.fill_ticket();
    cache
        .fill_count(c, StoredCount::untagged(0), t)
        .await
        .expect("fill count");
    assert!(cache.seed_user(u, &[], true, t).await.expect("seed"));
    let hlc = |ms: u64| ms << 16;
    let before = now_ms();
    let like = super::apply(&cache, u, c, Action::Like, hlc(before)).await;
    cache.confirm(u, c, &like, 1).await.expect("confirm");
    let repeat = super::apply(&cache, u, c, Action::Like, hlc(before)).await;
    assert!(
        !repeat.changed && !repeat.pending,
        "no fence yet: {repeat:?}"
    );

    cache.fence(before + 1).await.expect("fence");
    let fenced = super::apply(&cache, u, c, Action::Like, hlc(before + 2)).await;
    assert!(!fenced.changed, "{fenced:?}");
    assert!(fenced.pending, "published again: {fenced:?}");
    assert!(fenced.version > like.version, "{fenced:?}");
    if let Some(count) = fenced.count {
        assert_eq!(count, 1, "the count does not move");
    }
    cache.confirm(u, c, &fenced, 2).await.expect("confirm");
    let after = super::apply(&cache, u, c, Action::Like, hlc(before + 3)).await;
    assert!(
        !after.changed && !after.pending,
        "written after the fence: {after:?}"
    );
    assert_eq!(cache.counts(&[c]).await.expect("counts"), vec![Some(1)]);
}

#[tokio::test]
async fn on_one_redis() {
    a_repeat_of_a_state_older_than_the_fence_is_published_again(false).await;
}

#[tokio::test]
async fn with_the_cluster_scripts() {
    a_repeat_of_a_state_older_than_the_fence_is_published_again(true).await;
}
