//! The state caches: the contract of DESIGN section 7 (`contract.rs`) on the embedded
//! `MemoryStateCache` and on `RedisStateCache` over the real Redis of `infra/dev/services`
//! (`LIKES_REDIS_URL`), with its one-Redis and its Cluster scripts, then what only Redis has (two
//! instances racing, scripts flushed, the fence and the learning after an outage, the
//! age-bounded fills and per-user bound, the trending board). Each test uses ids of its own.

mod contract;
mod fence;
mod fill_epoch;
mod learn;
mod races;

use contract::{apply, row};

use likes_ingest::memory_cache::MemoryStateCache;
use likes_ingest::redis_cache::{RedisCacheConfig, RedisStateCache};
use likes_shared::cache::StateCache;
use likes_shared::store::StoredCount;
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

/// A cache whose "committed" bound (wall-clock ms) the test sets by hand, under a namespace of
/// its own unless the test names one: keys that cover a whole namespace (the fence an outage
/// test leaves behind, the spool hold) must not reach into other tests.
pub fn cache_with(mut config: RedisCacheConfig) -> (RedisStateCache, Arc<AtomicU64>) {
    if config.namespace == RedisCacheConfig::default().namespace {
        config.namespace = format!("state-cache-test-{}", rand::random::<u64>());
    }
    let progress = Arc::new(AtomicU64::new(0));
    let cache = RedisStateCache::new(&redis_url(), config, progress.clone()).expect("cache");
    (cache, progress)
}

pub fn cache() -> (RedisStateCache, Arc<AtomicU64>) {
    cache_with(RedisCacheConfig::default())
}

/// Each contract test, once per backend.
macro_rules! contract_tests {
    ($($name:ident),* $(,)?) => {
        mod in_memory {
            use super::*;
            $(
                #[tokio::test]
                async fn $name() {
                    let cache = MemoryStateCache::new(10_000, Arc::new(AtomicU64::new(0)));
                    contract::$name(&cache, fresh_ids()).await;
                }
            )*
        }
        mod on_redis {
            use super::*;
            $(
                #[tokio::test]
                async fn $name() {
                    contract::$name(&cache().0, fresh_ids()).await;
                }
            )*
        }
        /// With the scripts a Redis Cluster can run: the count moves in a script of its own.
        mod on_redis_cluster_scripts {
            use super::*;
            $(
                #[tokio::test]
                async fn $name() {
                    let config = RedisCacheConfig {
                        cluster: true,
                        ..RedisCacheConfig::default()
                    };
                    contract::$name(&cache_with(config).0, fresh_ids()).await;
                }
            )*
        }
    };
}

contract_tests!(
    cold_until_seeded_then_transitions_move_the_count,
    versions_past_the_exact_range_of_lua_numbers_stay_exact,
    reads_report_durable_states_only,
    a_complete_user_fill_answers_every_content_and_a_partial_one_does_not,
    a_fill_never_overwrites_a_newer_cached_state,
    revert_goes_back_to_the_last_durable_state_never_to_a_pending_one,
    a_revert_of_a_like_over_a_durable_unlike_moves_the_count_back,
    a_durable_republish_restores_a_state_that_a_revert_took_away,
);

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
        cache
            .fill_count(c, StoredCount::untagged(0), before)
            .await
            .expect("fill"),
        None,
        "the store read may lack the like"
    );
    progress.store(likes_shared::hlc::now_ms() + 1, Ordering::Release);
    let after = cache.fill_ticket();
    assert_eq!(
        cache
            .fill_count(c, StoredCount::untagged(1), after)
            .await
            .expect("fill"),
        Some(1)
    );
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

#[tokio::test]
async fn a_full_redis_refuses_an_action_whole_and_it_can_be_taken_once_there_is_room() {
    use likes_shared::cache::CacheError;
    let redis = likes_smoke::PrivateRedis::start();
    let progress = Arc::new(AtomicU64::new(0));
    let cache =
        RedisStateCache::new(&redis.url(), RedisCacheConfig::default(), progress).expect("cache");
    let (u, c) = fresh_ids();
    let t = cache.fill_ticket();
    cache
        .fill_count(c, StoredCount::untagged(0), t)
        .await
        .expect("fill");
    assert!(cache.seed_user(u, &[], true, t).await.expect("seed"));
    let client = ::redis::Client::open(redis.url()).expect("url");
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .expect("connect");
    let config_set = |limit: String| {
        ::redis::cmd("CONFIG")
            .arg("SET")
            .arg("maxmemory")
            .arg(limit)
            .clone()
    };
    // Full from here on: the limit is what it holds now.
    let info: String = ::redis::cmd("INFO")
        .arg("memory")
        .query_async(&mut conn)
        .await
        .expect("info");
    let used = info
        .lines()
        .find_map(|l| l.strip_prefix("used_memory:"))
        .expect("used_memory")
        .trim()
        .to_owned();
    let () = config_set(used)
        .query_async(&mut conn)
        .await
        .expect("limit");
    let refused = cache.apply(u, c, Action::Like, 10).await;
    assert!(matches!(refused, Err(CacheError::Full)), "{refused:?}");
    let () = config_set("0".into())
        .query_async(&mut conn)
        .await
        .expect("unlimited");
    let like = apply(&cache, u, c, Action::Like, 11).await;
    assert!(
        like.changed && !like.pending,
        "the refused action left a trace: {like:?}"
    );
    assert_eq!(like.count, Some(1));
}

