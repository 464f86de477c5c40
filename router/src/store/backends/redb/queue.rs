//! The delivery queue and the hot path: publishes, claims and outcomes (batched by
//! the writer into one opening of the tables per commit), lease reclaiming, DLQ
//! requeue and replays.

use std::collections::HashMap;
use std::ops::Bound;
use std::sync::Arc;

use redb::{ReadableTable, Table, WriteTransaction};
use serde::Serialize;
use serde_json::value::RawValue;

use crate::ids::{DeliveryId, EndpointId, EventId, TenantId};
use crate::store::feed::Committed;
use crate::store::{
    AppendLimits, AppendOutcome, Appended, Claim, Claimed, Delivery, DeliveryStatus, Event,
    NewEvent, NextState, Outcome, RECORD_VERSION, Replay, ReplayDelivery, RequeueBatch,
    RequeueSelection, Requeued, StoreError, StoreResult,
};
use crate::stream::StatusData;

use super::feed::StatusRow;
use super::tables::*;
use super::{
    RedbStore, SCAN_FACTOR, count_transition, counter_add, counter_get, decode, encode,
    load_delivery, load_delivery_or_quarantine, ms, quarantine, upper,
};

/// The stored form of an event, borrowed from a [`NewEvent`] so nothing is copied
/// before encoding. Field names match [`Event`]; the cursor lives only in the key, so
/// the record can be encoded before the writer assigns it.
#[derive(Serialize)]
pub(super) struct EventRef<'a> {
    record_version: u32,
    id: &'a EventId,
    tenant_id: &'a TenantId,
    topic: &'a str,
    payload: &'a RawValue,
    idempotency_key: Option<&'a str>,
    created_at: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    traceparent: Option<&'a str>,
}

/// An event encoded for storage before it reaches the writer.
pub(super) struct PreparedEvent {
    pub(super) tenant: String,
    pub(super) id: EventId,
    pub(super) idempotency_key: Option<String>,
    pub(super) created_at: i64,
    pub(super) record: Vec<u8>,
    /// (delivery id, endpoint id, encoded delivery record).
    pub(super) deliveries: Vec<(DeliveryId, EndpointId, Vec<u8>)>,
}

impl PreparedEvent {
    pub(super) fn tenant_id(&self) -> TenantId {
        TenantId::from_trusted(self.tenant.clone())
    }

    fn encode(ev: &NewEvent) -> StoreResult<Self> {
        let record = serde_json::to_vec(&EventRef {
            record_version: RECORD_VERSION,
            id: &ev.id,
            tenant_id: &ev.tenant_id,
            topic: &ev.topic,
            payload: &ev.payload,
            idempotency_key: ev.idempotency_key.as_deref(),
            created_at: ev.created_at,
            traceparent: ev.traceparent.as_deref(),
        })
        .map_err(|e| StoreError::Backend(format!("encode event: {e}")))?;
        let deliveries = ev
            .deliveries
            .iter()
            .map(|nd| {
                let delivery = Delivery {
                    record_version: RECORD_VERSION,
                    id: nd.id.clone(),
                    tenant_id: ev.tenant_id.clone(),
                    event_id: ev.id.clone(),
                    subscription_id: nd.subscription_id.clone(),
                    endpoint_id: nd.endpoint_id.clone(),
                    status: DeliveryStatus::Pending,
                    attempts: 0,
                    next_attempt_at: ev.created_at,
                    claimed_by: None,
                    lease_until: None,
                    lease_token: 0,
                    created_at: ev.created_at,
                    updated_at: ev.created_at,
                    body: None,
                };
                Ok((nd.id.clone(), nd.endpoint_id.clone(), encode(&delivery)?))
            })
            .collect::<StoreResult<Vec<_>>>()?;
        Ok(Self {
            tenant: ev.tenant_id.to_string(),
            id: ev.id.clone(),
            idempotency_key: ev.idempotency_key.clone(),
            created_at: ev.created_at,
            record,
            deliveries,
        })
    }
}

