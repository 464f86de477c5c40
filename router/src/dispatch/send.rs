//! The send path of one delivery: claim (the endpoint's settings and a lease on its
//! due deliveries), transform, sign, send (or capture, for inboxes), and record the
//! outcome under the lease token; plus auto-disabling an endpoint.

use std::sync::Arc;
use std::time::Instant;

use reqwest::header::{HeaderMap, HeaderName, HeaderValue};

use super::lane::Target;

use super::retry::{self, AttemptResult, Verdict};
use super::{Ctx, LEASE_MARGIN_MS};
use crate::clock::now_ms;
use crate::ids::{AttemptId, EndpointId, TenantId};
use crate::pipeline::{Lookup, OnError, SpecError, StageFailure, Transformed};
use crate::store::{
    Attempt, Claim, Claimed, Endpoint, EndpointKind, NextState, Outcome, RECORD_VERSION,
    SentRequest, StoreError,
};
use crate::telemetry;

/// What a send task tells the engine: twice per delivery, in this order.
#[derive(Debug)]
pub(super) enum Report {
    /// The attempt ended (the endpoint answered, failed to, or nothing was sent): its
    /// request slot is free. The outcome is being recorded.
    Answered(Done),
    /// The outcome was written, or writing it failed (the lease then returns the
    /// delivery to the queue).
    Recorded(Recorded),
}

/// The end of an attempt, as the endpoint's lane and health see it.
#[derive(Debug)]
pub(super) struct Done {
    pub(super) tenant: TenantId,
    pub(super) endpoint: EndpointId,
    /// `None` when nothing was attempted (the task was cut short).
    pub(super) success: Option<bool>,
    pub(super) status: Option<u16>,
    pub(super) error: Option<String>,
    pub(super) at: i64,
    pub(super) disable: Option<String>,
}

/// A delivery's outcome is settled in the store (or could not be).
#[derive(Debug)]
pub(super) struct Recorded {
    pub(super) tenant: TenantId,
    pub(super) endpoint: EndpointId,
    /// The delivery was rescheduled for this time (Unix ms): the lane must wake then.
    pub(super) retry_at: Option<i64>,
}

/// The result of one claim task.
pub(super) struct ClaimResult {
    pub(super) tenant: TenantId,
    pub(super) endpoint: EndpointId,
    pub(super) target: Option<Arc<Target>>,
    /// Target was (re)loaded by this claim.
    pub(super) reloaded: bool,
    pub(super) claimed: Vec<Claimed>,
    pub(super) limit: usize,
    pub(super) next_due: Option<i64>,
    pub(super) error: Option<String>,
}

/// Loads the endpoint (when not cached) and leases its due deliveries: at most
/// `limit`, and never more than the endpoint's `max_in_flight` leaves beside the
/// `in_flight` requests its lane has (the engine could only guess the limit when it
/// did not have the endpoint's settings yet).
#[allow(clippy::too_many_arguments)]
pub(super) async fn claim(
    ctx: Arc<Ctx>,
    tenant: TenantId,
    endpoint: EndpointId,
    cached: Option<Arc<Target>>,
    limit: usize,
    in_flight: u32,
    now: i64,
    fence: Option<u64>,
) -> ClaimResult {
    let mut result = ClaimResult {
        tenant: tenant.clone(),
        endpoint: endpoint.clone(),
        target: cached.clone(),
        reloaded: cached.is_none(),
        claimed: Vec::new(),
        limit,
        next_due: None,
        error: None,
    };
    if cached.is_none() {
        match ctx.store.get_endpoint(&tenant, &endpoint).await {
            Ok(Some(ep)) => result.target = Some(Arc::new(Target::build(ep, &ctx, now))),
            // Deleted: its remaining deliveries are claimed and cancelled.
            Ok(None) => result.target = None,
            Err(e) => {
                result.error = Some(e.to_string());
                return result;
            }
        }
    }
    if result.target.as_ref().is_some_and(|rt| !rt.sends()) {
        return result;
    }
    if let Some(rt) = &result.target {
        result.limit = limit.min(rt.max_in_flight.saturating_sub(in_flight) as usize);
    }
    let limit = result.limit;
    if limit == 0 {
        return result;
    }
    let timeout_ms = result
        .target
        .as_ref()
        .map_or(ctx.settings.default_timeout, |rt| rt.timeout)
        .as_millis() as i64;
    let claim = Claim {
        node: ctx.leadership.node().to_owned(),
        tenant,
        endpoint: endpoint.clone(),
        now,
        lease_until: now + timeout_ms + LEASE_MARGIN_MS,
        limit,
        fence,
    };
    let started = Instant::now();
    match ctx.store.claim_due(claim).await {
        Ok(claimed) => {
            telemetry::record_claim(claimed.len(), started.elapsed());
            result.claimed = claimed;
        }
        Err(e) => {
            result.error = Some(e.to_string());
            return result;
        }
    }
    if result.claimed.len() < limit {
        match ctx.store.next_due(&endpoint).await {
            Ok(next) => result.next_due = next,
            Err(e) => tracing::warn!(error = %e, "next_due failed"),
        }
    }
    result
}

