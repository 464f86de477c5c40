//! Retention: bounded purges of expired events, deliveries, attempts, DLQ entries,
//! status items, replay records and inbox messages.
//!
//! One call is one write transaction with a budget of rows deleted *or examined*
//! (and of time), resuming where the previous call of the same pass stopped
//! ([`PurgeCursor`]). Per tenant it goes through expired events (a settled one goes
//! with its deliveries and attempts; one still being delivered is passed by, never
//! a wall for the events after it), expired status items, DLQ entries past their age
//! and old replay records; then through the inbox. Every phase reads in key order
//! from its cursor, so each row is looked at once per pass. Rows that cannot be
//! decoded are quarantined and passed by.

use std::ops::Bound;

use redb::{ReadableTable, Table, WriteTransaction};

use crate::ids::DeliveryId;
use crate::store::{
    Delivery, DeliveryStatus, Event, InboxMessage, PurgeBudget, PurgeCursor, PurgePhase,
    PurgePolicy, PurgeReport, Replay, Store, StoreError, StoreResult, Tenant,
};

use super::tables::*;
use super::{
    RedbStore, counter_add, counter_get, decode, encode, load_delivery_or_quarantine, quarantine,
    upper,
};

/// The tables a purge touches.
struct Tables<'t> {
    txn: &'t WriteTransaction,
    events: Table<'t, (&'static str, u64), &'static [u8]>,
    event_ids: Table<'t, (&'static str, &'static str), u64>,
    idempotency: Table<'t, (&'static str, &'static str), (u64, i64, &'static str)>,
    deliveries: Table<'t, (&'static str, &'static str), &'static [u8]>,
    dead: Table<'t, (&'static str, &'static str), &'static str>,
    attempts: Table<'t, (&'static str, &'static str, u32), &'static [u8]>,
    counters: Table<'t, (&'static str, &'static str), u64>,
    status: Table<'t, (&'static str, u64), (i64, &'static [u8])>,
}

/// A phase ran out of budget (`false`) or finished (`true`).
type Finished = bool;

/// One bounded retention step (see `Store::purge`).
pub(super) fn purge(
    txn: &WriteTransaction,
    policy: &PurgePolicy,
    from: PurgeCursor,
) -> StoreResult<PurgeReport> {
    let mut tables = Tables {
        txn,
        events: txn.open_table(EVENTS)?,
        event_ids: txn.open_table(EVENT_IDS)?,
        idempotency: txn.open_table(IDEMPOTENCY)?,
        deliveries: txn.open_table(DELIVERIES)?,
        dead: txn.open_table(DEAD)?,
        attempts: txn.open_table(ATTEMPTS)?,
        counters: txn.open_table(COUNTERS)?,
        status: txn.open_table(STREAM_STATUS)?,
    };
    let mut budget = PurgeBudget::new(policy);
    let mut report = PurgeReport::default();
    let mut cur = from;
    loop {
        if budget.spent() {
            report.next = Some(cur);
            return Ok(report);
        }
        if cur.phase == PurgePhase::Inbox {
            if purge_inbox(txn, policy, &mut cur, &mut budget, &mut report)? {
                report.done = true;
                return Ok(report);
            }
            report.next = Some(cur);
            return Ok(report);
        }
        let Some(tenant) = current_tenant(txn, cur.tenant.as_deref())? else {
            cur = PurgeCursor {
                tenant: None,
                phase: PurgePhase::Inbox,
                after: None,
            };
            continue;
        };
        let t = tenant.id.as_str();
        if cur.tenant.as_deref() != Some(t) {
            // The tenant the cursor named is gone: start the next one afresh.
            cur = PurgeCursor {
                tenant: Some(t.to_owned()),
                phase: PurgePhase::Events,
                after: None,
            };
        }
        let (events_before, dead_before) = policy.cutoffs(&tenant.retention);
        let finished = match cur.phase {
            PurgePhase::Events => purge_events(
                &mut tables,
                t,
                events_before,
                dead_before,
                &mut cur.after,
                &mut budget,
                &mut report,
            )?,
            PurgePhase::Statuses => purge_statuses(
                &mut tables,
                t,
                events_before,
                &mut cur.after,
                &mut budget,
                &mut report,
            )?,
            PurgePhase::Dead => purge_dead(
                &mut tables,
                t,
                dead_before,
                &mut cur.after,
                &mut budget,
                &mut report,
            )?,
            PurgePhase::Replays => purge_replays(
                txn,
                t,
                events_before,
                &mut cur.after,
                &mut budget,
                &mut report,
            )?,
            PurgePhase::Inbox => true,
        };
        if !finished {
            report.next = Some(cur);
            return Ok(report);
        }
        cur.after = None;
        cur.phase = match cur.phase {
            PurgePhase::Events => PurgePhase::Statuses,
            PurgePhase::Statuses => PurgePhase::Dead,
            PurgePhase::Dead => PurgePhase::Replays,
            PurgePhase::Replays | PurgePhase::Inbox => {
                // This tenant is done: on to the next one (a key just above this one).
                cur.tenant = Some(upper(t));
                PurgePhase::Events
            }
        };
    }
}

