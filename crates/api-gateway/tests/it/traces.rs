//! Traces that arrive: with `OTEL_EXPORTER_OTLP_ENDPOINT` pointing at an
//! OTLP/HTTP receiver of the test's own, the gateway and a qr-worker export one
//! trace per registration (caller -> request span -> job span, through the
//! envelope's `traceparent`), and their JSON log lines carry its id.
//!
//! Both run as processes of their own: the real `api-gateway` binary, and
//! `qr-worker`'s `main` (see [`crate::processes`]). `telemetry::init` installs
//! process-wide state (the subscriber, the tracer provider), and the defect this
//! guards against lived in the export thread of exactly that setup.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::http::StatusCode;
use axum::routing::post;
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use prost::Message;
use queue_core::CancellationToken;
use queue_core::testing::{TestRedis, eventually, redis_url};
use serde_json::json;
use store::testing::TestDb;

use crate::helpers::USER_TOKEN;
use crate::processes::{listening_addr, start_gateway, start_qr_worker};

/// One span as the receiver got it; ids in lowercase hex, as in `traceparent`.
#[derive(Debug, Clone)]
struct ReceivedSpan {
    service: String,
    name: String,
    trace_id: String,
    span_id: String,
    parent_span_id: String,
    attributes: HashMap<String, String>,
}

type Spans = Arc<Mutex<Vec<ReceivedSpan>>>;

/// An OTLP/HTTP trace receiver (`POST /v1/traces`, protobuf) on port 0.
struct Receiver {
    endpoint: String,
    spans: Spans,
    stop: CancellationToken,
}

