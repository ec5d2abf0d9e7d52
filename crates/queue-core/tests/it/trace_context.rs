//! Trace context from the enqueuer to the job. A binary of its own with a single
//! test: it installs the global propagator, and a scoped subscriber must not race
//! other tests' threads registering the same tracing callsites.

use std::sync::{Arc, Mutex};

use opentelemetry::trace::{SpanId, TraceContextExt, TraceId, TracerProvider as _};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use queue_core::testing::{TestRedis, eventually, fast_worker_config};
use queue_core::{Job, NewJob};
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::layer::SubscriberExt;

fn ids_of(span: &tracing::Span) -> (TraceId, SpanId) {
    let cx = span.context();
    let sc = cx.span().span_context().clone();
    (sc.trace_id(), sc.span_id())
}

// Current-thread runtime: the subscriber installed with `set_default` belongs to
// this thread, and every task of the runtime (the worker included) runs on it.
#[tokio::test]
async fn the_job_span_continues_the_trace_context_carried_in_the_envelope() {
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    let provider = SdkTracerProvider::builder().build();
    let subscriber = tracing_subscriber::registry()
        .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("queue-core-tests")));
    let _scope = tracing::subscriber::set_default(subscriber);

    let env = TestRedis::new().await;
    let q = env.queue("traced");
    let seen = Arc::new(Mutex::new(None));
    let s = seen.clone();
    let worker = env.spawn_worker(&q, fast_worker_config(), move |job: Job| {
        let s = s.clone();
        async move {
            let header = job.headers().get("traceparent").cloned();
            *s.lock().expect("lock") = Some((ids_of(&tracing::Span::current()), header));
            Ok(())
        }
    });

    let request = tracing::info_span!("http.request");
    let (trace_id, request_span) = ids_of(&request);
    assert_ne!(trace_id, TraceId::INVALID, "the request span is sampled");
    env.producer
        .enqueue(&q, NewJob::new("t.traced", "x"))
        .instrument(request)
        .await
        .expect("enqueue");

    let ((job_trace, job_span), header) =
        eventually("the job ran", async || seen.lock().expect("lock").clone()).await;
    assert_eq!(
        job_trace, trace_id,
        "the job span is in the request's trace"
    );
    assert_ne!(job_span, request_span, "the job has a span of its own");
    let header = header.expect("the envelope carries a traceparent");
    assert!(
        header.contains(&format!("{trace_id}-{request_span}")),
        "{header}"
    );
    worker.stop().await;
    env.finish().await;
}
