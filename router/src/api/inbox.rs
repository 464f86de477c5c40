//! Inbox endpoints: the messages they captured (the exact requests a subscriber
//! would have received, signature included).

use axum::Router;
use axum::extract::{Path, State};
use axum::routing::get;
use serde::Serialize;
use utoipa::ToSchema;

use super::AppState;
use super::error::{ApiError, Problem};
use super::extract::{ApiQuery, ListOut, ListParams};
use crate::auth::{Principal, Scope};
use crate::clock::rfc3339;
use crate::ids::EndpointId;
use crate::store::{EndpointKind, InboxMessage};

#[derive(Debug, Serialize, ToSchema)]
pub struct InboxMessageOut {
    pub id: String,
    pub endpoint_id: String,
    pub delivery_id: String,
    pub event_id: String,
    pub topic: String,
    pub received_at: String,
    /// Request headers as sent, in order.
    pub headers: Vec<(String, String)>,
    /// The request body as sent.
    pub body: String,
}

impl From<InboxMessage> for InboxMessageOut {
    fn from(m: InboxMessage) -> Self {
        Self {
            id: m.id.to_string(),
            endpoint_id: m.endpoint_id.to_string(),
            delivery_id: m.delivery_id.to_string(),
            event_id: m.event_id.to_string(),
            topic: m.topic,
            received_at: rfc3339(m.received_at),
            headers: m.headers,
            body: m.body,
        }
    }
}

/// Lists an inbox endpoint's captured messages, oldest first.
#[utoipa::path(get, path = "/v1/inbox/{endpoint_id}/messages", tag = "endpoints",
    params(("endpoint_id" = String, Path), ListParams),
    responses((status = 200, body = ListOut<InboxMessageOut>), (status = "4XX", body = Problem)),
    security(("bearer" = ["events:read"])))]
pub async fn list_inbox_messages(
    State(state): State<AppState>,
    principal: Principal,
    Path(raw): Path<String>,
    ApiQuery(params): ApiQuery<ListParams>,
) -> Result<axum::Json<ListOut<InboxMessageOut>>, ApiError> {
    let tenant = principal.tenant_for(Scope::EventsRead)?;
    let id = EndpointId::parse(&raw).ok_or_else(|| ApiError::not_found("endpoint"))?;
    let endpoint = state
        .store
        .get_endpoint(tenant, &id)
        .await?
        .ok_or_else(|| ApiError::not_found("endpoint"))?;
    if endpoint.kind != EndpointKind::Inbox {
        return Err(ApiError::invalid_field(
            "endpoint_id",
            "is not an inbox endpoint",
        ));
    }
    let page = state.store.list_inbox(tenant, &id, params.page()?).await?;
    Ok(axum::Json(ListOut::from_page(page, InboxMessageOut::from)))
}

pub fn router() -> Router<AppState> {
    Router::new().route("/v1/inbox/{endpoint_id}/messages", get(list_inbox_messages))
}
