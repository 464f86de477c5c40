//! Tenants and their API keys (admin token only).

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{delete, get};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;

use super::AppState;
use super::error::{ApiError, Problem};
use super::extract::{ApiJson, ApiQuery, ListOut, ListParams};
use crate::audit;
use crate::auth::{Principal, Scope};
use crate::clock::{now_ms, rfc3339};
use crate::crypto;
use crate::ids::{KeyId, TenantId};
use crate::store::{ApiKey, RECORD_VERSION, Tenant, TenantRetention};

const MAX_NAME: usize = 200;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TenantIn {
    /// Display name, 1 to 200 characters.
    pub name: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TenantOut {
    pub id: String,
    pub name: String,
    pub created_at: String,
    /// Retention overrides; `null` fields use the node's `[retention]`.
    pub retention: TenantRetention,
}

impl From<Tenant> for TenantOut {
    fn from(t: Tenant) -> Self {
        Self {
            id: t.id.to_string(),
            name: t.name,
            created_at: rfc3339(t.created_at),
            retention: t.retention,
        }
    }
}

/// Retention overrides to change; `null` returns a field to the node's default.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RetentionPatch {
    #[serde(default, deserialize_with = "super::extract::nullable")]
    #[schema(value_type = Option<u64>)]
    pub events_max_age_secs: Option<Option<u64>>,
    #[serde(default, deserialize_with = "super::extract::nullable")]
    #[schema(value_type = Option<u64>)]
    pub dlq_max_age_secs: Option<Option<u64>>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TenantPatch {
    pub name: Option<String>,
    pub retention: Option<RetentionPatch>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct KeyIn {
    pub name: String,
    /// At least one of `events:write`, `events:read`, `endpoints:manage`,
    /// `replay:write`, `dlq:manage`, `audit:read`, `stats:read`.
    pub scopes: Vec<Scope>,
    /// RFC 3339 time after which the key stops authenticating (a `401 key_expired`);
    /// absent: it never expires. Must be in the future.
    pub expires_at: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct KeyOut {
    pub id: String,
    pub name: String,
    pub scopes: Vec<Scope>,
    pub created_at: String,
    pub revoked_at: Option<String>,
    pub expires_at: Option<String>,
}

impl From<ApiKey> for KeyOut {
    fn from(k: ApiKey) -> Self {
        Self {
            id: k.id.to_string(),
            name: k.name,
            scopes: k.scopes,
            created_at: rfc3339(k.created_at),
            revoked_at: k.revoked_at.map(rfc3339),
            expires_at: k.expires_at.map(rfc3339),
        }
    }
}

/// A new key; `key` is shown only in this response.
#[derive(Debug, Serialize, ToSchema)]
pub struct KeyCreatedOut {
    pub id: String,
    pub name: String,
    pub scopes: Vec<Scope>,
    pub created_at: String,
    pub expires_at: Option<String>,
    /// The secret. Store it now: it is never shown again.
    pub key: String,
}

pub fn validate_name(field: &str, name: &str) -> Result<(), ApiError> {
    let n = name.trim().chars().count();
    if n == 0 || n > MAX_NAME {
        return Err(ApiError::invalid_field(
            field,
            format!("must be 1 to {MAX_NAME} characters"),
        ));
    }
    Ok(())
}

fn tenant_id(raw: &str) -> Result<TenantId, ApiError> {
    TenantId::parse(raw).ok_or_else(|| ApiError::not_found("tenant"))
}

async fn existing_tenant(state: &AppState, raw: &str) -> Result<TenantId, ApiError> {
    let id = tenant_id(raw)?;
    state
        .store
        .get_tenant(&id)
        .await?
        .ok_or_else(|| ApiError::not_found("tenant"))?;
    Ok(id)
}

/// Creates a tenant.
#[utoipa::path(post, path = "/v1/tenants", tag = "tenants", request_body = TenantIn,
    responses((status = 201, body = TenantOut), (status = "4XX", body = Problem)),
    security(("bearer" = [])))]
pub async fn create_tenant(
    State(state): State<AppState>,
    principal: Principal,
    ApiJson(body): ApiJson<TenantIn>,
) -> Result<(StatusCode, axum::Json<TenantOut>), ApiError> {
    principal.require_admin()?;
    validate_name("name", &body.name)?;
    let now = now_ms();
    let tenant = Tenant {
        record_version: RECORD_VERSION,
        id: TenantId::generate(now),
        name: body.name.trim().to_owned(),
        created_at: now,
        retention: Default::default(),
    };
    audit::record(
        Some(&tenant.id),
        "tenant.create",
        "tenant",
        &tenant.id,
        json!({"name": tenant.name}),
    );
    state.store.create_tenant(tenant.clone()).await?;
    tracing::info!(tenant_id = %tenant.id, "tenant created");
    Ok((StatusCode::CREATED, axum::Json(tenant.into())))
}

/// Lists tenants.
#[utoipa::path(get, path = "/v1/tenants", tag = "tenants", params(ListParams),
    responses((status = 200, body = ListOut<TenantOut>), (status = "4XX", body = Problem)),
    security(("bearer" = [])))]
