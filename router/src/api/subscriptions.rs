//! Subscriptions: an endpoint, topic patterns, an optional filter and transform.

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::get;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::AppState;
use super::error::{ApiError, Problem};
use super::extract::{ApiJson, ApiQuery, ListOut, ListParams};
use crate::auth::{Principal, Scope};
use crate::clock::{now_ms, rfc3339};
use crate::ids::{EndpointId, SubscriptionId, TenantId};
use crate::ingest::topic::TopicPattern;
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
            let mut err = ApiError::invalid_field(&format!("topics/{i}"), format!("topic pattern {e}"));
            err.code = "invalid_topic";
            err
        })?;
    }
    Ok(())
}

/// Compiles a filter so an invalid one is refused now, never at delivery time.
fn validate_filter(filter: &str) -> Result<(), ApiError> {
    let _ = filter;
    Err(ApiError::invalid_field(
        "filter",
        "filter expressions are not available in this build",
    ))
}

fn validate_transform(transform: &serde_json::Value) -> Result<(), ApiError> {
    let _ = transform;
    Err(ApiError::invalid_field(
        "transform",
        "transforms are not available in this build",
    ))
}

fn endpoint_ref(raw: &str) -> Result<EndpointId, ApiError> {
    EndpointId::parse(raw).ok_or_else(|| {
        let mut e = ApiError::invalid_field("endpoint_id", "endpoint does not exist");
        e.code = "unknown_reference";
        e
    })
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
        validate_filter(f)?;
    }
    if let Some(t) = &body.transform {
        validate_transform(t)?;
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
    state
        .store
        .create_subscription(sub.clone(), state.config.api.max_subscriptions_per_tenant)
        .await?;
    state.ingest.invalidate(&tenant);
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
            None => return Ok(axum::Json(ListOut { data: Vec::new(), next_cursor: None })),
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
        validate_filter(f)?;
    }
    if let Some(Some(t)) = &patch.transform {
        validate_transform(t)?;
    }
    let now = now_ms();
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
    state.ingest.invalidate(&tenant);
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
    state.store.delete_subscription(&tenant, &id).await?;
    state.ingest.invalidate(&tenant);
    tracing::info!(tenant_id = %tenant, subscription_id = %id, "subscription deleted");
    Ok(StatusCode::NO_CONTENT)
}

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/subscriptions", get(list_subscriptions).post(create_subscription))
        .route(
            "/v1/subscriptions/{subscription_id}",
            get(get_subscription)
                .patch(update_subscription)
                .delete(delete_subscription),
        )
}
