//! OpenTelemetry traces: optional OTLP export, and the W3C trace context
//! carried from a publisher, through hookline, to the receivers.
//!
//! With `--otlp-endpoint` set, hookline exports a `publish` span per
//! `publishEvent`/`publishEvents` call and an `attempt` span per delivery
//! attempt, the attempts children of the publish that created them (the
//! publish's `traceparent` is stored with the event, so a retry hours later
//! on another instance still joins the trace). A publish request that carries
//! a `traceparent` header continues the publisher's trace, and every attempt
//! sends its own `traceparent` to the receiver, so a customer's trace goes on
//! from there. Without an endpoint nothing is exported and no span ids are
//! made, but a publisher's `traceparent` is still passed through to the
//! receivers unchanged.

use std::{
    collections::HashMap,
    sync::atomic::{AtomicBool, Ordering},
    time::Duration,
};

use anyhow::Context as _;
use opentelemetry::{
    Context,
    propagation::TextMapPropagator,
    trace::{TraceContextExt, TracerProvider as _},
};
use opentelemetry_otlp::{WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::{
    Resource,
    propagation::TraceContextPropagator,
    trace::{BatchConfigBuilder, BatchSpanProcessor, SdkTracerProvider},
};
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::{Layer, Registry, filter::Targets};

/// The W3C header, in requests to hookline and in deliveries.
pub const TRACEPARENT: &str = "traceparent";

/// The valid `traceparent` a GraphQL request came with (request data).
pub struct InboundTrace(pub String);

/// How often finished spans are sent: soon enough to follow a delivery live,
/// seldom enough to send them in batches.
const EXPORT_EVERY: Duration = Duration::from_secs(1);

static EXPORTING: AtomicBool = AtomicBool::new(false);

/// The exporter, kept to flush what is left at exit.
pub struct Exporter(SdkTracerProvider);

impl Exporter {
    /// Sends the spans still buffered; called once, as the process ends.
    pub fn shutdown(self) {
        if let Err(err) = self.0.shutdown() {
            eprintln!("hookline: exporting the last traces failed: {err}");
        }
    }
}

/// A layer exporting hookline's spans over OTLP/HTTP (protobuf) to
/// `endpoint` (the collector's base URL, e.g. `http://127.0.0.1:4318`; traces
/// go to `/v1/traces` under it).
pub fn otlp_layer(
    endpoint: &str,
) -> anyhow::Result<(Box<dyn Layer<Registry> + Send + Sync>, Exporter)> {
    let url = format!("{}/v1/traces", endpoint.trim_end_matches('/'));
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_endpoint(url.clone())
        .with_timeout(Duration::from_secs(10))
        .with_headers(HashMap::new())
        .build()
        .with_context(|| format!("the OTLP exporter for {url}"))?;
    let processor = BatchSpanProcessor::builder(exporter)
        .with_batch_config(
            BatchConfigBuilder::default()
                .with_scheduled_delay(EXPORT_EVERY)
                .build(),
        )
        .build();
    let provider = SdkTracerProvider::builder()
        .with_span_processor(processor)
        .with_resource(Resource::builder().with_service_name("hookline").build())
        .build();
    let tracer = provider.tracer("hookline");
    // Only hookline's own spans: not the HTTP, SQL and TLS libraries'.
    let layer = tracing_opentelemetry::layer()
        .with_tracer(tracer)
        .with_filter(Targets::new().with_target("hookline", tracing::Level::INFO));
    EXPORTING.store(true, Ordering::Relaxed);
    Ok((Box::new(layer), Exporter(provider)))
}

/// Whether spans are exported (and so have ids worth propagating).
pub fn exporting() -> bool {
    EXPORTING.load(Ordering::Relaxed)
}

/// A `traceparent` value, if it is a valid one: anything else a client sends
/// is ignored rather than stored and passed on.
pub fn valid_traceparent(value: &str) -> Option<String> {
    let context = extract(value);
    context
        .span()
        .span_context()
        .is_valid()
        .then(|| value.trim().to_ascii_lowercase())
}

/// Makes `span` continue the trace of `traceparent` (when exporting).
pub fn continue_trace(span: &tracing::Span, traceparent: Option<&str>) {
    if let Some(traceparent) = traceparent.filter(|_| exporting()) {
        // Fails only for a span that already started, which ours have not.
        let _ = span.set_parent(extract(traceparent));
    }
}

/// The `traceparent` to hand on from `span`: its own context when spans are
/// exported, otherwise `inherited` unchanged (a pass-through).
pub fn traceparent_of(span: &tracing::Span, inherited: Option<&str>) -> Option<String> {
    if !exporting() {
        return inherited.map(str::to_owned);
    }
    let mut carrier = HashMap::new();
    TraceContextPropagator::new().inject_context(&span.context(), &mut carrier);
    carrier
        .remove(TRACEPARENT)
        .or_else(|| inherited.map(str::to_owned))
}

fn extract(traceparent: &str) -> Context {
    let carrier = HashMap::from([(TRACEPARENT.to_owned(), traceparent.trim().to_owned())]);
    TraceContextPropagator::new().extract(&carrier)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_valid_traceparents_are_kept() {
        let good = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        assert_eq!(valid_traceparent(good).as_deref(), Some(good));
        assert_eq!(
            valid_traceparent(&good.to_uppercase()),
            None,
            "W3C requires lowercase hex"
        );
        for bad in [
            "",
            "garbage",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
        ] {
            assert_eq!(valid_traceparent(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn without_export_the_inherited_context_passes_through() {
        let inherited = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let span = tracing::Span::none();
        assert_eq!(
            traceparent_of(&span, Some(inherited)).as_deref(),
            Some(inherited)
        );
        assert_eq!(traceparent_of(&span, None), None);
    }
}
