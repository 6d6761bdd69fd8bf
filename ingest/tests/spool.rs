//! The spool in front of the primary publisher (DESIGN section 8), against a scripted primary
//! that can be switched between working, down (`Unavailable`), overloaded (`Full`) and hung, and
//! that records every event it acked, in the order it acked them.

use async_trait::async_trait;
use likes_ingest::metrics::SpoolMetrics;
use likes_ingest::spool::{SpoolConfig, SpooledPublisher};
use likes_shared::bus::{BusError, DurableMark, EventPublisher};
use likes_shared::event::Action;
use likes_shared::retry::Backoff;
use likes_shared::shutdown::{self, ShutdownTrigger};
use likes_shared::{ContentId, LikeEvent, UserId};
use parking_lot::Mutex;
use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinHandle;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Up,
    Down,
    Full,
    /// Acks this many more publishes, then never answers again.
    HangAfter(usize),
}

struct ScriptedPrimary {
    mode: Mutex<Mode>,
    acked: Mutex<Vec<LikeEvent>>,
    refused: AtomicUsize,
    /// Acked publishes answer after a few yields, so the drainer really has several in flight.
    yields: usize,
}

impl ScriptedPrimary {
    fn new(mode: Mode) -> Arc<Self> {
        Arc::new(ScriptedPrimary {
            mode: Mutex::new(mode),
            acked: Mutex::default(),
            refused: AtomicUsize::new(0),
            yields: 3,
        })
    }

    fn set(&self, mode: Mode) {
        *self.mode.lock() = mode;
    }

    fn acked(&self) -> Vec<LikeEvent> {
        self.acked.lock().clone()
    }
}

#[async_trait]
impl EventPublisher for ScriptedPrimary {
    async fn publish(&self, event: &LikeEvent) -> Result<DurableMark, BusError> {
        // The decision and the record are taken together, so `acked` is the order of acks.
        let mark = {
            let mut mode = self.mode.lock();
            match *mode {
                Mode::Down => None,
                Mode::Full => return Err(BusError::Full),
                Mode::HangAfter(0) => Some(None),
                Mode::HangAfter(n) => {
                    *mode = Mode::HangAfter(n - 1);
                    Some(Some(()))
                }
                Mode::Up => Some(Some(())),
            }
        };
        match mark {
            None => {
                self.refused.fetch_add(1, Ordering::Relaxed);
                Err(BusError::Unavailable("scripted outage".into()))
            }
            Some(None) => std::future::pending().await,
            Some(Some(())) => {
                let n = {
                    let mut acked = self.acked.lock();
                    acked.push(event.clone());
                    acked.len() as u64
                };
                for _ in 0..self.yields {
                    tokio::task::yield_now().await;
                }
                Ok(n)
            }
        }
    }

    fn is_ready(&self) -> bool {
        *self.mode.lock() == Mode::Up
    }
}

fn config(dir: &Path) -> SpoolConfig {
    SpoolConfig {
        dir: dir.to_path_buf(),
        drain_in_flight: 16,
        retry: Backoff {
            initial_ms: 1,
            max_ms: 10,
        },
        ..SpoolConfig::default()
    }
}

fn event(content: u64, n: u64) -> LikeEvent {
    LikeEvent {
        event_id: (u128::from(content) << 64) | u128::from(n),
        user_id: UserId::new(n + 1).expect("user id"),
        content_id: ContentId::new(content).expect("content id"),
        action: if n.is_multiple_of(2) {
            Action::Like
        } else {
            Action::Unlike
        },
        version: n + 1,
        ts_ms: 1_700_000_000_000 + n,
        source: "spool-test".into(),
        fill_epoch: 0,
    }
}

struct Opened {
    spool: Arc<SpooledPublisher>,
    drainer: JoinHandle<Result<(), likes_ingest::spool::SpoolError>>,
    trigger: ShutdownTrigger,
}

fn open(primary: &Arc<ScriptedPrimary>, config: SpoolConfig) -> Opened {
    open_counting(primary, config, SpoolMetrics::new().expect("metrics"))
}

