//! Logs and traces, set up the same way by every role.
//!
//! Logs: JSON (one object per line, with the trace id) in Kubernetes,
//! readable text on a terminal. Traces: OpenTelemetry through
//! `tracing-opentelemetry`, exported over OTLP when
//! `OTEL_EXPORTER_OTLP_ENDPOINT` is set. The W3C trace context travels in
//! bus message headers ([`inject`], [`continue_from`]) and gRPC metadata, so
//! one message is one trace across gateway, router and gateways.

use std::sync::atomic::{AtomicBool, Ordering};

use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::{TraceContextExt as _, TracerProvider as _};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{EnvFilter, Layer as _};

use crate::bus::Headers;

/// How log lines look.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// One JSON object per line (for Kubernetes).
    Json,
    /// Readable text.
    Text,
    /// Text on a terminal, JSON otherwise.
    Auto,
}

static TRACING: AtomicBool = AtomicBool::new(false);

/// Whether traces are being collected (so per-recipient spans are worth making).
pub fn tracing_enabled() -> bool {
    TRACING.load(Ordering::Relaxed)
}

/// Flushes traces when dropped.
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        if let Some(provider) = self.provider.take()
            && let Err(err) = provider.shutdown()
        {
            tracing::warn!(%err, "cannot flush traces");
        }
    }
}

/// The trace layer for `provider`, also marking tracing as on.
pub fn otel_layer<S>(
    provider: &SdkTracerProvider,
    service: &'static str,
) -> impl tracing_subscriber::Layer<S>
where
    S: tracing::Subscriber + for<'span> tracing_subscriber::registry::LookupSpan<'span>,
{
    TRACING.store(true, Ordering::Relaxed);
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    tracing_opentelemetry::layer().with_tracer(provider.tracer(service))
}

/// The OTLP/gRPC span exporter the environment describes. An `https://`
/// endpoint is reached over TLS, trusting the system's authorities and the
/// CA in `OTEL_EXPORTER_OTLP_CERTIFICATE` (PEM) if set, as the OpenTelemetry
/// specification names it.
fn exporter() -> Result<opentelemetry_otlp::SpanExporter, String> {
    use opentelemetry_otlp::WithTonicConfig as _;
    let endpoint = std::env::var("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
        .or_else(|_| std::env::var("OTEL_EXPORTER_OTLP_ENDPOINT"))
        .unwrap_or_default();
    let builder = opentelemetry_otlp::SpanExporter::builder().with_tonic();
    let builder = if endpoint.starts_with("https://") {
        let path = std::env::var_os("OTEL_EXPORTER_OTLP_CERTIFICATE");
        let ca = switchboard_proto::client::read_ca(path.as_deref().map(std::path::Path::new))
            .map_err(|err| format!("OTEL_EXPORTER_OTLP_CERTIFICATE: {err}"))?;
        builder.with_tls_config(switchboard_proto::client::client_tls(ca.as_deref()))
    } else {
        builder
    };
    builder.build().map_err(|err| err.to_string())
}

/// Installs the global subscriber: logs filtered by `RUST_LOG` (default
/// `info`), and traces when `OTEL_EXPORTER_OTLP_ENDPOINT` is set.
pub fn init(format: LogFormat, service: &'static str) -> Telemetry {
    use std::io::IsTerminal as _;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let json = match format {
        LogFormat::Json => true,
        LogFormat::Text => false,
        LogFormat::Auto => !std::io::stderr().is_terminal(),
    };
    let logs = if json {
        tracing_subscriber::fmt::layer()
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .with_writer(std::io::stderr)
            .boxed()
    } else {
        tracing_subscriber::fmt::layer()
            .with_ansi(std::io::stderr().is_terminal())
            .with_writer(std::io::stderr)
            .boxed()
    };
    let provider = std::env::var_os("OTEL_EXPORTER_OTLP_ENDPOINT").and_then(|_| {
        match exporter() {
            Ok(exporter) => Some(
                SdkTracerProvider::builder()
                    .with_batch_exporter(exporter)
                    .with_resource(
                        opentelemetry_sdk::Resource::builder()
                            .with_service_name(service)
                            // Tells apart replicas of one role.
                            .with_attribute(opentelemetry::KeyValue::new(
                                "process.pid",
                                i64::from(std::process::id()),
                            ))
                            .build(),
                    )
                    .build(),
            ),
            Err(err) => {
                // Logging is not up yet.
                #[allow(clippy::print_stderr)]
                {
                    eprintln!("OTLP exporter not started: {err}");
                }
                None
            }
        }
    });
    let traces = provider.as_ref().map(|p| otel_layer(p, service));
    // A second init (tests) keeps the first subscriber.
    let _ = tracing_subscriber::registry()
        .with(filter)
        .with(logs)
        .with(traces)
        .try_init();
    Telemetry { provider }
}

struct HeaderInjector<'a>(&'a mut Headers);

impl Injector for HeaderInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        self.0.push((key.to_owned(), value));
    }
}

struct HeaderExtractor<'a>(&'a [(String, String)]);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v.as_str())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.iter().map(|(k, _)| k.as_str()).collect()
    }
}

/// Bus headers carrying the current span's trace context (none when not tracing).
pub fn inject() -> Headers {
    let mut headers = Headers::new();
    if tracing_enabled() {
        TraceContextPropagator::new().inject_context(
            &Span::current().context(),
            &mut HeaderInjector(&mut headers),
        );
    }
    headers
}

/// Makes `span` a child of the trace context in `headers`, if any, and
/// records its trace id (for the logs).
pub fn continue_from(span: &Span, headers: &[(String, String)]) {
    if !tracing_enabled() {
        return;
    }
    let parent = TraceContextPropagator::new().extract(&HeaderExtractor(headers));
    if parent.span().span_context().is_valid() {
        let _ = span.set_parent(parent);
    }
    record_trace_id(span);
}

/// Records the span's trace id as its `trace_id` field (declared empty).
pub fn record_trace_id(span: &Span) {
    if tracing_enabled() {
        let trace_id = span.context().span().span_context().trace_id();
        span.record("trace_id", tracing::field::display(trace_id));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trace_context_round_trips_through_headers() {
        let headers: Headers = vec![(
            "traceparent".into(),
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".into(),
        )];
        let extracted = TraceContextPropagator::new().extract(&HeaderExtractor(&headers));
        let span = extracted.span();
        let context = span.span_context();
        assert!(context.is_valid());
        assert_eq!(
            context.trace_id().to_string(),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
        let mut out = Headers::new();
        TraceContextPropagator::new().inject_context(&extracted, &mut HeaderInjector(&mut out));
        assert!(out.contains(&headers[0]), "{out:?}");
    }
}
