//! An endpoint's signing material: its `whsec_` secret (`v1` signatures: revealed,
//! rotated) and its Ed25519 key pair (`v1a`: the public key read, the pair rotated).
//! Both rotate the same way: the new one signs at once, the previous one keeps signing
//! beside it for `delivery.secret_rotation_grace_secs`, so receivers can switch
//! without losing a delivery. The private halves are sealed at rest and never shown.

use axum::Router;
use axum::extract::{Path, State};
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;

use super::AppState;
use super::endpoints::{check_secret, endpoint_id, load, new_signing_key};
use super::error::{ApiError, Problem};
use crate::audit;
use crate::auth::{Principal, Scope};
use crate::clock::{now_ms, rfc3339};
use crate::crypto;
use crate::dispatch::signing;
use crate::secrets;
use crate::store::{Endpoint, SealedSecret};

/// Secrets and keys kept per endpoint: the current one and rotated-out ones.
const MAX_KEPT: usize = 5;

#[derive(Debug, Serialize, ToSchema)]
pub struct SecretOut {
    /// The current `whsec_` secret.
    pub secret: String,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RotateIn {
    /// The new secret; generated when absent.
    pub secret: Option<String>,
}

/// An endpoint's Ed25519 public keys, for receivers verifying `v1a` signatures.
#[derive(Debug, Serialize, ToSchema)]
pub struct PublicKeyOut {
    /// The current `whpk_` public key.
    pub public_key: String,
    /// Every key that still signs: the current one first, then rotated-out ones until
    /// their `expires_at`.
    pub keys: Vec<PublicKeyEntry>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PublicKeyEntry {
    pub public_key: String,
    pub created_at: String,
    /// When a rotated-out key stops signing; null for the current key.
    pub expires_at: Option<String>,
}

/// `whpk_` public key of one of `e`'s sealed signing keys.
fn public_key(state: &AppState, e: &Endpoint, key: &SealedSecret) -> Result<String, ApiError> {
    let private = secrets::open_signing_key(&state.keys, e, key)?;
    signing::public_key(&private).map_err(|err| {
        tracing::error!(tenant_id = %e.tenant_id, endpoint_id = %e.id, error = %err,
            "a stored signing key is malformed");
        ApiError::internal()
    })
}

/// The current `whpk_` public key of `e`, if it has a key pair.
pub(super) fn current_public_key(
    state: &AppState,
    e: &Endpoint,
) -> Result<Option<String>, ApiError> {
    e.signing_keys
        .first()
        .map(|k| public_key(state, e, k))
        .transpose()
}

/// Makes `fresh` the current entry of `list`: the previous current one keeps signing
/// for `grace_ms`, entries whose grace ended go, at most [`MAX_KEPT`] stay.
fn rotate_into(list: &mut Vec<SealedSecret>, fresh: SealedSecret, now: i64, grace_ms: i64) {
    list.retain(|s| s.expires_at.is_none_or(|t| t > now));
    for s in list.iter_mut() {
        if s.expires_at.is_none() {
            s.expires_at = Some(now + grace_ms);
        }
    }
    list.insert(0, fresh);
    list.truncate(MAX_KEPT);
}

fn grace_ms(state: &AppState) -> i64 {
    (state.config.delivery.secret_rotation_grace_secs as i64).saturating_mul(1000)
}

fn no_key_pair() -> ApiError {
    ApiError::conflict(
        "signing_key_not_enabled",
        "this endpoint has no Ed25519 key pair: enable v1a signatures first \
         (PATCH the endpoint with \"signature_schemes\": [\"v1\", \"v1a\"])",
    )
}

/// Reveals the current signing secret.
#[utoipa::path(get, path = "/v1/endpoints/{endpoint_id}/secret", tag = "endpoints",
    params(("endpoint_id" = String, Path)),
    responses((status = 200, body = SecretOut), (status = "4XX", body = Problem)),
    security(("bearer" = ["endpoints:manage"])))]
pub async fn get_secret(
    State(state): State<AppState>,
    principal: Principal,
    Path(raw): Path<String>,
) -> Result<axum::Json<SecretOut>, ApiError> {
    let tenant = principal.tenant_for(Scope::EndpointsManage)?;
    let endpoint = load(&state, tenant, &raw).await?;
    let current = endpoint.secrets.first().ok_or_else(ApiError::internal)?;
    let secret = secrets::open_secret(&state.keys, &endpoint, current)?;
    // Recorded before it is shown: no record, no secret.
    let intent = audit::Intent {
        tenant: Some(tenant.clone()),
        action: "endpoint.secret.reveal",
        resource: audit::AuditResource::new("endpoint", &endpoint.id),
        details: json!({}),
    };
    if let Some(entry) = audit::entry_now(intent) {
        state.store.append_audit(entry).await?;
    }
    Ok(axum::Json(SecretOut { secret }))
}

/// Rotates the signing secret; the previous one keeps signing alongside for
/// `delivery.secret_rotation_grace_secs`.
#[utoipa::path(post, path = "/v1/endpoints/{endpoint_id}/secret/rotate", tag = "endpoints",
    params(("endpoint_id" = String, Path)), request_body(content = Option<RotateIn>),
    responses((status = 200, body = SecretOut), (status = "4XX", body = Problem)),
    security(("bearer" = ["endpoints:manage"])))]
