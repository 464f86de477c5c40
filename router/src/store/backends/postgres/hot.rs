//! Group commit for the hot path: publishes and attempt outcomes.
//!
//! Callers hand their operation to a collector; it gathers what is waiting (up to
//! `commit_max_batch`) into one transaction on a pooled connection, with at most
//! `commit_concurrency` such transactions at once. Each transaction locks the
//! tenant rows it touches (in tenant order, so two never deadlock), reads what it
//! must check (idempotency records, the deliveries an outcome names), decides every
//! operation in memory and writes with one multi-row statement per table. A caller's
//! future resolves after the commit; if the transaction fails, every caller in it
//! gets the error and nothing of it was written.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use deadpool_postgres::Pool;
use tokio::sync::{Semaphore, mpsc, oneshot};
use tokio_postgres::types::ToSql;

use crate::ids::{EndpointId, EventId, TenantId};
use crate::store::{
    AppendLimits, AppendOutcome, Appended, Delivery, DeliveryStatus, NewEvent, NextState, Outcome,
    RECORD_VERSION, StoreError, StoreResult,
};
use crate::stream::StatusData;

use super::{DELIVERY_COLUMNS, PgOptions, big, delivery_from_row, encode, unbig};

type Queued = Vec<(TenantId, EndpointId)>;

enum Op {
    Append {
        events: Vec<NewEvent>,
        limits: AppendLimits,
        reply: oneshot::Sender<StoreResult<(Vec<Appended>, Queued)>>,
    },
    Outcome {
        outcome: Box<Outcome>,
        reply: oneshot::Sender<StoreResult<bool>>,
    },
}

/// What the API holds: a way to hand operations to the collector.
pub(super) struct HotHandle {
    tx: mpsc::UnboundedSender<Op>,
    stopped: Arc<std::sync::atomic::AtomicBool>,
    /// The committer's own connections, closed on stop.
    pub(super) pool: Pool,
}

impl HotHandle {
    pub(super) fn spawn(pool: Pool, options: &PgOptions) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        let stopped = Arc::new(std::sync::atomic::AtomicBool::new(false));
        tokio::spawn(collect(
            pool.clone(),
            rx,
            options.commit_max_batch.max(1),
            options.commit_concurrency.max(1),
            options.stream_status,
        ));
        Self { tx, stopped, pool }
    }

    pub(super) fn stop(&self) {
        self.stopped
            .store(true, std::sync::atomic::Ordering::Release);
        self.pool.close();
    }

    fn send(&self, op: Op) -> StoreResult<()> {
        if self.stopped.load(std::sync::atomic::Ordering::Acquire) {
            return Err(StoreError::Closed);
        }
        self.tx.send(op).map_err(|_| StoreError::Closed)
    }

    pub(super) async fn append(
        &self,
        events: Vec<NewEvent>,
        limits: AppendLimits,
    ) -> StoreResult<(Vec<Appended>, Queued)> {
        let (reply, rx) = oneshot::channel();
        self.send(Op::Append {
            events,
            limits,
            reply,
        })?;
        rx.await.map_err(|_| StoreError::Closed)?
    }

    pub(super) async fn outcome(&self, outcome: Outcome) -> StoreResult<bool> {
        let (reply, rx) = oneshot::channel();
        self.send(Op::Outcome {
            outcome: Box::new(outcome),
            reply,
        })?;
        rx.await.map_err(|_| StoreError::Closed)?
    }
}

async fn collect(
    pool: Pool,
    mut rx: mpsc::UnboundedReceiver<Op>,
    max_batch: usize,
    concurrency: usize,
    stream_status: bool,
) {
    let slots = Arc::new(Semaphore::new(concurrency));
    loop {
        // A free slot first: while every slot commits, operations pile up and the
        // next transaction takes them all.
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        let Some(first) = rx.recv().await else {
            return;
        };
        let mut batch = vec![first];
        while batch.len() < max_batch {
            match rx.try_recv() {
                Ok(op) => batch.push(op),
                Err(_) => break,
            }
        }
        let pool = pool.clone();
        tokio::spawn(async move {
            run(&pool, batch, stream_status).await;
            drop(slot);
        });
    }
}

/// What one operation decided, before the commit says whether it holds.
enum Decided {
    Append(Vec<Appended>, Queued),
    Outcome(bool),
}

