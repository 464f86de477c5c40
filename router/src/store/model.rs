//! The records the store keeps. Plain data: no behaviour beyond small helpers, no
//! backend types. Times are Unix milliseconds. Every record carries `record_version`,
//! the schema version of that record's shape, so a migration can tell old rows apart.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::auth::Scope;
use crate::ids::{AttemptId, DeliveryId, EndpointId, EventId, KeyId, SubscriptionId, TenantId};

/// Current `record_version` of every record type written by this build.
pub const RECORD_VERSION: u32 = 1;

fn record_version() -> u32 {
    RECORD_VERSION
}

/// `store_meta(version, created_at, last_compaction_at)` (SPEC CORE-6).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoreMeta {
    pub version: u32,
    pub created_at: i64,
    pub last_compaction_at: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tenant {
    #[serde(default = "record_version")]
    pub record_version: u32,
    pub id: TenantId,
    pub name: String,
    pub created_at: i64,
    /// Per-tenant retention; unset fields use the node's `[retention]`.
    #[serde(default)]
    pub retention: TenantRetention,
}

/// A tenant's retention overrides (seconds; 0 keeps forever).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TenantRetention {
    pub events_max_age_secs: Option<u64>,
    pub dlq_max_age_secs: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApiKey {
    #[serde(default = "record_version")]
    pub record_version: u32,
    pub id: KeyId,
    pub tenant_id: TenantId,
    pub name: String,
    pub scopes: Vec<Scope>,
    /// SHA-256 of the key, hex. The key itself is never stored.
    pub hash: String,
    pub created_at: i64,
    pub revoked_at: Option<i64>,
    /// After this instant the key no longer authenticates (`None`: never expires).
    #[serde(default)]
    pub expires_at: Option<i64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum EndpointKind {
    Http,
    Inbox,
}

/// A Standard Webhooks signature scheme an endpoint's deliveries carry.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema,
)]
pub enum SignatureScheme {
    /// `v1,`: HMAC-SHA256 with the endpoint's `whsec_` secret.
    #[serde(rename = "v1")]
    V1,
    /// `v1a,`: Ed25519 with the endpoint's signing key; receivers verify with its
    /// `whpk_` public key.
    #[serde(rename = "v1a")]
    V1a,
}

fn v1_only() -> Vec<SignatureScheme> {
    vec![SignatureScheme::V1]
}

/// An endpoint secret as sealed by the crypto seam, base64 in the record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SealedSecret {
    pub sealed: String,
    pub created_at: i64,
    /// `None` for the current secret; set on a rotated-out secret that keeps signing
    /// until then.
    pub expires_at: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Endpoint {
    #[serde(default = "record_version")]
    pub record_version: u32,
    pub id: EndpointId,
    pub tenant_id: TenantId,
    pub kind: EndpointKind,
    pub url: Option<String>,
    pub description: String,
    /// Current secret first, then rotated-out ones still in their grace period.
    pub secrets: Vec<SealedSecret>,
    /// What deliveries are signed with, in order (`v1` before `v1a`).
    #[serde(default = "v1_only")]
    pub signature_schemes: Vec<SignatureScheme>,
    /// Ed25519 signing keys (`whsk_`, sealed) for `v1a`: current first, then
    /// rotated-out ones still in their grace period. Empty until `v1a` is first enabled.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub signing_keys: Vec<SealedSecret>,
    pub headers: BTreeMap<String, String>,
    pub timeout_ms: Option<u64>,
    pub rate_limit_per_sec: Option<u32>,
    pub max_in_flight: Option<u32>,
    pub retry_schedule_secs: Option<Vec<u32>>,
    pub enabled: bool,
    pub disabled_reason: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Subscription {
    #[serde(default = "record_version")]
    pub record_version: u32,
    pub id: SubscriptionId,
    pub tenant_id: TenantId,
    pub endpoint_id: EndpointId,
    pub topics: Vec<String>,
    pub filter: Option<String>,
    pub transform: Option<serde_json::Value>,
    pub enabled: bool,
    pub created_at: i64,
    pub updated_at: i64,
}

/// A stored event. The payload is kept as the exact JSON text that was published.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Event {
    #[serde(default = "record_version")]
    pub record_version: u32,
    pub id: EventId,
    pub tenant_id: TenantId,
    /// Position in the tenant's stream. Backends may keep it only in the key.
    #[serde(default)]
    pub cursor: u64,
    pub topic: String,
    pub payload: Box<RawValue>,
    pub idempotency_key: Option<String>,
    pub created_at: i64,
    /// The W3C trace context of the publish span (`docs/observability.md#tracing`),
    /// kept while tracing is on: the parent of every attempt's span.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    Pending,
    InFlight,
    Succeeded,
    Retrying,
    Dead,
    /// Never sent and never will be: its subscription or endpoint was deleted, or its
    /// event is gone. Final, like `Succeeded`; the attempt says why.
    Cancelled,
}

