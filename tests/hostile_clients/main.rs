//! Hostile clients (issue 13) on both backends, over loopback with raw sockets where a well-behaved
//! client library would not send what a hostile one does: slow and idle connections, ambiguous
//! identity, dev-token abuse. Every wait is bounded, so a regression fails instead of hanging.

#[path = "../support/mod.rs"]
mod support;

mod dev_tokens;
mod fd_limit;
mod identity;
mod malformed;
mod memory;
mod raw;
mod slow_clients;

/// Waits (30 s at most) until the binary at `base` answers `/healthz` with 2xx.
async fn wait_healthy(base: &str) {
    let client = reqwest::Client::new();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let health = client.get(format!("{base}/healthz")).send().await;
        if health.is_ok_and(|r| r.status().is_success()) {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "likes did not become healthy"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}
