//! The routes: warp filters that admit, authenticate and validate, then call a handler.
//! Every failure becomes an [`ApiError`] rejection, recovered into JSON in one place.

use crate::auth::Authenticator;
use crate::client_addr::{is_direct_local_caller, ClientAddrSource, ClientKey};
use crate::dev_token_mint::DevTokenMint;
use crate::error::{recover, ApiError};
use crate::handlers;
use crate::http_server::PeerAddr;
use crate::limits::Admission;
use crate::metrics::Metrics;
use crate::readiness::ReadinessProbe;
use crate::request_span::{self, method_label, route_label};
use crate::service::LikeService;
use crate::web;
use bytes::Bytes;
use likes_shared::{Action, ContentId, UserId};
use serde::de::DeserializeOwned;
use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::sync::OwnedSemaphorePermit;
use warp::http::HeaderMap;
use warp::{Filter, Rejection, Reply};

pub struct Context {
    pub service: LikeService,
    pub auth: Authenticator,
    pub admission: Admission,
    pub metrics: Arc<Metrics>,
    pub body_limit: u64,
    pub client_addr: ClientAddrSource,
    pub readiness: ReadinessProbe,
    pub dev_tokens: bool,
    pub dev_token_mint: DevTokenMint,
}

const OPENAPI: &str = include_str!("openapi.json");

fn with_ctx(
    ctx: Arc<Context>,
) -> impl Filter<Extract = (Arc<Context>,), Error = Infallible> + Clone {
    warp::any().map(move || ctx.clone())
}

/// The client socket's address, which [`crate::http_server`] puts on each request.
fn peer_addr() -> impl Filter<Extract = (Option<SocketAddr>,), Error = Infallible> + Copy {
    warp::ext::optional::<PeerAddr>().map(|peer: Option<PeerAddr>| peer.map(|PeerAddr(addr)| addr))
}

/// An in-flight slot (held until the reply is built) after the client IP's rate check.
fn admit(
    ctx: &Context,
    peer: Option<SocketAddr>,
    headers: &HeaderMap,
) -> Result<OwnedSemaphorePermit, Rejection> {
    let permit = ctx.admission.enter()?;
    // Every line: a proxy may add its own X-Forwarded-For line after the client's.
    // Lossy, so bytes a client wrote cannot void the entry the proxy appended.
    let forwarded_for: Vec<_> = headers
        .get_all("x-forwarded-for")
        .iter()
        .map(|line| String::from_utf8_lossy(line.as_bytes()))
        .collect();
    let peer_ip = peer.map(|p| p.ip());
    let forwarded_for = forwarded_for.iter().map(|line| line.as_ref());
    if let Some(ip) = ctx.client_addr.client_ip(peer_ip, forwarded_for) {
        ctx.admission.check_client(ClientKey::of(ip))?;
    }
    Ok(permit)
}

/// The caller, if credentials were sent (bad credentials reject with 401; two of a kind, 400).
fn identify(ctx: &Context, headers: &HeaderMap) -> Result<Option<UserId>, Rejection> {
    let trusted = match ctx.auth.trusted_header() {
        Some(name) => single_header(headers, name)?,
        None => None,
    };
    let authorization = single_header(headers, "authorization")?;
    ctx.auth
        .identify(authorization, trusted)
        .map_err(warp::reject::custom)
}

/// A credential header's one value. Two are refused, not resolved: whichever one won, a proxy
/// that checked the other would have vouched for a different caller.
fn single_header<'h>(headers: &'h HeaderMap, name: &str) -> Result<Option<&'h str>, Rejection> {
    let mut values = headers.get_all(name).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(warp::reject::custom(ApiError::bad_request(format!(
            "more than one {name} header: a request names one caller"
        ))));
    }
    // Unreadable credentials are bad credentials, not anonymity.
    value.to_str().map(Some).map_err(|_| {
        warp::reject::custom(ApiError::Unauthorized(format!(
            "the {name} header is not visible ASCII"
        )))
    })
}

