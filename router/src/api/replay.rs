//! Replay: deliver stored events again, as new deliveries (SPEC CORE-5).
//!
//! A replay re-matches each selected event against the tenant's current subscriptions
//! (topic patterns and filters), optionally narrowed to one endpoint or subscription,
//! and creates one new delivery per match with a new `webhook-id`. The replay itself
//! is recorded.
//!
//! Bounded: a range selects at most `api.max_replay_events` events (counted first,
//! nothing written when over), which are then read a page at a time and their
//! deliveries written in batches of [`DELIVERY_BATCH`], each its own transaction. The
//! tenant's queue limit holds: a batch writes only what fits, the replay stops there
//! and says so (`complete: false`, `stopped: "queue_full"`, and where to
//! continue in `resume_from`), or is refused with `429 queue_full` when nothing fit.

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::AppState;
use super::error::{ApiError, Problem};
use super::extract::ApiJson;
use crate::audit;
use crate::auth::{Principal, Scope};
use crate::clock::{now_ms, parse_rfc3339, rfc3339};
use crate::ids::{EndpointId, EventId, ReplayId, SubscriptionId, TenantId};
use crate::ingest::topic::TopicPattern;
use crate::store::{Event, EventQuery, PageRequest, RECORD_VERSION, Replay, ReplayDelivery};

/// Events read from the store per step.
const EVENT_PAGE: usize = 500;
/// Deliveries written per transaction.
pub const DELIVERY_BATCH: usize = 1000;

/// One event (`event_id`) or a time range (`from`, `to`, optional `topic` pattern),
/// optionally narrowed to `endpoint_id` or `subscription_id`.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReplayIn {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event_id: Option<String>,
    /// RFC 3339; events accepted at or after this time.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// RFC 3339; events accepted before this time.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub topic: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub endpoint_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subscription_id: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ReplayOut {
    pub replay_id: String,
    /// New deliveries created.
    pub deliveries: usize,
    /// Events selected.
    pub events: usize,
    pub created_at: String,
    /// False when the replay stopped before its last event (`stopped` says why).
    pub complete: bool,
    /// `queue_full`: the tenant's queue reached `api.max_queue_depth_per_tenant`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stopped: Option<&'static str>,
    /// Replay from this time (the first event not replayed) to continue.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resume_from: Option<String>,
}

fn time_field(field: &str, value: &str) -> Result<i64, ApiError> {
    parse_rfc3339(value).ok_or_else(|| ApiError::invalid_field(field, "must be an RFC 3339 time"))
}

/// What a replay selects: one event, or a stretch of the stream.
enum Selection {
    One(Box<Event>),
    /// Events with `topic` accepted in `[from, to)`; cursor order is acceptance
    /// order, so they lie between `first_cursor` and `last_cursor` inclusive.
    Range {
        topic: Option<TopicPattern>,
        from: i64,
        to: i64,
        first_cursor: u64,
        last_cursor: u64,
        count: usize,
    },
}

