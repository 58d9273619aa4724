//! W3C trace context across the event backbone. The core stays free of any tracing backend:
//! the binary installs two hooks when it exports traces, one that gives the current span's
//! `traceparent` (stored in each event's envelope as it is recorded) and one that makes a span
//! the child of a `traceparent` (an HTTP request's header, or a consumed event's envelope), so a
//! consumer's work joins the trace of the request that caused it. Without hooks both do nothing.

use std::sync::OnceLock;

/// The hooks of a tracing backend.
#[derive(Debug, Clone, Copy)]
pub struct Hooks {
    /// The current span's context as a `traceparent` header value.
    pub current: fn() -> Option<String>,
    /// Makes `span` a child of the context in `traceparent`.
    pub join: fn(&tracing::Span, &str),
}

static HOOKS: OnceLock<Hooks> = OnceLock::new();

/// Installs the hooks (once per process; later calls are ignored).
pub fn install(hooks: Hooks) {
    let _ = HOOKS.set(hooks);
}

/// The current span's `traceparent`, when traces are exported.
pub fn current() -> Option<String> {
    HOOKS.get().and_then(|h| (h.current)())
}

/// Makes `span` a child of `traceparent`, when traces are exported.
pub fn join(span: &tracing::Span, traceparent: &str) {
    if let Some(h) = HOOKS.get() {
        (h.join)(span, traceparent);
    }
}
