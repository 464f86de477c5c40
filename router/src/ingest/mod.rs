//! Ingest: validate a publish, match it to subscriptions, hand it to the store.
//!
//! The payload is parsed once, by the API layer, into raw JSON text that is stored
//! as-is. Topic matching uses a per-tenant [`TopicIndex`] held in memory, built from
//! the store on first use and replaced whole (an `Arc` swap) whenever this node
//! changes that tenant's subscriptions or endpoints. The index also holds each
//! subscription's compiled filter (compiled once, when the index is built); a publish
//! parses the payload into a JSON value only when a topic-matched subscription has a
//! filter, once per event, and a subscription whose filter is false gets no delivery.
//! The event, its stream position and one pending delivery per selected subscription
//! are written in one store transaction; the caller answers `202` only after it is
//! durable.

pub mod topic;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};

use gatepulse_filter_dsl::{Event, Filter, Limits, Meta};
use serde_json::value::RawValue;

use crate::clock;
use crate::ids::{DeliveryId, EndpointId, EventId, SubscriptionId, TenantId};
use crate::store::{
    AppendLimits, AppendOutcome, Appended, NewDelivery, NewEvent, Store, StoreError,
};
use crate::telemetry;
use topic::{TopicError, TopicPattern};

/// Limits checked on every publish (`[api]` in the configuration).
#[derive(Debug, Clone)]
pub struct IngestLimits {
    pub max_payload_bytes: usize,
    pub max_topic_bytes: usize,
    pub max_idempotency_key_bytes: usize,
    pub idempotency_window_ms: i64,
    /// Most queued deliveries (pending, retrying, in flight) per tenant.
    pub max_queue_depth_per_tenant: u64,
    /// Most publish requests being processed at once, across tenants.
    pub max_inflight_publishes: usize,
}

/// Why a publish was turned away before anything was written (overload).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Overload {
    /// `api.max_inflight_publishes` requests are already being processed.
    Inflight,
    /// The tenant's queue is at `api.max_queue_depth_per_tenant`.
    QueueFull,
}

impl Overload {
    pub fn reason(self) -> &'static str {
        match self {
            Self::Inflight => "inflight",
            Self::QueueFull => "queue_full",
        }
    }
}

/// Holds one of the in-flight publish slots until dropped.
#[derive(Debug)]
pub struct PublishPermit {
    inflight: Arc<AtomicUsize>,
}

impl Drop for PublishPermit {
    fn drop(&mut self) {
        self.inflight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Why one publish was refused. Nothing is written for a refused event.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error("topic {0}")]
    Topic(#[from] TopicError),
    #[error("payload is {size} bytes; the limit is {limit}")]
    PayloadTooLarge { size: usize, limit: usize },
    #[error("payload must be a JSON object")]
    PayloadNotObject,
    #[error("idempotency key must be 1 to {0} bytes")]
    BadIdempotencyKey(usize),
    #[error("topic {0:?} is reserved for the stream's own items (deliveries.status, gatepulse.*)")]
    ReservedTopic(String),
}

/// One event to publish, already parsed once into its raw JSON payload.
#[derive(Debug)]
pub struct Publish {
    pub topic: String,
    pub payload: Box<RawValue>,
    pub idempotency_key: Option<String>,
    /// The publish span's trace context, kept with the event (tracing on).
    pub traceparent: Option<String>,
}

/// One subscription as the index sees it.
#[derive(Debug)]
pub struct SubEntry {
    pub id: SubscriptionId,
    pub endpoint_id: EndpointId,
    pub filter: SubFilter,
}

/// A subscription's filter, compiled when the index is built.
#[derive(Debug, Clone, Default)]
pub enum SubFilter {
    /// No filter: every topic-matched event is delivered.
    #[default]
    MatchAll,
    /// Delivered only when the filter is true.
    Compiled(Filter),
    /// The stored filter no longer compiles under the current limits (logged when the
    /// index was built): the subscription matches nothing until it is fixed.
    MatchNothing,
}

impl SubFilter {
    /// Compiles a stored filter; `None` is no filter.
    pub fn compile(
        src: Option<&str>,
        limits: &Limits,
    ) -> Result<Self, gatepulse_filter_dsl::FilterError> {
        match src {
            None => Ok(Self::MatchAll),
            Some(src) => Filter::compile(src, limits).map(Self::Compiled),
        }
    }

    /// Whether deciding needs the parsed payload.
    fn needs_event(&self) -> bool {
        matches!(self, Self::Compiled(_))
    }

