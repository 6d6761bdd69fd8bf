//! One connection and its deadlines. hyper's own header timer starts whenever it waits for a
//! head, so it would make the idle keep-alive wait and the head's arrival one timeout; here they
//! are two: a head gets `header_timeout` from its first byte (a new connection: from the accept),
//! an idle keep-alive connection gets `idle_timeout`. While a request is in the service no
//! deadline runs: its body has its own timeout and its handler is bounded by the backends'.
//!
//! The [`ConnectionClock`] learns of a head's first byte from the socket ([`WatchedIo`]) and of
//! requests from the service ([`RequestTurn`]); the connection task sleeps until the current
//! deadline, woken early whenever either moves it.
//!
//! Bytes that arrive while a request is in the service are taken as its body: a pipelined next
//! head that came with them is therefore timed by the idle timeout, not the header timeout (still
//! bounded).

use super::request_body::GuardedService;
use super::watched_io::WatchedIo;
use super::ServeRules;
use crate::error::MAX_HEADERS;
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::Watcher;
use parking_lot::Mutex;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpStream;
use tokio::sync::Notify;
use tokio::time::Instant;
use warp::reply::Response;

#[derive(Debug, Clone, Copy)]
enum Phase {
    /// Waiting for a request's head: since the accept or the last response, and since its first
    /// byte once one arrived.
    AwaitingHead {
        since: Instant,
        first_byte: Option<Instant>,
    },
    /// Requests in the service.
    Serving(usize),
}

pub struct ConnectionClock {
    phase: Mutex<Phase>,
    /// Whether a request was served already: before the first, the wait is a header wait.
    served: Mutex<bool>,
    moved: Notify,
    header_timeout: std::time::Duration,
    idle_timeout: std::time::Duration,
}

impl ConnectionClock {
    fn new(rules: &ServeRules) -> Self {
        ConnectionClock {
            phase: Mutex::new(Phase::AwaitingHead {
                since: Instant::now(),
                first_byte: None,
            }),
            served: Mutex::new(false),
            moved: Notify::new(),
            header_timeout: rules.header_timeout,
            idle_timeout: rules.idle_timeout,
        }
    }

    /// When the connection is to be closed if nothing changes; `None` while serving.
    fn deadline(&self) -> Option<Instant> {
        let served = *self.served.lock();
        match *self.phase.lock() {
            Phase::Serving(_) => None,
            Phase::AwaitingHead { since, .. } if !served => Some(since + self.header_timeout),
            Phase::AwaitingHead {
                first_byte: Some(at),
                ..
            } => Some(at + self.header_timeout),
            Phase::AwaitingHead { since, .. } => Some(since + self.idle_timeout),
        }
    }

    pub(super) fn bytes_arrived(&self) {
        let mut phase = self.phase.lock();
        if let Phase::AwaitingHead {
            first_byte: first @ None,
            ..
        } = &mut *phase
        {
            *first = Some(Instant::now());
            drop(phase);
            self.moved.notify_one();
        }
    }

    /// A request reached the service: no deadline until it is answered.
    pub fn request_started(self: &Arc<Self>) -> RequestTurn {
        {
            let mut phase = self.phase.lock();
            *phase = match *phase {
                Phase::Serving(n) => Phase::Serving(n + 1),
                Phase::AwaitingHead { .. } => Phase::Serving(1),
            };
            *self.served.lock() = true;
        }
        self.moved.notify_one();
        RequestTurn(self.clone())
    }
}

/// A request in the service; its drop (the response is built, or the connection went away) lets
/// the idle wait begin.
pub struct RequestTurn(Arc<ConnectionClock>);

impl Drop for RequestTurn {
    fn drop(&mut self) {
        let mut phase = self.0.phase.lock();
        *phase = match *phase {
            Phase::Serving(n) if n > 1 => Phase::Serving(n - 1),
            _ => Phase::AwaitingHead {
                since: Instant::now(),
                first_byte: None,
            },
        };
        drop(phase);
        self.0.moved.notify_one();
    }
}

/// Serves one connection until the client closes it, a deadline passes (then it is dropped,
/// which closes the socket), or a graceful shutdown has let its requests finish.
pub async fn serve_connection<S>(
    stream: TcpStream,
    peer: SocketAddr,
    service: S,
    rules: &ServeRules,
    watcher: Watcher,
) where
    S: tower_service::Service<
            warp::http::Request<http_body_util::Full<bytes::Bytes>>,
            Response = Response,
            Error = Infallible,
        > + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    let clock = Arc::new(ConnectionClock::new(rules));
    let io = TokioIo::new(WatchedIo::new(
        stream,
        clock.clone(),
        rules.max_header_bytes,
    ));
    let service = GuardedService::new(service, peer, clock.clone(), rules);
    let connection = hyper::server::conn::http1::Builder::new()
        .keep_alive(true)
        // The deadlines above replace hyper's header timer (which needs a timer to run at all).
        .header_read_timeout(None)
        .max_header_size(rules.max_header_bytes)
        .max_headers(MAX_HEADERS)
        // Every response through `poll_write` in one piece, where WatchedIo can recognise
        // hyper's own refusals (see `refusals`).
        .writev(false)
        .serve_connection(io, service);
    let connection = watcher.watch(connection);
    tokio::pin!(connection);
    loop {
        let deadline = clock.deadline();
        let expired = async {
            match deadline {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            served = &mut connection => {
                if let Err(error) = served {
                    tracing::debug!(%error, %peer, "connection ended with an error");
                }
                return;
            }
            () = expired => {
                if clock.deadline().is_some_and(|at| at <= Instant::now()) {
                    tracing::debug!(%peer, "connection closed: header or idle timeout");
                    return;
                }
            }
            () = clock.moved.notified() => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn clock() -> Arc<ConnectionClock> {
        Arc::new(ConnectionClock {
            phase: Mutex::new(Phase::AwaitingHead {
                since: Instant::now(),
                first_byte: None,
            }),
            served: Mutex::new(false),
            moved: Notify::new(),
            header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(75),
        })
    }

    #[tokio::test(start_paused = true)]
    async fn a_new_connection_has_the_header_timeout_from_its_accept() {
        let clock = clock();
        let accepted = Instant::now();
        assert_eq!(clock.deadline(), Some(accepted + Duration::from_secs(10)));
        tokio::time::advance(Duration::from_secs(3)).await;
        clock.bytes_arrived();
        assert_eq!(
            clock.deadline(),
            Some(accepted + Duration::from_secs(10)),
            "trickling bytes does not extend the first head's time"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn no_deadline_while_serving_then_idle_then_a_head_of_its_own() {
        let clock = clock();
        let first = clock.request_started();
        let second = clock.request_started();
        assert_eq!(clock.deadline(), None);
        drop(first);
        assert_eq!(
            clock.deadline(),
            None,
            "one request is still in the service"
        );
        drop(second);
        let answered = Instant::now();
        assert_eq!(clock.deadline(), Some(answered + Duration::from_secs(75)));
        tokio::time::advance(Duration::from_secs(30)).await;
        clock.bytes_arrived();
        assert_eq!(
            clock.deadline(),
            Some(answered + Duration::from_secs(40)),
            "the next head has the header timeout from its first byte"
        );
    }
}
