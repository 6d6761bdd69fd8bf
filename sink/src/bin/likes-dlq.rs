//! `likes-dlq`: lists, shows, replays and purges the embedded dead letters. Thin on purpose: the
//! work is in `likes_sink::dlq`; this parses arguments and prints.

use anyhow::{bail, Context as _};
use likes_sink::dead_letter::{DeadLetter, DeadLetterKind};
use likes_sink::dlq::{self, DlqConfig};

const HELP: &str = "likes-dlq: list, show, replay and purge dead-lettered like events

USAGE:
  likes-dlq list                        how many letters, events, the oldest failure, kinds
  likes-dlq show N                      letter N of the list (1 = oldest), as JSON
  likes-dlq replay [--dry-run] [--error KIND]
                                        append the letters' original events to the embedded
                                        log, then remove those letters; KIND: store_refused
                                        (undecodable records are never replayed: purge them)
  likes-dlq purge --older-than DUR      remove letters that first failed more than DUR ago
                                        (DUR: 90s, 30m, 12h, 7d)
  [--config FILE]                       settings file; LIKES_* variables as for `likes`

Works on the embedded all-in-one's data dir (LIKES_DATA_DIR, default ./data): the letters in
dead-letters.jsonl, the log in log/. `replay` and `purge` need `likes` to be STOPPED: the log
has one owner at a time, and `likes` appends to the letters file while it runs. The next start
of `likes` applies the replayed events; the sink ignores versions it already holds, so a replay
never double-counts. The distributed deployment's dead-letter topic is not supported yet.";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = without_config_flag(std::env::args().skip(1).collect());
    let Some(command) = args.first().map(String::as_str) else {
        println!("{HELP}");
        return Ok(());
    };
    if matches!(command, "--help" | "-h" | "help") {
        println!("{HELP}");
        return Ok(());
    }
    likes_shared::telemetry::init();
    let config: DlqConfig = likes_shared::config::load()?;
    let rest = &args[1..];
    match command {
        "list" => list(&config),
        "show" => {
            let n: usize = rest
                .first()
                .context("show needs N, the letter's number in `list`")?
                .parse()
                .context("N must be a number")?;
            show(&config, n)
        }
        "replay" => replay(&config, rest).await,
        "purge" => {
            let [flag, duration] = rest else {
                bail!("usage: likes-dlq purge --older-than DUR");
            };
            if flag != "--older-than" {
                bail!("usage: likes-dlq purge --older-than DUR");
            }
            let older_than = dlq::parse_duration(duration)?;
            let removed = dlq::purge(&config, older_than, likes_shared::hlc::now_ms()).await?;
            println!("purged {removed} letters older than {duration}");
            Ok(())
        }
        other => bail!("unknown command `{other}`; see likes-dlq --help"),
    }
}

fn list(config: &DlqConfig) -> anyhow::Result<()> {
    let file = config.letters();
    let letters = file.read_all()?;
    let summary = dlq::summarize(&letters);
    println!(
        "{} dead letters in {} ({} events, {} undecodable records)",
        summary.letters,
        file.path().display(),
        summary.events,
        summary.undecodable_records
    );
    if let Some(oldest) = summary.oldest_first_failed_at_ms {
        println!("oldest first failure: {}", dlq::format_utc(oldest));
    }
    for (kind, count) in &summary.kinds {
        println!("  {}: {count}", kind.name());
    }
    for (n, letter) in letters.iter().enumerate() {
        println!("{}", line(n + 1, letter));
    }
    Ok(())
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

fn show(config: &DlqConfig, n: usize) -> anyhow::Result<()> {
    let letters = config.letters().read_all()?;
    let Some(letter) = n.checked_sub(1).and_then(|i| letters.get(i)) else {
        bail!(
            "no letter {n}: there are {} (numbered from 1)",
            letters.len()
        );
    };
    println!("{}", serde_json::to_string_pretty(letter)?);
    Ok(())
}

async fn replay(config: &DlqConfig, args: &[String]) -> anyhow::Result<()> {
    let mut dry_run = false;
    let mut kind = None;
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--dry-run" => dry_run = true,
            "--error" => {
                let name = args.next().context("--error needs a KIND")?;
                kind = Some(
                    DeadLetterKind::ALL
                        .into_iter()
                        .find(|k| k.name() == name)
                        .with_context(|| format!("unknown KIND `{name}`"))?,
                );
            }
            other => bail!("unknown replay option `{other}`; see likes-dlq --help"),
        }
    }
    let report = dlq::replay(config, kind, dry_run).await?;
    let verb = if dry_run { "would replay" } else { "replayed" };
    println!(
        "{verb} {} letters, {} events into {}; {} letters kept",
        report.letters,
        report.events,
        config.data_dir.join("log").display(),
        report.kept
    );
    Ok(())
}

/// `--config FILE` is read by the config loader itself; the commands never see it.
fn without_config_flag(args: Vec<String>) -> Vec<String> {
    let mut out = Vec::with_capacity(args.len());
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        if arg == "--config" {
            args.next();
        } else if !arg.starts_with("--config=") {
            out.push(arg);
        }
    }
    out
}
