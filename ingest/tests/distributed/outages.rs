//! Outages of the real services under load (issue 7), through `infra/dev/services stop/start`:
//! an outage keeps data, ports and env, so the same ingest sees its dependency come back.
//! Every test of this binary holds [`support::exclusive`], so an outage never hits another test.

use super::load::{Answer, Load};
use super::support::{exclusive, Stack};
use likes_shared::LikeEvent;
use likes_smoke::services;
use serde_json::Value;
use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The spool depth `/readyz` reports, if it answers.
async fn spool_depth(base: &str) -> Option<u64> {
    let ready: Value = reqwest::get(format!("{base}/readyz"))
        .await
        .ok()?
        .json()
        .await
        .ok()?;
    ready["spool_depth"].as_u64()
}

/// Polls `/readyz` until the spool is empty.
async fn spool_drained(base: &str, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let depth = spool_depth(base).await;
        if depth == Some(0) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the spool did not drain: depth {depth:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A distinct transition on the topic: its version, state, and where it first appears.
type Transition = (u64, bool, usize);

/// Every change answered 2xx is on the topic, and one content's changes are there in the order
/// they were answered (one answered before the other was sent).
fn assert_on_the_topic_in_order(answers: &[Answer], events: &[LikeEvent]) {
    // Per (user, content): the distinct transitions on the topic in topic order, with the
    // position of their first appearance.
    let mut transitions: HashMap<(u64, u64), Vec<Transition>> = HashMap::new();
    for (position, e) in events.iter().enumerate() {
        let list = transitions
            .entry((e.user_id.get(), e.content_id.get()))
            .or_default();
        if !list.iter().any(|(v, _, _)| *v == e.version) {
            list.push((e.version, e.action.liked(), position));
        }
    }
    let mut changes: HashMap<(u64, u64), Vec<&Answer>> = HashMap::new();
    for a in answers.iter().filter(|a| a.status == 200 && a.changed) {
        changes.entry((a.user, a.content)).or_default().push(a);
    }
    // Every pair short of transitions, reported together: whether they cluster in time says
    // more than one of them.
    let short: Vec<String> = changes
        .iter()
        .filter_map(|(pair, answered)| {
            let on_topic = sorted_transitions(&transitions, *pair);
            (on_topic.len() < answered.len()).then(|| {
                format!(
                    "{pair:?}: {} changes answered, {} on the topic\n{}",
                    answered.len(),
                    on_topic.len(),
                    pair_timeline(*pair, answers, &on_topic)
                )
            })
        })
        .collect();
    assert!(
        short.is_empty(),
        "{} pairs have fewer transitions on the topic than changes answered:\n{}",
        short.len(),
        short.join("\n")
    );
    // The k-th change of a pair (its requests never overlap) is its k-th transition.
    let mut placed: Vec<(&Answer, usize)> = Vec::new();
    for (pair, answered) in &changes {
        let on_topic = sorted_transitions(&transitions, *pair);
        let mut answered = answered.clone();
        answered.sort_unstable_by_key(|a| a.answered);
        // Changes Redis applied but whose answer was lost (a timeout) may sit between them;
        // match each answer to the first later transition with its state.
        let mut next = 0;
        for a in answered {
            let liked = a.liked.expect("a 200 says liked");
            let found = on_topic[next..]
                .iter()
                .position(|(_, l, _)| *l == liked)
                .unwrap_or_else(|| panic!("{pair:?}: an answered change is not on the topic"));
            placed.push((a, on_topic[next + found].2));
            next += found + 1;
        }
    }
    let mut by_content: HashMap<u64, Vec<(&Answer, usize)>> = HashMap::new();
    for (a, position) in placed {
        by_content.entry(a.content).or_default().push((a, position));
    }
    for (content, list) in by_content {
        for (a, pa) in &list {
            for (b, pb) in &list {
                if a.answered < b.sent {
                    assert!(
                        pa < pb,
                        "content {content}: a change answered earlier is later on the topic"
                    );
                }
            }
        }
    }
}

fn sorted_transitions(
    transitions: &HashMap<(u64, u64), Vec<Transition>>,
    pair: (u64, u64),
) -> Vec<Transition> {
    let mut on_topic = transitions.get(&pair).cloned().unwrap_or_default();
    on_topic.sort_unstable_by_key(|(v, _, _)| *v);
    on_topic
}

/// Everything one pair went through, on one clock (ms since the first request): each answer
/// (status, state, changed/stale, sent..answered) and each transition on the topic (its
/// version's wall-clock milliseconds, state, position).
fn pair_timeline(pair: (u64, u64), answers: &[Answer], on_topic: &[Transition]) -> String {
    let first = answers.iter().map(|a| a.sent).min().expect("answers");
    let first_ms = SystemTime::now()
        .checked_sub(first.elapsed())
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_millis() as i64);
    let ms = |at: Instant| (at - first).as_millis();
    let mut lines: Vec<String> = answers
        .iter()
        .filter(|a| (a.user, a.content) == pair)
        .map(|a| {
            format!(
                "  answer {} liked={:?} changed={} stale={} {}..{}ms",
                a.status,
                a.liked,
                a.changed,
                a.stale,
                ms(a.sent),
                ms(a.answered)
            )
        })
        .collect();
    for (version, liked, position) in on_topic {
        let at = (version >> 16) as i64 - first_ms;
        lines.push(format!(
            "  topic v{version} (~{at}ms) liked={liked} at #{position}"
        ));
    }
    lines.join("\n")
}

/// Every action answered 2xx that published (a change, or any action answered without Redis)
/// is on the topic: per (user, content) and state, at least as many distinct versions as
/// answers.
fn assert_every_published_answer_on_the_topic(answers: &[Answer], events: &[LikeEvent]) {
    let mut on_topic: HashMap<(u64, u64, bool), Vec<u64>> = HashMap::new();
    for e in events {
        let versions = on_topic
            .entry((e.user_id.get(), e.content_id.get(), e.action.liked()))
            .or_default();
        if !versions.contains(&e.version) {
            versions.push(e.version);
        }
    }
    let mut answered: HashMap<(u64, u64, bool), usize> = HashMap::new();
    for a in answers
        .iter()
        .filter(|a| a.status == 200 && (a.changed || a.stale))
    {
        *answered
            .entry((a.user, a.content, a.liked.expect("a 200 says liked")))
            .or_default() += 1;
    }
    for (key, n) in answered {
        let found = on_topic.get(&key).map_or(0, Vec::len);
        assert!(
            found >= n,
            "{key:?}: {n} answered 2xx, {found} on the topic"
        );
    }
}

fn assert_only_503s(answers: &[Answer]) {
    let bad: Vec<u16> = answers
        .iter()
        .map(|a| a.status)
        .filter(|s| *s != 200 && *s != 503)
        .collect();
    assert!(bad.is_empty(), "answers other than 200 and 503: {bad:?}");
}

/// A stack with one ingest under [`Load`]; `outage` runs two seconds into the load, which
/// stops once `outage` returns. The answers and every event on the topic.
async fn under_load<F, Fut>(outage: F) -> (Vec<Answer>, Vec<LikeEvent>)
where
    F: FnOnce(String) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    // Ingest's and pulsar-rs's warnings, in the output of a test that fails.
    let _ = tracing_subscriber::fmt()
        .with_env_filter("warn")
        .with_test_writer()
        .try_init();
    let mut stack = Stack::new().await;
    let ingest = stack.start_ingest().await;
    let base = format!("http://{}", ingest.addr);
    let load = Load::start(
        &base,
        rand::random::<u64>() >> 20 | 1,
        rand::random::<u64>() >> 20 | 1,
        8,
        5,
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    outage(base.clone()).await;
    let answers = load.finish().await;
    // A live send that fails after the drain spools its event again and answers after the
    // fsync: that event reaches the topic only once the drainer has it acked.
    let left = spool_depth(&base).await;
    if left != Some(0) {
        eprintln!("spool depth when the load stopped: {left:?}");
    }
    spool_drained(&base, Duration::from_secs(90)).await;
    let events = stack.events().await;
    ingest.stop().await;
    assert_only_503s(&answers);
    (answers, events)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pulsar_stopped_for_20s_under_load_loses_nothing_and_keeps_each_contents_order() {
    let _exclusive = exclusive().await;
    let window = std::sync::Arc::new(parking_lot::Mutex::new(None));
    let (answers, events) = under_load(|base| {
        let window = window.clone();
        async move {
            services("stop", "pulsar");
            let outage = Instant::now();
            tokio::time::sleep(Duration::from_secs(20)).await;
            services("start", "pulsar");
            *window.lock() = Some((outage, Instant::now()));
            spool_drained(&base, Duration::from_secs(90)).await;
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    })
    .await;
    let (outage, back) = window.lock().expect("the outage ran");
    let during = answers
        .iter()
        .filter(|a| a.status == 200 && a.changed && a.sent > outage && a.answered < back)
        .count();
    assert!(
        during > 0,
        "no change was answered while Pulsar was down: nothing was spooled"
    );
    let first = answers.iter().map(|a| a.sent).min().expect("answers");
    eprintln!(
        "Pulsar stopped at {}ms, started again at {}ms",
        (outage - first).as_millis(),
        (back - first).as_millis()
    );
    assert_on_the_topic_in_order(&answers, &events);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_stopped_for_10s_under_load_answers_200_or_503_and_every_change_is_on_the_topic() {
    let _exclusive = exclusive().await;
    let (answers, events) = under_load(|_| async {
        services("stop", "redis");
        tokio::time::sleep(Duration::from_secs(10)).await;
        services("start", "redis");
        tokio::time::sleep(Duration::from_secs(3)).await;
    })
    .await;
    assert!(
        answers.iter().any(|a| a.status == 200 && a.stale),
        "nothing was answered without Redis: the outage did not happen under load"
    );
    // Without Redis nothing orders one (user, content)'s actions across the outage (the sink
    // orders them by version): what is checked is that nothing answered 2xx is missing.
    assert_every_published_answer_on_the_topic(&answers, &events);
}
