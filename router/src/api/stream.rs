//! `GET /v1/stream`: the tenant stream over SSE (the session logic is in
//! [`crate::stream::session`]; this file is only HTTP).

use std::convert::Infallible;

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use axum::routing::get;
use bytes::Bytes;
use futures_util::StreamExt;
use serde::Deserialize;
use tokio::sync::mpsc;
use utoipa::IntoParams;

use super::AppState;
use super::error::{ApiError, Problem};
use super::extract::ApiQuery;
use crate::auth::{Principal, Scope};
use crate::ingest::topic::TopicPattern;
use crate::stream::session::{self, Request};

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct StreamParams {
    /// Topic pattern (`*` one segment, `#` the rest); `deliveries.status` for attempt
    /// outcomes. Default: everything.
    pub topic: Option<String>,
    /// Resume after this cursor. `Last-Event-ID` wins over it. Without either, the
    /// stream is live only.
    pub from_cursor: Option<u64>,
}

/// The tenant's events and delivery statuses as Server-Sent Events: `id:` is the
/// stream cursor, `event:` the topic, `data:` the item as JSON. Resumes after
/// `Last-Event-ID` (or `from_cursor`) with history within the backfill limits; a
/// cursor out of reach gets a `gatepulse.reset` frame first.
#[utoipa::path(get, path = "/v1/stream", tag = "events",
    params(StreamParams, ("Last-Event-ID" = Option<String>, Header, description = "Resume after this cursor")),
    responses(
        (status = 200, description = "text/event-stream", content_type = "text/event-stream", body = String),
        (status = "4XX", body = Problem),
        (status = 503, description = "too many stream connections", body = Problem)),
    security(("bearer" = ["events:read"])))]
pub async fn stream(
    State(state): State<AppState>,
    principal: Principal,
    headers: HeaderMap,
    ApiQuery(params): ApiQuery<StreamParams>,
) -> Result<Response, ApiError> {
    let tenant = principal.tenant_for(Scope::EventsRead)?.clone();
    // Audit records go only to whoever may read the audit log; asking for them alone
    // without that scope is refused rather than answered with a silent stream.
    let audit = principal.tenant_for(Scope::AuditRead).is_ok();
    if !audit && params.topic.as_deref() == Some(crate::stream::AUDIT_TOPIC) {
        principal.tenant_for(Scope::AuditRead)?;
    }
    let topic = match params.topic.as_deref() {
        None | Some("#") => None,
        Some(p) => Some(
            TopicPattern::parse(p, state.config.api.max_topic_bytes)
                .map_err(|e| ApiError::invalid_field("topic", e.to_string()))?,
        ),
    };
    let last_event_id = match headers.get("last-event-id") {
        None => None,
        Some(v) => {
            let text = v.to_str().unwrap_or_default().trim();
            if text.is_empty() {
                None
            } else {
                Some(text.parse::<u64>().map_err(|_| {
                    ApiError::bad_request(
                        "invalid_last_event_id",
                        "Last-Event-ID must be a stream cursor (a non-negative integer)",
                    )
                })?)
            }
        }
    };
    let streams = state.streams.clone();
    let slot = streams.admit(&tenant).map_err(|refused| {
        let detail = match refused {
            session::Refused::Server => format!(
                "this server serves at most {} stream connections (stream.max_clients)",
                streams.config.max_clients
            ),
            session::Refused::Tenant => format!(
                "this tenant has {} stream connections open, its limit \
                 (stream.max_clients_per_tenant)",
                streams.config.max_clients_per_tenant
            ),
        };
        ApiError::unavailable("too_many_streams", detail, 5)
    })?;
    let key = match &principal {
        Principal::Key { id, expires_at, .. } => Some(session::StreamKey {
            id: id.clone(),
            expires_at: *expires_at,
        }),
        Principal::Admin { .. } => None,
    };
    let req = Request {
        tenant,
        topic,
        after: last_event_id.or(params.from_cursor),
        key,
        audit,
    };
    let opened = session::open(&streams, state.store.as_ref(), &req.tenant).await?;
    let (tx, rx) = mpsc::channel::<Bytes>(session::QUEUE_CHUNKS);
    let trailer = session::Trailer::default();
    let last = trailer.clone();
    tokio::spawn(session::run(
        streams,
        state.store.clone(),
        req,
        opened,
        tx,
        trailer,
        slot,
    ));
    let writes = Writes {
        rx,
        trailer: last,
        done: false,
    };
    let body = futures_util::stream::unfold(writes, Writes::next).map(Ok::<_, Infallible>);
    let mut resp = Response::new(Body::from_stream(body));
    *resp.status_mut() = StatusCode::OK;
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert("x-accel-buffering", HeaderValue::from_static("no"));
    Ok(resp)
}

/// The connection's writes: the chunks the session queues (for a busy stream one per
/// `stream.min_write_interval_ms`, gathered by the hub, so a busy connection makes
/// one write per interval instead of one per frame), then the trailer once the
/// session has ended.
struct Writes {
    rx: mpsc::Receiver<Bytes>,
    trailer: session::Trailer,
    done: bool,
}

impl Writes {
    async fn next(mut self) -> Option<(Bytes, Self)> {
        if self.done {
            return None;
        }
        match self.rx.recv().await {
            Some(chunk) => Some((chunk, self)),
            None => {
                self.done = true;
                let trailer = self.trailer.lock().ok().and_then(|mut t| t.take())?;
                Some((trailer, self))
            }
        }
    }
}

pub fn router() -> Router<AppState> {
    Router::new().route("/v1/stream", get(stream))
}
