//! Administration of the node itself (admin token): online snapshots.

use std::path::PathBuf;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::AppState;
use super::error::{ApiError, Problem};
use super::extract::ApiJson;
use crate::auth::Principal;
use crate::clock::rfc3339;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SnapshotIn {
    /// Absolute directory on the server's host to write the snapshot into; it must
    /// not hold a snapshot already.
    pub path: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SnapshotOut {
    pub path: String,
    pub created_at: String,
    pub store_version: u32,
    pub bytes: u64,
    pub sha256: String,
    pub tables: std::collections::BTreeMap<String, u64>,
}

/// Writes a consistent snapshot of the store while the node keeps serving.
#[utoipa::path(post, path = "/v1/admin/snapshots", tag = "operations", request_body = SnapshotIn,
    responses((status = 201, body = SnapshotOut), (status = "4XX", body = Problem)),
    security(("bearer" = [])))]
pub async fn create_snapshot(
    State(state): State<AppState>,
    principal: Principal,
    ApiJson(body): ApiJson<SnapshotIn>,
) -> Result<(StatusCode, axum::Json<SnapshotOut>), ApiError> {
    principal.require_admin()?;
    let dir = PathBuf::from(&body.path);
    if !dir.is_absolute() {
        return Err(ApiError::invalid_field("path", "must be an absolute path"));
    }
    let store = state.store.clone();
    let target = dir.clone();
    let started = std::time::Instant::now();
    let manifest = tokio::task::spawn_blocking(move || store.snapshot_to(&target))
        .await
        .map_err(|_| ApiError::internal())?
        .map_err(|e| {
            tracing::warn!(error = %e, path = %dir.display(), "snapshot failed");
            ApiError::new(StatusCode::CONFLICT, "snapshot_failed", e.to_string())
        })?;
    let intent = crate::audit::Intent {
        tenant: None,
        action: "store.snapshot",
        resource: crate::audit::AuditResource::new("store", dir.display()),
        details: serde_json::json!({"bytes": manifest.bytes, "sha256": manifest.sha256}),
    };
    if let Some(entry) = crate::audit::entry_now(intent) {
        state.store.append_audit(entry).await?;
    }
    tracing::info!(
        path = %dir.display(),
        bytes = manifest.bytes,
        took_ms = started.elapsed().as_millis() as u64,
        "snapshot written"
    );
    Ok((
        StatusCode::CREATED,
        axum::Json(SnapshotOut {
            path: body.path,
            created_at: rfc3339(manifest.created_at),
            store_version: manifest.store_version,
            bytes: manifest.bytes,
            sha256: manifest.sha256,
            tables: manifest.tables,
        }),
    ))
}

pub fn router() -> Router<AppState> {
    Router::new().route("/v1/admin/snapshots", post(create_snapshot))
}