pub(super) fn reclaim_leases(
    txn: &WriteTransaction,
    now: Option<i64>,
) -> StoreResult<Vec<(TenantId, EndpointId)>> {
    let mut leases = txn.open_table(LEASES)?;
    let mut deliveries = txn.open_table(DELIVERIES)?;
    let mut due = txn.open_table(DELIVERIES_DUE)?;
    let mut counters = txn.open_table(COUNTERS)?;
    let upto = now.map_or(u64::MAX, |n| ms(n).saturating_sub(1));
    let mut expired: Vec<(u64, String, String)> = Vec::new();
    for row in leases.range::<(u64, &str)>((0, "")..=(upto, "\u{7f}"))? {
        let (k, v) = row?;
        let (until, id) = k.value();
        expired.push((until, id.to_owned(), v.value().to_owned()));
    }
    let mut woken = Vec::new();
    for (until, id, tenant) in expired {
        leases.remove((until, id.as_str()))?;
        let Some(mut d) = load_delivery_or_quarantine(txn, &deliveries, &tenant, &id)? else {
            continue;
        };
        if d.status != DeliveryStatus::InFlight {
            continue;
        }
        let to = if d.attempts == 0 {
            DeliveryStatus::Pending
        } else {
            DeliveryStatus::Retrying
        };
        count_transition(&mut counters, &tenant, d.status, to)?;
        let at = now.unwrap_or(d.next_attempt_at).max(d.next_attempt_at);
        d.status = to;
        d.claimed_by = None;
        d.lease_until = None;
        d.next_attempt_at = at;
        deliveries.insert((tenant.as_str(), id.as_str()), encode(&d)?.as_slice())?;
        due.insert(
            (d.endpoint_id.as_str(), ms(at), id.as_str()),
            tenant.as_str(),
        )?;
        woken.push((TenantId::from_trusted(tenant), d.endpoint_id));
    }
    Ok(woken)
}

/// A tenant's queued deliveries (pending, retrying, in flight) as stored.
fn stored_queue_depth(counters: &Table<(&str, &str), u64>, tenant: &str) -> StoreResult<u64> {
    let mut depth = 0u64;
    for status in [
        DeliveryStatus::Pending,
        DeliveryStatus::Retrying,
        DeliveryStatus::InFlight,
    ] {
        depth = depth.saturating_add(counter_get(counters, tenant, status.as_str())?);
    }
    Ok(depth)
}

pub(super) fn requeue_dead(
    txn: &WriteTransaction,
    tenant: &TenantId,
    batch: &RequeueBatch,
) -> StoreResult<Requeued> {
    let t = tenant.as_str();
    let limit = batch.limit.max(1);
    let mut dead = txn.open_table(DEAD)?;
    let mut deliveries = txn.open_table(DELIVERIES)?;
    let mut due = txn.open_table(DELIVERIES_DUE)?;
    let mut counters = txn.open_table(COUNTERS)?;
    let mut out = Requeued::default();
    let ids: Vec<String> = match &batch.selection {
        RequeueSelection::Ids(ids) => ids.iter().take(limit).map(|i| i.to_string()).collect(),
        RequeueSelection::Endpoint(e) => {
            let up = upper(t);
            let start = match batch.after.as_deref() {
                Some(a) => Bound::Excluded((t, a)),
                None => Bound::Included((t, "")),
            };
            let scan_cap = limit.saturating_mul(SCAN_FACTOR);
            let mut ids = Vec::new();
            let mut scanned = 0usize;
            for row in dead.range::<(&str, &str)>((start, Bound::Excluded((up.as_str(), ""))))? {
                let (k, v) = row?;
                scanned += 1;
                let id = k.value().1;
                if v.value() == e.as_str() {
                    ids.push(id.to_owned());
                }
                if ids.len() >= limit || scanned >= scan_cap {
                    out.next = Some(id.to_owned());
                    break;
                }
            }
            ids
        }
    };
    let mut depth = stored_queue_depth(&counters, t)?;
    for (i, id) in ids.iter().enumerate() {
        if depth >= batch.max_queue_depth {
            out.queue_full = true;
            // Continue right before the first one not moved.
            out.next = i
                .checked_sub(1)
                .map(|p| ids[p].clone())
                .or(batch.after.clone());
            break;
        }
        if dead.remove((t, id.as_str()))?.is_none() {
            continue;
        }
        let Some(mut d) = load_delivery_or_quarantine(txn, &deliveries, t, id)? else {
            continue;
        };
        count_transition(&mut counters, t, d.status, DeliveryStatus::Pending)?;
        d.status = DeliveryStatus::Pending;
        d.attempts = 0;
        d.next_attempt_at = batch.now;
        d.updated_at = batch.now;
        // A requeue is a new start: the transform runs again (it may have been fixed).
        d.body = None;
        deliveries.insert((t, id.as_str()), encode(&d)?.as_slice())?;
        due.insert((d.endpoint_id.as_str(), ms(batch.now), id.as_str()), t)?;
        out.woken.push((tenant.clone(), d.endpoint_id));
        depth += 1;
    }
    Ok(out)
}

