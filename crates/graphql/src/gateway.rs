//! The HTTP and WebSocket entry points. Tenant routing happens here, once per request.

use crate::error::{ensure_code, request_error};
use crate::guard::Guarded;
use crate::{MusubiSchema, RequestContext};
use async_graphql::{BatchRequest, Data, Executor};
use async_graphql_axum::{GraphQLProtocol, GraphQLResponse, GraphQLWebSocket};
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, State, WebSocketUpgrade};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Router};
use musubi_domain::audit::RequestMeta;
use musubi_domain::types::PersonId;
use musubi_domain::{AppError, Services, Tenant};
use musubi_telemetry::{ClientMeta, RequestId};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

/// The header that routes an API request to an association (its slug).
pub const ASSOCIATION_HEADER: &str = "musubi-association";
/// The web session cookie (set by the sign-in pages).
pub const SESSION_COOKIE: &str = "musubi_session";

/// The session token a request carries (bearer or cookie), for fair use to count by.
pub fn session_token(headers: &HeaderMap) -> Option<String> {
    credentials(headers).map(|(t, _)| t)
}

/// `429 Too Many Requests` as a GraphQL response: the stable code `RATE_LIMITED`, and how
/// long to wait both in `Retry-After` and in the error's `retryAfter`.
pub fn rate_limited(retry_after_secs: u64) -> Response {
    come_back_later(
        StatusCode::TOO_MANY_REQUESTS,
        musubi_domain::ErrorCode::RateLimited,
        "too many requests; retry later",
        retry_after_secs,
    )
}

/// `503 Service Unavailable` as a GraphQL response: `OVERLOADED`, nothing was started.
pub fn overloaded(retry_after_secs: u64) -> Response {
    come_back_later(
        StatusCode::SERVICE_UNAVAILABLE,
        musubi_domain::ErrorCode::Overloaded,
        "the server is busy; nothing was done; retry later",
        retry_after_secs,
    )
}

fn come_back_later(
    status: StatusCode,
    code: musubi_domain::ErrorCode,
    message: &str,
    retry_after_secs: u64,
) -> Response {
    let secs = retry_after_secs.max(1);
    let mut err = async_graphql::ServerError::new(message, None);
    let mut ext = async_graphql::ErrorExtensionValues::default();
    ext.set("code", code.as_str());
    ext.set("retryAfter", secs);
    err.extensions = Some(ext);
    let mut res =
        GraphQLResponse::from(async_graphql::Response::from_errors(vec![err])).into_response();
    *res.status_mut() = status;
    res.headers_mut()
        .insert(http::header::RETRY_AFTER, http::HeaderValue::from(secs));
    res
}

/// The token a request carries: a bearer token, or the web session cookie (`true`).
pub(crate) fn credentials(headers: &HeaderMap) -> Option<(String, bool)> {
    if let Some(v) = headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    {
        if let Some(t) = v.strip_prefix("Bearer ") {
            return Some((t.trim().to_owned(), false));
        }
    }
    headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == SESSION_COOKIE)
        .map(|(_, v)| (v.to_owned(), true))
}

fn same_origin(headers: &HeaderMap) -> bool {
    let host = headers
        .get(http::header::HOST)
        .and_then(|v| v.to_str().ok());
    let origin = headers
        .get(http::header::ORIGIN)
        .and_then(|v| v.to_str().ok());
    match (host, origin) {
        (Some(host), Some(origin)) => origin
            .split_once("://")
            .is_some_and(|(_, rest)| rest.trim_end_matches('/') == host),
        _ => false,
    }
}

/// Cookie-authenticated calls must be JSON: a cross-site form cannot send that without a CORS
/// preflight, which this server never grants. That is the CSRF defence for the API.
fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim_start().starts_with("application/json"))
}

#[derive(Clone)]
pub struct Gateway {
    schema: Guarded<MusubiSchema>,
    services: Services,
    max_batch: usize,
    metrics: crate::metrics::OperationMetrics,
    live: LiveConnections,
}

impl Gateway {
    pub fn new(schema: MusubiSchema, services: Services, max_batch: usize) -> Self {
        Self {
            schema: Guarded::new(schema),
            services,
            max_batch,
            metrics: crate::metrics::OperationMetrics::default(),
            live: LiveConnections::default(),
        }
    }
}

