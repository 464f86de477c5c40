//! `GET /v1/stats`: queue depth, in flight, retry backlog, DLQ size and per-endpoint
//! health (SPEC OPS-4). A tenant's key with `stats:read` or `endpoints:manage` sees its
//! tenant; the admin token sees every tenant (or one, with `GatePulse-Tenant`).

use axum::Router;
use axum::extract::State;
use axum::routing::get;
use serde::Serialize;
use utoipa::ToSchema;

use super::AppState;
use super::error::{ApiError, Problem};
use crate::auth::{Principal, Scope};
use crate::clock::rfc3339;
use crate::ids::TenantId;
use crate::store::{PageRequest, QueueCounts};

/// Most tenants listed in an admin-wide answer.
const MAX_TENANTS_LISTED: usize = 1000;

#[derive(Debug, Serialize, ToSchema)]
pub struct QueueOut {
    /// Deliveries waiting for their first attempt.
    pub queue_depth: u64,
    pub in_flight: u64,
    /// Deliveries waiting for a retry.
    pub retry_backlog: u64,
    pub dlq_size: u64,
}

impl From<QueueCounts> for QueueOut {
    fn from(c: QueueCounts) -> Self {
        Self {
            queue_depth: c.pending,
            in_flight: c.in_flight,
            retry_backlog: c.retrying,
            dlq_size: c.dead,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EndpointStatsOut {
    pub endpoint_id: String,
    pub enabled: bool,
    /// `closed`, `open` or `half_open`.
    pub circuit: &'static str,
    pub consecutive_failures: u32,
    pub success_rate: Option<f64>,
    pub in_flight: u32,
    pub last_status_code: Option<u16>,
    pub last_attempt_at: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TenantStatsOut {
    pub tenant_id: String,
    #[serde(flatten)]
    pub queue: QueueOut,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct StatsOut {
    /// `tenant` or `all`.
    pub scope: &'static str,
    pub tenant_id: Option<String>,
    #[serde(flatten)]
    pub queue: QueueOut,
    /// Per-endpoint health (tenant scope).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub endpoints: Option<Vec<EndpointStatsOut>>,
    /// Per-tenant queues (admin, all tenants; at most 1000).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tenants: Option<Vec<TenantStatsOut>>,
}

async fn tenant_stats(state: &AppState, tenant: &TenantId) -> Result<StatsOut, ApiError> {
    let queue = state.store.queue_counts(Some(tenant)).await?;
    let mut endpoints = Vec::new();
    let mut after = None;
    loop {
        let page = state
            .store
            .list_endpoints(tenant, PageRequest { after, limit: 1000 })
            .await?;
        let ids: Vec<_> = page.items.iter().map(|ep| ep.id.clone()).collect();
        let mut health = state.dispatch.cluster_health(tenant, &ids).await;
        for ep in page.items {
            let h = health.remove(&ep.id).unwrap_or_default();
            endpoints.push(EndpointStatsOut {
                endpoint_id: ep.id.to_string(),
                enabled: ep.enabled,
                circuit: h.circuit,
                consecutive_failures: h.consecutive_failures,
                success_rate: h.success_rate,
                in_flight: h.in_flight,
                last_status_code: h.last_status_code,
                last_attempt_at: h.last_attempt_at.map(rfc3339),
            });
        }
        match page.next {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    Ok(StatsOut {
        scope: "tenant",
        tenant_id: Some(tenant.to_string()),
        queue: queue.into(),
        endpoints: Some(endpoints),
        tenants: None,
    })
}

/// Queue and delivery statistics.
#[utoipa::path(get, path = "/v1/stats", tag = "operations",
    responses((status = 200, body = StatsOut), (status = "4XX", body = Problem)),
    security(("bearer" = ["stats:read"]), ("bearer" = ["endpoints:manage"])))]
pub async fn get_stats(
    State(state): State<AppState>,
    principal: Principal,
) -> Result<axum::Json<StatsOut>, ApiError> {
    if principal.tenant().is_some() {
        let tenant = principal.tenant_for_any(&[Scope::StatsRead, Scope::EndpointsManage])?;
        return Ok(axum::Json(tenant_stats(&state, tenant).await?));
    }
    let total = state.store.queue_counts(None).await?;
    let page = state
        .store
        .list_tenants(PageRequest {
            after: None,
            limit: MAX_TENANTS_LISTED,
        })
        .await?;
    let mut tenants = Vec::with_capacity(page.items.len());
    for t in page.items {
        let q = state.store.queue_counts(Some(&t.id)).await?;
        tenants.push(TenantStatsOut {
            tenant_id: t.id.to_string(),
            queue: q.into(),
        });
    }
    Ok(axum::Json(StatsOut {
        scope: "all",
        tenant_id: None,
        queue: total.into(),
        endpoints: None,
        tenants: Some(tenants),
    }))
}

pub fn router() -> Router<AppState> {
    Router::new().route("/v1/stats", get(get_stats))
}
