//! The delivery queue outside the group commit: claims, lease reclaiming, DLQ requeue
//! and replays.

use std::collections::HashMap;
use std::sync::Arc;

use crate::ids::{DeliveryId, EndpointId, TenantId};
use crate::store::{
    Claim, Claimed, Event, Outcome, RECORD_VERSION, Replay, ReplayDelivery, RequeueBatch,
    RequeueSelection, Requeued, Store, StoreError, StoreResult,
};

use super::{DELIVERY_COLUMNS, EVENT_COLUMNS, PgStore, SCAN_FACTOR, delivery_at, encode, event_at};

/// Columns in a `,`-separated list.
const fn column_count(columns: &str) -> usize {
    let bytes = columns.as_bytes();
    let (mut n, mut i) = (1, 0);
    while i < bytes.len() {
        if bytes[i] == b',' {
            n += 1;
        }
        i += 1;
    }
    n
}

/// Where a claim row's event columns start: after `claim_due` and the delivery's.
const CLAIM_EVENT_AT: usize = 1 + column_count(DELIVERY_COLUMNS);

/// `columns` with each name qualified by `table`.
fn qualified(table: &str, columns: &str) -> String {
    columns
        .split(", ")
        .map(|c| format!("{table}.{c}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Whose leases a reclaim returns.
#[derive(Debug, Clone, Copy)]
pub(super) enum Holders<'a> {
    Any,
    Node(&'a str),
    /// Every node's but this one's; with a silence, only nodes without a heartbeat
    /// for that many milliseconds (or never registered).
    OtherThan(&'a str, Option<u64>),
}

/// One claim in one round trip: lease up to `$3` due deliveries of endpoint `$1`,
/// delete their queue rows (the hot table stays small) and return each with its
/// event, in due order. The first CTE is materialized so that the planner cannot turn
/// the `LIMIT` into "lock more rows than asked"; the event is a left join so that a
/// delivery whose event is gone still comes back (and is settled).
///
/// Each step must touch only its own rows whatever the statistics say, since the
/// queue changes faster than `ANALYZE` follows:
/// - the queue rows go by the `ctid`s just locked (a TID scan), never by a join the
///   planner may turn into a scan of the whole queue;
/// - the deliveries go by primary key. Their status test is a `CASE`, which no index
///   predicate can be proved from: written as `status IN (…)`, it let the planner
///   pick the partial index `deliveries_open (tenant, status, id)` on a table it
///   believed empty, and walk every open delivery of the tenant for each row
///   (measured: 85 ms per claim of 48 with 5,000 queued, 1.7 ms per row). The other
///   index that starts with `tenant` looks as cheap as the key to a planner without
///   statistics; `stats.rs` keeps them current.
///
/// The fenced form (`$6`, `$7`: the leadership's name and the claimer's term) leases
/// nothing unless the claiming node still holds that term in the database's clock,
/// whatever its own clock says (a node paused or suspended past its lease).
pub(super) static CLAIM_SQL: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| claim_sql(""));
pub(super) static CLAIM_FENCED_SQL: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    claim_sql(
        " AND EXISTS (SELECT 1 FROM cluster_leader l WHERE l.name = $6 \
         AND l.leader_id = $4 AND l.term = $7 AND l.expires_at > now())",
    )
});

fn claim_sql(fence: &str) -> String {
    format!(
        "WITH c AS MATERIALIZED (
            SELECT ctid FROM delivery_queue
            WHERE endpoint_id = $1 AND due <= $2{fence}
            ORDER BY due, delivery_id LIMIT $3
            FOR UPDATE SKIP LOCKED
        ), q AS (
            DELETE FROM delivery_queue dq
            WHERE dq.ctid = ANY(ARRAY(SELECT ctid FROM c))
            RETURNING dq.tenant, dq.delivery_id, dq.due
        ), u AS (
            UPDATE deliveries d SET status = 'in_flight', claimed_by = $4, lease_until = $5,
                lease_token = d.lease_token + 1, updated_at = $2
            FROM q
            WHERE d.tenant = q.tenant AND d.id = q.delivery_id
                AND CASE d.status WHEN 'pending' THEN true WHEN 'retrying' THEN true
                    ELSE false END
            RETURNING q.due AS claim_due, {}
        )
        SELECT u.claim_due, {}, {}
        FROM u LEFT JOIN events e ON e.tenant = u.tenant AND e.id = u.event_id
        ORDER BY u.claim_due, u.id",
        qualified("d", DELIVERY_COLUMNS),
        qualified("u", DELIVERY_COLUMNS),
        qualified("e", EVENT_COLUMNS),
    )
}

