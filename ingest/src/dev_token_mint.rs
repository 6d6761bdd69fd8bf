//! What bounds the dev-token endpoint (the loopback demo): it names only the demo's users
//! (`1..=auth.dev_token_max_user_id`) and mints at most `auth.dev_tokens_per_sec` tokens a second
//! across the process. Without both, a local loop could mint tokens for ever more users, each one
//! a new entry in the caches (issue 13 measured memory growing without levelling off).

use crate::config::AuthConfig;
use crate::error::ApiError;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use likes_shared::UserId;
use std::num::NonZeroU32;

pub struct DevTokenMint {
    ttl_secs: u64,
    max_user_id: u64,
    mints: DefaultDirectRateLimiter,
    clock: DefaultClock,
}

impl DevTokenMint {
    pub fn new(config: &AuthConfig) -> Self {
        let per_sec = NonZeroU32::new(config.dev_tokens_per_sec).unwrap_or(NonZeroU32::MIN);
        DevTokenMint {
            ttl_secs: config.dev_token_ttl_secs,
            max_user_id: config.dev_token_max_user_id,
            // A burst of one second's worth: the demo's first few tokens come at once.
            mints: RateLimiter::direct(Quota::per_second(per_sec)),
            clock: DefaultClock::default(),
        }
    }

    /// The lifetime of a token for `user`, once `user` is a demo user and the bucket has a token
    /// (400 and 429 otherwise; a refused user takes nothing from the bucket).
    pub fn admit(&self, user: UserId) -> Result<u64, ApiError> {
        if user.get() > self.max_user_id {
            return Err(ApiError::bad_request(format!(
                "dev tokens are for user ids 1 to {} (auth.dev_token_max_user_id)",
                self.max_user_id
            )));
        }
        self.mints
            .check()
            .map_err(|not_until| ApiError::RateLimited {
                message: "dev tokens are minted at most auth.dev_tokens_per_sec a second".into(),
                retry_after: not_until.wait_time_from(self.clock.now()),
            })?;
        Ok(self.ttl_secs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(n: u64) -> UserId {
        UserId::new(n).expect("non-zero")
    }

    #[test]
    fn only_demo_users_and_only_a_bucket_full() {
        let config = AuthConfig {
            dev_tokens_per_sec: 2,
            dev_token_max_user_id: 10,
            ..AuthConfig::default()
        };
        let mint = DevTokenMint::new(&config);
        assert!(matches!(mint.admit(user(11)), Err(ApiError::BadRequest(_))));
        assert_eq!(mint.admit(user(10)).ok(), Some(config.dev_token_ttl_secs));
        assert!(mint.admit(user(1)).is_ok());
        assert!(matches!(
            mint.admit(user(2)),
            Err(ApiError::RateLimited { .. })
        ));
    }
}
