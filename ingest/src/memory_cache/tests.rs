//! What only the embedded cache has: its bound, sink progress and forgetting. The contract every
//! `StateCache` keeps is tested on this cache and on Redis in `ingest/tests/state_cache`.

use super::*;
use std::sync::atomic::{AtomicU64, Ordering};

fn ids(u: u64, c: u64) -> (UserId, ContentId) {
    (
        UserId::new(u).expect("non-zero"),
        ContentId::new(c).expect("non-zero"),
    )
}

fn row(liked: bool, version: u64) -> RowState {
    RowState { liked, version }
}

/// A cache and the sink progress it reads, set by hand.
fn cache(capacity: usize) -> (MemoryStateCache, Arc<AtomicU64>) {
    let progress = Arc::new(AtomicU64::new(0));
    (MemoryStateCache::new(capacity, progress.clone()), progress)
}

async fn apply(
    cache: &MemoryStateCache,
    u: UserId,
    c: ContentId,
    a: Action,
    v: u64,
) -> CachedApply {
    cache.apply(u, c, a, v).await.expect("apply").expect("warm")
}

#[tokio::test]
async fn only_committed_entries_are_forgotten_and_a_full_cache_refuses() {
    let (cache, progress) = cache(32); // 2 shards of 16 users+states
    let t = cache.fill_ticket();
    let mut marks = Vec::new();
    let mut full_at = None;
    for u in 1..=40u64 {
        let (user, c) = ids(u, 1_000 + u);
        match cache.seed_user(user, &[], true, t).await {
            Ok(true) => {}
            Err(CacheError::Full) => {
                full_at = Some(u);
                break;
            }
            other => panic!("seed: {other:?}"),
        }
        cache
            .fill_count(c, StoredCount::untagged(0), t)
            .await
            .expect("fill");
        match cache.apply(user, c, Action::Like, u).await {
            Ok(Some(a)) => {
                cache.confirm(user, c, &a, u).await.expect("confirm");
                marks.push((user, c));
            }
            Err(CacheError::Full) => {
                full_at = Some(u);
                break;
            }
            other => panic!("apply: {other:?}"),
        }
    }
    let full_at = full_at.expect("the cache fills up while nothing is committed");
    for (user, c) in &marks {
        assert_eq!(
            cache.states(*user, &[*c]).await.expect("states")[0].map(|s| s.liked),
            Some(true),
            "an uncommitted like is never forgotten"
        );
    }
    // Once the sink has committed everything, room is made by forgetting.
    progress.store(u64::MAX, Ordering::Release);
    let (user, c) = ids(full_at, 1_000 + full_at);
    assert!(cache
        .seed_user(user, &[], true, cache.fill_ticket())
        .await
        .expect("room now"));
    assert!(cache
        .apply(user, c, Action::Like, 1)
        .await
        .expect("apply")
        .is_some());
}

#[tokio::test]
async fn a_fill_read_before_something_was_forgotten_is_refused() {
    let (cache, progress) = cache(32);
    let stale = cache.fill_ticket();
    let (u, c) = ids(1, 1);
    assert!(cache.seed_user(u, &[], true, stale).await.expect("seed"));
    let like = apply(&cache, u, c, Action::Like, 10).await;
    cache.confirm(u, c, &like, 5).await.expect("confirm");
    progress.store(5, Ordering::Release);
    // Pressure until user 1 is forgotten (committed, so it may be).
    let mut v = 2;
    while cache.is_filled(u).await.expect("filled") {
        let (other, _) = ids(v, 1);
        assert!(cache
            .seed_user(other, &[], true, cache.fill_ticket())
            .await
            .expect("seed"));
        v += 1;
        assert!(v < 10_000, "user 1 is never forgotten");
    }
    // A read taken before mark 5 was committed may lack the like: refused.
    assert!(!cache.seed_user(u, &[], true, stale).await.expect("seed"));
    assert!(cache
        .seed_user(u, &[(c, row(true, 10))], true, cache.fill_ticket())
        .await
        .expect("seed"));
    assert_eq!(
        cache.states(u, &[c]).await.expect("states"),
        vec![Some(row(true, 10))]
    );
}

