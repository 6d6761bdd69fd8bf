//! Shared by the MySQL store tests: apply a window as the worker would.

use likes_shared::retry::Backoff;
use likes_shared::store::{LikeChange, LikeStore, StoreError};
use likes_sink::MySqlStore;
use std::sync::atomic::{AtomicU64, Ordering};

/// Applies with the worker's policy: transient errors are retried (counted in `retries`),
/// a permanent one fails the test (a conflict or an outage must never look like bad data).
pub async fn apply_retrying(store: &MySqlStore, window: &[LikeChange], retries: &AtomicU64) {
    let backoff = Backoff {
        initial_ms: 5,
        max_ms: 200,
    };
    for attempt in 0..200 {
        match store.apply_window(window).await {
            Ok(_) => return,
            Err(StoreError::Transient(_) | StoreError::Conflict(_)) => {
                retries.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(backoff.delay(attempt)).await;
            }
            Err(e @ StoreError::Permanent(_)) => panic!("a window was refused: {e}"),
        }
    }
    panic!("no commit after 200 attempts");
}
