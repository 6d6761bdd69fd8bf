//! I3 on the real binary: every like answered 2xx survives `kill -9` and is counted exactly once;
//! SIGTERM commits what is held before the process exits; a damaged log tail does not keep it from
//! starting.

use likes_shared::store::LikeStore;
use likes_shared::{ContentId, UserId};
use likes_sink::{SqliteConfig, SqliteStore};
use reqwest::{Client, Method};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// One `likes` process on a data dir, and a client for it.
struct Running {
    child: Child,
    base: String,
    client: Client,
}

impl Running {
    /// `hold_windows`: windows never close by themselves, so nothing reaches the store while it
    /// runs, and whatever is there later came from the log or from a graceful stop.
    async fn start(dir: &Path, hold_windows: bool) -> Running {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let mut command = Command::new(env!("CARGO_BIN_EXE_likes"));
        if hold_windows {
            command
                .env("LIKES_WINDOW_MAX_AGE_MS", "3600000")
                .env("LIKES_WINDOW_MAX_EVENTS", "1000000");
        }
        let child = command
            .env("LIKES_HTTP_ADDR", format!("127.0.0.1:{port}"))
            .env("LIKES_DATA_DIR", dir)
            .env("LIKES_RATE__PER_USER_BURST", "1000")
            // Its users' tokens come from the dev endpoint, faster than the demo's default rate.
            .env("LIKES_AUTH__DEV_TOKENS_PER_SEC", "1000")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .spawn()
            .expect("start likes");
        let running = Running {
            child,
            base: format!("http://127.0.0.1:{port}"),
            client: Client::new(),
        };
        running.wait_healthy().await;
        running
    }

