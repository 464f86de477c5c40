//! The audit log: reading it (`GET /v1/audit`) and checking its hash chains
//! (`GET /v1/audit/verify`, `gp audit verify`). Scope `audit:read`; a key sees its
//! tenant's records, the admin every tenant's and the node's own (or one tenant's
//! with `GatePulse-Tenant`).

use axum::Router;
use axum::extract::State;
use axum::routing::get;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::AppState;
use super::error::{ApiError, Problem};
use super::extract::{ApiQuery, ListOut, ListParams};
use crate::audit::{AuditOut, AuditRecord, BrokenLink, verify_chain};
use crate::auth::{Principal, Scope};
use crate::clock::parse_rfc3339;
use crate::store::AuditQuery;

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct AuditParams {
    /// Page size, 1 to 1000 (default 50).
    pub limit: Option<usize>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// Only this action, e.g. `endpoint.delete`.
    pub action: Option<String>,
    /// Only this resource kind (`endpoint`) or id (`ep_…`).
    pub resource: Option<String>,
    /// Only this actor: `admin`, `system` or a key id.
    pub actor: Option<String>,
    /// RFC 3339; records at or after.
    pub since: Option<String>,
    /// RFC 3339; records before.
    pub until: Option<String>,
}

fn time(field: &str, raw: Option<&str>) -> Result<Option<i64>, ApiError> {
    raw.map(|v| {
        parse_rfc3339(v).ok_or_else(|| ApiError::invalid_field(field, "must be an RFC 3339 time"))
    })
    .transpose()
}

/// Audit records, oldest first, filtered.
#[utoipa::path(get, path = "/v1/audit", tag = "operations", params(AuditParams),
    responses((status = 200, body = ListOut<AuditOut>), (status = "4XX", body = Problem)),
    security(("bearer" = ["audit:read"])))]
pub async fn list_audit(
    State(state): State<AppState>,
    principal: Principal,
    ApiQuery(params): ApiQuery<AuditParams>,
) -> Result<axum::Json<ListOut<AuditOut>>, ApiError> {
    let tenant = match &principal {
        Principal::Admin { tenant } => tenant.clone(),
        Principal::Key { .. } => Some(principal.tenant_for(Scope::AuditRead)?.clone()),
    };
    let page = ListParams {
        limit: params.limit,
        cursor: params.cursor,
    }
    .page()?;
    let query = AuditQuery {
        tenant,
        action: params.action,
        resource: params.resource,
        actor: params.actor,
        since: time("since", params.since.as_deref())?,
        until: time("until", params.until.as_deref())?,
        page,
    };
    let page = state.store.list_audit(query).await?;
    Ok(axum::Json(ListOut::from_page(page, AuditOut::from)))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct VerifyOut {
    /// True when every chain checked is intact.
    pub ok: bool,
    /// Chains checked (one per tenant, and the node's).
    pub chains: u64,
    /// Records checked.
    pub records: u64,
    /// The first broken link found, if any.
    pub first_broken: Option<BrokenLink>,
}

/// Records read per store call while verifying.
const VERIFY_BATCH: usize = 1000;

/// Recomputes every record's hash and link, chain by chain; reports the first break.
#[utoipa::path(get, path = "/v1/audit/verify", tag = "operations",
    responses((status = 200, body = VerifyOut), (status = "4XX", body = Problem)),
    security(("bearer" = ["audit:read"])))]
pub async fn verify_audit(
    State(state): State<AppState>,
    principal: Principal,
) -> Result<axum::Json<VerifyOut>, ApiError> {
    let chains = match &principal {
        Principal::Admin { tenant: None } => state.store.audit_chains().await?,
        Principal::Admin { tenant: Some(t) } => vec![t.to_string()],
        Principal::Key { .. } => vec![principal.tenant_for(Scope::AuditRead)?.to_string()],
    };
    let mut out = VerifyOut {
        ok: true,
        chains: 0,
        records: 0,
        first_broken: None,
    };
    for chain in chains {
        out.chains += 1;
        let mut after = 0;
        let mut last: Option<AuditRecord> = None;
        loop {
            let batch = state.store.audit_chain(&chain, after, VERIFY_BATCH).await?;
            let Some(end) = batch.last() else { break };
            after = end.seq;
            out.records += batch.len() as u64;
            // The last record of the previous batch links the two.
            let joined: Vec<&AuditRecord> = last.iter().chain(batch.iter()).collect();
            if let Some(broken) = verify_chain(joined) {
                out.ok = false;
                out.first_broken = Some(broken);
                return Ok(axum::Json(out));
            }
            last = batch.into_iter().last();
        }
    }
    Ok(axum::Json(out))
}

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/audit", get(list_audit))
        .route("/v1/audit/verify", get(verify_audit))
}
