//! The one place where errors become HTTP responses: RFC 9457 problem documents
//! (`application/problem+json`) with a stable `code`.
//!
//! Internal details (storage messages, panics) are logged, never sent.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::{Map, Value};

use crate::auth::AuthError;
use crate::ingest::PublishError;
use crate::store::StoreError;

const PROBLEM_JSON: &str = "application/problem+json";

/// A problem response. Build one with the constructors; extra members go in `extra`.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub detail: String,
    pub extra: Map<String, Value>,
    /// Seconds for a `Retry-After` header (429/503).
    pub retry_after: Option<u64>,
}

/// The wire shape, also used in the OpenAPI document.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Problem {
    /// A URI naming the problem type: `https://gatepulse.dev/problems/<code>`.
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    /// Stable machine-readable code, e.g. `invalid_filter`, `missing_scope`.
    pub code: String,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, detail: impl Into<String>) -> Self {
        Self {
            status,
            code,
            detail: detail.into(),
            extra: Map::new(),
            retry_after: None,
        }
    }

    pub fn with(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.extra.insert(key.to_owned(), value.into());
        self
    }

    pub fn bad_request(code: &'static str, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, detail)
    }

    /// A field failed validation; `field` is a JSON pointer-ish path (`topics/0`).
    pub fn invalid_field(field: &str, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_field", detail).with("field", field)
    }

    pub fn not_found(what: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("{what} not found"),
        )
    }

    pub fn conflict(code: &'static str, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, code, detail)
    }

    pub fn internal() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            "an internal error occurred; it has been logged",
        )
    }

    pub fn unavailable(code: &'static str, detail: impl Into<String>, retry_after: u64) -> Self {
        let mut e = Self::new(StatusCode::SERVICE_UNAVAILABLE, code, detail);
        e.retry_after = Some(retry_after);
        e
    }

    /// The problem document as JSON (also used for per-item errors of a batch).
    pub fn to_json(&self) -> Value {
        let mut doc = Map::new();
        doc.insert(
            "type".into(),
            format!("https://gatepulse.dev/problems/{}", self.code).into(),
        );
        doc.insert(
            "title".into(),
            self.status
                .canonical_reason()
                .unwrap_or("Error")
                .to_owned()
                .into(),
        );
        doc.insert("status".into(), self.status.as_u16().into());
        doc.insert("detail".into(), self.detail.clone().into());
        doc.insert("code".into(), self.code.into());
        for (k, v) in &self.extra {
            doc.insert(k.clone(), v.clone());
        }
        Value::Object(doc)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::to_vec(&self.to_json()).unwrap_or_default();
        let mut resp = (self.status, body).into_response();
        resp.headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        if let Some(secs) = self.retry_after
            && let Ok(v) = HeaderValue::from_str(&secs.to_string())
        {
            resp.headers_mut().insert(header::RETRY_AFTER, v);
        }
        if self.status == StatusCode::UNAUTHORIZED {
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"gatepulse\""),
            );
        }
        resp
    }
}

