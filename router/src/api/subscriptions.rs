//! Subscriptions: an endpoint, topic patterns, an optional filter and transform, and
//! the preview (a dry run of the pipeline for one event; nothing stored or sent).
//!
//! Filters are compiled here with the configured `[filter]` limits, so an invalid or
//! hostile one is a `400` at create/update time and never a surprise at delivery.

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use gatepulse_filter_dsl::{Event, Filter, FilterError, Meta, ast};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::time::Instant;
use utoipa::{IntoParams, ToSchema};

use super::AppState;
use super::error::{ApiError, Problem};
use super::extract::{ApiJson, ApiQuery, ListOut, ListParams};
use crate::audit;
use crate::auth::{Principal, Scope};
use crate::clock::{now_ms, rfc3339};
use crate::ids::{EndpointId, EventId, SubscriptionId, TenantId};
use crate::ingest::topic::{self, TopicPattern};
use crate::store::{PageRequest, RECORD_VERSION, Subscription};

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SubscriptionIn {
    pub endpoint_id: String,
    /// Topic patterns: `orders.created`, `orders.*` (one segment), `orders.#` (any
    /// number of segments, including none).
    pub topics: Vec<String>,
    /// A filter expression (docs/filter-dsl.md).
    pub filter: Option<String>,
    /// Reserved for the transform pipeline (mapping and plugins).
    #[schema(value_type = Option<Object>)]
    pub transform: Option<serde_json::Value>,
    pub enabled: Option<bool>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SubscriptionPatch {
    pub endpoint_id: Option<String>,
    pub topics: Option<Vec<String>>,
    /// A new filter; `null` removes it.
    #[serde(default, deserialize_with = "super::extract::nullable")]
    #[schema(value_type = Option<String>)]
    pub filter: Option<Option<String>>,
    #[serde(default, deserialize_with = "super::extract::nullable")]
    #[schema(value_type = Option<Object>)]
    pub transform: Option<Option<serde_json::Value>>,
    pub enabled: Option<bool>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SubscriptionOut {
    pub id: String,
    pub endpoint_id: String,
    pub topics: Vec<String>,
    pub filter: Option<String>,
    #[schema(value_type = Option<Object>)]
    pub transform: Option<serde_json::Value>,
    pub enabled: bool,
    pub created_at: String,
    pub updated_at: String,
}

impl From<Subscription> for SubscriptionOut {
    fn from(s: Subscription) -> Self {
        Self {
            id: s.id.to_string(),
            endpoint_id: s.endpoint_id.to_string(),
            topics: s.topics,
            filter: s.filter,
            transform: s.transform,
            enabled: s.enabled,
            created_at: rfc3339(s.created_at),
            updated_at: rfc3339(s.updated_at),
        }
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SubscriptionListParams {
    pub endpoint_id: Option<String>,
    pub limit: Option<usize>,
    pub cursor: Option<String>,
}

fn validate_topics(state: &AppState, topics: &[String]) -> Result<(), ApiError> {
    let max = state.config.api.max_topics_per_subscription;
    if topics.is_empty() || topics.len() > max {
        return Err(ApiError::invalid_field(
            "topics",
            format!("must list 1 to {max} topic patterns"),
        ));
    }
    for (i, t) in topics.iter().enumerate() {
        TopicPattern::parse(t, state.config.api.max_topic_bytes).map_err(|e| {
            let mut err =
                ApiError::invalid_field(&format!("topics/{i}"), format!("topic pattern {e}"));
            err.code = "invalid_topic";
            err
        })?;
    }
    Ok(())
}

/// Compiles a filter so an invalid one is refused now, never at delivery time.
fn validate_filter(state: &AppState, filter: &str) -> Result<Filter, ApiError> {
    Filter::compile(filter, &state.config.filter.limits()).map_err(|e| filter_problem(&e))
}

/// A filter compile error as a `400` problem: the crate's code (also in `type`), its
/// message as `detail`, the position, the caret excerpt and `field: "filter"`.
fn filter_problem(e: &FilterError) -> ApiError {
    let pos = e.position();
    ApiError::bad_request(e.code(), e.message())
        .with("field", "filter")
        .with(
            "position",
            json!({"line": pos.line, "column": pos.column, "offset": pos.offset}),
        )
        .with("excerpt", e.caret_excerpt())
}

/// Compiles a transform spec (mapping and plugins) as deliveries would run it.
async fn validate_transform(
    state: &AppState,
    tenant: &TenantId,
    transform: &serde_json::Value,
) -> Result<std::sync::Arc<crate::pipeline::Pipeline>, ApiError> {
    state
        .pipelines
        .compile(tenant, transform)
        .await
        .map(std::sync::Arc::new)
        .map_err(ApiError::from)
}

fn endpoint_ref(raw: &str) -> Result<EndpointId, ApiError> {
    EndpointId::parse(raw).ok_or_else(unknown_endpoint)
}

fn unknown_endpoint() -> ApiError {
    let mut e = ApiError::invalid_field("endpoint_id", "endpoint does not exist");
    e.code = "unknown_reference";
    e
}

fn subscription_id(raw: &str) -> Result<SubscriptionId, ApiError> {
    SubscriptionId::parse(raw).ok_or_else(|| ApiError::not_found("subscription"))
}

async fn load(state: &AppState, tenant: &TenantId, raw: &str) -> Result<Subscription, ApiError> {
    state
        .store
        .get_subscription(tenant, &subscription_id(raw)?)
        .await?
        .ok_or_else(|| ApiError::not_found("subscription"))
}

/// Creates a subscription.
#[utoipa::path(post, path = "/v1/subscriptions", tag = "subscriptions", request_body = SubscriptionIn,
    responses((status = 201, body = SubscriptionOut), (status = "4XX", body = Problem)),
    security(("bearer" = ["endpoints:manage"])))]
pub async fn create_subscription(
    State(state): State<AppState>,
    principal: Principal,
    ApiJson(body): ApiJson<SubscriptionIn>,
) -> Result<(StatusCode, axum::Json<SubscriptionOut>), ApiError> {
    let tenant = principal.tenant_for(Scope::EndpointsManage)?.clone();
    let endpoint_id = endpoint_ref(&body.endpoint_id)?;
    validate_topics(&state, &body.topics)?;
    if let Some(f) = &body.filter {
        validate_filter(&state, f)?;
    }
    if let Some(t) = &body.transform {
        validate_transform(&state, &tenant, t).await?;
    }
    let now = now_ms();
    let sub = Subscription {
        record_version: RECORD_VERSION,
        id: SubscriptionId::generate(now),
        tenant_id: tenant.clone(),
        endpoint_id,
        topics: body.topics,
        filter: body.filter,
        transform: body.transform,
        enabled: body.enabled.unwrap_or(true),
        created_at: now,
        updated_at: now,
    };
    audit::record(
        Some(&tenant),
        "subscription.create",
        "subscription",
        &sub.id,
        json!({"endpoint_id": sub.endpoint_id, "topics": sub.topics, "filter": sub.filter,
               "transform": sub.transform.is_some(), "enabled": sub.enabled}),
    );
    state
        .store
        .create_subscription(sub.clone(), state.config.api.max_subscriptions_per_tenant)
        .await?;
    tracing::info!(tenant_id = %tenant, subscription_id = %sub.id, "subscription created");
    Ok((StatusCode::CREATED, axum::Json(sub.into())))
}

/// Lists subscriptions, optionally of one endpoint.
#[utoipa::path(get, path = "/v1/subscriptions", tag = "subscriptions", params(SubscriptionListParams),
    responses((status = 200, body = ListOut<SubscriptionOut>), (status = "4XX", body = Problem)),
    security(("bearer" = ["endpoints:manage"])))]
