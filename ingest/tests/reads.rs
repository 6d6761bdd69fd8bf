//! Reads through `LikeService` on the real Redis: what the service answers must be what the store
//! or a durable event says, also when the cache cannot keep everything it was given.

mod support;

use likes_ingest::redis_cache::{RedisCacheConfig, RedisStateCache};
use likes_shared::hlc::now_ms;
use likes_shared::{Action, ContentId, LikeEvent, UserId};
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use support::Harness;

/// An old like of `user`, to put in the store as if committed long ago.
fn stored_like(user: UserId, content: ContentId) -> LikeEvent {
    LikeEvent {
        event_id: 1,
        user_id: user,
        content_id: content,
        action: Action::Like,
        version: 5,
        ts_ms: 1,
        source: "seed".into(),
        fill_epoch: 0,
    }
}

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
    let likes: Vec<LikeEvent> = contents.iter().map(|c| stored_like(user, *c)).collect();
    h.apply_to_store(&likes).await;
    let liked = h.service.liked(user, &contents).await.expect("liked");
    assert_eq!(
        liked,
        vec![true; LIKED as usize],
        "the store has every one liked"
    );
}

/// Calls of `command` Redis has served since its stats were reset.
async fn calls(conn: &mut redis::aio::MultiplexedConnection, command: &str) -> u64 {
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(conn)
        .await
        .expect("info");
    let prefix = format!("cmdstat_{command}:calls=");
    info.lines()
        .find_map(|l| l.strip_prefix(prefix.as_str()))
        .map_or(0, |rest| {
            rest.split(',')
                .next()
                .and_then(|n| n.parse().ok())
                .expect("calls=<n>")
        })
}

/// A like on a hot content is two round trips: the count read before an action is skipped when
/// this instance moved that count moments ago, and the apply script moves the count itself; the
/// answers stay exact. On a Redis of the test's own, so nobody else's commands are counted.
#[tokio::test]
async fn a_like_on_a_count_moved_moments_ago_is_two_scripts_and_no_count_read() {
    let redis = likes_smoke::PrivateRedis::start();
    let committed = Arc::new(AtomicU64::new(0));
    let cache =
        RedisStateCache::new(&redis.url(), RedisCacheConfig::default(), committed).expect("cache");
    let h = Harness::on(Arc::new(cache), None, Vec::new());
    let mut conn = redis::Client::open(redis.url())
        .expect("url")
        .get_multiplexed_async_connection()
        .await
        .expect("connect");
    let content = ContentId::new(42).expect("non-zero");
    let user = |n: u64| UserId::new(n).expect("non-zero");
    let first = h
        .service
        .act(user(1), content, Action::Like)
        .await
        .expect("like");
    assert_eq!(first.count, 1);
    assert!(
        calls(&mut conn, "mget").await >= 1,
        "a cold count is read first"
    );
    let () = redis::cmd("CONFIG")
        .arg("RESETSTAT")
        .query_async(&mut conn)
        .await
        .expect("resetstat");
    let second = h
        .service
        .act(user(2), content, Action::Like)
        .await
        .expect("like");
    let third = h
        .service
        .act(user(3), content, Action::Like)
        .await
        .expect("like");
    assert_eq!((second.count, third.count), (2, 3), "exact counts");
    assert_eq!(
        calls(&mut conn, "mget").await,
        0,
        "no count read before the moves"
    );
    let undo = h
        .service
        .act(user(2), content, Action::Unlike)
        .await
        .expect("unlike");
    assert_eq!(undo.count, 2);
}

/// An action on a content whose count the cache does not hold and may not fill yet (it changed
/// within the age bound, so the store may lack that change: here another user's like, still on
/// its way) answers with the store's count moved by the caller's own change: the caller sees
/// their like at once (DESIGN section 1), though the store does not have it yet.
#[tokio::test]
async fn an_action_on_a_count_the_cache_may_not_fill_counts_the_callers_own_change() {
    let url = likes_smoke::ServicesEnv::load().get("LIKES_REDIS_URL");
    let namespace = format!("reads-test-{}", rand::random::<u64>());
    // Two instances on one Redis; only what changed more than a minute ago is committed.
    let instance = || {
        let config = RedisCacheConfig {
            namespace: namespace.clone(),
            ..RedisCacheConfig::default()
        };
        let committed = Arc::new(AtomicU64::new(now_ms() - 60_000));
        RedisStateCache::new(&url, config, committed).expect("cache")
    };
    let (a, b) = (instance(), instance());
    let mut conn = a.connection();
    let (a, b) = (
        Harness::on(Arc::new(a), None, Vec::new()),
        Harness::on(Arc::new(b), None, Vec::new()),
    );
    let base = rand::random::<u64>() >> 16 | 1;
    let user = |i| UserId::new(base + i).expect("non-zero");
    let content = ContentId::new(base).expect("non-zero");
    for h in [&a, &b] {
        h.apply_to_store(&[stored_like(user(0), content)]).await;
    }

    let first = a.service.act(user(1), content, Action::Like).await;
    assert_eq!(
        first.expect("like").count,
        2,
        "filled from the store, moved"
    );
    // The count goes (as after a learn it could not follow); user 1's like is not in the store.
    let keys = likes_sink::redis_counts::Keys::new(&namespace);
    let _: () = redis::cmd("DEL")
        .arg(keys.count(content))
        .query_async(&mut conn)
        .await
        .expect("del");

    let second = b
        .service
        .act(user(2), content, Action::Like)
        .await
        .expect("like");
    assert!(second.changed, "{second:?}");
    assert_eq!(
        second.count, 2,
        "the store's 1 and the caller's own like: {second:?}"
    );
}

