//! The web page: `/` answers a browser (one that asks for `text/html`) with the page and any
//! other client with the JSON index; the page's files are under `/assets/`. Everything is
//! compiled into the binary from `ingest/web/` (plain ES modules, no build step), so nothing is
//! fetched at run time, and every file goes out with a Content-Security-Policy that lets the
//! page load code, styles and data from this origin only.

use warp::http::header::{HeaderValue, CACHE_CONTROL, CONTENT_TYPE, VARY};
use warp::reply::Response;
use warp::{Filter, Rejection, Reply};

/// Scripts, styles, images and fetches from this origin only; no plugins, frames, forms posted
/// elsewhere or `<base>`. The page has no inline script or style, so nothing needs a hash.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; img-src 'self'; connect-src 'self'; base-uri 'none'; \
     form-action 'self'; frame-ancestors 'none'";

const HTML: &str = "text/html; charset=utf-8";
const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";
const SVG: &str = "image/svg+xml";

/// One embedded file: its path under `/assets/`, its type and its bytes.
struct Asset {
    path: &'static str,
    content_type: &'static str,
    body: &'static [u8],
}

macro_rules! asset {
    ($path:literal, $content_type:expr) => {
        Asset {
            path: $path,
            content_type: $content_type,
            body: include_bytes!(concat!("../web/", $path)),
        }
    };
}

const PAGE: &[u8] = include_bytes!("../web/index.html");

const ASSETS: &[Asset] = &[
    asset!("style.css", CSS),
    asset!("icon.svg", SVG),
    asset!("js/main.js", JS),
    asset!("js/api.js", JS),
    asset!("js/cards.js", JS),
    asset!("js/mine.js", JS),
    asset!("js/session.js", JS),
    asset!("js/status.js", JS),
    asset!("js/store.js", JS),
    asset!("js/titles.js", JS),
    asset!("js/trending.js", JS),
];

/// Whether an `Accept` header prefers HTML to JSON: `text/html` named with a quality above
/// that of `application/json` (a wildcard counts for neither, so `*/*` gets JSON).
pub fn prefers_html(accept: Option<&str>) -> bool {
    let Some(accept) = accept else {
        return false;
    };
    let quality = |wanted: &str| {
        accept
            .split(',')
            .filter_map(|range| {
                let mut parts = range.split(';');
                let kind = parts.next()?.trim();
                if !kind.eq_ignore_ascii_case(wanted) {
                    return None;
                }
                let q = parts
                    .filter_map(|p| p.trim().strip_prefix("q="))
                    .find_map(|q| q.trim().parse::<f32>().ok())
                    .unwrap_or(1.0);
                Some(q)
            })
            .fold(0.0_f32, f32::max)
    };
    let html = quality("text/html");
    html > 0.0 && html > quality("application/json")
}

/// A file of the page with its type and the headers every such file carries.
fn file(content_type: &'static str, body: &'static [u8]) -> Response {
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(
        "content-security-policy",
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    headers.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
    // Revalidated each time: a new binary's page is seen at once (the files are small).
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

/// What an API client that opens `/` gets: where to go next.
fn json_index() -> Response {
    warp::reply::json(&serde_json::json!({
        "service": "likes",
        "page": "/ (with Accept: text/html)",
        "api": "/v1",
        "openapi": "/openapi.json",
        "health": "/healthz",
        "ready": "/readyz",
        "metrics": "/metrics",
    }))
    .into_response()
}

/// `GET /`: the page for a browser, the JSON index for anyone else.
pub fn index() -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    warp::path::end()
        .and(warp::get())
        .and(warp::header::optional::<String>("accept"))
        .map(|accept: Option<String>| {
            let mut response = if prefers_html(accept.as_deref()) {
                file(HTML, PAGE)
            } else {
                json_index()
            };
            // One URL, two representations: a cache must key on Accept.
            response
                .headers_mut()
                .insert(VARY, HeaderValue::from_static("accept"));
            response
        })
}

/// `GET /assets/<file>`: one of the embedded files, or 404.
pub fn assets() -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    warp::path("assets")
        .and(warp::path::tail())
        .and(warp::get())
        .and_then(|tail: warp::path::Tail| async move {
            ASSETS
                .iter()
                .find(|asset| asset.path == tail.as_str())
                .map(|asset| file(asset.content_type, asset.body))
                .ok_or_else(warp::reject::not_found)
        })
}