/// The tenant a cursor names, or the first one after it (`None`: the first tenant).
fn current_tenant(txn: &WriteTransaction, from: Option<&str>) -> StoreResult<Option<Tenant>> {
    let tenants = txn.open_table(TENANTS)?;
    let mut range = match from {
        Some(t) => tenants.range::<&str>((Bound::Included(t), Bound::Unbounded))?,
        None => tenants.range::<&str>(..)?,
    };
    loop {
        let Some(row) = range.next() else {
            return Ok(None);
        };
        let (k, v) = row?;
        match decode::<Tenant>("tenants", v.value()) {
            Ok(t) => return Ok(Some(t)),
            Err(StoreError::Corrupt { table, message }) => {
                tracing::error!(table, key = k.value(), error = %message, "retention: unreadable tenant skipped");
            }
            Err(e) => return Err(e),
        }
    }
}

/// Raises the tenant's purge watermark: every cursor up to it may have been removed.
fn raise_watermark(tables: &mut Tables<'_>, t: &str, cursor: u64) -> StoreResult<()> {
    if counter_get(&tables.counters, t, COUNTER_PURGED_TO)? < cursor {
        tables.counters.insert((t, COUNTER_PURGED_TO), cursor)?;
    }
    Ok(())
}

/// Expired events in cursor order: a settled one goes with its deliveries and
/// attempts, one still being delivered is passed by.
fn purge_events(
    tables: &mut Tables<'_>,
    t: &str,
    events_before: i64,
    dead_before: i64,
    after: &mut Option<String>,
    budget: &mut PurgeBudget,
    report: &mut PurgeReport,
) -> StoreResult<Finished> {
    let start = after
        .as_deref()
        .and_then(|a| a.parse::<u64>().ok())
        .unwrap_or(0);
    while !budget.spent() {
        // A chunk at a time: the range borrows the table we then modify.
        let mut chunk: Vec<(u64, Vec<u8>)> = Vec::new();
        let from = after
            .as_deref()
            .and_then(|a| a.parse::<u64>().ok())
            .unwrap_or(start);
        for row in tables
            .events
            .range::<(&str, u64)>((Bound::Excluded((t, from)), Bound::Included((t, u64::MAX))))?
        {
            let (k, v) = row?;
            chunk.push((k.value().1, v.value().to_vec()));
            if chunk.len() >= budget.left().min(256) {
                break;
            }
        }
        if chunk.is_empty() {
            return Ok(true);
        }
        for (cursor, raw) in chunk {
            if budget.spent() {
                return Ok(false);
            }
            *after = Some(cursor.to_string());
            budget.rows += 1;
            let event: Event = match decode("events", &raw) {
                Ok(e) => e,
                Err(StoreError::Corrupt { table, message }) => {
                    quarantine(tables.txn, table, &format!("{t}/{cursor}"), &message)?;
                    continue;
                }
                Err(e) => return Err(e),
            };
            if event.created_at >= events_before {
                return Ok(true); // acceptance order: every later event is younger
            }
            let prefix = DeliveryId::event_prefix(&event.id);
            let end = format!("{prefix}\u{7f}");
            let mut ds: Vec<Delivery> = Vec::new();
            let mut unreadable = false;
            for row in tables
                .deliveries
                .range::<(&str, &str)>((t, prefix.as_str())..(t, end.as_str()))?
            {
                match decode("deliveries", row?.1.value()) {
                    Ok(d) => ds.push(d),
                    Err(StoreError::Corrupt { .. }) => unreadable = true,
                    Err(e) => return Err(e),
                }
            }
            let settled = !unreadable
                && ds.iter().all(|d| {
                    matches!(
                        d.status,
                        DeliveryStatus::Succeeded | DeliveryStatus::Cancelled
                    ) || (d.status == DeliveryStatus::Dead && d.updated_at < dead_before)
                });
            if !settled {
                continue; // still being delivered (or unreadable): passed by
            }
            for d in &ds {
                budget.rows += drop_delivery(t, d, tables, report)?;
            }
            tables.events.remove((t, cursor))?;
            tables.event_ids.remove((t, event.id.as_str()))?;
            budget.rows += 2;
            if let Some(key) = event.idempotency_key.as_deref() {
                let mine = tables
                    .idempotency
                    .get((t, key))?
                    .is_some_and(|g| g.value().2 == event.id.as_str());
                if mine {
                    tables.idempotency.remove((t, key))?;
                    budget.rows += 1;
                }
            }
            raise_watermark(tables, t, cursor)?;
            report.events += 1;
        }
    }
    Ok(false)
}