/// A count lost while its content keeps changing comes back exact without a quiet moment: the
/// refused fill starts an epoch, the changes after it carry it to the store, and once the store
/// holds everything from before the start the count is the store's, less how far the epoch's
/// landed changes moved it, plus the epoch's own moves: whatever part of them the store holds.
#[tokio::test]
async fn a_lost_count_of_a_content_that_keeps_changing_comes_back_exact() {
    const MARGIN_MS: u64 = 100;
    let url = likes_smoke::ServicesEnv::load().get("LIKES_REDIS_URL");
    let namespace = format!("reads-test-{}", rand::random::<u64>());
    let config = RedisCacheConfig {
        namespace: namespace.clone(),
        fence_margin_ms: MARGIN_MS,
        fill_epochs: true,
        ..RedisCacheConfig::default()
    };
    let committed = Arc::new(AtomicU64::new(now_ms() - 60_000));
    let cache = RedisStateCache::new(&url, config, committed.clone()).expect("cache");
    let mut conn = cache.connection();
    let h = Harness::on(Arc::new(cache), None, Vec::new());
    let keys = likes_sink::redis_counts::Keys::new(&namespace);
    let base = rand::random::<u64>() >> 16 | 1;
    let user = |i| UserId::new(base + i).expect("non-zero");
    let content = ContentId::new(base).expect("non-zero");
    h.apply_to_store(&[stored_like(user(0), content)]).await;
    for i in 1..=5 {
        h.service
            .act(user(i), content, Action::Like)
            .await
            .expect("like");
    }
    h.apply_durable_to_store().await;
    // The count goes; the content goes on changing, and the sink lags three events behind.
    let _: () = redis::cmd("DEL")
        .arg(keys.count(content))
        .query_async(&mut conn)
        .await
        .expect("del");
    let lagging = |h: &Harness| {
        let durable = h.durable();
        durable[..durable.len() - 3].to_vec()
    };
    for i in 6..=15 {
        h.service
            .act(user(i), content, Action::Like)
            .await
            .expect("like");
        if i == 10 {
            for u in [2, 7] {
                h.service
                    .act(user(u), content, Action::Unlike)
                    .await
                    .expect("unlike");
            }
        }
        h.apply_to_store(&lagging(&h)).await;
    }
    let epoch: u64 = redis::cmd("GET")
        .arg(keys.epoch(content))
        .query_async(&mut conn)
        .await
        .expect("an epoch is under way");
    let tagged = h.durable().iter().filter(|e| e.fill_epoch == epoch).count();
    assert!(
        tagged >= 10,
        "the changes after the start carry the epoch: {tagged}"
    );
    // The content still changes past the start plus the margin; by then the store holds
    // everything from before that (the sink still lags three events behind).
    tokio::time::sleep(std::time::Duration::from_millis(MARGIN_MS + 50)).await;
    for i in 16..=18 {
        h.service
            .act(user(i), content, Action::Like)
            .await
            .expect("like");
    }
    h.apply_to_store(&lagging(&h)).await;
    committed.store(epoch + MARGIN_MS, std::sync::atomic::Ordering::Release);
    // 1 stored + 18 likes - 2 unlikes; the store holds all but the last three.
    let truth = 17;
    assert_eq!(h.stored_count(content).await, truth - 3, "the store lags");
    assert_eq!(
        h.service.counts(&[content]).await.expect("counts"),
        vec![truth]
    );
    let cached: Option<i64> = redis::cmd("GET")
        .arg(keys.count(content))
        .query_async(&mut conn)
        .await
        .expect("get");
    assert_eq!(cached, Some(truth), "filled, not only answered");
    h.apply_durable_to_store().await;
    assert_eq!(h.stored_count(content).await, truth);
    let next = h
        .service
        .act(user(19), content, Action::Like)
        .await
        .expect("like");
    assert_eq!(next.count, truth + 1);
}