async fn run(pool: &Pool, batch: Vec<Op>, stream_status: bool) {
    let started = std::time::Instant::now();
    let result = transact(pool, &batch, stream_status).await;
    crate::telemetry::record_commit(batch.len(), started.elapsed());
    match result {
        Ok(decided) => {
            for (op, d) in batch.into_iter().zip(decided) {
                match (op, d) {
                    (Op::Append { reply, .. }, Decided::Append(a, q)) => {
                        let _ = reply.send(Ok((a, q)));
                    }
                    (Op::Outcome { reply, .. }, Decided::Outcome(b)) => {
                        let _ = reply.send(Ok(b));
                    }
                    (Op::Append { reply, .. }, _) => {
                        let _ = reply.send(Err(StoreError::Backend("batch mismatch".into())));
                    }
                    (Op::Outcome { reply, .. }, _) => {
                        let _ = reply.send(Err(StoreError::Backend("batch mismatch".into())));
                    }
                }
            }
        }
        Err(e) => {
            let text = e.to_string();
            tracing::warn!(error = %text, ops = batch.len(), "store: group commit failed");
            for op in batch {
                let err = || StoreError::Backend(text.clone());
                match op {
                    Op::Append { reply, .. } => {
                        let _ = reply.send(Err(err()));
                    }
                    Op::Outcome { reply, .. } => {
                        let _ = reply.send(Err(err()));
                    }
                }
            }
        }
    }
}

/// A tenant's row as this transaction changes it.
#[derive(Debug, Clone, Copy)]
struct TenantRow {
    cursor: u64,
    queued: i64,
    changed: bool,
}

#[derive(Default)]
struct Writes {
    // events
    ev_tenant: Vec<String>,
    ev_cursor: Vec<i64>,
    ev_id: Vec<String>,
    ev_topic: Vec<String>,
    ev_created: Vec<i64>,
    ev_key: Vec<Option<String>>,
    ev_payload: Vec<String>,
    ev_trace: Vec<Option<String>>,
    // idempotency
    idem_tenant: Vec<String>,
    idem_key: Vec<String>,
    idem_cursor: Vec<i64>,
    idem_created: Vec<i64>,
    idem_event: Vec<String>,
    // new deliveries
    nd_tenant: Vec<String>,
    nd_id: Vec<String>,
    nd_event: Vec<String>,
    nd_sub: Vec<String>,
    nd_endpoint: Vec<String>,
    nd_created: Vec<i64>,
    // queue rows
    q_tenant: Vec<String>,
    q_id: Vec<String>,
    q_endpoint: Vec<String>,
    q_due: Vec<i64>,
    // attempts
    at_tenant: Vec<String>,
    at_delivery: Vec<String>,
    at_number: Vec<i32>,
    at_data: Vec<Vec<u8>>,
    // status stream items
    st_tenant: Vec<String>,
    st_cursor: Vec<i64>,
    st_created: Vec<i64>,
    st_data: Vec<String>,
}

/// The deliveries that a batch's outcomes settle, locked in key order.
pub(super) static LOCK_DELIVERIES: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    format!(
        "SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE (tenant, id) IN \
         (SELECT * FROM unnest($1::text[], $2::text[])) ORDER BY tenant, id FOR UPDATE"
    )
});