pub async fn list_subscriptions(
    State(state): State<AppState>,
    principal: Principal,
    ApiQuery(params): ApiQuery<SubscriptionListParams>,
) -> Result<axum::Json<ListOut<SubscriptionOut>>, ApiError> {
    let tenant = principal.tenant_for(Scope::EndpointsManage)?;
    let page: PageRequest = ListParams {
        limit: params.limit,
        cursor: params.cursor,
    }
    .page()?;
    let endpoint = match &params.endpoint_id {
        Some(raw) => match EndpointId::parse(raw) {
            Some(id) => Some(id),
            // An unknown id matches nothing.
            None => {
                return Ok(axum::Json(ListOut {
                    data: Vec::new(),
                    next_cursor: None,
                }));
            }
        },
        None => None,
    };
    let page = state
        .store
        .list_subscriptions(tenant, endpoint.as_ref(), page)
        .await?;
    Ok(axum::Json(ListOut::from_page(page, SubscriptionOut::from)))
}

/// Shows one subscription.
#[utoipa::path(get, path = "/v1/subscriptions/{subscription_id}", tag = "subscriptions",
    params(("subscription_id" = String, Path)),
    responses((status = 200, body = SubscriptionOut), (status = "4XX", body = Problem)),
    security(("bearer" = ["endpoints:manage"])))]
