//! Building and running the HTTP server, in the zero-to-production shape: `build` binds (port 0
//! in tests), `local_addr` tells where, `run_until_stopped` serves until the shutdown signal and
//! lets requests in flight finish.

use crate::auth::Authenticator;
use crate::client_addr::{ClientAddrSource, NoTrustedHops};
use crate::config::IngestConfig;
use crate::dev_token_mint::DevTokenMint;
use crate::filters::{routes, Context};
use crate::http_server::{self, ServeRules};
use crate::limits::Admission;
use crate::metrics::Metrics;
use crate::readiness::ReadinessProbe;
use crate::service::{Backends, LikeService};
use likes_shared::shutdown::Shutdown;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("cannot listen on {addr}: {reason}")]
    Bind { addr: String, reason: String },
    #[error("metrics: {0}")]
    Metrics(#[from] prometheus::Error),
    #[error(
        "the JWT secret auth.jwt_secret (LIKES_AUTH__JWT_SECRET) has {len} bytes; it needs at \
         least {MIN_JWT_SECRET_BYTES} (e.g. `openssl rand -hex 32`)"
    )]
    WeakSecret { len: usize },
    #[error(
        "auth.dev_token_ttl_secs ({ttl}) exceeds auth.max_token_lifetime_secs ({max}): every dev \
         token would be refused"
    )]
    DevTokenTtl { ttl: u64, max: u64 },
    #[error(transparent)]
    NoTrustedHops(#[from] NoTrustedHops),
}

/// HS256 keys shorter than the hash (32 bytes) can be brute-forced offline from one token
/// (RFC 7518 section 3.2 requires at least this much).
pub const MIN_JWT_SECRET_BYTES: usize = 32;

pub struct Application {
    addr: SocketAddr,
    server: std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>,
    ctx: Arc<Context>,
}

impl Application {
    /// Binds the listener. `jwt_secret` must have at least [`MIN_JWT_SECRET_BYTES`] bytes, also
    /// when a trusted header is configured: bearer tokens are still accepted then, and a weak
    /// secret would let anyone sign one.
    pub async fn build(
        config: &IngestConfig,
        backends: Backends,
        shutdown: Shutdown,
    ) -> Result<Self, BuildError> {
        Self::build_with_metrics(config, backends, shutdown, Arc::new(Metrics::new()?)).await
    }

    /// [`Self::build`], serving `metrics` on `/metrics`: for backends that count into it too
    /// (the spool).
    pub async fn build_with_metrics(
        config: &IngestConfig,
        backends: Backends,
        mut shutdown: Shutdown,
        metrics: Arc<Metrics>,
    ) -> Result<Self, BuildError> {
        let secret_len = config.auth.jwt_secret.len();
        if secret_len < MIN_JWT_SECRET_BYTES {
            return Err(BuildError::WeakSecret { len: secret_len });
        }
        if config.auth.dev_token_ttl_secs > config.auth.max_token_lifetime_secs {
            return Err(BuildError::DevTokenTtl {
                ttl: config.auth.dev_token_ttl_secs,
                max: config.auth.max_token_lifetime_secs,
            });
        }
        let client_addr =
            ClientAddrSource::new(config.trust_forwarded_for, config.trusted_proxy_hops)?;
        let addr: SocketAddr =
            config
                .http_addr
                .parse()
                .map_err(|e: std::net::AddrParseError| BuildError::Bind {
                    addr: config.http_addr.clone(),
                    reason: e.to_string(),
                })?;
        let dev_tokens = config.auth.dev_tokens && addr.ip().is_loopback();
        if config.auth.dev_tokens && !dev_tokens {
            tracing::warn!(%addr, "dev tokens stay off: they are served only on a loopback address");
        }
        let readiness = ReadinessProbe::new(
            backends.clone(),
            ReadinessProbe::FRESH_FOR,
            ReadinessProbe::PING_TIMEOUT,
        );
        let ctx = Arc::new(Context {
            service: LikeService::new(backends, config.instance_id(), metrics.clone()),
            auth: Authenticator::new(
                config.auth.jwt_secret.as_bytes(),
                config.auth.trusted_user_header.clone(),
            )
            .with_max_lifetime_secs(config.auth.max_token_lifetime_secs),
            admission: Admission::new(&config.rate, metrics.rate_limited.clone()),
            metrics,
            body_limit: config.body_limit_bytes,
            client_addr,
            readiness,
            dev_tokens,
            dev_token_mint: DevTokenMint::new(&config.auth),
        });
        let bind_error = |e: std::io::Error| BuildError::Bind {
            addr: config.http_addr.clone(),
            reason: e.to_string(),
        };
        let listener = listen(addr).map_err(bind_error)?;
        let addr = listener.local_addr().map_err(bind_error)?;
        let rules = ServeRules::new(
            &config.http,
            config.body_limit_bytes,
            ctx.metrics.connections_open.clone(),
        );
        // Stops accepting on the signal, then waits for the requests in flight.
        let server = http_server::serve(
            listener,
            warp::service(routes(ctx.clone())),
            rules,
            async move { shutdown.wait().await },
        );
        Ok(Application {
            addr,
            server: Box::pin(server),
            ctx,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Serves until shutdown; returns once requests in flight are answered.
    pub async fn run_until_stopped(self) {
        let ctx = self.ctx.clone();
        let housekeeping = tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(10));
            loop {
                tick.tick().await;
                ctx.admission.housekeeping();
            }
        });
        self.server.await;
        housekeeping.abort();
    }
}

