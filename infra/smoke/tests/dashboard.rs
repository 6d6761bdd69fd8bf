//! The Grafana dashboard cannot drift from the metrics: with the stack of `infra/dev/services up
//! stack` and its Prometheus up (started here, stopped at the end), a short load through Nginx,
//! then every PromQL expression of `infra/grafana/dashboards/likes.json`, read from the file,
//! must return data when Prometheus is asked through its HTTP API, and so must every metric an
//! expression selects, on its own (`errors or vector(0)` has data even if `errors` does not
//! exist). A renamed metric, a label that is not there, or a panel over a series nothing
//! exports fails here.
//!
//! Its own test binary, as the chaos test: it starts and stops the stack on the shared services.

#[allow(dead_code)]
#[path = "chaos/load.rs"]
mod load;
#[allow(dead_code)]
#[path = "chaos/stack.rs"]
mod stack;

use load::Client;
use serde_json::Value;
use stack::{services, Stack};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Prometheus, up for the test's length; `down prometheus` on drop.
struct Prometheus {
    url: String,
}

impl Prometheus {
    fn up() -> Prometheus {
        services(&["up", "prometheus"]);
        let env = std::fs::read_to_string(likes_smoke::env_file_path()).expect("services env");
        let url = likes_smoke::parse_env(&env)
            .remove("LIKES_PROMETHEUS_URL")
            .expect("LIKES_PROMETHEUS_URL after `up prometheus`");
        Prometheus { url }
    }

    /// The instant query's result vector; `Err` with Prometheus' answer if the query failed.
    async fn query(&self, http: &reqwest::Client, expr: &str) -> Result<Vec<Value>, String> {
        let answer: Value = http
            .get(format!("{}/api/v1/query", self.url))
            .query(&[("query", expr)])
            .send()
            .await
            .map_err(|e| e.to_string())?
            .json()
            .await
            .map_err(|e| e.to_string())?;
        if answer["status"] != "success" {
            return Err(answer.to_string());
        }
        Ok(answer["data"]["result"]
            .as_array()
            .cloned()
            .unwrap_or_default())
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = std::process::Command::new(stack::repo_root().join("infra/dev/services"))
            .args(["down", "prometheus"])
            .status();
    }
}

/// `(panel title, expression)` of every query of the dashboard.
fn dashboard_expressions() -> Vec<(String, String)> {
    let path = stack::repo_root().join("infra/grafana/dashboards/likes.json");
    let text = std::fs::read_to_string(&path).expect("the dashboard");
    let dashboard: Value = serde_json::from_str(&text).expect("the dashboard is JSON");
    let mut found = Vec::new();
    for panel in dashboard["panels"].as_array().expect("panels") {
        for target in panel["targets"].as_array().into_iter().flatten() {
            let expr = target["expr"].as_str().expect("a target's expr");
            found.push((
                panel["title"].as_str().unwrap_or("?").to_owned(),
                expr.to_owned(),
            ));
        }
    }
    found
}

/// The metric names an expression selects (`name{...}`): each must exist on its own, since an
/// expression like `errors or vector(0)` returns data whether `errors` exists or not.
fn selected_metrics(expr: &str) -> Vec<String> {
    let mut names = Vec::new();
    for (at, _) in expr.match_indices('{') {
        let before = &expr[..at];
        let start = before
            .rfind(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
            .map_or(0, |i| i + 1);
        let name = &before[start..];
        if !name.is_empty() && !names.iter().any(|n| n == name) {
            names.push(name.to_owned());
        }
    }
    names
}

/// Likes, unlikes, reads and pages of reads through Nginx for `length`.
async fn load(client: Arc<Client>, url: &str, length: Duration) {
    let http = reqwest::Client::new();
    let run = (std::process::id() as u64 % 10_000 + 1) * 1_000_000_000;
    let tokens: Vec<String> = (0..20).map(|u| client.token(run + u)).collect();
    let until = Instant::now() + length;
    let mut n = 0u64;
    while Instant::now() < until {
        let token = &tokens[(n % 20) as usize];
        let content = run + n % 7;
        client.act(token, content, !n.is_multiple_of(3)).await;
        let _ = client.count(content).await;
        let _ = http
            .post(format!("{url}/v1/contents:batchGet"))
            .bearer_auth(token)
            .json(&serde_json::json!({"content_ids": [run, run + 1, run + 2]}))
            .send()
            .await;
        n += 1;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[test]
fn the_metrics_an_expression_selects_are_found() {
    let expr = "sum(rate(a_total{job=\"x\"}[1m])) / sum(rate(b_seconds_count{job=\"x\",le=\"1\"}[1m])) or vector(0)";
    assert_eq!(selected_metrics(expr), ["a_total", "b_seconds_count"]);
    assert_eq!(
        selected_metrics("count({__name__=\"up\"})"),
        Vec::<String>::new()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_dashboard_panel_returns_data_from_prometheus() {
    let expressions = dashboard_expressions();
    assert!(
        expressions.len() >= 30,
        "only {} expressions",
        expressions.len()
    );
    let stack = Stack::up();
    let prometheus = Prometheus::up();
    let url = stack.get("LIKES_STACK_URL").to_owned();
    let client = Arc::new(Client::new(&url, stack.get("LIKES_AUTH__JWT_SECRET")));
    // Rates over [1m] need two scrapes (every 5 s) inside the load.
    load(client, &url, Duration::from_secs(20)).await;

    let mut metrics: Vec<String> = expressions
        .iter()
        .flat_map(|(_, expr)| selected_metrics(expr))
        .collect();
    metrics.sort();
    metrics.dedup();
    assert!(
        metrics
            .iter()
            .any(|m| m == "messaging_client_operation_duration_seconds_count"),
        "{metrics:?}"
    );
    let checks: Vec<(String, String)> = expressions
        .iter()
        .cloned()
        .chain(metrics.iter().map(|name| {
            (
                format!("metric {name}"),
                format!("count({{__name__=\"{name}\"}})"),
            )
        }))
        .collect();
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let mut empty = Vec::new();
        for (panel, expr) in &checks {
            match prometheus.query(&http, expr).await {
                Ok(result) if !result.is_empty() => {}
                Ok(_) => empty.push(format!("{panel}: no data for {expr}")),
                Err(error) => empty.push(format!("{panel}: {expr} failed: {error}")),
            }
        }
        if empty.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{} of {} dashboard expressions and metrics return nothing:\n{}",
            empty.len(),
            checks.len(),
            empty.join("\n")
        );
        tokio::time::sleep(Duration::from_secs(5)).await;
    }
    drop(prometheus);
    drop(stack);
}
