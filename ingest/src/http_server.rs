//! Serving the routes to clients that may be hostile: the accept loop, one hyper HTTP/1.1
//! connection per accepted socket, and the rules that keep a slow or idle client from holding what
//! others need (issue 13). Both binaries serve through [`serve`], so the rules are written once.
//!
//! - A bound on open connections ([`HttpServerConfig::max_connections`], fitted to the open-file
//!   limit): past it the loop stops accepting, so new connections wait in the kernel's backlog
//!   while the open ones keep being served. `accept` never meets `EMFILE` in normal operation.
//! - Deadlines per connection ([`connection`]): a head must arrive within the header timeout, a
//!   keep-alive connection with no request is closed after the idle timeout.
//! - A body must arrive within the body timeout ([`request_body`]), and is read *before* the
//!   routes see the request: a dawdling body holds no in-flight slot, and its answer is a JSON 408.
//!
//! - A request hyper refuses itself (too large a head, unparseable) still gets the JSON error body
//!   ([`refusals`]), as every 4xx of the API does.
//!
//! warp's own `serve` offers none of these knobs, hence this loop; it keeps warp's graceful
//! shutdown (stop accepting, then let the connections finish their requests).

mod connection;
mod fd_limit;
mod refusals;
mod request_body;
mod watched_io;

pub use request_body::PeerAddr;

use crate::config::HttpServerConfig;
use crate::error::ApiError;
use hyper_util::server::graceful::GracefulShutdown;
use prometheus::IntGauge;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use warp::reply::Response;

/// What every connection of one server shares.
#[derive(Clone)]
pub struct ServeRules {
    pub header_timeout: Duration,
    pub body_timeout: Duration,
    pub idle_timeout: Duration,
    pub body_limit: u64,
    pub max_header_bytes: usize,
    /// After fitting to the open-file limit.
    pub max_connections: usize,
    /// `http_connections_open`.
    pub open_connections: IntGauge,
}

impl ServeRules {
    pub fn new(config: &HttpServerConfig, body_limit: u64, open_connections: IntGauge) -> Self {
        ServeRules {
            header_timeout: Duration::from_millis(config.header_timeout_ms.max(1)),
            body_timeout: Duration::from_millis(config.body_timeout_ms.max(1)),
            idle_timeout: Duration::from_millis(config.idle_timeout_ms.max(1)),
            body_limit,
            max_header_bytes: config.max_header_bytes.max(1024),
            max_connections: fd_limit::fit_connections(config.max_connections),
            open_connections,
        }
    }
}

/// Serves `service` (the routes as a warp service) on `listener` until `shutdown` resolves, then
/// waits for the open connections to finish their requests.
pub async fn serve<S>(
    listener: TcpListener,
    service: S,
    rules: ServeRules,
    shutdown: impl std::future::Future<Output = ()>,
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
    let rules = Arc::new(rules);
    let slots = Arc::new(Semaphore::new(rules.max_connections.max(1)));
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        // A slot first: past the bound, the next connection stays in the backlog.
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_) => break, // never closed; nothing left to serve if it were
            },
            () = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    accept_failed(error).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let watcher = graceful.watcher();
        let rules = rules.clone();
        let service = service.clone();
        tokio::spawn(async move {
            let _slot = slot;
            rules.open_connections.inc();
            connection::serve_connection(stream, peer, service, &rules, watcher).await;
            rules.open_connections.dec();
        });
    }
    drop(listener);
    graceful.shutdown().await;
}

/// Errors of the accepted socket (the peer reset before we took it) are its own business; others
/// (out of file descriptors despite the bound) pause the loop briefly instead of spinning on it.
async fn accept_failed(error: std::io::Error) {
    use std::io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    if matches!(
        error.kind(),
        ConnectionAborted | ConnectionRefused | ConnectionReset
    ) {
        return;
    }
    tracing::error!(%error, "accept failed; pausing the accept loop");
    tokio::time::sleep(Duration::from_millis(100)).await;
}

/// The JSON answer to a body that did not arrive in time; the connection closes after it (the
/// rest of the body may still be on its way).
fn body_timeout_response(limit: Duration) -> Response {
    use warp::Reply;
    let mut response = ApiError::RequestTimeout(limit).into_response();
    response.headers_mut().insert(
        warp::http::header::CONNECTION,
        warp::http::HeaderValue::from_static("close"),
    );
    response
}
