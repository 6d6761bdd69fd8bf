//! Admission control (I7): governor token buckets per user and per client IP, and a bound on the
//! requests in flight. Each refusal says when to come back (429 + Retry-After).
//!
//! Keyed limiters remember every key they saw; a housekeeping tick drops the keys whose buckets
//! are full again, so memory follows the active users, not all users ever.

use crate::client_addr::ClientKey;
use crate::config::RateLimitConfig;
use crate::error::ApiError;
use crate::metrics::RateLimitMetrics;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use likes_shared::UserId;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

pub struct Admission {
    per_user: DefaultKeyedRateLimiter<u64>,
    per_client: DefaultKeyedRateLimiter<ClientKey>,
    in_flight: Arc<Semaphore>,
    clock: DefaultClock,
    rejected: RateLimitMetrics,
}

fn quota(per_sec: u32, burst: u32) -> Quota {
    let rate = NonZeroU32::new(per_sec.max(1)).unwrap_or(NonZeroU32::MIN);
    let burst = NonZeroU32::new(burst.max(per_sec).max(1)).unwrap_or(NonZeroU32::MIN);
    Quota::per_second(rate).allow_burst(burst)
}

impl Admission {
    pub fn new(config: &RateLimitConfig, rejected: RateLimitMetrics) -> Self {
        Admission {
            per_user: RateLimiter::keyed(quota(config.per_user_per_sec, config.per_user_burst)),
            per_client: RateLimiter::keyed(quota(config.per_ip_per_sec, config.per_ip_burst)),
            in_flight: Arc::new(Semaphore::new(config.max_in_flight.max(1))),
            clock: DefaultClock::default(),
            rejected,
        }
    }

    /// Holds one in-flight slot for as long as the permit lives.
    pub fn enter(&self) -> Result<OwnedSemaphorePermit, ApiError> {
        self.in_flight.clone().try_acquire_owned().map_err(|_| {
            self.rejected.in_flight.inc();
            ApiError::RateLimited {
                message: "server is at its in-flight request limit".into(),
                retry_after: Duration::from_secs(1),
            }
        })
    }

    /// The per-IP bucket (`rate.per_ip_*`), keyed per IPv4 address or IPv6 /64.
    pub fn check_client(&self, client: ClientKey) -> Result<(), ApiError> {
        self.per_client.check_key(&client).map_err(|not_until| {
            self.rejected.client.inc();
            ApiError::RateLimited {
                message: "too many requests from this address".into(),
                retry_after: not_until.wait_time_from(self.clock.now()),
            }
        })
    }

    pub fn check_user(&self, user: UserId) -> Result<(), ApiError> {
        self.per_user.check_key(&user.get()).map_err(|not_until| {
            self.rejected.user.inc();
            ApiError::RateLimited {
                message: "too many requests for this user".into(),
                retry_after: not_until.wait_time_from(self.clock.now()),
            }
        })
    }

    /// Forgets keys whose buckets have refilled; call periodically.
    pub fn housekeeping(&self) {
        self.per_user.retain_recent();
        self.per_user.shrink_to_fit();
        self.per_client.retain_recent();
        self.per_client.shrink_to_fit();
    }

    pub fn tracked_keys(&self) -> usize {
        self.per_user.len() + self.per_client.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_user_past_the_burst_is_limited_with_a_retry_after_and_others_are_not() {
        let admission = Admission::new(
            &RateLimitConfig {
                per_user_per_sec: 1,
                per_user_burst: 3,
                ..RateLimitConfig::default()
            },
            RateLimitMetrics::new().expect("metrics"),
        );
        let a = UserId::new(1).expect("non-zero");
        let b = UserId::new(2).expect("non-zero");
        for _ in 0..3 {
            admission.check_user(a).expect("within burst");
        }
        match admission.check_user(a) {
            Err(ApiError::RateLimited { retry_after, .. }) => {
                assert!(retry_after <= Duration::from_secs(1))
            }
            other => panic!("expected a limit, got {other:?}"),
        }
        admission.check_user(b).expect("another user is unaffected");
        assert_eq!(admission.rejected.user.get(), 1, "the refusal is counted");
    }

    #[test]
    fn in_flight_slots_are_bounded_and_returned() {
        let admission = Admission::new(
            &RateLimitConfig {
                max_in_flight: 2,
                ..RateLimitConfig::default()
            },
            RateLimitMetrics::new().expect("metrics"),
        );
        let first = admission.enter().expect("slot");
        let _second = admission.enter().expect("slot");
        assert!(admission.enter().is_err());
        assert_eq!(
            admission.rejected.in_flight.get(),
            1,
            "the refusal is counted"
        );
        drop(first);
        let _third = admission.enter().expect("slot freed");
    }
}