/// Live connections one person may have open at once on a replica: a phone, a PC and a few
/// tabs, with room to spare. Each costs memory for as long as it is open (fair use).
const MAX_LIVE_CONNECTIONS_PER_PERSON: usize = 16;

/// Open live connections per person, on this replica.
#[derive(Clone, Default)]
struct LiveConnections(Arc<Mutex<HashMap<PersonId, usize>>>);

/// One open live connection; kept in the connection's data, so it is counted until the
/// connection ends, however it ends.
struct LiveConnection {
    open: LiveConnections,
    person: PersonId,
}

impl LiveConnections {
    fn open(&self, person: PersonId) -> Option<LiveConnection> {
        let mut open = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let n = open.entry(person).or_insert(0);
        if *n >= MAX_LIVE_CONNECTIONS_PER_PERSON {
            return None;
        }
        *n += 1;
        Some(LiveConnection {
            open: self.clone(),
            person,
        })
    }
}

impl Drop for LiveConnection {
    fn drop(&mut self) {
        let mut open = self.open.0.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(n) = open.get_mut(&self.person) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.person);
            }
        }
    }
}

/// `/graphql`, `/graphql/ws` and the API's file routes (`/api/a/{slug}/…`, see
/// [`crate::files`]), which stream their bodies and keep their own limit.
pub fn router(gateway: Gateway, max_body_bytes: usize) -> Router {
    let files = crate::files::routes(gateway.services.clone());
    Router::new()
        .route("/graphql", post(graphql_http))
        .route("/graphql/ws", get(graphql_ws))
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .with_state(gateway)
        .merge(files)
}

/// Resolves the association named by the client, if any. Unknown or unusable → error; the
/// request is then refused as a whole and never touches any schema.
pub(crate) async fn route(
    services: &Services,
    slug: Option<&str>,
) -> Result<Option<Tenant>, AppError> {
    match slug {
        None => Ok(None),
        Some(s) => services.resolve_tenant(s.trim()).await.map(Some),
    }
}

/// A request that could not be read at all.
struct Unreadable(StatusCode, &'static str, &'static str);

impl IntoResponse for Unreadable {
    /// In the GraphQL error shape, like every other refusal.
    fn into_response(self) -> Response {
        let Unreadable(status, code, message) = self;
        let mut response = GraphQLResponse::from(request_error(code, message)).into_response();
        *response.status_mut() = status;
        response
    }
}

const NOT_GRAPHQL: Unreadable = Unreadable(
    StatusCode::BAD_REQUEST,
    "BAD_REQUEST",
    "the body must be a GraphQL request in JSON, such as {\"query\": \"{ server { version } }\"}",
);

/// The body as a GraphQL request or batch. Serde refuses JSON nested deeper than 128 levels,
/// so nothing here recurses without bound; its error text stays in the log.
fn read_body(
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<BatchRequest, Unreadable> {
    let body = body.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            Unreadable(
                StatusCode::PAYLOAD_TOO_LARGE,
                "PAYLOAD_TOO_LARGE",
                "the request body is too large",
            )
        } else {
            Unreadable(
                StatusCode::BAD_REQUEST,
                "BAD_REQUEST",
                "the request body could not be read",
            )
        }
    })?;
    let multipart = headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim_start().starts_with("multipart/"));
    if multipart {
        return Err(Unreadable(
            StatusCode::BAD_REQUEST,
            "BAD_REQUEST",
            "send GraphQL requests as application/json",
        ));
    }
    let batch = serde_json::from_slice::<BatchRequest>(&body).map_err(|e| {
        tracing::debug!(error = %e, "unreadable GraphQL body");
        NOT_GRAPHQL
    })?;
    let no_query = match &batch {
        BatchRequest::Single(r) => r.query.trim().is_empty(),
        BatchRequest::Batch(rs) => rs.iter().any(|r| r.query.trim().is_empty()),
    };
    if no_query {
        return Err(NOT_GRAPHQL);
    }
    Ok(batch)
}

fn refuse(e: &AppError, request_id: &RequestId) -> async_graphql::Response {
    if let Some(source) = &e.source {
        tracing::warn!(code = e.code.as_str(), request_id = %request_id.0, error = %source, "request refused");
    }
    request_error(e.code.as_str(), &e.message)
}

