//! `likes-ingest` configuration: defaults that run locally, a TOML file, `LIKES_*` variables.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// HS256 secret for bearer JWTs, at least 32 bytes (shorter ones stop the start). Empty: the
    /// binary picks one (see its docs).
    pub jwt_secret: String,
    /// Behind a gateway that authenticates: trust this header as the user id instead of a JWT.
    pub trusted_user_header: Option<String>,
    /// Serve `POST /v1/dev/token`. Honoured only on a loopback address, and then only to
    /// loopback peers that send no forwarding header (`X-Forwarded-For`, `Forwarded`,
    /// `X-Real-IP`): a local proxy would otherwise hand tokens to anyone.
    pub dev_tokens: bool,
    /// Lifetime of issued dev tokens (at most `max_token_lifetime_secs`).
    pub dev_token_ttl_secs: u64,
    /// Longest lifetime a bearer token may claim: one whose `exp` lies further ahead (of its
    /// `iat`, or of now) is refused, so a leaked token cannot be valid for years.
    pub max_token_lifetime_secs: u64,
    /// Dev tokens minted per second across the process (a burst of as many): the demo needs a
    /// few, a loop minting users needs many.
    pub dev_tokens_per_sec: u32,
    /// Dev tokens name users `1..=dev_token_max_user_id` only, so the demo's users are bounded.
    pub dev_token_max_user_id: u64,
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            jwt_secret: String::new(),
            trusted_user_header: None,
            dev_tokens: false,
            dev_token_ttl_secs: 24 * 3600,
            max_token_lifetime_secs: crate::auth::DEFAULT_MAX_TOKEN_LIFETIME_SECS,
            dev_tokens_per_sec: 10,
            dev_token_max_user_id: 10_000,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RateLimitConfig {
    /// Sustained requests per second per user, and the burst above it.
    pub per_user_per_sec: u32,
    pub per_user_burst: u32,
    /// Sustained requests per second per client IP, and the burst above it.
    pub per_ip_per_sec: u32,
    pub per_ip_burst: u32,
    /// Requests being served at once across the instance; past it, 429.
    pub max_in_flight: usize,
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        RateLimitConfig {
            per_user_per_sec: 20,
            per_user_burst: 40,
            per_ip_per_sec: 2_000,
            per_ip_burst: 4_000,
            max_in_flight: 4_096,
        }
    }
}

/// How long a client may take and how many connections it may hold (`LIKES_HTTP__*`): what keeps
/// slow or idle clients from holding the process's slots and file descriptors.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpServerConfig {
    /// A request's head (request line and headers) must arrive within this, counted from the
    /// connection's accept or the head's first byte; else the connection is closed.
    pub header_timeout_ms: u64,
    /// A request's body must arrive whole within this after its head; else 408 and the
    /// connection is closed.
    pub body_timeout_ms: u64,
    /// A keep-alive connection with no request for this long is closed. Above the idle timeout
    /// of the usual load balancers (60 s), so the balancer, not ingest, closes first.
    pub idle_timeout_ms: u64,
    /// Connections open at once; past it new ones wait in the accept backlog. Lowered at start
    /// to fit the process's open-file limit (with room for its other files and sockets).
    pub max_connections: usize,
    /// Largest request head (request line and headers), in bytes; 431 above (at most 100
    /// headers, too). Each connection may buffer this much.
    pub max_header_bytes: usize,
}

impl Default for HttpServerConfig {
    fn default() -> Self {
        HttpServerConfig {
            header_timeout_ms: 10_000,
            body_timeout_ms: 10_000,
            idle_timeout_ms: 75_000,
            max_connections: 16_384,
            max_header_bytes: 32 * 1024,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IngestConfig {
    /// Address the API listens on (`LIKES_HTTP_ADDR`).
    pub http_addr: String,
    /// Largest request body accepted, in bytes (413 above).
    pub body_limit_bytes: u64,
    /// Take the client IP from `X-Forwarded-For` (only behind a trusted proxy): the entry the
    /// outermost trusted proxy appended, `trusted_proxy_hops` from the right.
    pub trust_forwarded_for: bool,
    /// Proxies in front of ingest that each append to `X-Forwarded-For`: 1 (the rightmost entry)
    /// for one Nginx; entries left of the chosen one are the client's and never trusted.
    pub trusted_proxy_hops: usize,
    pub http: HttpServerConfig,
    pub auth: AuthConfig,
    pub rate: RateLimitConfig,
    /// Names this instance in events (`source`); defaults to host name and pid.
    pub instance_id: String,
}

impl Default for IngestConfig {
    fn default() -> Self {
        IngestConfig {
            http_addr: "127.0.0.1:8080".into(),
            body_limit_bytes: 16 * 1024,
            trust_forwarded_for: false,
            trusted_proxy_hops: 1,
            http: HttpServerConfig::default(),
            auth: AuthConfig::default(),
            rate: RateLimitConfig::default(),
            instance_id: String::new(),
        }
    }
}

impl IngestConfig {
    pub fn instance_id(&self) -> String {
        if !self.instance_id.is_empty() {
            return self.instance_id.clone();
        }
        let host = std::fs::read_to_string("/etc/hostname").unwrap_or_default();
        format!("{}-{}", host.trim(), std::process::id())
    }
}
