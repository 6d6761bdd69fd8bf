//! The cache under memory pressure while the store lags (issue 6, hole 1; DESIGN section 7,
//! "forget only what the store holds"): a tiny cache and windows that stay open, so nothing is in
//! the store yet. A user's pending like must not be forgotten: were it refilled from the store
//! (which has no row), their unlike would look like a no-op, and the like would win later.

mod support;

use likes::EmbeddedConfig;
use reqwest::Method;
use support::{spawn_embedded, spawn_in, TestApp};

const A: u64 = 1;
const X: u64 = 7;
const OTHERS: usize = 400;

/// Users the embedded cache keeps in the same shard as `user`: it shards by the top bits of a
/// multiplicative hash, `(id * 0x9E3779B97F4A7C15) >> (64 - bits)`, with at most 64 shards, so
/// ids agreeing in the top six bits share a shard whatever the shard count. Pressure aimed at
/// one shard reaches A's entry for sure instead of by chance.
fn shard_mates(user: u64, n: usize) -> Vec<u64> {
    let shard = |id: u64| id.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 58;
    (2..).filter(|u| shard(*u) == shard(user)).take(n).collect()
}

fn tiny_cache_open_windows(config: &mut EmbeddedConfig) {
    config.cache_capacity = 64;
    config.window_max_age_ms = 3_600_000;
    config.window_max_events = 1_000_000;
    config.ingest.rate.per_ip_burst = 100_000;
    config.ingest.rate.per_ip_per_sec = 100_000;
}

/// Likes content `1000 + u` as user `u`; `Some(true)` for 200, `Some(false)` for a 503 (the
/// cache is full of what the store does not hold yet), anything else fails the test.
async fn other_user_likes(app: &TestApp, u: u64) -> bool {
    let path = format!("/v1/contents/{}/like", 1_000 + u);
    let response = app.send(app.request(Method::PUT, &path, Some(u))).await;
    let status = response.status().as_u16();
    let retry_after = response.headers().contains_key("retry-after");
    let body: serde_json::Value = response.json().await.expect("JSON body");
    match status {
        200 => true,
        503 => {
            assert!(retry_after, "a 503 says when to come back");
            assert!(body["error"]["message"].is_string(), "{body}");
            false
        }
        other => panic!("user {u}: unexpected {other}: {body}"),
    }
}

#[tokio::test]
async fn a_pending_like_survives_cache_pressure_and_its_unlike_wins() {
    let app = spawn_embedded(tiny_cache_open_windows).await;
    let liked = app.like(A, X).await;
    assert_eq!(
        (liked["liked"].clone(), liked["count"].clone()),
        (true.into(), 1.into())
    );

    let mut answered = Vec::new();
    for u in shard_mates(A, OTHERS) {
        if other_user_likes(&app, u).await {
            answered.push(u);
        }
    }

    assert!(
        !answered.is_empty() && answered.len() < OTHERS,
        "the cache was under real pressure: {} of {OTHERS} answered 200",
        answered.len()
    );

    let unliked = app.unlike(A, X).await;
    assert_eq!(unliked["liked"], false, "{unliked}");
    assert_eq!(
        unliked["changed"], true,
        "the like was still known: {unliked}"
    );
    assert_eq!(unliked["count"], 0, "{unliked}");

    // Stopping commits the open window; the restart reads everything from the store.
    let dir = app.stop_keeping_data().await;
    // The restart replays whatever the stop left unacked, so its windows must close by themselves.
    let app = spawn_in(dir, |config| {
        tiny_cache_open_windows(config);
        config.window_max_age_ms = 5;
    })
    .await;
    let x = app
        .json(
            app.request(Method::GET, &format!("/v1/contents/{X}"), Some(A)),
            200,
        )
        .await;
    assert_eq!(
        (x["liked"].clone(), x["count"].clone()),
        (false.into(), 0.into()),
        "{x}"
    );
    assert_eq!(
        app.count_mismatches().await,
        0,
        "stored counts equal liked rows"
    );
    // Every like answered 200 under pressure is durable and counted once.
    for u in answered.iter().copied().take(200) {
        let body = app
            .json(
                app.request(Method::GET, &format!("/v1/contents/{}", 1_000 + u), Some(u)),
                200,
            )
            .await;
        assert_eq!(
            (body["liked"].clone(), body["count"].clone()),
            (true.into(), 1.into()),
            "user {u}: {body}"
        );
    }
    app.stop().await;
}
