//! Inbox endpoints: the messages they captured (the exact requests a subscriber
//! would have received, signature included), and the dev inbox page that shows them.

use std::sync::OnceLock;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::Serialize;
use sha2::{Digest, Sha256};
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

/// The dev inbox page: one self-contained file, compiled into the binary.
const INBOX_UI: &str = include_str!("../../assets/inbox_ui.html");

/// The dev inbox page (SPEC INBOX-1). It needs no auth: it holds no data, asks for an
/// API key and calls the API with it from the browser.
#[utoipa::path(get, path = "/dev/inbox/ui", tag = "operations",
    responses((status = 200, content_type = "text/html", description = "The dev inbox page")))]
pub async fn get_inbox_ui() -> Response {
    let mut resp = (StatusCode::OK, INBOX_UI).into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(header::CONTENT_SECURITY_POLICY, page_csp().clone());
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    resp
}

/// The page's Content-Security-Policy: nothing loads from anywhere but this origin's
/// API, and the only script and style allowed are the page's own inline `<script>` and
/// `<style>` blocks, named by their SHA-256 hash (computed here, so editing the page
/// needs no extra step).
fn page_csp() -> &'static HeaderValue {
    static CSP: OnceLock<HeaderValue> = OnceLock::new();
    CSP.get_or_init(|| {
        let source = |open, close| {
            inline_block(INBOX_UI, open, close)
                .map(|b| format!("'sha256-{}'", STANDARD.encode(Sha256::digest(b))))
                .unwrap_or_else(|| "'none'".to_owned())
        };
        let csp = format!(
            "default-src 'none'; script-src {}; style-src {}; connect-src 'self'; \
             img-src data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
            source("<script>", "</script>"),
            source("<style>", "</style>"),
        );
        HeaderValue::from_str(&csp).unwrap_or(HeaderValue::from_static("default-src 'none'"))
    })
}

/// The text between the first `open` tag and the following `close` tag.
fn inline_block<'a>(html: &'a str, open: &str, close: &str) -> Option<&'a str> {
    let start = html.find(open)? + open.len();
    let len = html[start..].find(close)?;
    Some(&html[start..start + len])
}

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/inbox/{endpoint_id}/messages", get(list_inbox_messages))
        .route("/dev/inbox/ui", get(get_inbox_ui))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn the_page_is_self_contained_and_its_csp_names_its_one_script_and_style() {
        assert_eq!(INBOX_UI.matches("<script").count(), 1);
        assert_eq!(INBOX_UI.matches("<style").count(), 1);
        // No external URLs, and data never goes through innerHTML.
        for banned in [
            "http://",
            "https://",
            "//cdn",
            "innerHTML",
            "outerHTML",
            "eval(",
        ] {
            let hits: Vec<_> = INBOX_UI
                .lines()
                .filter(|l| l.contains(banned) && !l.contains("localhost:3000"))
                .collect();
            assert!(hits.is_empty(), "{banned} in the page: {hits:?}");
        }
        let csp = page_csp().to_str().unwrap();
        let script = inline_block(INBOX_UI, "<script>", "</script>").unwrap();
        let hash = STANDARD.encode(Sha256::digest(script));
        assert!(
            csp.contains(&format!("script-src 'sha256-{hash}';")),
            "{csp}"
        );
        assert!(csp.contains("style-src 'sha256-"), "{csp}");
        assert!(!csp.contains("unsafe"), "{csp}");
    }
}