/// A listener whose accepted connections have TCP_NODELAY, as warp 0.3 set on each one (a small
/// response must not wait for the client's delayed ACK). warp 0.4 accepts from a plain
/// `TcpListener` and sets nothing, so the option is set on the listening socket, whose accepted
/// sockets inherit it (Linux and the BSDs; a test below checks it).
pub fn listen(addr: SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    // As std's and tokio's `TcpListener::bind` do on Unix: a restart may rebind at once.
    #[cfg(unix)]
    socket.set_reuseaddr(true)?;
    socket.set_nodelay(true)?;
    socket.bind(addr)?;
    socket.listen(1024)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stub_backends;

    fn config(secret: &str, trusted_user_header: Option<&str>) -> IngestConfig {
        let mut config = IngestConfig {
            http_addr: "127.0.0.1:0".into(),
            ..IngestConfig::default()
        };
        config.auth.jwt_secret = secret.into();
        config.auth.trusted_user_header = trusted_user_header.map(str::to_owned);
        config
    }

    async fn build(config: &IngestConfig) -> Result<Application, BuildError> {
        let (_trigger, shutdown) = likes_shared::shutdown::channel();
        Application::build(config, stub_backends::backends(), shutdown).await
    }

    async fn refusal(config: &IngestConfig) -> BuildError {
        match build(config).await {
            Ok(_) => panic!("started with the secret {:?}", config.auth.jwt_secret),
            Err(error) => error,
        }
    }

    #[tokio::test]
    async fn an_empty_secret_is_refused_even_behind_a_trusted_header() {
        let error = refusal(&config("", Some("X-User-Id"))).await;
        assert!(
            error.to_string().contains("LIKES_AUTH__JWT_SECRET"),
            "{error}"
        );
    }

    #[tokio::test]
    async fn a_secret_shorter_than_32_bytes_is_refused_with_or_without_a_trusted_header() {
        for header in [None, Some("X-User-Id")] {
            for secret in ["test-secret", &"x".repeat(31)] {
                let error = refusal(&config(secret, header)).await;
                assert!(
                    error.to_string().contains("LIKES_AUTH__JWT_SECRET"),
                    "{error}"
                );
            }
        }
    }

    #[tokio::test]
    async fn accepted_connections_have_tcp_nodelay() {
        let listener = listen("127.0.0.1:0".parse().expect("an address")).expect("binds");
        let addr = listener.local_addr().expect("bound");
        let (client, accepted) =
            tokio::join!(tokio::net::TcpStream::connect(addr), listener.accept());
        let _client = client.expect("connects");
        let (accepted, _) = accepted.expect("accepts");
        assert!(accepted.nodelay().expect("reads the option"));
    }

    #[tokio::test]
    async fn a_32_byte_secret_starts() {
        build(&config(&"x".repeat(32), None))
            .await
            .map(|_| ())
            .expect("starts");
    }
}
