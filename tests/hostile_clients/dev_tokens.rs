//! Dev tokens (the loopback demo, embedded only): a global bucket bounds how fast they are minted
//! and they name only the demo's users, so a local loop cannot create users without end.

use crate::support::spawn_embedded;
use serde_json::json;
use std::time::Instant;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dev_tokens_are_rate_limited_and_name_only_demo_users() {
    let (per_sec, max_user) = (3, 100);
    let t = spawn_embedded(|c| {
        c.ingest.auth.dev_tokens_per_sec = per_sec;
        c.ingest.auth.dev_token_max_user_id = max_user;
    })
    .await;
    let mint = |user: u64| {
        t.client
            .post(format!("{}/v1/dev/token", t.base))
            .json(&json!({ "user_id": user }))
    };
    let started = Instant::now();
    t.error(mint(max_user + 1), 400, "bad_request").await;
    let mut minted = 0u64;
    for user in 1..=20 {
        let response = t.send(mint(user)).await;
        let status = response.status().as_u16();
        let body: serde_json::Value = response.json().await.expect("a JSON body");
        match status {
            200 => minted += 1,
            429 => assert_eq!(body["error"]["code"], "rate_limited", "{body}"),
            other => panic!("{other}: {body}"),
        }
    }
    // The bucket holds `per_sec` and refills `per_sec` a second (one more for rounding).
    let allowed = u64::from(per_sec) * (2 + started.elapsed().as_secs());
    assert!(
        minted <= allowed,
        "{minted} tokens minted in {:?}",
        started.elapsed()
    );
    assert!(minted >= 1, "the first mint must pass");
    t.stop().await;
}
