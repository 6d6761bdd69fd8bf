//! Two ingest instances (two caches, two connections) on one Redis, racing on one entry.

use super::{cache_with, fresh_ids};
use likes_ingest::redis_cache::RedisCacheConfig;
use likes_shared::cache::StateCache;
use likes_shared::store::StoredCount;
use likes_shared::Action;
use std::sync::Arc;

#[tokio::test]
async fn racing_likes_and_unlikes_from_two_instances_leave_one_transition_each() {
    // Two instances of one deployment: one namespace.
    let config = RedisCacheConfig {
        namespace: format!("race-test-{}", rand::random::<u64>()),
        ..RedisCacheConfig::default()
    };
    let (a, _) = cache_with(config.clone());
    let (b, _) = cache_with(config);
    let (a, b) = (Arc::new(a), Arc::new(b));
    let (u, c) = fresh_ids();
    let t = a.fill_ticket();
    a.fill_count(c, StoredCount::untagged(0), t)
        .await
        .expect("fill");
    assert!(a.seed_user(u, &[], true, t).await.expect("seed"));
    let tasks: Vec<_> = (0..200u64)
        .map(|i| {
            let cache = if i % 2 == 0 { a.clone() } else { b.clone() };
            let action = if i % 3 == 0 {
                Action::Unlike
            } else {
                Action::Like
            };
            tokio::spawn(async move {
                let applied = cache
                    .apply(u, c, action, 1)
                    .await
                    .expect("apply")
                    .expect("warm");
                if applied.changed {
                    cache.confirm(u, c, &applied, 1).await.expect("confirm");
                }
                applied
            })
        })
        .collect();
    let mut changes = Vec::new();
    for task in tasks {
        let applied = task.await.expect("task");
        if applied.changed {
            changes.push(applied);
        }
    }
    // Every change has its own version; sorted by it they alternate like, unlike, like...
    changes.sort_by_key(|a| a.version);
    let versions: Vec<u64> = changes.iter().map(|a| a.version).collect();
    let mut distinct = versions.clone();
    distinct.dedup();
    assert_eq!(versions, distinct, "two changes share a version");
    for pair in changes.windows(2) {
        assert_ne!(
            pair[0].liked, pair[1].liked,
            "two transitions to one state: {pair:?}"
        );
    }
    let last = changes.last().expect("some change");
    let state = a.states(u, &[c]).await.expect("states")[0].expect("cached");
    assert_eq!((state.liked, state.version), (last.liked, last.version));
    assert_eq!(
        a.counts(&[c]).await.expect("counts"),
        vec![Some(i64::from(last.liked))],
        "the count follows the transitions"
    );
}
