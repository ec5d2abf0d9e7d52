#![doc = include_str!("../README.md")]

use std::future::Future;
use std::io::IsTerminal;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tokio_util::sync::CancellationToken;
use tracing::{Event, Subscriber};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::{Format, Json, JsonFields, Writer};
use tracing_subscriber::fmt::{self, FmtContext, FormatEvent, FormatFields, MakeWriter};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;

/// How logs are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// JSON when stdout is not a terminal (containers), human-readable otherwise.
    #[default]
    Auto,
    Json,
    Pretty,
}

impl std::str::FromStr for LogFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" | "" => Ok(LogFormat::Auto),
            "json" => Ok(LogFormat::Json),
            "pretty" | "text" => Ok(LogFormat::Pretty),
            other => Err(format!(
                "LOG_FORMAT must be auto, json or pretty, got {other:?}"
            )),
        }
    }
}

/// Telemetry settings of one binary.
#[derive(Debug, Clone)]
pub struct TelemetryConfig {
    /// `service.name` of traces and the `service` field of logs.
    pub service: String,
    /// `RUST_LOG`-style filter.
    pub filter: String,
    pub format: LogFormat,
    /// OTLP/HTTP endpoint (e.g. `http://otel-collector:4318`); no export when None.
    pub otlp_endpoint: Option<String>,
}

impl TelemetryConfig {
    pub fn new(service: impl Into<String>) -> Self {
        Self {
            service: service.into(),
            filter: "info".into(),
            format: LogFormat::Auto,
            otlp_endpoint: None,
        }
    }
}

/// Flushes and shuts down trace export when dropped; keep it alive in `main`.
#[must_use = "dropping the guard stops trace export"]
pub struct TelemetryGuard {
    tracer_provider: Option<SdkTracerProvider>,
}

impl std::fmt::Debug for TelemetryGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TelemetryGuard")
            .field("otlp", &self.tracer_provider.is_some())
            .finish()
    }
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        if let Some(provider) = self.tracer_provider.take()
            && let Err(e) = provider.shutdown()
        {
            eprintln!("flushing traces failed: {e}");
        }
    }
}

/// Installs logging, the trace propagator, optional OTLP export and the Prometheus
/// recorder. Call once, at the start of `main`.
pub fn init(config: TelemetryConfig) -> anyhow::Result<TelemetryGuard> {
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    let filter = EnvFilter::try_new(&config.filter)
        .with_context(|| format!("invalid log filter {:?}", config.filter))?;

    let tracer_provider = match &config.otlp_endpoint {
        Some(endpoint) => {
            use opentelemetry_otlp::WithExportConfig;
            // The batch processor below exports from a thread of its own, outside
            // the Tokio runtime: the exporter uses the blocking reqwest client
            // (feature `reqwest-blocking-client`); the async one panics there.
            let exporter = opentelemetry_otlp::SpanExporter::builder()
                .with_http()
                .with_endpoint(format!("{}/v1/traces", endpoint.trim_end_matches('/')))
                .with_timeout(Duration::from_secs(10))
                .build()
                .context("building the OTLP exporter")?;
            let resource = opentelemetry_sdk::Resource::builder()
                .with_service_name(config.service.clone())
                .build();
            Some(
                SdkTracerProvider::builder()
                    .with_batch_exporter(exporter)
                    .with_resource(resource)
                    .build(),
            )
        }
        None => None,
    };
    let otel_layer = tracer_provider.as_ref().map(|p| {
        opentelemetry::global::set_tracer_provider(p.clone());
        tracing_opentelemetry::layer().with_tracer(p.tracer(config.service.clone()))
    });

    let json = match config.format {
        LogFormat::Json => true,
        LogFormat::Pretty => false,
        LogFormat::Auto => !std::io::stdout().is_terminal(),
    };
    let registry = tracing_subscriber::registry().with(filter).with(otel_layer);
    let result = if json {
        registry.with(json_layer(std::io::stdout)).try_init()
    } else {
        registry.with(tracing_subscriber::fmt::layer()).try_init()
    };
    result.context("installing the log subscriber")?;
    metrics_handle();
    Ok(TelemetryGuard { tracer_provider })
}

/// One JSON object per line: the event's fields flattened, the fields of its
/// span under `span`, and the `trace_id`/`span_id` it was written in.
fn json_layer<S, W>(writer: W) -> fmt::Layer<S, JsonFields, WithTraceIds<Format<Json>>, W>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    W: for<'w> MakeWriter<'w> + 'static,
{
    fmt::layer()
        .json()
        .flatten_event(true)
        .with_current_span(true)
        .with_span_list(false)
        .with_writer(writer)
        .map_event_format(WithTraceIds)
}

/// Adds `trace_id` and `span_id` to each JSON line written inside a span that
/// has an OpenTelemetry context, so a log line leads to its trace (and the
/// lines of one trace, across processes, can be found by its id).
///
/// The OpenTelemetry layer makes an entered span's context the current one on
/// its thread, which is where the event is formatted; lines outside any traced
/// span (or without export configured) are left as they are.
#[derive(Debug)]
struct WithTraceIds<F>(F);

