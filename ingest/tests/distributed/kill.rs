//! I3 across a crash of the real binary: likes spooled while Pulsar is down survive `kill -9`,
//! and the process restarted while Pulsar is still down serves from the spool, then drains it
//! once Pulsar is back; SIGTERM then stops it with exit 0.

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
    fn start(stack: &Stack, data_dir: &Path, port: u16) -> Ingest {
        let c = &stack.config;
        let child = Command::new(env!("CARGO_BIN_EXE_likes-ingest"))
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
            .stderr(Stdio::null())
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
    let mut first = Ingest::start(&stack, dir.path(), port);
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
    // Restarted while Pulsar is still down: it serves from the spool instead of refusing to
    // start, and reports what the spool holds.
    let mut second = Ingest::start(&stack, dir.path(), port);
    let ready = second.readyz().await;
    assert_eq!(ready["spool_depth"].as_u64(), Some(LIKES), "{ready}");
    // Ready: the spool takes events durably, so the instance stays in rotation.
    assert_eq!(ready["ready"], true, "{ready}");
    let response = client
        .put(format!(
            "{}/v1/contents/{}/like",
            second.base,
            content + LIKES
        ))
        .bearer_auth(token(user))
        .send()
        .await
        .expect("like");
    assert_eq!(
        response.status().as_u16(),
        200,
        "a like while Pulsar is down"
    );
    services("start", "pulsar");
    let deadline = Instant::now() + Duration::from_secs(90);
    while second.readyz().await["spool_depth"].as_u64() != Some(0) {
        assert!(
            Instant::now() < deadline,
            "the spool did not drain after the restart"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let events = stack.events().await;
    for i in 0..=LIKES {
        assert!(
            events.iter().any(|e| e.user_id.get() == user
                && e.content_id.get() == content + i
                && e.action.liked()),
            "like {i} answered 200 while Pulsar was down is not on the topic"
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
