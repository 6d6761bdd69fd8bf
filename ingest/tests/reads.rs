//! Reads through `LikeService` on the real Redis: what the service answers must be what the store
//! or a durable event says, also when the cache cannot keep everything it was given.

mod support;

use likes_ingest::redis_cache::{RedisCacheConfig, RedisStateCache};
use likes_shared::hlc::now_ms;
use likes_shared::{Action, ContentId, LikeEvent, UserId};
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use support::Harness;

/// A user with more stored likes than the cache keeps per user asks for all of them at once:
/// filling the later ones forgets the earlier ones of the same page (settled, old: the store has
/// them), and every one must still read as liked.
#[tokio::test]
async fn a_page_of_likes_past_the_users_bound_reads_as_the_store_says() {
    const LIKED: u64 = 8;
    let url = likes_smoke::ServicesEnv::load().get("LIKES_REDIS_URL");
    let config = RedisCacheConfig {
        max_states_per_user: 4,
        ..RedisCacheConfig::default()
    };
    // Everything stored is old enough to be forgotten.
    let committed = Arc::new(AtomicU64::new(now_ms()));
    let cache = RedisStateCache::new(&url, config, committed).expect("cache");
    let h = Harness::on(Arc::new(cache), None, Vec::new());
    let base = rand::random::<u64>() >> 16 | 1;
    let user = UserId::new(base).expect("non-zero");
    let contents: Vec<ContentId> = (0..LIKED)
        .map(|i| ContentId::new(base + i).expect("non-zero"))
        .collect();
    let likes: Vec<LikeEvent> = contents
        .iter()
        .map(|c| LikeEvent {
            event_id: 1,
            user_id: user,
            content_id: *c,
            action: Action::Like,
            version: 5,
            ts_ms: 1,
            source: "seed".into(),
        })
        .collect();
    h.apply_to_store(&likes).await;
    let liked = h.service.liked(user, &contents).await.expect("liked");
    assert_eq!(
        liked,
        vec![true; LIKED as usize],
        "the store has every one liked"
    );
}