impl<S, N, F> FormatEvent<S, N> for WithTraceIds<F>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
    F: FormatEvent<S, N>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> std::fmt::Result {
        use opentelemetry::trace::TraceContextExt;

        let cx = opentelemetry::Context::current();
        let span = cx.span();
        let ids = span.span_context();
        if !ids.is_valid() {
            return self.0.format_event(ctx, writer, event);
        }
        let mut line = String::new();
        self.0.format_event(ctx, Writer::new(&mut line), event)?;
        // The inner format writes one object and a newline: the ids go before its `}`.
        match line.rfind('}') {
            Some(end) => write!(
                writer,
                "{},\"trace_id\":\"{}\",\"span_id\":\"{}\"{}",
                &line[..end],
                ids.trace_id(),
                ids.span_id(),
                &line[end..]
            ),
            None => writer.write_str(&line),
        }
    }
}

/// The process-wide Prometheus recorder, installed on first use.
pub fn metrics_handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets(&[
                    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                    10.0, 30.0, 60.0,
                ])
                .expect("static buckets are valid")
                .build_recorder();
            let handle = recorder.handle();
            // Another recorder may be installed already (tests); /metrics then shows
            // only what this handle sees, which is better than failing.
            let _ = metrics::set_global_recorder(recorder);
            handle
        })
        .clone()
}

type CheckFuture = Pin<Box<dyn Future<Output = Result<(), String>> + Send>>;
type Check = Arc<dyn Fn() -> CheckFuture + Send + Sync>;

/// Named checks behind `/readyz`: each must pass within 2 s.
#[derive(Clone, Default)]
pub struct Readiness {
    checks: Vec<(&'static str, Check)>,
}

impl std::fmt::Debug for Readiness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<_> = self.checks.iter().map(|(n, _)| *n).collect();
        f.debug_struct("Readiness").field("checks", &names).finish()
    }
}

impl Readiness {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a check, e.g. `("redis", || async { broker.ping().await.map_err(..) })`.
    pub fn check<F, Fut>(mut self, name: &'static str, check: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), String>> + Send + 'static,
    {
        self.checks
            .push((name, Arc::new(move || Box::pin(check()) as CheckFuture)));
        self
    }

    /// Runs every check; the map says `ok` or the error of each.
    pub async fn run(&self) -> (bool, serde_json::Map<String, serde_json::Value>) {
        let results = futures::future::join_all(self.checks.iter().map(|(name, check)| {
            let check = check.clone();
            async move {
                let r = tokio::time::timeout(Duration::from_secs(2), check()).await;
                let r = r.unwrap_or_else(|_| Err("timed out after 2 s".into()));
                (*name, r)
            }
        }))
        .await;
        let mut ok = true;
        let mut map = serde_json::Map::new();
        for (name, r) in results {
            let v = match r {
                Ok(()) => "ok".to_owned(),
                Err(e) => {
                    ok = false;
                    e
                }
            };
            map.insert(name.to_owned(), serde_json::Value::String(v));
        }
        (ok, map)
    }
}

/// `/healthz` (the process is alive), `/readyz` (its dependencies answer) and
/// `/metrics` (Prometheus text format).
pub fn health_router(readiness: Readiness) -> Router {
    let handle = metrics_handle();
    Router::new()
        .route(
            "/healthz",
            get(|| async { axum::Json(serde_json::json!({"status": "ok"})) }),
        )
        .route(
            "/readyz",
            get(move || {
                let readiness = readiness.clone();
                async move {
                    let (ok, checks) = readiness.run().await;
                    let status = if ok {
                        StatusCode::OK
                    } else {
                        StatusCode::SERVICE_UNAVAILABLE
                    };
                    let body = serde_json::json!({
                        "status": if ok { "ready" } else { "not ready" },
                        "checks": checks,
                    });
                    (status, axum::Json(body)).into_response()
                }
            }),
        )
        .route(
            "/metrics",
            get(move || {
                let handle = handle.clone();
                async move {
                    (
                        [("content-type", "text/plain; version=0.0.4")],
                        handle.render(),
                    )
                }
            }),
        )
}

/// Serves `router` on `addr` until `shutdown` is cancelled.
pub async fn serve(
    addr: SocketAddr,
    router: Router,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding {addr}"))?;
    serve_on(listener, router, shutdown).await
}

/// Serves `router` on a bound listener (tests bind port 0) until `shutdown`.
pub async fn serve_on(
    listener: tokio::net::TcpListener,
    router: Router,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    // The peer's address rides on each request (`ConnectInfo`): the gateway
    // counts wrong keys per client address.
    axum::serve(
        listener,
        router.into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(async move { shutdown.cancelled().await })
    .await
    .context("http server")
}

struct HeaderExtractor<'a>(&'a axum::http::HeaderMap);

impl opentelemetry::propagation::Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(|k| k.as_str()).collect()
    }
}

