//! The reconciler's library part (`likes-pipeline reconcile`): recount `likes`, compare with
//! `like_counts` (I1), report the drift and repair it, in bounded batches, while windows commit.
//!
//! # What is walked
//! All contents, an inclusive range of ids, or a random sample, in ascending batches of at most
//! [`ReconcileOptions::batch_contents`] contents. A content is one with a count row or a liked
//! row: a missing count row while likes exist is drift (readers see 0), and a count row without
//! liked rows should say 0. A sample is drawn from the count rows (`ORDER BY RAND() LIMIT n`, a
//! top-n the server keeps in n rows of memory), so it misses the contents that lack one; `All`
//! and `Range` find those.
//!
//! # Check, then repair only what differs
//! Each batch is first *checked* by one statement that reads both sides, the stored counts and
//! the recount. One statement reads one snapshot on both servers (one timestamp on TiDB, one
//! read view in InnoDB at any isolation level), so a window committing meanwhile is wholly in it
//! or wholly out: the check never mistakes a window in flight for drift. A dry run stops there.
//! On a sound store nothing differs, and a batch takes no lock and writes nothing: reconciling
//! neither slows the windows down nor makes them retry.
//!
//! Only a batch whose check found drift is *repaired*, in one transaction over just the drifted
//! contents: read both sides again, consistently with the write, and set `count` to the recount
//! where it still differs. Setting (not adding the difference) is right only if no window can
//! move those counts between that read and the commit unnoticed. Each server guarantees it
//! differently; `tests/mysql_reconcile` checks both on the real servers, with windows held open
//! by hand and under traffic, and the wrong orders named below fail those tests.
//!
//! ## TiDB: `BEGIN OPTIMISTIC`, snapshot reads, first committer wins
//! The transaction reads at its start timestamp, so the check inside it sees both tables at one
//! snapshot. Its commit fails with 9007 (write conflict) if a key it writes was committed by
//! anyone after that timestamp; the conflict check runs before the uniqueness check, so a count
//! row a window inserted meanwhile is a conflict too, not a duplicate key. A window that changes
//! a content's liked rows by a non-zero net amount writes that content's count row in the same
//! transaction. So a window that committed before the snapshot is on both sides; one that
//! commits a repaired row after the snapshot fails the repair with 9007, and the repair is
//! retried in a new transaction whose snapshot sees it; one that commits after the repair
//! conflicts on the row the repair wrote (the worker retries it: it re-reads its rows and adds
//! its delta to the repaired count) or started after it and adds to it. A window with a net
//! change of zero for a content writes no count row and leaves that content's recount the same
//! at every snapshot. So on TiDB the repair yields: a window moving one of its counts makes it
//! retry (bounded, [`ReconcileOptions::attempts`]), not the other way round. No `FOR UPDATE`: in optimistic mode it would only add rows the repair does not
//! write to its conflict check (they cannot be repaired wrongly), making every window that
//! moves a hot count during a repair a conflict on both sides. TiDB's default pessimistic mode
//! would be wrong: a write there reads and locks the newest row, and `count = recount` would
//! silently overwrite a delta committed after the snapshot.
//!
//! ## MariaDB / MySQL (InnoDB, REPEATABLE READ): lock first, then the snapshot
//! InnoDB checks no write conflicts: a write in a snapshot transaction changes the newest row
//! whatever the snapshot saw. So the repair first reads the drifted count rows `FOR UPDATE`,
//! which reads the newest committed rows and locks them, and, for a content without a count row,
//! locks the gap it would go in, so no window can insert it meanwhile. A locking read does not
//! open the transaction's snapshot; the first plain read does, and that is the check statement,
//! run after the locks are held. So a window that committed before the locks were granted
//! (including one that held a row and made the repair wait) is in the snapshot; a window that
//! moves a locked count waits for the repair's commit, its liked rows still uncommitted while the
//! recount reads, and then adds its delta, computed from its own locked reads of `likes`, to the
//! repaired count; a zero-net window changes neither side. The other order (recount, then lock)
//! is wrong: a window committing in between is in the locked count and not in the recount, and
//! the "repair" would undo it. As a guard, the repair refuses to write (a permanent error) when
//! the snapshot's counts differ from the locked ones, which is what a snapshot opened before
//! the locks would show. The session asks for REPEATABLE READ for the repair, whatever the
//! server's default: under READ COMMITTED InnoDB takes no gap locks. Windows lock count rows in
//! ascending content order, and so does the repair (an `IN` list on the primary key is read in
//! key order), so they queue instead of deadlocking; a deadlock or lock wait timeout that still
//! happens is transient and the batch is retried, a bounded number of times with backoff.
//!
//! # Cost
//! The check reads every liked row of its contents, and finding where a batch ends reads them
//! once more; a batch is bounded by its number of contents, not rows, so a batch of hot contents
//! reads more. A repair on MariaDB holds the drifted counts' locks for one recount of those
//! contents: their windows wait that long, and only when there is drift.
//!
//! # Cached counts (I6)
//! Each batch hands back the recount of every content it checked ([`ReconciledBatch::counts`]);
//! a caller driving [`Reconciliation::next_batch`] refreshes cached counts from it, batch by
//! batch. The Redis side comes with the cache itself (issue 7).

