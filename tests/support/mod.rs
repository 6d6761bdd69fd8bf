//! Starting the service for a test: port 0, a fresh data dir, a client. `spawn`/`spawn_app`
//! start the backend a test names ([`Backend`]); the `embedded` helpers start the all-in-one
//! with settings only it has.

#![allow(dead_code)]

mod distributed;

use likes::{Embedded, EmbeddedConfig};
use likes_ingest::auth::Authenticator;
use likes_ingest::IngestConfig;
use likes_shared::store::LikeStore;
use likes_shared::{ContentId, UserId};
use reqwest::{Client, Method, RequestBuilder, Response};
use serde_json::Value;
use std::time::{Duration, Instant};

/// At least 32 bytes: ingest refuses to start on a shorter secret.
pub const SECRET: &str = "test-secret-of-the-api-tests-32-bytes";

/// Which deployment a test of the API suite runs on (one suite, both backends).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Embedded,
    /// `likes-ingest` and a pipeline worker on the real Redis, Pulsar and TiDB.
    Distributed,
}

enum Running {
    Embedded(Embedded),
    Distributed(distributed::DistributedApp),
}

pub struct TestApp {
    running: Running,
    pub base: String,
    pub client: Client,
    pub _dir: Option<tempfile::TempDir>,
}

pub fn config(dir: &std::path::Path) -> EmbeddedConfig {
    let mut config = EmbeddedConfig {
        data_dir: dir.to_path_buf(),
        ..EmbeddedConfig::default()
    };
    config.ingest.http_addr = "127.0.0.1:0".into();
    config.ingest.auth.jwt_secret = SECRET.into();
    config.window_max_age_ms = 5;
    config
}

pub async fn spawn_app(backend: Backend) -> TestApp {
    spawn(backend, |_| {}).await
}

/// `backend` with the HTTP settings `tweak` changes.
pub async fn spawn(backend: Backend, tweak: impl FnOnce(&mut IngestConfig)) -> TestApp {
    match backend {
        Backend::Embedded => spawn_embedded(|config| tweak(&mut config.ingest)).await,
        Backend::Distributed => {
            let app = distributed::DistributedApp::start(tweak).await;
            TestApp {
                base: format!("http://{}", app.ingest.addr),
                running: Running::Distributed(app),
                client: Client::new(),
                _dir: None,
            }
        }
    }
}

pub async fn spawn_embedded(tweak: impl FnOnce(&mut EmbeddedConfig)) -> TestApp {
    spawn_in(tempfile::tempdir().expect("tempdir"), tweak).await
}

/// Starts on an existing data dir (a restart: stop the previous app first).
pub async fn spawn_in(dir: tempfile::TempDir, tweak: impl FnOnce(&mut EmbeddedConfig)) -> TestApp {
    let mut config = config(dir.path());
    tweak(&mut config);
    let app = Embedded::start(config).await.expect("app starts");
    let base = format!("http://{}", app.addr);
    TestApp {
        running: Running::Embedded(app),
        base,
        client: Client::new(),
        _dir: Some(dir),
    }
}

pub fn token(user: u64) -> String {
    Authenticator::new(SECRET.as_bytes(), None)
        .issue(UserId::new(user).expect("non-zero"), 600)
        .expect("token")
}

impl TestApp {
    /// The rows in the store whose count disagrees with the likes (I1).
    pub async fn count_mismatches(&self) -> usize {
        let mismatches = match &self.running {
            Running::Embedded(app) => app.store.count_mismatches().await,
            Running::Distributed(app) => app.store.count_mismatches().await,
        };
        mismatches.expect("check").len()
    }

    /// The store's counts of `contents` (what the pipeline committed).
    pub async fn stored_counts(&self, contents: &[u64]) -> Vec<i64> {
        let ids: Vec<ContentId> = contents
            .iter()
            .map(|c| ContentId::new(*c).expect("non-zero"))
            .collect();
        let counts = match &self.running {
            Running::Embedded(app) => LikeStore::counts(&app.store, &ids).await,
            Running::Distributed(app) => LikeStore::counts(&app.store, &ids).await,
        };
        counts.expect("counts")
    }

    /// Stops the embedded app and hands back its data dir, for a restart on it.
    pub async fn stop_keeping_data(self) -> tempfile::TempDir {
        let Running::Embedded(app) = self.running else {
            panic!("only the embedded app keeps a data dir of the test's");
        };
        app.stop().await.expect("graceful stop");
        self._dir.expect("the embedded app's data dir")
    }

    pub async fn stop(self) {
        match self.running {
            Running::Embedded(app) => app.stop().await.expect("stop"),
            Running::Distributed(app) => app.stop().await,
        }
    }

    pub fn request(&self, method: Method, path: &str, user: Option<u64>) -> RequestBuilder {
        let builder = self
            .client
            .request(method, format!("{}{}", self.base, path));
        match user {
            Some(u) => builder.bearer_auth(token(u)),
            None => builder,
        }
    }

    pub async fn like(&self, user: u64, content: u64) -> Value {
        self.json(
            self.request(
                Method::PUT,
                &format!("/v1/contents/{content}/like"),
                Some(user),
            ),
            200,
        )
        .await
    }

    pub async fn unlike(&self, user: u64, content: u64) -> Value {
        self.json(
            self.request(
                Method::DELETE,
                &format!("/v1/contents/{content}/like"),
                Some(user),
            ),
            200,
        )
        .await
    }

    /// Sends, asserts the status, returns the JSON body.
    pub async fn json(&self, request: RequestBuilder, status: u16) -> Value {
        let response = request.send().await.expect("request");
        let got = response.status().as_u16();
        let text = response.text().await.expect("body");
        assert_eq!(got, status, "body: {text}");
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
    }

    /// Sends, asserts a 4xx/5xx with the error shape and `code`, returns the body.
    pub async fn error(&self, request: RequestBuilder, status: u16, code: &str) -> Value {
        let body = self.json(request, status).await;
        assert_eq!(body["error"]["code"], code, "{body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "{body}"
        );
        body
    }

    /// The pipeline's `/metrics`: the worker's own in the distributed deployment, the one of
    /// the process in the embedded one.
    pub fn pipeline_metrics_url(&self) -> String {
        match &self.running {
            Running::Embedded(_) => format!("{}/metrics", self.base),
            Running::Distributed(app) => match app.worker_metrics {
                Some(addr) => format!("http://{addr}/metrics"),
                None => panic!("the worker serves no /metrics"),
            },
        }
    }

    pub async fn send(&self, request: RequestBuilder) -> Response {
        request.send().await.expect("request")
    }

    /// Polls `check` until it is true (the pipeline commits asynchronously).
    pub async fn eventually<F, Fut>(&self, what: &str, mut check: F)
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !check().await {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// Runs each test of the API suite on every [`Backend`]: a module per backend, the same test
/// names in each (`cargo test embedded::` or `distributed::` picks one).
#[macro_export]
macro_rules! on_every_backend {
    ($($(#[doc = $doc:literal])* async fn $name:ident($backend:ident: Backend) $body:block)*) => {
        mod embedded {
            use super::*;
            $(
                $(#[doc = $doc])*
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let $backend = Backend::Embedded;
                    $body
                }
            )*
        }
        mod distributed {
            use super::*;
            $(
                $(#[doc = $doc])*
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let $backend = Backend::Distributed;
                    $body
                }
            )*
        }
    };
}
