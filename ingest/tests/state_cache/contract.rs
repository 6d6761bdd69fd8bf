//! The [`StateCache`] contract of DESIGN section 7 as tests any backend must pass: the embedded
//! `MemoryStateCache` and `RedisStateCache` run the same functions (see `main.rs`). Each takes a
//! cache and a (user, content) of its own; other ids it needs are derived from them.

use likes_shared::cache::{CachedApply, StateCache};
use likes_shared::store::{RowState, StoredCount};
use likes_shared::{Action, ContentId, UserId};

pub fn row(liked: bool, version: u64) -> RowState {
    RowState { liked, version }
}

pub async fn apply(
    cache: &dyn StateCache,
    u: UserId,
    c: ContentId,
    a: Action,
    v: u64,
) -> CachedApply {
    cache.apply(u, c, a, v).await.expect("apply").expect("warm")
}

pub async fn cold_until_seeded_then_transitions_move_the_count(
    cache: &dyn StateCache,
    (u, c): (UserId, ContentId),
) {
    assert_eq!(
        cache.apply(u, c, Action::Like, 10).await.expect("apply"),
        None
    );
    assert!(!cache.is_filled(u).await.expect("filled"));
    let t = cache.fill_ticket();
    assert_eq!(
        cache
            .fill_count(c, StoredCount::untagged(5), t)
            .await
            .expect("fill"),
        Some(5)
    );
    assert_eq!(
        cache
            .fill_count(c, StoredCount::untagged(99), t)
            .await
            .expect("fill is NX"),
        Some(5)
    );
    assert!(cache.seed_user(u, &[], true, t).await.expect("seed"));
    assert!(cache.is_filled(u).await.expect("filled"));
    let liked = apply(cache, u, c, Action::Like, 10).await;
    assert!(liked.changed && liked.liked && !liked.pending);
    assert_eq!(liked.count, Some(6));
    let again = apply(cache, u, c, Action::Like, 11).await;
    assert!(
        !again.changed && again.pending,
        "the like is not durable yet"
    );
    assert_eq!((again.version, again.count), (10, Some(6)));
    cache.confirm(u, c, &liked, 1).await.expect("confirm");
    let durable = apply(cache, u, c, Action::Like, 11).await;
    assert!(!durable.changed && !durable.pending);
    let unliked = apply(cache, u, c, Action::Unlike, 5).await;
    assert_eq!(
        (unliked.changed, unliked.version, unliked.count),
        (true, 11, Some(5)),
        "never lowers a version"
    );
}

pub async fn versions_past_the_exact_range_of_lua_numbers_stay_exact(
    cache: &dyn StateCache,
    (u, c): (UserId, ContentId),
) {
    assert!(cache
        .seed_user(u, &[], true, cache.fill_ticket())
        .await
        .expect("seed"));
    // An HLC near 2^57; 2^53 + 1 is the first integer a double cannot hold.
    let v = (1u64 << 53) + 1;
    let like = apply(cache, u, c, Action::Like, v).await;
    assert_eq!(like.version, v);
    cache.confirm(u, c, &like, 1).await.expect("confirm");
    // Requested lower than stored + 1: the stored version plus one, carried across digits.
    let nines = 99_999_999_999_999_999u64;
    let (v2, c2) = (UserId::new(u.get() + 7).expect("id"), c);
    assert!(cache
        .seed_user(v2, &[(c2, row(true, nines))], true, cache.fill_ticket())
        .await
        .expect("seed"));
    let unlike = apply(cache, v2, c2, Action::Unlike, 3).await;
    assert_eq!(unlike.version, nines + 1);
    let max = apply(cache, u, c, Action::Unlike, u64::MAX).await;
    assert_eq!(max.version, u64::MAX);
}

pub async fn reads_report_durable_states_only(cache: &dyn StateCache, (u, c): (UserId, ContentId)) {
    assert!(cache
        .seed_user(u, &[], true, cache.fill_ticket())
        .await
        .expect("seed"));
    let like = apply(cache, u, c, Action::Like, 10).await;
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

pub async fn a_complete_user_fill_answers_every_content_and_a_partial_one_does_not(
    cache: &dyn StateCache,
    (u, c): (UserId, ContentId),
) {
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
    assert!(apply(cache, u, other, Action::Like, 9).await.changed);
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

pub async fn a_fill_never_overwrites_a_newer_cached_state(
    cache: &dyn StateCache,
    (u, c): (UserId, ContentId),
) {
    let t = cache.fill_ticket();
    assert!(cache.seed_states(u, &[(c, None)], t).await.expect("seed"));
    let like = apply(cache, u, c, Action::Like, 50).await;
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

pub async fn revert_goes_back_to_the_last_durable_state_never_to_a_pending_one(
    cache: &dyn StateCache,
    (u, c): (UserId, ContentId),
) {
    let t = cache.fill_ticket();
    cache
        .fill_count(c, StoredCount::untagged(0), t)
        .await
        .expect("fill");
    assert!(cache.seed_user(u, &[], true, t).await.expect("seed"));
    // Like and unlike both in flight; both publishes fail.
    let like = apply(cache, u, c, Action::Like, 10).await;
    let unlike = apply(cache, u, c, Action::Unlike, 20).await;
    cache
        .revert(u, c, &like)
        .await
        .expect("stale revert is a no-op");
    cache.revert(u, c, &unlike).await.expect("revert");
    let now = apply(cache, u, c, Action::Unlike, 30).await;
    assert!(
        !now.changed && !now.pending,
        "back to 'no row', which is durable: {now:?}"
    );
    assert_eq!(cache.counts(&[c]).await.expect("counts"), vec![Some(0)]);
}

pub async fn a_revert_of_a_like_over_a_durable_unlike_moves_the_count_back(
    cache: &dyn StateCache,
    (u, c): (UserId, ContentId),
) {
    let t = cache.fill_ticket();
    cache
        .fill_count(c, StoredCount::untagged(3), t)
        .await
        .expect("fill");
    assert!(cache
        .seed_user(u, &[(c, row(false, 5))], true, t)
        .await
        .expect("seed"));
    let like = apply(cache, u, c, Action::Like, 10).await;
    assert_eq!(like.count, Some(4));
    cache.revert(u, c, &like).await.expect("revert");
    assert_eq!(cache.counts(&[c]).await.expect("counts"), vec![Some(3)]);
    assert_eq!(
        cache.states(u, &[c]).await.expect("states"),
        vec![Some(row(false, 5))]
    );
    let again = apply(cache, u, c, Action::Like, 7).await;
    assert_eq!(
        (again.changed, again.version),
        (true, 7),
        "5 + 1 < 7: the request's clock"
    );
}

pub async fn a_durable_republish_restores_a_state_that_a_revert_took_away(
    cache: &dyn StateCache,
    (u, c): (UserId, ContentId),
) {
    let t = cache.fill_ticket();
    cache
        .fill_count(c, StoredCount::untagged(0), t)
        .await
        .expect("fill");
    assert!(cache.seed_user(u, &[], true, t).await.expect("seed"));
    let like = apply(cache, u, c, Action::Like, 10).await;
    let repeat = apply(cache, u, c, Action::Like, 11).await;
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