#[tokio::test]
async fn while_one_instance_spools_no_instance_counts_anything_as_committed() {
    use likes_ingest::redis_cache::{AgeBound, SpoolHold};
    use likes_shared::bus::CommitProgress;
    use likes_shared::hlc::now_ms;
    use std::sync::atomic::AtomicBool;
    let config = RedisCacheConfig::default();
    let conn = likes_ingest::redis_cache::connection(&redis_url(), &config).expect("conn");
    let key = likes_smoke::unique_name("spool-hold");
    let last = likes_smoke::unique_name("spool-last");
    let lag = Duration::from_millis(600);
    let (_trigger, shutdown) = likes_shared::shutdown::channel();
    let spooling = Arc::new(AtomicBool::new(true));
    let a_spools = spooling.clone();
    // Instance A spools; instance B does not, and learns it only through Redis.
    let (_a_held, _a) = SpoolHold::start(
        conn.clone(),
        (key.clone(), last.clone()),
        lag,
        move || a_spools.load(Ordering::Acquire),
        shutdown.clone(),
    );
    let (b_held, _b) = SpoolHold::start(conn.clone(), (key, last.clone()), lag, || false, shutdown);
    let b = AgeBound::new(lag.as_millis() as u64).holding(b_held);
    tokio::time::sleep(SpoolHold::TICK * 3).await;
    assert_eq!(b.committed(), 0, "B must hold back while A spools");
    spooling.store(false, Ordering::Release);
    let stopped_ms = now_ms();
    tokio::time::sleep(lag / 2).await;
    assert_eq!(
        b.committed(),
        0,
        "and for the lag bound after A's spool drained"
    );
    tokio::time::sleep(lag + SpoolHold::TICK * 3).await;
    assert!(
        b.committed() > 0,
        "then B counts old changes as committed again"
    );
    // The spool's last time outlives the hold: it says when A's spool last held events.
    let mut conn = conn;
    let last_ms: Option<u64> = redis::cmd("GET")
        .arg(&last)
        .query_async(&mut conn)
        .await
        .expect("GET");
    let last_ms = last_ms.expect("the spool's last time is kept");
    assert!(
        last_ms + 2 * SpoolHold::TICK.as_millis() as u64 >= stopped_ms && last_ms <= stopped_ms,
        "last {last_ms}, stopped {stopped_ms}"
    );
}

#[tokio::test]
async fn the_reconciler_repairs_a_drifted_count_unless_it_moved_since_committed() {
    use likes_sink::redis_counts::{repair_counts, CountRepair, Keys};
    let namespace = format!("reconcile-test-{}", rand::random::<u64>());
    let (cache, _) = cache_with(RedisCacheConfig {
        namespace: namespace.clone(),
        ..RedisCacheConfig::default()
    });
    let (u, c) = fresh_ids();
    let cold = ContentId::new(c.get() + 1).expect("id");
    let t = cache.fill_ticket();
    cache
        .fill_count(c, StoredCount::untagged(5), t)
        .await
        .expect("fill");
    assert!(cache.seed_user(u, &[], true, t).await.expect("seed"));
    let before_like = likes_shared::hlc::now_ms() - 1;
    assert_eq!(apply(&cache, u, c, Action::Like, 10).await.count, Some(6));
    let mut conn = cache.connection();
    let keys = Keys::new(&namespace);
    let store = [(c, 9), (cold, 4)];
    let skipped = repair_counts(&mut conn, &keys, &store, before_like)
        .await
        .expect("repair");
    assert_eq!(
        skipped,
        CountRepair {
            repaired: 0,
            skipped: 1
        },
        "moved after committed"
    );
    assert_eq!(cache.counts(&[c]).await.expect("counts"), vec![Some(6)]);
    let after = likes_shared::hlc::now_ms() + 1;
    let repaired = repair_counts(&mut conn, &keys, &store, after)
        .await
        .expect("repair");
    assert_eq!(
        repaired,
        CountRepair {
            repaired: 1,
            skipped: 0
        }
    );
    assert_eq!(
        cache.counts(&[c, cold]).await.expect("counts"),
        vec![Some(9), None],
        "repaired; an uncached count stays uncached"
    );
    let again = repair_counts(&mut conn, &keys, &store, after)
        .await
        .expect("repair");
    assert_eq!(again, CountRepair::default(), "nothing left to repair");
}
