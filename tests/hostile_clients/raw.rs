//! Raw HTTP/1.1 over a `TcpStream`: what a hostile client sends and reads, byte for byte.

use serde_json::Value;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub struct RawResponse {
    pub status: u16,
    pub head: String,
    pub body: Vec<u8>,
}

impl RawResponse {
    /// The `{"error": {"code", "message"}}` body, asserted to be JSON of that shape.
    pub fn error_body(&self) -> Value {
        assert!(
            self.head
                .to_ascii_lowercase()
                .contains("content-type: application/json"),
            "not JSON: {}",
            self.head
        );
        let body: Value = serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!("{e}: {:?}", String::from_utf8_lossy(&self.body));
        });
        assert!(body["error"]["code"].is_string(), "{body}");
        assert!(body["error"]["message"].is_string(), "{body}");
        body
    }
}

pub fn addr_of(base: &str) -> SocketAddr {
    base.trim_start_matches("http://")
        .parse()
        .expect("the app's address")
}

/// Connects and sends `bytes` (possibly an unfinished request).
pub async fn send(addr: SocketAddr, bytes: &[u8]) -> TcpStream {
    let mut stream = TcpStream::connect(addr).await.expect("connects");
    stream.write_all(bytes).await.expect("sends");
    stream
}

/// One keep-alive connection sending GETs one at a time: a client whose connection is open
/// before a flood and stays the same one (a pooling client may open another behind the flood,
/// which the server rightly closes if no request comes in its header timeout).
pub struct KeepAlive(TcpStream);

impl KeepAlive {
    pub async fn connect(addr: SocketAddr) -> KeepAlive {
        KeepAlive(TcpStream::connect(addr).await.expect("connects"))
    }

    /// `GET path` on this connection, answered within `within`.
    pub async fn get(&mut self, path: &str, within: Duration) -> RawResponse {
        let request = format!("GET {path} HTTP/1.1\r\nHost: likes\r\n\r\n");
        self.0.write_all(request.as_bytes()).await.expect("sends");
        read_response(&mut self.0, within).await
    }
}

/// The next response on `stream`, within `within`.
pub async fn read_response(stream: &mut TcpStream, within: Duration) -> RawResponse {
    tokio::time::timeout(within, read_one(stream))
        .await
        .unwrap_or_else(|_| panic!("no response within {within:?}"))
}

async fn read_one(stream: &mut TcpStream) -> RawResponse {
    read_one_from(stream).await
}

async fn read_one_from(stream: &mut (impl AsyncReadExt + Unpin)) -> RawResponse {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        if let Some(end) = find(&buf, b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).into_owned();
            let length = content_length(&head);
            if buf.len() >= end + 4 + length {
                let status = head
                    .split(' ')
                    .nth(1)
                    .and_then(|s| s.parse().ok())
                    .unwrap_or_else(|| panic!("no status in {head:?}"));
                let body = buf[end + 4..end + 4 + length].to_vec();
                return RawResponse { status, head, body };
            }
        }
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => panic!(
                "the connection closed after {:?} without a whole response",
                String::from_utf8_lossy(&buf)
            ),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

fn content_length(head: &str) -> usize {
    head.lines()
        .filter_map(|line| line.split_once(':'))
        .find(|(name, _)| name.trim().eq_ignore_ascii_case("content-length"))
        .and_then(|(_, value)| value.trim().parse().ok())
        .unwrap_or(0)
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Waits until the server closes `stream` (EOF or reset), reading and dropping what it sends.
pub async fn closed_by_server(stream: &mut TcpStream, within: Duration) {
    let closed = async {
        let mut chunk = [0u8; 4096];
        loop {
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(_) => continue,
            }
        }
    };
    tokio::time::timeout(within, closed)
        .await
        .unwrap_or_else(|_| panic!("the server kept the connection open for {within:?}"));
}

/// Sends `bytes` while reading the answer: a server may answer (and close) before it has read a
/// large request whole, so the send may fail and is not waited for.
pub async fn exchange(addr: SocketAddr, bytes: Vec<u8>, within: Duration) -> RawResponse {
    let stream = TcpStream::connect(addr).await.expect("connects");
    let (mut reader, mut writer) = stream.into_split();
    let sending = tokio::spawn(async move {
        let _ = writer.write_all(&bytes).await;
        writer
    });
    let response = tokio::time::timeout(within, read_one_from(&mut reader))
        .await
        .unwrap_or_else(|_| panic!("no response within {within:?}"));
    sending.abort();
    response
}
