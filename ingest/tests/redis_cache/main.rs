//! `RedisStateCache` on the real Redis of `infra/dev/services` (`LIKES_REDIS_URL`): the rules of
//! DESIGN section 7 as the embedded cache's tests state them, plus what only a shared Redis has
//! (two instances racing, scripts flushed, the per-user bound). Each test uses ids of its own.

mod races;

use likes_ingest::redis_cache::{RedisCacheConfig, RedisStateCache};
use likes_shared::cache::{CachedApply, StateCache};
use likes_shared::store::RowState;
use likes_shared::{Action, ContentId, UserId};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

pub fn redis_url() -> String {
    likes_smoke::ServicesEnv::load().get("LIKES_REDIS_URL")
}

/// A (user, content) no other test run uses.
pub fn fresh_ids() -> (UserId, ContentId) {
    let base = rand::random::<u64>() >> 8 | 1;
    (
        UserId::new(base).expect("non-zero"),
        ContentId::new(base + 1).expect("non-zero"),
    )
}

pub fn row(liked: bool, version: u64) -> RowState {
    RowState { liked, version }
}

/// A cache whose "committed" bound (wall-clock ms) the test sets by hand.
pub fn cache_with(config: RedisCacheConfig) -> (RedisStateCache, Arc<AtomicU64>) {
    let progress = Arc::new(AtomicU64::new(0));
    let cache = RedisStateCache::new(&redis_url(), config, progress.clone()).expect("cache");
    (cache, progress)
}

pub fn cache() -> (RedisStateCache, Arc<AtomicU64>) {
    cache_with(RedisCacheConfig::default())
}

pub async fn apply(
    cache: &RedisStateCache,
    u: UserId,
    c: ContentId,
    a: Action,
    v: u64,
) -> CachedApply {
    cache.apply(u, c, a, v).await.expect("apply").expect("warm")
}

#[tokio::test]
async fn cold_until_seeded_then_transitions_move_the_count() {
    let (cache, _) = cache();
    let (u, c) = fresh_ids();
    assert_eq!(
        cache.apply(u, c, Action::Like, 10).await.expect("apply"),
        None
    );
    assert!(!cache.is_filled(u).await.expect("filled"));
    let t = cache.fill_ticket();
    assert_eq!(cache.fill_count(c, 5, t).await.expect("fill"), Some(5));
    assert_eq!(
        cache.fill_count(c, 99, t).await.expect("fill is NX"),
        Some(5)
    );
    assert!(cache.seed_user(u, &[], true, t).await.expect("seed"));
    assert!(cache.is_filled(u).await.expect("filled"));
    let liked = apply(&cache, u, c, Action::Like, 10).await;
    assert!(liked.changed && liked.liked && !liked.pending);
    assert_eq!(liked.count, Some(6));
    let again = apply(&cache, u, c, Action::Like, 11).await;
    assert!(
        !again.changed && again.pending,
        "the like is not durable yet"
    );
    assert_eq!((again.version, again.count), (10, Some(6)));
    cache.confirm(u, c, &liked, 1).await.expect("confirm");
    let durable = apply(&cache, u, c, Action::Like, 11).await;
    assert!(!durable.changed && !durable.pending);
    let unliked = apply(&cache, u, c, Action::Unlike, 5).await;
    assert_eq!(
        (unliked.changed, unliked.version, unliked.count),
        (true, 11, Some(5)),
        "never lowers a version"
    );
}

#[tokio::test]
async fn versions_past_the_exact_range_of_lua_numbers_stay_exact() {
    let (cache, _) = cache();
    let (u, c) = fresh_ids();
    assert!(cache
        .seed_user(u, &[], true, cache.fill_ticket())
        .await
        .expect("seed"));
    // An HLC near 2^57; 2^53 + 1 is the first integer a double cannot hold.
    let v = (1u64 << 53) + 1;
    let like = apply(&cache, u, c, Action::Like, v).await;
    assert_eq!(like.version, v);
    cache.confirm(u, c, &like, 1).await.expect("confirm");
    // Requested lower than stored + 1: the stored version plus one, carried across digits.
    let nines = 99_999_999_999_999_999u64;
    let (v2, c2) = (UserId::new(u.get() + 7).expect("id"), c);
    assert!(cache
        .seed_user(v2, &[(c2, row(true, nines))], true, cache.fill_ticket())
        .await
        .expect("seed"));
    let unlike = apply(&cache, v2, c2, Action::Unlike, 3).await;
    assert_eq!(unlike.version, nines + 1);
    let max = apply(&cache, u, c, Action::Unlike, u64::MAX).await;
    assert_eq!(max.version, u64::MAX);
}

