//! The span of each HTTP request, the root of a like's trace (`likes_shared::telemetry`): it
//! continues the caller's trace when the request carries a `traceparent` header, names the route
//! (never the path, which holds ids), and records the status when the answer is written. Its
//! `trace_id` field puts the id on every log line written while serving it.
//!
//! Probes, scrapes and the page's files get none. Only while traces are exported: without an exporter nothing reads the span, and a span per
//! request is a cost the hot path does not need.

use likes_shared::telemetry::{self, record_trace_id, TraceParent, TRACEPARENT};
use tracing::field::Empty;
use tracing::Span;
use warp::http::{Method, StatusCode};

/// The method as a label or span attribute: one of the methods the API knows, else `_OTHER`
/// (OpenTelemetry's convention). A client may send any token as a method, and each would
/// otherwise become a series of its own (I7).
pub fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::PUT => "PUT",
        Method::POST => "POST",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        Method::PATCH => "PATCH",
        _ => "_OTHER",
    }
}

/// For `warp::trace`: the request's span, or a disabled one while traces are off.
pub fn request_span(info: warp::trace::Info<'_>) -> Span {
    if !telemetry::traces_enabled() {
        return Span::none();
    }
    let route = route_label(info.method(), info.path());
    // Probes, scrapes and static files: a trace each every few seconds would bury the likes.
    if matches!(
        route,
        "healthz" | "readyz" | "metrics" | "openapi" | "asset" | "index"
    ) {
        return Span::none();
    }
    let method = method_label(info.method());
    let span = tracing::info_span!(
        "http.request",
        otel.name = %format_args!("{method} {route}"),
        otel.kind = "server",
        http.request.method = method,
        http.route = route,
        http.response.status_code = Empty,
        otel.status_code = Empty,
        trace_id = Empty,
    );
    let caller = info
        .request_headers()
        .get(TRACEPARENT)
        .and_then(|value| value.to_str().ok());
    if let Some(caller) = caller {
        TraceParent(caller.to_owned()).adopt_as_parent(&span);
    }
    record_trace_id(&span);
    span
}

/// Records the answer's status on the current request span (a 5xx marks it an error).
pub fn record_status(status: StatusCode) {
    let span = Span::current();
    span.record("http.response.status_code", status.as_u16());
    if status.is_server_error() {
        span.record("otel.status_code", "ERROR");
    }
}

/// A fixed label per route: paths carry ids, which must not become label values.
pub fn route_label(method: &Method, path: &str) -> &'static str {
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    match (method.as_str(), parts.as_slice()) {
        ("PUT", ["v1", "contents", _, "like"]) => "like",
        ("DELETE", ["v1", "contents", _, "like"]) => "unlike",
        ("GET", ["v1", "contents", _]) => "get_content",
        ("POST", ["v1", "contents:batchGet"]) => "batch_get",
        ("GET", ["v1", "me", "likes"]) => "my_likes",
        ("GET", ["v1", "trending"]) => "trending",
        ("POST", ["v1", "dev", "token"]) => "dev_token",
        (_, ["healthz"]) => "healthz",
        (_, ["readyz"]) => "readyz",
        (_, ["metrics"]) => "metrics",
        (_, ["openapi.json"]) => "openapi",
        (_, [""]) => "index",
        (_, ["assets", ..]) => "asset",
        _ => "other",
    }
}