impl DeliveryStatus {
    pub const ALL: [DeliveryStatus; 6] = [
        Self::Pending,
        Self::InFlight,
        Self::Succeeded,
        Self::Retrying,
        Self::Dead,
        Self::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::InFlight => "in_flight",
            Self::Succeeded => "succeeded",
            Self::Retrying => "retrying",
            Self::Dead => "dead",
            Self::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.as_str() == s)
    }

    /// Waiting in the due-time index for a dispatcher to claim it.
    pub fn is_queued(self) -> bool {
        matches!(self, Self::Pending | Self::Retrying)
    }
}

/// One event for one subscription. The lease fields exist on every backend, even on
/// one node, so that a crashed worker's claims can be reclaimed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Delivery {
    #[serde(default = "record_version")]
    pub record_version: u32,
    pub id: DeliveryId,
    pub tenant_id: TenantId,
    pub event_id: EventId,
    pub subscription_id: SubscriptionId,
    pub endpoint_id: EndpointId,
    pub status: DeliveryStatus,
    pub attempts: u32,
    pub next_attempt_at: i64,
    /// Node that holds the lease while the delivery is in flight.
    pub claimed_by: Option<String>,
    pub lease_until: Option<i64>,
    /// Incremented on every claim; a worker holding an older token lost its lease and
    /// may neither renew nor complete it.
    pub lease_token: u64,
    pub created_at: i64,
    pub updated_at: i64,
    /// The body the first attempt sent, when the subscription transforms: retries send
    /// exactly these bytes even if the subscription's transform changed meanwhile.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
}

/// One HTTP try of a delivery (written by the delivery engine).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Attempt {
    #[serde(default = "record_version")]
    pub record_version: u32,
    pub id: AttemptId,
    pub delivery_id: DeliveryId,
    pub tenant_id: TenantId,
    pub number: u32,
    pub started_at: i64,
    pub status_code: Option<u16>,
    pub latency_ms: u64,
    pub response_excerpt: Option<String>,
    pub error_kind: Option<String>,
    /// What the request carried beyond what the delivery tells; `None` for an attempt
    /// that built no request (and attempts recorded before this field existed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sent: Option<SentRequest>,
}

/// The parts of an attempt's request that change per attempt: the rest of its headers
/// follow from the delivery (`webhook-id`, `gatepulse-event-id`, …).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SentRequest {
    /// `webhook-timestamp`, Unix seconds.
    pub timestamp: i64,
    /// `webhook-signature` exactly as sent (signatures are not secrets).
    pub signature: String,
    /// The endpoint's custom header names; their values are secrets and not kept.
    pub custom_headers: Vec<String>,
}

/// What ingest hands the store for one publish.
#[derive(Debug, Clone)]
pub struct NewEvent {
    pub id: EventId,
    pub tenant_id: TenantId,
    pub topic: String,
    pub payload: Box<RawValue>,
    pub idempotency_key: Option<String>,
    pub created_at: i64,
    /// The publish span's trace context (see [`Event::traceparent`]).
    pub traceparent: Option<String>,
    /// One pending delivery is created per entry, in the same transaction.
    pub deliveries: Vec<NewDelivery>,
}

