//! Filling the lost count of a content that keeps changing (`count_scripts.rs` in ingest's
//! `redis_cache`): a refused fill starts an epoch, the changes applied meanwhile add their moves
//! to it and tag their events with it, and once the store holds every change from before the
//! start the count is the store's, minus how far the epoch's landed events moved it, plus the
//! epoch's sum. On one Redis and with the Cluster scripts. The store here is the test: it says
//! what a sink that committed some of the tagged events would hold.

use super::{cache_with, fresh_ids};
use likes_ingest::redis_cache::RedisCacheConfig;
use likes_shared::cache::{CachedApply, FillTicket, StateCache};
use likes_shared::hlc::now_ms;
use likes_shared::store::StoredCount;
use likes_shared::{Action, ContentId, UserId};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

const MARGIN_MS: u64 = 200;

fn config(cluster: bool) -> RedisCacheConfig {
    RedisCacheConfig {
        cluster,
        fence_margin_ms: MARGIN_MS,
        fill_epochs: true,
        ..RedisCacheConfig::default()
    }
}

fn user(n: u64) -> UserId {
    UserId::new(n).expect("non-zero")
}

async fn like(cache: &dyn StateCache, u: UserId, c: ContentId) -> CachedApply {
    let t = cache.fill_ticket();
    assert!(cache.seed_user(u, &[], true, t).await.expect("seed"));
    let applied = cache
        .apply(u, c, Action::Like, now_ms() << 16)
        .await
        .expect("apply")
        .expect("seeded");
    assert!(applied.changed);
    applied
}

async fn like_durably(cache: &dyn StateCache, u: UserId, c: ContentId) -> CachedApply {
    let applied = like(cache, u, c).await;
    cache.confirm(u, c, &applied, 1).await.expect("confirm");
    applied
}

fn stored(count: i64, fill_epoch: u64, epoch_delta: i64) -> StoredCount {
    StoredCount {
        count,
        fill_epoch,
        epoch_delta,
    }
}

/// The store committed 5 likes long ago and the cache holds no count; `first`'s like now
/// (before any epoch: untagged) makes the count "changed just now", so a plain fill from a
/// ticket before it is refused and starts an epoch. Returns that ticket.
async fn start_epoch(
    cache: &dyn StateCache,
    progress: &AtomicU64,
    first: UserId,
    c: ContentId,
) -> FillTicket {
    progress.store(now_ms() - 60_000, Ordering::Release);
    assert_eq!(
        like_durably(cache, first, c).await.fill_epoch,
        0,
        "no epoch yet"
    );
    let ticket = cache.fill_ticket();
    assert_eq!(
        cache
            .fill_count(c, stored(5, 0, 0), ticket)
            .await
            .expect("fill"),
        None
    );
    ticket
}

async fn a_count_that_keeps_changing_is_filled_once_the_epoch_has_aged(cluster: bool) {
    let (cache, progress) = cache_with(config(cluster));
    let (base, c) = fresh_ids();
    let u = |n: u64| user(base.get() + 10 + n);
    start_epoch(&cache, &progress, u(1), c).await;
    // Two likes and an unlike of a like from before the epoch, during it: each tagged.
    let two = like_durably(&cache, u(2), c).await;
    let three = like_durably(&cache, u(3), c).await;
    let unlike = cache
        .apply(u(1), c, Action::Unlike, now_ms() << 16)
        .await
        .expect("apply")
        .expect("cached");
    cache.confirm(u(1), c, &unlike, 1).await.expect("confirm");
    let epoch = two.fill_epoch;
    assert!(epoch > 0, "{two:?}");
    assert_eq!((three.fill_epoch, unlike.fill_epoch), (epoch, epoch));
    assert_eq!(cache.counts(&[c]).await.expect("counts"), vec![None]);

    // The store has u1's like (from before) and, of the epoch, u3's like: 5 + 1 + 1, the
    // epoch's events moved it by 1. Not yet: the ticket is not past the start plus the margin.
    let landed = stored(7, epoch, 1);
    assert_eq!(
        cache
            .fill_count(c, landed, cache.fill_ticket())
            .await
            .expect("fill"),
        None
    );
    // The content goes on changing past the start plus the margin: a plain fill is refused
    // still (the store may lack u4's like), the epoch's is not.
    tokio::time::sleep(Duration::from_millis(MARGIN_MS + 50)).await;
    progress.store(epoch + MARGIN_MS, Ordering::Release);
    assert_eq!(like_durably(&cache, u(4), c).await.fill_epoch, epoch);
    // The truth: 5 + u2 + u3 + u4 (u1 liked, then unliked) = 8. The epoch's sum is
    // +1 +1 -1 +1, of which the store holds u3's +1.
    assert_eq!(
        cache
            .fill_count(c, landed, cache.fill_ticket())
            .await
            .expect("fill"),
        Some(8)
    );
    let five = like(&cache, u(5), c).await;
    assert_eq!(
        (five.count, five.fill_epoch),
        (Some(9), 0),
        "a filled count moves on"
    );
}

