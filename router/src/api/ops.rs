//! Operational routes: health, readiness, metrics, the OpenAPI document.

use std::sync::atomic::Ordering;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Serialize;
use utoipa::ToSchema;

use super::AppState;
use super::error::{ApiError, Problem};

#[derive(Debug, Serialize, ToSchema)]
pub struct HealthOut {
    pub status: &'static str,
    pub version: &'static str,
}

/// Liveness: the process answers.
#[utoipa::path(get, path = "/healthz", tag = "operations",
    responses((status = 200, body = HealthOut), (status = 503, body = Problem)))]
pub async fn get_healthz(State(state): State<AppState>) -> Result<axum::Json<HealthOut>, ApiError> {
    // A store that can no longer write makes the process useless: a supervisor
    // (systemd, Kubernetes) should restart it rather than keep routing to it.
    if let Some(reason) = state.store.failure() {
        return Err(ApiError::unavailable("store_failed", reason, 5));
    }
    Ok(axum::Json(HealthOut {
        status: "ok",
        version: env!("CARGO_PKG_VERSION"),
    }))
}

/// Readiness: the store is open for writes and the server accepts traffic.
#[utoipa::path(get, path = "/readyz", tag = "operations",
    responses((status = 200, body = HealthOut), (status = 503, body = Problem)))]
pub async fn get_readyz(State(state): State<AppState>) -> Result<axum::Json<HealthOut>, ApiError> {
    if let Some(reason) = state.store.failure() {
        return Err(ApiError::unavailable("store_failed", reason, 5));
    }
    if let Some(reason) = state.store.read_only_reason() {
        return Err(ApiError::unavailable("store_read_only", reason, 60));
    }
    if !state.ready.load(Ordering::Acquire) {
        return Err(ApiError::unavailable(
            "not_ready",
            "the server is starting or shutting down",
            1,
        ));
    }
    Ok(axum::Json(HealthOut {
        status: "ready",
        version: env!("CARGO_PKG_VERSION"),
    }))
}

/// Prometheus metrics (text exposition format). With `api.metrics_token` set, only
/// for `Authorization: Bearer <that token>`.
#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses((status = 200, content_type = "text/plain"), (status = 401, body = Problem)))]
pub async fn get_metrics(
    State(state): State<AppState>,
    headers: axum::http::HeaderMap,
) -> Response {
    let wanted = state.config.api.metrics_token.as_bytes();
    if !wanted.is_empty() {
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::as_bytes);
        match given {
            Some(token) if crate::crypto::constant_time_eq(token, wanted) => {}
            Some(_) => return ApiError::from(crate::auth::AuthError::InvalidToken).into_response(),
            None => return ApiError::from(crate::auth::AuthError::MissingToken).into_response(),
        }
    }
    let body = state.metrics.render();
    let mut resp = (StatusCode::OK, body).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4"),
    );
    resp
}

/// This document.
#[utoipa::path(get, path = "/openapi.json", tag = "operations",
    responses((status = 200, content_type = "application/json")))]
pub async fn get_openapi() -> Response {
    let mut resp = (StatusCode::OK, super::openapi::document_json()).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(get_healthz))
        .route("/readyz", get(get_readyz))
        .route("/metrics", get(get_metrics))
        .route("/openapi.json", get(get_openapi))
}
