//! The load: a fixed number of keep-alive HTTP/1.1 connections (raw hyper 1 client, no pool),
//! each driven by its own task.
//!
//! - Closed loop (`rate: None`): each connection sends its next request as soon as the previous
//!   answer is read — the peak a fixed concurrency reaches.
//! - Open loop (`rate: Some(r)`): arrivals are scheduled at a fixed total rate, spread over the
//!   connections round-robin, and latency is measured from the *scheduled* time, so a server that
//!   stalls is charged for the requests that queued behind the stall (no coordinated omission).
//!
//! Requests finishing during the warm-up are sent but not recorded. Everything stops by itself at
//! the end of the plan; a request stuck past [`REQUEST_TIMEOUT`] is counted and its connection
//! dropped.

use crate::report::Tally;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::{self, SendRequest};
use hyper::Request;
use hyper_util::rt::TokioIo;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::time::Instant;

pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// Every request's body: empty but for `batchGet`'s JSON (one type, so the baseline and the
/// service pay the same client).
pub type Body = Full<Bytes>;

/// One connection's workload: what to send next, and what to learn from the answer.
pub trait Session: Send + 'static {
    fn request(&mut self) -> Result<Request<Body>, hyper::http::Error>;
    fn answered(&mut self, status: u16, body: &[u8]);
    /// The last request's outcome is unknown (transport failure or timeout).
    fn failed(&mut self);
}

#[derive(Debug, Clone, Copy)]
pub struct Plan {
    pub warmup: Duration,
    pub measure: Duration,
    /// Arrivals per second across all connections; `None` for a closed loop.
    pub rate: Option<f64>,
}

/// Runs one phase: every session on its own connection, until the plan ends. Returns the
/// sessions (their state carries on into later phases) and the merged observations.
pub async fn run<S: Session>(
    addr: SocketAddr,
    sessions: Vec<S>,
    plan: Plan,
) -> anyhow::Result<(Vec<S>, Tally)> {
    let connections = sessions.len();
    // A common start a little ahead, so every connection is open when the clock starts.
    let start = Instant::now() + Duration::from_millis(50);
    let tasks: Vec<_> = sessions
        .into_iter()
        .enumerate()
        .map(|(index, session)| tokio::spawn(drive(addr, session, plan, index, connections, start)))
        .collect();
    let mut sessions = Vec::with_capacity(connections);
    let mut total = Tally::default();
    for task in tasks {
        let (session, tally) = task.await?;
        total.merge(&tally);
        sessions.push(session);
    }
    Ok((sessions, total))
}

async fn drive<S: Session>(
    addr: SocketAddr,
    mut session: S,
    plan: Plan,
    index: usize,
    connections: usize,
    start: Instant,
) -> (S, Tally) {
    let measure_from = start + plan.warmup;
    let end = measure_from + plan.measure;
    let mut tally = Tally::default();
    let mut sender: Option<SendRequest<Body>> = None;
    let mut sent: u64 = 0;
    tokio::time::sleep_until(start).await;
    loop {
        let scheduled = match plan.rate {
            Some(rate) => {
                let slot = sent * connections as u64 + index as u64;
                let at = start + Duration::from_secs_f64(slot as f64 / rate);
                if at >= end {
                    break;
                }
                tokio::time::sleep_until(at).await;
                at
            }
            None => {
                let now = Instant::now();
                if now >= end {
                    break;
                }
                now
            }
        };
        sent += 1;
        let recording = scheduled >= measure_from;
        let Some(conn) = sender.as_mut() else {
            match connect(addr).await {
                Ok(s) => sender = Some(s),
                Err(_) => {
                    if recording {
                        tally.failure("connect");
                    }
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
            // Closed loop: go round again with a fresh clock. Open loop: this slot is lost
            // (counted above while recording), the next one keeps the schedule.
            continue;
        };
        let request = match session.request() {
            Ok(r) => r,
            Err(_) => {
                tally.failure("build");
                break;
            }
        };
        let outcome = tokio::time::timeout(REQUEST_TIMEOUT, exchange(conn, request)).await;
        let done = Instant::now();
        // Closed loop: only answers that land inside the window. Open loop: every arrival
        // scheduled inside it, however late its answer (dropping late ones would hide stalls).
        let recorded = recording && (plan.rate.is_some() || done <= end);
        match outcome {
            Ok(Ok((status, body))) => {
                session.answered(status, &body);
                if recorded {
                    tally.answer(status, done - scheduled);
                }
            }
            Ok(Err(_)) | Err(_) => {
                session.failed();
                sender = None;
                if recorded {
                    tally.failure(if outcome.is_err() { "timeout" } else { "io" });
                }
            }
        }
    }
    (session, tally)
}

pub async fn connect(addr: SocketAddr) -> anyhow::Result<SendRequest<Body>> {
    let stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let (sender, connection) = http1::handshake(TokioIo::new(stream)).await?;
    // Ends when the sender is dropped or the server closes; its error is seen by the sender.
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(sender)
}

/// Sends one request on a keep-alive connection; returns the status and the whole body.
pub async fn exchange(
    sender: &mut SendRequest<Body>,
    request: Request<Body>,
) -> anyhow::Result<(u16, Bytes)> {
    sender.ready().await?;
    let response = sender.send_request(request).await?;
    let status = response.status().as_u16();
    let body = response.into_body().collect().await?.to_bytes();
    Ok((status, body))
}
