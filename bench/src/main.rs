//! `likes-load`: bounded, self-stopping HTTP load on loopback against the like service, with a
//! bare warp "hello" baseline measured in the same invocation (DESIGN §9 states ratios).
//!
//! # Layout
//! - `main.rs` — arguments, exit code.
//! - `run.rs` — the phases of each mode, on separate server and load runtimes.
//! - `driver.rs` — closed- and open-loop drivers over keep-alive hyper connections.
//! - `workload.rs` — what each connection sends (hello, reads, like/unlike with a model).
//! - `targets.rs` — the hello server, the embedded all-in-one, tokens, the loopback check.
//! - `verify.rs` — drain, then counts: store invariant, served = store = model.
//! - `report.rs` — histograms, percentiles, ratios.

mod driver;
mod report;
mod run;
mod targets;
mod verify;
mod workload;

use anyhow::{bail, Context as _};
use std::process::ExitCode;
use std::time::Duration;

const HELP: &str = "likes-load: loopback load against the like service

USAGE:
  likes-load [compare]                 baseline (warp hello) + embedded all-in-one, in-process
  likes-load target --url http://127.0.0.1:PORT --jwt-secret SECRET
                                       the same workload against a running instance

OPTIONS (defaults in brackets):
  --duration SECS        measured time per closed-loop phase [10]
  --warmup SECS          unrecorded time before each phase [2]
  --half-duration SECS   open-loop phase at 50% of the write peak [5]
  --concurrency N        keep-alive connections, each a closed loop [64]
  --users N              users with minted tokens [10000]
  --contents N           content ids, Zipf-distributed [10000]
  --zipf S               Zipf exponent [1.0]
  --server-threads N     worker threads of the servers' runtime [1]
  --load-threads N       worker threads of the load's runtime [1]
  --no-baseline          skip the hello baseline (ratios become n/a)
  --seed N               random seed [42]
  --hottest N            the hot GET phase reads only ids 1..=N (the most read) [16]
  --batch N              ids per batchGet page, at most 100 [100]
  --steady R             one open-loop phase of likes/unlikes at R per second for --duration,
                         instead of the closed-loop phases (the end-to-end benchmark)

Exits non-zero if the counts after the run are not exact.";

fn parse_args(args: &[String]) -> anyhow::Result<Option<run::Options>> {
    let mut o = run::Options {
        target: None,
        jwt_secret: std::env::var("LIKES_AUTH__JWT_SECRET").unwrap_or_default(),
        duration: Duration::from_secs(10),
        warmup: Duration::from_secs(2),
        half_duration: Duration::from_secs(5),
        concurrency: 64,
        users: 10_000,
        contents: 10_000,
        zipf_s: 1.0,
        server_threads: 1,
        load_threads: 1,
        baseline: true,
        seed: 42,
        hottest: 16,
        batch: 100,
        steady: None,
    };
    let mut mode = "compare";
    let mut url = None;
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let mut value = || {
            it.next()
                .cloned()
                .with_context(|| format!("{arg} needs a value"))
        };
        let secs = |v: String| -> anyhow::Result<Duration> {
            let s: f64 = v.parse().with_context(|| format!("{arg}: not a number"))?;
            anyhow::ensure!(s > 0.0 && s < 3600.0, "{arg}: between 0 and 3600 seconds");
            Ok(Duration::from_secs_f64(s))
        };
        match arg.as_str() {
            "-h" | "--help" => return Ok(None),
            "compare" | "target" => mode = if arg == "target" { "target" } else { "compare" },
            "--url" => url = Some(value()?),
            "--jwt-secret" => o.jwt_secret = value()?,
            "--duration" => o.duration = secs(value()?)?,
            "--warmup" => o.warmup = secs(value()?)?,
            "--half-duration" => o.half_duration = secs(value()?)?,
            "--concurrency" => o.concurrency = value()?.parse()?,
            "--users" => o.users = value()?.parse()?,
            "--contents" => o.contents = value()?.parse()?,
            "--zipf" => o.zipf_s = value()?.parse()?,
            "--server-threads" => o.server_threads = value()?.parse()?,
            "--load-threads" => o.load_threads = value()?.parse()?,
            "--no-baseline" => o.baseline = false,
            "--seed" => o.seed = value()?.parse()?,
            "--hottest" => o.hottest = value()?.parse()?,
            "--batch" => o.batch = value()?.parse()?,
            "--steady" => {
                let rate: f64 = value()?.parse().context("--steady: a rate per second")?;
                anyhow::ensure!(rate >= 1.0, "--steady: at least 1 per second");
                o.steady = Some(rate);
            }
            other => bail!("unknown argument {other:?} (see --help)"),
        }
    }
    anyhow::ensure!(
        (1..=10_000).contains(&o.concurrency),
        "--concurrency: 1..=10000"
    );
    anyhow::ensure!((1..=100).contains(&o.batch), "--batch: 1..=100");
    anyhow::ensure!(o.hottest >= 1, "--hottest: at least 1");
    anyhow::ensure!(
        o.users >= 1 && o.contents >= 1,
        "--users and --contents: at least 1"
    );
    match (mode, url) {
        ("target", Some(u)) => o.target = Some(targets::loopback_url(&u)?),
        ("target", None) => bail!("target mode needs --url http://127.0.0.1:PORT"),
        (_, Some(_)) => bail!("--url belongs to target mode: likes-load target --url …"),
        _ => {}
    }
    Ok(Some(o))
}

fn main() -> anyhow::Result<ExitCode> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(options) = parse_args(&args)? else {
        println!("{HELP}");
        return Ok(ExitCode::SUCCESS);
    };
    Ok(if run::run(&options)? {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

#[cfg(test)]
mod tests {
    use super::parse_args;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_owned).collect()
    }

    #[test]
    fn modes_and_the_loopback_rule() {
        let o = parse_args(&args("--duration 3 --concurrency 8"))
            .ok()
            .flatten();
        assert!(o
            .as_ref()
            .is_some_and(|o| o.target.is_none() && o.concurrency == 8));
        assert!(parse_args(&args("target --url http://10.1.2.3:80")).is_err());
        assert!(parse_args(&args("target")).is_err());
        assert!(parse_args(&args("--url http://127.0.0.1:80")).is_err());
        let t = parse_args(&args("target --url http://127.0.0.1:8080"))
            .ok()
            .flatten();
        assert_eq!(t.and_then(|o| o.target).map(|a| a.port()), Some(8080));
    }
}