pub(super) fn create_replay(
    txn: &WriteTransaction,
    replay: &Replay,
    new: &[ReplayDelivery],
    max_queue_depth: u64,
) -> StoreResult<usize> {
    let t = replay.tenant_id.as_str();
    let mut deliveries = txn.open_table(DELIVERIES)?;
    let mut due = txn.open_table(DELIVERIES_DUE)?;
    let mut counters = txn.open_table(COUNTERS)?;
    // As many as the tenant's queue has room for, in order.
    let room = max_queue_depth.saturating_sub(stored_queue_depth(&counters, t)?);
    let new = &new[..new.len().min(usize::try_from(room).unwrap_or(usize::MAX))];
    // Every id first: an error must come before anything is written.
    let mut next_seq: HashMap<&str, u32> = HashMap::new();
    let mut ids = Vec::with_capacity(new.len());
    for nd in new {
        let seq = match next_seq.get(nd.event_id.as_str()) {
            Some(s) => *s,
            None => {
                let prefix = DeliveryId::event_prefix(&nd.event_id);
                let end = format!("{prefix}\u{7f}");
                let mut range =
                    deliveries.range::<(&str, &str)>((t, prefix.as_str())..(t, end.as_str()))?;
                match range.next_back() {
                    Some(row) => {
                        let (k, _) = row?;
                        DeliveryId::seq_of(k.value().1).map_or(0, |s| s + 1)
                    }
                    None => 0,
                }
            }
        };
        if seq > DeliveryId::MAX_SEQ {
            // Its ids would wrap around and overwrite the event's first deliveries.
            return Err(StoreError::LimitReached {
                what: "deliveries of one event",
                limit: DeliveryId::MAX_SEQ as usize + 1,
            });
        }
        next_seq.insert(nd.event_id.as_str(), seq + 1);
        ids.push(DeliveryId::for_event(&nd.event_id, seq));
    }
    for (nd, id) in new.iter().zip(ids) {
        let d = Delivery {
            record_version: RECORD_VERSION,
            id: id.clone(),
            tenant_id: replay.tenant_id.clone(),
            event_id: nd.event_id.clone(),
            subscription_id: nd.subscription_id.clone(),
            endpoint_id: nd.endpoint_id.clone(),
            status: DeliveryStatus::Pending,
            attempts: 0,
            next_attempt_at: replay.created_at,
            claimed_by: None,
            lease_until: None,
            lease_token: 0,
            created_at: replay.created_at,
            updated_at: replay.created_at,
            body: None,
        };
        deliveries.insert((t, id.as_str()), encode(&d)?.as_slice())?;
        due.insert(
            (nd.endpoint_id.as_str(), ms(replay.created_at), id.as_str()),
            t,
        )?;
    }
    counter_add(
        &mut counters,
        t,
        DeliveryStatus::Pending.as_str(),
        new.len() as i64,
    )?;
    let mut record = replay.clone();
    record.deliveries = record.deliveries.saturating_add(new.len() as u64);
    txn.open_table(REPLAYS)?
        .insert((t, replay.id.as_str()), encode(&record)?.as_slice())?;
    Ok(new.len())
}

