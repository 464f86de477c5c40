//! Publishing and reading events.

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use utoipa::{IntoParams, ToSchema};

use super::AppState;
use super::deliveries::DeliverySummary;
use super::error::{ApiError, Problem};
use super::extract::{ApiJson, ApiQuery, ListOut, parse_json};
use crate::auth::{Principal, Scope};
use crate::clock::rfc3339;
use crate::ids::EventId;
use crate::ingest::Publish;
use crate::ingest::topic::TopicPattern;
use crate::store::{AppendOutcome, DeliveryQuery, Event, EventQuery, PageRequest};

/// Header carrying an idempotency key (alternative to the body field).
pub const IDEMPOTENCY_HEADER: &str = "idempotency-key";

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EventIn {
    /// Dot-separated topic, e.g. `orders.created`.
    pub topic: String,
    /// Any JSON object.
    #[schema(value_type = Object)]
    pub payload: Box<RawValue>,
    /// Dedupes publishes within `api.idempotency_window_secs`.
    pub idempotency_key: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PublishOut {
    pub id: String,
    /// Position in the tenant's stream.
    pub cursor: u64,
    /// True when an earlier publish with the same idempotency key answered.
    pub deduped: bool,
}

impl From<AppendOutcome> for PublishOut {
    fn from(o: AppendOutcome) -> Self {
        Self {
            id: o.id.to_string(),
            cursor: o.cursor,
            deduped: o.deduped,
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BatchIn {
    #[schema(value_type = Vec<EventIn>)]
    pub events: Vec<Box<RawValue>>,
}

/// One item of a batch answer: the outcome or a problem document.
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
pub enum BatchItemOut {
    Ok(PublishOut),
    Err {
        #[schema(value_type = Problem)]
        error: serde_json::Value,
    },
}

#[derive(Debug, Serialize, ToSchema)]
pub struct BatchOut {
    pub data: Vec<BatchItemOut>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EventOut {
    pub id: String,
    pub topic: String,
    pub cursor: u64,
    #[schema(value_type = Object)]
    pub payload: Box<RawValue>,
    pub idempotency_key: Option<String>,
    pub created_at: String,
    /// Present on `GET /v1/events/{id}`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deliveries: Option<Vec<DeliverySummary>>,
}

impl From<Event> for EventOut {
    fn from(e: Event) -> Self {
        Self {
            id: e.id.to_string(),
            topic: e.topic,
            cursor: e.cursor,
            payload: e.payload,
            idempotency_key: e.idempotency_key,
            created_at: rfc3339(e.created_at),
            deliveries: None,
        }
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EventListParams {
    /// A topic pattern (`orders.*`, `orders.#`).
    pub topic: Option<String>,
    /// Only events after this stream cursor.
    pub after_cursor: Option<u64>,
    pub limit: Option<usize>,
    pub cursor: Option<String>,
}

fn overloaded(state: &AppState, reason: crate::ingest::Overload) -> ApiError {
    let api = &state.config.api;
    ApiError::overloaded(reason, api.overload_status, api.overload_retry_after_secs)
}

/// The overload answer for work refused at the tenant's queue limit (a replay, a
/// requeue), the same as a publish gets.
pub fn queue_full(state: &AppState) -> ApiError {
    overloaded(state, crate::ingest::Overload::QueueFull)
}

/// One of the `api.max_inflight_publishes` slots, taken from the request's head before
/// its body is read (extractors run in order; the JSON body comes last).
#[derive(Debug)]
pub struct PublishSlot {
    _permit: crate::ingest::PublishPermit,
}

impl axum::extract::FromRequestParts<AppState> for PublishSlot {
    type Rejection = ApiError;

    async fn from_request_parts(
        _parts: &mut axum::http::request::Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        state
            .ingest
            .admit()
            .map(|permit| PublishSlot { _permit: permit })
            .map_err(|o| overloaded(state, o))
    }
}

fn header_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    match headers.get(IDEMPOTENCY_HEADER) {
        None => Ok(None),
        Some(v) => v
            .to_str()
            .map(|s| Some(s.to_owned()))
            .map_err(|_| ApiError::invalid_field("Idempotency-Key", "must be visible ASCII")),
    }
}

fn into_publish(body: EventIn, header: Option<&String>) -> Result<Publish, ApiError> {
    let key = match (body.idempotency_key, header) {
        (Some(b), Some(h)) if &b != h => {
            return Err(ApiError::invalid_field(
                "idempotency_key",
                "differs from the Idempotency-Key header",
            ));
        }
        (Some(b), _) => Some(b),
        (None, h) => h.cloned(),
    };
    Ok(Publish {
        topic: body.topic,
        payload: body.payload,
        idempotency_key: key,
        traceparent: None,
    })
}

/// The publisher's `traceparent`, when its request carries one.
fn traceparent(headers: &HeaderMap) -> Option<&str> {
    headers.get("traceparent").and_then(|v| v.to_str().ok())
}

/// Ends a publish span with the answer's status.
fn end_publish_span<T>(
    span: Option<crate::otel::Span>,
    tenant: &str,
    result: &Result<T, ApiError>,
    status: impl FnOnce(&T) -> u16,
) {
    let Some(mut span) = span else {
        return;
    };
    span.set("gatepulse.tenant_id", tenant);
    span.set("http.request.method", "POST");
    match result {
        Ok(out) => span.set("http.response.status_code", status(out)),
        Err(e) => {
            span.set("http.response.status_code", e.status.as_u16());
            span.fail(e.code);
        }
    }
    span.end();
}

/// Publishes one event. Answers after the event and its deliveries are on disk.
#[utoipa::path(post, path = "/v1/events", tag = "events", request_body = EventIn,
    params(("Idempotency-Key" = Option<String>, Header)),
    responses((status = 202, body = PublishOut), (status = "4XX", body = Problem),
        (status = 503, body = Problem)),
    security(("bearer" = ["events:write"])))]
pub async fn create_event(
    State(state): State<AppState>,
    principal: Principal,
    _slot: PublishSlot,
    headers: HeaderMap,
    ApiJson(body): ApiJson<EventIn>,
) -> Result<(StatusCode, axum::Json<PublishOut>), ApiError> {
    let tenant = principal.tenant_for(Scope::EventsWrite)?;
    let mut span = state.tracer.start_span(
        "POST /v1/events",
        crate::otel::SpanKind::Server,
        traceparent(&headers),
    );
    let result = async {
        let mut publish = into_publish(body, header_key(&headers)?.as_ref())?;
        publish.traceparent = span.as_ref().map(|s| s.context().traceparent());
        if let Some(span) = span.as_mut() {
            span.set("gatepulse.topic", publish.topic.as_str());
        }
        state.ingest.validate(&publish)?;
        let mut outcomes = state.ingest.publish(tenant, vec![publish]).await?;
        outcomes
            .pop()
            .ok_or_else(ApiError::internal)?
            .map_err(|o| overloaded(&state, o))
    }
    .await;
    if let (Some(span), Ok(o)) = (span.as_mut(), &result) {
        span.set("gatepulse.event_id", o.id.as_str());
    }
    end_publish_span(span, tenant.as_str(), &result, |_| 202);
    Ok((StatusCode::ACCEPTED, axum::Json(result?.into())))
}

/// Publishes several events in one durable commit; each item answers for itself.
#[utoipa::path(post, path = "/v1/events/batch", tag = "events", request_body = BatchIn,
    responses((status = 202, body = BatchOut), (status = "4XX", body = Problem),
        (status = 503, body = Problem)),
    security(("bearer" = ["events:write"])))]
pub async fn create_events_batch(
    State(state): State<AppState>,
    principal: Principal,
    _slot: PublishSlot,
    headers: HeaderMap,
    ApiJson(body): ApiJson<BatchIn>,
) -> Result<(StatusCode, axum::Json<BatchOut>), ApiError> {
    let tenant = principal.tenant_for(Scope::EventsWrite)?;
    let span = state.tracer.start_span(
        "POST /v1/events/batch",
        crate::otel::SpanKind::Server,
        traceparent(&headers),
    );
    let trace = span.as_ref().map(|s| s.context().traceparent());
    let result = publish_batch(&state, tenant, body, trace).await;
    end_publish_span(span, tenant.as_str(), &result, |_| 202);
    Ok((StatusCode::ACCEPTED, axum::Json(result?)))
}

/// A batch's events, each validated on its own; the valid ones stored together,
/// all children of the request's span (`trace`).
async fn publish_batch(
    state: &AppState,
    tenant: &crate::ids::TenantId,
    body: BatchIn,
    trace: Option<String>,
) -> Result<BatchOut, ApiError> {
    let max = state.config.api.max_batch_events;
    if body.events.is_empty() || body.events.len() > max {
        return Err(ApiError::invalid_field(
            "events",
            format!("must hold 1 to {max} events (api.max_batch_events)"),
        ));
    }
    // Validate each item on its own; the valid ones are stored together.
    let mut slots: Vec<Result<usize, ApiError>> = Vec::with_capacity(body.events.len());
    let mut valid = Vec::with_capacity(body.events.len());
    for raw in &body.events {
        let item = parse_json::<EventIn>(raw.get().as_bytes())
            .and_then(|e| into_publish(e, None))
            .map(|mut p| {
                p.traceparent.clone_from(&trace);
                p
            })
            .and_then(|p| {
                state
                    .ingest
                    .validate(&p)
                    .map(|()| p)
                    .map_err(ApiError::from)
            });
        slots.push(item.map(|p| {
            valid.push(p);
            valid.len() - 1
        }));
    }
    let outcomes = if valid.is_empty() {
        Vec::new()
    } else {
        state.ingest.publish(tenant, valid).await?
    };
    let data = slots
        .into_iter()
        .map(|slot| match slot {
            Ok(i) => match outcomes.get(i).cloned() {
                Some(Ok(o)) => BatchItemOut::Ok(o.into()),
                Some(Err(overload)) => BatchItemOut::Err {
                    error: overloaded(state, overload).to_json(),
                },
                None => BatchItemOut::Err {
                    error: ApiError::internal().to_json(),
                },
            },
            Err(e) => BatchItemOut::Err { error: e.to_json() },
        })
        .collect();
    Ok(BatchOut { data })
}

/// Lists events in stream order.
#[utoipa::path(get, path = "/v1/events", tag = "events", params(EventListParams),
    responses((status = 200, body = ListOut<EventOut>), (status = "4XX", body = Problem)),
    security(("bearer" = ["events:read"])))]