#[tokio::test]
async fn the_bound_counts_states_not_users() {
    let (cache, _) = cache(64);
    let (u, _) = ids(1, 1);
    assert!(cache
        .seed_user(u, &[], true, cache.fill_ticket())
        .await
        .expect("seed"));
    let mut applied = 0;
    for c in 1..=200u64 {
        let content = ContentId::new(c).expect("non-zero");
        match cache.apply(u, content, Action::Like, c).await {
            Ok(Some(_)) => applied += 1,
            Err(CacheError::Full) => break,
            other => panic!("apply: {other:?}"),
        }
    }
    assert!(
        applied < 64,
        "one user cannot hold more states than the cache: {applied}"
    );
}

#[tokio::test]
async fn a_user_past_their_share_forgets_settled_states_and_completeness() {
    let (cache, progress) = cache(100_000);
    progress.store(u64::MAX, Ordering::Release);
    let (u, _) = ids(1, 1);
    assert!(cache
        .seed_user(u, &[], true, cache.fill_ticket())
        .await
        .expect("seed"));
    let all: Vec<ContentId> = (1..=MAX_STATES_PER_USER as u64 + 1)
        .map(|c| ContentId::new(c).expect("id"))
        .collect();
    for (i, content) in all.iter().enumerate() {
        if cache.states(u, &[*content]).await.expect("states")[0].is_none() {
            // No longer complete: a new content is cold until read from the store.
            let t = cache.fill_ticket();
            assert!(cache
                .seed_states(u, &[(*content, None)], t)
                .await
                .expect("seed"));
        }
        let a = apply(&cache, u, *content, Action::Like, i as u64 + 1).await;
        cache.confirm(u, *content, &a, 1).await.expect("confirm");
    }
    let states = cache.states(u, &all).await.expect("states");
    assert!(
        states.iter().any(Option::is_none),
        "some settled entries went cold"
    );
    assert!(
        states.iter().flatten().all(|s| s.liked),
        "nothing reads as a wrong state"
    );
}

#[tokio::test]
async fn a_republish_in_flight_keeps_its_entry_through_a_revert_and_pressure() {
    let (cache, progress) = cache(32);
    let t = cache.fill_ticket();
    let (u, c) = ids(1, 2);
    cache
        .fill_count(c, StoredCount::untagged(0), t)
        .await
        .expect("fill");
    assert!(cache.seed_user(u, &[], true, t).await.expect("seed"));
    let like = apply(&cache, u, c, Action::Like, 10).await;
    let repeat = apply(&cache, u, c, Action::Like, 11).await;
    assert!(repeat.pending, "the second like publishes v10 again");
    // The first publish fails while the republish is still in flight.
    cache.revert(u, c, &like).await.expect("revert");
    progress.store(u64::MAX, Ordering::Release);
    for v in 2..200u64 {
        let (other, _) = ids(v, 2);
        let _ = cache.seed_user(other, &[], true, cache.fill_ticket()).await;
    }
    assert!(
        cache.is_filled(u).await.expect("filled"),
        "an entry whose publish is in flight is never forgotten"
    );
    cache.confirm(u, c, &repeat, 7).await.expect("confirm");
    assert_eq!(
        cache.states(u, &[c]).await.expect("states"),
        vec![Some(row(true, 10))]
    );
    assert_eq!(cache.counts(&[c]).await.expect("counts"), vec![Some(1)]);
}

#[tokio::test]
async fn a_fill_that_forgets_a_state_on_its_way_in_does_not_bring_back_an_older_one() {
    let (cache, progress) = cache(32); // shards of 16: a user holds at most 15 states
    let stale = cache.fill_ticket();
    let (u, x) = ids(1, 1);
    assert!(cache.seed_user(u, &[], false, stale).await.expect("seed"));
    assert!(cache
        .seed_states(u, &[(x, None)], stale)
        .await
        .expect("seed"));
    let like = apply(&cache, u, x, Action::Like, 10).await;
    cache.confirm(u, x, &like, 50).await.expect("confirm");
    // Fourteen more states, all pending: only X can make room.
    for c in 2..=15u64 {
        let (_, content) = ids(1, c);
        assert!(cache
            .seed_states(u, &[(content, None)], stale)
            .await
            .expect("seed"));
        apply(&cache, u, content, Action::Like, 10 + c).await;
    }
    progress.store(50, Ordering::Release);
    // A fill read at ticket 40, before the like of X was committed: it has X unliked.
    let (_, y) = ids(1, 99);
    let _ = cache
        .seed_user(
            u,
            &[(y, row(false, 3)), (x, row(false, 5))],
            true,
            FillTicket(40),
        )
        .await;
    assert_ne!(
        cache.states(u, &[x]).await.expect("states")[0],
        Some(row(false, 5)),
        "the stale row of X came back after X was forgotten to make room"
    );
}