/// Moves every queued delivery due before `cutoff` to the DLQ without sending it
/// (`parked_too_long` on its attempt): its endpoint is disabled, or its circuit stayed
/// open, for longer than `delivery.parked_max_age_secs`. Such deliveries would
/// otherwise count against the tenant's queue and hold their events against
/// retention forever. Uses the ordinary lease and outcome, so the DLQ, the stream
/// and the counters see an ordinary death. Returns how many moved.
pub(super) async fn expire_parked(ctx: &Ctx, cutoff: i64) -> Result<usize, StoreError> {
    const BATCH: usize = 128;
    let mut moved = 0;
    for (tenant, endpoint) in ctx.store.queued_endpoints().await? {
        if ctx
            .store
            .next_due(&endpoint)
            .await?
            .is_none_or(|due| due > cutoff)
        {
            continue;
        }
        loop {
            // Leader's work: it stops the moment this node may no longer act.
            let Some(term) = ctx.leadership.acting() else {
                return Ok(moved);
            };
            let now = now_ms();
            let claimed = ctx
                .store
                .claim_due(Claim {
                    node: ctx.leadership.node().to_owned(),
                    fence: Some(term),
                    tenant: tenant.clone(),
                    endpoint: endpoint.clone(),
                    // Only what was due before the cutoff.
                    now: cutoff,
                    lease_until: now + LEASE_MARGIN_MS,
                    limit: BATCH,
                })
                .await?;
            let n = claimed.len();
            for Claimed { delivery, .. } in claimed {
                let number = delivery.attempts + 1;
                let attempt = Attempt {
                    record_version: RECORD_VERSION,
                    id: AttemptId::generate(now),
                    delivery_id: delivery.id.clone(),
                    tenant_id: tenant.clone(),
                    number,
                    started_at: now,
                    status_code: None,
                    latency_ms: 0,
                    response_excerpt: Some(format!(
                        "not sent: it waited more than delivery.parked_max_age_secs ({} s) \
                         after it was due (endpoint disabled or failing); requeue it from \
                         the DLQ once the endpoint is back",
                        ctx.settings.parked_max_age_ms / 1000
                    )),
                    error_kind: Some("parked_too_long".into()),
                    sent: None,
                };
                let outcome = Outcome {
                    tenant: tenant.clone(),
                    delivery: delivery.id.clone(),
                    lease_token: delivery.lease_token,
                    attempt,
                    next: NextState::Dead,
                    body: None,
                };
                if ctx.store.record_outcome(outcome).await? {
                    moved += 1;
                }
            }
            if n < BATCH {
                break;
            }
        }
    }
    Ok(moved)
}

