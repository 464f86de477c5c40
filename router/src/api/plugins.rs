//! WASM transform plugins: upload (validated against ABI v1 and compiled before it is
//! accepted), list, delete. Versions are immutable: a new build is a new version, and
//! subscriptions name the exact version they run, so switching is a subscription
//! update (hot, no restart) and deliveries already computed are unaffected.

use axum::Router;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::StatusCode;
use axum::routing::{delete, get};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use utoipa::{IntoParams, ToSchema};

use super::AppState;
use super::error::{ApiError, Problem};
use super::extract::{ApiQuery, ListOut};
use crate::audit;
use crate::auth::{Principal, Scope};
use crate::clock::{now_ms, rfc3339};
use crate::pipeline::PluginKey;
use crate::store::{PluginQuota, PluginRecord, RECORD_VERSION};

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct UploadParams {
    /// Plugin name: lowercase letters, digits, `-` and `_`, 1 to 64 characters.
    pub name: String,
    /// Semantic version, e.g. `1.0.0` or `1.1.0-beta.1`.
    pub version: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PluginOut {
    pub name: String,
    pub version: String,
    /// Hex sha256 of the module.
    pub sha256: String,
    /// Module size in bytes.
    pub size: u64,
    /// The plugin ABI the module speaks.
    pub abi: u32,
    /// The SDK version the module was built with, when it says so.
    pub sdk: Option<String>,
    pub created_at: String,
}

impl From<PluginRecord> for PluginOut {
    fn from(p: PluginRecord) -> Self {
        Self {
            name: p.name,
            version: p.version,
            sha256: p.sha256,
            size: p.size,
            abi: p.abi,
            sdk: p.sdk,
            created_at: rfc3339(p.created_at),
        }
    }
}

fn valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
        && name.as_bytes()[0].is_ascii_alphanumeric()
}

/// `MAJOR.MINOR.PATCH` with an optional `-pre` and `+build`, numbers without leading
/// zeros (semver 2.0, simplified identifiers).
fn valid_version(v: &str) -> bool {
    if v.len() > 64 {
        return false;
    }
    let (core, rest) = match v.find(['-', '+']) {
        Some(i) => (&v[..i], &v[i + 1..]),
        None => (v, ""),
    };
    let nums: Vec<&str> = core.split('.').collect();
    let numeric = |n: &&str| {
        !n.is_empty()
            && n.bytes().all(|b| b.is_ascii_digit())
            && (n.len() == 1 || !n.starts_with('0'))
    };
    nums.len() == 3
        && nums.iter().all(numeric)
        && rest
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-' || b == b'+')
        && (v.len() == core.len() || !rest.is_empty())
}

/// Uploads a plugin version: the `.wasm` module is the request body.
#[utoipa::path(post, path = "/v1/plugins", tag = "plugins", params(UploadParams),
    request_body(content = Vec<u8>, content_type = "application/wasm"),
    responses((status = 201, body = PluginOut), (status = 409, body = Problem),
        (status = 413, body = Problem), (status = "4XX", body = Problem)),
    security(("bearer" = ["endpoints:manage"])))]
pub async fn upload_plugin(
    State(state): State<AppState>,
    principal: Principal,
    ApiQuery(params): ApiQuery<UploadParams>,
    body: Body,
) -> Result<(StatusCode, axum::Json<PluginOut>), ApiError> {
    let tenant = principal.tenant_for(Scope::EndpointsManage)?.clone();
    // The body first: answering before reading it would cut the client off mid-send.
    let limit = state.config.plugins.max_module_bytes;
    let deadline = std::time::Duration::from_secs(state.config.api.body_read_timeout_secs);
    let wasm = tokio::time::timeout(deadline, axum::body::to_bytes(body, limit))
        .await
        .map_err(|_| super::extract::body_timeout(&state))?
        .map_err(|_| {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "module_too_large",
                format!("plugin modules are at most {limit} bytes (plugins.max_module_bytes)"),
            )
        })?;
    if !valid_name(&params.name) {
        return Err(ApiError::invalid_field(
            "name",
            "1 to 64 characters: lowercase letters, digits, '-' and '_', starting with a letter or digit",
        ));
    }
    if !valid_version(&params.version) {
        return Err(ApiError::invalid_field(
            "version",
            "a semantic version such as 1.0.0 or 1.1.0-beta.1",
        ));
    }
    let plugin = state
        .pipelines
        .load_module(wasm.to_vec())
        .await
        .map_err(|e| {
            ApiError::bad_request("invalid_plugin", format!("the module was refused: {e}"))
        })?;
    let record = PluginRecord {
        record_version: RECORD_VERSION,
        tenant_id: tenant.clone(),
        name: params.name,
        version: params.version,
        sha256: hex::encode(Sha256::digest(&wasm)),
        size: wasm.len() as u64,
        abi: plugin.meta.abi,
        sdk: plugin.meta.sdk.clone(),
        created_at: now_ms(),
    };
    let quota = PluginQuota {
        max_versions: state.config.plugins.max_per_tenant,
        max_bytes: state.config.plugins.max_bytes_per_tenant,
    };
    audit::record(
        Some(&tenant),
        "plugin.upload",
        "plugin",
        format!("{}@{}", record.name, record.version),
        serde_json::json!({"sha256": record.sha256, "size": record.size}),
    );
    state
        .store
        .create_plugin(record.clone(), wasm.to_vec(), quota)
        .await?;
    state.pipelines.reset_health(&PluginKey {
        tenant: tenant.clone(),
        name: record.name.clone(),
        version: record.version.clone(),
    });
    tracing::info!(tenant_id = %tenant, plugin = %record.name, version = %record.version,
        sha256 = %record.sha256, size = record.size, "plugin uploaded");
    Ok((StatusCode::CREATED, axum::Json(record.into())))
}

