//! `/metrics` of every binary after a few requests, on both deployments: the key series exist,
//! carry the names dashboards and alerts use (`infra/prometheus/`), and moved. The embedded
//! `likes` serves ingest's and the worker's on its API port; `likes-ingest` on its API port and
//! a `likes-pipeline run` worker on `LIKES_ADMIN_ADDR`.

mod support;

use reqwest::Method;
use std::collections::BTreeMap;
use support::{spawn, spawn_embedded, Backend};

/// Every sample of a Prometheus text page: the series (name and labels, as written) → value.
fn samples(text: &str) -> BTreeMap<String, f64> {
    text.lines()
        .filter(|line| !line.starts_with('#') && !line.trim().is_empty())
        .filter_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            Some((series.to_owned(), value.parse().ok()?))
        })
        .collect()
}

/// The value of `series`, failing the test with the whole page if it is absent.
fn value(samples: &BTreeMap<String, f64>, series: &str) -> f64 {
    *samples
        .get(series)
        .unwrap_or_else(|| panic!("no {series} in\n{samples:#?}"))
}

/// The sum over every series named `name` (any labels) whose labels contain `with`.
fn sum(samples: &BTreeMap<String, f64>, name: &str, with: &str) -> f64 {
    samples
        .iter()
        .filter(|(series, _)| series.split('{').next() == Some(name) && series.contains(with))
        .map(|(_, v)| v)
        .sum()
}

async fn scrape(client: &reqwest::Client, url: &str) -> BTreeMap<String, f64> {
    let response = client.get(url).send().await.expect("scrape");
    assert_eq!(response.status(), 200, "{url}");
    samples(&response.text().await.expect("text"))
}

on_every_backend! {
    async fn every_binary_serves_the_series_dashboards_read_and_they_move(backend: Backend) {
        // A per-user limit of 2 a second: the third like of user 9 is refused with 429.
        let t = spawn(backend, |config| {
            config.rate.per_user_per_sec = 2;
            config.rate.per_user_burst = 2;
        })
        .await;
        t.like(1, 10).await;
        t.like(2, 10).await;
        t.unlike(1, 10).await;
        t.json(t.request(Method::GET, "/v1/contents/10", Some(2)), 200).await;
        t.like(9, 11).await;
        t.like(9, 12).await;
        t.error(t.request(Method::PUT, "/v1/contents/13/like", Some(9)), 429, "rate_limited")
            .await;
        let pipeline = t.pipeline_metrics_url();
        t.eventually("the worker commits the five changes", || async {
            let s = scrape(&t.client, &pipeline).await;
            s.get("likes_pipeline_event_commit_lag_seconds_count").copied() == Some(5.0)
        })
        .await;

        let ingest = scrape(&t.client, &format!("{}/metrics", t.base)).await;
        let http = "http_server_request_duration_seconds_count";
        assert_eq!(
            value(&ingest, &format!("{http}{{http_request_method=\"PUT\",http_response_status_code=\"200\",http_route=\"like\"}}")),
            4.0
        );
        assert_eq!(
            value(&ingest, &format!("{http}{{http_request_method=\"DELETE\",http_response_status_code=\"200\",http_route=\"unlike\"}}")),
            1.0
        );
        assert_eq!(
            value(&ingest, &format!("{http}{{http_request_method=\"PUT\",http_response_status_code=\"429\",http_route=\"like\"}}")),
            1.0
        );
        assert_eq!(sum(&ingest, http, "http_route=\"get_content\""), 1.0);
        assert_eq!(value(&ingest, "likes_ingest_rate_limited_total{limit=\"user\"}"), 1.0);
        assert_eq!(value(&ingest, "likes_ingest_events_published_total"), 5.0);
        assert!(value(&ingest, "process_resident_memory_bytes") > 1e6);
        assert!(value(&ingest, "process_open_fds") > 3.0);
        assert!(value(&ingest, "tokio_runtime_alive_tasks") >= 1.0);
        assert!(value(&ingest, "tokio_runtime_workers") >= 1.0);
        if backend == Backend::Distributed {
            // Every like and unlike ran the apply script (twice for each of the three cold
            // users: once to learn it is cold, once after the fill) and then the confirm
            // script on Redis, and waited for Pulsar's ack.
            let redis = "db_client_operation_duration_seconds_count";
            assert_eq!(value(&ingest, &format!("{redis}{{db_operation_name=\"apply\",db_system_name=\"redis\",error_type=\"\"}}")), 8.0);
            assert_eq!(value(&ingest, &format!("{redis}{{db_operation_name=\"confirm\",db_system_name=\"redis\",error_type=\"\"}}")), 5.0);
            let sends = "messaging_client_operation_duration_seconds_count";
            assert_eq!(value(&ingest, &format!("{sends}{{error_type=\"\",messaging_operation_name=\"send\",messaging_system=\"pulsar\"}}")), 5.0);
            assert_eq!(value(&ingest, "likes_ingest_cache_breaker_open"), 0.0);
            assert_eq!(value(&ingest, "likes_ingest_spool_depth"), 0.0);
        }

        let worker = scrape(&t.client, &pipeline).await;
        assert_eq!(value(&worker, "likes_pipeline_events_total"), 5.0);
        assert!(value(&worker, "likes_pipeline_windows_total") >= 1.0);
        assert_eq!(value(&worker, "likes_pipeline_window_events_sum"), 5.0);
        assert!(value(&worker, "likes_pipeline_commit_duration_seconds_count") >= 1.0);
        assert!(value(&worker, "likes_pipeline_window_duration_seconds_count") >= 1.0);
        assert!(value(&worker, "likes_sink_transaction_duration_seconds_count") >= 1.0);
        assert!(value(&worker, "likes_pipeline_rows_written_total") >= 3.0);
        assert_eq!(value(&worker, "likes_pipeline_dead_letters_total"), 0.0);
        assert_eq!(value(&worker, "likes_sink_write_conflicts_total"), 0.0);
        assert!(value(&worker, "process_resident_memory_bytes") > 1e6);
        // It has just committed.
        assert!(value(&worker, "likes_pipeline_last_commit_age_seconds") < 30.0);
        if backend == Backend::Distributed {
            assert_eq!(value(&worker, "likes_pipeline_consumer_rebuilds_total"), 0.0);
            assert_eq!(value(&worker, "likes_pipeline_passed_entries_total"), 0.0);
        }
        for (series, _) in ingest.iter().chain(worker.iter()) {
            assert!(
                !series.contains("user") || series.contains("limit=\"user\""),
                "a user id must never be a label: {series}"
            );
        }
    }
}

