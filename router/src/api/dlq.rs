//! The dead-letter queue: deliveries that used up their attempts, and requeueing them.

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::AppState;
use super::deliveries::DeliverySummary;
use super::error::{ApiError, Problem};
use super::extract::{ApiJson, ApiQuery, ListOut, ListParams};
use crate::audit;
use crate::auth::{Principal, Scope};
use crate::clock::now_ms;
use crate::ids::{DeliveryId, EndpointId};
use crate::store::{RequeueBatch, RequeueSelection};

/// Dead deliveries moved per store transaction (each bounded in time).
const REQUEUE_BATCH: usize = 1000;

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DlqListParams {
    pub endpoint_id: Option<String>,
    pub limit: Option<usize>,
    pub cursor: Option<String>,
}

/// Either `delivery_ids` or `endpoint_id`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RequeueIn {
    pub delivery_ids: Option<Vec<String>>,
    pub endpoint_id: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RequeueOut {
    /// How many dead deliveries went back to the queue.
    pub requeued: usize,
    /// False when the requeue stopped before the end of the selection: at the
    /// tenant's queue limit (`stopped: "queue_full"`; requeue the rest later) or at
    /// `api.max_requeue` (`stopped: "max_requeue"`; call again).
    pub complete: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stopped: Option<&'static str>,
}

/// Lists dead deliveries.
#[utoipa::path(get, path = "/v1/dlq", tag = "deliveries", params(DlqListParams),
    responses((status = 200, body = ListOut<DeliverySummary>), (status = "4XX", body = Problem)),
    security(("bearer" = ["dlq:manage"])))]
pub async fn list_dlq(
    State(state): State<AppState>,
    principal: Principal,
    ApiQuery(params): ApiQuery<DlqListParams>,
) -> Result<axum::Json<ListOut<DeliverySummary>>, ApiError> {
    let tenant = principal.tenant_for(Scope::DlqManage)?;
    let page = ListParams {
        limit: params.limit,
        cursor: params.cursor,
    }
    .page()?;
    let endpoint = match params.endpoint_id.as_deref() {
        None => None,
        Some(raw) => match EndpointId::parse(raw) {
            Some(id) => Some(id),
            None => {
                return Ok(axum::Json(ListOut {
                    data: Vec::new(),
                    next_cursor: None,
                }));
            }
        },
    };
    let page = state
        .store
        .list_dead(tenant, endpoint.as_ref(), page)
        .await?;
    Ok(axum::Json(ListOut::from_page(page, DeliverySummary::from)))
}

/// Sends dead deliveries back to the queue with a fresh retry schedule.
#[utoipa::path(post, path = "/v1/dlq/requeue", tag = "deliveries", request_body = RequeueIn,
    responses((status = 202, body = RequeueOut), (status = "4XX", body = Problem)),
    security(("bearer" = ["dlq:manage"])))]
pub async fn requeue_dlq(
    State(state): State<AppState>,
    principal: Principal,
    ApiJson(body): ApiJson<RequeueIn>,
) -> Result<(StatusCode, axum::Json<RequeueOut>), ApiError> {
    let tenant = principal.tenant_for(Scope::DlqManage)?.clone();
    let selection = match (body.delivery_ids, body.endpoint_id) {
        (Some(ids), None) => {
            if ids.is_empty() || ids.len() > 1000 {
                return Err(ApiError::invalid_field(
                    "delivery_ids",
                    "must list 1 to 1000 ids",
                ));
            }
            // Ids that cannot exist are skipped like ids that are not dead.
            RequeueSelection::Ids(ids.iter().filter_map(|i| DeliveryId::parse(i)).collect())
        }
        (None, Some(raw)) => {
            // Another tenant's endpoint (or none at all) is not found, as everywhere.
            let id = EndpointId::parse(&raw).ok_or_else(|| ApiError::not_found("endpoint"))?;
            if state.store.get_endpoint(&tenant, &id).await?.is_none() {
                return Err(ApiError::not_found("endpoint"));
            }
            RequeueSelection::Endpoint(id)
        }
        _ => {
            return Err(ApiError::invalid_field(
                "delivery_ids",
                "give exactly one of `delivery_ids` and `endpoint_id`",
            ));
        }
    };
    let target = match &selection {
        RequeueSelection::Ids(ids) => serde_json::json!({"delivery_ids": ids.len()}),
        RequeueSelection::Endpoint(id) => serde_json::json!({"endpoint_id": id}),
    };
    audit::record(Some(&tenant), "dlq.requeue", "dlq", &tenant, target);
    // In bounded batches, each its own transaction, never past the queue limit.
    let max = state.config.api.max_requeue;
    let (now, mut total, mut after, mut stopped) = (now_ms(), 0usize, None, None);
    loop {
        let batch = RequeueBatch {
            selection: selection.clone(),
            after: after.take(),
            now,
            limit: REQUEUE_BATCH.min(max - total),
            max_queue_depth: state.config.api.max_queue_depth_per_tenant,
        };
        let done = state.store.requeue_dead(&tenant, batch).await?;
        total += done.woken.len();
        if done.queue_full {
            stopped = Some("queue_full");
            break;
        }
        match done.next {
            Some(_) if total >= max => {
                stopped = Some("max_requeue");
                break;
            }
            Some(next) => after = Some(next),
            None => break,
        }
    }
    tracing::info!(tenant_id = %tenant, requeued = total, stopped, "dlq requeue");
    if total == 0 && stopped == Some("queue_full") {
        return Err(super::events::queue_full(&state));
    }
    Ok((
        StatusCode::ACCEPTED,
        axum::Json(RequeueOut {
            requeued: total,
            complete: stopped.is_none(),
            stopped,
        }),
    ))
}

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/dlq", get(list_dlq))
        .route("/v1/dlq/requeue", post(requeue_dlq))
}
