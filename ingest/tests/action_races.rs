//! Races on one (user, content) through the service, over generated schedules (issue 6, holes 2
//! and 3): concurrent likes and unlikes whose publishes are delayed and sometimes refused.
//!
//! What must hold (DESIGN section 7, I1, I3):
//! - every 2xx reports a durable state: the last-writer-wins state of some prefix of the durable
//!   log that is at least what was durable when the request began, and no more than what was
//!   durable when it was answered;
//! - once everything settles, the cache answers what the durable events say, and the count is
//!   the number of users the durable events leave liking the content;
//! - the store, fed the durable events, agrees (I1).

mod support;

use likes_shared::{Action, ContentId, LikeEvent, UserId};
use proptest::prelude::*;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use support::{lww_liked, Harness, PublishStep};

#[derive(Debug, Clone)]
struct Request {
    start_ms: u64,
    user: u64,
    content: u64,
    action: Action,
}

fn action(like: bool) -> Action {
    if like {
        Action::Like
    } else {
        Action::Unlike
    }
}

/// Two users on one content, within a few milliseconds.
fn request() -> impl Strategy<Value = Request> {
    (0u64..6, 1u64..=2, any::<bool>()).prop_map(|(start_ms, user, like)| Request {
        start_ms,
        user,
        content: CONTENT,
        action: action(like),
    })
}

/// Eight users on three contents, over 40 ms.
fn spread_request() -> impl Strategy<Value = Request> {
    (0u64..40, 1u64..=8, 1u64..=3, any::<bool>()).prop_map(|(start_ms, user, content, like)| {
        Request {
            start_ms,
            user,
            content,
            action: action(like),
        }
    })
}

fn publish_step() -> impl Strategy<Value = PublishStep> {
    (0u64..6, 0u32..4).prop_map(|(delay_ms, roll)| PublishStep {
        delay_ms,
        ok: roll != 0,
    })
}

const CONTENT: u64 = 9;

/// One runtime per case, on a paused clock: delays are exact and cost no real time.
fn paused_runtime() -> Result<tokio::runtime::Runtime, TestCaseError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .map_err(|e| TestCaseError::fail(e.to_string()))
}

/// What one request saw: the durable log's length when it began and when it was answered.
struct Answer {
    user: UserId,
    content: ContentId,
    liked: Option<bool>,
    durable_at_start: usize,
    durable_at_answer: usize,
}

/// Sends every request at its start time, concurrently; the answers once all are in.
async fn send_all(harness: &Arc<Harness>, requests: Vec<Request>) -> Vec<Answer> {
    let tasks: Vec<_> = requests
        .into_iter()
        .map(|r| {
            let harness = harness.clone();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(r.start_ms)).await;
                let user = UserId::new(r.user).expect("non-zero");
                let content = ContentId::new(r.content).expect("non-zero");
                let durable_at_start = harness.durable().len();
                let result = harness.service.act(user, content, r.action).await;
                Answer {
                    user,
                    content,
                    liked: result.ok().map(|o| o.liked),
                    durable_at_start,
                    durable_at_answer: harness.durable().len(),
                }
            })
        })
        .collect();
    let mut answers = Vec::new();
    for task in tasks {
        answers.push(task.await.expect("request task"));
    }
    answers
}

/// Whether `liked` is the state after some prefix, in version order, of the events durable at the
/// answer, a prefix that holds everything that was durable when the request began (the request
/// acts after those, so it cannot report a state they superseded).
fn backed_by_durable_prefix(
    at_start: &[LikeEvent],
    at_answer: &[LikeEvent],
    user: UserId,
    content: ContentId,
    liked: bool,
) -> bool {
    let mine = |e: &&LikeEvent| e.user_id == user && e.content_id == content;
    let seen = at_start.iter().filter(mine).map(|e| e.version).max();
    let mut history: Vec<&LikeEvent> = at_answer.iter().filter(mine).collect();
    history.sort_by_key(|e| e.version);
    let shortest = history
        .iter()
        .take_while(|e| seen.is_some_and(|v| e.version <= v))
        .count();
    (shortest..=history.len()).any(|k| {
        let state = k
            .checked_sub(1)
            .is_some_and(|last| history[last].action.liked());
        state == liked
    })
}

/// Every 2xx reported a state that a durable prefix says.
fn assert_answers_durable(answers: &[Answer], durable: &[LikeEvent]) -> Result<(), TestCaseError> {
    for a in answers {
        let Some(liked) = a.liked else { continue };
        prop_assert!(
            backed_by_durable_prefix(
                &durable[..a.durable_at_start],
                &durable[..a.durable_at_answer],
                a.user,
                a.content,
                liked,
            ),
            "user {} content {} was answered liked={liked}, which no durable prefix says (durable at start {}, at answer {}, in the end {:?})",
            a.user.get(),
            a.content.get(),
            a.durable_at_start,
            a.durable_at_answer,
            durable
                .iter()
                .map(|e| (e.user_id.get(), e.content_id.get(), e.action, e.version))
                .collect::<Vec<_>>()
        );
    }
    Ok(())
}

