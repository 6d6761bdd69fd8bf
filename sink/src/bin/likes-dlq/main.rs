//! `likes-dlq`: lists, shows, replays and purges dead letters, in the embedded file or on the
//! distributed deployment's dead-letter topic. Thin on purpose: the work is in
//! `likes_sink::dlq` (and `dlq::topic`); this parses arguments, picks where the letters are,
//! prints, and turns failures into the documented exit codes.
//!
//! The topic mode exists only when likes-sink is built with its `pulsar` feature (as
//! `cargo build --workspace` does); without it the binary still works on the file, which is
//! why this is `cfg` and not `required-features`.

mod args;
#[cfg(feature = "pulsar")]
mod topic;

use anyhow::Context as _;
use args::{Command, Target, UsageError};
use likes_sink::dead_letter::DeadLetter;
use likes_sink::dlq::{self, DlqConfig, DlqError, Failure};
use std::process::ExitCode;

const HELP: &str = "likes-dlq: list, show, replay and purge dead-lettered like events

USAGE:
  likes-dlq list                        how many letters, events, the oldest failure, the count
                                        per kind, then one line per letter (oldest first)
  likes-dlq show N                      letter N of the list (1 = oldest), as JSON
  likes-dlq replay [--dry-run] [--error KIND]
                                        re-send the letters' original events (see WHERE), then
                                        remove those letters; KIND: store_refused (undecodable
                                        records are never replayed: purge them)
  likes-dlq purge --older-than DUR      remove letters that first failed more than DUR ago
                                        (DUR: 90s, 30m, 12h, 7d)
OPTIONS (anywhere on the line):
  --file                                the embedded file, even if LIKES_PULSAR_URL is set
  --pulsar URL                          the dead-letter topic on the broker at URL
  --pulsar-admin URL                    the broker's admin API (default LIKES_PULSAR_ADMIN_URL)
  --config FILE                         settings file; LIKES_* variables as for the other binaries

WHERE the letters are:
  The dead-letter topic when --pulsar URL is given or LIKES_PULSAR_URL is set (the services
  env file sets it), unless --file is given; otherwise the embedded file.

  Topic (distributed deployment): LIKES_PULSAR__DLQ_TOPIC (default
  persistent://public/default/like-events-dlq), read through the durable exclusive
  subscription LIKES_PULSAR__DLQ_SUBSCRIPTION (default likes-dlq); LIKES_PULSAR_ADMIN_URL is
  required. `list` and `show` consume nothing. `replay` publishes each letter's events to
  LIKES_PULSAR__TOPIC (default like-events, key = content id) and acknowledges the letter only
  once the broker has acked all of them. `purge` acknowledges the old letters. One run reads at
  most 10000 letters; run again for more. Each wait on the broker is bounded by
  LIKES_PULSAR_WAIT_SECS (default 10).

  File (embedded all-in-one): LIKES_DATA_DIR (default ./data), the letters in
  dead-letters.jsonl; `replay` appends the events to the log in log/. `replay` and `purge` need
  `likes` to be STOPPED: the log has one owner at a time, and `likes` appends to the letters
  file while it runs. The next start of `likes` applies the replayed events.

  Either way the sink ignores versions it already holds, so a replay never double-counts and
  a second replay changes nothing.

EXIT CODES:
  0  done
  1  any other failure (I/O, a replay that stopped part way: what was replayed is removed)
  2  bad argument or setting (usage, KIND, DUR, no letter N, a bad topic name, a required URL
     missing, topic mode asked of a build without it)
  3  the broker or its admin API is unreachable, or its URL is malformed
  4  the dead-letter topic (or, for replay, the events topic) does not exist
  5  busy: a running `likes` owns the log, or another likes-dlq holds the subscription";

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("likes-dlq: {error:#}");
            ExitCode::from(failure_of(&error).exit_code())
        }
    }
}

async fn run() -> anyhow::Result<()> {
    let invocation = args::parse(std::env::args().skip(1).collect())?;
    if invocation.command == Command::Help {
        println!("{HELP}");
        return Ok(());
    }
    // pulsar-rs logs every subscribe attempt at `warn`, each connection retry and a consumer
    // closed twice at exit at `error`; what matters reaches the user as this binary's one-line
    // error. `RUST_LOG=pulsar=debug` shows it all.
    // Logs only: a command-line tool, whose output is the report.
    likes_shared::telemetry::init_logs("info,pulsar=off");
    let config: DlqConfig = likes_shared::config::load()?;
    let env_url = config.pulsar_url.clone().filter(|url| !url.is_empty());
    let pulsar_url = match invocation.target {
        Target::File => None,
        Target::Pulsar(url) => Some(url),
        Target::Auto => env_url,
    };
    match pulsar_url {
        None => file_mode(&config, invocation.command).await,
        Some(url) => topic_mode(&config, url, invocation.admin_url, invocation.command).await,
    }
}