impl Receiver {
    async fn start() -> Self {
        let spans = Spans::default();
        let store = spans.clone();
        let router = Router::new().route(
            "/v1/traces",
            post(move |body: Bytes| {
                let store = store.clone();
                async move {
                    let Ok(request) = ExportTraceServiceRequest::decode(body) else {
                        return (StatusCode::BAD_REQUEST, Vec::new());
                    };
                    store.lock().expect("spans lock").extend(flatten(request));
                    (
                        StatusCode::OK,
                        ExportTraceServiceResponse::default().encode_to_vec(),
                    )
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the receiver");
        let endpoint = format!("http://{}", listener.local_addr().expect("addr"));
        let stop = CancellationToken::new();
        let cancelled = stop.clone();
        tokio::spawn(async move {
            axum::serve(listener, router)
                .with_graceful_shutdown(async move { cancelled.cancelled().await })
                .await
        });
        Self {
            endpoint,
            spans,
            stop,
        }
    }

    fn spans(&self) -> Vec<ReceivedSpan> {
        self.spans.lock().expect("spans lock").clone()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn text(value: Option<&opentelemetry_proto::tonic::common::v1::AnyValue>) -> String {
    match value.and_then(|v| v.value.as_ref()) {
        Some(AnyValue::StringValue(s)) => s.clone(),
        Some(AnyValue::IntValue(i)) => i.to_string(),
        Some(AnyValue::BoolValue(b)) => b.to_string(),
        Some(AnyValue::DoubleValue(d)) => d.to_string(),
        _ => String::new(),
    }
}

fn flatten(request: ExportTraceServiceRequest) -> Vec<ReceivedSpan> {
    let mut out = Vec::new();
    for resource_spans in request.resource_spans {
        let service = resource_spans
            .resource
            .iter()
            .flat_map(|r| &r.attributes)
            .find(|kv| kv.key == "service.name")
            .map(|kv| text(kv.value.as_ref()))
            .unwrap_or_default();
        for span in resource_spans.scope_spans.into_iter().flat_map(|s| s.spans) {
            out.push(ReceivedSpan {
                service: service.clone(),
                name: span.name,
                trace_id: hex(&span.trace_id),
                span_id: hex(&span.span_id),
                parent_span_id: hex(&span.parent_span_id),
                attributes: span
                    .attributes
                    .iter()
                    .map(|kv| (kv.key.clone(), text(kv.value.as_ref())))
                    .collect(),
            });
        }
    }
    out
}

/// Follows parent links from `span` through `spans`; true if it reaches `ancestor`.
fn descends_from(spans: &[ReceivedSpan], span: &ReceivedSpan, ancestor: &str) -> bool {
    let mut parent = span.parent_span_id.clone();
    for _ in 0..spans.len() {
        if parent == ancestor {
            return true;
        }
        match spans.iter().find(|s| s.span_id == parent) {
            Some(s) => parent = s.parent_span_id.clone(),
            None => return false,
        }
    }
    false
}

#[tokio::test]
async fn a_registration_exports_one_trace_from_the_gateway_request_to_the_qr_job_and_both_logs_carry_its_id()
 {
    let receiver = Receiver::start().await;
    let db = TestDb::new().await;
    let redis = TestRedis::new().await;
    let storage = tempfile::tempdir().expect("tempdir");
    let storage_dir = storage.path().to_str().expect("utf-8 path");
    let redis_url = redis_url();
    let common = [
        ("REDIS_URL", redis_url.as_str()),
        ("RSQ_PREFIX", redis.prefix.as_str()),
        ("DATABASE_URL", db.url.as_str()),
        ("STORAGE_DIR", storage_dir),
        ("LOG_FORMAT", "json"),
        ("RUST_LOG", "info"),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.endpoint.as_str()),
        // Export within 100 ms rather than the default 5 s.
        ("OTEL_BSP_SCHEDULE_DELAY", "100"),
    ];
    let gateway = start_gateway(&common);
    let worker = start_qr_worker(&[&common[..], &[("HEALTH_ADDR", "127.0.0.1:0")]].concat());
    let addr = listening_addr(&gateway).await;

    // The caller's own trace context: everything below must continue it.
    let trace_id = format!("{:032x}", rand_u128());
    let caller_span = "00f067aa0ba902b7";
    let res = reqwest::Client::new()
        .post(format!("http://{addr}/api/persons"))
        .bearer_auth(USER_TOKEN)
        .header("traceparent", format!("00-{trace_id}-{caller_span}-01"))
        .json(&json!({"document": "V-24681357", "first_name": "Ana", "last_name": "Pérez", "email": "ana@example.com"}))
        .send()
        .await
        .expect("register");
    assert_eq!(res.status(), 201, "{}", gateway.output());

    let enqueued = eventually("the gateway logs the enqueued job", async || {
        gateway.line("person registered, QR job enqueued")
    })
    .await;
    let job_id = enqueued["job.id"].as_str().expect("job.id").to_owned();
    // Ends early, with the processes' output, if either panics (the export thread did).
    let (request, job, spans) = eventually("both spans reach the receiver", async || {
        if gateway.panicked() || worker.panicked() {
            return Some(Err(format!("{}\n{}", gateway.output(), worker.output())));
        }
        let spans = receiver.spans();
        let request = spans.iter().find(|s| {
            s.service == "api-gateway"
                && s.name == "request"
                && s.attributes.get("http.route").map(String::as_str) == Some("/api/persons")
        })?;
        let job = spans
            .iter()
            .find(|s| s.service == "qr-worker" && s.attributes.get("job.id") == Some(&job_id))?;
        Some(Ok((request.clone(), job.clone(), spans.clone())))
    })
    .await
    .unwrap_or_else(|output| panic!("a process panicked:\n{output}"));

    assert_eq!(
        request.trace_id, trace_id,
        "the request continues the caller"
    );
    assert_eq!(request.parent_span_id, caller_span);
    assert_eq!(
        job.trace_id, trace_id,
        "the job continues the request's trace"
    );
    assert!(
        descends_from(&spans, &job, &request.span_id),
        "the job span descends from the request span: {spans:#?}"
    );

    // Both processes' log lines carry the trace (and the span they were written in).
    assert_eq!(enqueued["trace_id"], trace_id.as_str(), "{enqueued}");
    assert_eq!(enqueued["span_id"], request.span_id.as_str(), "{enqueued}");
    let generated = eventually("the worker logs the QR", async || {
        worker.line("QR generated")
    })
    .await;
    assert_eq!(generated["trace_id"], trace_id.as_str(), "{generated}");
    assert_eq!(generated["span_id"], job.span_id.as_str(), "{generated}");

    for process in [gateway, worker] {
        let name = process.name;
        let (status, output) = process.terminate().await;
        assert!(status.success(), "{name} exits cleanly: {status}\n{output}");
        assert!(!output.contains("panicked"), "{output}");
    }
    drop(receiver);
    db.cleanup().await;
}

/// A random, valid (non-zero) trace id.
fn rand_u128() -> u128 {
    uuid::Uuid::new_v4().as_u128()
}
