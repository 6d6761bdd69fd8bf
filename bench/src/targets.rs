//! What the load is pointed at: the bare warp "hello" baseline, the embedded all-in-one started
//! in-process, or an address given on the command line (loopback only).

use anyhow::{bail, Context as _};
use hyper::header::HeaderValue;
use likes::{Embedded, EmbeddedConfig};
use likes_ingest::auth::Authenticator;
use likes_shared::UserId;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use warp::Filter;

/// The fixed signing secret of the in-process instance (tokens are minted, not fetched); at
/// least 32 bytes, or ingest refuses to start.
pub const BENCH_SECRET: &str = "likes-bench-secret-of-at-least-32-bytes";

/// A bare warp 0.4 server answering `GET /hello` with `hello`, bound like the service binds.
pub struct Hello {
    pub addr: SocketAddr,
    stop: oneshot::Sender<()>,
    server: JoinHandle<()>,
}

impl Hello {
    /// Must run inside the server runtime: the server task is spawned there.
    pub async fn start() -> anyhow::Result<Hello> {
        let route = warp::get().and(warp::path!("hello")).map(|| "hello");
        let (stop, stopped) = oneshot::channel::<()>();
        let listener = likes_ingest::app::listen((Ipv4Addr::LOCALHOST, 0).into())
            .context("binding the hello server")?;
        let addr = listener
            .local_addr()
            .context("the hello server's address")?;
        let server = warp::serve(route)
            .incoming(listener)
            .graceful(async move {
                let _ = stopped.await;
            })
            .run();
        let server = tokio::spawn(server);
        Ok(Hello { addr, stop, server })
    }

    pub async fn stop(self) -> anyhow::Result<()> {
        let _ = self.stop.send(());
        self.server.await.context("hello server task")
    }
}

/// The embedded all-in-one with limits raised far above what the load can reach, so admission
/// control is not what is measured. Must run inside the server runtime.
pub async fn start_embedded(data_dir: &std::path::Path) -> anyhow::Result<Embedded> {
    let mut config = EmbeddedConfig {
        data_dir: data_dir.to_path_buf(),
        log_max_bytes: 8 << 30,
        ..EmbeddedConfig::default()
    };
    config.ingest.http_addr = "127.0.0.1:0".into();
    config.ingest.auth.jwt_secret = BENCH_SECRET.into();
    config.ingest.auth.dev_tokens = false;
    let rate = &mut config.ingest.rate;
    rate.per_user_per_sec = 1_000_000;
    rate.per_user_burst = 1_000_000;
    rate.per_ip_per_sec = 100_000_000;
    rate.per_ip_burst = 100_000_000;
    rate.max_in_flight = 1_000_000;
    Embedded::start(config).await
}

/// `Bearer <jwt>` for users `1..=users`, valid for `ttl_secs`.
pub fn mint_tokens(secret: &str, users: u64, ttl_secs: u64) -> anyhow::Result<Vec<HeaderValue>> {
    let auth = Authenticator::new(secret.as_bytes(), None);
    (1..=users)
        .map(|u| {
            let user = UserId::new(u).context("user ids start at 1")?;
            let token = auth
                .issue(user, ttl_secs)
                .map_err(|e| anyhow::anyhow!("minting a token: {e}"))?;
            HeaderValue::try_from(format!("Bearer {token}")).context("token header")
        })
        .collect()
}

/// `http://127.0.0.1:8080` (or `localhost`, `[::1]`) → the socket address; anything that is not
/// plain HTTP to a loopback address is refused.
pub fn loopback_url(url: &str) -> anyhow::Result<SocketAddr> {
    let Some(rest) = url.strip_prefix("http://") else {
        bail!("only http:// URLs are driven (got {url:?})");
    };
    let authority = rest.split('/').next().unwrap_or_default();
    let (host, port) = authority
        .rsplit_once(':')
        .with_context(|| format!("{url:?} has no port"))?;
    let port: u16 = port
        .parse()
        .with_context(|| format!("bad port in {url:?}"))?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let ip: IpAddr = if host.eq_ignore_ascii_case("localhost") {
        IpAddr::V4(Ipv4Addr::LOCALHOST)
    } else {
        host.parse()
            .with_context(|| format!("{host:?} is not an IP address or localhost"))?
    };
    if !ip.is_loopback() {
        bail!("refusing to load {ip}: this tool drives loopback addresses only");
    }
    Ok(SocketAddr::new(ip, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_targets_are_accepted() {
        let ok = |u: &str| loopback_url(u).map(|a| a.to_string()).ok();
        assert_eq!(ok("http://127.0.0.1:8080"), Some("127.0.0.1:8080".into()));
        assert_eq!(ok("http://localhost:80/"), Some("127.0.0.1:80".into()));
        assert_eq!(ok("http://[::1]:9000"), Some("[::1]:9000".into()));
        assert_eq!(ok("http://10.0.0.1:8080"), None);
        assert_eq!(ok("http://example.com:80"), None);
        assert_eq!(ok("https://127.0.0.1:443"), None);
        assert_eq!(ok("http://127.0.0.1"), None);
    }
}
