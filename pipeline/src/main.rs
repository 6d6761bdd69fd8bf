//! `likes-pipeline`: the pipeline worker of the distributed deployment and its operator
//! commands. Thin on purpose: each command lives in `cli/`, the work in the library crates.

mod cli;

use cli::Failure;
use likes_pipeline::PipelineConfig;
use std::process::ExitCode;

const HELP: &str = "likes-pipeline: consumes like events, windows and collapses them, commits them

USAGE:
  likes-pipeline init             run the database migrations and create the topics and the
                                  subscriptions (idempotent)
  likes-pipeline reconcile [--dry-run] [--all | --range FROM..TO | --sample N] [--batch N]
                                  recount likes per content (all by default, a range of
                                  content ids, or N random contents) in batches of N contents
                                  (default 500), report drift in like_counts and repair it;
                                  safe while workers commit
  likes-pipeline smoke [EVENTS]   run the worker over the embedded log into an in-memory
                                  SQLite store and check the counts (default 100000 events)
  likes-pipeline --help
  [--config FILE]                 settings file; LIKES_* variables override it

SETTINGS (environment):
  LIKES_DATABASE_URL              TiDB or any MySQL-protocol server, mysql://user:pw@host:port/db
                                  (required by init and reconcile)
  LIKES_PULSAR_ADMIN_URL          Pulsar's admin API, http://host:port (required by init)
  LIKES_PULSAR__TOPIC, LIKES_PULSAR__PARTITIONS, LIKES_PULSAR__DLQ_TOPIC
                                  topic names (default like-events with 8 partitions,
                                  like-events-dlq); LIKES_SUBSCRIPTION the workers' subscription

The distributed worker (`run`: Pulsar failover subscription -> TiDB) is not built yet.

EXIT CODES: 0 done; 1 failed (the message says why); 2 bad arguments or a missing setting;
3 reconcile --dry-run found drift.";

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> =
        likes_shared::config::without_config_flag(std::env::args().skip(1).collect());
    let Some(command) = args
        .first()
        .filter(|c| !matches!(c.as_str(), "--help" | "-h" | "help"))
    else {
        println!("{HELP}");
        return ExitCode::SUCCESS;
    };
    likes_shared::telemetry::init();
    match run(command, &args[1..]).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => failure.report(),
    }
}

async fn run(command: &str, rest: &[String]) -> Result<(), Failure> {
    match command {
        "init" => cli::init::run(&load()?).await,
        "reconcile" => {
            let request = cli::reconcile::parse(rest)?;
            cli::reconcile::run(&load()?, request).await
        }
        "smoke" => {
            let events = match rest.first() {
                None => 100_000,
                Some(n) => n
                    .parse()
                    .map_err(|_| Failure::Usage("EVENTS must be a number".into()))?,
            };
            Ok(cli::smoke::run(events).await?)
        }
        other => Err(Failure::Usage(format!(
            "unknown command `{other}` (see --help)"
        ))),
    }
}

fn load() -> Result<PipelineConfig, Failure> {
    likes_shared::config::load().map_err(|e| Failure::Usage(e.to_string()))
}