/// Status items written before the event age, in cursor order.
fn purge_statuses(
    tables: &mut Tables<'_>,
    t: &str,
    events_before: i64,
    after: &mut Option<String>,
    budget: &mut PurgeBudget,
    report: &mut PurgeReport,
) -> StoreResult<Finished> {
    let from = after
        .as_deref()
        .and_then(|a| a.parse::<u64>().ok())
        .unwrap_or(0);
    let mut doomed = Vec::new();
    let mut finished = true;
    for row in tables
        .status
        .range::<(&str, u64)>((Bound::Excluded((t, from)), Bound::Included((t, u64::MAX))))?
    {
        let (k, v) = row?;
        if v.value().0 >= events_before {
            break;
        }
        doomed.push(k.value().1);
        if budget.rows + doomed.len() >= budget.max_rows {
            finished = false;
            break;
        }
    }
    for cursor in &doomed {
        tables.status.remove((t, *cursor))?;
    }
    if let Some(last) = doomed.last() {
        *after = Some(last.to_string());
        raise_watermark(tables, t, *last)?;
    }
    budget.rows += doomed.len();
    report.other += doomed.len() as u64;
    Ok(finished && !budget.spent())
}

/// DLQ entries whose delivery died before the DLQ age, even when their event stays.
fn purge_dead(
    tables: &mut Tables<'_>,
    t: &str,
    dead_before: i64,
    after: &mut Option<String>,
    budget: &mut PurgeBudget,
    report: &mut PurgeReport,
) -> StoreResult<Finished> {
    let up = upper(t);
    let mut ids: Vec<String> = Vec::new();
    {
        let start = match after.as_deref() {
            Some(a) => Bound::Excluded((t, a)),
            None => Bound::Included((t, "")),
        };
        for row in tables
            .dead
            .range::<(&str, &str)>((start, Bound::Excluded((up.as_str(), ""))))?
        {
            ids.push(row?.0.value().1.to_owned());
            if ids.len() >= budget.left() {
                break;
            }
        }
    }
    let finished = ids.len() < budget.left();
    for id in &ids {
        *after = Some(id.clone());
        budget.rows += 1;
        let Some(d) = load_delivery_or_quarantine(tables.txn, &tables.deliveries, t, id)? else {
            // Nothing behind the entry (or nothing readable): the entry goes.
            tables.dead.remove((t, id.as_str()))?;
            continue;
        };
        if d.status == DeliveryStatus::Dead && d.updated_at < dead_before {
            budget.rows += drop_delivery(t, &d, tables, report)?;
        }
        if budget.spent() {
            return Ok(false);
        }
    }
    Ok(finished)
}

/// Replay records older than the event age (their ids sort by time).
fn purge_replays(
    txn: &WriteTransaction,
    t: &str,
    events_before: i64,
    after: &mut Option<String>,
    budget: &mut PurgeBudget,
    report: &mut PurgeReport,
) -> StoreResult<Finished> {
    let mut replays = txn.open_table(REPLAYS)?;
    let up = upper(t);
    let mut doomed: Vec<String> = Vec::new();
    let mut finished = true;
    {
        let start = match after.as_deref() {
            Some(a) => Bound::Excluded((t, a)),
            None => Bound::Included((t, "")),
        };
        for row in replays.range::<(&str, &str)>((start, Bound::Excluded((up.as_str(), ""))))? {
            let (k, v) = row?;
            let young =
                decode::<Replay>("replays", v.value()).is_ok_and(|r| r.created_at >= events_before);
            if young {
                break;
            }
            doomed.push(k.value().1.to_owned());
            if budget.rows + doomed.len() >= budget.max_rows {
                finished = false;
                break;
            }
        }
    }
    for id in &doomed {
        replays.remove((t, id.as_str()))?;
    }
    if let Some(last) = doomed.last() {
        *after = Some(last.clone());
    }
    budget.rows += doomed.len();
    report.other += doomed.len() as u64;
    Ok(finished && !budget.spent())
}

