//! `likes-dlq`: lists, inspects and replays dead letters. Dead-lettering arrives with the Pulsar
//! sink; until then this binary says so instead of pretending to work.

fn main() -> std::process::ExitCode {
    let arg = std::env::args().nth(1);
    match arg.as_deref() {
        None | Some("--help") | Some("-h") | Some("help") => {
            println!(
                "likes-dlq: list, inspect and replay dead-lettered like events\n\n\
                 USAGE: likes-dlq <list|inspect|replay> [--config <file>]\n\n\
                 Not available yet: dead letters are produced by the Pulsar sink, which is not\n\
                 built. The embedded all-in-one (`likes`) retries transient store errors and\n\
                 logs permanent ones."
            );
            std::process::ExitCode::SUCCESS
        }
        Some(other) => {
            eprintln!("likes-dlq: `{other}` is not available yet (no dead-letter topic exists); see --help");
            std::process::ExitCode::from(2)
        }
    }
}