/// Writes an attempt's outcome, trying again a few times over about five seconds when
/// the database connection failed (a restart, a failover): a delivery that was sent
/// is then settled instead of waiting for its lease to end and being sent again.
/// Only over a network: the embedded store's failures are not transient (and its
/// outcomes are not copied for a retry).
async fn record_outcome(ctx: &Ctx, outcome: Outcome) -> Result<bool, StoreError> {
    const BACKOFF_MS: [u64; 4] = [100, 400, 1_500, 3_000];
    if !ctx.settings.remote_store {
        return ctx.store.record_outcome(outcome).await;
    }
    let mut waits = BACKOFF_MS.iter();
    loop {
        match ctx.store.record_outcome(outcome.clone()).await {
            Err(StoreError::Backend(e)) => match waits.next() {
                Some(ms) => {
                    tracing::debug!(error = %e, "recording an outcome failed; trying again");
                    tokio::time::sleep(std::time::Duration::from_millis(*ms)).await;
                }
                None => return Err(StoreError::Backend(e)),
            },
            other => return other,
        }
    }
}

/// Reports to the engine, at the latest when dropped, so neither the request slot
/// nor the delivery's place among the unsettled ones is ever leaked (a send task
/// that panics or is cut short still reports both).
struct SlotGuard {
    ctx: Arc<Ctx>,
    done: Option<Done>,
    recorded: Option<Recorded>,
}

impl SlotGuard {
    /// Frees the request slot with what the attempt did.
    fn answered(&mut self) {
        if let Some(done) = self.done.take() {
            let _ = self.ctx.done.send(Report::Answered(done));
        }
    }
}

impl Drop for SlotGuard {
    fn drop(&mut self) {
        self.answered();
        if let Some(recorded) = self.recorded.take() {
            let _ = self.ctx.done.send(Report::Recorded(recorded));
        }
    }
}

/// What one attempt produced.
pub(super) struct Response {
    pub(super) result: AttemptResult,
    pub(super) status: Option<u16>,
    pub(super) excerpt: Option<String>,
    pub(super) error_kind: Option<String>,
    /// The request reached (or was meant for) the endpoint: its answer, or its
    /// failure to answer, is the endpoint's doing.
    pub(super) sent: bool,
    /// What the request carried that the delivery alone does not tell (kept with the
    /// attempt); `None` when nothing was built.
    pub(super) request: Option<SentRequest>,
}

impl Response {
    /// An attempt that ended before anything was sent.
    fn without_sending(result: AttemptResult, kind: &str, detail: String) -> Self {
        Self {
            result,
            status: None,
            excerpt: Some(detail),
            error_kind: Some(kind.to_owned()),
            sent: false,
            request: None,
        }
    }
}

