//! What a phase measured: a latency histogram and answers by status, turned into a printed row
//! (requests/s, p50/p90/p99/max, errors) and ratios against the baseline of the same run.

use hdrhistogram::Histogram;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

/// Longest latency the histogram keeps exactly (µs); longer ones saturate at it.
const MAX_MICROS: u64 = 60_000_000;

/// One connection's (or, merged, one phase's) observations.
#[derive(Debug, Clone)]
pub struct Tally {
    /// Latency of every recorded answer, in microseconds (any status).
    pub latency: Histogram<u64>,
    /// Answers by status code, and failures by kind ("io", "timeout", "connect").
    pub outcomes: BTreeMap<String, u64>,
}

impl Default for Tally {
    fn default() -> Self {
        Tally {
            // 3 significant figures over 1 µs ..= 60 s: the bounds are constants, so this holds.
            latency: Histogram::new_with_bounds(1, MAX_MICROS, 3)
                .unwrap_or_else(|_| unreachable!("constant histogram bounds are valid")),
            outcomes: BTreeMap::new(),
        }
    }
}

impl Tally {
    pub fn answer(&mut self, status: u16, took: Duration) {
        let micros = u64::try_from(took.as_micros()).unwrap_or(MAX_MICROS);
        self.latency.saturating_record(micros.clamp(1, MAX_MICROS));
        *self.outcomes.entry(status.to_string()).or_default() += 1;
    }

    pub fn failure(&mut self, kind: &str) {
        *self.outcomes.entry(kind.to_owned()).or_default() += 1;
    }

    pub fn merge(&mut self, other: &Tally) {
        // Same bounds on both sides, so `add` cannot fail; a failure would only lose samples.
        let _ = self.latency.add(&other.latency);
        for (kind, n) in &other.outcomes {
            *self.outcomes.entry(kind.clone()).or_default() += n;
        }
    }

    /// 2xx answers.
    pub fn ok(&self) -> u64 {
        self.outcomes
            .iter()
            .filter(|(k, _)| k.starts_with('2') && k.len() == 3)
            .map(|(_, n)| n)
            .sum()
    }

    /// Everything else: non-2xx statuses and transport failures.
    pub fn errors(&self) -> BTreeMap<String, u64> {
        self.outcomes
            .iter()
            .filter(|(k, _)| !(k.starts_with('2') && k.len() == 3))
            .map(|(k, n)| (k.clone(), *n))
            .collect()
    }
}

/// A phase's printed figures.
#[derive(Debug, Clone)]
pub struct Summary {
    pub label: String,
    pub connections: usize,
    pub ok: u64,
    pub rps: f64,
    pub p50_us: u64,
    pub p90_us: u64,
    pub p99_us: u64,
    pub max_us: u64,
    pub errors: BTreeMap<String, u64>,
}

impl Summary {
    /// `rps` counts 2xx answers only: a server answering errors fast does not look faster.
    pub fn new(label: &str, connections: usize, tally: &Tally, measured: Duration) -> Summary {
        let ok = tally.ok();
        let h = &tally.latency;
        let secs = measured.as_secs_f64();
        Summary {
            label: label.to_owned(),
            connections,
            ok,
            rps: if secs > 0.0 { ok as f64 / secs } else { 0.0 },
            p50_us: h.value_at_quantile(0.50),
            p90_us: h.value_at_quantile(0.90),
            p99_us: h.value_at_quantile(0.99),
            max_us: h.max(),
            errors: tally.errors(),
        }
    }

    pub fn header() -> String {
        format!(
            "{:<34} {:>5} {:>9} {:>10} {:>9} {:>9} {:>9} {:>9}  errors",
            "phase", "conns", "2xx", "req/s", "p50", "p90", "p99", "max"
        )
    }

    pub fn row(&self) -> String {
        format!(
            "{:<34} {:>5} {:>9} {:>10.0} {:>9} {:>9} {:>9} {:>9}  {}",
            self.label,
            self.connections,
            self.ok,
            self.rps,
            millis(self.p50_us),
            millis(self.p90_us),
            millis(self.p99_us),
            millis(self.max_us),
            errors_text(&self.errors)
        )
    }
}

/// Microseconds as milliseconds with two decimals: `1234` → `"1.23 ms"`.
pub fn millis(micros: u64) -> String {
    format!("{:.2} ms", micros as f64 / 1000.0)
}

/// `"none"`, or `"429×3 io×1"`.
pub fn errors_text(errors: &BTreeMap<String, u64>) -> String {
    if errors.values().all(|n| *n == 0) {
        return "none".to_owned();
    }
    let mut out = String::new();
    for (kind, n) in errors.iter().filter(|(_, n)| **n > 0) {
        if !out.is_empty() {
            out.push(' ');
        }
        let _ = write!(out, "{kind}×{n}");
    }
    out
}

/// `part / whole` as a ratio and a percentage, or "n/a" without a baseline.
pub fn ratio_text(part: f64, whole: f64) -> String {
    if whole <= 0.0 || !whole.is_finite() || !part.is_finite() {
        return "n/a".to_owned();
    }
    let r = part / whole;
    format!("{r:.3} ({:.1}%)", r * 100.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tally_of(micros: impl IntoIterator<Item = u64>) -> Tally {
        let mut t = Tally::default();
        for us in micros {
            t.answer(200, Duration::from_micros(us));
        }
        t
    }

    #[test]
    fn percentiles_come_from_the_recorded_latencies() {
        let t = tally_of(1..=1000);
        let s = Summary::new("x", 1, &t, Duration::from_secs(2));
        assert_eq!(s.ok, 1000);
        assert!((s.rps - 500.0).abs() < 1e-9);
        // 3 significant figures: within 0.1% of the exact order statistic.
        assert!((499..=501).contains(&s.p50_us), "{}", s.p50_us);
        assert!((899..=901).contains(&s.p90_us), "{}", s.p90_us);
        assert!((989..=991).contains(&s.p99_us), "{}", s.p99_us);
        assert!((999..=1001).contains(&s.max_us), "{}", s.max_us);
    }

    #[test]
    fn errors_do_not_count_as_throughput_and_merge_adds_up() {
        let mut a = tally_of([100, 200]);
        a.answer(429, Duration::from_micros(50));
        let mut b = Tally::default();
        b.failure("io");
        b.answer(201, Duration::from_micros(70));
        a.merge(&b);
        assert_eq!(a.ok(), 3);
        assert_eq!(errors_text(&a.errors()), "429×1 io×1");
        assert_eq!(a.latency.len(), 4);
        assert_eq!(errors_text(&Tally::default().errors()), "none");
    }

    #[test]
    fn ratios_and_millis_format() {
        assert_eq!(ratio_text(500.0, 1000.0), "0.500 (50.0%)");
        assert_eq!(ratio_text(1.0, 0.0), "n/a");
        assert_eq!(millis(1234), "1.23 ms");
        assert_eq!(millis(50), "0.05 ms");
    }
}