/// [`admit`] for routes that need no caller.
fn admitted(
    ctx: Arc<Context>,
) -> impl Filter<Extract = (OwnedSemaphorePermit,), Error = Rejection> + Clone {
    with_ctx(ctx)
        .and(peer_addr())
        .and(warp::header::headers_cloned())
        .and_then(
            |ctx: Arc<Context>, peer: Option<SocketAddr>, headers: HeaderMap| async move {
                admit(&ctx, peer, &headers)
            },
        )
}

/// [`admit`], then [`identify`]: one copy of the headers serves both.
fn admitted_caller(
    ctx: Arc<Context>,
) -> impl Filter<Extract = (OwnedSemaphorePermit, Option<UserId>), Error = Rejection> + Clone {
    with_ctx(ctx)
        .and(peer_addr())
        .and(warp::header::headers_cloned())
        .and_then(
            |ctx: Arc<Context>, peer: Option<SocketAddr>, headers: HeaderMap| async move {
                let permit = admit(&ctx, peer, &headers)?;
                Ok::<_, Rejection>((permit, identify(&ctx, &headers)?))
            },
        )
        .untuple_one()
}

fn content_id() -> impl Filter<Extract = (ContentId,), Error = Rejection> + Clone {
    warp::path::param::<String>().and_then(|raw: String| async move {
        ContentId::parse(&raw)
            .map_err(|e| warp::reject::custom(ApiError::bad_request(e.to_string())))
    })
}

/// A JSON body: right content type, within the size limit, no unknown fields.
fn json_body<T: DeserializeOwned + Send>(
    ctx: Arc<Context>,
) -> impl Filter<Extract = (T,), Error = Rejection> + Clone {
    with_ctx(ctx)
        .and(warp::header::optional::<String>("content-type"))
        .and(warp::header::optional::<u64>("content-length"))
        .and_then(
            |ctx: Arc<Context>, kind: Option<String>, length: Option<u64>| async move {
                let is_json = kind
                    .as_deref()
                    .and_then(|k| k.split(';').next())
                    .is_some_and(|k| k.trim().eq_ignore_ascii_case("application/json"));
                if !is_json {
                    return Err(warp::reject::custom(ApiError::UnsupportedMediaType));
                }
                match length {
                    Some(n) if n > ctx.body_limit => Err(warp::reject::custom(
                        ApiError::PayloadTooLarge(ctx.body_limit),
                    )),
                    Some(_) => Ok(()),
                    None => Err(warp::reject::custom(ApiError::LengthRequired)),
                }
            },
        )
        .untuple_one()
        // Hyper reads exactly Content-Length bytes, which was just checked against the limit.
        .and(warp::body::bytes())
        .and_then(|body: Bytes| async move {
            serde_json::from_slice::<T>(&body).map_err(|e| {
                warp::reject::custom(ApiError::bad_request(format!("invalid JSON body: {e}")))
            })
        })
}

fn ok<R: Reply>(result: Result<R, ApiError>) -> Result<R, Rejection> {
    result.map_err(warp::reject::custom)
}

