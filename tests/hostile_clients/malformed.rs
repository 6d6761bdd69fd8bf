//! Requests hyper refuses before any route sees them (too large a head, a garbage request line,
//! conflicting lengths) still get the JSON error body every 4xx carries.

use crate::raw::{addr_of, exchange};
use crate::support::{spawn_app, Backend};
use std::time::Duration;

fn with_header(value_len: usize) -> Vec<u8> {
    let mut request = b"GET /healthz HTTP/1.1\r\nHost: likes\r\nX-Big: ".to_vec();
    request.extend(std::iter::repeat_n(b'a', value_len));
    request.extend_from_slice(b"\r\n\r\n");
    request
}

fn malformed_requests() -> Vec<(&'static str, Vec<u8>, &'static [u16])> {
    let long_path = format!(
        "GET /v1/contents/{} HTTP/1.1\r\nHost: likes\r\n\r\n",
        "1".repeat(70 * 1024)
    );
    let many_headers: String = (0..200).map(|i| format!("X-H{i}: {i}\r\n")).collect();
    vec![
        ("a 1 MiB header", with_header(1024 * 1024), &[431]),
        ("a 70 KB path", long_path.into_bytes(), &[414, 431]),
        (
            "200 headers",
            format!("GET /healthz HTTP/1.1\r\nHost: likes\r\n{many_headers}\r\n").into_bytes(),
            &[431],
        ),
        (
            "a garbage request line",
            b"GARBAGE\r\n\r\n".to_vec(),
            &[400],
        ),
        (
            "conflicting Content-Length headers",
            b"POST /v1/contents:batchGet HTTP/1.1\r\nHost: likes\r\n\
              Content-Type: application/json\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n{}"
                .to_vec(),
            &[400],
        ),
        (
            "a header name with a space",
            b"GET /healthz HTTP/1.1\r\nHost: likes\r\nBad Name: 1\r\n\r\n".to_vec(),
            &[400],
        ),
    ]
}

crate::on_every_backend! {
    async fn requests_hyper_refuses_get_json_errors(backend: Backend) {
        let t = spawn_app(backend).await;
        let addr = addr_of(&t.base);
        let mut wrong = Vec::new();
        for (what, request, statuses) in malformed_requests() {
            let response = exchange(addr, request, Duration::from_secs(10)).await;
            let json = serde_json::from_slice::<serde_json::Value>(&response.body)
                .ok()
                .filter(|body| body["error"]["code"].is_string() && body["error"]["message"].is_string());
            let first_line = response.head.lines().next().unwrap_or_default().to_owned();
            if !statuses.contains(&response.status) || json.is_none() {
                wrong.push(format!("{what}: {first_line}, body {:?}", String::from_utf8_lossy(&response.body)));
            } else {
                response.error_body();
            }
        }
        assert!(wrong.is_empty(), "without the JSON error:\n{}", wrong.join("\n"));
        // The service still answers.
        let healthz = t.send(t.request(reqwest::Method::GET, "/healthz", None)).await;
        assert_eq!(healthz.status(), 200);
        t.stop().await;
    }
}