/// Validates the request and finds what it selects (for a range: counts it, never
/// holding more than one page of events).
async fn select(
    state: &AppState,
    tenant: &TenantId,
    body: &ReplayIn,
) -> Result<Selection, ApiError> {
    if let Some(raw) = &body.event_id {
        if body.from.is_some() || body.to.is_some() || body.topic.is_some() {
            return Err(ApiError::invalid_field(
                "event_id",
                "give either `event_id` or a `from`/`to` range, not both",
            ));
        }
        let id = EventId::parse(raw).ok_or_else(|| ApiError::not_found("event"))?;
        let event = state
            .store
            .get_event(tenant, &id)
            .await?
            .ok_or_else(|| ApiError::not_found("event"))?;
        return Ok(Selection::One(Box::new(event)));
    }
    let (Some(from), Some(to)) = (&body.from, &body.to) else {
        return Err(ApiError::invalid_field(
            "event_id",
            "give `event_id`, or both `from` and `to`",
        ));
    };
    let (from, to) = (time_field("from", from)?, time_field("to", to)?);
    if from >= to {
        return Err(ApiError::invalid_field("to", "must be after `from`"));
    }
    let topic = body
        .topic
        .as_deref()
        .map(|t| {
            TopicPattern::parse(t, state.config.api.max_topic_bytes)
                .map_err(|e| ApiError::invalid_field("topic", format!("topic pattern {e}")))
        })
        .transpose()?;
    let max = state.config.api.max_replay_events;
    let (mut first_cursor, mut last_cursor, mut count) = (None, 0, 0usize);
    let mut after = None;
    'pages: loop {
        let page = events_page(state, tenant, topic.as_ref(), after.take()).await?;
        for event in page.items {
            if event.created_at >= to {
                break 'pages;
            }
            if event.created_at >= from {
                if count == max {
                    return Err(ApiError::invalid_field(
                        "from",
                        format!(
                            "the range selects more than {max} events (api.max_replay_events); \
                             narrow it"
                        ),
                    )
                    .with("limit", max));
                }
                first_cursor.get_or_insert(event.cursor);
                last_cursor = event.cursor;
                count += 1;
            }
        }
        match page.next {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    Ok(Selection::Range {
        topic,
        from,
        to,
        first_cursor: first_cursor.unwrap_or(1),
        last_cursor,
        count,
    })
}

async fn events_page(
    state: &AppState,
    tenant: &TenantId,
    topic: Option<&TopicPattern>,
    after: Option<String>,
) -> Result<crate::store::Page<Event>, ApiError> {
    Ok(state
        .store
        .list_events(
            tenant,
            EventQuery {
                topic: topic.cloned(),
                after_cursor: None,
                page: PageRequest {
                    after,
                    limit: EVENT_PAGE,
                },
            },
        )
        .await?)
}

/// Who a replayed event goes to.
struct Narrowing {
    endpoint: Option<EndpointId>,
    subscription: Option<SubscriptionId>,
}

/// Appends the deliveries `event` gets now (its current matches, narrowed).
fn match_event(
    index: &crate::ingest::TopicIndex,
    event: &Event,
    narrowing: &Narrowing,
    matched: &mut Vec<u32>,
    out: &mut Vec<ReplayDelivery>,
) {
    let time = rfc3339(event.created_at);
    let meta = gatepulse_filter_dsl::Meta {
        id: Some(event.id.as_str()),
        time: Some(&time),
        source: None,
    };
    index.select(&event.topic, &event.payload, meta, matched);
    for &i in matched.iter() {
        let entry = index.entry(i);
        if narrowing
            .endpoint
            .as_ref()
            .is_some_and(|e| e != &entry.endpoint_id)
            || narrowing
                .subscription
                .as_ref()
                .is_some_and(|s| s != &entry.id)
        {
            continue;
        }
        out.push(ReplayDelivery {
            event_id: event.id.clone(),
            subscription_id: entry.id.clone(),
            endpoint_id: entry.endpoint_id.clone(),
        });
    }
}

/// Writes a replay's deliveries in bounded batches as they are matched.
struct Writer<'a> {
    state: &'a AppState,
    replay: Replay,
    /// Deliveries not written yet, each with its event's acceptance time.
    pending: Vec<(i64, ReplayDelivery)>,
    /// Where the replay stopped: the acceptance time of the first event whose
    /// deliveries were not (all) written.
    stopped_at: Option<i64>,
}

