//! `likes-ingest`: the HTTP front door of the distributed deployment (Redis state cache, Pulsar
//! bus, TiDB reads). Those backends arrive with their issues; until then this binary says so
//! instead of serving on backends that would lose the guarantees. Use `likes` (the embedded
//! all-in-one) to run the same API today.

const HELP: &str =
    "likes-ingest: validates, authenticates and rate-limits likes, then publishes them

USAGE: likes-ingest [--config <file.toml>]

Not available yet: the distributed backends (Redis, Pulsar, TiDB) are not wired in.
Run `likes` (cargo run --release) for the embedded all-in-one with the same API.";

fn main() -> std::process::ExitCode {
    if std::env::args().skip(1).any(|a| a == "--help" || a == "-h") {
        println!("{HELP}");
        return std::process::ExitCode::SUCCESS;
    }
    eprintln!("likes-ingest: the distributed backends are not built yet; run `likes` instead (see --help)");
    std::process::ExitCode::from(2)
}
