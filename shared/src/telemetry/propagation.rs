//! The W3C trace context across process boundaries: an HTTP request's `traceparent` header
//! continues the caller's trace, a published event carries its publish span's `traceparent` in
//! the message properties, and the worker's window span links to each message's context.
//!
//! Everything here is a no-op while traces are off: an untraced span has no valid context, so
//! nothing is injected, and nothing extracted is attached.

use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::TraceContextExt;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use std::collections::HashMap;
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// The header and message property that carry the context.
pub const TRACEPARENT: &str = "traceparent";

/// A `traceparent` value (`00-<trace id>-<span id>-<flags>`), as it travels with an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceParent(pub String);

impl TraceParent {
    /// The context of the current span, if it is traced.
    pub fn current() -> Option<TraceParent> {
        let context = Span::current().context();
        let span = context.span();
        let span_context = span.span_context();
        span_context.is_valid().then(|| {
            TraceParent(format!(
                "00-{}-{}-{:02x}",
                span_context.trace_id(),
                span_context.span_id(),
                span_context.trace_flags().to_u8()
            ))
        })
    }

    /// Whether the caller sampled its span (the `01` flag): only those are worth a link, since
    /// an unsampled span is never exported.
    pub fn is_sampled(&self) -> bool {
        self.0
            .rsplit('-')
            .next()
            .and_then(|flags| u8::from_str_radix(flags, 16).ok())
            .is_some_and(|flags| flags & 1 == 1)
    }

    /// The trace id part (32 hex digits), if the value is well formed.
    pub fn trace_id(&self) -> Option<&str> {
        let id = self.0.split('-').nth(1)?;
        (id.len() == 32).then_some(id)
    }

    fn extract(&self) -> opentelemetry::Context {
        let carrier = HashMap::from([(TRACEPARENT.to_owned(), self.0.clone())]);
        TraceContextPropagator::new().extract(&carrier)
    }

    /// Makes `span` a child of this context (an incoming request's caller). A malformed value
    /// is ignored: the span starts a trace of its own.
    pub fn adopt_as_parent(&self, span: &Span) {
        let context = self.extract();
        if context.span().span_context().is_valid() {
            let _ = span.set_parent(context);
        }
    }

    /// Links `span` to this context (a window span to the messages it commits).
    pub fn link_from(&self, span: &Span) {
        let context = self.extract();
        let span_context = context.span().span_context().clone();
        if span_context.is_valid() {
            span.add_link(span_context);
        }
    }
}

/// Fills `span`'s `trace_id` field (declared `tracing::field::Empty`) with its trace id, so the
/// log lines inside it carry the id; nothing while traces are off.
pub fn record_trace_id(span: &Span) {
    let context = span.context();
    let trace = context.span();
    let span_context = trace.span_context();
    if span_context.is_valid() {
        span.record("trace_id", tracing::field::display(span_context.trace_id()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_traceparent_names_its_trace() {
        let parent =
            TraceParent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".to_owned());
        assert_eq!(parent.trace_id(), Some("4bf92f3577b34da6a3ce929d0e0e4736"));
        assert!(parent.is_sampled());
        let unsampled =
            TraceParent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00".to_owned());
        assert!(!unsampled.is_sampled());
        assert!(parent.extract().span().span_context().is_valid());
        let garbage = TraceParent("not-a-context".to_owned());
        assert!(!garbage.extract().span().span_context().is_valid());
    }

    #[test]
    fn an_untraced_span_has_no_context_to_send() {
        // No OpenTelemetry layer in this test process: nothing is traced.
        let span = tracing::info_span!("request");
        let _entered = span.enter();
        assert_eq!(TraceParent::current(), None);
    }
}
