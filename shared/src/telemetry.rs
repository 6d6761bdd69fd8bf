//! Logs and traces for every binary.
//!
//! Logs: `tracing` with key/value fields, filtered by `RUST_LOG` (default `info`), as text or,
//! with `LIKES_LOG_FORMAT=json`, one JSON object a line with the fields of the spans around it,
//! among them the `trace_id` of the request or window being served (see [`record_trace_id`]), so
//! a log line leads to its trace.
//!
//! Traces: OpenTelemetry, exported over OTLP/HTTP when `OTEL_EXPORTER_OTLP_ENDPOINT` is set
//! (`OTEL_EXPORTER_OTLP_PROTOCOL` `http/protobuf` or `http/json`), off otherwise, so a
//! deployment without a collector pays nothing. Sampling is the SDK's, set by the standard
//! `OTEL_TRACES_SAMPLER` / `OTEL_TRACES_SAMPLER_ARG` (default: parent-based, always on); the
//! service name by `OTEL_SERVICE_NAME`, else the binary's; a window span linking to a sampled
//! publish is sampled whatever the ratio (`sampler.rs`). One trace follows a like across the
//! queue: ingest's request span is the parent of its publish span, whose W3C context rides in
//! the Pulsar message's properties ([`propagation`]); the worker's window span links to the
//! context of every message it commits (a window holds thousands of likes from as many
//! requests, so links, not parents, are the shape).

pub mod propagation;
mod sampler;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::trace::SdkTracerProvider;
use std::time::Duration;
pub use tracing_subscriber::fmt::writer::BoxMakeWriter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

pub use propagation::{record_trace_id, TraceParent, TRACEPARENT};
pub use sampler::FollowsSampledLinks;

/// Set once spans are exported: code that builds a span only for the trace asks first.
static TRACES_ENABLED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Whether this process exports spans ([`init`] found an OTLP endpoint).
pub fn traces_enabled() -> bool {
    TRACES_ENABLED.load(std::sync::atomic::Ordering::Relaxed)
}

/// The exporter's settings, all standard OpenTelemetry environment variables.
pub const OTLP_ENDPOINT_VAR: &str = "OTEL_EXPORTER_OTLP_ENDPOINT";
/// `json` for JSON log lines; anything else (or unset) for text.
pub const LOG_FORMAT_VAR: &str = "LIKES_LOG_FORMAT";

/// What becomes a span in a trace, whatever `RUST_LOG` says of logs: this workspace's spans,
/// not the clients' inner workings (and never the exporter's own HTTP calls).
const TRACE_FILTER: &str = "info,sqlx=warn,pulsar=warn,hyper=off,hyper_util=off,h2=off,\
                            opentelemetry=off,opentelemetry_sdk=off,opentelemetry_otlp=off,\
                            warp::filters::trace=off";

/// warp's request tracing writes a line or two for every request (`info`; `warn` for each
/// 4xx, a client's mistake, not the server's): the request span and the metrics say it all,
/// and a server error is logged where it happens, so they are kept out of the logs too,
/// whatever `RUST_LOG` says.
const QUIET: &str = "warp::filters::trace=off";

/// What [`init`] installed. Dropping it does not flush: call [`Telemetry::shutdown`] before the
/// process exits, or the spans of its last seconds are lost.
#[must_use = "shut it down at exit, or the last spans are not exported"]
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Telemetry {
    /// Whether spans are exported.
    pub fn exports_traces(&self) -> bool {
        self.provider.is_some()
    }

    /// Exports what is buffered now (tests wait on it).
    pub async fn flush(&self) {
        if let Some(provider) = self.provider.clone() {
            run_blocking(move || provider.force_flush()).await;
        }
    }

    /// Exports what is buffered and stops the exporter.
    pub async fn shutdown(self) {
        if let Some(provider) = self.provider {
            run_blocking(move || provider.shutdown_with_timeout(Duration::from_secs(5))).await;
        }
    }
}

/// The SDK's flush and shutdown block until the batch task, which runs on tokio, has answered:
/// off the runtime's worker threads, or a single-threaded runtime would wait on itself.
async fn run_blocking(
    call: impl FnOnce() -> opentelemetry_sdk::error::OTelSdkResult + Send + 'static,
) {
    match tokio::task::spawn_blocking(call).await {
        Ok(Ok(())) => {}
        Ok(Err(error)) => tracing::warn!(%error, "exporting the last spans failed"),
        Err(error) => tracing::warn!(%error, "exporting the last spans failed"),
    }
}

