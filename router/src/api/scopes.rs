//! What every route needs ([`ROUTES`]), enforced for every request before its handler
//! runs or its body is read (SPEC SEC-1). The handlers still ask the principal for the
//! tenant to act in; this layer makes sure no route is reachable without its entry.
//! `docs/api-guide.md` shows the same table; `tests/tests/scopes.rs` checks the three
//! (this table, the OpenAPI document, the guide) agree and probes every route.

use std::collections::HashMap;
use std::sync::LazyLock;

use axum::extract::{MatchedPath, Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::AppState;
use super::error::ApiError;
use crate::audit::{self, AuditActor};
use crate::auth::{AuthError, Principal, Scope};

/// What a route needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Needs {
    /// Nothing: health, readiness, the OpenAPI document, metrics (which has its own
    /// optional token), the dev inbox page.
    Nothing,
    /// The admin token.
    Admin,
    /// Any valid token: an API key with any scopes, or the admin token.
    Token,
    /// An API key holding any one of these scopes (or the admin token acting in a
    /// tenant).
    Any(&'static [Scope]),
}

use Needs::{Admin, Any, Nothing, Token};
use Scope::{
    AuditRead, DlqManage, EndpointsManage, EventsRead, EventsWrite, ReplayWrite, StatsRead,
};

/// Every route: method, path as routed, what it needs.
pub const ROUTES: &[(&str, &str, Needs)] = &[
    ("GET", "/healthz", Nothing),
    ("GET", "/readyz", Nothing),
    ("GET", "/openapi.json", Nothing),
    ("GET", "/metrics", Nothing),
    ("GET", "/dev/inbox/ui", Nothing),
    ("POST", "/v1/tenants", Admin),
    ("GET", "/v1/tenants", Admin),
    ("GET", "/v1/tenants/{tenant_id}", Admin),
    ("PATCH", "/v1/tenants/{tenant_id}", Admin),
    ("POST", "/v1/tenants/{tenant_id}/keys", Admin),
    ("GET", "/v1/tenants/{tenant_id}/keys", Admin),
    ("DELETE", "/v1/tenants/{tenant_id}/keys/{key_id}", Admin),
    ("POST", "/v1/admin/snapshots", Admin),
    ("GET", "/v1/admin/cluster", Admin),
    ("GET", "/v1/admin/secrets", Admin),
    ("POST", "/v1/admin/secrets/rotate", Admin),
    ("POST", "/v1/events", Any(&[EventsWrite])),
    ("POST", "/v1/events/batch", Any(&[EventsWrite])),
    ("GET", "/v1/events", Any(&[EventsRead])),
    ("GET", "/v1/events/{event_id}", Any(&[EventsRead])),
    ("GET", "/v1/stream", Any(&[EventsRead])),
    ("GET", "/v1/deliveries", Any(&[EventsRead])),
    ("GET", "/v1/deliveries/{delivery_id}", Any(&[EventsRead])),
    (
        "GET",
        "/v1/inbox/{endpoint_id}/messages",
        Any(&[EventsRead]),
    ),
    ("POST", "/v1/endpoints", Any(&[EndpointsManage])),
    ("GET", "/v1/endpoints", Any(&[EndpointsManage])),
    (
        "GET",
        "/v1/endpoints/{endpoint_id}",
        Any(&[EndpointsManage]),
    ),
    (
        "PATCH",
        "/v1/endpoints/{endpoint_id}",
        Any(&[EndpointsManage]),
    ),
    (
        "DELETE",
        "/v1/endpoints/{endpoint_id}",
        Any(&[EndpointsManage]),
    ),
    (
        "GET",
        "/v1/endpoints/{endpoint_id}/secret",
        Any(&[EndpointsManage]),
    ),
    (
        "POST",
        "/v1/endpoints/{endpoint_id}/secret/rotate",
        Any(&[EndpointsManage]),
    ),
    (
        "GET",
        "/v1/endpoints/{endpoint_id}/public-key",
        Any(&[EndpointsManage]),
    ),
    (
        "POST",
        "/v1/endpoints/{endpoint_id}/public-key/rotate",
        Any(&[EndpointsManage]),
    ),
    (
        "GET",
        "/v1/endpoints/{endpoint_id}/health",
        Any(&[EndpointsManage]),
    ),
    ("POST", "/v1/subscriptions", Any(&[EndpointsManage])),
    ("GET", "/v1/subscriptions", Any(&[EndpointsManage])),
    ("POST", "/v1/subscriptions/preview", Any(&[EndpointsManage])),
    (
        "GET",
        "/v1/subscriptions/{subscription_id}",
        Any(&[EndpointsManage]),
    ),
    (
        "PATCH",
        "/v1/subscriptions/{subscription_id}",
        Any(&[EndpointsManage]),
    ),
    (
        "DELETE",
        "/v1/subscriptions/{subscription_id}",
        Any(&[EndpointsManage]),
    ),
    ("POST", "/v1/plugins", Any(&[EndpointsManage])),
    ("GET", "/v1/plugins", Any(&[EndpointsManage])),
    (
        "DELETE",
        "/v1/plugins/{name}/{version}",
        Any(&[EndpointsManage]),
    ),
    ("POST", "/v1/replay", Any(&[ReplayWrite])),
    ("GET", "/v1/dlq", Any(&[DlqManage])),
    ("POST", "/v1/dlq/requeue", Any(&[DlqManage])),
    ("GET", "/v1/stats", Any(&[StatsRead, EndpointsManage])),
    ("GET", "/v1/audit", Any(&[AuditRead])),
    ("GET", "/v1/audit/verify", Any(&[AuditRead])),
    ("GET", "/v1/whoami", Token),
];

static INDEX: LazyLock<HashMap<(&'static str, &'static str), Needs>> = LazyLock::new(|| {
    ROUTES
        .iter()
        .map(|&(method, path, needs)| ((method, path), needs))
        .collect()
});

/// What `method path` needs; `None` for a route with no entry.
pub fn needs(method: &Method, path: &str) -> Option<Needs> {
    INDEX.get(&(method.as_str(), path)).copied()
}

/// The layer: authenticates (once; the handler's `Principal` is this one) and refuses
/// a caller who lacks what the route needs, before the handler reads anything.
pub async fn enforce(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let Some(path) = req.extensions().get::<MatchedPath>().map(|m| m.as_str()) else {
        return next.run(req).await;
    };
    let needs = match needs(req.method(), path) {
        Some(n) => n,
        // The console's files and other pages outside the API carry no data.
        None if !path.starts_with("/v1/") => return next.run(req).await,
        // A route added without an entry is refused until it gets one.
        None => {
            tracing::error!(route = path, method = %req.method(), "route has no scope entry");
            return ApiError::internal().into_response();
        }
    };
    if needs == Nothing {
        return next.run(req).await;
    }
    let (mut parts, body) = req.into_parts();
    let principal = match super::extract::authenticate(&parts, &state).await {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    let allowed = match (needs, &principal) {
        (Admin, p) => p.require_admin(),
        (Token, _) => Ok(()),
        (Any(_), Principal::Admin { .. }) => Ok(()),
        (Any(scopes), Principal::Key { scopes: held, .. }) => {
            match scopes.iter().find(|s| held.contains(s)) {
                Some(_) => Ok(()),
                None => Err(AuthError::MissingScope(scopes[0])),
            }
        }
        (Nothing, _) => Ok(()),
    };
    if let Err(e) = allowed {
        return ApiError::from(e).into_response();
    }
    let actor = match &principal {
        Principal::Admin { .. } => AuditActor::admin(),
        Principal::Key { id, .. } => AuditActor::key(id.clone()),
    };
    let request_id = parts
        .extensions
        .get::<super::RequestId>()
        .map(|r| r.0.clone());
    let client = parts.extensions.get::<super::ClientAddr>().map(|c| c.0);
    parts.extensions.insert(principal);
    let context = audit::Context::new(actor, request_id, client);
    audit::scope(context, next.run(Request::from_parts(parts, body))).await
}

/// Lets a handler take the principal [`enforce`] authenticated.
pub(super) fn take_principal(parts: &mut axum::http::request::Parts) -> Option<Principal> {
    parts.extensions.remove::<Principal>()
}
