//! Endpoints: HTTP destinations (or inboxes) and their settings. Their signing
//! material (secret, Ed25519 key pair) has its own routes in `endpoint_keys.rs`.

use std::collections::BTreeMap;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::routing::get;
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
use crate::destination;
use crate::ids::{EndpointId, TenantId};
use crate::secrets;
use crate::store::{Endpoint, EndpointKind, SealedSecret, SignatureScheme};

pub const MAX_HEADERS: usize = 32;
pub const MAX_HEADER_VALUE: usize = 4096;
pub const MAX_DESCRIPTION: usize = 1000;
pub const MAX_TIMEOUT_MS: u64 = 120_000;
pub const MAX_RATE_LIMIT: u32 = 100_000;
pub const MAX_IN_FLIGHT: u32 = 1_000;
pub const MAX_RETRY_STEPS: usize = 20;
pub const MAX_RETRY_DELAY_SECS: u32 = 7 * 24 * 3600;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EndpointIn {
    /// Destination URL (http or https); required for `http` endpoints.
    pub url: Option<String>,
    /// `http` (default) delivers; `inbox` captures deliveries for inspection.
    pub kind: Option<EndpointKind>,
    pub description: Option<String>,
    /// A `whsec_` secret; generated when absent.
    pub secret: Option<String>,
    /// Signatures deliveries carry: `v1` (HMAC with the secret, the default), `v1a`
    /// (Ed25519: receivers verify with the endpoint's public key and hold nothing that
    /// could sign), or both. Enabling `v1a` generates the endpoint's key pair.
    pub signature_schemes: Option<Vec<SignatureScheme>>,
    /// Extra headers sent with every delivery.
    pub headers: Option<BTreeMap<String, String>>,
    pub timeout_ms: Option<u64>,
    pub rate_limit_per_sec: Option<u32>,
    pub max_in_flight: Option<u32>,
    /// Delays in seconds before each retry; replaces the default schedule.
    pub retry_schedule_secs: Option<Vec<u32>>,
    pub enabled: Option<bool>,
}