#[derive(Debug, Clone)]
pub struct NewDelivery {
    pub id: DeliveryId,
    pub subscription_id: SubscriptionId,
    pub endpoint_id: EndpointId,
}

/// The store's answer to one appended event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppendOutcome {
    pub id: EventId,
    pub cursor: u64,
    /// True when an earlier event with the same idempotency key (inside the window)
    /// answered instead; nothing new was written.
    pub deduped: bool,
}

/// Limits applied atomically while appending.
#[derive(Debug, Clone, Copy)]
pub struct AppendLimits {
    /// Idempotency keys dedupe for this long.
    pub idempotency_window_ms: i64,
    /// A tenant's queued deliveries (pending, retrying, in flight) never exceed this:
    /// an event whose deliveries would is refused, and nothing of it is written.
    pub max_queue_depth: u64,
}

/// The store's answer to one appended event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Appended {
    Stored(AppendOutcome),
    /// Refused: the tenant's queue is at its limit.
    QueueFull {
        limit: u64,
    },
}

/// What one retention pass may remove. Ages are the node's defaults; a tenant's
/// [`TenantRetention`] overrides them for that tenant.
#[derive(Debug, Clone, Copy)]
pub struct PurgePolicy {
    /// Unix ms the ages count back from.
    pub now: i64,
    /// Events older than this go, with their deliveries and attempts, once every
    /// delivery of theirs is final (succeeded, or dead for longer than the DLQ age).
    /// 0 keeps them forever.
    pub events_max_age_secs: u64,
    /// Dead deliveries (DLQ) go this long after they died. 0 keeps them forever.
    pub dlq_max_age_secs: u64,
    /// Inbox messages go this long after capture. 0 keeps them forever.
    pub inbox_max_age_secs: u64,
    /// Most rows one call deletes or examines (one bounded transaction).
    pub max_rows: usize,
    /// Most milliseconds one call spends deleting (0: no time limit). The call runs
    /// in the store's writer, in the same commit as publishes queued beside it, so
    /// this bounds how long a retention batch can hold them.
    pub max_millis: u64,
}

impl PurgePolicy {
    /// (events_before, dead_before) cut-offs for a tenant, in Unix ms.
    pub fn cutoffs(&self, tenant: &TenantRetention) -> (i64, i64) {
        let before = |secs: u64| {
            if secs == 0 {
                i64::MIN
            } else {
                self.now
                    .saturating_sub(i64::try_from(secs).unwrap_or(i64::MAX).saturating_mul(1000))
            }
        };
        (
            before(
                tenant
                    .events_max_age_secs
                    .unwrap_or(self.events_max_age_secs),
            ),
            before(tenant.dlq_max_age_secs.unwrap_or(self.dlq_max_age_secs)),
        )
    }
}

/// What one retention call removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PurgeReport {
    pub events: u64,
    pub deliveries: u64,
    pub attempts: u64,
    /// Other rows: stream status items, DLQ-only deliveries' rows, replays, inbox
    /// messages.
    pub other: u64,
    /// True when the pass has looked at everything; false when the budget ran out
    /// (call again from `next`).
    pub done: bool,
    /// Where the next call of the same pass continues.
    pub next: Option<PurgeCursor>,
}

/// Where a retention pass stands: which tenant, which kind of row, after which key.
/// Opaque: start a pass from `PurgeCursor::default()` and continue each call from the
/// previous report's `next`, so that rows kept (an event still being delivered) are
/// passed by once per pass, not examined again by every call.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PurgeCursor {
    /// The tenant being worked on; `None` before the first.
    pub tenant: Option<String>,
    pub phase: PurgePhase,
    /// The last key examined in this phase (its textual form), if any.
    pub after: Option<String>,
}

/// The kinds of row a retention pass goes through, per tenant and then once for the
/// inbox.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum PurgePhase {
    #[default]
    Events,
    Statuses,
    Dead,
    Replays,
    Inbox,
}