/// Both routes, for tests that want only the page.
pub fn routes() -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    index().or(assets()).unify()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::filters;
    use crate::stub_backends;

    const BROWSER: &str = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8";

    async fn get(path: &str, accept: Option<&str>) -> warp::http::Response<bytes::Bytes> {
        let routes = filters::routes(stub_backends::context(stub_backends::backends()));
        let mut request = warp::test::request().path(path);
        if let Some(accept) = accept {
            request = request.header("accept", accept);
        }
        request.reply(&routes).await
    }

    fn header<'r>(response: &'r warp::http::Response<bytes::Bytes>, name: &str) -> &'r str {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    }

    #[test]
    fn html_only_for_clients_that_ask_for_it_over_json() {
        assert!(prefers_html(Some(BROWSER)));
        assert!(prefers_html(Some("text/html")));
        assert!(prefers_html(Some("application/json;q=0.5, TEXT/HTML")));
        assert!(!prefers_html(None));
        assert!(!prefers_html(Some("*/*")));
        assert!(!prefers_html(Some("application/json")));
        assert!(!prefers_html(Some("text/html;q=0, */*")));
        assert!(!prefers_html(Some("text/html, application/json")));
        assert!(!prefers_html(Some("text/html;q=0.5, application/json")));
    }

    #[tokio::test]
    async fn a_browser_gets_the_page_under_a_strict_policy() {
        let page = get("/", Some(BROWSER)).await;
        assert_eq!(page.status(), 200);
        assert_eq!(header(&page, "content-type"), "text/html; charset=utf-8");
        assert_eq!(
            header(&page, "content-security-policy"),
            CONTENT_SECURITY_POLICY
        );
        assert_eq!(header(&page, "x-content-type-options"), "nosniff");
        assert_eq!(header(&page, "vary"), "accept");
        let html = std::str::from_utf8(page.body()).expect("utf-8");
        assert!(html.contains(r#"<script type="module" src="/assets/js/main.js">"#));
        // The policy has no 'unsafe-inline': the page must not need it.
        assert!(
            !html.contains("<script>") && !html.contains("style="),
            "{html}"
        );
        for directive in [
            "default-src 'none'",
            "script-src 'self'",
            "connect-src 'self'",
        ] {
            assert!(CONTENT_SECURITY_POLICY.contains(directive), "{directive}");
        }
        assert!(!CONTENT_SECURITY_POLICY.contains("unsafe"));
    }

    #[tokio::test]
    async fn api_clients_get_the_json_index() {
        for accept in [None, Some("*/*"), Some("application/json")] {
            let index = get("/", accept).await;
            assert_eq!(index.status(), 200, "{accept:?}");
            assert_eq!(header(&index, "content-type"), "application/json");
            assert_eq!(header(&index, "vary"), "accept");
            let body: serde_json::Value = serde_json::from_slice(index.body()).expect("json");
            assert_eq!(body["openapi"], "/openapi.json", "{accept:?}");
        }
    }

    #[tokio::test]
    async fn every_file_the_page_names_is_served_with_its_type() {
        let html = std::str::from_utf8(PAGE).expect("utf-8");
        let mut named: Vec<String> = html
            .split("\"/assets/")
            .skip(1)
            .filter_map(|rest| rest.split('"').next().map(str::to_owned))
            .collect();
        // Modules import each other by relative path: `from './api.js'`.
        for asset in ASSETS.iter().filter(|a| a.content_type == JS) {
            let code = std::str::from_utf8(asset.body).expect("utf-8");
            for import in code.split("from './").skip(1) {
                let file = import.split('\'').next().unwrap_or_default();
                named.push(format!("js/{file}"));
            }
        }
        assert!(named.len() > ASSETS.len(), "{named:?}");
        for path in named {
            let asset = get(&format!("/assets/{path}"), None).await;
            assert_eq!(asset.status(), 200, "{path}");
            let expected = match path.rsplit('.').next() {
                Some("js") => JS,
                Some("css") => CSS,
                Some("svg") => SVG,
                other => panic!("{path}: unexpected extension {other:?}"),
            };
            assert_eq!(header(&asset, "content-type"), expected, "{path}");
            assert_eq!(
                header(&asset, "content-security-policy"),
                CONTENT_SECURITY_POLICY,
                "{path}"
            );
        }
    }

    #[tokio::test]
    async fn an_unknown_file_is_the_json_404() {
        for path in ["/assets/nope.js", "/assets/../src/lib.rs", "/assets/"] {
            let missing = get(path, Some(BROWSER)).await;
            assert_eq!(missing.status(), 404, "{path}");
            let body: serde_json::Value = serde_json::from_slice(missing.body()).expect("json");
            assert_eq!(body["error"]["code"], "not_found", "{path}");
        }
    }
}