/// Makes `span` continue the trace of an incoming request (`traceparent` header),
/// so one trace runs from the caller through the gateway into the worker.
pub fn continue_http_trace(span: &tracing::Span, headers: &axum::http::HeaderMap) {
    use tracing_opentelemetry::OpenTelemetrySpanExt;
    if !headers.contains_key("traceparent") {
        return;
    }
    let cx =
        opentelemetry::global::get_text_map_propagator(|p| p.extract(&HeaderExtractor(headers)));
    let _ = span.set_parent(cx);
}

/// A token cancelled on the first SIGTERM or SIGINT.
pub fn shutdown_token() -> CancellationToken {
    let token = CancellationToken::new();
    let cancel = token.clone();
    tokio::spawn(async move {
        let terminate = async {
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(mut s) => {
                    s.recv().await;
                }
                Err(_) => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            _ = terminate => tracing::info!("SIGTERM received, shutting down"),
            _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT received, shutting down"),
        }
        cancel.cancel();
    });
    token
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::Request;
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    use super::*;

    async fn get(router: Router, path: &str) -> (StatusCode, String) {
        let res = router
            .oneshot(Request::get(path).body(Body::empty()).expect("request"))
            .await
            .expect("response");
        let status = res.status();
        let body = res.into_body().collect().await.expect("body").to_bytes();
        (status, String::from_utf8_lossy(&body).into_owned())
    }

    #[tokio::test]
    async fn readyz_names_the_failing_dependency_with_503() {
        let readiness = Readiness::new()
            .check("redis", || async { Ok(()) })
            .check("postgres", || async {
                Err("connection refused".to_owned())
            });
        let (status, body) = get(health_router(readiness), "/readyz").await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(
            body.contains(r#""postgres":"connection refused""#),
            "{body}"
        );
        assert!(body.contains(r#""redis":"ok""#), "{body}");
    }

    #[tokio::test]
    async fn readyz_is_200_when_every_check_passes_and_healthz_always() {
        let readiness = Readiness::new().check("redis", || async { Ok(()) });
        let (status, _) = get(health_router(readiness.clone()), "/readyz").await;
        assert_eq!(status, StatusCode::OK);
        let (status, _) = get(health_router(Readiness::new()), "/healthz").await;
        assert_eq!(status, StatusCode::OK);
    }

    #[tokio::test]
    async fn metrics_are_rendered_in_prometheus_format() {
        let router = health_router(Readiness::new());
        metrics::counter!("telemetry_test_total").increment(3);
        let (status, body) = get(router, "/metrics").await;
        assert_eq!(status, StatusCode::OK);
        assert!(body.contains("telemetry_test_total 3"), "{body}");
    }

    /// Collects what a fmt layer writes.
    #[derive(Clone, Default)]
    struct Lines(Arc<std::sync::Mutex<Vec<u8>>>);

    impl std::io::Write for Lines {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().expect("lines lock").extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Lines {
        type Writer = Lines;
        fn make_writer(&'a self) -> Lines {
            self.clone()
        }
    }

    #[test]
    fn json_lines_written_in_a_traced_span_carry_its_trace_and_span_ids() {
        use opentelemetry::trace::TraceContextExt;
        use tracing_opentelemetry::OpenTelemetrySpanExt;

        let provider = SdkTracerProvider::builder().build();
        let lines = Lines::default();
        let subscriber = tracing_subscriber::registry()
            .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test")))
            .with(json_layer(lines.clone()));
        let ids = tracing::subscriber::with_default(subscriber, || {
            tracing::info!("outside any span");
            let span = tracing::info_span!("request", request.id = "r-1");
            let _entered = span.enter();
            tracing::info!(person.id = 7, "inside the span");
            span.context().span().span_context().clone()
        });
        let text = String::from_utf8(lines.0.lock().expect("lines lock").clone()).expect("utf-8");
        let parsed: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).expect("each line is one JSON object"))
            .collect();
        assert_eq!(parsed.len(), 2, "{text}");
        assert_eq!(parsed[0]["message"], "outside any span");
        assert!(parsed[0].get("trace_id").is_none(), "{text}");
        assert_eq!(parsed[1]["message"], "inside the span");
        assert_eq!(parsed[1]["person.id"], 7);
        assert_eq!(parsed[1]["span"]["request.id"], "r-1");
        assert_eq!(parsed[1]["trace_id"], ids.trace_id().to_string(), "{text}");
        assert_eq!(parsed[1]["span_id"], ids.span_id().to_string(), "{text}");
    }

    #[test]
    fn log_formats_parse_with_a_clear_error() {
        assert_eq!("json".parse::<LogFormat>(), Ok(LogFormat::Json));
        let err = "xml".parse::<LogFormat>().expect_err("rejected");
        assert!(err.contains("LOG_FORMAT"), "{err}");
    }
}