/// The hot-path tables, opened once per commit for every publish, claim and outcome
/// in it. Counter changes are summed and written once at the end.
pub(super) struct Hot<'t> {
    txn: &'t WriteTransaction,
    events: Table<'t, (&'static str, u64), &'static [u8]>,
    event_ids: Table<'t, (&'static str, &'static str), u64>,
    idempotency: Table<'t, (&'static str, &'static str), (u64, i64, &'static str)>,
    deliveries: Table<'t, (&'static str, &'static str), &'static [u8]>,
    due: Table<'t, (&'static str, u64, &'static str), &'static str>,
    leases: Table<'t, (u64, &'static str), &'static str>,
    dead: Table<'t, (&'static str, &'static str), &'static str>,
    attempts: Table<'t, (&'static str, &'static str, u32), &'static [u8]>,
    counters: Table<'t, (&'static str, &'static str), u64>,
    status: Table<'t, (&'static str, u64), (i64, &'static [u8])>,
    /// (tenant, counter) → change.
    deltas: HashMap<(String, &'static str), i64>,
    /// Last cursor per tenant touched by this batch.
    heads: HashMap<String, u64>,
    /// Write a `deliveries.status` item per outcome.
    stream_status: bool,
    /// The status items written, for the live stream.
    statuses: Vec<StatusRow>,
}

/// Runs every hot operation of one commit. `Err` is a storage failure (the batch
/// aborts); domain outcomes are per operation, and so is a corrupt row: every
/// operation reads what it needs before it writes, so one that meets a row it cannot
/// decode fails alone, having written nothing.
#[allow(clippy::type_complexity)]
pub(super) fn run_hot(
    txn: &WriteTransaction,
    ops: &[super::writer::HotOp],
    stream_status: bool,
) -> StoreResult<(Vec<StoreResult<super::writer::HotResult>>, Vec<StatusRow>)> {
    use super::writer::{HotOp, HotResult};
    let mut h = Hot {
        txn,
        events: txn.open_table(EVENTS)?,
        event_ids: txn.open_table(EVENT_IDS)?,
        idempotency: txn.open_table(IDEMPOTENCY)?,
        deliveries: txn.open_table(DELIVERIES)?,
        due: txn.open_table(DELIVERIES_DUE)?,
        leases: txn.open_table(LEASES)?,
        dead: txn.open_table(DEAD)?,
        attempts: txn.open_table(ATTEMPTS)?,
        counters: txn.open_table(COUNTERS)?,
        status: txn.open_table(STREAM_STATUS)?,
        deltas: HashMap::new(),
        heads: HashMap::new(),
        stream_status,
        statuses: Vec::new(),
    };
    let mut results = Vec::with_capacity(ops.len());
    for op in ops {
        let result = match op {
            HotOp::Append { events, limits, .. } => h.append(events, limits).map(HotResult::Append),
            HotOp::Claim { claim, .. } => h.claim(claim).map(HotResult::Claim),
            HotOp::Outcome { outcome, .. } => h.outcome(outcome).map(HotResult::Outcome),
        };
        match result {
            Err(e @ StoreError::Corrupt { .. }) => results.push(Err(e)),
            other => results.push(Ok(other?)),
        }
    }
    let statuses = h.finish()?;
    Ok((results, statuses))
}

impl Hot<'_> {
    fn count(&mut self, tenant: &str, name: &'static str, delta: i64) {
        *self.deltas.entry((tenant.to_owned(), name)).or_default() += delta;
    }

    fn transition(&mut self, tenant: &str, from: DeliveryStatus, to: DeliveryStatus) {
        if from != to {
            self.count(tenant, from.as_str(), -1);
            self.count(tenant, to.as_str(), 1);
        }
    }

    /// The tenant's next stream cursor, assigned in this transaction.
    fn next_cursor(&mut self, tenant: &str) -> StoreResult<u64> {
        let head = match self.heads.get(tenant) {
            Some(h) => *h,
            None => counter_get(&self.counters, tenant, COUNTER_CURSOR)?,
        };
        let cursor = head + 1;
        self.heads.insert(tenant.to_owned(), cursor);
        Ok(cursor)
    }

    /// Writes the summed counter changes; returns the status items written.
    fn finish(mut self) -> StoreResult<Vec<StatusRow>> {
        for (tenant, head) in std::mem::take(&mut self.heads) {
            self.counters
                .insert((tenant.as_str(), COUNTER_CURSOR), head)?;
        }
        for ((tenant, name), delta) in std::mem::take(&mut self.deltas) {
            if delta != 0 {
                counter_add(&mut self.counters, &tenant, name, delta)?;
            }
        }
        Ok(self.statuses)
    }

    /// Events, stream positions, idempotency records and deliveries. Checks first; it
    /// writes only what it has decided to keep.
    fn append(
        &mut self,
        events: &[PreparedEvent],
        limits: &AppendLimits,
    ) -> StoreResult<Vec<Appended>> {
        let mut outcomes = Vec::with_capacity(events.len());
        for ev in events {
            let tenant = ev.tenant.as_str();
            if let Some(key) = ev.idempotency_key.as_deref()
                && let Some(found) = self.idempotency.get((tenant, key))?
            {
                let (cursor, created, id) = found.value();
                if ev.created_at.saturating_sub(created) < limits.idempotency_window_ms {
                    outcomes.push(Appended::Stored(AppendOutcome {
                        id: EventId::from_trusted(id.to_owned()),
                        cursor,
                        deduped: true,
                    }));
                    continue;
                }
            }
            if !ev.deliveries.is_empty() {
                let depth = self.queue_depth(tenant)?;
                if depth.saturating_add(ev.deliveries.len() as u64) > limits.max_queue_depth {
                    outcomes.push(Appended::QueueFull {
                        limit: limits.max_queue_depth,
                    });
                    continue;
                }
            }
            let cursor = self.next_cursor(tenant)?;
            self.events.insert((tenant, cursor), ev.record.as_slice())?;
            self.event_ids.insert((tenant, ev.id.as_str()), cursor)?;
            if let Some(key) = ev.idempotency_key.as_deref() {
                self.idempotency
                    .insert((tenant, key), (cursor, ev.created_at, ev.id.as_str()))?;
            }
            let due = ms(ev.created_at);
            for (id, endpoint, record) in &ev.deliveries {
                self.deliveries
                    .insert((tenant, id.as_str()), record.as_slice())?;
                self.due
                    .insert((endpoint.as_str(), due, id.as_str()), tenant)?;
            }
            if !ev.deliveries.is_empty() {
                self.count(
                    tenant,
                    DeliveryStatus::Pending.as_str(),
                    ev.deliveries.len() as i64,
                );
            }
            outcomes.push(Appended::Stored(AppendOutcome {
                id: ev.id.clone(),
                cursor,
                deduped: false,
            }));
        }
        Ok(outcomes)
    }

    /// A tenant's queued deliveries as of this point of the transaction.
    fn queue_depth(&self, tenant: &str) -> StoreResult<u64> {
        let mut depth = 0i64;
        for status in [
            DeliveryStatus::Pending,
            DeliveryStatus::Retrying,
            DeliveryStatus::InFlight,
        ] {
            let name = status.as_str();
            let stored = counter_get(&self.counters, tenant, name)?;
            let delta = self
                .deltas
                .get(&(tenant.to_owned(), name))
                .copied()
                .unwrap_or(0);
            depth += i64::try_from(stored)
                .unwrap_or(i64::MAX)
                .saturating_add(delta);
        }
        Ok(u64::try_from(depth).unwrap_or(0))
    }

    /// Leases an endpoint's due deliveries (see `Store::claim_due`).
    fn claim(&mut self, claim: &Claim) -> StoreResult<Vec<Delivery>> {
        let e = claim.endpoint.as_str();
        // Collect first: the range borrows the table we then modify.
        let mut keys: Vec<(u64, String, String)> = Vec::new();
        for row in self
            .due
            .range::<(&str, u64, &str)>((e, 0, "")..=(e, ms(claim.now), "\u{7f}"))?
        {
            let (k, v) = row?;
            let (_, at, id) = k.value();
            keys.push((at, id.to_owned(), v.value().to_owned()));
            if keys.len() >= claim.limit {
                break;
            }
        }
        let mut claimed = Vec::with_capacity(keys.len());
        for (at, id, tenant) in keys {
            self.due.remove((e, at, id.as_str()))?;
            let mut d = match load_delivery(&self.deliveries, &tenant, &id) {
                Ok(Some(d)) => d,
                Ok(None) => continue,
                // Out of the queue's way, or every claim of this endpoint would meet it.
                Err(StoreError::Corrupt { table, message }) => {
                    quarantine(self.txn, table, &format!("{tenant}/{id}"), &message)?;
                    continue;
                }
                Err(other) => return Err(other),
            };
            self.transition(&tenant, d.status, DeliveryStatus::InFlight);
            d.status = DeliveryStatus::InFlight;
            d.claimed_by = Some(claim.node.clone());
            d.lease_until = Some(claim.lease_until);
            d.lease_token += 1;
            d.updated_at = claim.now;
            self.deliveries
                .insert((tenant.as_str(), id.as_str()), encode(&d)?.as_slice())?;
            self.leases
                .insert((ms(claim.lease_until), id.as_str()), tenant.as_str())?;
            claimed.push(d);
        }
        Ok(claimed)
    }

    /// Writes an attempt and the delivery's next state (see `Store::record_outcome`).
    fn outcome(&mut self, o: &Outcome) -> StoreResult<bool> {
        let t = o.tenant.as_str();
        let id = o.delivery.as_str();
        let Some(mut d) = load_delivery(&self.deliveries, t, id)? else {
            return Ok(false);
        };
        if d.status != DeliveryStatus::InFlight || d.lease_token != o.lease_token {
            return Ok(false);
        }
        if let Some(until) = d.lease_until {
            self.leases.remove((ms(until), id))?;
        }
        let to = match o.next {
            NextState::Succeeded => DeliveryStatus::Succeeded,
            NextState::Retry { .. } => DeliveryStatus::Retrying,
            NextState::Dead => DeliveryStatus::Dead,
            NextState::Cancelled => DeliveryStatus::Cancelled,
        };
        self.transition(t, d.status, to);
        d.status = to;
        d.attempts = d.attempts.max(o.attempt.number);
        d.claimed_by = None;
        d.lease_until = None;
        d.updated_at = o.attempt.started_at + i64::try_from(o.attempt.latency_ms).unwrap_or(0);
        match o.next {
            NextState::Retry { at } => {
                if d.body.is_none() {
                    d.body.clone_from(&o.body);
                }
                d.next_attempt_at = at;
                self.due.insert((d.endpoint_id.as_str(), ms(at), id), t)?;
            }
            NextState::Dead => {
                self.dead.insert((t, id), d.endpoint_id.as_str())?;
            }
            NextState::Succeeded | NextState::Cancelled => {}
        }
        self.deliveries.insert((t, id), encode(&d)?.as_slice())?;
        self.attempts
            .insert((t, id, o.attempt.number), encode(&o.attempt)?.as_slice())?;
        if self.stream_status {
            let cursor = self.next_cursor(t)?;
            let data = serde_json::to_string(&StatusData {
                attempt_id: o.attempt.id.as_str(),
                delivery_id: id,
                event_id: d.event_id.as_str(),
                endpoint_id: d.endpoint_id.as_str(),
                subscription_id: d.subscription_id.as_str(),
                status: to.as_str(),
                attempt: o.attempt.number,
                http_code: o.attempt.status_code,
                latency_ms: o.attempt.latency_ms,
                error_kind: o.attempt.error_kind.as_deref(),
                at: crate::clock::rfc3339(d.updated_at),
            })
            .map_err(|e| StoreError::Backend(format!("encode status: {e}")))?;
            self.status
                .insert((t, cursor), (d.updated_at, data.as_bytes()))?;
            self.statuses.push(StatusRow {
                tenant: t.into(),
                cursor,
                at: d.updated_at,
                data,
            });
        }
        Ok(true)
    }
}