/// What a delivery's transform decided.
pub(super) enum Prepared {
    /// Send this body; `keep` is the transformed text to store for the retries.
    Send {
        body: bytes::Bytes,
        keep: Option<String>,
    },
    /// A plugin dropped the delivery.
    Dropped,
    /// The delivery must never be sent (its subscription is gone: sending the payload
    /// without the transform it was created under would bypass a privacy control).
    Cancelled { kind: &'static str, detail: String },
    /// The subscription could not be loaded now (a store failure): retry later.
    Unavailable(String),
    /// A stage failed and the subscription fails closed (the delivery goes to the DLQ
    /// with the error).
    Failed(StageFailure),
}

pub(super) async fn send(
    ctx: Arc<Ctx>,
    target: Option<Arc<Target>>,
    tenant: TenantId,
    claimed: Claimed,
) {
    let Claimed { delivery, event } = claimed;
    let mut guard = SlotGuard {
        ctx: ctx.clone(),
        done: Some(Done {
            tenant: tenant.clone(),
            endpoint: delivery.endpoint_id.clone(),
            success: None,
            status: None,
            error: None,
            at: now_ms(),
            disable: None,
        }),
        recorded: Some(Recorded {
            tenant: tenant.clone(),
            endpoint: delivery.endpoint_id.clone(),
            retry_at: None,
        }),
    };
    let number = delivery.attempts + 1;
    let started_at = now_ms();
    let started = Instant::now();
    // A transformed body to keep for retries.
    let mut keep: Option<String> = None;
    let response = match &target {
        None => Response::without_sending(
            AttemptResult::Cancelled,
            "endpoint_deleted",
            "the endpoint was deleted; nothing was sent".into(),
        ),
        Some(t) => match prepare(&ctx, &tenant, &delivery, &event).await {
            Prepared::Send { body, keep: k } => {
                keep = k;
                let mut span = ctx.tracer.start_span(
                    "POST",
                    crate::otel::SpanKind::Client,
                    event.traceparent.as_deref(),
                );
                let trace = span.as_ref().map(|s| *s.context());
                let response = attempt(&ctx, t, &delivery, &event, number, body, trace).await;
                if let Some(span) = span.take() {
                    end_attempt_span(span, t, &tenant, &delivery, &event, number, &response);
                }
                response
            }
            Prepared::Dropped => Response::without_sending(
                AttemptResult::Skipped,
                "dropped_by_plugin",
                "dropped by a plugin; nothing was sent".into(),
            ),
            Prepared::Cancelled { kind, detail } => {
                Response::without_sending(AttemptResult::Cancelled, kind, detail)
            }
            Prepared::Unavailable(detail) => Response::without_sending(
                AttemptResult::Unavailable,
                "transform_unavailable",
                detail,
            ),
            Prepared::Failed(failure) => {
                Response::without_sending(AttemptResult::Refused, failure.kind, failure.detail)
            }
        },
    };
    let elapsed = started.elapsed();
    let verdict = retry::classify(&response.result);
    let policy = target
        .as_ref()
        .map_or(&ctx.settings.default_policy, |rt| &rt.policy);
    let finished = now_ms();
    let next = policy.next(number, &verdict, finished, rand::random::<f64>());
    let outcome_label = match next {
        NextState::Succeeded => "success",
        NextState::Retry { .. } => "retry",
        NextState::Dead => "dead",
        NextState::Cancelled => "cancelled",
    };
    telemetry::record_attempt(outcome_label, elapsed);
    if next == NextState::Succeeded {
        telemetry::record_delivery_latency((finished - event.created_at) as f64 / 1000.0);
    }
    let attempt = Attempt {
        record_version: RECORD_VERSION,
        id: AttemptId::generate(started_at),
        delivery_id: delivery.id.clone(),
        tenant_id: tenant.clone(),
        number,
        started_at,
        status_code: response.status,
        latency_ms: elapsed.as_millis() as u64,
        response_excerpt: response.excerpt,
        error_kind: response.error_kind.clone(),
        sent: response.request,
    };
    let outcome = Outcome {
        tenant: tenant.clone(),
        delivery: delivery.id.clone(),
        lease_token: delivery.lease_token,
        attempt,
        next,
        body: keep,
    };
    if let Some(done) = guard.done.as_mut() {
        // Only what the endpoint did moves its circuit breaker and health: a transform
        // that failed or a cancelled delivery says nothing about the receiver.
        done.success = response.sent.then_some(verdict == Verdict::Success);
        done.status = response.status;
        done.error = response.error_kind;
        done.at = finished;
        if let Verdict::GiveUp {
            disable_endpoint: true,
        } = verdict
        {
            done.disable = Some("the endpoint answered 410 Gone".into());
        }
    }
    // The endpoint's part is over: its slot goes to the next request while the
    // outcome waits for its commit (`max_in_flight` bounds requests to the endpoint,
    // not the store's latency; the lease still covers the delivery until then).
    guard.answered();
    match record_outcome(&ctx, outcome).await {
        Ok(true) => {
            if let (NextState::Retry { at }, Some(recorded)) = (next, guard.recorded.as_mut()) {
                recorded.retry_at = Some(at);
            }
        }
        Ok(false) => {
            tracing::warn!(tenant_id = %tenant, delivery_id = %delivery.id, "lease lost before the outcome was recorded")
        }
        Err(e) => {
            tracing::error!(tenant_id = %tenant, delivery_id = %delivery.id, error = %e, "recording outcome failed; the lease will return it to the queue")
        }
    }
}

/// The body to send: the payload through the subscription's transform pipeline, with
/// the transformed text when a new one was computed (kept for the retries). A retry
/// sends the body its first attempt computed. A delivery whose subscription is gone
/// is cancelled, never sent untransformed.
pub(super) async fn prepare(
    ctx: &Ctx,
    tenant: &TenantId,
    delivery: &crate::store::Delivery,
    event: &crate::store::Event,
) -> Prepared {
    if let Some(kept) = &delivery.body {
        return Prepared::Send {
            body: bytes::Bytes::copy_from_slice(kept.as_bytes()),
            keep: None,
        };
    }
    let original = || Prepared::Send {
        body: bytes::Bytes::copy_from_slice(event.payload.get().as_bytes()),
        keep: None,
    };
    let pipeline = match ctx
        .pipelines
        .for_subscription(tenant, &delivery.subscription_id)
        .await
    {
        Ok(Lookup::Plain) => return original(),
        Ok(Lookup::Transform(p)) => p,
        Ok(Lookup::Deleted) => {
            return Prepared::Cancelled {
                kind: "subscription_deleted",
                detail: "the subscription was deleted before this delivery was sent; \
                         nothing was sent"
                    .into(),
            };
        }
        Err(SpecError::Store(e)) => return Prepared::Unavailable(e.to_string()),
        Err(e) => {
            return Prepared::Failed(StageFailure {
                stage: "transform".into(),
                kind: "transform_unavailable",
                detail: e.to_string(),
            });
        }
    };
    match ctx.pipelines.run(&pipeline, event, None).await {
        Ok(Transformed::Body(b)) => match String::from_utf8(b) {
            Ok(text) => Prepared::Send {
                body: bytes::Bytes::copy_from_slice(text.as_bytes()),
                keep: Some(text),
            },
            Err(e) => Prepared::Failed(StageFailure {
                stage: "transform".into(),
                kind: "transform_not_utf8",
                detail: format!("the transformed body is not UTF-8: {e}"),
            }),
        },
        Ok(Transformed::Dropped { .. }) => Prepared::Dropped,
        Err(failure) if pipeline.on_error == OnError::DeliverOriginal => {
            tracing::warn!(tenant_id = %tenant, delivery_id = %delivery.id, stage = %failure.stage,
                error = %failure.detail, "transform failed; delivering the original payload (on_error = deliver_original)");
            original()
        }
        Err(failure) => Prepared::Failed(failure),
    }
}

/// Ends an attempt's span with what the attempt did (never the URL: it may hold a
/// token; only its host).
fn end_attempt_span(
    mut span: crate::otel::Span,
    rt: &Target,
    tenant: &TenantId,
    delivery: &crate::store::Delivery,
    event: &crate::store::Event,
    number: u32,
    response: &Response,
) {
    span.set("gatepulse.tenant_id", tenant.as_str());
    span.set("gatepulse.event_id", event.id.as_str());
    span.set("gatepulse.delivery_id", delivery.id.as_str());
    span.set("gatepulse.endpoint_id", delivery.endpoint_id.as_str());
    span.set("gatepulse.topic", event.topic.as_str());
    span.set("gatepulse.attempt", number);
    span.set("http.request.method", "POST");
    if let Ok(url) = &rt.url
        && let Some(host) = url.host_str()
    {
        span.set("server.address", host);
    }
    if let Some(code) = response.status {
        span.set("http.response.status_code", code);
    }
    if let Some(kind) = &response.error_kind {
        span.set("error.type", kind.as_str());
        span.fail(kind.as_str());
    }
    span.end();
}

/// Sends one attempt over HTTP (or hands it to the inbox). `trace` is the attempt
/// span's context, sent as `traceparent` (tracing on).
pub(super) async fn attempt(
    ctx: &Ctx,
    rt: &Target,
    delivery: &crate::store::Delivery,
    event: &crate::store::Event,
    number: u32,
    body: bytes::Bytes,
    trace: Option<crate::otel::SpanContext>,
) -> Response {
    // The endpoint's own settings forbid sending: that counts against it.
    let refused = |kind: &str, detail: String| Response {
        sent: true,
        ..Response::without_sending(AttemptResult::Refused, kind, detail)
    };
    let inbox = rt.endpoint.kind == EndpointKind::Inbox;
    let url = match (&rt.url, inbox) {
        (_, true) => None,
        (Ok(u), false) => Some(u.clone()),
        (Err(e), false) => return refused("destination_forbidden", e.clone()),
    };
    let signer = match &rt.signer {
        Ok(s) => s,
        Err(e) => return refused("signing_failed", e.clone()),
    };
    let timestamp = now_ms() / 1000;
    let mut headers = rt.headers.clone();
    let mut put = |name: &'static str, value: &str| {
        if let Ok(v) = HeaderValue::from_str(value) {
            headers.insert(HeaderName::from_static(name), v);
        }
    };
    put("content-type", "application/json");
    put("webhook-id", delivery.id.as_str());
    put("webhook-timestamp", &timestamp.to_string());
    put(
        "webhook-signature",
        &signer.sign(delivery.id.as_str(), timestamp, &body),
    );
    put("gatepulse-event-id", event.id.as_str());
    put("gatepulse-topic", &event.topic);
    put("gatepulse-attempt", &number.to_string());
    if let Some(trace) = trace {
        put("traceparent", &trace.traceparent());
    }
    let request = SentRequest {
        timestamp,
        signature: headers
            .get("webhook-signature")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned(),
        custom_headers: rt.headers.keys().map(|k| k.as_str().to_owned()).collect(),
    };
    let mut response = transmit(ctx, rt, delivery, event, url, headers, body).await;
    response.request = Some(request);
    response
}