#[tokio::test]
async fn reads_report_durable_states_only() {
    let (cache, _) = cache();
    let (u, c) = fresh_ids();
    assert!(cache
        .seed_user(u, &[], true, cache.fill_ticket())
        .await
        .expect("seed"));
    let like = apply(&cache, u, c, Action::Like, 10).await;
    assert_eq!(
        cache.states(u, &[c]).await.expect("states"),
        vec![Some(row(false, 0))]
    );
    cache.confirm(u, c, &like, 1).await.expect("confirm");
    assert_eq!(
        cache.states(u, &[c]).await.expect("states"),
        vec![Some(row(true, 10))]
    );
}

#[tokio::test]
async fn a_complete_user_fill_answers_every_content_and_a_partial_one_does_not() {
    let (cache, _) = cache();
    let (u, c) = fresh_ids();
    let other = ContentId::new(c.get() + 1).expect("id");
    let t = cache.fill_ticket();
    assert!(cache
        .seed_user(u, &[(c, row(true, 7))], true, t)
        .await
        .expect("seed"));
    assert_eq!(
        cache.states(u, &[c, other]).await.expect("states"),
        vec![Some(row(true, 7)), Some(row(false, 0))]
    );
    assert!(apply(&cache, u, other, Action::Like, 9).await.changed);
    let v = UserId::new(u.get() + 3).expect("id");
    assert!(cache
        .seed_user(v, &[(c, row(false, 4))], false, t)
        .await
        .expect("seed"));
    assert!(cache.is_filled(v).await.expect("filled"));
    assert_eq!(
        cache.states(v, &[c, other]).await.expect("states"),
        vec![Some(row(false, 4)), None]
    );
    assert_eq!(
        cache.apply(v, other, Action::Like, 9).await.expect("apply"),
        None
    );
}

#[tokio::test]
async fn a_fill_never_overwrites_a_newer_cached_state() {
    let (cache, _) = cache();
    let (u, c) = fresh_ids();
    let t = cache.fill_ticket();
    assert!(cache.seed_states(u, &[(c, None)], t).await.expect("seed"));
    let like = apply(&cache, u, c, Action::Like, 50).await;
    cache.confirm(u, c, &like, 1).await.expect("confirm");
    assert!(cache
        .seed_user(u, &[(c, row(false, 10))], true, t)
        .await
        .expect("seed"));
    assert!(cache
        .seed_states(u, &[(c, Some(row(false, 10)))], t)
        .await
        .expect("seed"));
    assert_eq!(
        cache.states(u, &[c]).await.expect("states"),
        vec![Some(row(true, 50))]
    );
}

#[tokio::test]
async fn revert_goes_back_to_the_last_durable_state_never_to_a_pending_one() {
    let (cache, _) = cache();
    let (u, c) = fresh_ids();
    let t = cache.fill_ticket();
    cache.fill_count(c, 0, t).await.expect("fill");
    assert!(cache.seed_user(u, &[], true, t).await.expect("seed"));
    // Like and unlike both in flight; both publishes fail.
    let like = apply(&cache, u, c, Action::Like, 10).await;
    let unlike = apply(&cache, u, c, Action::Unlike, 20).await;
    cache
        .revert(u, c, &like)
        .await
        .expect("stale revert is a no-op");
    cache.revert(u, c, &unlike).await.expect("revert");
    let now = apply(&cache, u, c, Action::Unlike, 30).await;
    assert!(
        !now.changed && !now.pending,
        "back to 'no row', which is durable: {now:?}"
    );
    assert_eq!(cache.counts(&[c]).await.expect("counts"), vec![Some(0)]);
}

#[tokio::test]
async fn a_revert_of_a_like_over_a_durable_unlike_moves_the_count_back() {
    let (cache, _) = cache();
    let (u, c) = fresh_ids();
    let t = cache.fill_ticket();
    cache.fill_count(c, 3, t).await.expect("fill");
    assert!(cache
        .seed_user(u, &[(c, row(false, 5))], true, t)
        .await
        .expect("seed"));
    let like = apply(&cache, u, c, Action::Like, 10).await;
    assert_eq!(like.count, Some(4));
    cache.revert(u, c, &like).await.expect("revert");
    assert_eq!(cache.counts(&[c]).await.expect("counts"), vec![Some(3)]);
    assert_eq!(
        cache.states(u, &[c]).await.expect("states"),
        vec![Some(row(false, 5))]
    );
    let again = apply(&cache, u, c, Action::Like, 7).await;
    assert_eq!(
        (again.changed, again.version),
        (true, 7),
        "5 + 1 < 7: the request's clock"
    );
}

#[tokio::test]
async fn a_durable_republish_restores_a_state_that_a_revert_took_away() {
    let (cache, _) = cache();
    let (u, c) = fresh_ids();
    let t = cache.fill_ticket();
    cache.fill_count(c, 0, t).await.expect("fill");
    assert!(cache.seed_user(u, &[], true, t).await.expect("seed"));
    let like = apply(&cache, u, c, Action::Like, 10).await;
    let repeat = apply(&cache, u, c, Action::Like, 11).await;
    assert!(repeat.pending && !repeat.changed);
    cache.revert(u, c, &like).await.expect("revert");
    assert_eq!(cache.counts(&[c]).await.expect("counts"), vec![Some(0)]);
    cache.confirm(u, c, &repeat, 1).await.expect("confirm");
    assert_eq!(
        cache.states(u, &[c]).await.expect("states"),
        vec![Some(row(true, 10))]
    );
    assert_eq!(cache.counts(&[c]).await.expect("counts"), vec![Some(1)]);
}