pub async fn rotate_secret(
    State(state): State<AppState>,
    principal: Principal,
    Path(raw): Path<String>,
    req: axum::extract::Request,
) -> Result<axum::Json<SecretOut>, ApiError> {
    let tenant = principal.tenant_for(Scope::EndpointsManage)?.clone();
    let id = endpoint_id(&raw)?;
    let bytes = super::extract::read_body(req, &state).await?;
    let body: RotateIn = if bytes.iter().all(u8::is_ascii_whitespace) {
        RotateIn::default()
    } else {
        super::extract::parse_json(&bytes)?
    };
    let body_secret_generated = body.secret.is_none();
    let secret = match body.secret {
        Some(s) => {
            check_secret(&s)?;
            s
        }
        None => crypto::generate_webhook_secret(),
    };
    let now = now_ms();
    let grace = grace_ms(&state);
    let fresh = secrets::seal_secret(&state.keys, &tenant, &id, &secret, now)?;
    audit::record(
        Some(&tenant),
        "endpoint.secret.rotate",
        "endpoint",
        &id,
        json!({"generated": body_secret_generated}),
    );
    state
        .store
        .update_endpoint(
            &tenant,
            &id,
            Box::new(move |e: &mut Endpoint| {
                rotate_into(&mut e.secrets, fresh, now, grace);
                e.updated_at = now;
            }),
        )
        .await?;
    tracing::info!(tenant_id = %tenant, endpoint_id = %id, "endpoint secret rotated");
    Ok(axum::Json(SecretOut { secret }))
}

/// The endpoint's public keys for `v1a` signatures: the current one and any
/// rotated-out one still signing. Public: safe to hand to receivers.
#[utoipa::path(get, path = "/v1/endpoints/{endpoint_id}/public-key", tag = "endpoints",
    params(("endpoint_id" = String, Path)),
    responses((status = 200, body = PublicKeyOut), (status = "4XX", body = Problem)),
    security(("bearer" = ["endpoints:manage"])))]
pub async fn get_public_key(
    State(state): State<AppState>,
    principal: Principal,
    Path(raw): Path<String>,
) -> Result<axum::Json<PublicKeyOut>, ApiError> {
    let tenant = principal.tenant_for(Scope::EndpointsManage)?;
    let endpoint = load(&state, tenant, &raw).await?;
    Ok(axum::Json(public_keys(&state, &endpoint, now_ms())?))
}

fn public_keys(state: &AppState, e: &Endpoint, now: i64) -> Result<PublicKeyOut, ApiError> {
    let keys = e
        .signing_keys
        .iter()
        .filter(|k| k.expires_at.is_none_or(|t| t > now))
        .map(|k| {
            Ok(PublicKeyEntry {
                public_key: public_key(state, e, k)?,
                created_at: rfc3339(k.created_at),
                expires_at: k.expires_at.map(rfc3339),
            })
        })
        .collect::<Result<Vec<_>, ApiError>>()?;
    let current = keys.first().ok_or_else(no_key_pair)?.public_key.clone();
    Ok(PublicKeyOut {
        public_key: current,
        keys,
    })
}

/// Rotates the endpoint's Ed25519 key pair; the previous key keeps signing alongside
/// for `delivery.secret_rotation_grace_secs`.
#[utoipa::path(post, path = "/v1/endpoints/{endpoint_id}/public-key/rotate", tag = "endpoints",
    params(("endpoint_id" = String, Path)),
    responses((status = 200, body = PublicKeyOut), (status = "4XX", body = Problem)),
    security(("bearer" = ["endpoints:manage"])))]
pub async fn rotate_signing_key(
    State(state): State<AppState>,
    principal: Principal,
    Path(raw): Path<String>,
) -> Result<axum::Json<PublicKeyOut>, ApiError> {
    let tenant = principal.tenant_for(Scope::EndpointsManage)?.clone();
    let current = load(&state, &tenant, &raw).await?;
    if current.signing_keys.is_empty() {
        return Err(no_key_pair());
    }
    let id = current.id;
    let now = now_ms();
    let grace = grace_ms(&state);
    let fresh = new_signing_key(&state, &tenant, &id, now)?;
    audit::record(
        Some(&tenant),
        "endpoint.signing_key.rotate",
        "endpoint",
        &id,
        json!({}),
    );
    let updated = state
        .store
        .update_endpoint(
            &tenant,
            &id,
            Box::new(move |e: &mut Endpoint| {
                rotate_into(&mut e.signing_keys, fresh, now, grace);
                e.updated_at = now;
            }),
        )
        .await?;
    tracing::info!(tenant_id = %tenant, endpoint_id = %id, "endpoint signing key rotated");
    Ok(axum::Json(public_keys(&state, &updated, now)?))
}

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/endpoints/{endpoint_id}/secret", get(get_secret))
        .route(
            "/v1/endpoints/{endpoint_id}/secret/rotate",
            post(rotate_secret),
        )
        .route(
            "/v1/endpoints/{endpoint_id}/public-key",
            get(get_public_key),
        )
        .route(
            "/v1/endpoints/{endpoint_id}/public-key/rotate",
            post(rotate_signing_key),
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(at: i64, expires: Option<i64>) -> SealedSecret {
        SealedSecret {
            sealed: format!("s{at}"),
            created_at: at,
            expires_at: expires,
        }
    }

    #[test]
    fn rotation_keeps_the_previous_entry_for_its_grace_and_drops_ended_ones() {
        let mut list = vec![entry(1, None), entry(0, Some(5))];
        rotate_into(&mut list, entry(10, None), 10, 100);
        // The expired one is gone, the old current one signs until 110.
        assert_eq!(list, vec![entry(10, None), entry(1, Some(110))]);
        for at in 11..20 {
            rotate_into(&mut list, entry(at, None), at, 100);
        }
        assert_eq!(list.len(), MAX_KEPT);
        assert_eq!(list[0], entry(19, None));
        assert!(list[1..].iter().all(|s| s.expires_at.is_some()));
    }
}
