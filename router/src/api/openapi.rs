//! The OpenAPI document, generated from the handlers and types. A committed copy
//! lives at `docs/openapi.json`; a test fails when the two drift (regenerate with
//! `GP_UPDATE_OPENAPI=1 cargo test -p gatepulse openapi`).

use std::sync::OnceLock;

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::{
    admin, audit, cluster, deliveries, dlq, endpoint_keys, endpoints, error, events, extract,
    inbox, ops, plugins, replay, secrets, stats, stream, subscriptions, tenants, whoami,
};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "GatePulse",
        description = "Self-hosted webhook and event router. Errors are RFC 9457 problem \
            documents with a stable `code`. Lists take `limit` (1-1000, default 50) and an \
            opaque `cursor`, and answer `{\"data\": [...], \"next_cursor\": ...}`. \
            Authenticate with `Authorization: Bearer <token>`; the admin token acts in a \
            tenant named by the `GatePulse-Tenant` header.",
        license(name = "Apache-2.0")
    ),
    paths(
        tenants::create_tenant, tenants::list_tenants, tenants::get_tenant, tenants::update_tenant,
        tenants::create_key, tenants::list_keys, tenants::revoke_key,
        endpoints::create_endpoint, endpoints::list_endpoints, endpoints::get_endpoint,
        endpoints::update_endpoint, endpoints::delete_endpoint, endpoints::get_health,
        endpoint_keys::get_secret, endpoint_keys::rotate_secret, endpoint_keys::get_public_key,
        endpoint_keys::rotate_signing_key,
        dlq::list_dlq, dlq::requeue_dlq, replay::create_replay, stats::get_stats, admin::create_snapshot, cluster::get_cluster,
        secrets::get_secrets, secrets::rotate, audit::list_audit, audit::verify_audit, whoami::whoami, inbox::list_inbox_messages,
        subscriptions::create_subscription, subscriptions::list_subscriptions,
        subscriptions::get_subscription, subscriptions::update_subscription,
        subscriptions::delete_subscription, subscriptions::preview_subscription,
        events::create_event, events::create_events_batch, events::list_events,
        events::get_event, stream::stream,
        plugins::upload_plugin, plugins::list_plugins, plugins::delete_plugin,
        deliveries::list_deliveries, deliveries::get_delivery,
        ops::get_healthz, ops::get_readyz, ops::get_metrics, ops::get_openapi, inbox::get_inbox_ui,
    ),
    components(schemas(error::Problem, extract::ListOut<tenants::TenantOut>)),
    modifiers(&BearerAuth),
    tags(
        (name = "tenants", description = "Tenants and API keys (admin token)"),
        (name = "endpoints", description = "Destinations and their secrets"),
        (name = "subscriptions", description = "Which events go to which endpoint"),
        (name = "events", description = "Publishing and reading events"),
        (name = "deliveries", description = "Deliveries and attempts"),
        (name = "plugins", description = "WASM transform plugins"),
        (name = "operations", description = "Health, readiness, metrics, the dev inbox page"),
    )
)]
pub struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// The document as pretty JSON, rendered once.
pub fn document_json() -> String {
    static DOC: OnceLock<String> = OnceLock::new();
    DOC.get_or_init(|| ApiDoc::openapi().to_pretty_json().unwrap_or_default())
        .clone()
}
