//! Logs, traces and metrics. Request bodies and GraphQL variables are never recorded.

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use musubi_config::{Config, LogFormat};
use opentelemetry::trace::{TraceContextExt, TracerProvider as _};
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::trace::SdkTracerProvider;
use std::sync::OnceLock;
use std::time::Instant;
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    #[error("configuration error in MUSUBI_LOG: {0}")]
    Filter(String),
    #[error("configuration error in OTEL_EXPORTER_OTLP_ENDPOINT: cannot build the exporter: {0}")]
    Exporter(String),
    #[error("logging was already initialised")]
    AlreadyInitialised,
}

/// Flushes and stops the trace exporter when dropped.
pub struct TelemetryGuard {
    provider: Option<SdkTracerProvider>,
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        if let Some(p) = self.provider.take() {
            let _ = p.shutdown();
        }
    }
}

/// Installs logging and, when an OTLP endpoint is configured, trace export.
/// Call before starting the async runtime: the OTLP HTTP client is a blocking one.
pub fn init(config: &Config) -> Result<TelemetryGuard, TelemetryError> {
    let filter = EnvFilter::try_new(&config.log_filter)
        .map_err(|e| TelemetryError::Filter(e.to_string()))?;
    // The log filter applies to logs only: quiet logs must not silence exported traces.
    let fmt = match config.log_format {
        LogFormat::Text => tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_target(false)
            .with_filter(filter)
            .boxed(),
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .json()
            .with_filter(filter)
            .boxed(),
    };
    let mut provider = None;
    let otel = match &config.otlp_endpoint {
        Some(endpoint) => {
            let exporter = opentelemetry_otlp::SpanExporter::builder()
                .with_http()
                .with_endpoint(format!("{}/v1/traces", endpoint.trim_end_matches('/')))
                .build()
                .map_err(|e| TelemetryError::Exporter(e.to_string()))?;
            let p = SdkTracerProvider::builder()
                .with_batch_exporter(exporter)
                .with_resource(
                    opentelemetry_sdk::Resource::builder()
                        .with_service_name(config.otel_service_name.clone())
                        .build(),
                )
                .build();
            let tracer = p.tracer("musubi");
            opentelemetry::global::set_tracer_provider(p.clone());
            provider = Some(p);
            Some(
                tracing_opentelemetry::layer()
                    .with_tracer(tracer)
                    .with_filter(tracing_subscriber::filter::LevelFilter::INFO),
            )
        }
        None => None,
    };
    tracing_subscriber::registry()
        .with(fmt)
        .with(otel)
        .try_init()
        .map_err(|_| TelemetryError::AlreadyInitialised)?;
    Ok(TelemetryGuard { provider })
}

/// The Prometheus recorder, installed once per process (tests build many apps in one process).
pub fn metrics_handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets(&[
                    0.001, 0.0025, 0.005, 0.01, 0.02, 0.03, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                ])
                .map(|b| b.build_recorder())
                .unwrap_or_else(|_| PrometheusBuilder::new().build_recorder());
            let handle = recorder.handle();
            // Fails only if another recorder is installed; then this handle renders nothing.
            let _ = metrics::set_global_recorder(recorder);
            handle
        })
        .clone()
}

/// The id a client sees next to an internal error: the OpenTelemetry trace id when tracing is
/// exported, otherwise the request id of the current request span.
#[derive(Clone, Debug)]
pub struct RequestId(pub String);

pub fn current_trace_id(fallback: Option<&RequestId>) -> String {
    let ctx = tracing::Span::current().context();
    let span = ctx.span();
    let sc = span.span_context();
    if sc.is_valid() {
        return sc.trace_id().to_string();
    }
    fallback
        .map(|r| r.0.clone())
        .unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string())
}

/// Where a request comes from: the peer address, or the address the nearest proxy reports
/// when the deployment says its proxy is trusted.
#[derive(Clone, Debug, Default)]
pub struct ClientMeta {
    pub ip: String,
    pub user_agent: String,
}

/// Whether `X-Forwarded-For` is set by a trusted reverse proxy (`MUSUBI_TRUST_PROXY`).
#[derive(Clone, Copy, Debug, Default)]
pub struct TrustProxy(pub bool);

fn client_meta(req: &Request, trust_proxy: TrustProxy) -> ClientMeta {
    let forwarded = trust_proxy
        .0
        .then(|| req.headers().get("x-forwarded-for"))
        .flatten()
        .and_then(|v| v.to_str().ok())
        // The proxy appends the address it saw: the last entry is the one it vouches for.
        .and_then(|v| v.rsplit(',').next())
        .map(|v| v.trim().to_owned())
        .filter(|v| v.parse::<std::net::IpAddr>().is_ok());
    let peer = req
        .extensions()
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0.ip().to_string());
    let user_agent = req
        .headers()
        .get(http::header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .chars()
        .take(300)
        .collect();
    ClientMeta {
        ip: forwarded.or(peer).unwrap_or_default(),
        user_agent,
    }
}

/// Per-request span, request id, client address, and request count/latency by route.
pub async fn http_layer(
    axum::extract::State(trust_proxy): axum::extract::State<TrustProxy>,
    mut req: Request,
    next: Next,
) -> Response {
    let meta = client_meta(&req, trust_proxy);
    req.extensions_mut().insert(meta);
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let method = req.method().as_str().to_owned();
    let request_id = RequestId(uuid::Uuid::new_v4().simple().to_string());
    req.extensions_mut().insert(request_id.clone());
    let span = tracing::info_span!(
        "http.request",
        http.method = %method,
        http.route = %route,
        request_id = %request_id.0,
        http.status = tracing::field::Empty,
    );
    let start = Instant::now();
    let mut response = next.run(req).instrument(span.clone()).await;
    let status = response.status().as_u16();
    span.record("http.status", status);
    let labels = [
        ("route", route),
        ("method", method),
        ("status", status.to_string()),
    ];
    metrics::counter!("musubi_http_requests_total", &labels).increment(1);
    metrics::histogram!("musubi_http_request_duration_seconds", &labels[..2])
        .record(start.elapsed().as_secs_f64());
    if let Ok(v) = http::HeaderValue::from_str(&request_id.0) {
        response.headers_mut().insert("x-request-id", v);
    }
    response
}
