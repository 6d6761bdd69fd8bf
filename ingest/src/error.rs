//! One error type for the API: every variant maps to a status and a stable `code`, and every
//! response body is `{"error": {"code", "message"}}`. Internal causes are logged, not returned.

use serde_json::json;
use std::time::Duration;
use warp::http::{HeaderValue, StatusCode};
use warp::reply::Response;
use warp::Reply;

/// Headers a request may have (hyper's default; more is 431).
pub const MAX_HEADERS: usize = 100;

#[derive(Debug, Clone, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    NotFound(String),
    #[error("method not allowed")]
    MethodNotAllowed,
    #[error("a Content-Length header is required")]
    LengthRequired,
    #[error("request body is too large (limit {0} bytes)")]
    PayloadTooLarge(u64),
    #[error("the request target is too long")]
    UriTooLong,
    #[error("the request head is larger than {0} bytes or has more than {MAX_HEADERS} headers")]
    HeadTooLarge(usize),
    #[error("only HTTP/1.1 and HTTP/1.0 are served")]
    HttpVersionNotSupported,
    #[error("the request body did not arrive within {} ms", .0.as_millis())]
    RequestTimeout(Duration),
    #[error("Content-Type must be application/json")]
    UnsupportedMediaType,
    #[error("{message}")]
    RateLimited {
        message: String,
        retry_after: Duration,
    },
    #[error("{message}")]
    Unavailable {
        message: String,
        retry_after: Duration,
    },
}

impl ApiError {
    pub fn bad_request(message: impl Into<String>) -> Self {
        ApiError::BadRequest(message.into())
    }

    pub fn unavailable(message: impl Into<String>) -> Self {
        ApiError::Unavailable {
            message: message.into(),
            retry_after: Duration::from_secs(1),
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::LengthRequired => StatusCode::LENGTH_REQUIRED,
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::RequestTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            ApiError::UriTooLong => StatusCode::URI_TOO_LONG,
            ApiError::HeadTooLarge(_) => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            ApiError::HttpVersionNotSupported => StatusCode::HTTP_VERSION_NOT_SUPPORTED,
            ApiError::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            ApiError::BadRequest(_) => "bad_request",
            ApiError::Unauthorized(_) => "unauthorized",
            ApiError::NotFound(_) => "not_found",
            ApiError::MethodNotAllowed => "method_not_allowed",
            ApiError::LengthRequired => "length_required",
            ApiError::PayloadTooLarge(_) => "payload_too_large",
            ApiError::RequestTimeout(_) => "request_timeout",
            ApiError::UriTooLong => "uri_too_long",
            ApiError::HeadTooLarge(_) => "header_fields_too_large",
            ApiError::HttpVersionNotSupported => "http_version_not_supported",
            ApiError::UnsupportedMediaType => "unsupported_media_type",
            ApiError::RateLimited { .. } => "rate_limited",
            ApiError::Unavailable { .. } => "unavailable",
        }
    }

    /// `{"error": {"code", "message"}}`.
    pub fn body(&self) -> serde_json::Value {
        json!({ "error": { "code": self.code(), "message": self.to_string() } })
    }

    fn retry_after(&self) -> Option<Duration> {
        match self {
            ApiError::RateLimited { retry_after, .. }
            | ApiError::Unavailable { retry_after, .. } => Some(*retry_after),
            _ => None,
        }
    }
}

impl warp::reject::Reject for ApiError {}

impl Reply for ApiError {
    fn into_response(self) -> Response {
        let mut response = warp::reply::with_status(warp::reply::json(&self.body()), self.status())
            .into_response();
        if let Some(wait) = self.retry_after() {
            // Retry-After is whole seconds; round up so a client never retries too early.
            let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            if let Ok(value) = HeaderValue::from_str(&secs.max(1).to_string()) {
                response.headers_mut().insert("retry-after", value);
            }
        }
        response
    }
}

/// Turns every rejection, ours or warp's, into the JSON error shape.
pub async fn recover(rejection: warp::Rejection) -> Result<Response, std::convert::Infallible> {
    let error = if let Some(e) = rejection.find::<ApiError>() {
        e.clone()
    } else if rejection.is_not_found() {
        ApiError::NotFound("no such route".into())
    } else if rejection.find::<warp::reject::LengthRequired>().is_some() {
        ApiError::LengthRequired
    } else if rejection
        .find::<warp::reject::UnsupportedMediaType>()
        .is_some()
    {
        ApiError::UnsupportedMediaType
    } else if rejection.find::<warp::reject::MethodNotAllowed>().is_some() {
        ApiError::MethodNotAllowed
    } else if let Some(e) = rejection.find::<warp::reject::InvalidQuery>() {
        ApiError::BadRequest(e.to_string())
    } else if let Some(e) = rejection.find::<warp::reject::InvalidHeader>() {
        ApiError::BadRequest(e.to_string())
    } else if let Some(e) = rejection.find::<warp::reject::MissingHeader>() {
        ApiError::BadRequest(e.to_string())
    } else {
        tracing::warn!(?rejection, "unhandled rejection");
        ApiError::BadRequest("bad request".into())
    };
    Ok(error.into_response())
}