/// Sends the built request (or hands it to the inbox) and reads the answer.
async fn transmit(
    ctx: &Ctx,
    rt: &Target,
    delivery: &crate::store::Delivery,
    event: &crate::store::Event,
    url: Option<reqwest::Url>,
    headers: HeaderMap,
    body: bytes::Bytes,
) -> Response {
    let Some(url) = url else {
        return capture(ctx, delivery, event, &headers, &rt.headers, &body).await;
    };
    let sent = ctx
        .client
        .post(url)
        .headers(headers)
        .body(body)
        .timeout(rt.timeout)
        .send()
        .await;
    let mut resp = match sent {
        Ok(r) => r,
        Err(e) => {
            let kind = if e.is_timeout() {
                "timeout"
            } else if e.is_connect() {
                "connect"
            } else {
                "transport"
            };
            return Response {
                result: AttemptResult::Transport,
                status: None,
                // Endpoint URLs carry tokens (Slack, Teams): never store them.
                excerpt: Some(strip_urls(&error_chain(&e.without_url()))),
                error_kind: Some(kind.into()),
                sent: true,
                request: None,
            };
        }
    };
    let code = resp.status().as_u16();
    let retry_after = resp
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| retry::parse_retry_after(v, now_ms()));
    // Keep a bounded excerpt; never read an unbounded body.
    let mut excerpt = Vec::new();
    let limit = ctx.settings.excerpt_bytes;
    let mut read_error = None;
    while excerpt.len() < limit {
        match resp.chunk().await {
            Ok(Some(chunk)) => {
                let take = chunk.len().min(limit - excerpt.len());
                excerpt.extend_from_slice(&chunk[..take]);
            }
            Ok(None) => break,
            Err(e) => {
                read_error = Some(e);
                break;
            }
        }
    }
    let error_kind = match (&read_error, code) {
        (Some(e), _) if e.is_timeout() => Some("timeout_reading_body".to_owned()),
        (_, 200..=299) => None,
        _ => Some(format!("http_{code}")),
    };
    Response {
        result: AttemptResult::Status { code, retry_after },
        status: Some(code),
        excerpt: (!excerpt.is_empty()).then(|| String::from_utf8_lossy(&excerpt).into_owned()),
        error_kind,
        sent: true,
        request: None,
    }
}

