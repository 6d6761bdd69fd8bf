//! hyper refuses some requests before any service sees them — a head over the size or header
//! limit (431), a request target over its 64 KiB (414), a request line or header it cannot parse,
//! conflicting `Content-Length`s (400) — and answers them with an empty body, then closes. The
//! API's contract is a JSON error on every 4xx, and hyper has no hook to shape these, so the
//! socket recognises such an answer as it is written and writes the JSON one in its place.
//!
//! What marks hyper's own answer: a 4xx or 5xx head with `content-length: 0`. Every error the
//! routes answer carries a JSON body, so none of theirs looks like this. A refusal hyper queued
//! behind a pipelined response in the same write is not recognised and goes out as hyper wrote it
//! (with its status, without a body).

use crate::error::ApiError;
use warp::http::StatusCode;

/// If `written` begins with a refusal hyper wrote itself: the response to write instead, and how
/// many of `written`'s bytes (its head) it stands for.
pub fn replacement(written: &[u8], max_header_bytes: usize) -> Option<(Vec<u8>, usize)> {
    if !(written.starts_with(b"HTTP/1.1 ") || written.starts_with(b"HTTP/1.0 ")) {
        return None;
    }
    let head_len = written.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let head = std::str::from_utf8(&written[..head_len]).ok()?;
    let status: u16 = head.get(9..12)?.parse().ok()?;
    let status = StatusCode::from_u16(status).ok()?;
    let empty = head
        .lines()
        .any(|line| line.eq_ignore_ascii_case("content-length: 0"));
    if !(status.is_client_error() || status.is_server_error()) || !empty {
        return None;
    }
    let error = match status {
        StatusCode::URI_TOO_LONG => ApiError::UriTooLong,
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE => ApiError::HeadTooLarge(max_header_bytes),
        StatusCode::HTTP_VERSION_NOT_SUPPORTED => ApiError::HttpVersionNotSupported,
        StatusCode::BAD_REQUEST => ApiError::bad_request(
            "the request is not valid HTTP/1.1: its request line or a header cannot be parsed, \
             or its Content-Length headers disagree",
        ),
        _ => return None,
    };
    let body = error.body().to_string();
    let response = format!(
        "HTTP/1.1 {} {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
         connection: close\r\n\r\n{body}",
        status.as_str(),
        status.canonical_reason().unwrap_or(""),
        body.len(),
    );
    Some((response.into_bytes(), head_len))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hypers_empty_refusals_are_replaced_by_json_and_nothing_else_is() {
        let refusal = b"HTTP/1.1 431 Request Header Fields Too Large\r\nconnection: close\r\n\
                        content-length: 0\r\ndate: Wed, 25 Nov 2026 10:00:52 GMT\r\n\r\n";
        let (bytes, stands_for) = replacement(refusal, 32_768).expect("replaced");
        assert_eq!(stands_for, refusal.len());
        let text = String::from_utf8(bytes).expect("text");
        let (head, body) = text.split_once("\r\n\r\n").expect("a head");
        assert!(head.starts_with("HTTP/1.1 431 "), "{head}");
        assert!(
            head.contains(&format!("content-length: {}", body.len())),
            "{head}"
        );
        let body: serde_json::Value = serde_json::from_str(body).expect("JSON");
        assert_eq!(body["error"]["code"], "header_fields_too_large");

        let ours = b"HTTP/1.1 404 Not Found\r\ncontent-type: application/json\r\n\
                     content-length: 55\r\n\r\n{\"error\":{}}";
        assert!(replacement(ours, 1).is_none(), "a route's error has a body");
        let ok = b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n";
        assert!(replacement(ok, 1).is_none());
        assert!(replacement(b"{\"items\":[]}", 1).is_none(), "a body chunk");
    }
}