fn open_counting(
    primary: &Arc<ScriptedPrimary>,
    config: SpoolConfig,
    metrics: SpoolMetrics,
) -> Opened {
    let (trigger, shutdown) = shutdown::channel();
    let (spool, drainer) =
        SpooledPublisher::open_with_metrics(primary.clone(), config, shutdown, metrics)
            .expect("spool opens");
    Opened {
        spool: Arc::new(spool),
        drainer,
        trigger,
    }
}

/// Waits (bounded, so a broken drainer fails the test instead of hanging it) until `done`.
async fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !done() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting until {what}"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// Per content, the acked events in ack order, each kept at its *last* ack. A spooled event
/// acked again by an in-order retry appears twice on the topic (harmless: the sink keeps the
/// highest version); its last ack is the one the drain confirmed in order.
fn per_content_last_acks(acked: &[LikeEvent]) -> HashMap<u64, Vec<u128>> {
    let mut last: HashMap<u128, usize> = HashMap::new();
    for (i, e) in acked.iter().enumerate() {
        last.insert(e.event_id, i);
    }
    let mut out: HashMap<u64, Vec<u128>> = HashMap::new();
    for (i, e) in acked.iter().enumerate() {
        if last[&e.event_id] == i {
            out.entry(e.content_id.get()).or_default().push(e.event_id);
        }
    }
    out
}

fn ids(events: &[LikeEvent]) -> Vec<u128> {
    events.iter().map(|e| e.event_id).collect()
}

#[tokio::test]
async fn with_the_primary_up_events_go_to_it_and_the_spool_stays_empty() {
    let dir = tempfile::tempdir().expect("tempdir");
    let primary = ScriptedPrimary::new(Mode::Up);
    let opened = open(&primary, config(dir.path()));
    let events: Vec<_> = (0..20).map(|n| event(7, n)).collect();
    let mut last_mark = 0;
    for e in &events {
        let mark = opened.spool.publish(e).await.expect("published");
        assert!(mark >= last_mark, "marks never decrease");
        last_mark = mark;
    }
    assert_eq!(ids(&primary.acked()), ids(&events));
    assert_eq!(opened.spool.depth(), 0);
    assert!(!opened.spool.is_spooling());
    assert!(opened.spool.is_ready());
}

