//! `likes`: the embedded all-in-one. Thin on purpose: config, start, wait for a signal, stop.

use likes::{Embedded, EmbeddedConfig};

const HELP: &str = "likes: the like service, all in one process (embedded backends)

USAGE: likes [--config <file.toml>]

Serves the HTTP API on LIKES_HTTP_ADDR (default 127.0.0.1:8080) with data under
LIKES_DATA_DIR (default ./data). See README.md for every setting.";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    if std::env::args().any(|a| a == "--help" || a == "-h") {
        println!("{HELP}");
        return Ok(());
    }
    let telemetry = likes_shared::telemetry::init("likes");
    let served = serve().await;
    telemetry.shutdown().await;
    served
}

async fn serve() -> anyhow::Result<()> {
    let config: EmbeddedConfig = likes_shared::config::load()?;
    let data_dir = config.data_dir.clone();
    let app = Embedded::start(config).await?;
    println!(
        "likes is serving http://{}/ (data in {})",
        app.addr,
        data_dir.display()
    );
    app.serve_until(async {
        likes_shared::shutdown::os_signal().await;
        tracing::info!("shutting down");
    })
    .await
}
