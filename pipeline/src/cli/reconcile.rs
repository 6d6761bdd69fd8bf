//! `likes-pipeline reconcile`: recounts `likes` per content and repairs `like_counts` where it
//! drifted (I1 says it never should; this is how an operator checks, and repairs after a manual
//! edit or a bug), then the state cache's counts in Redis (`cached_counts.rs`). Safe while
//! workers commit: see `sink/src/mysql/reconcile.rs`.
//!
//! Exit 0 when done (drift found and repaired is still success: the report says what changed);
//! with `--dry-run`, exit 3 when drift was found, so a cron job can alert on it.

use super::cached_counts::CachedCounts;
use super::Failure;
use anyhow::Context as _;
use likes_pipeline::PipelineConfig;
use likes_shared::ContentId;
use likes_sink::mysql::{ReconcileOptions, ReconcileScope};

/// The largest random sample: the drawn ids are held in memory (I7).
const MAX_SAMPLE: usize = 1_000_000;

/// What the arguments ask for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Request {
    pub scope: ReconcileScope,
    pub batch_contents: usize,
    pub dry_run: bool,
}

pub(crate) fn parse(args: &[String]) -> Result<Request, Failure> {
    let usage = |why: String| Failure::Usage(format!("reconcile: {why} (see --help)"));
    let mut request = Request {
        scope: ReconcileScope::All,
        batch_contents: ReconcileOptions::default().batch_contents,
        dry_run: false,
    };
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        let mut value = |name: &str| {
            args.next()
                .cloned()
                .ok_or_else(|| usage(format!("{name} needs a value")))
        };
        match arg.as_str() {
            "--dry-run" => request.dry_run = true,
            "--all" => request.scope = ReconcileScope::All,
            "--range" => {
                let text = value("--range")?;
                let (from, to) = text
                    .split_once("..")
                    .ok_or_else(|| usage(format!("--range `{text}`: expected FROM..TO")))?;
                let id = |s: &str| {
                    s.parse::<u64>()
                        .ok()
                        .and_then(|n| ContentId::new(n).ok())
                        .ok_or_else(|| usage(format!("--range: `{s}` is not a content id (> 0)")))
                };
                let (from, to) = (id(from)?, id(to)?);
                if from > to {
                    return Err(usage(format!("--range {text}: FROM is above TO")));
                }
                request.scope = ReconcileScope::Range { from, to };
            }
            "--sample" => {
                let text = value("--sample")?;
                let contents = text
                    .parse::<usize>()
                    .ok()
                    .filter(|n| (1..=MAX_SAMPLE).contains(n))
                    .ok_or_else(|| {
                        usage(format!("--sample `{text}`: expected 1 to {MAX_SAMPLE}"))
                    })?;
                request.scope = ReconcileScope::Sample { contents };
            }
            "--batch" => {
                let text = value("--batch")?;
                request.batch_contents = text
                    .parse::<usize>()
                    .ok()
                    .filter(|n| (1..=10_000).contains(n))
                    .ok_or_else(|| usage(format!("--batch `{text}`: expected 1 to 10000")))?;
            }
            other => return Err(usage(format!("unknown argument `{other}`"))),
        }
    }
    Ok(request)
}

pub(crate) async fn run(config: &PipelineConfig, request: Request) -> Result<(), Failure> {
    let settings = config.store()?;
    // No migrations: an operator tool needs no DDL privileges (init runs them).
    let store = settings
        .connect()
        .await
        .with_context(|| super::database_at(&settings.url))?;
    let mut run = store.reconciliation(ReconcileOptions {
        scope: request.scope.clone(),
        batch_contents: request.batch_contents,
        dry_run: request.dry_run,
        backoff: config.backoff,
        ..ReconcileOptions::default()
    });
    // A dry run repairs nothing, the cache included.
    let mut cache = match request.dry_run {
        true => None,
        false => CachedCounts::open(config).await,
    };
    // Batch by batch, so that a failure part-way still reports the repairs already committed.
    let failed = loop {
        // Before the batch's read: a cached count that moved after this may hold a change the
        // read lacks.
        let committed = match cache.as_mut() {
            Some(cache) => cache.committed().await,
            None => 0,
        };
        match run.next_batch().await {
            Ok(Some(batch)) => {
                if let Some(cache) = cache.as_mut() {
                    cache.repair(&batch.counts, committed).await;
                }
            }
            Ok(None) => break None,
            Err(error) => break Some(error),
        }
    };
    let report = run.into_report();
    for drift in &report.drift {
        let stored = drift
            .stored
            .map_or_else(|| "no count row".to_string(), |n| n.to_string());
        println!(
            "drift content {}: stored {stored}, liked rows {}",
            drift.content_id.get(),
            drift.actual
        );
    }
    if report.drift_total > report.drift.len() as u64 {
        println!(
            "... and {} more",
            report.drift_total - report.drift.len() as u64
        );
    }
    println!(
        "reconcile{}: {} contents checked in {} batches, {} drifted, {} repaired, {} retries",
        if request.dry_run { " (dry run)" } else { "" },
        report.contents_checked,
        report.batches,
        report.drift_total,
        report.repaired,
        report.retries
    );
    if let Some(cache) = &cache {
        println!("{}", cache.report());
    }
    if let Some(error) = failed {
        return Err(anyhow::Error::new(error)
            .context("reconciling stopped part-way (the lines above are what it did)")
            .into());
    }
    if request.dry_run && report.drift_total > 0 {
        return Err(Failure::DriftFound(report.drift_total));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn scopes_and_bounds_parse_and_bad_ones_are_usage_errors() {
        let c = |n| ContentId::new(n).expect("non-zero");
        let all = parse(&[]).expect("no arguments: all");
        assert_eq!(all.scope, ReconcileScope::All);
        assert!(!all.dry_run);
        let range =
            parse(&args(&["--range", "5..9", "--dry-run", "--batch", "50"])).expect("range");
        assert_eq!(
            range.scope,
            ReconcileScope::Range {
                from: c(5),
                to: c(9)
            }
        );
        assert_eq!((range.dry_run, range.batch_contents), (true, 50));
        let sample = parse(&args(&["--sample", "100"])).expect("sample");
        assert_eq!(sample.scope, ReconcileScope::Sample { contents: 100 });
        for bad in [
            &["--range", "9..5"][..],
            &["--range", "0..5"],
            &["--range", "5"],
            &["--sample", "0"],
            &["--sample", "1000001"],
            &["--batch", "0"],
            &["--batch"],
            &["--bogus"],
        ] {
            assert!(
                matches!(parse(&args(bad)), Err(Failure::Usage(_))),
                "{bad:?}"
            );
        }
    }
}
