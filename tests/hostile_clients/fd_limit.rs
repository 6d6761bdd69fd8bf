//! Idle connections past the open-file limit (issue 13: with 1024 descriptors, 1100 idle
//! connections made `accept` fail and normal requests went unanswered for 17 s). The real binary
//! runs with `ulimit -n 256`: its connection bound is fitted below that, so `accept` never runs
//! out of descriptors; a client already connected keeps being served, and a new one is answered
//! once the header timeout has closed the idle connections ahead of it.

use crate::raw::closed_by_server;
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use tokio::net::TcpStream;

const OPEN_FILES: u32 = 256;
const IDLE: usize = 400;

struct Binary {
    child: Child,
    base: String,
    output: std::path::PathBuf,
}

impl Drop for Binary {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn start(dir: &std::path::Path) -> Binary {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let output = dir.join("output.log");
    let log = std::fs::File::create(&output).expect("a log file");
    let child = Command::new("sh")
        .arg("-c")
        .arg(format!("ulimit -n {OPEN_FILES} && exec \"$0\""))
        .arg(env!("CARGO_BIN_EXE_likes"))
        .env("LIKES_HTTP_ADDR", format!("127.0.0.1:{port}"))
        .env("LIKES_DATA_DIR", dir)
        .env("LIKES_HTTP__HEADER_TIMEOUT_MS", "1000")
        .env("RUST_LOG", "warn")
        // The binary logs to stdout.
        .stdout(Stdio::from(log.try_clone().expect("a second handle")))
        .stderr(Stdio::from(log))
        .spawn()
        .expect("start likes");
    let binary = Binary {
        child,
        base: format!("http://127.0.0.1:{port}"),
        output,
    };
    crate::wait_healthy(&binary.base).await;
    binary
}

async fn healthz_within(client: &reqwest::Client, base: &str, within: Duration) {
    let response = tokio::time::timeout(within, client.get(format!("{base}/healthz")).send())
        .await
        .unwrap_or_else(|_| panic!("no answer within {within:?}"))
        .expect("a response");
    assert_eq!(response.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_past_the_open_file_limit_do_not_shut_the_service_out() {
    let dir = tempfile::tempdir().expect("tempdir");
    let likes = start(dir.path()).await;
    let connected = reqwest::Client::new();
    healthz_within(&connected, &likes.base, Duration::from_secs(5)).await;
    let addr = likes.base.trim_start_matches("http://").to_owned();
    let mut idle = Vec::with_capacity(IDLE);
    for _ in 0..IDLE {
        idle.push(TcpStream::connect(&addr).await.expect("connects"));
    }
    for _ in 0..5 {
        healthz_within(&connected, &likes.base, Duration::from_secs(5)).await;
    }
    // A new client waits behind the idle ones, each closed by the 1 s header timeout.
    healthz_within(
        &reqwest::Client::new(),
        &likes.base,
        Duration::from_secs(15),
    )
    .await;
    for stream in &mut idle {
        closed_by_server(stream, Duration::from_secs(15)).await;
    }
    let log = std::fs::read_to_string(&likes.output).expect("the binary's log");
    assert!(
        !log.contains("accept") && !log.contains("Too many open files"),
        "accept failed:\n{log}"
    );
    assert!(
        log.contains("max_connections lowered"),
        "the bound was not fitted to {OPEN_FILES} open files:\n{log}"
    );
}