#[tokio::test]
async fn a_count_that_moved_after_the_ticket_is_not_filled() {
    let (cache, progress) = cache();
    let (u, c) = fresh_ids();
    progress.store(likes_shared::hlc::now_ms() - 60_000, Ordering::Release);
    let before = cache.fill_ticket();
    assert!(cache.seed_user(u, &[], true, before).await.expect("seed"));
    // The count is not cached; the like moves nothing but is recorded as a change.
    let like = apply(&cache, u, c, Action::Like, 10).await;
    assert_eq!(like.count, None);
    assert_eq!(
        cache.fill_count(c, 0, before).await.expect("fill"),
        None,
        "the store read may lack the like"
    );
    progress.store(likes_shared::hlc::now_ms() + 1, Ordering::Release);
    let after = cache.fill_ticket();
    assert_eq!(cache.fill_count(c, 1, after).await.expect("fill"), Some(1));
}

#[tokio::test]
async fn scripts_flushed_from_redis_are_loaded_again() {
    let (cache, _) = cache();
    let (u, c) = fresh_ids();
    assert!(cache
        .seed_user(u, &[], true, cache.fill_ticket())
        .await
        .expect("seed"));
    let client = redis::Client::open(redis_url()).expect("url");
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .expect("connect");
    let () = redis::cmd("SCRIPT")
        .arg("FLUSH")
        .query_async(&mut conn)
        .await
        .expect("flush");
    assert!(apply(&cache, u, c, Action::Like, 10).await.changed);
}

#[tokio::test]
async fn a_user_past_the_bound_forgets_only_settled_states_older_than_committed() {
    let (cache, progress) = cache_with(RedisCacheConfig {
        max_states_per_user: 4,
        ..RedisCacheConfig::default()
    });
    let (u, first) = fresh_ids();
    let ids: Vec<ContentId> = (0..6)
        .map(|i| ContentId::new(first.get() + i).expect("id"))
        .collect();
    // HLC versions of wall-clock ms 1000..1002; the sink has committed up to ms 1001.
    let hlc = |ms: u64| ms << 16;
    progress.store(1_001, Ordering::Release);
    let rows = [
        (ids[0], row(true, hlc(1_000))),
        (ids[1], row(true, hlc(1_002))),
    ];
    assert!(cache
        .seed_user(u, &rows, true, cache.fill_ticket())
        .await
        .expect("seed"));
    // A pending state is never forgotten.
    let pending = apply(&cache, u, ids[2], Action::Like, hlc(1_000)).await;
    assert!(pending.changed);
    // `_f` and three states: the next new content must forget the old settled one.
    let fourth = apply(&cache, u, ids[3], Action::Like, hlc(1_000)).await;
    assert!(fourth.changed);
    assert_eq!(
        cache.states(u, &ids[..2]).await.expect("states"),
        vec![None, Some(row(true, hlc(1_002)))],
        "the old settled state went, the user is no longer complete"
    );
    // A fill read before the forgotten change committed is refused.
    let stale = likes_shared::cache::FillTicket(999);
    assert!(!cache
        .seed_states(u, &[(ids[0], None)], stale)
        .await
        .expect("seed"));
    // Nothing else may go: the rest is pending or newer than committed.
    let full = cache
        .seed_states(u, &[(ids[5], None)], cache.fill_ticket())
        .await;
    assert!(
        matches!(full, Err(likes_shared::cache::CacheError::Full)),
        "{full:?}"
    );
}

#[tokio::test]
async fn trending_merges_the_partitions_posts_and_a_post_replaces_its_partition() {
    use likes_shared::trending::{TrendingBoard, TrendingEntry};
    use likes_sink::redis_trending::RedisTrendingBoard;
    let (cache, _) = cache();
    // A topic of its own: other tests post to the shared Redis too.
    let topic = likes_smoke::unique_name("trending");
    let e = |id: u64, score: u64| TrendingEntry {
        content_id: ContentId::new(id).expect("id"),
        score,
    };
    let board = RedisTrendingBoard::new(cache.connection(), &topic, 3, Duration::from_secs(60));
    board.post(0, vec![e(1, 10), e(2, 3)]).await;
    board.post(2, vec![e(3, 7)]).await;
    let top = board.top(2).await;
    assert_eq!(top, vec![e(1, 10), e(3, 7)]);
    board.post(0, vec![e(2, 30)]).await;
    assert_eq!(board.top(10).await, vec![e(2, 30), e(3, 7)]);
    board.post(2, vec![]).await;
    assert_eq!(board.top(10).await, vec![e(2, 30)]);
}