impl RedbStore {
    pub(super) async fn append_events(
        &self,
        events: Vec<NewEvent>,
        limits: AppendLimits,
    ) -> StoreResult<Vec<Appended>> {
        if let Some(reason) = &self.read_only {
            return Err(StoreError::ReadOnly(reason.clone()));
        }
        // Encoding happens here, on the caller's task, in parallel with other callers;
        // the single writer only inserts bytes.
        let prepared = events
            .iter()
            .map(PreparedEvent::encode)
            .collect::<StoreResult<Vec<_>>>()?;
        self.writer
            .hot(|reply| super::writer::HotOp::Append {
                events: prepared,
                limits,
                reply,
            })
            .await
    }

    pub(super) async fn claim_due(&self, claim: Claim) -> StoreResult<Vec<Claimed>> {
        if let Some(reason) = &self.read_only {
            return Err(StoreError::ReadOnly(reason.clone()));
        }
        let tenant = claim.tenant.clone();
        let deliveries = self
            .writer
            .hot(|reply| super::writer::HotOp::Claim { claim, reply })
            .await?;
        // Events are immutable: read them outside the writer, in parallel with it.
        let txn = self.read()?;
        let event_ids = txn.open_table(EVENT_IDS)?;
        let events = txn.open_table(EVENTS)?;
        let t = tenant.as_str();
        let mut out = Vec::with_capacity(deliveries.len());
        let mut orphans = Vec::new();
        let mut last: Option<Arc<Event>> = None;
        for delivery in deliveries {
            let event = match last.take() {
                Some(e) if e.id == delivery.event_id => e,
                _ => {
                    let found = event_ids
                        .get((t, delivery.event_id.as_str()))?
                        .map(|g| g.value());
                    let raw = match found {
                        Some(cursor) => events.get((t, cursor))?.map(|raw| (cursor, raw)),
                        None => None,
                    };
                    let decoded = raw.map(|(cursor, raw)| {
                        decode::<Event>("events", raw.value()).map(|mut e| {
                            e.cursor = cursor;
                            e
                        })
                    });
                    match decoded {
                        Some(Ok(e)) => Arc::new(e),
                        Some(Err(StoreError::Corrupt { message, .. })) => {
                            tracing::error!(tenant_id = t, event_id = %delivery.event_id,
                                error = %message, "store: a claimed delivery's event is unreadable");
                            orphans.push(delivery);
                            continue;
                        }
                        Some(Err(e)) => return Err(e),
                        None => {
                            orphans.push(delivery);
                            continue;
                        }
                    }
                }
            };
            last = Some(Arc::clone(&event));
            out.push(Claimed { delivery, event });
        }
        drop((event_ids, events, txn));
        // Nothing left to deliver: settle them now rather than leave them leased (the
        // reaper would hand them back, and the next claim would meet them again).
        for delivery in orphans {
            let now = crate::clock::now_ms();
            self.record_outcome(Outcome::event_missing(&tenant, &delivery, now))
                .await?;
        }
        Ok(out)
    }

