//! `GET /v1/whoami`: what the presented token is and may do, for consoles, SDKs and
//! `gp` to show (and for a key's holder to check its scopes and expiry). Any valid
//! token; never a secret.

use axum::Router;
use axum::extract::State;
use axum::routing::get;
use serde::Serialize;
use utoipa::ToSchema;

use super::AppState;
use super::error::{ApiError, Problem};
use crate::auth::{Principal, Scope};
use crate::clock::rfc3339;

#[derive(Debug, Serialize, ToSchema)]
pub struct WhoamiOut {
    /// `admin` (the admin token) or `key` (an API key).
    pub kind: &'static str,
    /// The key's tenant, or the one the admin token acts in (`GatePulse-Tenant`).
    pub tenant_id: Option<String>,
    pub key_id: Option<String>,
    /// What the token may do: a key's scopes; every scope for the admin token.
    pub scopes: Vec<Scope>,
    /// When the key stops working, if it expires.
    pub expires_at: Option<String>,
}

/// The caller: admin token or API key, its tenant, scopes and expiry.
#[utoipa::path(get, path = "/v1/whoami", tag = "tenants",
    responses((status = 200, body = WhoamiOut), (status = "4XX", body = Problem)),
    security(("bearer" = [])))]
pub async fn whoami(
    State(_state): State<AppState>,
    principal: Principal,
) -> Result<axum::Json<WhoamiOut>, ApiError> {
    Ok(axum::Json(match principal {
        Principal::Admin { tenant } => WhoamiOut {
            kind: "admin",
            tenant_id: tenant.map(|t| t.to_string()),
            key_id: None,
            scopes: Scope::ALL.to_vec(),
            expires_at: None,
        },
        Principal::Key {
            id,
            tenant,
            scopes,
            expires_at,
        } => WhoamiOut {
            kind: "key",
            tenant_id: Some(tenant.to_string()),
            key_id: Some(id.to_string()),
            scopes,
            expires_at: expires_at.map(rfc3339),
        },
    }))
}

pub fn router() -> Router<AppState> {
    Router::new().route("/v1/whoami", get(whoami))
}
