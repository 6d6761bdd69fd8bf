//! I3 on the real binary: every like answered 2xx survives `kill -9` and is counted exactly once.

use likes_shared::store::LikeStore;
use likes_shared::{ContentId, UserId};
use likes_sink::SqliteConfig;
use reqwest::Client;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr").port()
}

/// `hold_windows`: windows never close by themselves, so nothing reaches the store before the
/// kill and everything after the restart must come from the log.
fn start(dir: &std::path::Path, port: u16, hold_windows: bool) -> Child {
    let mut command = Command::new(env!("CARGO_BIN_EXE_likes"));
    if hold_windows {
        command
            .env("LIKES_WINDOW_MAX_AGE_MS", "3600000")
            .env("LIKES_WINDOW_MAX_EVENTS", "1000000");
    }
    command
        .env("LIKES_HTTP_ADDR", format!("127.0.0.1:{port}"))
        .env("LIKES_DATA_DIR", dir)
        .env("LIKES_RATE__PER_USER_BURST", "1000")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .expect("start likes")
}

async fn wait_healthy(client: &Client, base: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(r) = client.get(format!("{base}/healthz")).send().await {
            if r.status().is_success() {
                return;
            }
        }
        assert!(Instant::now() < deadline, "likes did not become healthy");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn token(client: &Client, base: &str, user: u64) -> String {
    let body: serde_json::Value = client
        .post(format!("{base}/v1/dev/token"))
        .json(&serde_json::json!({ "user_id": user }))
        .send()
        .await
        .expect("token request")
        .json()
        .await
        .expect("token json");
    body["token"].as_str().expect("token").to_string()
}

#[tokio::test]
async fn acknowledged_likes_survive_kill_9_and_count_once() {
    const USERS: u64 = 40;
    const CONTENTS: u64 = 8;
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let client = Client::new();
    let mut child = start(dir.path(), port, true);
    wait_healthy(&client, &base).await;

    // Every user likes a pseudo-random subset; unlikes some back. Only 2xx answers are counted.
    let mut expected = vec![0i64; CONTENTS as usize + 1];
    let mut acknowledged = Vec::new();
    for user in 1..=USERS {
        let token = token(&client, &base, user).await;
        for content in 1..=CONTENTS {
            if (user * 7 + content * 3) % 5 < 2 {
                continue;
            }
            let url = format!("{base}/v1/contents/{content}/like");
            let r = client
                .put(&url)
                .bearer_auth(&token)
                .send()
                .await
                .expect("like");
            assert!(r.status().is_success(), "{}", r.status());
            if (user + content) % 4 == 0 {
                let r = client
                    .delete(&url)
                    .bearer_auth(&token)
                    .send()
                    .await
                    .expect("unlike");
                assert!(r.status().is_success());
                continue;
            }
            expected[content as usize] += 1;
            acknowledged.push((user, content));
        }
    }
    // No grace period: the kill lands while windows are still open.
    child.kill().expect("kill -9");
    child.wait().expect("reaped");
    let open_store = || async {
        SqliteConfig {
            path: dir.path().join("likes.db"),
            ..SqliteConfig::default()
        }
        .build()
        .await
        .expect("open store")
    };
    let ids: Vec<ContentId> = (1..=CONTENTS)
        .map(|c| ContentId::new(c).expect("id"))
        .collect();
    let before = open_store().await.counts(&ids).await.expect("counts");
    assert_eq!(
        before,
        vec![0; CONTENTS as usize],
        "nothing was committed before the kill"
    );

    let mut child = start(dir.path(), port, false);
    wait_healthy(&client, &base).await;
    for content in 1..=CONTENTS {
        let body: serde_json::Value = client
            .get(format!("{base}/v1/contents/{content}"))
            .send()
            .await
            .expect("get")
            .json()
            .await
            .expect("json");
        assert_eq!(
            body["count"], expected[content as usize],
            "count of content {content} after restart"
        );
    }
    child.kill().expect("kill");
    child.wait().expect("reaped");

    let store = open_store().await;
    assert_eq!(store.count_mismatches().await.expect("I1"), vec![]);
    let counts = store.counts(&ids).await.expect("counts");
    assert_eq!(counts, expected[1..].to_vec());
    for (user, content) in acknowledged {
        let state = store
            .states(
                UserId::new(user).expect("id"),
                &[ContentId::new(content).expect("id")],
            )
            .await
            .expect("state");
        assert!(
            state[0].is_some_and(|s| s.liked),
            "like ({user}, {content}) lost"
        );
    }
}

#[tokio::test]
async fn sigterm_commits_the_open_window_before_exiting() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let client = Client::new();
    let mut child = start(dir.path(), port, true);
    wait_healthy(&client, &base).await;
    for user in 1..=20u64 {
        let token = token(&client, &base, user).await;
        let r = client
            .put(format!("{base}/v1/contents/3/like"))
            .bearer_auth(&token)
            .send()
            .await
            .expect("like");
        assert!(r.status().is_success());
    }
    let status = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status()
        .expect("kill -TERM");
    assert!(status.success());
    let exit = child.wait().expect("exit");
    assert!(exit.success(), "graceful exit, got {exit}");
    let store = SqliteConfig {
        path: dir.path().join("likes.db"),
        ..SqliteConfig::default()
    }
    .build()
    .await
    .expect("open store");
    let counts = store
        .counts(&[ContentId::new(3).expect("id")])
        .await
        .expect("counts");
    assert_eq!(
        counts,
        vec![20],
        "the held window was committed at shutdown, no restart needed"
    );
    let acked = std::fs::read_to_string(dir.path().join("log/consumer.offset")).expect("offset");
    assert_eq!(acked.trim(), "20", "and acked, so nothing is replayed");
}