impl ApiError {
    /// The overload answer: `api.overload_status` (429 or 503) with `Retry-After`.
    pub fn overloaded(reason: crate::ingest::Overload, status: u16, retry_after: u64) -> Self {
        use crate::ingest::Overload;
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::TOO_MANY_REQUESTS);
        let (code, detail) = match reason {
            Overload::Inflight => (
                "overloaded",
                "too many publish requests are being processed; retry after the delay",
            ),
            Overload::QueueFull => (
                "queue_full",
                "this tenant's delivery queue is at its limit (api.max_queue_depth_per_tenant); \
                 nothing was stored; retry after the delay",
            ),
        };
        let mut e = Self::new(status, code, detail);
        e.retry_after = Some(retry_after);
        e
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(what) => Self::not_found(what),
            StoreError::MissingReference(what) => {
                Self::invalid_field(&format!("{what}_id"), format!("{what} does not exist"))
                    .with_code("unknown_reference")
            }
            StoreError::AlreadyExists(what) => {
                Self::conflict("already_exists", format!("{what} already exists"))
            }
            StoreError::LimitReached { what, limit } => Self::conflict(
                "limit_reached",
                format!("at most {limit} {what} per tenant (configurable)"),
            ),
            StoreError::ReadOnly(reason) => Self::unavailable("store_read_only", reason, 60),
            StoreError::Closed => {
                Self::unavailable("shutting_down", "the server is shutting down", 5)
            }
            StoreError::Unsupported(what) => {
                Self::new(StatusCode::NOT_IMPLEMENTED, "not_supported", what)
            }
            StoreError::Failed(reason) => {
                tracing::error!(reason = %reason, "store failed");
                Self::unavailable(
                    "store_failed",
                    "the store can no longer write; the server must be restarted (see its log)",
                    5,
                )
            }
            other => {
                tracing::error!(error = %other, "store error");
                Self::unavailable(
                    "store_unavailable",
                    "the store could not complete the operation; nothing was changed",
                    1,
                )
            }
        }
    }
}

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> Self {
        let detail = e.to_string();
        match e {
            AuthError::MissingToken => Self::new(StatusCode::UNAUTHORIZED, "missing_token", detail),
            AuthError::InvalidToken => Self::new(StatusCode::UNAUTHORIZED, "invalid_token", detail),
            AuthError::KeyExpired => Self::new(StatusCode::UNAUTHORIZED, "key_expired", detail),
            AuthError::MissingScope(scope) => {
                Self::new(StatusCode::FORBIDDEN, "missing_scope", detail)
                    .with("scope", scope.as_str())
            }
            AuthError::AdminOnly => Self::new(StatusCode::FORBIDDEN, "admin_only", detail),
            AuthError::TenantRequired => Self::bad_request("tenant_required", detail),
            AuthError::UnknownTenant => Self::new(StatusCode::NOT_FOUND, "unknown_tenant", detail),
            AuthError::Store(s) => s.into(),
        }
    }
}

/// A stored secret that cannot be sealed or opened: the key setup is wrong or the
/// record was tampered with. Logged (never the value); the client sees a 500.
impl From<crate::crypto::CryptoError> for ApiError {
    fn from(e: crate::crypto::CryptoError) -> Self {
        tracing::error!(error = %e, "stored secret cannot be sealed or opened");
        Self::internal()
    }
}

impl From<PublishError> for ApiError {
    fn from(e: PublishError) -> Self {
        let detail = e.to_string();
        match e {
            PublishError::Topic(_) => {
                Self::invalid_field("topic", detail).with_code("invalid_topic")
            }
            PublishError::ReservedTopic(_) => {
                Self::invalid_field("topic", detail).with_code("reserved_topic")
            }
            PublishError::PayloadTooLarge { .. } => {
                Self::new(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", detail)
            }
            PublishError::PayloadNotObject => {
                Self::invalid_field("payload", detail).with_code("invalid_payload")
            }
            PublishError::BadIdempotencyKey(_) => {
                Self::invalid_field("idempotency_key", detail).with_code("invalid_idempotency_key")
            }
        }
    }
}

impl ApiError {
    fn with_code(mut self, code: &'static str) -> Self {
        self.code = code;
        self
    }
}

impl From<crate::pipeline::SpecError> for ApiError {
    fn from(e: crate::pipeline::SpecError) -> Self {
        use crate::pipeline::SpecError;
        let detail = e.to_string();
        match e {
            SpecError::Shape(_) => {
                Self::bad_request("invalid_transform", detail).with("field", "transform")
            }
            SpecError::Mapping(m) => {
                let mut err = Self::bad_request(m.code(), detail)
                    .with("field", format!("transform/mapping{}", m.pointer()));
                if let Some(op) = m.op_index() {
                    err = err.with("op", op);
                }
                if let Some(pos) = m.position() {
                    err = err.with(
                        "position",
                        serde_json::json!({"line": pos.line, "column": pos.column, "offset": pos.offset}),
                    );
                }
                err
            }
            SpecError::UnknownPlugin { index, .. } => {
                Self::invalid_field(&format!("transform/plugins/{index}"), detail)
                    .with_code("unknown_plugin")
            }
            SpecError::PluginLoad { index, .. } => {
                Self::invalid_field(&format!("transform/plugins/{index}"), detail)
                    .with_code("plugin_unusable")
            }
            SpecError::Store(s) => s.into(),
        }
    }
}