    pub(super) async fn record_outcome(&self, outcome: Outcome) -> StoreResult<bool> {
        if let Some(reason) = &self.read_only {
            return Err(StoreError::ReadOnly(reason.clone()));
        }
        self.writer
            .hot(|reply| super::writer::HotOp::Outcome { outcome, reply })
            .await
    }

    pub(super) async fn reclaim_leases(&self, now: Option<i64>) -> StoreResult<usize> {
        let woken = self.write(move |txn| reclaim_leases(txn, now)).await?;
        let n = woken.len();
        self.feed.announce(Committed::queued(woken));
        Ok(n)
    }

    pub(super) async fn requeue_dead(
        &self,
        tenant: &TenantId,
        batch: RequeueBatch,
    ) -> StoreResult<Requeued> {
        let tenant = tenant.clone();
        let requeued = self
            .write(move |txn| requeue_dead(txn, &tenant, &batch))
            .await?;
        self.feed
            .announce(Committed::queued(requeued.woken.clone()));
        Ok(requeued)
    }

    pub(super) async fn create_replay(
        &self,
        replay: Replay,
        deliveries: Vec<ReplayDelivery>,
        max_queue_depth: u64,
    ) -> StoreResult<usize> {
        let mut woken: Vec<(TenantId, EndpointId)> = deliveries
            .iter()
            .map(|d| (replay.tenant_id.clone(), d.endpoint_id.clone()))
            .collect();
        let written = self
            .write(move |txn| create_replay(txn, &replay, &deliveries, max_queue_depth))
            .await?;
        woken.truncate(written);
        self.feed.announce(Committed::queued(woken));
        Ok(written)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::SubscriptionId;
    use crate::store::{NewDelivery, Tenant};
    use redb::ReadableDatabase;

    async fn store() -> (RedbStore, tempfile::TempDir, TenantId) {
        let dir = tempfile::tempdir().unwrap();
        let store = RedbStore::open(
            &dir.path().join("s.redb"),
            Default::default(),
            crate::store::feed::CommitFeed::new(),
        )
        .unwrap();
        let tenant = TenantId::generate(1);
        store
            .create_tenant(Tenant {
                record_version: RECORD_VERSION,
                id: tenant.clone(),
                name: "t".into(),
                created_at: 1,
                retention: Default::default(),
            })
            .await
            .unwrap();
        (store, dir, tenant)
    }

    fn event(tenant: &TenantId, endpoint: &EndpointId, at: i64) -> NewEvent {
        let id = EventId::generate(at);
        NewEvent {
            deliveries: vec![NewDelivery {
                id: DeliveryId::for_event(&id, 0),
                subscription_id: SubscriptionId::generate(at),
                endpoint_id: endpoint.clone(),
            }],
            id,
            tenant_id: tenant.clone(),
            topic: "a.b".into(),
            payload: RawValue::from_string("{}".into()).unwrap(),
            idempotency_key: None,
            created_at: at,
            traceparent: None,
        }
    }

    const LIMITS: AppendLimits = AppendLimits {
        idempotency_window_ms: 1000,
        max_queue_depth: u64::MAX,
    };

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_corrupt_delivery_row_fails_only_its_own_operations_and_is_quarantined() {
        let (store, _dir, tenant) = store().await;
        let endpoint = EndpointId::generate(1);
        store
            .append_events(vec![event(&tenant, &endpoint, 10)], LIMITS)
            .await
            .unwrap();
        // A row nobody can decode, due on the same endpoint before the good one.
        let (t, e) = (tenant.to_string(), endpoint.to_string());
        store
            .write(move |txn| {
                txn.open_table(DELIVERIES)?
                    .insert((t.as_str(), "dlv_bad"), b"{not json".as_slice())?;
                txn.open_table(DELIVERIES_DUE)?
                    .insert((e.as_str(), 0, "dlv_bad"), t.as_str())?;
                Ok(())
            })
            .await
            .unwrap();
        let claim = || Claim {
            node: "n".into(),
            tenant: tenant.clone(),
            endpoint: endpoint.clone(),
            now: 1_000,
            lease_until: 100_000,
            limit: 10,
            fence: None,
        };
        // The claim and a publish beside it both succeed; the bad row is set aside.
        let (claimed, published) = tokio::join!(
            store.claim_due(claim()),
            store.append_events(vec![event(&tenant, &endpoint, 20)], LIMITS)
        );
        let claimed = claimed.unwrap();
        published.unwrap();
        assert!(claimed.iter().all(|c| c.delivery.id.as_str() != "dlv_bad"));
        assert!(!claimed.is_empty());
        let txn = store.database().unwrap().begin_read().unwrap();
        let q = txn.open_table(QUARANTINE).unwrap();
        let key = format!("{tenant}/dlv_bad");
        let row = q.get(("deliveries", key.as_str())).unwrap().unwrap();
        assert!(!row.value().1.is_empty());
        drop(row);
        drop((q, txn));
        // It is out of the queue: the next claim does not meet it again.
        let again = store.claim_due(claim()).await.unwrap();
        assert!(again.iter().all(|c| c.delivery.id.as_str() != "dlv_bad"));
        // An outcome for it fails alone; a publish next to it is stored.
        let outcome = Outcome {
            tenant: tenant.clone(),
            delivery: DeliveryId::from_trusted("dlv_bad".into()),
            lease_token: 1,
            attempt: crate::store::Attempt {
                record_version: RECORD_VERSION,
                id: crate::ids::AttemptId::generate(1),
                delivery_id: DeliveryId::from_trusted("dlv_bad".into()),
                tenant_id: tenant.clone(),
                number: 1,
                started_at: 1,
                status_code: Some(200),
                latency_ms: 1,
                response_excerpt: None,
                error_kind: None,
                sent: None,
            },
            next: NextState::Succeeded,
            body: None,
        };
        let (recorded, published) = tokio::join!(
            store.record_outcome(outcome),
            store.append_events(vec![event(&tenant, &endpoint, 30)], LIMITS)
        );
        assert!(
            matches!(recorded, Err(StoreError::Corrupt { .. })),
            "{recorded:?}"
        );
        assert!(matches!(published.unwrap()[0], Appended::Stored(_)));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_claimed_delivery_whose_event_is_gone_is_cancelled_not_left_leased() {
        let (store, _dir, tenant) = store().await;
        let endpoint = EndpointId::generate(1);
        let ev = event(&tenant, &endpoint, 10);
        let (eid, did) = (ev.id.clone(), ev.deliveries[0].id.clone());
        store.append_events(vec![ev], LIMITS).await.unwrap();
        let t = tenant.to_string();
        store
            .write(move |txn| {
                txn.open_table(EVENT_IDS)?
                    .remove((t.as_str(), eid.as_str()))?;
                Ok(())
            })
            .await
            .unwrap();
        let claim = Claim {
            node: "n".into(),
            tenant: tenant.clone(),
            endpoint: endpoint.clone(),
            now: 1_000,
            lease_until: 100_000,
            limit: 10,
            fence: None,
        };
        assert!(store.claim_due(claim.clone()).await.unwrap().is_empty());
        let d = store.get_delivery(&tenant, &did).await.unwrap().unwrap();
        assert_eq!(d.status, DeliveryStatus::Cancelled);
        assert_eq!(d.lease_until, None);
        let counts = store.queue_counts(Some(&tenant)).await.unwrap();
        assert_eq!((counts.pending, counts.in_flight), (0, 0));
        assert!(store.claim_due(claim).await.unwrap().is_empty());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failing_write_does_not_fail_the_publishes_beside_it() {
        let (store, _dir, tenant) = store().await;
        let endpoint = EndpointId::generate(1);
        let store = std::sync::Arc::new(store);
        let mut tasks = Vec::new();
        for i in 0..40 {
            let (store, tenant, endpoint) = (store.clone(), tenant.clone(), endpoint.clone());
            tasks.push(tokio::spawn(async move {
                if i % 10 == 0 {
                    let failed = store
                        .write(|_txn| -> StoreResult<()> {
                            Err(StoreError::Backend("disk trouble".into()))
                        })
                        .await;
                    failed.is_err()
                } else {
                    store
                        .append_events(vec![event(&tenant, &endpoint, 100 + i)], LIMITS)
                        .await
                        .is_ok()
                }
            }));
        }
        for t in tasks {
            assert!(t.await.unwrap());
        }
        assert_eq!(
            store.queue_counts(Some(&tenant)).await.unwrap().pending,
            36,
            "every publish was stored"
        );
    }
}