pub fn routes(
    ctx: Arc<Context>,
) -> impl Filter<Extract = (impl Reply,), Error = Infallible> + Clone {
    let c = ctx.clone();
    let like = warp::path!("v1" / "contents" / ..)
        .and(content_id())
        .and(warp::path!("like"))
        .and(
            warp::put()
                .map(|| Action::Like)
                .or(warp::delete().map(|| Action::Unlike))
                .unify(),
        )
        .and(admitted_caller(c.clone()))
        .and(with_ctx(c.clone()))
        .and_then(|content, action, _permit, user, ctx| async move {
            ok(handlers::act(ctx, content, user, action).await)
        });
    let get = warp::path!("v1" / "contents" / ..)
        .and(content_id())
        .and(warp::path::end())
        .and(warp::get())
        .and(admitted_caller(c.clone()))
        .and(with_ctx(c.clone()))
        .and_then(|content, _permit, user, ctx| async move {
            ok(handlers::get_content(ctx, content, user).await)
        });
    let batch = warp::path!("v1" / "contents:batchGet")
        .and(warp::post())
        .and(admitted_caller(c.clone()))
        .and(json_body::<handlers::BatchGetRequest>(c.clone()))
        .and(with_ctx(c.clone()))
        .and_then(|_permit, user, body, ctx| async move {
            ok(handlers::batch_get(ctx, body, user).await)
        });
    let mine = warp::path!("v1" / "me" / "likes")
        .and(warp::get())
        .and(admitted_caller(c.clone()))
        .and(warp::query::<HashMap<String, String>>())
        .and(with_ctx(c.clone()))
        .and_then(|_permit, user, query, ctx| async move {
            ok(handlers::my_likes(ctx, query, user).await)
        });
    let trending = warp::path!("v1" / "trending")
        .and(warp::get())
        .and(admitted(c.clone()))
        .and(warp::query::<HashMap<String, String>>())
        .and(with_ctx(c.clone()))
        .and_then(|_permit, query, ctx| async move { ok(handlers::trending(ctx, query).await) });
    // A token for any user, so only for a process on this machine asking directly; to anyone
    // else the route does not exist.
    let dev_token = warp::path!("v1" / "dev" / "token")
        .and(warp::post())
        .and(with_ctx(c.clone()))
        .and(peer_addr())
        .and(warp::header::headers_cloned())
        .and_then(
            |ctx: Arc<Context>, peer: Option<SocketAddr>, headers: HeaderMap| async move {
                if ctx.dev_tokens && is_direct_local_caller(peer.map(|p| p.ip()), &headers) {
                    Ok(())
                } else {
                    Err(warp::reject::not_found())
                }
            },
        )
        .untuple_one()
        .and(admitted(c.clone()))
        .and(json_body::<handlers::DevTokenRequest>(c.clone()))
        .and(with_ctx(c.clone()))
        .and_then(|_permit, body, ctx| async move { ok(handlers::dev_token(ctx, body).await) });
    // What a person who opens the printed URL sees: the page in a browser, else the JSON index.
    let index = web::index();
    let healthz = warp::path!("healthz")
        .and(warp::get())
        .map(|| warp::reply::json(&serde_json::json!({"status": "ok"})));
    let readyz = warp::path!("readyz")
        .and(warp::get())
        .and(with_ctx(c.clone()))
        .and_then(|ctx| async move { ok(handlers::readyz(ctx).await) });
    let metrics = warp::path!("metrics")
        .and(warp::get())
        .and(with_ctx(c.clone()))
        .map(|ctx: Arc<Context>| {
            warp::reply::with_header(
                ctx.metrics.render(),
                "content-type",
                "text/plain; version=0.0.4",
            )
        });
    let openapi = warp::path!("openapi.json")
        .and(warp::get())
        .map(|| warp::reply::with_header(OPENAPI, "content-type", "application/json"));

    let observed = ctx.metrics.clone();
    like.or(get)
        .or(batch)
        .or(mine)
        .or(trending)
        .or(dev_token)
        .or(healthz)
        .or(readyz)
        .or(metrics)
        .or(openapi)
        .or(index)
        .or(web::assets())
        .recover(recover)
        .with(warp::log::custom(move |info| {
            let route = route_label(info.method(), info.path());
            observed
                .http
                .with_label_values(&[route, method_label(info.method()), info.status().as_str()])
                .observe(info.elapsed().as_secs_f64());
            request_span::record_status(info.status());
        }))
        .with(warp::trace(request_span::request_span))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stub_backends;

    #[tokio::test]
    async fn health_and_readiness_answer_while_the_in_flight_bound_is_exhausted() {
        let ctx = stub_backends::context(stub_backends::backends());
        let mut held = Vec::new();
        while let Ok(permit) = ctx.admission.enter() {
            held.push(permit);
        }
        let routes = routes(ctx.clone());
        let limited = warp::test::request()
            .path("/v1/trending")
            .reply(&routes)
            .await;
        assert_eq!(limited.status(), 429, "the bound is exhausted");
        for path in ["/healthz", "/readyz"] {
            let answer = warp::test::request().path(path).reply(&routes).await;
            assert_eq!(answer.status(), 200, "{path}");
        }
    }
}
