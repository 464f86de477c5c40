//! Deliveries (one event for one subscription) and their attempts.

use axum::Router;
use axum::extract::{Path, State};
use axum::routing::get;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::AppState;
use super::error::{ApiError, Problem};
use super::extract::{ApiQuery, ListOut, ListParams};
use crate::auth::{Principal, Scope};
use crate::clock::rfc3339;
use crate::ids::{DeliveryId, EndpointId, EventId};
use crate::store::{Attempt, Delivery, DeliveryQuery, DeliveryStatus};

/// A delivery as listed (and as summarised on an event).
#[derive(Debug, Serialize, ToSchema)]
pub struct DeliverySummary {
    pub id: String,
    pub event_id: String,
    pub subscription_id: String,
    pub endpoint_id: String,
    /// `pending`, `in_flight`, `succeeded`, `retrying`, `dead` or `cancelled`.
    pub status: String,
    pub attempt_count: u32,
    pub next_attempt_at: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

impl From<Delivery> for DeliverySummary {
    fn from(d: Delivery) -> Self {
        Self {
            id: d.id.to_string(),
            event_id: d.event_id.to_string(),
            subscription_id: d.subscription_id.to_string(),
            endpoint_id: d.endpoint_id.to_string(),
            status: d.status.as_str().to_owned(),
            attempt_count: d.attempts,
            next_attempt_at: d.status.is_queued().then(|| rfc3339(d.next_attempt_at)),
            created_at: rfc3339(d.created_at),
            updated_at: rfc3339(d.updated_at),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AttemptOut {
    pub id: String,
    pub number: u32,
    pub started_at: String,
    pub status_code: Option<u16>,
    pub latency_ms: u64,
    pub response_excerpt: Option<String>,
    pub error_kind: Option<String>,
    /// The headers the request carried, as `[name, value]` pairs in the order sent
    /// (the endpoint's custom header values shown as `[redacted]`: they are secrets);
    /// null for an attempt that sent nothing, or one recorded before GatePulse kept them.
    #[schema(value_type = Option<Vec<Vec<String>>>)]
    pub request_headers: Option<Vec<[String; 2]>>,
}

impl AttemptOut {
    /// `a` of `delivery`, whose event has `topic` (when it is still stored).
    fn new(a: Attempt, delivery: &Delivery, topic: Option<&str>) -> Self {
        let request_headers = a.sent.map(|sent| {
            let mut h = vec![
                pair("content-type", "application/json"),
                pair("webhook-id", delivery.id.as_str()),
                pair("webhook-timestamp", &sent.timestamp.to_string()),
                pair("webhook-signature", &sent.signature),
                pair("gatepulse-event-id", delivery.event_id.as_str()),
            ];
            if let Some(topic) = topic {
                h.push(pair("gatepulse-topic", topic));
            }
            h.push(pair("gatepulse-attempt", &a.number.to_string()));
            h.extend(
                sent.custom_headers
                    .iter()
                    .map(|name| pair(name, crate::dispatch::REDACTED)),
            );
            h
        });
        Self {
            id: a.id.to_string(),
            number: a.number,
            started_at: rfc3339(a.started_at),
            status_code: a.status_code,
            latency_ms: a.latency_ms,
            response_excerpt: a.response_excerpt,
            error_kind: a.error_kind,
            request_headers,
        }
    }
}

fn pair(name: &str, value: &str) -> [String; 2] {
    [name.to_owned(), value.to_owned()]
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryOut {
    #[serde(flatten)]
    pub delivery: DeliverySummary,
    pub attempts: Vec<AttemptOut>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeliveryListParams {
    pub event_id: Option<String>,
    pub endpoint_id: Option<String>,
    /// `pending`, `in_flight`, `succeeded`, `retrying`, `dead` or `cancelled`.
    pub status: Option<String>,
    /// Only deliveries of events created at or after this time (RFC 3339).
    pub since: Option<String>,
    /// Only deliveries of events created before this time (RFC 3339).
    pub until: Option<String>,
    pub limit: Option<usize>,
    pub cursor: Option<String>,
}

/// Lists deliveries, newest last, filtered by event, endpoint and status.
#[utoipa::path(get, path = "/v1/deliveries", tag = "deliveries", params(DeliveryListParams),
    responses((status = 200, body = ListOut<DeliverySummary>), (status = "4XX", body = Problem)),
    security(("bearer" = ["events:read"])))]
pub async fn list_deliveries(
    State(state): State<AppState>,
    principal: Principal,
    ApiQuery(params): ApiQuery<DeliveryListParams>,
) -> Result<axum::Json<ListOut<DeliverySummary>>, ApiError> {
    let tenant = principal.tenant_for(Scope::EventsRead)?;
    let time = |name: &str, value: &Option<String>| -> Result<Option<i64>, ApiError> {
        value
            .as_deref()
            .map(|v| {
                crate::clock::parse_rfc3339(v).ok_or_else(|| {
                    ApiError::bad_request(
                        "invalid_query",
                        format!("{name} must be an RFC 3339 time, e.g. 2026-12-04T10:00:00Z"),
                    )
                })
            })
            .transpose()
    };
    let (since, until) = (time("since", &params.since)?, time("until", &params.until)?);
    let mut page = ListParams {
        limit: params.limit,
        cursor: params.cursor,
    }
    .page()?;
    // Delivery ids begin with their event's creation time, so a time range is a key
    // range: start right before `since`, stop at `until`.
    if let Some(since) = since {
        let start = DeliveryId::cursor_before_time(since);
        if page.after.as_ref().is_none_or(|c| *c < start) {
            page.after = Some(start);
        }
    }
    let empty = || {
        axum::Json(ListOut {
            data: Vec::new(),
            next_cursor: None,
        })
    };
    let status = match params.status.as_deref() {
        None => None,
        Some(s) => Some(DeliveryStatus::parse(s).ok_or_else(|| {
            ApiError::bad_request(
                "invalid_query",
                "status must be pending, in_flight, succeeded, retrying, dead or cancelled",
            )
        })?),
    };
    // Ids that cannot exist match nothing.
    let event_id = match params.event_id.as_deref().map(EventId::parse) {
        Some(None) => return Ok(empty()),
        other => other.flatten(),
    };
    let endpoint_id = match params.endpoint_id.as_deref().map(EndpointId::parse) {
        Some(None) => return Ok(empty()),
        other => other.flatten(),
    };
    let page = state
        .store
        .list_deliveries(
            tenant,
            DeliveryQuery {
                event_id,
                endpoint_id,
                status,
                page,
            },
        )
        .await?;
    let mut page = page;
    if let Some(until) = until {
        let before_end = |id: &str| DeliveryId::event_time_ms(id).is_some_and(|t| t < until);
        let whole = page.items.len();
        page.items.retain(|d| before_end(d.id.as_str()));
        if page.items.len() < whole || page.next.as_deref().is_some_and(|c| !before_end(c)) {
            page.next = None;
        }
    }
    Ok(axum::Json(ListOut::from_page(page, DeliverySummary::from)))
}

/// Shows one delivery with its attempts.
#[utoipa::path(get, path = "/v1/deliveries/{delivery_id}", tag = "deliveries",
    params(("delivery_id" = String, Path)),
    responses((status = 200, body = DeliveryOut), (status = "4XX", body = Problem)),
    security(("bearer" = ["events:read"])))]
pub async fn get_delivery(
    State(state): State<AppState>,
    principal: Principal,
    Path(raw): Path<String>,
) -> Result<axum::Json<DeliveryOut>, ApiError> {
    let tenant = principal.tenant_for(Scope::EventsRead)?;
    let id = DeliveryId::parse(&raw).ok_or_else(|| ApiError::not_found("delivery"))?;
    let delivery = state
        .store
        .get_delivery(tenant, &id)
        .await?
        .ok_or_else(|| ApiError::not_found("delivery"))?;
    let attempts = state.store.list_attempts(tenant, &id).await?;
    let topic = match attempts.iter().any(|a| a.sent.is_some()) {
        true => state
            .store
            .get_event(tenant, &delivery.event_id)
            .await?
            .map(|e| e.topic),
        false => None,
    };
    let attempts = attempts
        .into_iter()
        .map(|a| AttemptOut::new(a, &delivery, topic.as_deref()))
        .collect();
    Ok(axum::Json(DeliveryOut {
        delivery: delivery.into(),
        attempts,
    }))
}

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/deliveries", get(list_deliveries))
        .route("/v1/deliveries/{delivery_id}", get(get_delivery))
}