/// Lists the tenant's plugins, by name then version.
#[utoipa::path(get, path = "/v1/plugins", tag = "plugins",
    responses((status = 200, body = ListOut<PluginOut>), (status = "4XX", body = Problem)),
    security(("bearer" = ["endpoints:manage"])))]
pub async fn list_plugins(
    State(state): State<AppState>,
    principal: Principal,
) -> Result<axum::Json<ListOut<PluginOut>>, ApiError> {
    let tenant = principal.tenant_for(Scope::EndpointsManage)?;
    let plugins = state.store.list_plugins(tenant).await?;
    Ok(axum::Json(ListOut {
        data: plugins.into_iter().map(PluginOut::from).collect(),
        next_cursor: None,
    }))
}

/// Deletes a plugin version; refused while a subscription uses it.
#[utoipa::path(delete, path = "/v1/plugins/{name}/{version}", tag = "plugins",
    params(("name" = String, Path), ("version" = String, Path)),
    responses((status = 204), (status = 409, body = Problem), (status = "4XX", body = Problem)),
    security(("bearer" = ["endpoints:manage"])))]
pub async fn delete_plugin(
    State(state): State<AppState>,
    principal: Principal,
    Path((name, version)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let tenant = principal.tenant_for(Scope::EndpointsManage)?.clone();
    let users: Vec<String> = state
        .store
        .all_subscriptions(&tenant)
        .await?
        .into_iter()
        .filter(|s| {
            s.transform
                .as_ref()
                .and_then(|t| t.get("plugins"))
                .and_then(|p| p.as_array())
                .is_some_and(|ps| {
                    ps.iter()
                        .any(|p| p["name"] == name.as_str() && p["version"] == version.as_str())
                })
        })
        .map(|s| s.id.to_string())
        .collect();
    if !users.is_empty() {
        return Err(ApiError::conflict(
            "plugin_in_use",
            format!(
                "{name}@{version} is used by subscription(s) {}; point them at another version first",
                users.join(", ")
            ),
        ));
    }
    // The pipeline cache hears of it through the commit feed.
    audit::record(
        Some(&tenant),
        "plugin.delete",
        "plugin",
        format!("{name}@{version}"),
        serde_json::json!({}),
    );
    state.store.delete_plugin(&tenant, &name, &version).await?;
    tracing::info!(tenant_id = %tenant, plugin = %name, version = %version, "plugin deleted");
    Ok(StatusCode::NO_CONTENT)
}

pub fn router() -> Router<AppState> {
    Router::new()
        // The module size limit (plugins.max_module_bytes) is applied by the handler.
        .route(
            "/v1/plugins",
            get(list_plugins)
                .post(upload_plugin)
                .layer(DefaultBodyLimit::disable()),
        )
        .route("/v1/plugins/{name}/{version}", delete(delete_plugin))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_versions() {
        assert!(valid_name("redact"));
        assert!(valid_name("slack-v2_x"));
        assert!(!valid_name("Redact"));
        assert!(!valid_name("-x"));
        assert!(!valid_name(""));
        for v in ["1.0.0", "0.1.10", "1.1.0-beta.1", "2.0.0+build.5"] {
            assert!(valid_version(v), "{v}");
        }
        for v in ["1.0", "01.0.0", "1.0.0-", "a.b.c", "1.0.0 "] {
            assert!(!valid_version(v), "{v}");
        }
    }
}
