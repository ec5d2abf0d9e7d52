//! Carries the trace context through the envelope headers, so a job's span continues
//! the trace of the request that enqueued it. Uses the global OpenTelemetry
//! propagator, which is a no-op until a binary installs one.

use std::collections::HashMap;

use opentelemetry::propagation::{Extractor, Injector};
use tracing_opentelemetry::OpenTelemetrySpanExt;

struct HeaderInjector<'a>(&'a mut HashMap<String, String>);

impl Injector for HeaderInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        self.0.insert(key.to_owned(), value);
    }
}

struct HeaderExtractor<'a>(&'a HashMap<String, String>);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(String::as_str).collect()
    }
}

/// Writes the current span's context (`traceparent`, `tracestate`) into `headers`,
/// unless the caller already set a `traceparent`.
pub(crate) fn inject_current(headers: &mut HashMap<String, String>) {
    if headers.contains_key(crate::envelope::TRACEPARENT) {
        return;
    }
    let cx = tracing::Span::current().context();
    opentelemetry::global::get_text_map_propagator(|p| {
        p.inject_context(&cx, &mut HeaderInjector(headers))
    });
}

/// Makes `span` a child of the trace context found in `headers`, if any.
pub(crate) fn continue_trace(span: &tracing::Span, headers: &HashMap<String, String>) {
    if !headers.contains_key(crate::envelope::TRACEPARENT) {
        return;
    }
    let cx =
        opentelemetry::global::get_text_map_propagator(|p| p.extract(&HeaderExtractor(headers)));
    let _ = span.set_parent(cx);
}
