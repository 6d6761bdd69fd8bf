//! Slow and idle connections: they are answered or closed within the configured timeouts, they
//! hold no in-flight slot while they dawdle, and the connections open at once stay under the
//! bound, while another client's requests keep answering.

use crate::raw::{addr_of, closed_by_server, read_response, send, KeepAlive};
use crate::support::{spawn, Backend};
use reqwest::Method;
use std::time::{Duration, Instant};

/// A batchGet that promises 100 body bytes and sends 5.
const SLOW_BODY: &[u8] = b"POST /v1/contents:batchGet HTTP/1.1\r\nHost: likes\r\n\
Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"con";

/// A head that never ends (slowloris).
const UNFINISHED_HEAD: &[u8] = b"GET /healthz HTTP/1.1\r\nHost: likes\r\nX-Slow: 1\r\n";

/// Time for `count` sequential GETs of `path` by `t`'s client, each asserted 200 within 5 s.
async fn timed_gets(t: &crate::support::TestApp, path: &str, count: usize) -> Vec<Duration> {
    let mut took = Vec::with_capacity(count);
    for _ in 0..count {
        let started = Instant::now();
        let response = tokio::time::timeout(
            Duration::from_secs(5),
            t.send(t.request(Method::GET, path, None)),
        )
        .await
        .unwrap_or_else(|_| panic!("{path} did not answer within 5 s"));
        assert_eq!(response.status(), 200, "{path}");
        took.push(started.elapsed());
    }
    took
}

/// The same on one connection of its own.
async fn timed_gets_on(connection: &mut KeepAlive, path: &str, count: usize) -> Vec<Duration> {
    let mut took = Vec::with_capacity(count);
    for _ in 0..count {
        let started = Instant::now();
        let response = connection.get(path, Duration::from_secs(5)).await;
        assert_eq!(response.status, 200, "{path}: {}", response.head);
        took.push(started.elapsed());
    }
    took
}

fn median(mut durations: Vec<Duration>) -> Duration {
    durations.sort();
    durations[durations.len() / 2]
}

crate::on_every_backend! {
    async fn slow_bodies_get_408_json_and_hold_no_in_flight_slot(backend: Backend) {
        let t = spawn(backend, |c| {
            c.rate.max_in_flight = 4;
            c.http.body_timeout_ms = 1_000;
        })
        .await;
        let addr = addr_of(&t.base);
        let mut slow = Vec::new();
        for _ in 0..16 {
            slow.push(send(addr, SLOW_BODY).await);
        }
        // Four times as many slow bodies as slots: none may lock the second client out (429).
        timed_gets(&t, "/v1/contents/1", 10).await;
        for stream in &mut slow {
            let response = read_response(stream, Duration::from_secs(10)).await;
            assert_eq!(response.status, 408, "{}", response.head);
            assert_eq!(response.error_body()["error"]["code"], "request_timeout");
        }
        t.stop().await;
    }

    async fn idle_and_slowloris_floods_are_closed_bounded_and_do_not_slow_others(backend: Backend) {
        let bound = 16;
        let t = spawn(backend, |c| {
            c.http.max_connections = bound;
            c.http.header_timeout_ms = 1_000;
            c.http.idle_timeout_ms = 30_000;
        })
        .await;
        let addr = addr_of(&t.base);
        // The second client's keep-alive connection is open before the flood.
        let mut existing = KeepAlive::connect(addr).await;
        let before = median(timed_gets_on(&mut existing, "/healthz", 20).await);
        let mut flood = Vec::new();
        for i in 0..3 * bound {
            let bytes: &[u8] = if i % 2 == 0 { b"" } else { UNFINISHED_HEAD };
            flood.push(send(addr, bytes).await);
        }
        let during = median(timed_gets_on(&mut existing, "/healthz", 20).await);
        assert!(
            during <= before * 10 + Duration::from_millis(50),
            "median latency {during:?} during the flood, {before:?} before"
        );
        let metrics = existing.get("/metrics", Duration::from_secs(5)).await;
        let metrics = String::from_utf8_lossy(&metrics.body);
        let open: usize = metrics
            .lines()
            .find_map(|line| line.strip_prefix("likes_ingest_http_connections_open "))
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or_else(|| panic!("no likes_ingest_http_connections_open in\n{metrics}"));
        assert!(open <= bound, "{open} connections open, bound {bound}");
        // Those past the bound wait to be accepted, then get their own header timeout.
        for stream in &mut flood {
            closed_by_server(stream, Duration::from_secs(15)).await;
        }
        timed_gets_on(&mut existing, "/healthz", 3).await;
        // And a new client is let in again.
        timed_gets(&t, "/healthz", 3).await;
        t.stop().await;
    }

    async fn an_idle_keep_alive_connection_is_closed(backend: Backend) {
        let t = spawn(backend, |c| c.http.idle_timeout_ms = 500).await;
        let mut stream = send(
            addr_of(&t.base),
            b"GET /healthz HTTP/1.1\r\nHost: likes\r\n\r\n",
        )
        .await;
        let response = read_response(&mut stream, Duration::from_secs(5)).await;
        assert_eq!(response.status, 200);
        closed_by_server(&mut stream, Duration::from_secs(5)).await;
        t.stop().await;
    }
}