pub async fn get_subscription(
    State(state): State<AppState>,
    principal: Principal,
    Path(raw): Path<String>,
) -> Result<axum::Json<SubscriptionOut>, ApiError> {
    let tenant = principal.tenant_for(Scope::EndpointsManage)?;
    Ok(axum::Json(load(&state, tenant, &raw).await?.into()))
}

/// Changes a subscription.
#[utoipa::path(patch, path = "/v1/subscriptions/{subscription_id}", tag = "subscriptions",
    params(("subscription_id" = String, Path)), request_body = SubscriptionPatch,
    responses((status = 200, body = SubscriptionOut), (status = "4XX", body = Problem)),
    security(("bearer" = ["endpoints:manage"])))]
pub async fn update_subscription(
    State(state): State<AppState>,
    principal: Principal,
    Path(raw): Path<String>,
    ApiJson(patch): ApiJson<SubscriptionPatch>,
) -> Result<axum::Json<SubscriptionOut>, ApiError> {
    let tenant = principal.tenant_for(Scope::EndpointsManage)?.clone();
    let id = subscription_id(&raw)?;
    let endpoint = patch.endpoint_id.as_deref().map(endpoint_ref).transpose()?;
    if let Some(t) = &patch.topics {
        validate_topics(&state, t)?;
    }
    if let Some(Some(f)) = &patch.filter {
        validate_filter(&state, f)?;
    }
    if let Some(Some(t)) = &patch.transform {
        validate_transform(&state, &tenant, t).await?;
    }
    let now = now_ms();
    audit::record(
        Some(&tenant),
        "subscription.update",
        "subscription",
        &id,
        json!({"topics": patch.topics, "filter": patch.filter,
               "transform": patch.transform.is_some(), "enabled": patch.enabled}),
    );
    let updated = state
        .store
        .update_subscription(
            &tenant,
            &id,
            Box::new(move |s: &mut Subscription| {
                if let Some(e) = endpoint {
                    s.endpoint_id = e;
                }
                if let Some(t) = patch.topics {
                    s.topics = t;
                }
                if let Some(f) = patch.filter {
                    s.filter = f;
                }
                if let Some(t) = patch.transform {
                    s.transform = t;
                }
                if let Some(e) = patch.enabled {
                    s.enabled = e;
                }
                s.updated_at = now;
            }),
        )
        .await?;
    tracing::info!(tenant_id = %tenant, subscription_id = %id, "subscription updated");
    Ok(axum::Json(updated.into()))
}

/// Deletes a subscription.
#[utoipa::path(delete, path = "/v1/subscriptions/{subscription_id}", tag = "subscriptions",
    params(("subscription_id" = String, Path)),
    responses((status = 204), (status = "4XX", body = Problem)),
    security(("bearer" = ["endpoints:manage"])))]
pub async fn delete_subscription(
    State(state): State<AppState>,
    principal: Principal,
    Path(raw): Path<String>,
) -> Result<StatusCode, ApiError> {
    let tenant = principal.tenant_for(Scope::EndpointsManage)?.clone();
    let id = subscription_id(&raw)?;
    audit::record(
        Some(&tenant),
        "subscription.delete",
        "subscription",
        &id,
        json!({}),
    );
    state.store.delete_subscription(&tenant, &id).await?;
    tracing::info!(tenant_id = %tenant, subscription_id = %id, "subscription deleted");
    Ok(StatusCode::NO_CONTENT)
}