/// The labels a series of ours may carry: a fixed set of names, each with values from a fixed
/// set (routes, methods, statuses, limits, operations, partitions), never an id or a string a
/// client chose.
const ALLOWED_LABELS: [&str; 12] = [
    "http_route",
    "http_request_method",
    "http_response_status_code",
    "limit",
    "result",
    "le",
    "partition",
    "db_system_name",
    "db_operation_name",
    "messaging_system",
    "messaging_operation_name",
    "error_type",
];

/// The label names of a series as written (`name{a="x",b="y"}`).
fn label_names(series: &str) -> Vec<&str> {
    let Some((_, labels)) = series.split_once('{') else {
        return Vec::new();
    };
    labels
        .trim_end_matches('}')
        .split("\",")
        .filter_map(|pair| {
            pair.split_once('=')
                .map(|(name, _)| name.trim_start_matches(','))
        })
        .collect()
}

/// A client picks the HTTP method; the method label must not become a series per method it
/// invents (I7: every label's values are bounded).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn methods_a_client_invents_do_not_become_series() {
    let t = spawn_embedded(|_| {}).await;
    for method in ["FOO1", "FOO2", "BREW", "PROPFIND"] {
        let method = Method::from_bytes(method.as_bytes()).expect("a method token");
        let answer = t
            .client
            .request(method, format!("{}/v1/contents/1", t.base))
            .send()
            .await
            .expect("answer");
        assert!(answer.status().is_client_error(), "{}", answer.status());
    }
    let ingest = scrape(&t.client, &format!("{}/metrics", t.base)).await;
    let invented: Vec<&String> = ingest
        .keys()
        .filter(|series| {
            ["FOO1", "FOO2", "BREW", "PROPFIND"]
                .iter()
                .any(|m| series.contains(m))
        })
        .collect();
    assert!(
        invented.is_empty(),
        "series per invented method: {invented:#?}"
    );
    assert_eq!(
        sum(
            &ingest,
            "http_server_request_duration_seconds_count",
            "http_request_method=\"_OTHER\""
        ),
        4.0
    );
    for series in ingest.keys() {
        for label in label_names(series) {
            assert!(
                ALLOWED_LABELS.contains(&label),
                "{series}: label {label} is not one of ours"
            );
        }
    }
}