impl Writer<'_> {
    /// Queues one event's deliveries and writes every full batch. `false` once the
    /// replay had to stop.
    async fn add(
        &mut self,
        event: &Event,
        deliveries: &mut Vec<ReplayDelivery>,
    ) -> Result<bool, ApiError> {
        self.pending
            .extend(deliveries.drain(..).map(|d| (event.created_at, d)));
        while self.pending.len() >= DELIVERY_BATCH {
            if !self.write(DELIVERY_BATCH).await? {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Writes what is pending.
    async fn flush(&mut self) -> Result<bool, ApiError> {
        while !self.pending.is_empty() {
            if !self.write(DELIVERY_BATCH.min(self.pending.len())).await? {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Writes the first `n` pending deliveries in one transaction (as many as the
    /// tenant's queue has room for).
    async fn write(&mut self, n: usize) -> Result<bool, ApiError> {
        if self.stopped_at.is_some() {
            return Ok(false);
        }
        let batch: Vec<ReplayDelivery> = self.pending[..n].iter().map(|(_, d)| d.clone()).collect();
        let written = self
            .state
            .store
            .create_replay(
                self.replay.clone(),
                batch,
                self.state.config.api.max_queue_depth_per_tenant,
            )
            .await?;
        self.replay.deliveries += written as u64;
        if written < n {
            // The first event not (fully) replayed is where to resume.
            self.stopped_at = self.pending.get(written).map(|(at, _)| *at);
            self.pending.clear();
            return Ok(false);
        }
        self.pending.drain(..n);
        Ok(true)
    }
}

/// Replays one event or a time range to the subscriptions that match now.
#[utoipa::path(post, path = "/v1/replay", tag = "deliveries", request_body = ReplayIn,
    responses((status = 202, body = ReplayOut), (status = "4XX", body = Problem)),
    security(("bearer" = ["replay:write"])))]
pub async fn create_replay(
    State(state): State<AppState>,
    principal: Principal,
    ApiJson(body): ApiJson<ReplayIn>,
) -> Result<(StatusCode, axum::Json<ReplayOut>), ApiError> {
    let tenant = principal.tenant_for(Scope::ReplayWrite)?.clone();
    if body.endpoint_id.is_some() && body.subscription_id.is_some() {
        return Err(ApiError::invalid_field(
            "endpoint_id",
            "narrow by `endpoint_id` or `subscription_id`, not both",
        ));
    }
    let endpoint = match &body.endpoint_id {
        Some(raw) => Some(EndpointId::parse(raw).ok_or_else(|| ApiError::not_found("endpoint"))?),
        None => None,
    };
    let subscription = match &body.subscription_id {
        Some(raw) => {
            Some(SubscriptionId::parse(raw).ok_or_else(|| ApiError::not_found("subscription"))?)
        }
        None => None,
    };
    let selection = select(&state, &tenant, &body).await?;
    let index = state.ingest.index(&tenant).await?;
    let narrowing = Narrowing {
        endpoint,
        subscription,
    };
    let now = now_ms();
    let replay_id = ReplayId::generate(now).to_string();
    audit::record(
        Some(&tenant),
        "replay.create",
        "replay",
        &replay_id,
        serde_json::to_value(&body).unwrap_or_default(),
    );
    let mut writer = Writer {
        state: &state,
        replay: Replay {
            record_version: RECORD_VERSION,
            id: replay_id,
            tenant_id: tenant.clone(),
            created_at: now,
            request: serde_json::to_value(&body).unwrap_or_default(),
            deliveries: 0,
            complete: false,
            stopped: None,
        },
        pending: Vec::new(),
        stopped_at: None,
    };
    let (mut matched, mut deliveries) = (Vec::new(), Vec::new());
    let events = match selection {
        Selection::One(event) => {
            match_event(&index, &event, &narrowing, &mut matched, &mut deliveries);
            writer.add(&event, &mut deliveries).await?;
            1
        }
        Selection::Range {
            topic,
            from,
            to,
            first_cursor,
            last_cursor,
            count,
        } => {
            let mut after = Some((first_cursor - 1).to_string());
            'pages: while let Some(start) = after.take() {
                let page = events_page(&state, &tenant, topic.as_ref(), Some(start)).await?;
                for event in &page.items {
                    if event.cursor > last_cursor || event.created_at >= to {
                        break 'pages;
                    }
                    if event.created_at < from {
                        continue;
                    }
                    match_event(&index, event, &narrowing, &mut matched, &mut deliveries);
                    if !writer.add(event, &mut deliveries).await? {
                        break 'pages;
                    }
                }
                after = page.next;
            }
            count
        }
    };
    writer.flush().await?;
    let stopped = writer.stopped_at.map(|_| "queue_full");
    let mut replay = writer.replay;
    let n = replay.deliveries as usize;
    if stopped.is_some() && n == 0 {
        return Err(super::events::queue_full(&state));
    }
    // The record's final state (its deliveries are all written by now).
    replay.complete = stopped.is_none();
    replay.stopped = stopped.map(str::to_owned);
    state
        .store
        .create_replay(replay.clone(), Vec::new(), u64::MAX)
        .await?;
    tracing::info!(tenant_id = %tenant, replay_id = %replay.id, events, deliveries = n,
        stopped, "replay created");
    Ok((
        StatusCode::ACCEPTED,
        axum::Json(ReplayOut {
            replay_id: replay.id,
            deliveries: n,
            events,
            created_at: rfc3339(now),
            complete: stopped.is_none(),
            stopped,
            resume_from: writer.stopped_at.map(rfc3339),
        }),
    ))
}

pub fn router() -> Router<AppState> {
    Router::new().route("/v1/replay", post(create_replay))
}
