//! What the benches read from running processes: a `/metrics` page and a resident set size.
//! Shared by the bench binaries through `#[path]` (the bench crate has no library).

use anyhow::Context as _;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// `GET /metrics` in HTTP/1.0: the server closes after the answer, so reading to the end is
/// the whole body, and a bench needs no HTTP client for a few scrapes.
pub async fn scrape(addr: std::net::SocketAddr) -> anyhow::Result<String> {
    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    stream
        .write_all(b"GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n")
        .await?;
    let mut answer = String::new();
    tokio::time::timeout(Duration::from_secs(5), stream.read_to_string(&mut answer)).await??;
    let (_, body) = answer
        .split_once("\r\n\r\n")
        .context("an HTTP answer without a body")?;
    Ok(body.to_owned())
}

/// The process' resident set (`VmRSS` in /proc), in KiB.
pub fn rss_kib(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .context("no VmRSS")
}