async fn graphql_http(
    State(gw): State<Gateway>,
    headers: HeaderMap,
    request_id: Option<Extension<RequestId>>,
    client: Option<Extension<ClientMeta>>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let client = client
        .map(|Extension(c)| RequestMeta::new(c.ip, c.user_agent))
        .unwrap_or_default();
    let request_id = request_id
        .map(|Extension(r)| r)
        .unwrap_or_else(|| RequestId(uuid::Uuid::new_v4().simple().to_string()));
    let batch = match read_body(&headers, body) {
        Ok(b) => b,
        Err(unreadable) => return unreadable.into_response(),
    };
    if let BatchRequest::Batch(items) = &batch {
        if items.len() > gw.max_batch {
            let msg = format!("a batch may hold at most {} operations", gw.max_batch);
            return GraphQLResponse::from(request_error("BATCH_TOO_LARGE", &msg)).into_response();
        }
        if items.is_empty() {
            return GraphQLResponse::from(request_error("BAD_REQUEST", "empty batch"))
                .into_response();
        }
    }
    let slug = match headers.get(ASSOCIATION_HEADER).map(|v| v.to_str()) {
        None => None,
        Some(Ok(s)) => Some(s),
        Some(Err(_)) => {
            let e = AppError::new(
                musubi_domain::ErrorCode::AssociationNotFound,
                "no such association",
            );
            return GraphQLResponse::from(refuse(&e, &request_id)).into_response();
        }
    };
    let tenant = match route(&gw.services, slug).await {
        Ok(t) => t,
        Err(e) => return GraphQLResponse::from(refuse(&e, &request_id)).into_response(),
    };
    let credentials = credentials(&headers);
    if matches!(credentials, Some((_, true))) && !is_json(&headers) {
        let e = AppError::new(
            musubi_domain::ErrorCode::InvalidInput,
            "requests authenticated by cookie must be sent as application/json",
        );
        return GraphQLResponse::from(refuse(&e, &request_id)).into_response();
    }
    let token = credentials.map(|(t, _)| t);
    let viewer = match &token {
        Some(t) => match gw.services.authenticate(t).await {
            Ok(v) => v,
            Err(e) if e.code == musubi_domain::ErrorCode::RateLimited => {
                return rate_limited(e.retry_after.unwrap_or(60));
            }
            Err(e) => return GraphQLResponse::from(refuse(&e, &request_id)).into_response(),
        },
        None => None,
    };
    let batch = batch.data(RequestContext {
        tenant,
        request_id,
        viewer,
        token,
        client,
    });
    let labels: Vec<String> = match &batch {
        BatchRequest::Single(r) => vec![gw.metrics.label_of(r)],
        BatchRequest::Batch(rs) => rs.iter().map(|r| gw.metrics.label_of(r)).collect(),
    };
    let started = std::time::Instant::now();
    let mut response = Executor::execute_batch(&gw.schema, batch).await;
    let elapsed = started.elapsed();
    let outcomes: Vec<bool> = match &response {
        async_graphql::BatchResponse::Single(r) => vec![r.errors.is_empty()],
        async_graphql::BatchResponse::Batch(rs) => rs.iter().map(|r| r.errors.is_empty()).collect(),
    };
    for (label, ok) in labels.into_iter().zip(outcomes) {
        gw.metrics.record(label, ok, elapsed);
    }
    match &mut response {
        async_graphql::BatchResponse::Single(r) => r.errors.iter_mut().for_each(ensure_code),
        async_graphql::BatchResponse::Batch(rs) => rs
            .iter_mut()
            .flat_map(|r| r.errors.iter_mut())
            .for_each(ensure_code),
    }
    GraphQLResponse::from(response).into_response()
}

/// Per-socket I/O buffer of subscriptions.
const WS_BUFFER_BYTES: usize = 4 * 1024;
/// A subscriber that stops reading is dropped rather than buffered for without bound.
const WS_MAX_PENDING_BYTES: usize = 1024 * 1024;
/// The largest message a client may send over the socket (`subscribe` with its query).
const WS_MAX_MESSAGE_BYTES: usize = 64 * 1024;
/// Messages a client may send on one live connection per minute (fair use). A client sends a
/// few: `connection_init`, a subscription, pings. One that sends more is disconnected; it may
/// reconnect and catch up from its last event.
const WS_MAX_MESSAGES_PER_MINUTE: u32 = 120;

