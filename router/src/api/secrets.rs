//! Master keys (admin token): which versions are configured, how the stored secrets
//! are sealed, and the online re-encryption under the newest key (`gp secrets`).

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use serde::Serialize;
use utoipa::ToSchema;

use super::AppState;
use super::error::{ApiError, Problem};
use crate::auth::Principal;
use crate::secrets::{self, Census, RotationStatus};

#[derive(Debug, Serialize, ToSchema)]
pub struct SecretsOut {
    /// The version new secrets are sealed with (the highest configured).
    pub current_key_version: u32,
    /// Every configured version, oldest first.
    pub configured_key_versions: Vec<u32>,
    /// How the stored secrets are sealed now. A version that seals nothing can be
    /// removed from the configuration.
    pub stored: Census,
    /// The re-encryption job of this node.
    pub rotation: RotationStatus,
}

async fn describe(state: &AppState) -> Result<SecretsOut, ApiError> {
    // The job's state before the census: a census that says "succeeded" beside it was
    // counted after the job's last write (the other order could show a finished job
    // with values still under the old key).
    let rotation = state.rotation.status();
    let stored = secrets::census(state.store.as_ref()).await.map_err(|e| {
        tracing::error!(error = %e, "secrets census failed");
        ApiError::internal()
    })?;
    Ok(SecretsOut {
        current_key_version: state.keys.current_version(),
        configured_key_versions: state.keys.versions(),
        stored,
        rotation,
    })
}

/// Master key versions and how the stored secrets are sealed.
#[utoipa::path(get, path = "/v1/admin/secrets", tag = "operations",
    responses((status = 200, body = SecretsOut), (status = "4XX", body = Problem)),
    security(("bearer" = [])))]
pub async fn get_secrets(
    State(state): State<AppState>,
    principal: Principal,
) -> Result<axum::Json<SecretsOut>, ApiError> {
    principal.require_admin()?;
    Ok(axum::Json(describe(&state).await?))
}

/// Re-encrypts every stored secret under the newest configured key, online and in
/// batches; answers at once with the job's status (`GET /v1/admin/secrets` follows
/// it). Starting it again while it runs changes nothing.
#[utoipa::path(post, path = "/v1/admin/secrets/rotate", tag = "operations",
    responses((status = 202, body = SecretsOut), (status = "4XX", body = Problem)),
    security(("bearer" = [])))]
pub async fn rotate(
    State(state): State<AppState>,
    principal: Principal,
) -> Result<(StatusCode, axum::Json<SecretsOut>), ApiError> {
    principal.require_admin()?;
    if let Some(reason) = state.store.read_only_reason() {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "read_only",
            format!("the store is read-only: {reason}"),
        ));
    }
    let before = describe(&state).await?;
    let intent = crate::audit::Intent {
        tenant: None,
        action: "master_key.rotate",
        resource: crate::audit::AuditResource::new("master_key", state.keys.current_version()),
        details: serde_json::json!({"endpoints": before.stored.endpoints,
            "by_key_version": before.stored.by_key_version}),
    };
    if let Some(entry) = crate::audit::entry_now(intent) {
        state.store.append_audit(entry).await?;
    }
    state.rotation.start(
        state.store.clone(),
        state.keys.clone(),
        before.stored.endpoints,
    );
    tracing::info!(
        key_version = state.keys.current_version(),
        "secrets: rotation requested"
    );
    Ok((
        StatusCode::ACCEPTED,
        axum::Json(SecretsOut {
            rotation: state.rotation.status(),
            ..before
        }),
    ))
}

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/admin/secrets", get(get_secrets))
        .route("/v1/admin/secrets/rotate", post(rotate))
}