mod batch;

use super::MySqlStore;
use batch::{batch_end, check, draw_sample, first_contents, repair, Checked, ContentSet};
use likes_shared::retry::Backoff;
use likes_shared::store::StoreError;
use likes_shared::ContentId;
use std::collections::HashMap;
use std::future::Future;

/// Which contents a run checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReconcileScope {
    All,
    /// Contents with `from <= content_id <= to`.
    Range {
        from: ContentId,
        to: ContentId,
    },
    /// Up to this many contents drawn at random from those with a count row.
    Sample {
        contents: usize,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReconcileOptions {
    pub scope: ReconcileScope,
    /// Contents per batch (one check statement, at most one repair transaction).
    pub batch_contents: usize,
    /// Report the drift, repair nothing.
    pub dry_run: bool,
    /// How many drifted contents the report lists; the rest are only counted.
    pub drift_listed: usize,
    /// Wait between attempts of a statement or repair that failed transiently.
    pub backoff: Backoff,
    /// Attempts per statement or repair before a transient error is returned. On TiDB a repair
    /// yields to windows: each window that commits one of its counts while it runs makes it
    /// retry, so a count moved every few milliseconds needs a few attempts.
    pub attempts: u32,
}

impl Default for ReconcileOptions {
    fn default() -> Self {
        ReconcileOptions {
            scope: ReconcileScope::All,
            batch_contents: 500,
            dry_run: false,
            drift_listed: 1000,
            backoff: Backoff {
                initial_ms: 10,
                max_ms: 500,
            },
            attempts: 30,
        }
    }
}

/// A content whose stored count is not its number of liked rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Drift {
    pub content_id: ContentId,
    /// The stored count; `None` when the content has no count row (readers see 0).
    pub stored: Option<i64>,
    /// The number of liked rows.
    pub actual: i64,
}

/// What a whole run found and did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ReconcileReport {
    pub contents_checked: u64,
    /// The first [`ReconcileOptions::drift_listed`] drifted contents, in the order found.
    pub drift: Vec<Drift>,
    /// Every drifted content found, listed or not.
    pub drift_total: u64,
    /// Count rows written (always 0 in a dry run).
    pub repaired: u64,
    pub batches: u64,
    /// Transient errors retried along the way.
    pub retries: u64,
}

/// What one batch found and did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ReconciledBatch {
    /// Every content checked with its number of liked rows, as of the batch's snapshot (for a
    /// repaired content, as of the repair): what a cache of counts is refreshed with.
    pub counts: Vec<(ContentId, i64)>,
    /// Drift found: by the check in a dry run, by the repair transaction otherwise.
    pub drift: Vec<Drift>,
    pub repaired: u64,
}

/// A run in progress: each [`Reconciliation::next_batch`] checks (and repairs) one batch.
#[derive(Debug)]
pub struct Reconciliation<'s> {
    store: &'s MySqlStore,
    options: ReconcileOptions,
    walk: Walk,
    report: ReconcileReport,
}

#[derive(Debug)]
enum Walk {
    /// Contents with ids in `[next, last]` are still to be checked.
    Range {
        next: u64,
        last: u64,
    },
    SampleNotDrawn(usize),
    Sampled(std::vec::IntoIter<ContentId>),
    Done,
}

impl MySqlStore {
    /// Checks (and unless `dry_run`, repairs) every batch of the scope; see the module docs.
    pub async fn reconcile(
        &self,
        options: ReconcileOptions,
    ) -> Result<ReconcileReport, StoreError> {
        let mut run = self.reconciliation(options);
        while run.next_batch().await?.is_some() {}
        Ok(run.into_report())
    }