/// Row counts and size of the store (`gp store stats`).
#[derive(Debug, Clone, Default, Serialize)]
pub struct StorageStats {
    /// Rows per table.
    pub tables: std::collections::BTreeMap<String, u64>,
    /// Bytes of the store file on disk, where the backend has one.
    pub file_bytes: Option<u64>,
    /// Bytes holding live data.
    pub stored_bytes: Option<u64>,
    /// Bytes allocated but not holding data (reusable; `gp store compact` gives them
    /// back to the file system).
    pub fragmented_bytes: Option<u64>,
    pub meta: Option<StoreMeta>,
}

/// Describes a snapshot: what it holds and how to check it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SnapshotManifest {
    /// Format of this manifest.
    pub manifest_version: u32,
    pub store_version: u32,
    pub created_at: i64,
    /// The store file inside the snapshot directory.
    pub file: String,
    pub bytes: u64,
    /// SHA-256 of the store file, hex.
    pub sha256: String,
    /// Rows per table.
    pub tables: std::collections::BTreeMap<String, u64>,
}

/// One page of a listing. `next` is an opaque continuation, `None` at the end.
#[derive(Debug, Clone)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next: Option<String>,
}

/// Where a listing starts and how much it returns.
#[derive(Debug, Clone, Default)]
pub struct PageRequest {
    /// The `next` of the previous page.
    pub after: Option<String>,
    pub limit: usize,
}

/// A filter over the audit log (`GET /v1/audit`).
#[derive(Debug, Clone, Default)]
pub struct AuditQuery {
    /// Only this tenant's records; `None`: every chain (the admin).
    pub tenant: Option<TenantId>,
    pub action: Option<String>,
    /// A resource kind (`endpoint`) or id (`ep_…`).
    pub resource: Option<String>,
    /// `admin`, `system` or a key id.
    pub actor: Option<String>,
    /// Unix ms, inclusive.
    pub since: Option<i64>,
    /// Unix ms, exclusive.
    pub until: Option<i64>,
    pub page: PageRequest,
}

impl AuditQuery {
    /// Whether `r` passes every filter but the page.
    pub fn matches(&self, r: &crate::audit::AuditRecord) -> bool {
        self.tenant
            .as_ref()
            .is_none_or(|t| r.tenant_id.as_ref() == Some(t))
            && self.action.as_ref().is_none_or(|a| &r.action == a)
            && self
                .resource
                .as_ref()
                .is_none_or(|x| &r.resource.kind == x || &r.resource.id == x)
            && self.actor.as_ref().is_none_or(|a| &r.actor.label() == a)
            && self.since.is_none_or(|t| r.at >= t)
            && self.until.is_none_or(|t| r.at < t)
    }
}

#[derive(Debug, Clone, Default)]
pub struct EventQuery {
    /// Only events whose topic matches this pattern.
    pub topic: Option<crate::ingest::topic::TopicPattern>,
    /// Only events with a cursor above this one.
    pub after_cursor: Option<u64>,
    pub page: PageRequest,
}

#[derive(Debug, Clone, Default)]
pub struct DeliveryQuery {
    pub event_id: Option<EventId>,
    pub endpoint_id: Option<EndpointId>,
    pub status: Option<DeliveryStatus>,
    pub page: PageRequest,
}

/// A request to lease an endpoint's due deliveries.
#[derive(Debug, Clone)]
pub struct Claim {
    /// The claiming node (`claimed_by`).
    pub node: String,
    pub tenant: TenantId,
    pub endpoint: EndpointId,
    /// Deliveries with `next_attempt_at <= now` are due.
    pub now: i64,
    pub lease_until: i64,
    pub limit: usize,
    /// The leader term the claim is made under (a node claiming as the elected
    /// leader): the store leases nothing unless that term still holds in its own
    /// clock. `None`: no fence (one node, or every node dispatching).
    pub fence: Option<u64>,
}

/// A leased delivery with the event it carries.
#[derive(Debug, Clone)]
pub struct Claimed {
    pub delivery: Delivery,
    /// Shared: one claim often carries several deliveries of one event.
    pub event: std::sync::Arc<Event>,
}