/// Once everything is durable and in the store: the cache's states and counts, and the stored
/// counts (I1), are what the durable events say.
async fn assert_settled(
    harness: &Harness,
    durable: &[LikeEvent],
    users: u64,
    contents: &[u64],
) -> Result<(), TestCaseError> {
    for c in contents {
        let content = ContentId::new(*c).expect("non-zero");
        let mut liking = 0;
        for u in 1..=users {
            let user = UserId::new(u).expect("non-zero");
            let want = lww_liked(durable, user, content);
            liking += i64::from(want);
            let got = harness.service.liked(user, &[content]).await;
            prop_assert_eq!(got.ok(), Some(vec![want]), "user {} content {}", u, c);
        }
        let count = harness.service.counts(&[content]).await;
        prop_assert_eq!(count.ok(), Some(vec![liking]), "cached count of {}", c);
        prop_assert_eq!(
            harness.stored_count(content).await,
            liking,
            "stored count of {}",
            c
        );
    }
    Ok(())
}

fn run_schedule(requests: Vec<Request>, steps: Vec<PublishStep>) -> Result<(), TestCaseError> {
    paused_runtime()?.block_on(async move {
        let harness = Arc::new(Harness::new(steps));
        let answers = send_all(&harness, requests).await;
        let durable = harness.durable();
        assert_answers_durable(&answers, &durable)?;
        harness.apply_durable_to_store().await;
        assert_settled(&harness, &durable, 2, &[CONTENT]).await
    })
}

/// Many users and contents on a cache far too small for them, while a sink applies the durable
/// events 15 ms late and only then reports them committed: the cache may forget only what the
/// store holds, so whatever it forgets and refills, it never answers or keeps a state the
/// durable events do not say.
fn run_under_pressure(
    requests: Vec<Request>,
    steps: Vec<PublishStep>,
) -> Result<(), TestCaseError> {
    paused_runtime()?.block_on(async move {
        let committed = Arc::new(AtomicU64::new(0));
        let harness = Arc::new(Harness::with_cache(steps, 16, committed.clone()));
        let sink = {
            let harness = harness.clone();
            let committed = committed.clone();
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(Duration::from_millis(15)).await;
                    let durable = harness.durable();
                    let done = committed.load(Ordering::Acquire) as usize;
                    harness.apply_to_store(&durable[done..]).await;
                    committed.store(durable.len() as u64, Ordering::Release);
                }
            })
        };
        let answers = send_all(&harness, requests).await;
        tokio::time::sleep(Duration::from_millis(10)).await;
        sink.abort();
        // The sink catches up: everything durable is in the store and reported committed, so
        // the cache may forget again (until then a full cache rightly answers 503).
        let durable = harness.durable();
        harness.apply_durable_to_store().await;
        committed.store(durable.len() as u64, Ordering::Release);
        assert_answers_durable(&answers, &durable)?;
        assert_settled(&harness, &durable, 8, &[1, 2, 3]).await
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn every_answer_reports_a_durable_state_and_the_cache_settles_on_the_durable_log(
        requests in prop::collection::vec(request(), 2..12),
        steps in prop::collection::vec(publish_step(), 12),
    ) {
        run_schedule(requests, steps)?;
    }

    #[test]
    fn a_tiny_cache_under_a_lagging_sink_forgets_only_what_the_store_holds(
        requests in prop::collection::vec(spread_request(), 4..40),
        steps in prop::collection::vec(publish_step(), 40),
    ) {
        run_under_pressure(requests, steps)?;
    }
}

/// A client that disconnects drops its request's future mid-publish; the event may still become
/// durable, and the cache must then know it (confirmed), or it would report the old state and
/// keep the entry waiting for a publish that nothing resolves.
#[tokio::test(start_paused = true)]
async fn a_request_dropped_mid_publish_still_settles_its_entry() {
    let harness = Arc::new(Harness::new(vec![PublishStep {
        delay_ms: 5,
        ok: true,
    }]));
    let user = UserId::new(1).expect("non-zero");
    let content = ContentId::new(CONTENT).expect("non-zero");
    let request = {
        let harness = harness.clone();
        tokio::spawn(async move { harness.service.act(user, content, Action::Like).await })
    };
    tokio::time::sleep(Duration::from_millis(1)).await;
    request.abort();
    assert!(
        request.await.is_err_and(|e| e.is_cancelled()),
        "the client went away"
    );
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert_eq!(harness.durable().len(), 1, "the publish completed");
    let liked = harness.service.liked(user, &[content]).await.ok();
    assert_eq!(
        liked,
        Some(vec![true]),
        "the durable like is what the cache reports"
    );
    let again = harness.service.act(user, content, Action::Like).await.ok();
    assert_eq!(again.map(|o| o.changed), Some(false));
    assert_eq!(
        harness.durable().len(),
        1,
        "a settled state is not published again"
    );
}
