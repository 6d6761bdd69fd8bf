use super::*;

fn ids(u: u64, c: u64) -> (UserId, ContentId) {
    (
        UserId::new(u).expect("non-zero"),
        ContentId::new(c).expect("non-zero"),
    )
}

fn row(liked: bool, version: u64) -> RowState {
    RowState { liked, version }
}

#[tokio::test]
async fn cold_until_seeded_then_transitions_move_the_count() {
    let cache = MemoryStateCache::new(1_000);
    let (u, c) = ids(1, 2);
    assert_eq!(
        cache
            .apply(u, c, Action::Like, 10, None)
            .await
            .expect("apply"),
        None
    );
    assert_eq!(cache.fill_count(c, 5).await.expect("fill"), 5);
    assert_eq!(cache.fill_count(c, 99).await.expect("fill is NX"), 5);
    let liked = cache
        .apply(u, c, Action::Like, 10, Some(None))
        .await
        .expect("apply")
        .expect("seeded");
    assert!(liked.changed && liked.liked);
    assert_eq!(liked.count, Some(6));
    let again = cache
        .apply(u, c, Action::Like, 11, None)
        .await
        .expect("apply")
        .expect("warm");
    assert!(!again.changed);
    assert_eq!((again.version, again.count), (10, Some(6)));
    let unliked = cache
        .apply(u, c, Action::Unlike, 5, None)
        .await
        .expect("apply")
        .expect("warm");
    assert_eq!(
        (unliked.changed, unliked.version, unliked.count),
        (true, 11, Some(5)),
        "never lowers a version"
    );
}

#[tokio::test]
async fn a_complete_user_fill_answers_every_content_and_a_partial_one_does_not() {
    let cache = MemoryStateCache::new(1_000);
    let (u, c) = ids(1, 2);
    let (_, other) = ids(1, 3);
    cache
        .seed_user(u, &[(c, row(true, 7))], true)
        .await
        .expect("seed");
    assert_eq!(
        cache.states(u, &[c, other]).await.expect("states"),
        vec![Some(row(true, 7)), Some(row(false, 0))]
    );
    let like = cache
        .apply(u, other, Action::Like, 9, None)
        .await
        .expect("apply")
        .expect("known");
    assert!(like.changed);
    let (v, _) = ids(2, 2);
    cache
        .seed_user(v, &[(c, row(false, 4))], false)
        .await
        .expect("seed");
    assert_eq!(
        cache.states(v, &[c, other]).await.expect("states"),
        vec![Some(row(false, 4)), None]
    );
    assert_eq!(
        cache
            .apply(v, other, Action::Like, 9, None)
            .await
            .expect("apply"),
        None
    );
}

#[tokio::test]
async fn a_fill_never_overwrites_a_newer_cached_state() {
    let cache = MemoryStateCache::new(1_000);
    let (u, c) = ids(1, 2);
    cache
        .apply(u, c, Action::Like, 50, Some(None))
        .await
        .expect("apply")
        .expect("seeded");
    cache
        .seed_user(u, &[(c, row(false, 10))], true)
        .await
        .expect("seed");
    cache
        .seed_states(u, &[(c, Some(row(false, 10)))])
        .await
        .expect("seed");
    assert_eq!(
        cache.states(u, &[c]).await.expect("states"),
        vec![Some(row(true, 50))]
    );
}

#[tokio::test]
async fn revert_undoes_only_its_own_change() {
    let cache = MemoryStateCache::new(1_000);
    let (u, c) = ids(1, 2);
    cache.fill_count(c, 0).await.expect("fill");
    let first = cache
        .apply(u, c, Action::Like, 10, Some(None))
        .await
        .expect("apply")
        .expect("seeded");
    cache.revert(u, c, &first).await.expect("revert");
    assert_eq!(
        cache.states(u, &[c]).await.expect("states"),
        vec![Some(row(false, 0))]
    );
    assert_eq!(cache.counts(&[c]).await.expect("counts"), vec![Some(0)]);
    let like = cache
        .apply(u, c, Action::Like, 20, None)
        .await
        .expect("apply")
        .expect("warm");
    let _unlike = cache
        .apply(u, c, Action::Unlike, 30, None)
        .await
        .expect("apply")
        .expect("warm");
    cache
        .revert(u, c, &like)
        .await
        .expect("stale revert is a no-op");
    assert_eq!(
        cache.states(u, &[c]).await.expect("states")[0].map(|s| s.liked),
        Some(false)
    );
    assert_eq!(cache.counts(&[c]).await.expect("counts"), vec![Some(0)]);
}

#[tokio::test]
async fn users_past_their_share_forget_entries_and_completeness() {
    let cache = MemoryStateCache::new(1_000);
    let (u, _) = ids(1, 1);
    cache.seed_user(u, &[], true).await.expect("seed");
    for c in 1..=(MAX_STATES_PER_USER as u64 + 1) {
        let content = ContentId::new(c).expect("non-zero");
        cache
            .apply(u, content, Action::Like, c, None)
            .await
            .expect("apply")
            .expect("known");
    }
    let states = cache
        .states(
            u,
            &(1..=MAX_STATES_PER_USER as u64 + 1)
                .map(|c| ContentId::new(c).expect("id"))
                .collect::<Vec<_>>(),
        )
        .await
        .expect("states");
    assert!(
        states.iter().filter(|s| s.is_none()).count() > 0,
        "some entries were forgotten and are cold now"
    );
    assert!(
        states.iter().flatten().all(|s| s.liked),
        "nothing reads as a wrong state"
    );
}