/// What happens to a delivery after an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NextState {
    Succeeded,
    /// Back to the queue, due at this time.
    Retry {
        at: i64,
    },
    /// Into the dead-letter queue.
    Dead,
    /// Final without sending (see [`DeliveryStatus::Cancelled`]).
    Cancelled,
}

/// The result of one attempt, written with its delivery's next state.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub tenant: TenantId,
    pub delivery: DeliveryId,
    /// The token the attempt was made under; a stale token is ignored.
    pub lease_token: u64,
    pub attempt: Attempt,
    pub next: NextState,
    /// A transformed body to keep on the delivery for its retries.
    pub body: Option<String>,
}

/// Which dead deliveries to requeue.
impl Outcome {
    /// Cancels a claimed delivery whose event is gone or unreadable (`event_missing`):
    /// nothing was sent, and nothing is left to send.
    pub fn event_missing(tenant: &TenantId, delivery: &Delivery, now: i64) -> Self {
        Self {
            tenant: tenant.clone(),
            delivery: delivery.id.clone(),
            lease_token: delivery.lease_token,
            attempt: Attempt {
                record_version: RECORD_VERSION,
                id: AttemptId::generate(now),
                delivery_id: delivery.id.clone(),
                tenant_id: tenant.clone(),
                number: delivery.attempts + 1,
                started_at: now,
                status_code: None,
                latency_ms: 0,
                response_excerpt: Some("its event is gone or unreadable; nothing was sent".into()),
                error_kind: Some("event_missing".into()),
                sent: None,
            },
            next: NextState::Cancelled,
            body: None,
        }
    }
}

#[derive(Debug, Clone)]
pub enum RequeueSelection {
    Ids(Vec<DeliveryId>),
    Endpoint(EndpointId),
}

/// One bounded batch of a requeue.
#[derive(Debug, Clone)]
pub struct RequeueBatch {
    pub selection: RequeueSelection,
    /// An endpoint selection continues after this delivery id (the `next` of the
    /// previous batch).
    pub after: Option<String>,
    /// The requeued deliveries are due at this time.
    pub now: i64,
    /// Most deliveries this batch moves (and, times 20, most DLQ rows it examines).
    pub limit: usize,
    /// The tenant's queue (pending, retrying, in flight) never grows past this: the
    /// batch stops before a delivery that would.
    pub max_queue_depth: u64,
}

/// What one requeue batch did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Requeued {
    /// The endpoint of each requeued delivery (to wake dispatch).
    pub woken: Vec<(TenantId, EndpointId)>,
    /// Where an endpoint selection continues; `None` once it reached the end.
    pub next: Option<String>,
    /// The batch stopped at the tenant's queue limit.
    pub queue_full: bool,
}

/// A delivery captured by an inbox endpoint: the request exactly as a subscriber
/// would have received it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InboxMessage {
    #[serde(default = "record_version")]
    pub record_version: u32,
    /// The attempt id (time-sortable).
    pub id: AttemptId,
    pub tenant_id: TenantId,
    pub endpoint_id: EndpointId,
    pub delivery_id: DeliveryId,
    pub event_id: EventId,
    pub topic: String,
    pub received_at: i64,
    pub headers: Vec<(String, String)>,
    /// The body as sent (the event payload JSON text).
    pub body: String,
}

/// A recorded replay (SPEC CORE-5).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Replay {
    #[serde(default = "record_version")]
    pub record_version: u32,
    pub id: String,
    pub tenant_id: TenantId,
    pub created_at: i64,
    /// The request as given (event id or time range, narrowing).
    pub request: serde_json::Value,
    /// Deliveries created so far.
    pub deliveries: u64,
    /// False while (or when) the replay stopped before the end of its selection.
    #[serde(default = "yes")]
    pub complete: bool,
    /// Why it stopped early (`queue_full`), when it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stopped: Option<String>,
}

fn yes() -> bool {
    true
}

