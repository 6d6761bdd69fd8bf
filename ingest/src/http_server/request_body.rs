//! The service hyper calls: it reads the body whole, within the body timeout and the body limit,
//! before the routes see the request. The routes take the in-flight slot, so a body that dawdles
//! holds none; it is answered 408 (JSON) when its time is up and its connection closed.

use super::connection::ConnectionClock;
use super::{body_timeout_response, ServeRules};
use crate::error::ApiError;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::body::Incoming;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use warp::http::{header, HeaderValue, Request};
use warp::reply::Response;
use warp::Reply;

/// The peer's address, in each request's extensions (warp's own is private to its `serve`).
#[derive(Debug, Clone, Copy)]
pub struct PeerAddr(pub SocketAddr);

#[derive(Clone)]
pub struct GuardedService<S> {
    routes: S,
    peer: SocketAddr,
    clock: Arc<ConnectionClock>,
    body_timeout: Duration,
    body_limit: u64,
}

impl<S> GuardedService<S> {
    pub fn new(
        routes: S,
        peer: SocketAddr,
        clock: Arc<ConnectionClock>,
        rules: &ServeRules,
    ) -> Self {
        GuardedService {
            routes,
            peer,
            clock,
            body_timeout: rules.body_timeout,
            body_limit: rules.body_limit,
        }
    }
}

impl<S> hyper::service::Service<Request<Incoming>> for GuardedService<S>
where
    S: tower_service::Service<Request<Full<Bytes>>, Response = Response, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

    fn call(&self, request: Request<Incoming>) -> Self::Future {
        let turn = self.clock.request_started();
        let mut routes = self.routes.clone();
        let (body_timeout, body_limit) = (self.body_timeout, self.body_limit);
        let (mut parts, body) = request.into_parts();
        parts.extensions.insert(PeerAddr(self.peer));
        Box::pin(async move {
            let _turn = turn;
            let declared = parts
                .headers
                .get(header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok());
            // Declared too large: not read at all; the route answers 413 from the header.
            let body = if declared.is_some_and(|n| n > body_limit) {
                Bytes::new()
            } else {
                match read_body(body, body_limit, body_timeout).await {
                    Ok(bytes) => bytes,
                    Err(response) => return Ok(response),
                }
            };
            let request = Request::from_parts(parts, Full::new(body));
            // warp's service is always ready (its `poll_ready` returns Ready at once).
            routes.call(request).await
        })
    }
}

/// The whole body, or the answer that replaces the request's: 408 when it is late, 413 when it
/// outgrows the limit (a chunked body has no length to check first), 400 when the client broke it.
async fn read_body(body: Incoming, limit: u64, within: Duration) -> Result<Bytes, Response> {
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    let collected = tokio::time::timeout(within, Limited::new(body, limit).collect()).await;
    let error = match collected {
        Ok(Ok(collected)) => return Ok(collected.to_bytes()),
        Err(_) => return Err(body_timeout_response(within)),
        Ok(Err(error)) => error,
    };
    let api_error = if error.downcast_ref::<LengthLimitError>().is_some() {
        ApiError::PayloadTooLarge(limit as u64)
    } else {
        ApiError::bad_request(format!("the request body could not be read: {error}"))
    };
    let mut response = api_error.into_response();
    // Whatever the client sends after a body that failed is not a next request.
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    Err(response)
}