/// Inbox messages past their age, every tenant; within one inbox endpoint messages
/// are in capture order, so the first young one ends that endpoint's scan.
fn purge_inbox(
    txn: &WriteTransaction,
    policy: &PurgePolicy,
    cur: &mut PurgeCursor,
    budget: &mut PurgeBudget,
    report: &mut PurgeReport,
) -> StoreResult<Finished> {
    if policy.inbox_max_age_secs == 0 {
        return Ok(true);
    }
    let before = policy.now.saturating_sub(
        i64::try_from(policy.inbox_max_age_secs)
            .unwrap_or(i64::MAX)
            .saturating_mul(1000),
    );
    let mut inbox = txn.open_table(INBOX)?;
    // The cursor holds "tenant\nendpoint\nmessage" of the last key examined.
    let mut from: (String, String, String) = match cur.after.as_deref() {
        Some(a) => {
            let mut parts = a.splitn(3, '\n');
            (
                parts.next().unwrap_or("").to_owned(),
                parts.next().unwrap_or("").to_owned(),
                parts.next().unwrap_or("").to_owned(),
            )
        }
        None => Default::default(),
    };
    let mut excluded = cur.after.is_some();
    while !budget.spent() {
        let mut doomed: Vec<(String, String, String)> = Vec::new();
        let mut next_from: Option<(String, String, String)> = None;
        let mut end = true;
        {
            let key = (from.0.as_str(), from.1.as_str(), from.2.as_str());
            let start = if excluded {
                Bound::Excluded(key)
            } else {
                Bound::Included(key)
            };
            for row in inbox.range::<(&str, &str, &str)>((start, Bound::Unbounded))? {
                let (k, v) = row?;
                let (t, e, id) = k.value();
                budget.rows += 1;
                let old = match decode::<InboxMessage>("inbox", v.value()) {
                    Ok(m) => m.received_at < before,
                    Err(_) => true, // unreadable: nothing to keep
                };
                if old {
                    doomed.push((t.to_owned(), e.to_owned(), id.to_owned()));
                    cur.after = Some(format!("{t}\n{e}\n{id}"));
                } else {
                    // Younger ones follow in this endpoint: skip to the next endpoint.
                    next_from = Some((t.to_owned(), upper(e), String::new()));
                    cur.after = Some(format!("{t}\n{e}\n{id}"));
                    end = false;
                    break;
                }
                if budget.spent() {
                    end = false;
                    break;
                }
            }
        }
        for (t, e, id) in &doomed {
            inbox.remove((t.as_str(), e.as_str(), id.as_str()))?;
        }
        report.other += doomed.len() as u64;
        if end {
            return Ok(true);
        }
        match next_from {
            Some(n) => {
                // The cursor points into the next endpoint (inclusive start).
                cur.after = Some(format!("{}\n{}\n", n.0, n.1));
                from = n;
                excluded = false;
            }
            None => return Ok(false),
        }
    }
    Ok(false)
}

/// Removes one final delivery, its DLQ entry and its attempts; returns the rows removed.
fn drop_delivery(
    t: &str,
    d: &Delivery,
    tables: &mut Tables<'_>,
    report: &mut PurgeReport,
) -> StoreResult<usize> {
    let id = d.id.as_str();
    tables.deliveries.remove((t, id))?;
    if d.status == DeliveryStatus::Dead {
        tables.dead.remove((t, id))?;
    }
    let doomed: Vec<u32> = tables
        .attempts
        .range::<(&str, &str, u32)>((t, id, 0)..=(t, id, u32::MAX))?
        .map(|r| r.map(|(k, _)| k.value().2))
        .collect::<Result<_, _>>()?;
    for number in &doomed {
        tables.attempts.remove((t, id, *number))?;
    }
    counter_add(&mut tables.counters, t, d.status.as_str(), -1)?;
    report.deliveries += 1;
    report.attempts += doomed.len() as u64;
    Ok(1 + doomed.len())
}

impl RedbStore {
    pub(super) async fn purge(
        &self,
        policy: PurgePolicy,
        from: PurgeCursor,
    ) -> StoreResult<PurgeReport> {
        self.write(move |txn| purge(txn, &policy, from)).await
    }

    pub(super) async fn mark_compacted(&self, at: i64) -> StoreResult<()> {
        let mut meta = self.meta();
        meta.last_compaction_at = Some(at);
        let bytes = encode(&meta)?;
        self.write(move |txn| {
            txn.open_table(META)?
                .insert("store_meta", bytes.as_slice())?;
            Ok(())
        })
        .await?;
        if let Ok(mut m) = self.meta.lock() {
            *m = meta;
        }
        Ok(())
    }
}