/// Fields to change; absent fields stay, `null` clears an optional setting.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EndpointPatch {
    pub url: Option<String>,
    pub description: Option<String>,
    pub headers: Option<BTreeMap<String, String>>,
    /// Replaces the signature schemes; enabling `v1a` the first time generates the
    /// endpoint's key pair (disabling it keeps the pair for later).
    pub signature_schemes: Option<Vec<SignatureScheme>>,
    #[serde(default, deserialize_with = "super::extract::nullable")]
    #[schema(value_type = Option<u64>)]
    pub timeout_ms: Option<Option<u64>>,
    #[serde(default, deserialize_with = "super::extract::nullable")]
    #[schema(value_type = Option<u32>)]
    pub rate_limit_per_sec: Option<Option<u32>>,
    #[serde(default, deserialize_with = "super::extract::nullable")]
    #[schema(value_type = Option<u32>)]
    pub max_in_flight: Option<Option<u32>>,
    #[serde(default, deserialize_with = "super::extract::nullable")]
    #[schema(value_type = Option<Vec<u32>>)]
    pub retry_schedule_secs: Option<Option<Vec<u32>>>,
    pub enabled: Option<bool>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EndpointOut {
    pub id: String,
    pub kind: EndpointKind,
    pub url: Option<String>,
    pub description: String,
    pub headers: BTreeMap<String, String>,
    pub signature_schemes: Vec<SignatureScheme>,
    /// The `whpk_` Ed25519 public key `v1a` signatures verify with (the current one;
    /// `GET …/public-key` lists those of a rotation too); null until `v1a` is enabled.
    pub public_key: Option<String>,
    pub timeout_ms: Option<u64>,
    pub rate_limit_per_sec: Option<u32>,
    pub max_in_flight: Option<u32>,
    pub retry_schedule_secs: Option<Vec<u32>>,
    pub enabled: bool,
    pub disabled_reason: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

impl EndpointOut {
    /// The endpoint as the API shows it: header values opened.
    pub fn open(state: &AppState, e: Endpoint) -> Result<Self, ApiError> {
        let headers = secrets::open_headers(&state.keys, &e)?;
        let public_key = super::endpoint_keys::current_public_key(state, &e)?;
        Ok(Self {
            id: e.id.to_string(),
            kind: e.kind,
            url: e.url,
            description: e.description,
            headers,
            signature_schemes: e.signature_schemes,
            public_key,
            timeout_ms: e.timeout_ms,
            rate_limit_per_sec: e.rate_limit_per_sec,
            max_in_flight: e.max_in_flight,
            retry_schedule_secs: e.retry_schedule_secs,
            enabled: e.enabled,
            disabled_reason: e.disabled_reason,
            created_at: rfc3339(e.created_at),
            updated_at: rfc3339(e.updated_at),
        })
    }
}

fn validate_url(state: &AppState, url: &str) -> Result<(), ApiError> {
    destination::validate_url(url, state.config.delivery.allow_private_destinations)
        .map(|_| ())
        .map_err(|e| {
            let code = if matches!(e, destination::DestinationError::Private(_)) {
                "destination_not_allowed"
            } else {
                "invalid_url"
            };
            let mut err = ApiError::invalid_field("url", format!("url {e}"));
            err.code = code;
            err
        })
}

fn validate_headers(headers: &BTreeMap<String, String>) -> Result<(), ApiError> {
    if headers.len() > MAX_HEADERS {
        return Err(ApiError::invalid_field(
            "headers",
            format!("at most {MAX_HEADERS} headers"),
        ));
    }
    for (name, value) in headers {
        let field = format!("headers/{name}");
        let lower = name.to_ascii_lowercase();
        if HeaderName::from_bytes(name.as_bytes()).is_err() {
            return Err(ApiError::invalid_field(
                &field,
                "is not a valid header name",
            ));
        }
        if crate::dispatch::is_reserved_header(&lower) {
            return Err(ApiError::invalid_field(
                &field,
                "is set by GatePulse or is a hop-by-hop header; it cannot be a custom header",
            ));
        }
        if value.len() > MAX_HEADER_VALUE || HeaderValue::from_str(value).is_err() {
            return Err(ApiError::invalid_field(
                &field,
                format!("value must be visible ASCII, at most {MAX_HEADER_VALUE} bytes"),
            ));
        }
    }
    Ok(())
}

fn validate_settings(
    timeout_ms: Option<u64>,
    rate: Option<u32>,
    in_flight: Option<u32>,
    schedule: Option<&[u32]>,
) -> Result<(), ApiError> {
    if let Some(t) = timeout_ms
        && !(1..=MAX_TIMEOUT_MS).contains(&t)
    {
        return Err(ApiError::invalid_field(
            "timeout_ms",
            format!("must be 1 to {MAX_TIMEOUT_MS}"),
        ));
    }
    if let Some(r) = rate
        && !(1..=MAX_RATE_LIMIT).contains(&r)
    {
        return Err(ApiError::invalid_field(
            "rate_limit_per_sec",
            format!("must be 1 to {MAX_RATE_LIMIT}"),
        ));
    }
    if let Some(m) = in_flight
        && !(1..=MAX_IN_FLIGHT).contains(&m)
    {
        return Err(ApiError::invalid_field(
            "max_in_flight",
            format!("must be 1 to {MAX_IN_FLIGHT}"),
        ));
    }
    if let Some(s) = schedule {
        if s.is_empty() || s.len() > MAX_RETRY_STEPS {
            return Err(ApiError::invalid_field(
                "retry_schedule_secs",
                format!("must have 1 to {MAX_RETRY_STEPS} steps"),
            ));
        }
        if s.iter().any(|&d| d > MAX_RETRY_DELAY_SECS) {
            return Err(ApiError::invalid_field(
                "retry_schedule_secs",
                format!("each delay must be at most {MAX_RETRY_DELAY_SECS} seconds"),
            ));
        }
    }
    Ok(())
}

fn validate_description(d: &str) -> Result<(), ApiError> {
    if d.chars().count() > MAX_DESCRIPTION {
        return Err(ApiError::invalid_field(
            "description",
            format!("at most {MAX_DESCRIPTION} characters"),
        ));
    }
    Ok(())
}

/// The schemes in their order (`v1` before `v1a`), each once; at least one.
fn validate_schemes(schemes: Vec<SignatureScheme>) -> Result<Vec<SignatureScheme>, ApiError> {
    let mut schemes = schemes;
    schemes.sort_unstable();
    schemes.dedup();
    if schemes.is_empty() {
        return Err(ApiError::invalid_field(
            "signature_schemes",
            "must name at least one of v1, v1a",
        ));
    }
    Ok(schemes)
}

pub(super) fn check_secret(secret: &str) -> Result<(), ApiError> {
    crypto::validate_webhook_secret(secret).map_err(|m| {
        ApiError::invalid_field("secret", format!("secret {m}"))
            .with("hint", "whsec_ + base64 of 24 to 64 random bytes")
    })
}

/// A new Ed25519 signing key for `v1a`, sealed for endpoint `id` of `tenant`.
pub(super) fn new_signing_key(
    state: &AppState,
    tenant: &TenantId,
    id: &EndpointId,
    now: i64,
) -> Result<SealedSecret, ApiError> {
    let key = crypto::generate_signing_key();
    Ok(secrets::seal_signing_key(
        &state.keys,
        tenant,
        id,
        &key,
        now,
    )?)
}

/// What a PATCH changes, for the audit log: the fields given, header names only.
fn patch_details(patch: &EndpointPatch) -> serde_json::Value {
    let mut fields = Vec::new();
    let mut given = |name: &'static str, present: bool| {
        if present {
            fields.push(name);
        }
    };
    given("url", patch.url.is_some());
    given("description", patch.description.is_some());
    given("headers", patch.headers.is_some());
    given("signature_schemes", patch.signature_schemes.is_some());
    given("timeout_ms", patch.timeout_ms.is_some());
    given("rate_limit_per_sec", patch.rate_limit_per_sec.is_some());
    given("max_in_flight", patch.max_in_flight.is_some());
    given("retry_schedule_secs", patch.retry_schedule_secs.is_some());
    given("enabled", patch.enabled.is_some());
    let headers: Option<Vec<&String>> = patch.headers.as_ref().map(|h| h.keys().collect());
    json!({"fields": fields, "url": patch.url, "enabled": patch.enabled, "headers": headers,
           "signature_schemes": patch.signature_schemes})
}

