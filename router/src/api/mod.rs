//! The HTTP API (API.md). One file per resource, each ending in `fn router()`;
//! handlers are `verb_noun`; request and response types are `FooIn` / `FooOut` /
//! `FooPatch`. Only this module knows axum and status codes; every error becomes a
//! problem document in [`error`].

pub mod admin;
pub mod audit;
pub mod cluster;
pub mod console;
pub mod deliveries;
pub mod dlq;
pub mod endpoint_keys;
pub mod endpoints;
pub mod error;
pub mod events;
pub mod extract;
pub mod inbox;
pub mod listener;
pub mod openapi;
pub mod ops;
pub mod plugins;
pub mod replay;
pub mod scopes;
pub mod secrets;
pub mod stats;
pub mod stream;
pub mod subscriptions;
pub mod tenants;
pub mod whoami;

use std::ops::Deref;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use metrics_exporter_prometheus::PrometheusHandle;
use tower_http::catch_panic::CatchPanicLayer;

use crate::auth::Authenticator;
use crate::config::Config;
use crate::crypto::Keyring;
use crate::dispatch::DispatchHandle;
use crate::ingest::Ingest;
use crate::store::Store;
use crate::telemetry;
use error::ApiError;

/// Shared state of every handler; cloning is one `Arc` increment.
#[derive(Debug, Clone)]
pub struct AppState(Arc<AppInner>);

#[derive(Debug)]
pub struct AppInner {
    pub config: Arc<Config>,
    pub store: Arc<dyn Store>,
    pub ingest: Arc<Ingest>,
    pub auth: Authenticator,
    /// The master keys stored secrets are sealed with.
    pub keys: Arc<Keyring>,
    /// The re-encryption job (`POST /v1/admin/secrets/rotate`).
    pub rotation: Arc<crate::secrets::Rotation>,
    pub dispatch: DispatchHandle,
    pub metrics: PrometheusHandle,
    /// False until the server accepts traffic, and again once shutdown begins.
    pub ready: Arc<AtomicBool>,
    /// Compiled transform pipelines and the plugin sandbox.
    pub pipelines: Arc<crate::pipeline::Pipelines>,
    /// Stream (SSE) connections: limits, count, shutdown signal.
    pub streams: Arc<crate::stream::session::Streams>,
    /// Spans of publishes (off unless tracing is configured).
    pub tracer: crate::otel::Tracer,
    /// This node and its part in the cluster's leadership.
    pub leadership: std::sync::Arc<crate::cluster::Leadership>,
}

impl AppState {
    pub fn new(inner: AppInner) -> Self {
        Self(Arc::new(inner))
    }
}

impl Deref for AppState {
    type Target = AppInner;
    fn deref(&self) -> &AppInner {
        &self.0
    }
}

/// The whole HTTP application.
pub fn app(state: AppState) -> Router {
    let max_body = state.config.api.max_body_bytes;
    Router::new()
        .merge(tenants::router())
        .merge(endpoints::router())
        .merge(endpoint_keys::router())
        .merge(subscriptions::router())
        .merge(events::router())
        .merge(deliveries::router())
        .merge(dlq::router())
        .merge(replay::router())
        .merge(stats::router())
        .merge(admin::router())
        .merge(cluster::router())
        .merge(secrets::router())
        .merge(audit::router())
        .merge(whoami::router())
        .merge(inbox::router())
        .merge(stream::router())
        .merge(plugins::router())
        .merge(ops::router())
        .merge(console::router())
        // Every route's scope, before its handler reads anything.
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            scopes::enforce,
        ))
        .fallback(route_not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(max_body))
        .layer(middleware::from_fn(track_request))
        .layer(CatchPanicLayer::custom(panic_response))
        .with_state(state)
}

async fn route_not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "route_not_found", "no such route")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this route does not accept that method",
    )
}

fn panic_response(err: Box<dyn std::any::Any + Send + 'static>) -> Response {
    let msg = err
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| err.downcast_ref::<&str>().copied())
        .unwrap_or("unknown panic");
    tracing::error!(panic = msg, "handler panicked");
    ApiError::internal().into_response()
}

/// The header naming a request: the caller's own (when it is short visible ASCII) or
/// one made here, answered on every response and logged with errors, so a client's
/// report and the server's log can be matched.
pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// A request's id, as a request extension.
#[derive(Debug, Clone)]
pub struct RequestId(pub axum::http::HeaderValue);

/// The address of the client a request came from (the TCP peer), as a request
/// extension set by the listener.
#[derive(Debug, Clone, Copy)]
pub struct ClientAddr(pub std::net::IpAddr);

/// The request's id: the caller's, if usable, else a fresh `req_…`.
fn request_id(req: &Request) -> axum::http::HeaderValue {
    req.headers()
        .get(REQUEST_ID_HEADER)
        .filter(|v| {
            let b = v.as_bytes();
            (1..=128).contains(&b.len()) && b.iter().all(|c| c.is_ascii_graphic())
        })
        .cloned()
        .unwrap_or_else(|| {
            let id = format!("req_{:016x}", rand::random::<u64>());
            axum::http::HeaderValue::from_str(&id)
                .unwrap_or_else(|_| axum::http::HeaderValue::from_static("req_unknown"))
        })
}

/// Request metrics by matched route (never the raw path: ids would explode labels),
/// and the request id on every answer.
async fn track_request(mut req: Request, next: Next) -> Response {
    let started = Instant::now();
    let id = request_id(&req);
    // The audit log names the request.
    req.extensions_mut().insert(RequestId(id.clone()));
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_owned());
    let method = req.method().clone();
    let mut resp = next.run(req).await;
    if resp.status().is_server_error() {
        tracing::warn!(request_id = ?id, status = resp.status().as_u16(),
            route = route.as_deref().unwrap_or("unmatched"), "request failed");
    }
    resp.headers_mut().insert(REQUEST_ID_HEADER, id);
    telemetry::record_http(
        route.as_deref().unwrap_or("unmatched"),
        method.as_str(),
        resp.status().as_u16(),
        started.elapsed(),
    );
    resp
}
