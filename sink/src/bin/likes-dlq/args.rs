//! The command line, parsed before anything is opened or connected, so a bad argument is
//! reported as one (exit 2) and never as a broker problem.

use likes_sink::dead_letter::DeadLetterKind;
use likes_sink::dlq;
use std::fmt;
use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Help,
    List,
    Show(usize),
    Replay {
        dry_run: bool,
        kind: Option<DeadLetterKind>,
    },
    Purge {
        older_than: Duration,
        /// As typed, for the report.
        text: String,
    },
}

/// Which letters: the rule is in `--help` ("WHERE").
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// The topic if `LIKES_PULSAR_URL` is set, else the file.
    Auto,
    File,
    Pulsar(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invocation {
    pub command: Command,
    pub target: Target,
    /// `--pulsar-admin URL`, over `LIKES_PULSAR_ADMIN_URL`.
    pub admin_url: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageError(pub String);

impl fmt::Display for UsageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}; see likes-dlq --help", self.0)
    }
}

impl std::error::Error for UsageError {}

fn usage(message: impl Into<String>) -> UsageError {
    UsageError(message.into())
}

/// Parses the arguments after the program name.
pub fn parse(args: Vec<String>) -> Result<Invocation, UsageError> {
    let mut target = Target::Auto;
    let mut admin_url = None;
    let mut words = Vec::new();
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((flag, value)) if flag.starts_with("--") => (flag.to_owned(), Some(value.into())),
            _ => (arg.clone(), None),
        };
        let mut value = |name: &str| {
            inline
                .clone()
                .or_else(|| args.next())
                .ok_or_else(|| usage(format!("{name} needs a value")))
        };
        match flag.as_str() {
            "-h" | "--help" | "help" => return Ok(help()),
            // Read by the config loader itself.
            "--config" => {
                value("--config")?;
            }
            "--file" => target = set(target, Target::File)?,
            "--pulsar" => target = set(target, Target::Pulsar(value("--pulsar URL")?))?,
            "--pulsar-admin" => admin_url = Some(value("--pulsar-admin URL")?),
            _ => words.push(arg),
        }
    }
    let Some((command, rest)) = words.split_first() else {
        return Ok(help());
    };
    let command = match command.as_str() {
        "list" => none_left(rest).map(|()| Command::List)?,
        "show" => show(rest)?,
        "replay" => replay(rest)?,
        "purge" => purge(rest)?,
        other => return Err(usage(format!("unknown command `{other}`"))),
    };
    Ok(Invocation {
        command,
        target,
        admin_url,
    })
}

fn help() -> Invocation {
    Invocation {
        command: Command::Help,
        target: Target::Auto,
        admin_url: None,
    }
}

fn set(current: Target, new: Target) -> Result<Target, UsageError> {
    match current {
        Target::Auto => Ok(new),
        _ => Err(usage("give one of --file and --pulsar URL, once")),
    }
}

fn none_left(rest: &[String]) -> Result<(), UsageError> {
    match rest.first() {
        None => Ok(()),
        Some(extra) => Err(usage(format!("unexpected argument `{extra}`"))),
    }
}

fn show(rest: &[String]) -> Result<Command, UsageError> {
    let [n] = rest else {
        return Err(usage("usage: likes-dlq show N"));
    };
    n.parse()
        .map(Command::Show)
        .map_err(|_| usage(format!("N must be a letter's number in `list`, not `{n}`")))
}

fn replay(rest: &[String]) -> Result<Command, UsageError> {
    let mut dry_run = false;
    let mut kind = None;
    let mut rest = rest.iter();
    while let Some(arg) = rest.next() {
        match arg.as_str() {
            "--dry-run" => dry_run = true,
            "--error" => {
                let name = rest.next().ok_or_else(|| usage("--error needs a KIND"))?;
                let found = DeadLetterKind::ALL.into_iter().find(|k| k.name() == name);
                kind = Some(found.ok_or_else(|| {
                    usage(format!(
                        "unknown KIND `{name}` (one of: {})",
                        DeadLetterKind::ALL.map(DeadLetterKind::name).join(", ")
                    ))
                })?);
            }
            other => return Err(usage(format!("unknown replay option `{other}`"))),
        }
    }
    Ok(Command::Replay { dry_run, kind })
}

fn purge(rest: &[String]) -> Result<Command, UsageError> {
    let [flag, text] = rest else {
        return Err(usage("usage: likes-dlq purge --older-than DUR"));
    };
    if flag != "--older-than" {
        return Err(usage("usage: likes-dlq purge --older-than DUR"));
    }
    let older_than = dlq::parse_duration(text).map_err(|e| usage(e.to_string()))?;
    Ok(Command::Purge {
        older_than,
        text: text.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(line: &str) -> Result<Invocation, UsageError> {
        parse(line.split_whitespace().map(String::from).collect())
    }

    #[test]
    fn commands_and_their_options() {
        assert_eq!(parsed("list").map(|i| i.command), Ok(Command::List));
        assert_eq!(parsed("show 3").map(|i| i.command), Ok(Command::Show(3)));
        assert_eq!(
            parsed("replay --dry-run --error store_refused").map(|i| i.command),
            Ok(Command::Replay {
                dry_run: true,
                kind: Some(DeadLetterKind::StoreRefused)
            })
        );
        assert_eq!(
            parsed("purge --older-than 2h").map(|i| i.command),
            Ok(Command::Purge {
                older_than: Duration::from_secs(7_200),
                text: "2h".into()
            })
        );
        assert_eq!(parsed("").map(|i| i.command), Ok(Command::Help));
        assert_eq!(parsed("list --help").map(|i| i.command), Ok(Command::Help));
    }

    #[test]
    fn where_the_letters_are_is_chosen_by_flags_anywhere() {
        let topic = parsed("--pulsar pulsar://h:1 list --pulsar-admin=http://h:2").expect("ok");
        assert_eq!(topic.target, Target::Pulsar("pulsar://h:1".into()));
        assert_eq!(topic.admin_url.as_deref(), Some("http://h:2"));
        assert_eq!(parsed("list --file").map(|i| i.target), Ok(Target::File));
        assert_eq!(
            parsed("--config x.toml list").map(|i| i.target),
            Ok(Target::Auto)
        );
        assert!(parsed("list --file --pulsar=pulsar://h:1").is_err());
    }

    #[test]
    fn bad_arguments_are_usage_errors() {
        for bad in [
            "frobnicate",
            "list extra",
            "show",
            "show x",
            "show 1 2",
            "replay --error nope",
            "replay --error",
            "replay --fast",
            "purge",
            "purge --older-than 3w",
            "purge --newer-than 3d",
            "list --pulsar",
        ] {
            assert!(parsed(bad).is_err(), "{bad:?} was accepted");
        }
    }
}