pub async fn list_events(
    State(state): State<AppState>,
    principal: Principal,
    ApiQuery(params): ApiQuery<EventListParams>,
) -> Result<axum::Json<ListOut<EventOut>>, ApiError> {
    let tenant = principal.tenant_for(Scope::EventsRead)?;
    let page: PageRequest = super::extract::ListParams {
        limit: params.limit,
        cursor: params.cursor,
    }
    .page()?;
    if page
        .after
        .as_deref()
        .is_some_and(|c| c.parse::<u64>().is_err())
    {
        return Err(ApiError::bad_request(
            "invalid_query",
            "cursor is not a cursor of this listing",
        ));
    }
    let topic = params
        .topic
        .as_deref()
        .map(|t| {
            TopicPattern::parse(t, state.config.api.max_topic_bytes)
                .map_err(|e| ApiError::bad_request("invalid_query", format!("topic pattern {e}")))
        })
        .transpose()?;
    let page = state
        .store
        .list_events(
            tenant,
            EventQuery {
                topic,
                after_cursor: params.after_cursor,
                page,
            },
        )
        .await?;
    Ok(axum::Json(ListOut::from_page(page, EventOut::from)))
}

/// Shows one event with a summary of its deliveries.
#[utoipa::path(get, path = "/v1/events/{event_id}", tag = "events",
    params(("event_id" = String, Path)),
    responses((status = 200, body = EventOut), (status = "4XX", body = Problem)),
    security(("bearer" = ["events:read"])))]
pub async fn get_event(
    State(state): State<AppState>,
    principal: Principal,
    Path(raw): Path<String>,
) -> Result<axum::Json<EventOut>, ApiError> {
    let tenant = principal.tenant_for(Scope::EventsRead)?;
    let id = EventId::parse(&raw).ok_or_else(|| ApiError::not_found("event"))?;
    let event = state
        .store
        .get_event(tenant, &id)
        .await?
        .ok_or_else(|| ApiError::not_found("event"))?;
    let deliveries = state
        .store
        .list_deliveries(
            tenant,
            DeliveryQuery {
                event_id: Some(id),
                page: PageRequest {
                    after: None,
                    limit: super::extract::MAX_LIMIT,
                },
                ..DeliveryQuery::default()
            },
        )
        .await?;
    let mut out = EventOut::from(event);
    out.deliveries = Some(
        deliveries
            .items
            .into_iter()
            .map(DeliverySummary::from)
            .collect(),
    );
    Ok(axum::Json(out))
}

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/events", get(list_events).post(create_event))
        .route("/v1/events/batch", post(create_events_batch))
        .route("/v1/events/{event_id}", get(get_event))
}