#[tokio::test]
async fn while_the_primary_is_down_events_are_spooled_then_drained_in_order() {
    let dir = tempfile::tempdir().expect("tempdir");
    let primary = ScriptedPrimary::new(Mode::Down);
    let opened = open(&primary, config(dir.path()));
    let spooled: Vec<_> = (0..50).map(|n| event(1 + n % 3, n)).collect();
    for (i, e) in spooled.iter().enumerate() {
        opened.spool.publish(e).await.expect("spooled");
        // Depth counts durable records only (the log's durable offset moves after the fsync),
        // so an Ok already stands for the event on disk.
        assert_eq!(opened.spool.depth(), i as u64 + 1);
    }
    assert!(primary.acked().is_empty());
    assert!(opened.spool.is_spooling());
    assert!(opened.spool.is_ready(), "the spool has room");

    primary.set(Mode::Up);
    wait_until("the spool drained", || !opened.spool.is_spooling()).await;
    assert_eq!(opened.spool.depth(), 0);
    assert_eq!(ids(&primary.acked()), ids(&spooled));

    // Live again: the next publish is acked by the primary itself, and nothing is spooled.
    let live = event(9, 1_000);
    opened.spool.publish(&live).await.expect("published");
    assert_eq!(
        primary.acked().last().map(|e| e.event_id),
        Some(live.event_id)
    );
    assert_eq!(opened.spool.depth(), 0);
    assert!(!opened.spool.is_spooling());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_contents_events_keep_their_order_across_an_outage_and_its_drain() {
    const CONTENTS: u64 = 4;
    const PER_CONTENT: u64 = 300;
    let dir = tempfile::tempdir().expect("tempdir");
    let primary = ScriptedPrimary::new(Mode::Up);
    let opened = open(&primary, config(dir.path()));
    let answered = Arc::new(AtomicUsize::new(0));

    // The outage script, by how many publishes have been answered: down at 200, back at 500
    // (mid-drain, with publishes still arriving), down again at 650, back at 750. The writer
    // whose answer reaches a mark flips the primary, so the script runs whatever the timing.
    let script = |answered: usize| match answered {
        200 | 650 => Some(Mode::Down),
        500 | 750 => Some(Mode::Up),
        _ => None,
    };
    let writers: Vec<_> = (1..=CONTENTS)
        .map(|content| {
            let (spool, answered, primary) =
                (opened.spool.clone(), answered.clone(), primary.clone());
            tokio::spawn(async move {
                let mut published = Vec::new();
                for n in 0..PER_CONTENT {
                    let e = event(content, n);
                    spool.publish(&e).await.expect("durable");
                    published.push(e.event_id);
                    if let Some(mode) = script(answered.fetch_add(1, Ordering::AcqRel) + 1) {
                        primary.set(mode);
                    }
                }
                (content, published)
            })
        })
        .collect();
    let mut published = HashMap::new();
    for writer in writers {
        let (content, ids) = writer.await.expect("writer");
        published.insert(content, ids);
    }
    wait_until("the spool drained", || {
        opened.spool.depth() == 0 && !opened.spool.is_spooling()
    })
    .await;

    assert!(
        primary.refused.load(Ordering::Relaxed) > 0,
        "the outage happened"
    );
    let acked = per_content_last_acks(&primary.acked());
    for content in 1..=CONTENTS {
        assert_eq!(
            acked.get(&content),
            published.get(&content),
            "content {content}: every answered event is on the topic, in publish order"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn publishing_goes_live_again_while_publishes_keep_arriving() {
    let dir = tempfile::tempdir().expect("tempdir");
    let primary = ScriptedPrimary::new(Mode::Down);
    let opened = open(&primary, config(dir.path()));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let answered = Arc::new(AtomicUsize::new(0));
    let writers: Vec<_> = (1..=8)
        .map(|content| {
            let (spool, stop, answered) = (opened.spool.clone(), stop.clone(), answered.clone());
            tokio::spawn(async move {
                let mut published = Vec::new();
                let mut n = 0;
                while !stop.load(Ordering::Acquire) {
                    let e = event(content, n);
                    spool.publish(&e).await.expect("durable");
                    answered.fetch_add(1, Ordering::AcqRel);
                    published.push(e.event_id);
                    n += 1;
                }
                (content, published)
            })
        })
        .collect();
    wait_until("events spooled", || answered.load(Ordering::Acquire) >= 100).await;
    assert!(opened.spool.is_spooling());
    primary.set(Mode::Up);
    // Under steady load an append is almost always under way: the switch back must not wait
    // for a quiet moment that never comes.
    wait_until("publishing is live under load", || {
        !opened.spool.is_spooling()
    })
    .await;
    let live_from = answered.load(Ordering::Acquire);
    wait_until("live publishes answered", || {
        answered.load(Ordering::Acquire) >= live_from + 100
    })
    .await;
    stop.store(true, Ordering::Release);
    let mut published = HashMap::new();
    for writer in writers {
        let (content, ids) = writer.await.expect("writer");
        published.insert(content, ids);
    }
    assert_eq!(opened.spool.depth(), 0);
    let acked = per_content_last_acks(&primary.acked());
    for content in 1..=8 {
        assert_eq!(
            acked.get(&content),
            published.get(&content),
            "content {content}"
        );
    }
}

#[tokio::test]
async fn a_full_spool_refuses_with_full() {
    let dir = tempfile::tempdir().expect("tempdir");
    let primary = ScriptedPrimary::new(Mode::Down);
    let metrics = SpoolMetrics::new().expect("metrics");
    let opened = open_counting(
        &primary,
        SpoolConfig {
            max_bytes: 1_000,
            ..config(dir.path())
        },
        metrics.clone(),
    );
    assert_eq!(metrics.max_bytes.get(), 1_000);
    assert_eq!(metrics.bytes.get(), 0);
    let mut spooled = 0;
    let refusal = loop {
        match opened.spool.publish(&event(3, spooled)).await {
            Ok(_) => spooled += 1,
            Err(error) => break error,
        }
        assert!(spooled < 10_000, "the spool never filled");
    };
    assert!(matches!(refusal, BusError::Full), "got {refusal:?}");
    assert!(spooled > 0);
    assert_eq!(opened.spool.depth(), spooled);
    // What an alert compares: the spool's bytes have reached its budget.
    assert!(metrics.bytes.get() >= 1_000, "{}", metrics.bytes.get());
    assert_eq!(metrics.depth.get(), spooled as i64);

    // Once the primary is back the spool drains, and its room comes back with it.
    primary.set(Mode::Up);
    wait_until("the spool drained", || !opened.spool.is_spooling()).await;
    assert_eq!(primary.acked().len() as u64, spooled);
    primary.set(Mode::Down);
    opened
        .spool
        .publish(&event(3, 99_999))
        .await
        .expect("the drained spool takes events again");
    assert_eq!(opened.spool.depth(), 1);
}

#[tokio::test]
async fn an_overloaded_primary_is_answered_with_full_and_nothing_is_spooled() {
    let dir = tempfile::tempdir().expect("tempdir");
    let primary = ScriptedPrimary::new(Mode::Full);
    let opened = open(&primary, config(dir.path()));
    let refusal = opened.spool.publish(&event(4, 1)).await;
    assert!(matches!(refusal, Err(BusError::Full)), "got {refusal:?}");
    assert_eq!(opened.spool.depth(), 0);
    assert!(!opened.spool.is_spooling());
    primary.set(Mode::Up);
    opened.spool.publish(&event(4, 2)).await.expect("published");
    assert_eq!(ids(&primary.acked()), vec![event(4, 2).event_id]);
}

#[tokio::test]
async fn after_a_crash_with_a_non_empty_spool_the_next_start_drains_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let down = ScriptedPrimary::new(Mode::Down);
    let crashed = open(&down, config(dir.path()));
    let spooled: Vec<_> = (0..30).map(|n| event(5 + n % 2, n)).collect();
    for e in &spooled {
        crashed.spool.publish(e).await.expect("spooled");
    }
    // kill -9: no shutdown, no drain; the drainer just stops where it is.
    crashed.drainer.abort();
    let _ = crashed.drainer.await;
    drop(crashed.spool);
    drop(crashed.trigger);

    let up = ScriptedPrimary::new(Mode::Up);
    let restarted = open(&up, config(dir.path()));
    wait_until("the old spool drained", || !restarted.spool.is_spooling()).await;
    assert_eq!(ids(&up.acked()), ids(&spooled));
    assert_eq!(restarted.spool.depth(), 0);
    assert!(down.acked().is_empty());
}

#[tokio::test]
async fn shutdown_mid_drain_stops_the_drainer_and_the_rest_drains_on_the_next_start() {
    let dir = tempfile::tempdir().expect("tempdir");
    let first = ScriptedPrimary::new(Mode::Down);
    let opened = open(&first, config(dir.path()));
    let spooled: Vec<_> = (0..60).map(|n| event(8, n)).collect();
    for e in &spooled {
        opened.spool.publish(e).await.expect("spooled");
    }
    // The primary comes back, acks ten, then hangs with publishes in flight.
    first.set(Mode::HangAfter(10));
    wait_until("ten drained", || first.acked().len() == 10).await;
    opened.trigger.trigger();
    let stopped = tokio::time::timeout(Duration::from_secs(20), opened.drainer)
        .await
        .expect("the drainer stops on shutdown even with publishes hanging");
    stopped
        .expect("drainer task")
        .expect("drainer stops cleanly");
    assert!(opened.spool.depth() > 0, "the hung rest is still spooled");
    drop(opened.spool);

    let second = ScriptedPrimary::new(Mode::Up);
    let restarted = open(&second, config(dir.path()));
    wait_until("the rest drained", || !restarted.spool.is_spooling()).await;
    // Everything is on the topic; what the first primary acked may come again (at-least-once),
    // but what the second one gets is still in order and ends with the last event.
    let mut all = ids(&first.acked());
    all.extend(ids(&second.acked()));
    for e in &spooled {
        assert!(all.contains(&e.event_id), "event {} lost", e.event_id);
    }
    let again = ids(&second.acked());
    let from = spooled.len() - again.len();
    assert!(
        from <= 10,
        "only what the first primary acked may be skipped"
    );
    assert_eq!(again, ids(&spooled[from..]));
}
