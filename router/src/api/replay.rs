//! Replay: deliver stored events again, as new deliveries (SPEC CORE-5).
//!
//! A replay re-matches each selected event against the tenant's current subscriptions
//! (topic patterns and filters), optionally narrowed to one endpoint or subscription,
//! and creates one new delivery per match with a new `webhook-id`. The replay itself
//! is recorded.

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::AppState;
use super::error::{ApiError, Problem};
use super::extract::ApiJson;
use crate::auth::{Principal, Scope};
use crate::clock::{now_ms, parse_rfc3339, rfc3339};
use crate::ids::{EndpointId, EventId, ReplayId, SubscriptionId, TenantId};
use crate::ingest::topic::TopicPattern;
use crate::store::{Event, EventQuery, PageRequest, RECORD_VERSION, Replay, ReplayDelivery};

/// Most events one replay may select; narrow the range or topic beyond that.
pub const MAX_REPLAY_EVENTS: usize = 10_000;

/// One event (`event_id`) or a time range (`from`, `to`, optional `topic` pattern),
/// optionally narrowed to `endpoint_id` or `subscription_id`.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReplayIn {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event_id: Option<String>,
    /// RFC 3339; events accepted at or after this time.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// RFC 3339; events accepted before this time.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub topic: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub endpoint_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subscription_id: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ReplayOut {
    pub replay_id: String,
    /// New deliveries created.
    pub deliveries: usize,
    /// Events selected.
    pub events: usize,
    pub created_at: String,
}

fn time_field(field: &str, value: &str) -> Result<i64, ApiError> {
    parse_rfc3339(value).ok_or_else(|| ApiError::invalid_field(field, "must be an RFC 3339 time"))
}

/// The events a replay selects.
async fn select_events(
    state: &AppState,
    tenant: &TenantId,
    body: &ReplayIn,
) -> Result<Vec<Event>, ApiError> {
    if let Some(raw) = &body.event_id {
        if body.from.is_some() || body.to.is_some() || body.topic.is_some() {
            return Err(ApiError::invalid_field(
                "event_id",
                "give either `event_id` or a `from`/`to` range, not both",
            ));
        }
        let id = EventId::parse(raw).ok_or_else(|| ApiError::not_found("event"))?;
        let event = state
            .store
            .get_event(tenant, &id)
            .await?
            .ok_or_else(|| ApiError::not_found("event"))?;
        return Ok(vec![event]);
    }
    let (Some(from), Some(to)) = (&body.from, &body.to) else {
        return Err(ApiError::invalid_field(
            "event_id",
            "give `event_id`, or both `from` and `to`",
        ));
    };
    let (from, to) = (time_field("from", from)?, time_field("to", to)?);
    if from >= to {
        return Err(ApiError::invalid_field("to", "must be after `from`"));
    }
    let topic = body
        .topic
        .as_deref()
        .map(|t| {
            TopicPattern::parse(t, state.config.api.max_topic_bytes)
                .map_err(|e| ApiError::invalid_field("topic", format!("topic pattern {e}")))
        })
        .transpose()?;
    // Cursor order is acceptance order, so the range is one contiguous stretch of the
    // stream; stop at the first event accepted at or after `to`.
    let mut out = Vec::new();
    let mut after = None;
    loop {
        let page = state
            .store
            .list_events(
                tenant,
                EventQuery {
                    topic: topic.clone(),
                    after_cursor: None,
                    page: PageRequest {
                        after: after.take(),
                        limit: 1000,
                    },
                },
            )
            .await?;
        for event in page.items {
            if event.created_at >= to {
                return Ok(out);
            }
            if event.created_at >= from {
                if out.len() == MAX_REPLAY_EVENTS {
                    return Err(ApiError::invalid_field(
                        "from",
                        format!(
                            "the range selects more than {MAX_REPLAY_EVENTS} events; narrow it"
                        ),
                    )
                    .with("limit", MAX_REPLAY_EVENTS));
                }
                out.push(event);
            }
        }
        match page.next {
            Some(next) => after = Some(next),
            None => return Ok(out),
        }
    }
}

/// Replays one event or a time range to the subscriptions that match now.
#[utoipa::path(post, path = "/v1/replay", tag = "deliveries", request_body = ReplayIn,
    responses((status = 202, body = ReplayOut), (status = "4XX", body = Problem)),
    security(("bearer" = ["replay:write"])))]
pub async fn create_replay(
    State(state): State<AppState>,
    principal: Principal,
    ApiJson(body): ApiJson<ReplayIn>,
) -> Result<(StatusCode, axum::Json<ReplayOut>), ApiError> {
    let tenant = principal.tenant_for(Scope::ReplayWrite)?.clone();
    if body.endpoint_id.is_some() && body.subscription_id.is_some() {
        return Err(ApiError::invalid_field(
            "endpoint_id",
            "narrow by `endpoint_id` or `subscription_id`, not both",
        ));
    }
    let endpoint = match &body.endpoint_id {
        Some(raw) => Some(EndpointId::parse(raw).ok_or_else(|| ApiError::not_found("endpoint"))?),
        None => None,
    };
    let subscription = match &body.subscription_id {
        Some(raw) => {
            Some(SubscriptionId::parse(raw).ok_or_else(|| ApiError::not_found("subscription"))?)
        }
        None => None,
    };
    let events = select_events(&state, &tenant, &body).await?;
    let index = state.ingest.index(&tenant).await?;
    let mut matched = Vec::new();
    let mut deliveries = Vec::new();
    for event in &events {
        let time = rfc3339(event.created_at);
        let meta = gatepulse_filter_dsl::Meta {
            id: Some(event.id.as_str()),
            time: Some(&time),
            source: None,
        };
        index.select(&event.topic, &event.payload, meta, &mut matched);
        for &i in &matched {
            let entry = index.entry(i);
            if endpoint.as_ref().is_some_and(|e| e != &entry.endpoint_id)
                || subscription.as_ref().is_some_and(|s| s != &entry.id)
            {
                continue;
            }
            deliveries.push(ReplayDelivery {
                event_id: event.id.clone(),
                subscription_id: entry.id.clone(),
                endpoint_id: entry.endpoint_id.clone(),
            });
        }
    }
    let now = now_ms();
    let replay = Replay {
        record_version: RECORD_VERSION,
        id: ReplayId::generate(now).to_string(),
        tenant_id: tenant.clone(),
        created_at: now,
        request: serde_json::to_value(&body).unwrap_or_default(),
        deliveries: deliveries.len() as u64,
    };
    let replay_id = replay.id.clone();
    let n = deliveries.len();
    state.store.create_replay(replay, deliveries).await?;
    tracing::info!(tenant_id = %tenant, replay_id = %replay_id, events = events.len(), deliveries = n, "replay created");
    Ok((
        StatusCode::ACCEPTED,
        axum::Json(ReplayOut {
            replay_id,
            deliveries: n,
            events: events.len(),
            created_at: rfc3339(now),
        }),
    ))
}

pub fn router() -> Router<AppState> {
    Router::new().route("/v1/replay", post(create_replay))
}