async fn transact(pool: &Pool, batch: &[Op], stream_status: bool) -> StoreResult<Vec<Decided>> {
    let mut client = pool.get().await?;
    let txn = client.transaction().await?;

    // Every tenant touched, locked in order.
    let mut names: BTreeSet<&str> = BTreeSet::new();
    let mut outcome_keys: (Vec<&str>, Vec<&str>) = (Vec::new(), Vec::new());
    let mut idem_keys: (Vec<&str>, Vec<&str>) = (Vec::new(), Vec::new());
    for op in batch {
        match op {
            Op::Append { events, .. } => {
                for ev in events {
                    names.insert(ev.tenant_id.as_str());
                    if let Some(k) = ev.idempotency_key.as_deref() {
                        idem_keys.0.push(ev.tenant_id.as_str());
                        idem_keys.1.push(k);
                    }
                }
            }
            Op::Outcome { outcome, .. } => {
                names.insert(outcome.tenant.as_str());
                outcome_keys.0.push(outcome.tenant.as_str());
                outcome_keys.1.push(outcome.delivery.as_str());
            }
        }
    }
    let names: Vec<&str> = names.into_iter().collect();
    let lock = "SELECT tenant, cursor, queued FROM tenant_state WHERE tenant = ANY($1) \
                ORDER BY tenant FOR UPDATE";
    let lock = txn.prepare_cached(lock).await?;
    let mut rows = txn.query(&lock, &[&names]).await?;
    if rows.len() < names.len() {
        txn.execute(
            "INSERT INTO tenant_state (tenant) SELECT unnest($1::text[]) ON CONFLICT DO NOTHING",
            &[&names],
        )
        .await?;
        rows = txn.query(&lock, &[&names]).await?;
    }
    let mut tenants: HashMap<String, TenantRow> = HashMap::with_capacity(rows.len());
    for r in &rows {
        tenants.insert(
            r.try_get(0)?,
            TenantRow {
                cursor: unbig(r.try_get(1)?),
                queued: r.try_get(2)?,
                changed: false,
            },
        );
    }

    // What the checks need.
    let mut deliveries: HashMap<(String, String), Delivery> = HashMap::new();
    if !outcome_keys.0.is_empty() {
        let sql = txn.prepare_cached(&LOCK_DELIVERIES).await?;
        for r in txn.query(&sql, &[&outcome_keys.0, &outcome_keys.1]).await? {
            let d = delivery_from_row(&r)?;
            deliveries.insert((d.tenant_id.to_string(), d.id.to_string()), d);
        }
    }
    // (tenant, key) → (cursor, created_at, event id)
    let mut idem: HashMap<(String, String), (u64, i64, String)> = HashMap::new();
    if !idem_keys.0.is_empty() {
        let sql = txn
            .prepare_cached(
                "SELECT tenant, key, cursor, created_at, event_id FROM idempotency \
                 WHERE (tenant, key) IN (SELECT * FROM unnest($1::text[], $2::text[]))",
            )
            .await?;
        for r in txn.query(&sql, &[&idem_keys.0, &idem_keys.1]).await? {
            idem.insert(
                (r.try_get(0)?, r.try_get(1)?),
                (unbig(r.try_get(2)?), r.try_get(3)?, r.try_get(4)?),
            );
        }
    }

    let mut w = Writes::default();
    let mut changed: Vec<(String, String)> = Vec::new();
    let mut decided = Vec::with_capacity(batch.len());
    for op in batch {
        match op {
            Op::Append { events, limits, .. } => {
                let mut outcomes = Vec::with_capacity(events.len());
                let mut queued = Vec::new();
                for ev in events {
                    outcomes.push(append_one(
                        ev,
                        limits,
                        &mut tenants,
                        &mut idem,
                        &mut w,
                        &mut queued,
                    )?);
                }
                decided.push(Decided::Append(outcomes, queued));
            }
            Op::Outcome { outcome, .. } => {
                let ok = outcome_one(
                    outcome,
                    &mut tenants,
                    &mut deliveries,
                    &mut w,
                    &mut changed,
                    stream_status,
                )?;
                decided.push(Decided::Outcome(ok));
            }
        }
    }

    write(&txn, &w, &changed, &deliveries, &tenants).await?;
    txn.commit().await?;
    Ok(decided)
}

fn tenant_row<'a>(
    tenants: &'a mut HashMap<String, TenantRow>,
    tenant: &str,
) -> StoreResult<&'a mut TenantRow> {
    tenants
        .get_mut(tenant)
        .ok_or_else(|| StoreError::Backend(format!("tenant row {tenant} not locked")))
}

