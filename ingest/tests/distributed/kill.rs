//! I3 across a crash of the real binary: likes spooled while Pulsar is down survive `kill -9`,
//! a restart while Pulsar stays down fails naming it (the spool stays on disk), and one while
//! Pulsar is starting waits for it and drains the spool; SIGTERM then stops it with exit 0.

use super::support::{exclusive, token, Stack};
use likes_smoke::services;
use serde_json::Value;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Ingest {
    child: Child,
    base: String,
}

impl Ingest {
    /// Started with how long it may wait for Pulsar at start (`LIKES_PULSAR_START_WAIT_MS`);
    /// its standard error is kept in `data_dir/stderr`.
    fn start(stack: &Stack, data_dir: &Path, port: u16, pulsar_wait: Duration) -> Ingest {
        let c = &stack.config;
        let stderr = std::fs::File::create(data_dir.join("stderr")).expect("stderr file");
        let child = Command::new(env!("CARGO_BIN_EXE_likes-ingest"))
            .env(
                "LIKES_PULSAR_START_WAIT_MS",
                pulsar_wait.as_millis().to_string(),
            )
            .env("LIKES_HTTP_ADDR", format!("127.0.0.1:{port}"))
            .env("LIKES_DATA_DIR", data_dir)
            .env("LIKES_REDIS_URL", &c.redis_url)
            .env("LIKES_PULSAR_URL", &c.pulsar_url)
            .env("LIKES_PULSAR_ADMIN_URL", &c.pulsar_admin_url)
            .env("LIKES_PULSAR__TOPIC", &c.pulsar.topic)
            .env("LIKES_PULSAR__PARTITIONS", c.pulsar.partitions.to_string())
            .env("LIKES_DATABASE_URL", &c.database_url)
            .env("LIKES_AUTH__JWT_SECRET", &c.ingest.auth.jwt_secret)
            .env("LIKES_RATE__PER_USER_BURST", "100000")
            .env("LIKES_RATE__PER_IP_BURST", "100000")
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("start likes-ingest");
        Ingest {
            child,
            base: format!("http://127.0.0.1:{port}"),
        }
    }

    /// `/readyz` once it answers at all.
    async fn readyz(&mut self) -> Value {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(response) = reqwest::get(format!("{}/readyz", self.base)).await {
                return response.json().await.expect("JSON");
            }
            assert!(
                self.child.try_wait().expect("wait").is_none(),
                "likes-ingest exited"
            );
            assert!(Instant::now() < deadline, "likes-ingest did not come up");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Ingest {
    /// Its exit status, once it exits on its own within `within`.
    async fn exited_within(&mut self, within: Duration) -> std::process::ExitStatus {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status;
            }
            assert!(Instant::now() < deadline, "still running after {within:?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for Ingest {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn likes_spooled_before_a_kill_9_are_drained_by_the_next_process() {
    const LIKES: u64 = 30;
    let _exclusive = exclusive().await;
    let stack = Stack::new().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let mut first = Ingest::start(&stack, dir.path(), port, Duration::from_secs(30));
    first.readyz().await;
    services("stop", "pulsar");
    let (user, content) = (
        rand::random::<u64>() >> 20 | 1,
        rand::random::<u64>() >> 20 | 1,
    );
    let client = reqwest::Client::new();
    for i in 0..LIKES {
        let response = client
            .put(format!("{}/v1/contents/{}/like", first.base, content + i))
            .bearer_auth(token(user))
            .send()
            .await
            .expect("like");
        assert_eq!(
            response.status().as_u16(),
            200,
            "like {i} while Pulsar is down"
        );
    }
    let depth = first.readyz().await["spool_depth"].as_u64();
    assert_eq!(depth, Some(LIKES), "every like is in the spool");
    first.child.kill().expect("kill -9");
    first.child.wait().expect("reaped");
    // Restarted while Pulsar stays down: past its wait, a one-line error naming the setting and
    // a non-zero exit (DESIGN 11); the spool stays on disk for the next start.
    let mut refused = Ingest::start(&stack, dir.path(), port, Duration::from_millis(1_500));
    let status = refused.exited_within(Duration::from_secs(30)).await;
    assert!(!status.success(), "{status:?}");
    let stderr = std::fs::read_to_string(dir.path().join("stderr")).expect("stderr");
    assert!(
        stderr.lines().last().unwrap_or("").contains("LIKES_PULSAR"),
        "the last line names the setting: {stderr}"
    );
    // Restarted while Pulsar is starting: it waits for Pulsar, then drains the spool.
    let starting = std::thread::spawn(|| services("start", "pulsar"));
    let mut second = Ingest::start(&stack, dir.path(), port, Duration::from_secs(120));
    starting.join().expect("pulsar started");
    let deadline = Instant::now() + Duration::from_secs(90);
    while second.readyz().await["spool_depth"].as_u64() != Some(0) {
        assert!(
            Instant::now() < deadline,
            "the spool did not drain after the restart"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let events = stack.events().await;
    for i in 0..LIKES {
        assert!(
            events.iter().any(|e| e.user_id.get() == user
                && e.content_id.get() == content + i
                && e.action.liked()),
            "like {i} answered 200 before the kill is not on the topic"
        );
    }
    let pid = second.child.id().to_string();
    let term = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill -TERM");
    assert!(term.success());
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = second.child.try_wait().expect("wait") {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "SIGTERM did not stop likes-ingest"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(status.code(), Some(0), "SIGTERM exits 0");
}
