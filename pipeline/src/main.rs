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
  likes-pipeline run              one worker: consumes the events topic through the failover
                                  subscription (each partition has one worker at a time; start
                                  more for more throughput), commits windows into the database,
                                  acks after each commit, dead-letters what cannot be applied,
                                  posts trending to Redis; SIGTERM commits the open window,
                                  closes the consumer and exits 0. Needs `init` first.
  likes-pipeline reconcile [--dry-run] [--all | --range FROM..TO | --sample N] [--batch N]
                                  recount likes per content (all by default, a range of
                                  content ids, or N random contents) in batches of N contents
                                  (default 500), report drift in like_counts and repair it,
                                  then set the state cache's counts in Redis (LIKES_REDIS_URL)
                                  to the store's, except those that moved within
                                  LIKES_MAX_PIPELINE_LAG_MS (default 30000); safe while
                                  workers commit
  likes-pipeline smoke [EVENTS]   run the worker over the embedded log into an in-memory
                                  SQLite store and check the counts (default 100000 events)
  likes-pipeline --help
  [--config FILE]                 settings file; LIKES_* variables override it

SETTINGS (environment):
  LIKES_DATABASE_URL              TiDB or any MySQL-protocol server, mysql://user:pw@host:port/db
                                  (required by init, run and reconcile)
  LIKES_PULSAR_ADMIN_URL          Pulsar's admin API, http://host:port (required by init and run)
  LIKES_PULSAR_URL                the broker, pulsar://host:port (required by run)
  LIKES_REDIS_URL                 Redis for trending (run; unset or down: no trending, a warning)
                                  and the cached counts reconcile repairs (under
                                  LIKES_REDIS__NAMESPACE, default likes)
  LIKES_PULSAR__TOPIC, LIKES_PULSAR__PARTITIONS, LIKES_PULSAR__DLQ_TOPIC
                                  topic names (default like-events with 8 partitions,
                                  like-events-dlq); LIKES_SUBSCRIPTION the workers' subscription
                                  (default likes-pipeline)
  LIKES_CONSUMER_NAME             this worker's name on it (default likes-pipeline-HOST-PID;
                                  must differ between workers)
  LIKES_RECEIVER_QUEUE            messages buffered per partition (default 250)
  LIKES_WINDOW_MAX_EVENTS, LIKES_WINDOW_MAX_AGE_MS
                                  a window commits at this many events or this age
                                  (default 4096, 50)
  LIKES_STALL_AFTER_MS            a partition with a backlog silent this long gets its consumer
                                  rebuilt (default 30000)
  LIKES_HEAP_TRIM_MS              how often run gives free heap pages back (default 5000; 0: never)
  LIKES_ADMIN_ADDR                where run serves /metrics, e.g. 0.0.0.0:9464 (default: nowhere)

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
    let telemetry = likes_shared::telemetry::init("likes-pipeline");
    let code = match run(command, &args[1..]).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => failure.report(),
    };
    telemetry.shutdown().await;
    code
}

async fn run(command: &str, rest: &[String]) -> Result<(), Failure> {
    match command {
        "init" => cli::init::run(&load()?).await,
        "run" => cli::run::run(&load()?).await,
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