    /// Whether an event passes; `event` is `None` only when the payload could not be
    /// parsed, which fails every filter.
    fn admits(&self, event: Option<&Event<'_>>) -> bool {
        match self {
            Self::MatchAll => true,
            Self::Compiled(f) => event.is_some_and(|e| f.matches(e)),
            Self::MatchNothing => false,
        }
    }
}

/// The subscriptions of one tenant, ready for matching.
#[derive(Debug, Default)]
pub struct TopicIndex {
    subs: Vec<SubEntry>,
    /// Exact topic → indexes into `subs`.
    exact: HashMap<Box<str>, Vec<u32>>,
    /// Wildcard patterns with the index of their subscription.
    wildcard: Vec<(TopicPattern, u32)>,
    /// Whether any subscription has a compiled filter: when none does, a publish never
    /// formats the event time for filters.
    any_filter: bool,
}

impl TopicIndex {
    /// Builds an index from enabled subscriptions whose endpoint is enabled.
    /// Subscriptions with unparseable patterns (impossible through the API) are skipped.
    pub fn build(subs: impl IntoIterator<Item = (SubEntry, Vec<TopicPattern>)>) -> Self {
        let mut index = Self::default();
        for (entry, patterns) in subs {
            let i = index.subs.len() as u32;
            index.any_filter |= entry.filter.needs_event();
            index.subs.push(entry);
            for p in patterns {
                if p.is_exact() {
                    index.exact.entry(p.as_str().into()).or_default().push(i);
                } else {
                    index.wildcard.push((p, i));
                }
            }
        }
        index
    }

    /// Subscriptions matching `topic`, each once, in a stable order.
    pub fn matching(&self, topic: &str, out: &mut Vec<u32>) {
        out.clear();
        if let Some(hits) = self.exact.get(topic) {
            out.extend_from_slice(hits);
        }
        for (p, i) in &self.wildcard {
            if p.matches(topic) {
                out.push(*i);
            }
        }
        if out.len() > 1 {
            out.sort_unstable();
            out.dedup();
        }
    }

    /// Subscriptions that take this event: those matching `topic` (see [`matching`])
    /// whose filter admits it. The payload is parsed at most once, and only when a
    /// topic-matched subscription has a filter. `meta` is the event's envelope.
    ///
    /// [`matching`]: TopicIndex::matching
    pub fn select(&self, topic: &str, payload: &RawValue, meta: Meta<'_>, out: &mut Vec<u32>) {
        self.select_with(topic, meta, out, || {
            serde_json::from_str(payload.get())
                .map_err(|e| {
                    // Impossible for a validated publish (the payload is JSON already).
                    tracing::warn!(error = %e, "payload could not be parsed for filters");
                })
                .ok()
        });
    }

    /// [`select`](TopicIndex::select) with the payload parser passed in, so tests can
    /// see when it runs.
    fn select_with(
        &self,
        topic: &str,
        meta: Meta<'_>,
        out: &mut Vec<u32>,
        parse: impl FnOnce() -> Option<serde_json::Value>,
    ) {
        self.matching(topic, out);
        if !out.iter().any(|&i| self.entry(i).filter.needs_event()) {
            out.retain(|&i| self.entry(i).filter.admits(None));
            return;
        }
        let parsed = parse();
        let event = parsed
            .as_ref()
            .map(|payload| Event::new(topic, payload).with_meta(meta));
        out.retain(|&i| self.entry(i).filter.admits(event.as_ref()));
    }

    /// Whether any subscription in the index has a filter.
    pub fn has_filters(&self) -> bool {
        self.any_filter
    }

    pub fn entry(&self, i: u32) -> &SubEntry {
        &self.subs[i as usize]
    }