    async fn wait_healthy(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(r) = self
                .client
                .get(format!("{}/healthz", self.base))
                .send()
                .await
            {
                if r.status().is_success() {
                    return;
                }
            }
            assert!(Instant::now() < deadline, "likes did not become healthy");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn token(&self, user: u64) -> String {
        let body: serde_json::Value = self
            .client
            .post(format!("{}/v1/dev/token", self.base))
            .json(&serde_json::json!({ "user_id": user }))
            .send()
            .await
            .expect("token request")
            .json()
            .await
            .expect("token json");
        body["token"].as_str().expect("token").to_string()
    }

    /// Like or unlike; asserts a 2xx.
    async fn act(&self, method: Method, token: &str, content: u64) {
        let url = format!("{}/v1/contents/{content}/like", self.base);
        let r = self
            .client
            .request(method, url)
            .bearer_auth(token)
            .send()
            .await
            .expect("request");
        assert!(r.status().is_success(), "{}", r.status());
    }

    async fn count(&self, content: u64) -> serde_json::Value {
        let url = format!("{}/v1/contents/{content}", self.base);
        let body: serde_json::Value = self
            .client
            .get(url)
            .send()
            .await
            .expect("get")
            .json()
            .await
            .expect("json");
        body["count"].clone()
    }

    fn kill_9(mut self) {
        self.child.kill().expect("kill -9");
        self.child.wait().expect("reaped");
    }
}

impl Drop for Running {
    /// A failing assertion must not leave the server running (it would also hold the test's
    /// output pipe open); after `kill_9` or a clean exit this finds nothing left to kill.
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn open_store(dir: &Path) -> SqliteStore {
    SqliteConfig {
        path: dir.join("likes.db"),
        ..SqliteConfig::default()
    }
    .build()
    .await
    .expect("open store")
}

fn ids(range: std::ops::RangeInclusive<u64>) -> Vec<ContentId> {
    range.map(|c| ContentId::new(c).expect("id")).collect()
}

#[tokio::test]
async fn acknowledged_likes_survive_kill_9_and_count_once() {
    const USERS: u64 = 40;
    const CONTENTS: u64 = 8;
    let dir = tempfile::tempdir().expect("tempdir");
    let likes = Running::start(dir.path(), true).await;

    // Every user likes a pseudo-random subset and unlikes some back; all answered 2xx.
    let mut expected = vec![0i64; CONTENTS as usize + 1];
    let mut acknowledged = Vec::new();
    for user in 1..=USERS {
        let token = likes.token(user).await;
        for content in 1..=CONTENTS {
            if (user * 7 + content * 3) % 5 < 2 {
                continue;
            }
            likes.act(Method::PUT, &token, content).await;
            if (user + content) % 4 == 0 {
                likes.act(Method::DELETE, &token, content).await;
                continue;
            }
            expected[content as usize] += 1;
            acknowledged.push((user, content));
        }
    }
    // No grace period, and every window still open.
    likes.kill_9();
    let before = open_store(dir.path())
        .await
        .counts(&ids(1..=CONTENTS))
        .await
        .expect("counts");
    assert_eq!(
        before,
        vec![0; CONTENTS as usize],
        "nothing was committed before the kill"
    );

    let likes = Running::start(dir.path(), false).await;
    for content in 1..=CONTENTS {
        assert_eq!(
            likes.count(content).await,
            expected[content as usize],
            "count of {content} after restart"
        );
    }
    likes.kill_9();

    let store = open_store(dir.path()).await;
    assert_eq!(store.count_mismatches().await.expect("I1"), vec![]);
    assert_eq!(
        store.counts(&ids(1..=CONTENTS)).await.expect("counts"),
        expected[1..].to_vec()
    );
    for (user, content) in acknowledged {
        let state = store
            .states(UserId::new(user).expect("id"), &ids(content..=content))
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
    let mut likes = Running::start(dir.path(), true).await;
    for user in 1..=20u64 {
        let token = likes.token(user).await;
        likes.act(Method::PUT, &token, 3).await;
    }
    let pid = likes.child.id().to_string();
    let status = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill -TERM");
    assert!(status.success());
    let exit = likes.child.wait().expect("exit");
    assert!(exit.success(), "graceful exit, got {exit}");
    let counts = open_store(dir.path())
        .await
        .counts(&ids(3..=3))
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

#[tokio::test]
async fn the_binary_serves_after_a_crash_left_a_damaged_log_tail() {
    const LIKES: u64 = 10;
    const CONTENT: u64 = 9;
    let dir = tempfile::tempdir().expect("tempdir");
    let log = likes_shared::log::LogConfig {
        dir: dir.path().join("log"),
        ..likes_shared::log::LogConfig::default()
    };
    {
        let (publisher, _source) = likes_shared::log::open(&log).expect("open the log");
        for user in 1..=LIKES {
            let like = likes_shared::LikeEvent {
                event_id: u128::from(user),
                user_id: UserId::new(user).expect("id"),
                content_id: ContentId::new(CONTENT).expect("id"),
                action: likes_shared::Action::Like,
                version: user,
                ts_ms: user,
                source: "crash-test".into(),
                fill_epoch: 0,
            };
            publisher.append(like.encode()).await.expect("durable");
        }
        // Intact but unreadable by this build (schema version 9).
        publisher.append(vec![9; 60]).await.expect("durable");
    }
    // Wait for the writer thread to let go of the log, then leave a zero-filled tail as a crash
    // after a file's size reached the disk before its data does.
    drop(likes_shared::log::open(&log).expect("reopen"));
    let segment = log.dir.join(format!("{:020}.seg", 0));
    let mut bytes = std::fs::read(&segment).expect("segment");
    bytes.extend_from_slice(&[0; 4096]);
    std::fs::write(&segment, bytes).expect("damage the tail");

    let likes = Running::start(dir.path(), false).await; // asserts it binds and answers
    assert_eq!(
        likes.count(CONTENT).await,
        LIKES,
        "every fsynced like applied once"
    );
    likes.kill_9();
    let letters =
        std::fs::read_to_string(dir.path().join("dead-letters.jsonl")).expect("dead letters");
    assert_eq!(
        letters.lines().count(),
        1,
        "the unreadable record: {letters}"
    );
}
