//! The commands on the dead-letter topic (feature `pulsar`).

use crate::args::Command;
use crate::{print_list, HELP};
use likes_sink::dlq::topic::{TopicDlq, TopicDlqConfig};
use likes_sink::dlq::DlqConfig;

pub async fn run(
    config: &DlqConfig,
    url: String,
    admin_url: Option<String>,
    command: Command,
) -> anyhow::Result<()> {
    let topic_config = TopicDlqConfig::new(config, url, admin_url)?;
    let dlq = TopicDlq::connect(&topic_config).await?;
    match command {
        Command::Help => println!("{HELP}"),
        Command::List => {
            let backlog = dlq.letters().await?;
            let letters: Vec<_> = backlog
                .letters
                .into_iter()
                .map(|read| read.letter)
                .collect();
            let place = format!(
                "{} (subscription {})",
                dlq.dlq_topic(),
                topic_config.topics.dlq_subscription
            );
            print_list(&place, &letters, Some(backlog.total));
        }
        Command::Show(n) => {
            println!("{}", serde_json::to_string_pretty(&dlq.letter(n).await?)?);
        }
        Command::Replay { dry_run, kind } => {
            let report = dlq.replay(kind, dry_run).await?;
            let verb = if dry_run { "would replay" } else { "replayed" };
            println!(
                "{verb} {} letters, {} events into {}; {} letters kept",
                report.letters,
                report.events,
                dlq.events_topic(),
                report.kept
            );
        }
        Command::Purge { older_than, text } => {
            let purged = dlq.purge(older_than, likes_shared::hlc::now_ms()).await?;
            println!("purged {purged} letters older than {text}");
        }
    }
    Ok(())
}