async fn what_the_sum_cannot_account_for_ends_the_epoch(cluster: bool) {
    let (cache, progress) = cache_with(config(cluster));
    let (base, c) = fresh_ids();
    let u = |n: u64| user(base.get() + 10 + n);
    let ticket = start_epoch(&cache, &progress, u(1), c).await;
    let first = like(&cache, u(2), c).await;
    assert!(first.fill_epoch > 0);
    // A revert (its publish failed) moves the count but is no apply: the epoch ends, and the
    // events after it are not tagged.
    cache.revert(u(2), c, &first).await.expect("revert");
    let after = like_durably(&cache, u(3), c).await;
    assert_eq!(after.fill_epoch, 0, "the revert ended the epoch");
    // The next refused fill starts a newer one.
    assert_eq!(
        cache
            .fill_count(c, stored(5, 0, 0), ticket)
            .await
            .expect("fill"),
        None
    );
    let pending = like(&cache, u(4), c).await;
    let second = pending.fill_epoch;
    assert!(
        second > first.fill_epoch,
        "{second} after {}",
        first.fill_epoch
    );
    // A change published after a state still pending from before the start (plus the margin)
    // may reach the store first; the epoch ends. Here u4's like is pending, and its version is
    // from within the margin of the start.
    let unlike = cache
        .apply(u(4), c, Action::Unlike, now_ms() << 16)
        .await
        .expect("apply")
        .expect("cached");
    assert!(unlike.changed);
    assert_eq!(
        unlike.fill_epoch, 0,
        "a change after a pending early state ends it"
    );
    assert_eq!(
        cache
            .fill_count(c, stored(6, second, 1), ticket)
            .await
            .expect("fill"),
        None
    );
    let third = like(&cache, u(5), c).await.fill_epoch;
    assert!(
        third > second,
        "an ended epoch is not taken up again: {third} after {second}"
    );
}

#[tokio::test]
async fn a_count_that_keeps_changing_is_filled_once_the_epoch_has_aged_on_one_redis() {
    a_count_that_keeps_changing_is_filled_once_the_epoch_has_aged(false).await;
}

#[tokio::test]
async fn a_count_that_keeps_changing_is_filled_once_the_epoch_has_aged_with_cluster_scripts() {
    a_count_that_keeps_changing_is_filled_once_the_epoch_has_aged(true).await;
}

#[tokio::test]
async fn what_the_sum_cannot_account_for_ends_the_epoch_on_one_redis() {
    what_the_sum_cannot_account_for_ends_the_epoch(false).await;
}

#[tokio::test]
async fn what_the_sum_cannot_account_for_ends_the_epoch_with_cluster_scripts() {
    what_the_sum_cannot_account_for_ends_the_epoch(true).await;
}

#[tokio::test]
async fn no_epoch_completes_over_a_spool_that_held_events_since_its_start() {
    let namespace = format!("fill-epoch-test-{}", rand::random::<u64>());
    let (cache, progress) = cache_with(RedisCacheConfig {
        namespace: namespace.clone(),
        ..config(false)
    });
    let (base, c) = fresh_ids();
    let u = |n: u64| user(base.get() + 10 + n);
    let sleep = |ms: u64| tokio::time::sleep(Duration::from_millis(ms));
    start_epoch(&cache, &progress, u(1), c).await;
    let first = like_durably(&cache, u(2), c).await.fill_epoch;
    // Some instance's spool held events after the start (the spool hold keeps this key).
    let mut conn = cache.connection();
    let spool_last = format!("{namespace}:spool-last");
    let _: () = redis::cmd("SET")
        .arg(&spool_last)
        .arg(first + 1)
        .query_async(&mut conn)
        .await
        .expect("SET");
    sleep(2 * MARGIN_MS + 50).await;
    progress.store(first + MARGIN_MS, Ordering::Release);
    like_durably(&cache, u(3), c).await;
    // The store holds the 5 and u1's like; of epoch `first`, u2's and u3's.
    let landed = stored(8, first, 2);
    assert_eq!(
        cache
            .fill_count(c, landed, cache.fill_ticket())
            .await
            .expect("fill"),
        None,
        "an event spooled from before the start may reach the store after the epoch's"
    );
    // The epoch the spool overtook starts again, past the spool.
    let again: u64 = redis::cmd("GET")
        .arg(format!("{namespace}:{{c:{}}}:e", c.get()))
        .query_async(&mut conn)
        .await
        .expect("a new epoch");
    assert!(again > first + MARGIN_MS, "{again} after {first}");
    sleep(MARGIN_MS + 50).await;
    progress.store(again + MARGIN_MS, Ordering::Release);
    assert_eq!(like_durably(&cache, u(4), c).await.fill_epoch, again);
    assert_eq!(
        cache
            .fill_count(c, landed, cache.fill_ticket())
            .await
            .expect("fill"),
        Some(9),
        "5 + u1..u4: the store's 8, none of the new epoch's, and its +1"
    );
}