/// Installs the global subscriber for `service` (a second call, in tests, changes nothing and
/// exports nothing). Must run inside the tokio runtime when traces are exported.
pub fn init(service: &str) -> Telemetry {
    init_with_default(service, "info")
}

/// [`init`] with another filter for when `RUST_LOG` is unset: a command-line tool may quiet a
/// chatty dependency (pulsar-rs logs every subscribe attempt at `warn`).
pub fn init_with_default(service: &str, filter: &str) -> Telemetry {
    install(Some(service), filter, BoxMakeWriter::new(std::io::stdout))
}

/// [`init_with_default`], with the logs written to `logs` instead of stdout (a test reads
/// what was logged).
pub fn init_writing_logs_to(service: &str, filter: &str, logs: BoxMakeWriter) -> Telemetry {
    install(Some(service), filter, logs)
}

/// Logs only, never an exporter: for command-line tools, whose output is their report.
pub fn init_logs(filter: &str) {
    let _ = install(None, filter, BoxMakeWriter::new(std::io::stdout));
}

/// The global subscriber: logs to `writer`, and spans exported for `service` when it is given
/// and an OTLP endpoint is set.
fn install(service: Option<&str>, filter: &str, writer: BoxMakeWriter) -> Telemetry {
    if tracing::dispatcher::has_been_set() {
        // A second init in one process (tests): the first subscriber stays, and no exporter is
        // built that nothing would feed.
        return Telemetry { provider: None };
    }
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(filter));
    let filter = match QUIET.parse() {
        Ok(quiet) => filter.add_directive(quiet),
        Err(_) => filter,
    };
    let json = std::env::var(LOG_FORMAT_VAR).is_ok_and(|v| v.eq_ignore_ascii_case("json"));
    let logs = if json {
        tracing_subscriber::fmt::layer()
            .with_writer(writer)
            .json()
            .with_current_span(true)
            // Every span around the line, so one inside the publish or the transaction still
            // carries the `trace_id` of the request or window it serves.
            .with_span_list(true)
            .boxed()
    } else {
        tracing_subscriber::fmt::layer()
            .with_writer(writer)
            .with_target(false)
            .boxed()
    };
    let provider = match (service, std::env::var(OTLP_ENDPOINT_VAR)) {
        (Some(service), Ok(endpoint)) if !endpoint.trim().is_empty() => {
            tracer_provider(service).map(|provider| (service, provider))
        }
        _ => None,
    };
    let traces = provider.as_ref().map(|(service, provider)| {
        tracing_opentelemetry::layer()
            .with_tracer(provider.tracer(service.to_string()))
            .with_filter(EnvFilter::new(TRACE_FILTER))
    });
    let installed = tracing_subscriber::registry()
        .with(logs.with_filter(filter))
        .with(traces)
        .try_init()
        .is_ok();
    let provider = provider.filter(|_| installed).map(|(service, provider)| {
        TRACES_ENABLED.store(true, std::sync::atomic::Ordering::Relaxed);
        opentelemetry::global::set_text_map_propagator(
            opentelemetry_sdk::propagation::TraceContextPropagator::new(),
        );
        tracing::info!(service, "exporting traces over OTLP");
        provider
    });
    Telemetry { provider }
}

/// The provider exporting over OTLP/HTTP, or `None` (said in a log line) when the exporter
/// cannot be built from the environment.
fn tracer_provider(service: &str) -> Option<SdkTracerProvider> {
    use opentelemetry_sdk::trace::span_processor_with_async_runtime::BatchSpanProcessor;
    let exporter = match opentelemetry_otlp::SpanExporter::builder().build() {
        Ok(exporter) => exporter,
        Err(error) => {
            eprintln!("traces are off: cannot build the OTLP exporter: {error}");
            return None;
        }
    };
    let service = std::env::var("OTEL_SERVICE_NAME").unwrap_or_else(|_| service.to_owned());
    let resource = opentelemetry_sdk::Resource::builder()
        .with_service_name(service)
        .build();
    let processor =
        BatchSpanProcessor::builder(exporter, opentelemetry_sdk::runtime::Tokio).build();
    Some(
        SdkTracerProvider::builder()
            .with_span_processor(processor)
            .with_sampler(FollowsSampledLinks::from_env())
            .with_resource(resource)
            .build(),
    )
}