fn append_one(
    ev: &NewEvent,
    limits: &AppendLimits,
    tenants: &mut HashMap<String, TenantRow>,
    idem: &mut HashMap<(String, String), (u64, i64, String)>,
    w: &mut Writes,
    queued: &mut Queued,
) -> StoreResult<Appended> {
    let t = ev.tenant_id.as_str();
    if let Some(key) = ev.idempotency_key.as_deref()
        && let Some((cursor, created, id)) = idem.get(&(t.to_owned(), key.to_owned()))
        && ev.created_at.saturating_sub(*created) < limits.idempotency_window_ms
    {
        return Ok(Appended::Stored(AppendOutcome {
            id: EventId::from_trusted(id.clone()),
            cursor: *cursor,
            deduped: true,
        }));
    }
    let row = tenant_row(tenants, t)?;
    let fan_out = i64::try_from(ev.deliveries.len()).unwrap_or(i64::MAX);
    if fan_out > 0
        && u64::try_from(row.queued.saturating_add(fan_out)).unwrap_or(0) > limits.max_queue_depth
    {
        return Ok(Appended::QueueFull {
            limit: limits.max_queue_depth,
        });
    }
    row.cursor += 1;
    row.queued += fan_out;
    row.changed = true;
    let cursor = row.cursor;
    w.ev_tenant.push(t.to_owned());
    w.ev_cursor.push(big(cursor));
    w.ev_id.push(ev.id.to_string());
    w.ev_topic.push(ev.topic.clone());
    w.ev_created.push(ev.created_at);
    w.ev_key.push(ev.idempotency_key.clone());
    w.ev_payload.push(ev.payload.get().to_owned());
    w.ev_trace.push(ev.traceparent.clone());
    if let Some(key) = ev.idempotency_key.as_deref() {
        w.idem_tenant.push(t.to_owned());
        w.idem_key.push(key.to_owned());
        w.idem_cursor.push(big(cursor));
        w.idem_created.push(ev.created_at);
        w.idem_event.push(ev.id.to_string());
        idem.insert(
            (t.to_owned(), key.to_owned()),
            (cursor, ev.created_at, ev.id.to_string()),
        );
    }
    for nd in &ev.deliveries {
        w.nd_tenant.push(t.to_owned());
        w.nd_id.push(nd.id.to_string());
        w.nd_event.push(ev.id.to_string());
        w.nd_sub.push(nd.subscription_id.to_string());
        w.nd_endpoint.push(nd.endpoint_id.to_string());
        w.nd_created.push(ev.created_at);
        w.q_tenant.push(t.to_owned());
        w.q_id.push(nd.id.to_string());
        w.q_endpoint.push(nd.endpoint_id.to_string());
        w.q_due.push(ev.created_at);
        queued.push((ev.tenant_id.clone(), nd.endpoint_id.clone()));
    }
    Ok(Appended::Stored(AppendOutcome {
        id: ev.id.clone(),
        cursor,
        deduped: false,
    }))
}

