//! One like, one trace across the queue: `likes-ingest` and a pipeline worker on the real
//! Redis, Pulsar and TiDB export their spans over OTLP/HTTP (JSON) to a receiver in this test,
//! which must find the caller's trace continued by the HTTP request span, the publish span
//! under it, and the worker's window span linking to that publish, with the store's transaction
//! inside the window span; all under a sampler that traces nothing a sampled caller did not
//! start.
//!
//! Its own test binary: the tracer is the process's global subscriber, set once.

mod support;

use reqwest::Method;
use serde_json::Value;
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::{spawn, Backend};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

/// What the process logged, as the JSON lines of `LIKES_LOG_FORMAT=json`.
#[derive(Clone, Default)]
struct Logs(Arc<parking_lot::Mutex<Vec<u8>>>);

impl std::io::Write for Logs {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Logs {
    fn lines(&self) -> Vec<Value> {
        String::from_utf8_lossy(&self.0.lock())
            .lines()
            .filter_map(|line| serde_json::from_str(line).ok())
            .collect()
    }
}

/// Every span exported to the receiver so far, as OTLP JSON spans.
type Received = Arc<parking_lot::Mutex<Vec<Value>>>;

/// A bare OTLP/HTTP receiver: reads each `POST /v1/traces` body, answers 200, keeps the spans.
async fn receiver() -> (String, Received) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let spans: Received = Arc::default();
    let kept = spans.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let kept = kept.clone();
            tokio::spawn(async move {
                let mut stream = BufReader::new(stream);
                loop {
                    let mut length = 0usize;
                    let mut line = String::new();
                    loop {
                        line.clear();
                        if stream.read_line(&mut line).await.unwrap_or(0) == 0 {
                            return;
                        }
                        if line == "\r\n" {
                            break;
                        }
                        if let Some((name, value)) = line.split_once(':') {
                            if name.eq_ignore_ascii_case("content-length") {
                                length = value.trim().parse().unwrap_or(0);
                            }
                        }
                    }
                    let mut body = vec![0; length];
                    if stream.read_exact(&mut body).await.is_err() {
                        return;
                    }
                    let request: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                    let found = request["resourceSpans"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .flat_map(|r| r["scopeSpans"].as_array().into_iter().flatten())
                        .flat_map(|s| s["spans"].as_array().into_iter().flatten())
                        .cloned();
                    kept.lock().extend(found);
                    let answer = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}";
                    if stream.get_mut().write_all(answer.as_bytes()).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (format!("http://{addr}"), spans)
}

fn find(spans: &[Value], what: impl Fn(&Value) -> bool) -> Option<&Value> {
    spans.iter().find(|span| what(span))
}

/// Whether `span` is `ancestor` or lies under it, following `parentSpanId` through `spans`.
fn descends_from(spans: &[Value], span: &Value, ancestor: &Value) -> bool {
    let mut current = span;
    for _ in 0..spans.len() + 1 {
        if current["spanId"] == ancestor["spanId"] {
            return true;
        }
        match find(spans, |s| s["spanId"] == current["parentSpanId"]) {
            Some(parent) => current = parent,
            None => return false,
        }
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_like_is_one_trace_from_the_request_to_the_sink_commit() {
    let (endpoint, spans) = receiver().await;
    // Set before the exporter reads them, in this binary's only test.
    std::env::set_var("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint);
    std::env::set_var("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json");
    // A ratio of 0: only what a sampled caller started is traced. The request and the publish
    // follow the caller's sampled flag, and the window follows its link to the publish.
    std::env::set_var("OTEL_TRACES_SAMPLER", "parentbased_traceidratio");
    std::env::set_var("OTEL_TRACES_SAMPLER_ARG", "0");
    // JSON logs, read back below; the worker's "window committed" line is at debug.
    std::env::set_var("LIKES_LOG_FORMAT", "json");
    let logs = Logs::default();
    let written = logs.clone();
    let telemetry = likes_shared::telemetry::init_writing_logs_to(
        "likes-traces-test",
        "warn,likes_pipeline=debug",
        likes_shared::telemetry::BoxMakeWriter::new(move || written.clone()),
    );
    assert!(telemetry.exports_traces(), "the OTLP exporter is on");

    let t = spawn(Backend::Distributed, |_| {}).await;
    // The caller's own trace: ingest must continue it.
    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let caller_span = "00f067aa0ba902b7";
    let like = t
        .request(Method::PUT, "/v1/contents/77/like", Some(5))
        .header("traceparent", format!("00-{trace_id}-{caller_span}-01"));
    t.json(like, 200).await;
    t.eventually("the like is committed", || async {
        t.stored_counts(&[77]).await == [1]
    })
    .await;

    // The three spans and the link, as the exporter delivers them (batched, so poll).
    let deadline = Instant::now() + Duration::from_secs(20);
    let (request, publish, window) = loop {
        telemetry.flush().await;
        let spans = spans.lock().clone();
        let request = find(&spans, |s| {
            s["traceId"] == trace_id && s["name"] == "PUT like" && s["parentSpanId"] == caller_span
        });
        let publish = request.and_then(|request| {
            find(&spans, |s| {
                s["traceId"] == trace_id
                    && s["name"].as_str().is_some_and(|n| n.starts_with("send "))
                    && descends_from(&spans, s, request)
            })
        });
        let window = publish.and_then(|publish| {
            find(&spans, |s| {
                s["name"] == "commit window"
                    && s["links"].as_array().is_some_and(|links| {
                        links.iter().any(|link| {
                            link["traceId"] == trace_id && link["spanId"] == publish["spanId"]
                        })
                    })
            })
        });
        if let (Some(r), Some(p), Some(w)) = (request, publish, window) {
            break (r.clone(), p.clone(), w.clone());
        }
        assert!(
            Instant::now() < deadline,
            "no request → publish → window chain for trace {trace_id} in {} spans:\n{}",
            spans.len(),
            serde_json::to_string_pretty(&spans).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let spans = spans.lock().clone();
    let transaction = find(&spans, |s| {
        s["name"] == "apply_window" && s["parentSpanId"] == window["spanId"]
    });
    assert!(
        transaction.is_some(),
        "the store's transaction runs inside the window span {window}"
    );
    // A log line written inside the window span carries the window's trace id.
    let logged = logs.lines().into_iter().find(|line| {
        line["fields"]["message"] == "window committed"
            && line["spans"].as_array().is_some_and(|spans| {
                spans
                    .iter()
                    .any(|span| span["trace_id"] == window["traceId"])
            })
    });
    assert!(
        logged.is_some(),
        "no 'window committed' log line with trace_id {} among {} lines",
        window["traceId"],
        logs.lines().len()
    );
    // The request span says what was served.
    let attributes = request["attributes"].to_string();
    assert!(attributes.contains("http.route"), "{request}");
    assert!(
        publish["attributes"].to_string().contains("pulsar"),
        "{publish}"
    );
    t.stop().await;
    telemetry.shutdown().await;
}