/// A claim row's event, decoded once per event id (deliveries of one event share
/// it); `None` when the event is gone (the left join's NULLs) or unreadable.
fn claimed_event(
    row: &tokio_postgres::Row,
    tenant: &TenantId,
    events: &mut HashMap<String, Arc<Event>>,
) -> StoreResult<Option<Arc<Event>>> {
    let Some(id) = row.try_get::<_, Option<&str>>(CLAIM_EVENT_AT + 2)? else {
        return Ok(None);
    };
    if let Some(e) = events.get(id) {
        return Ok(Some(Arc::clone(e)));
    }
    match event_at(row, CLAIM_EVENT_AT) {
        Ok(e) => {
            let e = Arc::new(e);
            events.insert(id.to_owned(), Arc::clone(&e));
            Ok(Some(e))
        }
        Err(StoreError::Corrupt { message, .. }) => {
            tracing::error!(tenant_id = %tenant, error = %message,
                "store: a claimed delivery's event is unreadable");
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

impl PgStore {
    pub(super) async fn claim_due(&self, claim: Claim) -> StoreResult<Vec<Claimed>> {
        let client = self.relaxed.get().await?;
        let limit = claim.limit.max(1) as i64;
        let endpoint = claim.endpoint.as_str();
        let mut params: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = vec![
            &endpoint,
            &claim.now,
            &limit,
            &claim.node,
            &claim.lease_until,
        ];
        let term = claim.fence.map(|t| i64::try_from(t).unwrap_or(i64::MAX));
        let sql = match &term {
            Some(term) => {
                params.push(&super::schema::LEADERSHIP);
                params.push(term);
                client.prepare_cached(&CLAIM_FENCED_SQL).await?
            }
            None => client.prepare_cached(&CLAIM_SQL).await?,
        };
        let rows = client.query(&sql, &params).await?;
        drop(client);
        let mut events: HashMap<String, Arc<Event>> = HashMap::new();
        let mut out = Vec::with_capacity(rows.len());
        let mut orphans = Vec::new();
        for r in &rows {
            // `claim_due`, then the delivery's columns, then its event's.
            let delivery = delivery_at(r, 1)?;
            match claimed_event(r, &claim.tenant, &mut events)? {
                Some(event) => out.push(Claimed { delivery, event }),
                None => orphans.push(delivery),
            }
        }
        // Nothing left to deliver: settle them now rather than leave them leased.
        for delivery in orphans {
            let now = crate::clock::now_ms();
            self.record_outcome(Outcome::event_missing(&claim.tenant, &delivery, now))
                .await?;
        }
        Ok(out)
    }

    /// Leases that ended before `now` (`None`: whatever their end), held by whom
    /// `holders` says.
    pub(super) async fn reclaim_leases(
        &self,
        now: Option<i64>,
        holders: Holders<'_>,
    ) -> StoreResult<usize> {
        let (node, other_than, silent_ms) = match holders {
            Holders::Any => (None, None, None),
            Holders::Node(n) => (Some(n), None, None),
            Holders::OtherThan(n, silent) => (
                None,
                Some(n),
                silent.map(|ms| i64::try_from(ms).unwrap_or(i64::MAX)),
            ),
        };
        let mut client = self.client().await?;
        let txn = client.transaction().await?;
        let rows = txn
            .query(
                "UPDATE deliveries d SET
                    status = CASE WHEN attempts = 0 THEN 'pending' ELSE 'retrying' END,
                    claimed_by = NULL, lease_until = NULL,
                    next_attempt_at = GREATEST(coalesce($1, next_attempt_at), next_attempt_at)
                 WHERE status = 'in_flight' AND ($1::int8 IS NULL OR lease_until < $1)
                    AND ($2::text IS NULL OR claimed_by = $2)
                    AND ($3::text IS NULL OR (claimed_by IS DISTINCT FROM $3
                        AND ($4::int8 IS NULL OR NOT EXISTS (
                            SELECT 1 FROM cluster_nodes n WHERE n.id = d.claimed_by
                            AND n.last_heartbeat_at > now() - ($4::int8)::float8 * interval '1 millisecond'))))
                 RETURNING tenant, id, endpoint_id, next_attempt_at",
                &[&now, &node, &other_than, &silent_ms],
            )
            .await?;
        let mut cols: (Vec<String>, Vec<String>, Vec<String>, Vec<i64>) = Default::default();
        let mut woken = Vec::with_capacity(rows.len());
        for r in &rows {
            let (t, id, e, at): (String, String, String, i64) =
                (r.try_get(0)?, r.try_get(1)?, r.try_get(2)?, r.try_get(3)?);
            woken.push((
                TenantId::from_trusted(t.clone()),
                EndpointId::from_trusted(e.clone()),
            ));
            cols.0.push(t);
            cols.1.push(id);
            cols.2.push(e);
            cols.3.push(at);
        }
        if !woken.is_empty() {
            txn.execute(
                "INSERT INTO delivery_queue (tenant, delivery_id, endpoint_id, due) \
                 SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::int8[]) \
                 ON CONFLICT (tenant, delivery_id) DO UPDATE SET due = EXCLUDED.due",
                &[&cols.0, &cols.1, &cols.2, &cols.3],
            )
            .await?;
        }
        txn.commit().await?;
        let n = woken.len();
        self.announce_queued(woken);
        Ok(n)
    }

    pub(super) async fn requeue_dead(
        &self,
        tenant: &TenantId,
        batch: RequeueBatch,
    ) -> StoreResult<Requeued> {
        let t = tenant.as_str();
        let limit = batch.limit.max(1);
        let mut client = self.client().await?;
        let txn = client.transaction().await?;
        let queued: i64 = match txn
            .query_opt(
                "SELECT queued FROM tenant_state WHERE tenant = $1 FOR UPDATE",
                &[&t],
            )
            .await?
        {
            Some(r) => r.try_get(0)?,
            None => return Ok(Requeued::default()),
        };
        let mut out = Requeued::default();
        // Candidate ids, in id order.
        let ids: Vec<String> = match &batch.selection {
            RequeueSelection::Ids(ids) => ids.iter().take(limit).map(|i| i.to_string()).collect(),
            RequeueSelection::Endpoint(e) => {
                let scan_cap = limit.saturating_mul(SCAN_FACTOR);
                let rows = txn
                    .query(
                        "SELECT id, endpoint_id FROM deliveries WHERE tenant = $1 \
                         AND status = 'dead' AND id > $2 ORDER BY id LIMIT $3",
                        &[
                            &t,
                            &batch.after.clone().unwrap_or_default(),
                            &(scan_cap as i64),
                        ],
                    )
                    .await?;
                let mut ids = Vec::new();
                let mut scanned = 0usize;
                for r in &rows {
                    scanned += 1;
                    let id: String = r.try_get(0)?;
                    let endpoint: &str = r.try_get(1)?;
                    if endpoint == e.as_str() {
                        ids.push(id.clone());
                    }
                    if ids.len() >= limit || scanned >= scan_cap {
                        out.next = Some(id);
                        break;
                    }
                }
                ids
            }
        };
        let depth = u64::try_from(queued).unwrap_or(0);
        let mut moved: Vec<String> = Vec::new();
        for (i, id) in ids.iter().enumerate() {
            if depth + i as u64 >= batch.max_queue_depth {
                out.queue_full = true;
                out.next = i
                    .checked_sub(1)
                    .map(|p| ids[p].clone())
                    .or(batch.after.clone());
                break;
            }
            moved.push(id.clone());
        }
        // Only those still dead move (an id given twice, or not dead, is skipped).
        let rows = txn
            .query(
                "UPDATE deliveries SET status = 'pending', attempts = 0, next_attempt_at = $3, \
                 updated_at = $3, body = NULL \
                 WHERE tenant = $1 AND id = ANY($2) AND status = 'dead' \
                 RETURNING id, endpoint_id",
                &[&t, &moved, &batch.now],
            )
            .await?;
        let mut q: (Vec<&str>, Vec<String>, Vec<String>, Vec<i64>) = Default::default();
        for r in &rows {
            let (id, e): (String, String) = (r.try_get(0)?, r.try_get(1)?);
            out.woken
                .push((tenant.clone(), EndpointId::from_trusted(e.clone())));
            q.0.push(t);
            q.1.push(id);
            q.2.push(e);
            q.3.push(batch.now);
        }
        if !q.0.is_empty() {
            txn.execute(
                "INSERT INTO delivery_queue (tenant, delivery_id, endpoint_id, due) \
                 SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::int8[]) \
                 ON CONFLICT (tenant, delivery_id) DO UPDATE SET due = EXCLUDED.due",
                &[&q.0, &q.1, &q.2, &q.3],
            )
            .await?;
            txn.execute(
                "UPDATE tenant_state SET queued = queued + $2 WHERE tenant = $1",
                &[&t, &(q.0.len() as i64)],
            )
            .await?;
        }
        self.commit(txn).await?;
        self.announce_queued(out.woken.clone());
        Ok(out)
    }

    pub(super) async fn create_replay(
        &self,
        replay: Replay,
        new: Vec<ReplayDelivery>,
        max_queue_depth: u64,
    ) -> StoreResult<usize> {
        let t = replay.tenant_id.as_str();
        let mut client = self.client().await?;
        let txn = client.transaction().await?;
        txn.execute(
            "INSERT INTO tenant_state (tenant) VALUES ($1) ON CONFLICT DO NOTHING",
            &[&t],
        )
        .await?;
        let queued: i64 = txn
            .query_one(
                "SELECT queued FROM tenant_state WHERE tenant = $1 FOR UPDATE",
                &[&t],
            )
            .await?
            .try_get(0)?;
        let room = max_queue_depth.saturating_sub(u64::try_from(queued).unwrap_or(0));
        let new = &new[..new.len().min(usize::try_from(room).unwrap_or(usize::MAX))];
        // Every id first: an error must come before anything is written.
        let mut next_seq: HashMap<&str, u32> = HashMap::new();
        let mut ids = Vec::with_capacity(new.len());
        for nd in new {
            let seq = match next_seq.get(nd.event_id.as_str()) {
                Some(s) => *s,
                None => {
                    let prefix = DeliveryId::event_prefix(&nd.event_id);
                    let end = format!("{prefix}~");
                    let row = txn
                        .query_opt(
                            "SELECT id FROM deliveries WHERE tenant = $1 AND id >= $2 \
                             AND id < $3 ORDER BY id DESC LIMIT 1",
                            &[&t, &prefix, &end],
                        )
                        .await?;
                    match row {
                        Some(r) => DeliveryId::seq_of(r.try_get(0)?).map_or(0, |s| s + 1),
                        None => 0,
                    }
                }
            };
            if seq > DeliveryId::MAX_SEQ {
                return Err(StoreError::LimitReached {
                    what: "deliveries of one event",
                    limit: DeliveryId::MAX_SEQ as usize + 1,
                });
            }
            next_seq.insert(nd.event_id.as_str(), seq + 1);
            ids.push(DeliveryId::for_event(&nd.event_id, seq));
        }
        let mut cols: (Vec<String>, Vec<&str>, Vec<&str>, Vec<&str>) = Default::default();
        for (nd, id) in new.iter().zip(&ids) {
            cols.0.push(id.to_string());
            cols.1.push(nd.event_id.as_str());
            cols.2.push(nd.subscription_id.as_str());
            cols.3.push(nd.endpoint_id.as_str());
        }
        let at = replay.created_at;
        if !ids.is_empty() {
            let version = i32::try_from(RECORD_VERSION).unwrap_or(1);
            txn.execute(
                "INSERT INTO deliveries (tenant, id, event_id, subscription_id, endpoint_id, \
                 status, attempts, next_attempt_at, lease_token, created_at, updated_at, \
                 record_version) \
                 SELECT $1, i, e, s, ep, 'pending', 0, $6, 0, $6, $6, $7 \
                 FROM unnest($2::text[], $3::text[], $4::text[], $5::text[]) AS u(i, e, s, ep)",
                &[&t, &cols.0, &cols.1, &cols.2, &cols.3, &at, &version],
            )
            .await?;
            txn.execute(
                "INSERT INTO delivery_queue (tenant, delivery_id, endpoint_id, due) \
                 SELECT $1, i, ep, $4 FROM unnest($2::text[], $3::text[]) AS u(i, ep)",
                &[&t, &cols.0, &cols.3, &at],
            )
            .await?;
            txn.execute(
                "UPDATE tenant_state SET queued = queued + $2 WHERE tenant = $1",
                &[&t, &(ids.len() as i64)],
            )
            .await?;
        }
        let mut record = replay.clone();
        record.deliveries = record.deliveries.saturating_add(new.len() as u64);
        txn.execute(
            "INSERT INTO replays (tenant, id, created_at, data) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (tenant, id) DO UPDATE SET data = EXCLUDED.data",
            &[&t, &record.id, &record.created_at, &encode(&record)?],
        )
        .await?;
        self.commit(txn).await?;
        let woken: Vec<(TenantId, EndpointId)> = new
            .iter()
            .map(|nd| (replay.tenant_id.clone(), nd.endpoint_id.clone()))
            .collect();
        self.announce_queued(woken);
        Ok(new.len())
    }
}