/// The subscription half of a preview: the fields of `SubscriptionIn`, with
/// `endpoint_id` optional.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PreviewSubscriptionIn {
    /// When given it must name an existing endpoint of the tenant.
    pub endpoint_id: Option<String>,
    pub topics: Vec<String>,
    pub filter: Option<String>,
    #[schema(value_type = Option<Object>)]
    pub transform: Option<serde_json::Value>,
    /// Accepted for symmetry with create; a preview runs the pipeline either way.
    pub enabled: Option<bool>,
}

/// The event of a preview, as it would be published.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PreviewEventIn {
    pub topic: String,
    /// A JSON object.
    #[schema(value_type = Object)]
    pub payload: Value,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PreviewIn {
    pub subscription: PreviewSubscriptionIn,
    pub event: PreviewEventIn,
}

/// One pipeline stage of a preview. The pipeline stops at the first stage that does not
/// match, so the last stage listed is the one that decided a non-match.
#[derive(Debug, Serialize, ToSchema)]
pub struct PreviewStage {
    /// `topic` or `filter`.
    pub stage: String,
    /// Time the stage took, in microseconds.
    pub took_us: u64,
    pub matched: bool,
    /// Why: for `topic`, the topic, the patterns and the first that matched; for
    /// `filter`, the canonical filter and, when it is an `&&`/`||` chain, each term
    /// with its result.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub explain: Option<Value>,
    /// Why a transform stage failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PreviewOut {
    /// Whether the event would be delivered to the subscription.
    pub matched: bool,
    /// The body that would be delivered (the payload after the mapping and plugins),
    /// or `null` when not matched, dropped by a plugin, or failed closed.
    #[schema(value_type = Option<Object>)]
    pub body: Option<Value>,
    pub stages: Vec<PreviewStage>,
}

fn micros(started: Instant) -> u64 {
    u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX)
}

/// Each term of a top-level `&&` / `||` chain with its own result, so a non-match
/// says which part failed. Terms are re-compiled from their canonical form, which the
/// language guarantees compiles to the same tree.
fn explain_filter(filter: &Filter, event: &Event<'_>, state: &AppState) -> Value {
    let (op, terms) = match filter.ast() {
        ast::Node::And(terms) => ("&&", terms),
        ast::Node::Or(terms) => ("||", terms),
        _ => return json!({ "filter": filter.to_string() }),
    };
    let limits = state.config.filter.limits();
    let terms: Vec<Value> = terms
        .iter()
        .map(|t| {
            let src = t.to_string();
            match Filter::compile(&src, &limits) {
                Ok(f) => json!({ "term": src, "matched": f.matches(event) }),
                Err(_) => json!({ "term": src }),
            }
        })
        .collect();
    json!({ "filter": filter.to_string(), "operator": op, "terms": terms })
}

/// Runs one event through a subscription's pipeline (topic match → filter) without
/// storing or sending anything.
#[utoipa::path(post, path = "/v1/subscriptions/preview", tag = "subscriptions", request_body = PreviewIn,
    responses((status = 200, body = PreviewOut), (status = "4XX", body = Problem)),
    security(("bearer" = ["endpoints:manage"])))]