pub(super) fn endpoint_id(raw: &str) -> Result<EndpointId, ApiError> {
    EndpointId::parse(raw).ok_or_else(|| ApiError::not_found("endpoint"))
}

pub(super) async fn load(
    state: &AppState,
    tenant: &TenantId,
    raw: &str,
) -> Result<Endpoint, ApiError> {
    state
        .store
        .get_endpoint(tenant, &endpoint_id(raw)?)
        .await?
        .ok_or_else(|| ApiError::not_found("endpoint"))
}

/// Creates an endpoint.
#[utoipa::path(post, path = "/v1/endpoints", tag = "endpoints", request_body = EndpointIn,
    responses((status = 201, body = EndpointOut), (status = "4XX", body = Problem)),
    security(("bearer" = ["endpoints:manage"])))]
pub async fn create_endpoint(
    State(state): State<AppState>,
    principal: Principal,
    ApiJson(body): ApiJson<EndpointIn>,
) -> Result<(StatusCode, axum::Json<EndpointOut>), ApiError> {
    let tenant = principal.tenant_for(Scope::EndpointsManage)?.clone();
    let kind = body.kind.unwrap_or(EndpointKind::Http);
    match (&body.url, kind) {
        (Some(url), _) => validate_url(&state, url)?,
        (None, EndpointKind::Http) => {
            return Err(ApiError::invalid_field(
                "url",
                "is required for http endpoints",
            ));
        }
        (None, EndpointKind::Inbox) => {}
    }
    let description = body.description.unwrap_or_default();
    validate_description(&description)?;
    let headers = body.headers.unwrap_or_default();
    validate_headers(&headers)?;
    validate_settings(
        body.timeout_ms,
        body.rate_limit_per_sec,
        body.max_in_flight,
        body.retry_schedule_secs.as_deref(),
    )?;
    let secret = match body.secret {
        Some(s) => {
            check_secret(&s)?;
            s
        }
        None => crypto::generate_webhook_secret(),
    };
    let signature_schemes = validate_schemes(
        body.signature_schemes
            .unwrap_or_else(|| vec![SignatureScheme::V1]),
    )?;
    let now = now_ms();
    let id = EndpointId::generate(now);
    let signing_keys = if signature_schemes.contains(&SignatureScheme::V1a) {
        vec![new_signing_key(&state, &tenant, &id, now)?]
    } else {
        Vec::new()
    };
    let endpoint = Endpoint {
        record_version: secrets::ENDPOINT_RECORD_VERSION,
        secrets: vec![secrets::seal_secret(
            &state.keys,
            &tenant,
            &id,
            &secret,
            now,
        )?],
        signature_schemes,
        signing_keys,
        headers: secrets::seal_headers(&state.keys, &tenant, &id, headers)?,
        id,
        tenant_id: tenant.clone(),
        kind,
        url: body.url,
        description,
        timeout_ms: body.timeout_ms,
        rate_limit_per_sec: body.rate_limit_per_sec,
        max_in_flight: body.max_in_flight,
        retry_schedule_secs: body.retry_schedule_secs,
        enabled: body.enabled.unwrap_or(true),
        disabled_reason: None,
        created_at: now,
        updated_at: now,
    };
    // Header names only: their values are secrets.
    let header_names: Vec<&String> = endpoint.headers.keys().collect();
    audit::record(
        Some(&tenant),
        "endpoint.create",
        "endpoint",
        &endpoint.id,
        json!({"kind": endpoint.kind, "url": endpoint.url, "headers": header_names,
               "signature_schemes": endpoint.signature_schemes, "enabled": endpoint.enabled}),
    );
    state
        .store
        .create_endpoint(endpoint.clone(), state.config.api.max_endpoints_per_tenant)
        .await?;
    tracing::info!(tenant_id = %tenant, endpoint_id = %endpoint.id, "endpoint created");
    Ok((
        StatusCode::CREATED,
        axum::Json(EndpointOut::open(&state, endpoint)?),
    ))
}