/// What an inbox capture shows instead of a custom header's value.
pub const REDACTED: &str = "[redacted]";

/// An inbox endpoint keeps the request it would have sent, except the values of the
/// endpoint's custom headers: those are secrets sealed at rest, so the capture shows
/// [`REDACTED`] in their place.
pub(super) async fn capture(
    ctx: &Ctx,
    delivery: &crate::store::Delivery,
    event: &crate::store::Event,
    headers: &HeaderMap,
    custom: &HeaderMap,
    body: &[u8],
) -> Response {
    let now = now_ms();
    let message = crate::store::InboxMessage {
        record_version: RECORD_VERSION,
        id: AttemptId::generate(now),
        tenant_id: delivery.tenant_id.clone(),
        endpoint_id: delivery.endpoint_id.clone(),
        delivery_id: delivery.id.clone(),
        event_id: event.id.clone(),
        topic: event.topic.clone(),
        received_at: now,
        headers: headers
            .iter()
            .map(|(k, v)| {
                let value = if custom.contains_key(k) {
                    REDACTED
                } else {
                    v.to_str().unwrap_or("")
                };
                (k.as_str().to_owned(), value.to_owned())
            })
            .collect(),
        body: String::from_utf8_lossy(body).into_owned(),
    };
    match ctx.store.capture_inbox(message).await {
        Ok(()) => Response {
            result: AttemptResult::Status {
                code: 200,
                retry_after: None,
            },
            status: None,
            excerpt: Some("captured by the inbox".into()),
            error_kind: None,
            sent: true,
            request: None,
        },
        Err(e) => Response::without_sending(
            AttemptResult::Unavailable,
            "inbox_store_failed",
            e.to_string(),
        ),
    }
}

