//! Memory under many users (issue 13 saw ~125-280 bytes per new user with no levelling off): the
//! real binary serves 100 000 distinct users, and its resident memory levels off once the cache
//! holds `LIKES_CACHE_CAPACITY` entries, instead of growing with every user.

use std::process::{Child, Command, Stdio};

const USERS: u64 = 100_000;
const CACHE_CAPACITY: u64 = 5_000;
/// What the process may still grow once the cache is full: allocator and page-cache noise. An
/// unbounded cache grows about twice this over the same users (~100 bytes a user).
const GROWTH_WHEN_FULL_KIB: u64 = 4 * 1024;
const CLIENTS: u64 = 16;

struct Binary {
    child: Child,
    base: String,
}

impl Drop for Binary {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Binary {
    fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .expect("the binary's /proc status");
        status
            .lines()
            .find_map(|line| line.strip_prefix("VmRSS:"))
            .and_then(|kib| kib.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS")
    }
}

async fn start(dir: &std::path::Path) -> Binary {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let child = Command::new(env!("CARGO_BIN_EXE_likes"))
        .env("LIKES_HTTP_ADDR", format!("127.0.0.1:{port}"))
        .env("LIKES_DATA_DIR", dir)
        .env("LIKES_CACHE_CAPACITY", CACHE_CAPACITY.to_string())
        .env("LIKES_AUTH__TRUSTED_USER_HEADER", "X-User-Id")
        // One client address sends everything: its bucket must not be what bounds the test.
        .env("LIKES_RATE__PER_IP_PER_SEC", "10000000")
        .env("LIKES_RATE__PER_IP_BURST", "10000000")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .expect("start likes");
    let binary = Binary {
        child,
        base: format!("http://127.0.0.1:{port}"),
    };
    crate::wait_healthy(&binary.base).await;
    binary
}

/// Users `from..to` read a content each, as themselves, from `CLIENTS` concurrent clients.
async fn read_as_users(base: &str, from: u64, to: u64) {
    let mut clients = tokio::task::JoinSet::new();
    for lane in 0..CLIENTS {
        let (base, client) = (base.to_owned(), reqwest::Client::new());
        clients.spawn(async move {
            let mut user = from + lane;
            while user < to {
                let url = format!("{base}/v1/contents/{}", user % 1_000 + 1);
                let response = client
                    .get(url)
                    .header("x-user-id", user.to_string())
                    .send()
                    .await
                    .expect("a response");
                assert_eq!(response.status(), 200, "user {user}");
                user += CLIENTS;
            }
        });
    }
    while let Some(lane) = clients.join_next().await {
        lane.expect("a client lane");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resident_memory_levels_off_under_many_distinct_users() {
    let dir = tempfile::tempdir().expect("tempdir");
    let likes = start(dir.path()).await;
    let step = USERS / 10;
    let mut rss = vec![likes.rss_kib()];
    for tenth in 0..10 {
        read_as_users(&likes.base, 1 + tenth * step, 1 + (tenth + 1) * step).await;
        rss.push(likes.rss_kib());
    }
    eprintln!("RSS (KiB) every {step} users: {rss:?}");
    // After 20 000 users the cache has long been full: the 80 000 after may only reuse its room.
    let growth = rss[10].saturating_sub(rss[2]);
    assert!(
        growth <= GROWTH_WHEN_FULL_KIB,
        "RSS grew {growth} KiB over the last 80 000 users (cache capacity {CACHE_CAPACITY}): \
         {rss:?}"
    );
}
