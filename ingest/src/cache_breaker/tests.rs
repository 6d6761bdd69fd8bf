use super::*;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};

const UP: u8 = 0;
const DOWN: u8 = 1;
const FULL: u8 = 2;

/// A cache that answers, is down, or is full as the test says, and counts the calls it gets.
#[derive(Default)]
struct Scripted {
    mode: AtomicU8,
    calls: AtomicUsize,
    pings: AtomicUsize,
    /// The (liked, version) of each confirm it answered (a learn is one, by default).
    confirmed: Mutex<Vec<(bool, u64)>>,
}

impl Scripted {
    fn set(&self, mode: u8) {
        self.mode.store(mode, Ordering::SeqCst);
    }

    fn answer<T>(&self, value: T) -> Result<T, CacheError> {
        match self.mode.load(Ordering::SeqCst) {
            UP => Ok(value),
            FULL => Err(CacheError::Full),
            _ => Err(CacheError::Unavailable("scripted outage".into())),
        }
    }
}

#[async_trait]
impl StateCache for Scripted {
    fn fill_ticket(&self) -> FillTicket {
        FillTicket(0)
    }
    async fn apply(
        &self,
        _: UserId,
        _: ContentId,
        _: Action,
        _: u64,
    ) -> Result<Option<CachedApply>, CacheError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.answer(None)
    }
    async fn confirm(
        &self,
        _: UserId,
        _: ContentId,
        applied: &CachedApply,
        _: DurableMark,
    ) -> Result<(), CacheError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.answer(())?;
        self.confirmed.lock().push((applied.liked, applied.version));
        Ok(())
    }
    async fn revert(&self, _: UserId, _: ContentId, _: &CachedApply) -> Result<(), CacheError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.answer(())
    }
    async fn states(
        &self,
        _: UserId,
        contents: &[ContentId],
    ) -> Result<Vec<Option<RowState>>, CacheError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.answer(vec![None; contents.len()])
    }
    async fn is_filled(&self, _: UserId) -> Result<bool, CacheError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.answer(false)
    }
    async fn seed_user(
        &self,
        _: UserId,
        _: &[(ContentId, RowState)],
        _: bool,
        _: FillTicket,
    ) -> Result<bool, CacheError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.answer(true)
    }
    async fn seed_states(
        &self,
        _: UserId,
        _: &[(ContentId, Option<RowState>)],
        _: FillTicket,
    ) -> Result<bool, CacheError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.answer(true)
    }
    async fn counts(&self, contents: &[ContentId]) -> Result<Vec<Option<i64>>, CacheError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.answer(vec![Some(7); contents.len()])
    }
    async fn fill_count(
        &self,
        _: ContentId,
        stored: StoredCount,
        _: FillTicket,
    ) -> Result<Option<i64>, CacheError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.answer(Some(stored.count))
    }
    async fn ping(&self) -> Result<(), CacheError> {
        self.pings.fetch_add(1, Ordering::SeqCst);
        self.answer(())
    }
}

fn breaker() -> (Arc<Scripted>, BreakerCache) {
    let inner = Arc::new(Scripted::default());
    let config = BreakerConfig {
        failures_to_open: 3,
        cooldown_ms: 1_000,
        probe_timeout_ms: 100,
    };
    let metrics = BreakerMetrics::new().expect("metrics");
    (inner.clone(), BreakerCache::new(inner, config, metrics))
}

fn content() -> [ContentId; 1] {
    [ContentId::new(1).expect("non-zero")]
}

async fn counts(breaker: &BreakerCache) -> Result<Vec<Option<i64>>, CacheError> {
    breaker.counts(&content()).await
}