#[cfg(feature = "pulsar")]
async fn topic_mode(
    config: &DlqConfig,
    url: String,
    admin_url: Option<String>,
    command: Command,
) -> anyhow::Result<()> {
    topic::run(config, url, admin_url, command).await
}

#[cfg(not(feature = "pulsar"))]
async fn topic_mode(
    _config: &DlqConfig,
    url: String,
    _admin_url: Option<String>,
    _command: Command,
) -> anyhow::Result<()> {
    Err(UsageError(format!(
        "the dead-letter topic ({url}, from --pulsar or LIKES_PULSAR_URL) needs a likes-dlq built \
         with Pulsar support (`cargo build -p likes-sink --features pulsar --bin likes-dlq`, or \
         `cargo build --workspace`); add --file to work on the embedded file"
    ))
    .into())
}

async fn file_mode(config: &DlqConfig, command: Command) -> anyhow::Result<()> {
    let file = config.letters();
    match command {
        Command::Help => println!("{HELP}"),
        Command::List => {
            let letters = file.read_all()?;
            print_list(&file.path().display().to_string(), &letters, None);
        }
        Command::Show(n) => {
            let letters = file.read_all()?;
            let Some(letter) = n.checked_sub(1).and_then(|i| letters.get(i)) else {
                return Err(UsageError(format!(
                    "no letter {n}: there are {} (numbered from 1)",
                    letters.len()
                ))
                .into());
            };
            println!("{}", serde_json::to_string_pretty(letter)?);
        }
        Command::Replay { dry_run, kind } => {
            let report = dlq::replay(config, kind, dry_run).await?;
            let verb = if dry_run { "would replay" } else { "replayed" };
            println!(
                "{verb} {} letters, {} events into {}; {} letters kept",
                report.letters,
                report.events,
                config.data_dir.join("log").display(),
                report.kept
            );
        }
        Command::Purge { older_than, text } => {
            let removed = dlq::purge(config, older_than, likes_shared::hlc::now_ms())
                .await
                .context("purge")?;
            println!("purged {removed} letters older than {text}");
        }
    }
    Ok(())
}

/// `list`'s output, the same for the file and the topic. `total` is the topic's backlog when
/// it holds more than one run reads.
fn print_list(place: &str, letters: &[DeadLetter], total: Option<u64>) {
    let summary = dlq::summarize(letters);
    println!(
        "{} dead letters in {place} ({} events, {} undecodable records)",
        summary.letters, summary.events, summary.undecodable_records
    );
    if let Some(total) = total.filter(|&total| total > letters.len() as u64) {
        println!(
            "(the backlog holds {total}; this run read the first {})",
            letters.len()
        );
    }
    if let Some(oldest) = summary.oldest_first_failed_at_ms {
        println!("oldest first failure: {}", dlq::format_utc(oldest));
    }
    for (kind, count) in &summary.kinds {
        println!("  {}: {count}", kind.name());
    }
    for (n, letter) in letters.iter().enumerate() {
        println!("{}", line(n + 1, letter));
    }
}

fn line(n: usize, letter: &DeadLetter) -> String {
    const ERROR_CHARS: usize = 100;
    let error: String = letter.error.chars().take(ERROR_CHARS).collect();
    format!(
        "#{n} {} {} events={} records={} attempts={} error: {error}",
        dlq::format_utc(letter.first_failed_at_ms),
        letter.kind.name(),
        letter.events.len(),
        letter.undecodable.len(),
        letter.attempts,
    )
}

/// The exit code's kind: the first error in the chain that knows its own.
fn failure_of(error: &anyhow::Error) -> Failure {
    for cause in error.chain() {
        if cause.is::<UsageError>() || cause.is::<likes_shared::config::ConfigError>() {
            return Failure::BadArgument;
        }
        if let Some(e) = cause.downcast_ref::<DlqError>() {
            return e.failure();
        }
        #[cfg(feature = "pulsar")]
        if let Some(e) = cause.downcast_ref::<likes_sink::dlq::topic::TopicDlqError>() {
            return e.failure();
        }
    }
    Failure::Other
}
