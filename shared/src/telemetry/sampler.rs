//! [`FollowsSampledLinks`]: the sampler every binary uses. It is the one `OTEL_TRACES_SAMPLER`
//! names, with one rule before it: a root span that links to a sampled span is sampled.
//!
//! Why: a worker's window span has no parent (a window holds the likes of many requests) and
//! links to the publishes it commits instead. Under a ratio sampler its own trace id would
//! decide, so a like sampled at ingest would reach its commit in only that share of windows,
//! and the last hop of most sampled traces would be missing. Windows are a few a second, so
//! sampling every one that holds a sampled like costs little.

use opentelemetry::trace::{Link, SpanKind, TraceContextExt, TraceId, TraceState};
use opentelemetry::{Context, KeyValue};
use opentelemetry_sdk::trace::{Config, SamplingDecision, SamplingResult, ShouldSample};

#[derive(Debug, Clone)]
pub struct FollowsSampledLinks {
    /// What decides otherwise: the environment's sampler (parent-based, always on, by default).
    inner: Box<dyn ShouldSample>,
}

impl FollowsSampledLinks {
    /// Around the sampler of `OTEL_TRACES_SAMPLER` / `OTEL_TRACES_SAMPLER_ARG`.
    pub fn from_env() -> Self {
        Self::around(Config::default().sampler)
    }

    pub fn around(inner: Box<dyn ShouldSample>) -> Self {
        FollowsSampledLinks { inner }
    }
}

impl ShouldSample for FollowsSampledLinks {
    fn should_sample(
        &self,
        parent: Option<&Context>,
        trace_id: TraceId,
        name: &str,
        kind: &SpanKind,
        attributes: &[KeyValue],
        links: &[Link],
    ) -> SamplingResult {
        let is_root = parent.is_none_or(|context| !context.has_active_span());
        if is_root && links.iter().any(|link| link.span_context.is_sampled()) {
            return SamplingResult {
                decision: SamplingDecision::RecordAndSample,
                attributes: Vec::new(),
                trace_state: TraceState::default(),
            };
        }
        self.inner
            .should_sample(parent, trace_id, name, kind, attributes, links)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry::trace::{SpanContext, SpanId, TraceFlags};
    use opentelemetry_sdk::trace::Sampler;

    fn link(sampled: bool) -> Link {
        let flags = if sampled {
            TraceFlags::SAMPLED
        } else {
            TraceFlags::default()
        };
        let context = SpanContext::new(
            TraceId::from(7u128),
            SpanId::from(9u64),
            flags,
            true,
            TraceState::default(),
        );
        Link::with_context(context)
    }

    fn decide(sampler: &FollowsSampledLinks, links: &[Link]) -> SamplingDecision {
        sampler
            .should_sample(
                None,
                TraceId::from(1u128),
                "commit window",
                &SpanKind::Internal,
                &[],
                links,
            )
            .decision
    }

    #[test]
    fn a_root_span_linking_to_a_sampled_span_is_sampled_whatever_the_ratio() {
        let never = FollowsSampledLinks::around(Box::new(Sampler::AlwaysOff));
        assert_eq!(
            decide(&never, &[link(false), link(true)]),
            SamplingDecision::RecordAndSample
        );
        // Without a sampled link, the environment's sampler decides.
        assert_eq!(decide(&never, &[link(false)]), SamplingDecision::Drop);
        assert_eq!(decide(&never, &[]), SamplingDecision::Drop);
        let always = FollowsSampledLinks::around(Box::new(Sampler::AlwaysOn));
        assert_eq!(decide(&always, &[]), SamplingDecision::RecordAndSample);
    }
}