    /// A run driven batch by batch, for a caller that acts between batches (progress, caches).
    pub fn reconciliation(&self, options: ReconcileOptions) -> Reconciliation<'_> {
        let walk = match options.scope {
            ReconcileScope::All => Walk::Range {
                next: 1,
                last: u64::MAX,
            },
            ReconcileScope::Range { from, to } if from <= to => Walk::Range {
                next: from.get(),
                last: to.get(),
            },
            ReconcileScope::Range { .. } => Walk::Done,
            ReconcileScope::Sample { contents } => Walk::SampleNotDrawn(contents),
        };
        Reconciliation {
            store: self,
            options: ReconcileOptions {
                batch_contents: options.batch_contents.max(1),
                attempts: options.attempts.max(1),
                ..options
            },
            walk,
            report: ReconcileReport::default(),
        }
    }
}

impl Reconciliation<'_> {
    /// Checks the next batch and repairs its drift; `None` once the scope is done.
    pub async fn next_batch(&mut self) -> Result<Option<ReconciledBatch>, StoreError> {
        let Some(contents) = self.next_contents().await? else {
            return Ok(None);
        };
        let store = self.store;
        let checked = retrying(&self.options, &mut self.report.retries, || {
            check(store, &contents)
        })
        .await?;
        let mut batch = ReconciledBatch {
            counts: checked.iter().map(|c| (c.content_id, c.actual)).collect(),
            drift: checked.iter().filter_map(Checked::drift).collect(),
            repaired: 0,
        };
        if !self.options.dry_run && !batch.drift.is_empty() {
            let drifted = ContentSet::Listed(batch.drift.iter().map(|d| d.content_id).collect());
            batch.drift = retrying(&self.options, &mut self.report.retries, || {
                repair(store, &drifted)
            })
            .await?;
            batch.repaired = batch.drift.len() as u64;
            let repaired: HashMap<ContentId, i64> = batch
                .drift
                .iter()
                .map(|d| (d.content_id, d.actual))
                .collect();
            for (content_id, count) in &mut batch.counts {
                *count = repaired.get(content_id).copied().unwrap_or(*count);
            }
        }
        for drift in &batch.drift {
            tracing::warn!(
                content_id = drift.content_id.get(),
                stored = ?drift.stored,
                actual = drift.actual,
                repaired = batch.repaired > 0,
                "count drift"
            );
        }
        let report = &mut self.report;
        report.batches += 1;
        report.contents_checked += checked.len() as u64;
        report.drift_total += batch.drift.len() as u64;
        report.repaired += batch.repaired;
        let room = self.options.drift_listed.saturating_sub(report.drift.len());
        report.drift.extend(batch.drift.iter().take(room));
        Ok(Some(batch))
    }

    /// What the run has found and done so far.
    pub fn report(&self) -> &ReconcileReport {
        &self.report
    }

    pub fn into_report(self) -> ReconcileReport {
        self.report
    }

    async fn next_contents(&mut self) -> Result<Option<ContentSet>, StoreError> {
        let store = self.store;
        let batch = self.options.batch_contents;
        if let Walk::SampleNotDrawn(contents) = self.walk {
            let mut drawn = retrying(&self.options, &mut self.report.retries, || {
                draw_sample(store, contents)
            })
            .await?;
            drawn.sort_unstable();
            self.walk = Walk::Sampled(drawn.into_iter());
        }
        match &mut self.walk {
            Walk::Range { next, last } => {
                let (from, to) = (*next, *last);
                let found = retrying(&self.options, &mut self.report.retries, || {
                    first_contents(store, from, to, batch)
                })
                .await?;
                let Some(end) = batch_end(&found, batch, to) else {
                    self.walk = Walk::Done;
                    return Ok(None);
                };
                self.walk = match end.checked_add(1) {
                    Some(next) if end < to => Walk::Range { next, last: to },
                    _ => Walk::Done,
                };
                Ok(Some(ContentSet::Between(from, end)))
            }
            Walk::Sampled(ids) => {
                let listed: Vec<ContentId> = ids.by_ref().take(batch).collect();
                if listed.is_empty() {
                    self.walk = Walk::Done;
                    return Ok(None);
                }
                Ok(Some(ContentSet::Listed(listed)))
            }
            Walk::SampleNotDrawn(_) | Walk::Done => Ok(None),
        }
    }
}

/// Runs `attempt` until it succeeds, fails permanently or has failed transiently
/// `options.attempts` times, waiting with backoff in between.
async fn retrying<T, F, Fut>(
    options: &ReconcileOptions,
    retries: &mut u64,
    mut attempt: F,
) -> Result<T, StoreError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, StoreError>>,
{
    let mut failed = 0;
    loop {
        match attempt().await {
            Err(error) if error.is_transient() && failed + 1 < options.attempts => {
                tracing::debug!(%error, failed, "reconcile step retried");
                *retries += 1;
                tokio::time::sleep(options.backoff.delay(failed)).await;
                failed += 1;
            }
            other => return other,
        }
    }
}
