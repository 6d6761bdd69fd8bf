//! `/readyz` without a store connection per call. The last probe of bus, cache and store is
//! reused while it is fresh, and callers that arrive while a probe runs wait for its result
//! instead of starting their own (single flight): a flood of readiness checks costs one probe
//! per [`ReadinessProbe::FRESH_FOR`], however many arrive at once.

use crate::service::Backends;
use std::time::Duration;
use tokio::sync::Mutex;
use tokio::time::{timeout, Instant};

/// What one probe found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Readiness {
    pub bus: bool,
    pub cache: bool,
    pub store: bool,
    /// Events in the local spool waiting for the bus ([`EventPublisher::spool_depth`]); a
    /// report, not a condition: a spool with room still takes events durably.
    ///
    /// [`EventPublisher::spool_depth`]: likes_shared::bus::EventPublisher::spool_depth
    pub spool_depth: Option<u64>,
}

impl Readiness {
    /// Bus and store. The cache is reported but not required: without it ingest still answers,
    /// degraded and marked stale (DESIGN section 8), and an instance taken out of rotation for a
    /// Redis outage that every instance shares would turn a degradation into an outage.
    pub fn is_ready(&self) -> bool {
        self.bus && self.store
    }
}

pub struct ReadinessProbe {
    backends: Backends,
    fresh_for: Duration,
    ping_timeout: Duration,
    /// The last probe and when it started. A tokio mutex, held across the probe on purpose:
    /// that is the single flight (later callers queue on it, then find the fresh result).
    last: Mutex<Option<(Instant, Readiness)>>,
}

impl ReadinessProbe {
    /// How long a probe's result answers `/readyz`.
    pub const FRESH_FOR: Duration = Duration::from_secs(1);
    /// A ping that has not answered by then counts as down: a hung dependency must show as
    /// not ready, not hang the readiness check (and every caller queued behind it).
    pub const PING_TIMEOUT: Duration = Duration::from_secs(2);

    pub fn new(backends: Backends, fresh_for: Duration, ping_timeout: Duration) -> Self {
        ReadinessProbe {
            backends,
            fresh_for,
            ping_timeout,
            last: Mutex::new(None),
        }
    }

    /// The last result while fresh, else a new probe's.
    pub async fn check(&self) -> Readiness {
        let mut last = self.last.lock().await;
        if let Some((started, readiness)) = *last {
            if started.elapsed() < self.fresh_for {
                return readiness;
            }
        }
        let started = Instant::now();
        let readiness = self.probe().await;
        *last = Some((started, readiness));
        readiness
    }

    async fn probe(&self) -> Readiness {
        let (cache, store) = tokio::join!(
            timeout(self.ping_timeout, self.backends.cache.ping()),
            timeout(self.ping_timeout, self.backends.store.ping()),
        );
        Readiness {
            bus: self.backends.publisher.is_ready(),
            cache: matches!(cache, Ok(Ok(()))),
            store: matches!(store, Ok(Ok(()))),
            spool_depth: self.backends.publisher.spool_depth(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stub_backends::{backends_with_store, PingOnlyStore};
    use std::sync::Arc;

    fn probe_over(
        store: &Arc<PingOnlyStore>,
        fresh_for: Duration,
        ping_timeout: Duration,
    ) -> ReadinessProbe {
        ReadinessProbe::new(backends_with_store(store.clone()), fresh_for, ping_timeout)
    }

    #[tokio::test]
    async fn a_stale_result_is_probed_again() {
        let store = Arc::new(PingOnlyStore::default());
        let probe = probe_over(&store, Duration::ZERO, ReadinessProbe::PING_TIMEOUT);
        assert!(probe.check().await.is_ready());
        assert!(probe.check().await.is_ready());
        assert_eq!(store.pings(), 2);
    }

    #[tokio::test]
    async fn a_fresh_result_is_reused() {
        let store = Arc::new(PingOnlyStore::default());
        let probe = probe_over(
            &store,
            Duration::from_secs(3600),
            ReadinessProbe::PING_TIMEOUT,
        );
        for _ in 0..5 {
            assert!(probe.check().await.is_ready());
        }
        assert_eq!(store.pings(), 1);
    }

    #[tokio::test]
    async fn a_store_that_does_not_answer_in_time_is_not_ready() {
        let store = Arc::new(PingOnlyStore::with_ping_delay(Duration::from_secs(3600)));
        let probe = probe_over(&store, ReadinessProbe::FRESH_FOR, Duration::from_millis(20));
        let readiness = probe.check().await;
        assert_eq!(
            readiness,
            Readiness {
                bus: true,
                cache: true,
                store: false,
                spool_depth: None,
            }
        );
        assert!(!readiness.is_ready());
    }

    #[cfg(feature = "redis")]
    #[tokio::test]
    async fn a_cache_that_is_down_is_reported_but_still_ready() {
        use crate::redis_cache::{RedisCacheConfig, RedisStateCache};
        let store = Arc::new(PingOnlyStore::default());
        let mut backends = backends_with_store(store);
        // Port 1 on loopback: refused, as a killed Redis.
        let cache = RedisStateCache::new(
            "redis://127.0.0.1:1/",
            RedisCacheConfig::default(),
            Arc::new(std::sync::atomic::AtomicU64::new(0)),
        )
        .expect("a valid URL");
        backends.cache = Arc::new(cache);
        let probe = ReadinessProbe::new(backends, Duration::ZERO, ReadinessProbe::PING_TIMEOUT);
        let readiness = probe.check().await;
        assert!(!readiness.cache, "{readiness:?}");
        assert!(readiness.is_ready(), "{readiness:?}");
    }
}