/// Lists endpoints.
#[utoipa::path(get, path = "/v1/endpoints", tag = "endpoints", params(ListParams),
    responses((status = 200, body = ListOut<EndpointOut>), (status = "4XX", body = Problem)),
    security(("bearer" = ["endpoints:manage"])))]
pub async fn list_endpoints(
    State(state): State<AppState>,
    principal: Principal,
    ApiQuery(params): ApiQuery<ListParams>,
) -> Result<axum::Json<ListOut<EndpointOut>>, ApiError> {
    let tenant = principal.tenant_for(Scope::EndpointsManage)?;
    let page = state.store.list_endpoints(tenant, params.page()?).await?;
    Ok(axum::Json(ListOut::try_from_page(page, |e| {
        EndpointOut::open(&state, e)
    })?))
}

/// Shows one endpoint.
#[utoipa::path(get, path = "/v1/endpoints/{endpoint_id}", tag = "endpoints",
    params(("endpoint_id" = String, Path)),
    responses((status = 200, body = EndpointOut), (status = "4XX", body = Problem)),
    security(("bearer" = ["endpoints:manage"])))]
pub async fn get_endpoint(
    State(state): State<AppState>,
    principal: Principal,
    Path(raw): Path<String>,
) -> Result<axum::Json<EndpointOut>, ApiError> {
    let tenant = principal.tenant_for(Scope::EndpointsManage)?;
    let endpoint = load(&state, tenant, &raw).await?;
    Ok(axum::Json(EndpointOut::open(&state, endpoint)?))
}

/// Changes an endpoint.
#[utoipa::path(patch, path = "/v1/endpoints/{endpoint_id}", tag = "endpoints",
    params(("endpoint_id" = String, Path)), request_body = EndpointPatch,
    responses((status = 200, body = EndpointOut), (status = "4XX", body = Problem)),
    security(("bearer" = ["endpoints:manage"])))]
pub async fn update_endpoint(
    State(state): State<AppState>,
    principal: Principal,
    Path(raw): Path<String>,
    ApiJson(patch): ApiJson<EndpointPatch>,
) -> Result<axum::Json<EndpointOut>, ApiError> {
    let tenant = principal.tenant_for(Scope::EndpointsManage)?.clone();
    let id = endpoint_id(&raw)?;
    if let Some(url) = &patch.url {
        validate_url(&state, url)?;
    }
    if let Some(d) = &patch.description {
        validate_description(d)?;
    }
    if let Some(h) = &patch.headers {
        validate_headers(h)?;
    }
    let details = patch_details(&patch);
    let sealed_headers = match patch.headers {
        Some(h) => Some(secrets::seal_headers(&state.keys, &tenant, &id, h)?),
        None => None,
    };
    let schemes = patch.signature_schemes.map(validate_schemes).transpose()?;
    let now = now_ms();
    // A key pair for an endpoint turning v1a on, used only if it has no live one.
    let fresh_key = match &schemes {
        Some(s) if s.contains(&SignatureScheme::V1a) => {
            Some(new_signing_key(&state, &tenant, &id, now)?)
        }
        _ => None,
    };
    validate_settings(
        patch.timeout_ms.flatten(),
        patch.rate_limit_per_sec.flatten(),
        patch.max_in_flight.flatten(),
        patch
            .retry_schedule_secs
            .as_ref()
            .and_then(|s| s.as_deref()),
    )?;
    audit::record(Some(&tenant), "endpoint.update", "endpoint", &id, details);
    let updated = state
        .store
        .update_endpoint(
            &tenant,
            &id,
            Box::new(move |e: &mut Endpoint| {
                if let Some(url) = patch.url {
                    e.url = Some(url);
                }
                if let Some(d) = patch.description {
                    e.description = d;
                }
                if let Some(h) = sealed_headers {
                    e.headers = h;
                    e.record_version = secrets::ENDPOINT_RECORD_VERSION;
                }
                if let Some(s) = schemes {
                    e.signature_schemes = s;
                }
                if let Some(fresh) = fresh_key
                    && !e
                        .signing_keys
                        .iter()
                        .any(|k| k.expires_at.is_none_or(|t| t > now))
                {
                    e.signing_keys = vec![fresh];
                }
                if let Some(v) = patch.timeout_ms {
                    e.timeout_ms = v;
                }
                if let Some(v) = patch.rate_limit_per_sec {
                    e.rate_limit_per_sec = v;
                }
                if let Some(v) = patch.max_in_flight {
                    e.max_in_flight = v;
                }
                if let Some(v) = patch.retry_schedule_secs {
                    e.retry_schedule_secs = v;
                }
                if let Some(enabled) = patch.enabled {
                    e.enabled = enabled;
                    if enabled {
                        e.disabled_reason = None;
                    }
                }
                e.updated_at = now;
            }),
        )
        .await?;
    // The store announces the change: new settings apply to the next attempt, and
    // re-enabled, queued deliveries go now.
    tracing::info!(tenant_id = %tenant, endpoint_id = %id, "endpoint updated");
    Ok(axum::Json(EndpointOut::open(&state, updated)?))
}