pub async fn preview_subscription(
    State(state): State<AppState>,
    principal: Principal,
    ApiJson(body): ApiJson<PreviewIn>,
) -> Result<axum::Json<PreviewOut>, ApiError> {
    let tenant = principal.tenant_for(Scope::EndpointsManage)?.clone();
    let sub = body.subscription;
    if let Some(raw) = &sub.endpoint_id {
        let id = endpoint_ref(raw)?;
        if state.store.get_endpoint(&tenant, &id).await?.is_none() {
            return Err(unknown_endpoint());
        }
    }
    validate_topics(&state, &sub.topics)?;
    let filter = sub
        .filter
        .as_deref()
        .map(|f| validate_filter(&state, f))
        .transpose()?;
    let pipeline = match &sub.transform {
        Some(t) => Some(validate_transform(&state, &tenant, t).await?),
        None => None,
    };
    let event = body.event;
    topic::validate_topic(&event.topic, state.config.api.max_topic_bytes).map_err(|e| {
        let mut err = ApiError::invalid_field("event/topic", format!("topic {e}"));
        err.code = "invalid_topic";
        err
    })?;
    if !event.payload.is_object() {
        let mut err = ApiError::invalid_field("event/payload", "payload must be a JSON object");
        err.code = "invalid_payload";
        return Err(err);
    }

    let mut stages = Vec::with_capacity(2);
    let started = Instant::now();
    let patterns: Vec<TopicPattern> = sub
        .topics
        .iter()
        .filter_map(|t| TopicPattern::parse(t, usize::MAX).ok())
        .collect();
    let hit = patterns.iter().find(|p| p.matches(&event.topic));
    let topic_matched = hit.is_some();
    stages.push(PreviewStage {
        stage: "topic".into(),
        took_us: micros(started),
        matched: topic_matched,
        explain: Some(json!({
            "topic": event.topic,
            "patterns": sub.topics,
            "matched_pattern": hit.map(TopicPattern::as_str),
        })),
        error: None,
    });
    if !topic_matched {
        return Ok(axum::Json(PreviewOut {
            matched: false,
            body: None,
            stages,
        }));
    }

    let started = Instant::now();
    // The event is not stored; an id and time are made up so `meta.*` filters behave
    // as they would on publish.
    let now = now_ms();
    let id = EventId::generate(now);
    let time = rfc3339(now);
    let (filter_matched, explain) = {
        // The filter's view borrows the event; it ends before any await below.
        let view = Event::new(&event.topic, &event.payload).with_meta(Meta {
            id: Some(id.as_str()),
            time: Some(&time),
            source: None,
        });
        match &filter {
            Some(f) => {
                let matched = f.matches(&view);
                let took = micros(started);
                let explain = explain_filter(f, &view, &state);
                (matched, Some((took, explain)))
            }
            None => (true, None),
        }
    };
    let (took_us, explain) = match explain {
        Some((took, explain)) => (took, explain),
        None => (micros(started), json!({ "filter": null })),
    };
    stages.push(PreviewStage {
        stage: "filter".into(),
        took_us,
        matched: filter_matched,
        explain: Some(explain),
        error: None,
    });
    let (Some(pipeline), true) = (pipeline, filter_matched) else {
        let body = filter_matched.then_some(event.payload);
        return Ok(axum::Json(PreviewOut {
            matched: filter_matched,
            body,
            stages,
        }));
    };
    // Mapping and plugins, exactly as a delivery runs them.
    let stored = crate::store::Event {
        record_version: RECORD_VERSION,
        id: id.clone(),
        tenant_id: tenant.clone(),
        cursor: 0,
        topic: event.topic.clone(),
        payload: serde_json::value::to_raw_value(&event.payload)
            .map_err(|_| ApiError::internal())?,
        idempotency_key: None,
        created_at: now,
        traceparent: None,
    };
    let mut reports = Vec::new();
    let result = state
        .pipelines
        .run(&pipeline, &stored, Some(&mut reports))
        .await;
    for r in reports {
        stages.push(PreviewStage {
            stage: r.stage,
            took_us: u64::try_from(r.took.as_micros()).unwrap_or(u64::MAX),
            matched: r.error.is_none(),
            explain: None,
            error: r.error,
        });
    }
    let (matched, body) = match result {
        Ok(crate::pipeline::Transformed::Body(b)) => (
            true,
            Some(serde_json::from_slice(&b).unwrap_or(Value::Null)),
        ),
        // Dropped by a plugin: nothing would be sent.
        Ok(crate::pipeline::Transformed::Dropped { .. }) => (false, None),
        // A failing stage: on_error decides what a delivery would do.
        Err(_) if pipeline.on_error == crate::pipeline::OnError::DeliverOriginal => {
            (true, Some(event.payload))
        }
        Err(_) => (false, None),
    };
    Ok(axum::Json(PreviewOut {
        matched,
        body,
        stages,
    }))
}

pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/v1/subscriptions",
            get(list_subscriptions).post(create_subscription),
        )
        // A static segment: matched before the `{subscription_id}` pattern below.
        .route("/v1/subscriptions/preview", post(preview_subscription))
        .route(
            "/v1/subscriptions/{subscription_id}",
            get(get_subscription)
                .patch(update_subscription)
                .delete(delete_subscription),
        )
}