fn outcome_one(
    o: &Outcome,
    tenants: &mut HashMap<String, TenantRow>,
    deliveries: &mut HashMap<(String, String), Delivery>,
    w: &mut Writes,
    changed: &mut Vec<(String, String)>,
    stream_status: bool,
) -> StoreResult<bool> {
    let t = o.tenant.as_str();
    let key = (t.to_owned(), o.delivery.to_string());
    let Some(d) = deliveries.get_mut(&key) else {
        return Ok(false);
    };
    if d.status != DeliveryStatus::InFlight || d.lease_token != o.lease_token {
        return Ok(false);
    }
    let to = match o.next {
        NextState::Succeeded => DeliveryStatus::Succeeded,
        NextState::Retry { .. } => DeliveryStatus::Retrying,
        NextState::Dead => DeliveryStatus::Dead,
        NextState::Cancelled => DeliveryStatus::Cancelled,
    };
    d.status = to;
    d.attempts = d.attempts.max(o.attempt.number);
    d.claimed_by = None;
    d.lease_until = None;
    d.updated_at = o.attempt.started_at + i64::try_from(o.attempt.latency_ms).unwrap_or(0);
    let row = tenant_row(tenants, t)?;
    match o.next {
        NextState::Retry { at } => {
            if d.body.is_none() {
                d.body.clone_from(&o.body);
            }
            d.next_attempt_at = at;
            w.q_tenant.push(t.to_owned());
            w.q_id.push(d.id.to_string());
            w.q_endpoint.push(d.endpoint_id.to_string());
            w.q_due.push(at);
        }
        NextState::Succeeded | NextState::Dead | NextState::Cancelled => {
            row.queued -= 1;
            row.changed = true;
        }
    }
    if !changed.contains(&key) {
        changed.push(key);
    }
    w.at_tenant.push(t.to_owned());
    w.at_delivery.push(d.id.to_string());
    w.at_number
        .push(i32::try_from(o.attempt.number).unwrap_or(i32::MAX));
    w.at_data.push(encode(&o.attempt)?);
    if stream_status {
        row.cursor += 1;
        row.changed = true;
        let data = serde_json::to_string(&StatusData {
            attempt_id: o.attempt.id.as_str(),
            delivery_id: d.id.as_str(),
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
        w.st_tenant.push(t.to_owned());
        w.st_cursor.push(big(row.cursor));
        w.st_created.push(d.updated_at);
        w.st_data.push(data);
    }
    Ok(true)
}

/// Columns of the deliveries an outcome settled: tenant, id, status, attempts, next
/// attempt, updated at, body.
type Settled<'a> = (
    Vec<&'a str>,
    Vec<&'a str>,
    Vec<&'a str>,
    Vec<i32>,
    Vec<i64>,
    Vec<i64>,
    Vec<Option<&'a str>>,
);

/// Runs one statement, prepared once per connection.
async fn exec(
    txn: &deadpool_postgres::Transaction<'_>,
    sql: &'static str,
    params: &[&(dyn ToSql + Sync)],
) -> StoreResult<u64> {
    let statement = txn.prepare_cached(sql).await?;
    Ok(txn.execute(&statement, params).await?)
}

const INSERT_EVENTS: &str = "INSERT INTO events (tenant, cursor, id, topic, created_at, \
     idempotency_key, payload, record_version, traceparent) \
     SELECT t, c, i, tp, ca, k, p, $8, tr FROM unnest($1::text[], $2::int8[], $3::text[], \
     $4::text[], $5::int8[], $6::text[], $7::text[], $9::text[]) AS u(t, c, i, tp, ca, k, p, tr)";
const UPSERT_IDEMPOTENCY: &str = "INSERT INTO idempotency (tenant, key, cursor, created_at, \
     event_id) SELECT * FROM unnest($1::text[], $2::text[], $3::int8[], $4::int8[], $5::text[]) \
     ON CONFLICT (tenant, key) DO UPDATE SET cursor = EXCLUDED.cursor, \
     created_at = EXCLUDED.created_at, event_id = EXCLUDED.event_id";
const INSERT_DELIVERIES: &str = "INSERT INTO deliveries (tenant, id, event_id, subscription_id, \
     endpoint_id, status, attempts, next_attempt_at, lease_token, created_at, updated_at, \
     record_version) \
     SELECT t, i, e, s, ep, 'pending', 0, ca, 0, ca, ca, $7 FROM unnest($1::text[], \
     $2::text[], $3::text[], $4::text[], $5::text[], $6::int8[]) AS u(t, i, e, s, ep, ca)";
const SETTLE_DELIVERIES: &str = "UPDATE deliveries d SET status = u.status, \
     attempts = u.attempts, next_attempt_at = u.next, claimed_by = NULL, lease_until = NULL, \
     updated_at = u.updated, body = u.body \
     FROM unnest($1::text[], $2::text[], $3::text[], $4::int4[], $5::int8[], \
     $6::int8[], $7::text[]) AS u(tenant, id, status, attempts, next, updated, body) \
     WHERE d.tenant = u.tenant AND d.id = u.id";
const QUEUE_DELIVERIES: &str = "INSERT INTO delivery_queue (tenant, delivery_id, endpoint_id, \
     due) SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::int8[]) \
     ON CONFLICT (tenant, delivery_id) DO UPDATE SET due = EXCLUDED.due";
const INSERT_ATTEMPTS: &str = "INSERT INTO attempts (tenant, delivery_id, number, data) \
     SELECT * FROM unnest($1::text[], $2::text[], $3::int4[], $4::bytea[]) \
     ON CONFLICT (tenant, delivery_id, number) DO UPDATE SET data = EXCLUDED.data";
const INSERT_STATUSES: &str = "INSERT INTO stream_status (tenant, cursor, created_at, data) \
     SELECT * FROM unnest($1::text[], $2::int8[], $3::int8[], $4::text[])";
const UPDATE_TENANTS: &str = "UPDATE tenant_state t SET cursor = u.cursor, queued = u.queued \
     FROM unnest($1::text[], $2::int8[], $3::int8[]) AS u(tenant, cursor, queued) \
     WHERE t.tenant = u.tenant";

/// Columns of idempotency rows: tenant, key, cursor, created at, event id.
type IdempotencyRows<'a> = (Vec<&'a str>, Vec<&'a str>, Vec<i64>, Vec<i64>, Vec<&'a str>);