    pub fn len(&self) -> usize {
        self.subs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.subs.is_empty()
    }
}

/// Compiles a stored subscription's filter for the index. Stored filters were checked
/// at create/update time; one that no longer compiles (the limits were lowered since)
/// is logged and makes the subscription match nothing rather than everything.
fn stored_filter(
    tenant: &TenantId,
    subscription: &SubscriptionId,
    src: Option<&str>,
    limits: &Limits,
) -> SubFilter {
    SubFilter::compile(src, limits).unwrap_or_else(|e| {
        tracing::warn!(
            tenant_id = %tenant,
            subscription_id = %subscription,
            code = e.code(),
            error = %e,
            "stored filter does not compile under the current limits; \
             the subscription matches nothing until it is fixed"
        );
        SubFilter::MatchNothing
    })
}

/// The publish path.
#[derive(Debug)]
pub struct Ingest {
    store: Arc<dyn Store>,
    limits: IngestLimits,
    /// Limits stored filters are compiled under when an index is built; the same as the
    /// API validates with (`[filter]`), so a filter accepted there compiles here.
    filter_limits: Limits,
    indexes: RwLock<HashMap<TenantId, Arc<TopicIndex>>>,
    /// Bumped on every invalidation, so an index built from data read before a change
    /// is never cached after it.
    generation: AtomicU64,
    /// Publish requests being processed now.
    inflight: Arc<AtomicUsize>,
}

impl Ingest {
    pub fn new(store: Arc<dyn Store>, limits: IngestLimits) -> Self {
        Self {
            store,
            limits,
            filter_limits: Limits::default(),
            indexes: RwLock::new(HashMap::new()),
            generation: AtomicU64::new(0),
            inflight: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// Compiles stored filters under `limits` (the configured `[filter]` section)
    /// instead of the language defaults.
    pub fn with_filter_limits(mut self, limits: Limits) -> Self {
        self.filter_limits = limits;
        self
    }

    pub fn filter_limits(&self) -> &Limits {
        &self.filter_limits
    }

    pub fn limits(&self) -> &IngestLimits {
        &self.limits
    }

    /// Forgets a tenant's index after its subscriptions or endpoints changed.
    pub fn invalidate(&self, tenant: &TenantId) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        if let Ok(mut map) = self.indexes.write() {
            map.remove(tenant);
        }
    }

    /// The tenant's index, built from the store when not cached.
    pub async fn index(&self, tenant: &TenantId) -> Result<Arc<TopicIndex>, StoreError> {
        if let Some(idx) = self
            .indexes
            .read()
            .ok()
            .and_then(|m| m.get(tenant).cloned())
        {
            return Ok(idx);
        }
        let generation = self.generation.load(Ordering::SeqCst);
        let subs = self.store.all_subscriptions(tenant).await?;
        let mut endpoints_enabled: HashMap<EndpointId, bool> = HashMap::new();
        let mut entries = Vec::with_capacity(subs.len());
        for sub in subs {
            if !sub.enabled {
                continue;
            }
            let enabled = match endpoints_enabled.get(&sub.endpoint_id) {
                Some(e) => *e,
                None => {
                    let e = self
                        .store
                        .get_endpoint(tenant, &sub.endpoint_id)
                        .await?
                        .is_some_and(|ep| ep.enabled);
                    endpoints_enabled.insert(sub.endpoint_id.clone(), e);
                    e
                }
            };
            if !enabled {
                continue;
            }
            let patterns: Vec<TopicPattern> = sub
                .topics
                .iter()
                .filter_map(|t| TopicPattern::parse(t, usize::MAX).ok())
                .collect();
            let filter = stored_filter(tenant, &sub.id, sub.filter.as_deref(), &self.filter_limits);
            entries.push((
                SubEntry {
                    id: sub.id,
                    endpoint_id: sub.endpoint_id,
                    filter,
                },
                patterns,
            ));
        }
        let index = Arc::new(TopicIndex::build(entries));
        if let Ok(mut map) = self.indexes.write()
            && self.generation.load(Ordering::SeqCst) == generation
        {
            map.insert(tenant.clone(), index.clone());
        }
        Ok(index)
    }

    /// Validates one publish; nothing is written.
    pub fn validate(&self, p: &Publish) -> Result<(), PublishError> {
        topic::validate_topic(&p.topic, self.limits.max_topic_bytes)?;
        if crate::stream::is_reserved_topic(&p.topic) {
            return Err(PublishError::ReservedTopic(p.topic.clone()));
        }
        let size = p.payload.get().len();
        if size > self.limits.max_payload_bytes {
            return Err(PublishError::PayloadTooLarge {
                size,
                limit: self.limits.max_payload_bytes,
            });
        }
        if !p.payload.get().starts_with('{') {
            return Err(PublishError::PayloadNotObject);
        }
        if let Some(k) = &p.idempotency_key
            && (k.is_empty() || k.len() > self.limits.max_idempotency_key_bytes)
        {
            return Err(PublishError::BadIdempotencyKey(
                self.limits.max_idempotency_key_bytes,
            ));
        }
        Ok(())
    }

    /// Takes an in-flight publish slot, or says the server is overloaded. The API
    /// takes it before the body is read, so an overloaded server does no work for the
    /// request (and a refused client is answered before it finishes sending).
    pub fn admit(&self) -> Result<PublishPermit, Overload> {
        let before = self.inflight.fetch_add(1, Ordering::AcqRel);
        let permit = PublishPermit {
            inflight: self.inflight.clone(),
        };
        if before >= self.limits.max_inflight_publishes {
            drop(permit);
            telemetry::record_overload(Overload::Inflight.reason(), 1);
            return Err(Overload::Inflight);
        }
        Ok(permit)
    }

    /// Stores already-validated events with their deliveries in one transaction.
    /// Outcomes come back in input order; an event refused because the tenant's queue
    /// is full is `Err(Overload::QueueFull)` and nothing of it was written.
    pub async fn publish(
        &self,
        tenant: &TenantId,
        items: Vec<Publish>,
    ) -> Result<Vec<Result<AppendOutcome, Overload>>, StoreError> {
        let index = self.index(tenant).await?;
        let now = clock::now_ms();
        let mut matched = Vec::new();
        let mut events = Vec::with_capacity(items.len());
        // `meta.time` for filters; every event of one call shares `now`.
        let time = if index.has_filters() {
            clock::rfc3339(now)
        } else {
            String::new()
        };
        for p in items {
            let id = EventId::generate(now);
            let meta = Meta {
                id: Some(id.as_str()),
                time: Some(&time),
                source: None,
            };
            index.select(&p.topic, &p.payload, meta, &mut matched);
            let deliveries = matched
                .iter()
                .enumerate()
                .map(|(seq, &i)| {
                    let e = index.entry(i);
                    NewDelivery {
                        id: DeliveryId::for_event(&id, seq as u32),
                        subscription_id: e.id.clone(),
                        endpoint_id: e.endpoint_id.clone(),
                    }
                })
                .collect();
            events.push(NewEvent {
                id,
                tenant_id: tenant.clone(),
                topic: p.topic,
                payload: p.payload,
                idempotency_key: p.idempotency_key,
                created_at: now,
                traceparent: p.traceparent,
                deliveries,
            });
        }
        let limits = AppendLimits {
            idempotency_window_ms: self.limits.idempotency_window_ms,
            max_queue_depth: self.limits.max_queue_depth_per_tenant,
        };
        let appended = self.store.append_events(events, limits).await?;
        Ok(appended
            .into_iter()
            .map(|a| match a {
                Appended::Stored(o) => {
                    telemetry::record_publish(o.deduped);
                    Ok(o)
                }
                Appended::QueueFull { .. } => {
                    telemetry::record_overload(Overload::QueueFull.reason(), 1);
                    Err(Overload::QueueFull)
                }
            })
            .collect())
    }
}

/// The topic index follows subscription and endpoint changes from the commit feed.
impl crate::store::feed::FeedListener for Ingest {
    fn committed(&self, batch: &crate::store::feed::Committed) {
        use crate::store::feed::Change;
        for change in &batch.changes {
            match change {
                Change::Subscription { tenant, .. } | Change::Endpoint { tenant, .. } => {
                    self.invalidate(tenant);
                }
                Change::Plugin { .. } | Change::ApiKey { .. } => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(n: u8) -> SubEntry {
        filtered(n, None)
    }

    fn filtered(n: u8, filter: Option<&str>) -> SubEntry {
        SubEntry {
            id: SubscriptionId::generate(i64::from(n)),
            endpoint_id: EndpointId::generate(i64::from(n)),
            filter: SubFilter::compile(filter, &Limits::default()).unwrap(),
        }
    }

    fn pats(ps: &[&str]) -> Vec<TopicPattern> {
        ps.iter()
            .map(|p| TopicPattern::parse(p, 255).unwrap())
            .collect()
    }

    fn raw(json: &str) -> Box<RawValue> {
        RawValue::from_string(json.to_owned()).unwrap()
    }

    #[test]
    fn index_matches_each_subscription_once() {
        let index = TopicIndex::build([
            (entry(1), pats(&["orders.created", "orders.*"])),
            (entry(2), pats(&["billing.#"])),
            (entry(3), pats(&["orders.created"])),
        ]);
        let mut out = Vec::new();
        index.matching("orders.created", &mut out);
        assert_eq!(out, vec![0, 2]);
        index.matching("billing.invoice.paid", &mut out);
        assert_eq!(out, vec![1]);
        index.matching("shipping.sent", &mut out);
        assert!(out.is_empty());
        assert!(!index.has_filters());
    }

    #[test]
    fn select_keeps_only_subscriptions_whose_filter_admits_the_event() {
        let index = TopicIndex::build([
            (entry(1), pats(&["orders.*"])),
            (
                filtered(2, Some("payload.amount > 100")),
                pats(&["orders.*"]),
            ),
            (
                filtered(3, Some(r#"payload.currency in ["EUR"]"#)),
                pats(&["orders.#"]),
            ),
            (
                filtered(4, Some("payload.amount > 100")),
                pats(&["billing.#"]),
            ),
        ]);
        assert!(index.has_filters());
        let mut out = Vec::new();
        let payload = raw(r#"{"amount": 250, "currency": "USD"}"#);
        index.select("orders.created", &payload, Meta::default(), &mut out);
        assert_eq!(out, vec![0, 1]);
        let payload = raw(r#"{"amount": 5, "currency": "EUR"}"#);
        index.select("orders.created", &payload, Meta::default(), &mut out);
        assert_eq!(out, vec![0, 2]);
        index.select("shipping.sent", &payload, Meta::default(), &mut out);
        assert!(out.is_empty());
    }

    #[test]
    fn payload_is_parsed_once_and_only_when_a_matched_subscription_has_a_filter() {
        let index = TopicIndex::build([
            (entry(1), pats(&["orders.*"])),
            (
                filtered(2, Some("payload.a == 1")),
                pats(&["orders.*", "billing.#"]),
            ),
            (filtered(3, Some("payload.b == 2")), pats(&["orders.#"])),
        ]);
        let mut out = Vec::new();
        let payload = serde_json::json!({"a": 1, "b": 2});
        let mut calls = 0;
        index.select_with("orders.created", Meta::default(), &mut out, || {
            calls += 1;
            Some(payload.clone())
        });
        assert_eq!((calls, out.clone()), (1, vec![0, 1, 2]));

        // Only the unfiltered subscription matches this topic: no parse at all.
        let index = TopicIndex::build([
            (entry(1), pats(&["shipping.*"])),
            (filtered(2, Some("payload.a == 1")), pats(&["orders.*"])),
        ]);
        let mut calls = 0;
        index.select_with("shipping.sent", Meta::default(), &mut out, || {
            calls += 1;
            None
        });
        assert_eq!((calls, out.clone()), (0, vec![0]));
    }

    #[test]
    fn filters_see_meta_id_and_time_but_no_headers_or_source() {
        let index = TopicIndex::build([
            (
                filtered(
                    1,
                    Some(r#"meta.id == "evt_1" && meta.time starts_with "2026-""#),
                ),
                pats(&["a"]),
            ),
            (filtered(2, Some("exists(meta.source)")), pats(&["a"])),
            (filtered(3, Some(r#"exists(headers["x"])"#)), pats(&["a"])),
            (filtered(4, Some(r#"topic == "a""#)), pats(&["a"])),
        ]);
        let mut out = Vec::new();
        let meta = Meta {
            id: Some("evt_1"),
            time: Some("2026-11-26T10:00:00.000Z"),
            source: None,
        };
        index.select("a", &raw("{}"), meta, &mut out);
        assert_eq!(out, vec![0, 3]);
    }

    #[test]
    fn a_stored_filter_that_no_longer_compiles_matches_nothing() {
        let tight = Limits {
            max_source_len: 10,
            ..Limits::default()
        };
        let tenant = TenantId::generate(1);
        let sub = SubscriptionId::generate(1);
        let f = stored_filter(&tenant, &sub, Some("payload.amount > 100"), &tight);
        assert!(matches!(f, SubFilter::MatchNothing));
        assert!(matches!(
            stored_filter(&tenant, &sub, None, &tight),
            SubFilter::MatchAll
        ));
        let index = TopicIndex::build([(
            SubEntry {
                id: sub,
                endpoint_id: EndpointId::generate(1),
                filter: f,
            },
            pats(&["orders.#"]),
        )]);
        let mut out = Vec::new();
        index.select(
            "orders.created",
            &raw(r#"{"amount": 500}"#),
            Meta::default(),
            &mut out,
        );
        assert!(out.is_empty());
    }

    #[test]
    fn an_unparseable_payload_fails_every_filter_but_not_unfiltered_subscriptions() {
        let index = TopicIndex::build([
            (entry(1), pats(&["a"])),
            (filtered(2, Some("!exists(payload.x)")), pats(&["a"])),
        ]);
        let mut out = Vec::new();
        index.select_with("a", Meta::default(), &mut out, || None);
        assert_eq!(out, vec![0]);
    }
}
