//! `likes-ingest`: the HTTP front door of the distributed deployment (Redis state cache, Pulsar
//! bus, TiDB reads). Thin on purpose: config, start, wait for a signal, stop.

use likes_ingest::distributed::{Distributed, DistributedConfig};
use std::process::ExitCode;

const HELP: &str =
    "likes-ingest: validates, authenticates and rate-limits likes, then publishes them

USAGE: likes-ingest [--config <file.toml>]

Required (the env file of `infra/dev/services up` sets the first three):
  LIKES_REDIS_URL         redis://host:port/      state cache, counts, trending
  LIKES_PULSAR_URL        pulsar://host:port      the events topic (LIKES_PULSAR__TOPIC)
  LIKES_DATABASE_URL      mysql://user:pw@host:port/db   TiDB, read to fill the cache
  LIKES_AUTH__JWT_SECRET  at least 32 bytes, the same on every instance
Optional: LIKES_HTTP_ADDR (127.0.0.1:8080), LIKES_DATA_DIR (./data, the spool), and every key
of README.md's configuration table. `likes-pipeline init` creates the topics and tables.

Exit codes: 0 stopped by SIGTERM/Ctrl-C after answering the requests in flight; 1 a dependency
was unreachable at start; 2 a setting is missing or malformed.";

#[tokio::main]
async fn main() -> ExitCode {
    if std::env::args().skip(1).any(|a| a == "--help" || a == "-h") {
        println!("{HELP}");
        return ExitCode::SUCCESS;
    }
    let telemetry = likes_shared::telemetry::init("likes-ingest");
    let code = serve().await;
    telemetry.shutdown().await;
    code
}

async fn serve() -> ExitCode {
    let config: DistributedConfig = match likes_shared::config::load_in_shared_env() {
        Ok(config) => config,
        Err(error) => {
            eprintln!("likes-ingest: {error}");
            return ExitCode::from(2);
        }
    };
    let app = match Distributed::start(config).await {
        Ok(app) => app,
        Err(error) => {
            eprintln!("likes-ingest: {error}");
            let missing = matches!(error, likes_ingest::distributed::StartError::Missing(_));
            return ExitCode::from(if missing { 2 } else { 1 });
        }
    };
    println!("likes-ingest is serving http://{}/", app.addr);
    app.serve_until(async {
        likes_shared::shutdown::os_signal().await;
        tracing::info!("shutting down");
    })
    .await;
    ExitCode::SUCCESS
}