/// The idempotency rows to write: one per key, the last event of the batch that
/// stored it.
fn idempotency_rows(w: &Writes) -> IdempotencyRows<'_> {
    let mut last: HashMap<(&str, &str), usize> = HashMap::new();
    for (i, (t, k)) in w.idem_tenant.iter().zip(&w.idem_key).enumerate() {
        last.insert((t.as_str(), k.as_str()), i);
    }
    let mut keep: Vec<usize> = last.into_values().collect();
    keep.sort_unstable();
    let mut out = (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for i in keep {
        out.0.push(w.idem_tenant[i].as_str());
        out.1.push(w.idem_key[i].as_str());
        out.2.push(w.idem_cursor[i]);
        out.3.push(w.idem_created[i]);
        out.4.push(w.idem_event[i].as_str());
    }
    out
}

/// Every write of the transaction, sent together (tokio-postgres pipelines them on
/// the connection: one round trip's wait instead of one per statement).
async fn write(
    txn: &deadpool_postgres::Transaction<'_>,
    w: &Writes,
    changed: &[(String, String)],
    deliveries: &HashMap<(String, String), Delivery>,
    tenants: &HashMap<String, TenantRow>,
) -> StoreResult<()> {
    let version = i32::try_from(RECORD_VERSION).unwrap_or(1);
    let idem = idempotency_rows(w);
    let mut settled: Settled<'_> = Default::default();
    for key in changed {
        if let Some(d) = deliveries.get(key) {
            settled.0.push(d.tenant_id.as_str());
            settled.1.push(d.id.as_str());
            settled.2.push(d.status.as_str());
            settled
                .3
                .push(i32::try_from(d.attempts).unwrap_or(i32::MAX));
            settled.4.push(d.next_attempt_at);
            settled.5.push(d.updated_at);
            settled.6.push(d.body.as_deref());
        }
    }
    let mut heads: (Vec<&str>, Vec<i64>, Vec<i64>) = Default::default();
    for (name, row) in tenants {
        if row.changed {
            heads.0.push(name.as_str());
            heads.1.push(big(row.cursor));
            heads.2.push(row.queued);
        }
    }
    let p_events: [&(dyn ToSql + Sync); 9] = [
        &w.ev_tenant,
        &w.ev_cursor,
        &w.ev_id,
        &w.ev_topic,
        &w.ev_created,
        &w.ev_key,
        &w.ev_payload,
        &version,
        &w.ev_trace,
    ];
    let p_idem: [&(dyn ToSql + Sync); 5] = [&idem.0, &idem.1, &idem.2, &idem.3, &idem.4];
    let p_new: [&(dyn ToSql + Sync); 7] = [
        &w.nd_tenant,
        &w.nd_id,
        &w.nd_event,
        &w.nd_sub,
        &w.nd_endpoint,
        &w.nd_created,
        &version,
    ];
    let p_settled: [&(dyn ToSql + Sync); 7] = [
        &settled.0, &settled.1, &settled.2, &settled.3, &settled.4, &settled.5, &settled.6,
    ];
    let p_queue: [&(dyn ToSql + Sync); 4] = [&w.q_tenant, &w.q_id, &w.q_endpoint, &w.q_due];
    let p_attempts: [&(dyn ToSql + Sync); 4] =
        [&w.at_tenant, &w.at_delivery, &w.at_number, &w.at_data];
    let p_status: [&(dyn ToSql + Sync); 4] =
        [&w.st_tenant, &w.st_cursor, &w.st_created, &w.st_data];
    let p_heads: [&(dyn ToSql + Sync); 3] = [&heads.0, &heads.1, &heads.2];
    let statements: [(bool, &'static str, &[&(dyn ToSql + Sync)]); 8] = [
        (!w.ev_tenant.is_empty(), INSERT_EVENTS, &p_events),
        (!idem.0.is_empty(), UPSERT_IDEMPOTENCY, &p_idem),
        (!w.nd_tenant.is_empty(), INSERT_DELIVERIES, &p_new),
        (!settled.0.is_empty(), SETTLE_DELIVERIES, &p_settled),
        (!w.q_tenant.is_empty(), QUEUE_DELIVERIES, &p_queue),
        (!w.at_tenant.is_empty(), INSERT_ATTEMPTS, &p_attempts),
        (!w.st_tenant.is_empty(), INSERT_STATUSES, &p_status),
        (!heads.0.is_empty(), UPDATE_TENANTS, &p_heads),
    ];
    futures_util::future::try_join_all(
        statements
            .iter()
            .filter(|(needed, _, _)| *needed)
            .map(|(_, sql, params)| exec(txn, sql, params)),
    )
    .await?;
    Ok(())
}
