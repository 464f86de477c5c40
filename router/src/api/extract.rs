//! Request extractors whose rejections are problem documents: JSON bodies, query
//! strings, and the authenticated caller.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use serde::Deserialize;
use serde::de::DeserializeOwned;

use super::AppState;
use super::error::ApiError;
use crate::auth::Principal;

/// Header naming the tenant the admin token acts in.
pub const TENANT_HEADER: &str = "gatepulse-tenant";

/// A JSON body. Wrong content type → 415, too large → 413, malformed → 400
/// `invalid_json` with line and column, wrong shape → 422 `invalid_body`.
#[derive(Debug)]
pub struct ApiJson<T>(pub T);

fn is_json_content_type(parts: &axum::http::HeaderMap) -> bool {
    parts
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|m| {
            let m = m.trim().to_ascii_lowercase();
            m == "application/json" || (m.starts_with("application/") && m.ends_with("+json"))
        })
        .unwrap_or(false)
}

/// Parses JSON bytes into `T`, mapping serde errors to problems.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(bytes).map_err(|e| {
        use serde_json::error::Category;
        let (status, code) = match e.classify() {
            Category::Syntax | Category::Eof | Category::Io => {
                (StatusCode::BAD_REQUEST, "invalid_json")
            }
            Category::Data => (StatusCode::UNPROCESSABLE_ENTITY, "invalid_body"),
        };
        ApiError::new(status, code, e.to_string())
            .with("line", e.line())
            .with("column", e.column())
    })
}

/// Reads the body within `api.body_read_timeout_secs` (408 `body_timeout` after it),
/// mapping the body-limit rejection to 413.
pub async fn read_body(req: Request, state: &AppState) -> Result<Bytes, ApiError> {
    let deadline = std::time::Duration::from_secs(state.config.api.body_read_timeout_secs);
    let read = tokio::time::timeout(deadline, Bytes::from_request(req, state))
        .await
        .map_err(|_| body_timeout(state))?;
    read.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "body_too_large",
                format!(
                    "request body is larger than {} bytes (api.max_body_bytes)",
                    state.config.api.max_body_bytes
                ),
            )
        } else {
            ApiError::bad_request("unreadable_body", rejection.body_text())
        }
    })
}

/// The answer to a body that did not arrive in time.
pub fn body_timeout(state: &AppState) -> ApiError {
    ApiError::new(
        StatusCode::REQUEST_TIMEOUT,
        "body_timeout",
        format!(
            "the request body did not arrive within {} s (api.body_read_timeout_secs)",
            state.config.api.body_read_timeout_secs
        ),
    )
}

impl<T: DeserializeOwned> FromRequest<AppState> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        if !is_json_content_type(req.headers()) {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "expected `Content-Type: application/json`",
            ));
        }
        let bytes = read_body(req, state).await?;
        parse_json(&bytes).map(ApiJson)
    }
}

/// A query string; a bad one is a 400 `invalid_query`.
#[derive(Debug)]
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Query::<T>::try_from_uri(&parts.uri)
            .map(|q| ApiQuery(q.0))
            .map_err(|e| ApiError::bad_request("invalid_query", e.body_text()))
    }
}

impl FromRequestParts<AppState> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        // Authenticated already by the scope layer (`scopes::enforce`), as a rule.
        if let Some(p) = super::scopes::take_principal(parts) {
            return Ok(p);
        }
        authenticate(parts, state).await
    }
}

/// The caller named by the request's bearer token (and `GatePulse-Tenant`).
pub async fn authenticate(parts: &Parts, state: &AppState) -> Result<Principal, ApiError> {
    let token = parts
        .headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim)
        .unwrap_or("");
    let tenant = parts
        .headers
        .get(TENANT_HEADER)
        .and_then(|v| v.to_str().ok());
    Ok(state.auth.authenticate(token, tenant).await?)
}

/// `?limit=&cursor=` of every listing (API.md "Lists").
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// Page size, 1 to 1000 (default 50).
    pub limit: Option<usize>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

pub const DEFAULT_LIMIT: usize = 50;
pub const MAX_LIMIT: usize = 1000;

impl ListParams {
    pub fn page(&self) -> Result<crate::store::PageRequest, ApiError> {
        let limit = self.limit.unwrap_or(DEFAULT_LIMIT);
        if !(1..=MAX_LIMIT).contains(&limit) {
            return Err(ApiError::bad_request(
                "invalid_query",
                format!("limit must be between 1 and {MAX_LIMIT}"),
            ));
        }
        Ok(crate::store::PageRequest {
            after: self.cursor.clone().filter(|c| !c.is_empty()),
            limit,
        })
    }
}

/// The `{"data": [...], "next_cursor": ...}` envelope.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct ListOut<T> {
    pub data: Vec<T>,
    pub next_cursor: Option<String>,
}

impl<T> ListOut<T> {
    pub fn from_page<U>(page: crate::store::Page<U>, f: impl FnMut(U) -> T) -> Self {
        Self {
            data: page.items.into_iter().map(f).collect(),
            next_cursor: page.next,
        }
    }

    /// [`ListOut::from_page`] with a conversion that can fail.
    pub fn try_from_page<U, E>(
        page: crate::store::Page<U>,
        f: impl FnMut(U) -> Result<T, E>,
    ) -> Result<Self, E> {
        Ok(Self {
            data: page.items.into_iter().map(f).collect::<Result<_, _>>()?,
            next_cursor: page.next,
        })
    }
}

/// For PATCH bodies: distinguishes an absent field (`None`) from an explicit `null`
/// (`Some(None)`). Use with `#[serde(default, deserialize_with = "…")]`.
pub fn nullable<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}