/// Deletes an endpoint and its subscriptions.
#[utoipa::path(delete, path = "/v1/endpoints/{endpoint_id}", tag = "endpoints",
    params(("endpoint_id" = String, Path)),
    responses((status = 204), (status = "4XX", body = Problem)),
    security(("bearer" = ["endpoints:manage"])))]
pub async fn delete_endpoint(
    State(state): State<AppState>,
    principal: Principal,
    Path(raw): Path<String>,
) -> Result<StatusCode, ApiError> {
    let tenant = principal.tenant_for(Scope::EndpointsManage)?.clone();
    let id = endpoint_id(&raw)?;
    // Its queued deliveries are cancelled (`endpoint_deleted`) once the engine hears
    // of the deletion through the commit feed.
    audit::record(Some(&tenant), "endpoint.delete", "endpoint", &id, json!({}));
    let subs = state.store.delete_endpoint(&tenant, &id).await?;
    tracing::info!(tenant_id = %tenant, endpoint_id = %id, subscriptions = subs.len(), "endpoint deleted");
    Ok(StatusCode::NO_CONTENT)
}

/// An endpoint's delivery health.
#[derive(Debug, Serialize, ToSchema)]
pub struct HealthOut {
    pub endpoint_id: String,
    pub enabled: bool,
    pub disabled_reason: Option<String>,
    #[serde(flatten)]
    pub health: crate::dispatch::Health,
    /// When the last attempt finished, if any.
    pub last_attempt_at: Option<String>,
}

/// Success rate, last status and circuit state of an endpoint (since this node
/// started).
#[utoipa::path(get, path = "/v1/endpoints/{endpoint_id}/health", tag = "endpoints",
    params(("endpoint_id" = String, Path)),
    responses((status = 200, body = HealthOut), (status = "4XX", body = Problem)),
    security(("bearer" = ["endpoints:manage"])))]
pub async fn get_health(
    State(state): State<AppState>,
    principal: Principal,
    Path(raw): Path<String>,
) -> Result<axum::Json<HealthOut>, ApiError> {
    let tenant = principal.tenant_for(Scope::EndpointsManage)?;
    let endpoint = load(&state, tenant, &raw).await?;
    let health = state
        .dispatch
        .cluster_health(tenant, std::slice::from_ref(&endpoint.id))
        .await
        .remove(&endpoint.id)
        .unwrap_or_default();
    Ok(axum::Json(HealthOut {
        endpoint_id: endpoint.id.to_string(),
        enabled: endpoint.enabled,
        disabled_reason: endpoint.disabled_reason,
        last_attempt_at: health.last_attempt_at.map(rfc3339),
        health,
    }))
}

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/endpoints", get(list_endpoints).post(create_endpoint))
        .route(
            "/v1/endpoints/{endpoint_id}",
            get(get_endpoint)
                .patch(update_endpoint)
                .delete(delete_endpoint),
        )
        .route("/v1/endpoints/{endpoint_id}/health", get(get_health))
}