/// The client's messages until it sends more than `max` in a minute; then the stream ends and
/// the server closes the connection.
fn fair_messages<S>(stream: S, max: u32) -> impl futures_util::Stream<Item = S::Item>
where
    S: futures_util::Stream,
{
    use futures_util::StreamExt;
    let mut window = std::time::Instant::now();
    let mut count = 0u32;
    stream.take_while(move |_| {
        if window.elapsed() >= std::time::Duration::from_secs(60) {
            window = std::time::Instant::now();
            count = 0;
        }
        count += 1;
        let within = count <= max;
        if !within {
            metrics::counter!("musubi_fair_use_refused_total", "reason" => "ws_messages")
                .increment(1);
        }
        std::future::ready(within)
    })
}

/// Subscriptions: the association comes in the `connection_init` payload (`{"association": slug}`)
/// and is resolved by the same routing as HTTP requests.
async fn graphql_ws(
    State(gw): State<Gateway>,
    protocol: GraphQLProtocol,
    upgrade: WebSocketUpgrade,
    headers: HeaderMap,
    request_id: Option<Extension<RequestId>>,
    client: Option<Extension<ClientMeta>>,
) -> Response {
    let client = client
        .map(|Extension(c)| RequestMeta::new(c.ip, c.user_agent))
        .unwrap_or_default();
    // Browsers send the session cookie with the upgrade; API clients send a token in
    // connection_init (`{"association": …, "token": …}`).
    // A cross-site page can open a WebSocket with our cookie (browsers send it): honour the
    // cookie only when the Origin is this server.
    let cookie_token = credentials(&headers)
        .filter(|_| same_origin(&headers))
        .map(|(t, _)| t);
    let request_id = request_id
        .map(|Extension(r)| r)
        .unwrap_or_else(|| RequestId(uuid::Uuid::new_v4().simple().to_string()));
    upgrade
        .protocols(async_graphql::http::ALL_WEBSOCKET_PROTOCOLS)
        // Subscriptions are long-lived and mostly idle: tungstenite's 128 KiB default buffers
        // would cost 256 KiB per open socket. Clients only send small control messages.
        .read_buffer_size(WS_BUFFER_BYTES)
        .write_buffer_size(WS_BUFFER_BYTES)
        .max_write_buffer_size(WS_MAX_PENDING_BYTES)
        .max_message_size(WS_MAX_MESSAGE_BYTES)
        .max_frame_size(WS_MAX_MESSAGE_BYTES)
        .on_upgrade(move |stream| {
            let services = gw.services.clone();
            let live = gw.live.clone();
            let (sink, stream) = futures_util::StreamExt::split(stream);
            let stream = fair_messages(stream, WS_MAX_MESSAGES_PER_MINUTE);
            GraphQLWebSocket::new_with_pair(sink, stream, gw.schema.clone(), protocol)
                .on_connection_init(move |payload| async move {
                    let slug = payload.get("association").and_then(|v| v.as_str());
                    let tenant = route(&services, slug)
                        .await
                        .map_err(|e| async_graphql::Error::new(e.code.as_str()))?;
                    let token = payload
                        .get("token")
                        .and_then(|v| v.as_str())
                        .map(str::to_owned)
                        .or(cookie_token);
                    let viewer = match &token {
                        Some(t) => services
                            .authenticate(t)
                            .await
                            .map_err(|e| async_graphql::Error::new(e.code.as_str()))?,
                        None => None,
                    };
                    let mut data = Data::default();
                    if let Some(v) = &viewer {
                        let Some(connection) = live.open(v.user().id) else {
                            metrics::counter!(
                                "musubi_fair_use_refused_total",
                                "reason" => "live_connections"
                            )
                            .increment(1);
                            return Err(async_graphql::Error::new(
                                musubi_domain::ErrorCode::RateLimited.as_str(),
                            ));
                        };
                        data.insert(connection);
                    }
                    data.insert(RequestContext {
                        tenant,
                        request_id,
                        viewer,
                        token,
                        client,
                    });
                    Ok(data)
                })
                .serve()
        })
}