/// One new delivery created by a replay; the store assigns its id.
#[derive(Debug, Clone)]
pub struct ReplayDelivery {
    pub event_id: EventId,
    pub subscription_id: SubscriptionId,
    pub endpoint_id: EndpointId,
}

/// A change applied atomically to a stored record (read, modify, write in one
/// transaction). It must not fail: validate before building it.
pub type Mutation<T> = Box<dyn FnOnce(&mut T) + Send>;

/// One read of a tenant's stream (`Store::read_stream`).
#[derive(Debug, Default)]
pub struct StreamRead {
    /// The matching items, in cursor order.
    pub items: Vec<std::sync::Arc<crate::stream::StreamItem>>,
    /// Highest cursor examined (matching or not); `after` when nothing was there.
    pub scanned_to: u64,
    /// Items examined but older than `min_created_at`.
    pub too_old: u64,
    /// The tenant's last assigned cursor at the time of the read.
    pub head: u64,
    /// The oldest cursor still stored, if any.
    pub oldest: Option<u64>,
}

/// How much plugin code one tenant may store.
#[derive(Debug, Clone, Copy)]
pub struct PluginQuota {
    /// Plugin versions.
    pub max_versions: usize,
    /// Bytes of modules, counted per version.
    pub max_bytes: u64,
}

/// An uploaded plugin version (its module is stored beside it, by sha256).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PluginRecord {
    #[serde(default = "record_version")]
    pub record_version: u32,
    pub tenant_id: TenantId,
    pub name: String,
    pub version: String,
    /// Hex sha256 of the module.
    pub sha256: String,
    pub size: u64,
    pub abi: u32,
    /// The SDK version the module says it was built with.
    pub sdk: Option<String>,
    pub created_at: i64,
}

/// One node's heartbeat and, when it stands, its bid for the leadership
/// (`Store::cluster_beat`). Times of the leadership are the database's, never the
/// node's clock.
#[derive(Debug, Clone)]
pub struct Beat {
    pub node: String,
    /// Where the node says it can be reached (shown in `GET /v1/admin/cluster`).
    pub address: String,
    pub version: String,
    pub started_at: i64,
    /// How long a leadership won or renewed by this beat lasts.
    pub ttl_ms: u64,
    /// Whether the node bids for the leadership (or renews it).
    pub campaign: bool,
    /// The term the node believes it holds: renewed only while it is still that term's
    /// and has not expired. A node whose row names it as leader with any other term is
    /// a previous run of itself (restarted): it takes a new term at once.
    pub held: Option<u64>,
}

/// The leadership as one beat left it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaderState {
    /// The beating node holds the leadership for `term` until the database's
    /// `now + ttl` (won or renewed by this beat).
    pub held: bool,
    /// The node holding an unexpired leadership, if any.
    pub leader: Option<String>,
    pub term: u64,
}

/// A node as its heartbeats registered it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NodeRecord {
    pub id: String,
    pub address: String,
    pub version: String,
    pub started_at: i64,
    /// In the store's clock (ms since the epoch).
    pub last_heartbeat_at: i64,
    /// Deliveries it holds leases on now.
    pub leases: u64,
}

/// The nodes and the leadership, read together (`GET /v1/admin/cluster`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterState {
    /// The store's clock when read (ms since the epoch): heartbeat ages are relative
    /// to it, not to the reading node's clock.
    pub now: i64,
    pub leader: Option<LeaderRecord>,
    pub nodes: Vec<NodeRecord>,
}

/// The leadership row: held by `node` for `term` until `expires_at` (store clock).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaderRecord {
    pub node: String,
    pub term: u64,
    pub elected_at: i64,
    pub expires_at: i64,
}

/// One node's view of one endpoint's delivery health (circuit, failures, success rate,
/// in flight), shared through a store that several nodes use so that any node can
/// answer with the cluster's (`Store::put_health`). `data` is the dispatcher's own
/// encoding; the store keeps it as it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthReport {
    pub tenant: TenantId,
    pub endpoint: EndpointId,
    pub node: String,
    /// When the node wrote it (its clock, ms since the epoch).
    pub at: i64,
    pub data: String,
}