pub(super) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(inner) = source {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        source = inner.source();
    }
    s
}

/// Replaces every `scheme://…` run in `text` with `<url>`: an error message may quote
/// the URL it failed on, and endpoint URLs often carry credentials in their path or
/// query (Slack, Teams, signed URLs). Attempts are readable with `events:read`.
pub(super) fn strip_urls(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("://") {
        // The scheme: the letters, digits, `+`, `-` and `.` right before `://`.
        let head = &rest[..at];
        let scheme_len = head
            .bytes()
            .rev()
            .take_while(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'))
            .count();
        let start = at - scheme_len;
        out.push_str(&rest[..start]);
        let tail = &rest[at + 3..];
        let end = tail
            .find(|c: char| c.is_whitespace() || matches!(c, ')' | '"' | '\'' | '>' | ']'))
            .unwrap_or(tail.len());
        if scheme_len > 0 {
            out.push_str("<url>");
        } else {
            out.push_str("://");
            out.push_str(&tail[..end]);
        }
        rest = &tail[end..];
    }
    out.push_str(rest);
    out
}

pub(super) async fn disable_endpoint(
    ctx: Arc<Ctx>,
    tenant: TenantId,
    endpoint: EndpointId,
    reason: String,
) {
    let now = now_ms();
    let why = reason.clone();
    // GatePulse itself changed the endpoint: the audit log says so, with the reason.
    let intent = crate::audit::Intent {
        tenant: Some(tenant.clone()),
        action: "endpoint.auto_disable",
        resource: crate::audit::AuditResource::new("endpoint", &endpoint),
        details: serde_json::json!({"reason": reason}),
    };
    let update = ctx.store.update_endpoint(
        &tenant,
        &endpoint,
        Box::new(move |e: &mut Endpoint| {
            e.enabled = false;
            e.disabled_reason = Some(why);
            e.updated_at = now;
        }),
    );
    let result = crate::audit::as_system(intent, update).await;
    match result {
        Ok(_) => {
            telemetry::record_auto_disable();
            tracing::warn!(tenant_id = %tenant, endpoint_id = %endpoint, reason = %reason, "endpoint disabled");
        }
        Err(e) => {
            tracing::error!(tenant_id = %tenant, endpoint_id = %endpoint, error = %e, "disabling endpoint failed")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_stripped_from_error_text() {
        for (text, want) in [
            (
                "error sending request for url (https://hooks.slack.com/services/T0/B0/XYZ)",
                "error sending request for url (<url>)",
            ),
            (
                "connect to http://10.0.0.1:8080/x?token=abc failed: refused",
                "connect to <url> failed: refused",
            ),
            ("no url here: just a message", "no url here: just a message"),
            ("odd ://thing stays", "odd ://thing stays"),
            (
                "two: a+b://x/y and HTTPS://Z.example/q\"",
                "two: <url> and <url>\"",
            ),
        ] {
            assert_eq!(strip_urls(text), want, "{text}");
        }
    }
}