pub async fn list_tenants(
    State(state): State<AppState>,
    principal: Principal,
    ApiQuery(params): ApiQuery<ListParams>,
) -> Result<axum::Json<ListOut<TenantOut>>, ApiError> {
    principal.require_admin()?;
    let page = state.store.list_tenants(params.page()?).await?;
    Ok(axum::Json(ListOut::from_page(page, TenantOut::from)))
}

/// Shows one tenant.
#[utoipa::path(get, path = "/v1/tenants/{tenant_id}", tag = "tenants",
    params(("tenant_id" = String, Path)),
    responses((status = 200, body = TenantOut), (status = "4XX", body = Problem)),
    security(("bearer" = [])))]
pub async fn get_tenant(
    State(state): State<AppState>,
    principal: Principal,
    Path(raw): Path<String>,
) -> Result<axum::Json<TenantOut>, ApiError> {
    principal.require_admin()?;
    let tenant = state
        .store
        .get_tenant(&tenant_id(&raw)?)
        .await?
        .ok_or_else(|| ApiError::not_found("tenant"))?;
    Ok(axum::Json(tenant.into()))
}

/// Changes a tenant's name or retention overrides.
#[utoipa::path(patch, path = "/v1/tenants/{tenant_id}", tag = "tenants",
    params(("tenant_id" = String, Path)), request_body = TenantPatch,
    responses((status = 200, body = TenantOut), (status = "4XX", body = Problem)),
    security(("bearer" = [])))]
pub async fn update_tenant(
    State(state): State<AppState>,
    principal: Principal,
    Path(raw): Path<String>,
    ApiJson(patch): ApiJson<TenantPatch>,
) -> Result<axum::Json<TenantOut>, ApiError> {
    principal.require_admin()?;
    let id = tenant_id(&raw)?;
    if let Some(name) = &patch.name {
        validate_name("name", name)?;
    }
    audit::record(
        Some(&id),
        "tenant.update",
        "tenant",
        &id,
        json!({"name": patch.name, "retention": patch.retention.is_some()}),
    );
    let updated = state
        .store
        .update_tenant(
            &id,
            Box::new(move |t: &mut Tenant| {
                if let Some(name) = patch.name {
                    t.name = name.trim().to_owned();
                }
                if let Some(r) = patch.retention {
                    if let Some(v) = r.events_max_age_secs {
                        t.retention.events_max_age_secs = v;
                    }
                    if let Some(v) = r.dlq_max_age_secs {
                        t.retention.dlq_max_age_secs = v;
                    }
                }
            }),
        )
        .await?;
    tracing::info!(tenant_id = %id, "tenant updated");
    Ok(axum::Json(updated.into()))
}

/// Creates an API key; the secret is in this response only.
#[utoipa::path(post, path = "/v1/tenants/{tenant_id}/keys", tag = "tenants",
    params(("tenant_id" = String, Path)), request_body = KeyIn,
    responses((status = 201, body = KeyCreatedOut), (status = "4XX", body = Problem)),
    security(("bearer" = [])))]