/// A confirm the cache did not answer (it went away between the apply and the confirm) is of an
/// event it missed: a Redis that comes back from a snapshot taken before the apply has lost the
/// state and its count move. So the event is learned before the next call goes through.
#[tokio::test(start_paused = true)]
async fn a_confirm_the_cache_did_not_answer_is_learned_before_the_next_call() {
    let (inner, breaker) = breaker();
    let user = UserId::new(3).expect("non-zero");
    let applied = CachedApply {
        liked: true,
        changed: true,
        version: 42,
        pending: false,
        count: Some(1),
        fill_epoch: 0,
    };
    inner.set(DOWN);
    assert!(breaker
        .confirm(user, content()[0], &applied, 1)
        .await
        .is_err());
    inner.set(UP);
    counts(&breaker).await.expect("counts");
    assert_eq!(
        *inner.confirmed.lock(),
        vec![(true, 42)],
        "the event the cache missed, learned"
    );
}

#[tokio::test(start_paused = true)]
async fn opens_after_n_consecutive_failures_and_then_fails_fast() {
    let (inner, breaker) = breaker();
    inner.set(DOWN);
    for n in 1..=2 {
        assert!(counts(&breaker).await.is_err());
        assert!(!breaker.is_open(), "open after {n} failures");
    }
    assert!(counts(&breaker).await.is_err());
    assert!(breaker.is_open(), "open after 3 failures");
    assert_eq!(inner.calls.load(Ordering::SeqCst), 3);
    inner.set(UP);
    for _ in 0..10 {
        let error = counts(&breaker).await.expect_err("fails fast while open");
        assert!(matches!(error, CacheError::Unavailable(_)), "{error}");
    }
    assert_eq!(
        inner.calls.load(Ordering::SeqCst),
        3,
        "the open breaker touched the cache"
    );
    assert_eq!(
        inner.pings.load(Ordering::SeqCst),
        0,
        "probed before the cooldown"
    );
    assert_eq!(breaker.metrics.opened.get(), 1);
    assert_eq!(breaker.metrics.rejected.get(), 10);
}

#[tokio::test(start_paused = true)]
async fn a_success_between_failures_resets_the_run() {
    let (inner, breaker) = breaker();
    for _ in 0..5 {
        inner.set(DOWN);
        assert!(counts(&breaker).await.is_err());
        assert!(counts(&breaker).await.is_err());
        inner.set(UP);
        assert_eq!(counts(&breaker).await.expect("answers"), vec![Some(7)]);
    }
    assert!(!breaker.is_open());
}

#[tokio::test(start_paused = true)]
async fn full_is_an_answer_and_never_opens_it() {
    let (inner, breaker) = breaker();
    inner.set(FULL);
    for _ in 0..20 {
        assert!(matches!(counts(&breaker).await, Err(CacheError::Full)));
    }
    assert!(!breaker.is_open());
    assert_eq!(inner.calls.load(Ordering::SeqCst), 20);
    // And it breaks a run of outages.
    inner.set(DOWN);
    assert!(counts(&breaker).await.is_err());
    assert!(counts(&breaker).await.is_err());
    inner.set(FULL);
    assert!(counts(&breaker).await.is_err());
    inner.set(DOWN);
    assert!(counts(&breaker).await.is_err());
    assert!(!breaker.is_open(), "Full counted as a failure");
}

#[tokio::test(start_paused = true)]
async fn probes_after_the_cooldown_and_closes_when_the_cache_answers() {
    let (inner, breaker) = breaker();
    inner.set(DOWN);
    for _ in 0..3 {
        assert!(counts(&breaker).await.is_err());
    }
    assert!(breaker.is_open());
    tokio::time::advance(Duration::from_millis(1_001)).await;
    // Still down: the probe fails, the call is refused, and it stays open for a new cooldown.
    assert!(counts(&breaker).await.is_err());
    assert_eq!(inner.pings.load(Ordering::SeqCst), 1);
    assert_eq!(
        inner.calls.load(Ordering::SeqCst),
        3,
        "a failed probe let the call through"
    );
    assert!(breaker.is_open());
    inner.set(UP);
    assert!(
        counts(&breaker).await.is_err(),
        "probed again before the new cooldown"
    );
    assert_eq!(inner.pings.load(Ordering::SeqCst), 1);
    tokio::time::advance(Duration::from_millis(1_001)).await;
    assert_eq!(counts(&breaker).await.expect("closed"), vec![Some(7)]);
    assert_eq!(inner.pings.load(Ordering::SeqCst), 2);
    assert!(!breaker.is_open());
    assert_eq!(breaker.metrics.open.get(), 0);
    assert_eq!(counts(&breaker).await.expect("closed"), vec![Some(7)]);
    assert_eq!(inner.pings.load(Ordering::SeqCst), 2, "probed while closed");
}

