//! Logs and traces. Logs are JSON (or text) lines on stderr. When
//! `OTEL_EXPORTER_OTLP_ENDPOINT` is set, spans are also exported over OTLP/HTTP (protobuf) to
//! that collector, and the W3C trace context rides in each event's envelope, so a consumer's
//! span joins the trace of the request that caused it; when it is not set, nothing is exported.

use std::collections::HashMap;

use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

/// What to flush at exit.
pub struct Telemetry {
    traces: Option<SdkTracerProvider>,
}

impl Telemetry {
    /// Sends the spans still buffered (at exit).
    pub fn shutdown(self) {
        if let Some(provider) = self.traces
            && let Err(e) = provider.shutdown()
        {
            eprintln!("portside: flushing traces failed: {e}");
        }
    }
}

/// Installs logging, and trace export when a collector is configured. Must run before the
/// async runtime starts (the exporter has a thread of its own).
pub fn init(format: &str) -> Telemetry {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,tower_http=info"));
    let traces = std::env::var("OTEL_EXPORTER_OTLP_ENDPOINT")
        .ok()
        .filter(|e| !e.is_empty())
        .and_then(|_| match tracer_provider() {
            Ok(p) => Some(p),
            Err(e) => {
                eprintln!("portside: OTEL_EXPORTER_OTLP_ENDPOINT: traces are not exported: {e}");
                None
            }
        });
    // RUST_LOG filters the log lines only: spans are exported from INFO up whatever it says.
    let otel = traces.as_ref().map(|p| {
        tracing_opentelemetry::layer()
            .with_tracer(p.tracer("portside"))
            .with_filter(LevelFilter::INFO)
    });
    let fmt = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let fmt = if format == "text" {
        fmt.with_filter(filter).boxed()
    } else {
        fmt.json()
            .flatten_event(true)
            .with_current_span(true)
            .with_filter(filter)
            .boxed()
    };
    tracing_subscriber::registry().with(otel).with(fmt).init();
    if traces.is_some() {
        portside_events::trace_context::install(portside_events::trace_context::Hooks {
            current: current_traceparent,
            join,
        });
    }
    Telemetry { traces }
}

/// The OTLP/HTTP exporter (endpoint, headers and timeouts from the standard `OTEL_*`
/// variables) behind a batching provider named `OTEL_SERVICE_NAME` (default `portside`).
fn tracer_provider() -> Result<SdkTracerProvider, String> {
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .build()
        .map_err(|e| e.to_string())?;
    let service = std::env::var("OTEL_SERVICE_NAME").unwrap_or_else(|_| "portside".into());
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(
            opentelemetry_sdk::Resource::builder()
                .with_service_name(service)
                .build(),
        )
        .build())
}

fn current_traceparent() -> Option<String> {
    let context = tracing::Span::current().context();
    let mut carrier = HashMap::new();
    TraceContextPropagator::new().inject_context(&context, &mut carrier);
    carrier.remove("traceparent")
}

fn join(span: &tracing::Span, traceparent: &str) {
    let carrier = HashMap::from([("traceparent".to_owned(), traceparent.to_owned())]);
    let parent = TraceContextPropagator::new().extract(&carrier);
    let _ = span.set_parent(parent);
}