pub async fn create_key(
    State(state): State<AppState>,
    principal: Principal,
    Path(raw): Path<String>,
    ApiJson(body): ApiJson<KeyIn>,
) -> Result<(StatusCode, axum::Json<KeyCreatedOut>), ApiError> {
    principal.require_admin()?;
    let tenant = existing_tenant(&state, &raw).await?;
    validate_name("name", &body.name)?;
    let (mut key, secret) = new_key(tenant, body.name.trim().to_owned(), body.scopes)?;
    if let Some(raw) = &body.expires_at {
        let at = crate::clock::parse_rfc3339(raw)
            .ok_or_else(|| ApiError::invalid_field("expires_at", "must be an RFC 3339 time"))?;
        if at <= key.created_at {
            return Err(ApiError::invalid_field(
                "expires_at",
                "must be in the future",
            ));
        }
        key.expires_at = Some(at);
    }
    audit::record(
        Some(&key.tenant_id),
        "api_key.create",
        "api_key",
        &key.id,
        json!({"name": key.name, "scopes": key.scopes, "expires_at": key.expires_at.map(rfc3339)}),
    );
    state.store.create_api_key(key.clone()).await?;
    tracing::info!(tenant_id = %key.tenant_id, key_id = %key.id, "api key created");
    Ok((
        StatusCode::CREATED,
        axum::Json(KeyCreatedOut {
            id: key.id.to_string(),
            name: key.name,
            scopes: key.scopes,
            created_at: rfc3339(key.created_at),
            expires_at: key.expires_at.map(rfc3339),
            key: secret,
        }),
    ))
}

/// Builds a key record and its secret (also used by `gp serve --dev`).
pub fn new_key(
    tenant: TenantId,
    name: String,
    mut scopes: Vec<Scope>,
) -> Result<(ApiKey, String), ApiError> {
    if scopes.is_empty() {
        return Err(ApiError::invalid_field(
            "scopes",
            "must name at least one scope",
        ));
    }
    scopes.sort_unstable();
    scopes.dedup();
    let secret = crypto::generate_api_key();
    let now = now_ms();
    let key = ApiKey {
        record_version: RECORD_VERSION,
        id: KeyId::generate(now),
        tenant_id: tenant,
        name,
        scopes,
        hash: crypto::hash_api_key(&secret),
        created_at: now,
        revoked_at: None,
        expires_at: None,
    };
    Ok((key, secret))
}

/// Lists a tenant's keys (never their secrets).
#[utoipa::path(get, path = "/v1/tenants/{tenant_id}/keys", tag = "tenants",
    params(("tenant_id" = String, Path), ListParams),
    responses((status = 200, body = ListOut<KeyOut>), (status = "4XX", body = Problem)),
    security(("bearer" = [])))]
pub async fn list_keys(
    State(state): State<AppState>,
    principal: Principal,
    Path(raw): Path<String>,
    ApiQuery(params): ApiQuery<ListParams>,
) -> Result<axum::Json<ListOut<KeyOut>>, ApiError> {
    principal.require_admin()?;
    let tenant = existing_tenant(&state, &raw).await?;
    let page = state.store.list_api_keys(&tenant, params.page()?).await?;
    Ok(axum::Json(ListOut::from_page(page, KeyOut::from)))
}

/// Revokes a key; it stops authenticating at once.
#[utoipa::path(delete, path = "/v1/tenants/{tenant_id}/keys/{key_id}", tag = "tenants",
    params(("tenant_id" = String, Path), ("key_id" = String, Path)),
    responses((status = 204), (status = "4XX", body = Problem)),
    security(("bearer" = [])))]
pub async fn revoke_key(
    State(state): State<AppState>,
    principal: Principal,
    Path((raw_tenant, raw_key)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    principal.require_admin()?;
    let tenant = tenant_id(&raw_tenant)?;
    let key = KeyId::parse(&raw_key).ok_or_else(|| ApiError::not_found("key"))?;
    audit::record(Some(&tenant), "api_key.revoke", "api_key", &key, json!({}));
    state
        .store
        .revoke_api_key(&tenant, &key, now_ms())
        .await?
        .ok_or_else(|| ApiError::not_found("key"))?;
    tracing::info!(tenant_id = %tenant, key_id = %key, "api key revoked");
    Ok(StatusCode::NO_CONTENT)
}

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/tenants", get(list_tenants).post(create_tenant))
        .route(
            "/v1/tenants/{tenant_id}",
            get(get_tenant).patch(update_tenant),
        )
        .route(
            "/v1/tenants/{tenant_id}/keys",
            get(list_keys).post(create_key),
        )
        .route("/v1/tenants/{tenant_id}/keys/{key_id}", delete(revoke_key))
}