/// A cache whose ping never answers (a hung Redis).
struct Hung;

#[async_trait]
impl StateCache for Hung {
    fn fill_ticket(&self) -> FillTicket {
        FillTicket(0)
    }
    async fn apply(
        &self,
        _: UserId,
        _: ContentId,
        _: Action,
        _: u64,
    ) -> Result<Option<CachedApply>, CacheError> {
        Err(CacheError::Unavailable("timed out".into()))
    }
    async fn confirm(
        &self,
        _: UserId,
        _: ContentId,
        _: &CachedApply,
        _: DurableMark,
    ) -> Result<(), CacheError> {
        Err(CacheError::Unavailable("timed out".into()))
    }
    async fn revert(&self, _: UserId, _: ContentId, _: &CachedApply) -> Result<(), CacheError> {
        Err(CacheError::Unavailable("timed out".into()))
    }
    async fn states(
        &self,
        _: UserId,
        _: &[ContentId],
    ) -> Result<Vec<Option<RowState>>, CacheError> {
        Err(CacheError::Unavailable("timed out".into()))
    }
    async fn is_filled(&self, _: UserId) -> Result<bool, CacheError> {
        Err(CacheError::Unavailable("timed out".into()))
    }
    async fn seed_user(
        &self,
        _: UserId,
        _: &[(ContentId, RowState)],
        _: bool,
        _: FillTicket,
    ) -> Result<bool, CacheError> {
        Err(CacheError::Unavailable("timed out".into()))
    }
    async fn seed_states(
        &self,
        _: UserId,
        _: &[(ContentId, Option<RowState>)],
        _: FillTicket,
    ) -> Result<bool, CacheError> {
        Err(CacheError::Unavailable("timed out".into()))
    }
    async fn counts(&self, _: &[ContentId]) -> Result<Vec<Option<i64>>, CacheError> {
        Err(CacheError::Unavailable("timed out".into()))
    }
    async fn fill_count(
        &self,
        _: ContentId,
        _: StoredCount,
        _: FillTicket,
    ) -> Result<Option<i64>, CacheError> {
        Err(CacheError::Unavailable("timed out".into()))
    }
    async fn ping(&self) -> Result<(), CacheError> {
        futures::future::pending().await
    }
}

#[tokio::test(start_paused = true)]
async fn a_hung_probe_times_out_and_a_dropped_probe_does_not_wedge_the_breaker() {
    let metrics = BreakerMetrics::new().expect("metrics");
    let config = BreakerConfig {
        failures_to_open: 1,
        cooldown_ms: 1_000,
        probe_timeout_ms: 100,
    };
    let breaker = BreakerCache::new(Arc::new(Hung), config, metrics);
    assert!(counts(&breaker).await.is_err());
    assert!(breaker.is_open());
    tokio::time::advance(Duration::from_millis(1_001)).await;
    // A caller that gives up mid-probe: the next one probes at once (the cooldown is over).
    let dropped = tokio::time::timeout(Duration::from_millis(10), counts(&breaker)).await;
    assert!(dropped.is_err(), "the probe answered before its timeout");
    let started = Instant::now();
    assert!(counts(&breaker).await.is_err());
    assert_eq!(
        started.elapsed(),
        Duration::from_millis(100),
        "the probe waited for its own timeout"
    );
    assert!(breaker.is_open());
}
