//! After the load: wait until the pipeline has applied every published event, then check that
//! the counts agree three ways — the store's own invariant (`count_mismatches`), the counts the
//! API serves, and the counts the load's model of its own likes predicts.

use crate::driver::{connect, exchange};
use hyper::header::{HeaderValue, HOST};
use hyper::Request;
use likes_pipeline::WorkerStats;
use likes_shared::store::LikeStore as _;
use likes_shared::ContentId;
use likes_sink::SqliteStore;
use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::runtime::Handle;
use tokio::time::Instant;

/// `likes_ingest_events_published_total` from `/metrics`.
pub async fn published_events(addr: SocketAddr) -> anyhow::Result<u64> {
    let mut conn = connect(addr).await?;
    let (status, body) = exchange(&mut conn, get(addr, "/metrics".into())?).await?;
    anyhow::ensure!(status == 200, "/metrics answered {status}");
    let text = String::from_utf8_lossy(&body);
    text.lines()
        .find_map(|l| l.strip_prefix("likes_ingest_events_published_total "))
        .and_then(|n| n.trim().parse().ok())
        .ok_or_else(|| anyhow::anyhow!("no events_published_total in /metrics"))
}

/// Waits until the worker has received every published event and has stopped committing
/// windows (a window closes within `window_max_age_ms` of its first event). Returns how long
/// that took.
pub async fn wait_drained(
    addr: SocketAddr,
    stats: &WorkerStats,
    timeout: Duration,
) -> anyhow::Result<Duration> {
    let published = published_events(addr).await?;
    let started = Instant::now();
    let mut last_windows = u64::MAX;
    let mut quiet = 0;
    loop {
        let received = stats.events.load(Ordering::Relaxed);
        let windows = stats.windows.load(Ordering::Relaxed);
        if received >= published && windows == last_windows {
            quiet += 1;
            if quiet >= 3 {
                return Ok(started.elapsed());
            }
        } else {
            quiet = 0;
        }
        last_windows = windows;
        anyhow::ensure!(
            started.elapsed() < timeout,
            "not drained after {timeout:?}: worker received {received} of {published} events"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn get(addr: SocketAddr, path: String) -> anyhow::Result<Request<crate::driver::Body>> {
    let host = HeaderValue::try_from(addr.to_string())?;
    Ok(Request::get(path)
        .header(HOST, host)
        .body(Default::default())?)
}

/// The served `count` of each content, over a few connections.
pub async fn served_counts(addr: SocketAddr, ids: &[u64]) -> anyhow::Result<HashMap<u64, i64>> {
    let lanes = 8usize;
    let mut tasks = Vec::new();
    for lane in 0..lanes {
        let mine: Vec<u64> = ids.iter().copied().skip(lane).step_by(lanes).collect();
        tasks.push(tokio::spawn(async move {
            let mut conn = connect(addr).await?;
            let mut out = Vec::with_capacity(mine.len());
            for id in mine {
                let (status, body) =
                    exchange(&mut conn, get(addr, format!("/v1/contents/{id}"))?).await?;
                anyhow::ensure!(status == 200, "GET /v1/contents/{id} answered {status}");
                let count =
                    parse_count(&body).ok_or_else(|| anyhow::anyhow!("no count in {body:?}"))?;
                out.push((id, count));
            }
            Ok::<_, anyhow::Error>(out)
        }));
    }
    let mut counts = HashMap::with_capacity(ids.len());
    for task in tasks {
        counts.extend(task.await??);
    }
    Ok(counts)
}

/// `"count":N` out of a JSON body.
fn parse_count(body: &[u8]) -> Option<i64> {
    let text = std::str::from_utf8(body).ok()?;
    let rest = &text[text.find("\"count\":")? + "\"count\":".len()..];
    let end = rest
        .find(|c: char| c != '-' && !c.is_ascii_digit())
        .unwrap_or(rest.len());
    rest[..end].parse().ok()
}

/// The verdict, printed as one paragraph.
#[derive(Debug, Default)]
pub struct Exactness {
    pub contents_checked: usize,
    /// Sum of the checked counts (likes standing after the run).
    pub likes_standing: i64,
    pub left_out: usize,
    /// Store rows whose count differs from its liked rows (I1), when the store is reachable.
    pub store_mismatches: Option<usize>,
    pub problems: Vec<String>,
}

impl Exactness {
    pub fn is_exact(&self) -> bool {
        self.problems.is_empty() && self.store_mismatches.unwrap_or(0) == 0
    }

    pub fn text(&self) -> String {
        let mut out = format!(
            "exactness: {} — {} contents checked holding {} likes ({} left out after unsure answers)",
            if self.is_exact() { "EXACT" } else { "NOT EXACT" },
            self.contents_checked,
            self.likes_standing,
            self.left_out
        );
        if let Some(n) = self.store_mismatches {
            out.push_str(&format!(", store count_mismatches: {n}"));
        }
        for p in self.problems.iter().take(10) {
            out.push_str(&format!("\n  {p}"));
        }
        if self.problems.len() > 10 {
            out.push_str(&format!("\n  … and {} more", self.problems.len() - 10));
        }
        out
    }
}

/// The in-process instance: store invariant, served = store for every touched content, and
/// store = model (the store started empty) for every content the model is sure of.
pub async fn check_embedded(
    addr: SocketAddr,
    store: SqliteStore,
    server: &Handle,
    deltas: &HashMap<u64, i64>,
    tainted: &HashSet<u64>,
) -> anyhow::Result<Exactness> {
    let mut ids: Vec<u64> = deltas.keys().chain(tainted.iter()).copied().collect();
    ids.sort_unstable();
    // The store's pool lives on the server runtime: query it there.
    let query_ids = ids.clone();
    let (mismatches, stored) = server
        .spawn(async move {
            let mismatches = store.count_mismatches().await?;
            let contents = query_ids
                .iter()
                .map(|id| ContentId::new(*id))
                .collect::<Result<Vec<_>, _>>()?;
            let stored = store.counts(&contents).await?;
            Ok::<_, anyhow::Error>((mismatches, stored))
        })
        .await??;
    let served = served_counts(addr, &ids).await?;
    let mut verdict = Exactness {
        contents_checked: ids.len(),
        likes_standing: 0,
        left_out: tainted.len(),
        store_mismatches: Some(mismatches.len()),
        problems: mismatches
            .iter()
            .map(|(c, stored, actual)| {
                format!("store: content {c} count {stored}, liked rows {actual}")
            })
            .collect(),
    };
    for (id, stored) in ids.iter().zip(stored) {
        verdict.likes_standing += stored;
        let shown = served.get(id).copied();
        if shown != Some(stored) {
            verdict
                .problems
                .push(format!("content {id}: served {shown:?}, stored {stored}"));
        }
        if let Some(delta) = deltas.get(id) {
            if *delta != stored {
                verdict.problems.push(format!(
                    "content {id}: the load's likes say {delta}, stored {stored}"
                ));
            }
        }
    }
    Ok(verdict)
}

/// An external instance: served counts moved by exactly what the load's likes predict.
pub async fn check_served(
    addr: SocketAddr,
    before: &HashMap<u64, i64>,
    deltas: &HashMap<u64, i64>,
    tainted: &HashSet<u64>,
) -> anyhow::Result<Exactness> {
    let ids: Vec<u64> = deltas.keys().copied().collect();
    let after = served_counts(addr, &ids).await?;
    let mut verdict = Exactness {
        contents_checked: ids.len(),
        left_out: tainted.len(),
        ..Exactness::default()
    };
    for id in ids {
        let want = before.get(&id).copied().unwrap_or(0) + deltas.get(&id).copied().unwrap_or(0);
        let got = after.get(&id).copied();
        verdict.likes_standing += got.unwrap_or(0);
        if got != Some(want) {
            verdict
                .problems
                .push(format!("content {id}: served {got:?}, expected {want}"));
        }
    }
    Ok(verdict)
}

#[cfg(test)]
mod tests {
    use super::parse_count;

    #[test]
    fn count_is_read_from_the_body() {
        assert_eq!(parse_count(br#"{"content_id":7,"count":42}"#), Some(42));
        assert_eq!(parse_count(br#"{"count":-1,"liked":true}"#), Some(-1));
        assert_eq!(parse_count(br#"{"content_id":7}"#), None);
    }
}
