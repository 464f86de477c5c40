//! Ingest: validate a publish, match it to subscriptions, hand it to the store.
//!
//! The payload is parsed once, by the API layer, into raw JSON text that is stored
//! as-is. Topic matching uses a per-tenant [`TopicIndex`] held in memory, built from
//! the store on first use and replaced whole (an `Arc` swap) whenever this node
//! changes that tenant's subscriptions or endpoints. The event, its stream position
//! and one pending delivery per matching subscription are written in one store
//! transaction; the caller answers `202` only after it is durable.

pub mod topic;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use serde_json::value::RawValue;

use crate::clock;
use crate::ids::{DeliveryId, EndpointId, EventId, SubscriptionId, TenantId};
use crate::store::{AppendOutcome, NewDelivery, NewEvent, Store, StoreError};
use crate::telemetry;
use topic::{TopicError, TopicPattern};

/// Limits checked on every publish (`[api]` in the configuration).
#[derive(Debug, Clone)]
pub struct IngestLimits {
    pub max_payload_bytes: usize,
    pub max_topic_bytes: usize,
    pub max_idempotency_key_bytes: usize,
    pub idempotency_window_ms: i64,
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
}

/// One event to publish, already parsed once into its raw JSON payload.
#[derive(Debug)]
pub struct Publish {
    pub topic: String,
    pub payload: Box<RawValue>,
    pub idempotency_key: Option<String>,
}

/// One subscription as the index sees it.
#[derive(Debug)]
pub struct SubEntry {
    pub id: SubscriptionId,
    pub endpoint_id: EndpointId,
}

/// The subscriptions of one tenant, ready for matching.
#[derive(Debug, Default)]
pub struct TopicIndex {
    subs: Vec<SubEntry>,
    /// Exact topic → indexes into `subs`.
    exact: HashMap<Box<str>, Vec<u32>>,
    /// Wildcard patterns with the index of their subscription.
    wildcard: Vec<(TopicPattern, u32)>,
}

impl TopicIndex {
    /// Builds an index from enabled subscriptions whose endpoint is enabled.
    /// Subscriptions with unparseable patterns (impossible through the API) are skipped.
    pub fn build(subs: impl IntoIterator<Item = (SubEntry, Vec<TopicPattern>)>) -> Self {
        let mut index = Self::default();
        for (entry, patterns) in subs {
            let i = index.subs.len() as u32;
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

/// The publish path.
#[derive(Debug)]
pub struct Ingest {
    store: Arc<dyn Store>,
    limits: IngestLimits,
    indexes: RwLock<HashMap<TenantId, Arc<TopicIndex>>>,
    /// Bumped on every invalidation, so an index built from data read before a change
    /// is never cached after it.
    generation: AtomicU64,
}

impl Ingest {
    pub fn new(store: Arc<dyn Store>, limits: IngestLimits) -> Self {
        Self {
            store,
            limits,
            indexes: RwLock::new(HashMap::new()),
            generation: AtomicU64::new(0),
        }
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
        if let Some(idx) = self.indexes.read().ok().and_then(|m| m.get(tenant).cloned()) {
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
            entries.push((
                SubEntry {
                    id: sub.id,
                    endpoint_id: sub.endpoint_id,
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

    /// Stores already-validated events with their deliveries in one transaction.
    /// Outcomes come back in input order.
    pub async fn publish(
        &self,
        tenant: &TenantId,
        items: Vec<Publish>,
    ) -> Result<Vec<AppendOutcome>, StoreError> {
        let index = self.index(tenant).await?;
        let now = clock::now_ms();
        let mut matched = Vec::new();
        let mut events = Vec::with_capacity(items.len());
        for p in items {
            index.matching(&p.topic, &mut matched);
            let id = EventId::generate(now);
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
                deliveries,
            });
        }
        let outcomes = self
            .store
            .append_events(events, self.limits.idempotency_window_ms)
            .await?;
        for o in &outcomes {
            telemetry::record_publish(o.deduped);
        }
        Ok(outcomes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(n: u8) -> SubEntry {
        SubEntry {
            id: SubscriptionId::generate(i64::from(n)),
            endpoint_id: EndpointId::generate(i64::from(n)),
        }
    }

    fn pats(ps: &[&str]) -> Vec<TopicPattern> {
        ps.iter().map(|p| TopicPattern::parse(p, 255).unwrap()).collect()
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
    }
}
