//! Retention: bounded purges of expired events, deliveries, attempts, DLQ entries,
//! status items and inbox messages.

use redb::{ReadableTable, Table, WriteTransaction};

use crate::ids::DeliveryId;
use crate::store::{
    Delivery, DeliveryStatus, Event, InboxMessage, PurgePolicy, PurgeReport, Store, StoreResult,
    Tenant,
};

use super::tables::*;
use super::{RedbStore, counter_add, decode, encode, load_delivery, upper};

/// One bounded retention pass (see `Store::purge`).
pub(super) fn purge(txn: &WriteTransaction, policy: &PurgePolicy) -> StoreResult<PurgeReport> {
    // Each tenant with its own cut-offs.
    let tenants: Vec<(String, i64, i64)> = {
        let t = txn.open_table(TENANTS)?;
        let mut out = Vec::new();
        for row in t.iter()? {
            let tenant: Tenant = decode("tenants", row?.1.value())?;
            let (events_before, dead_before) = policy.cutoffs(&tenant.retention);
            out.push((tenant.id.to_string(), events_before, dead_before));
        }
        out
    };
    let mut events = txn.open_table(EVENTS)?;
    let mut event_ids = txn.open_table(EVENT_IDS)?;
    let mut idempotency = txn.open_table(IDEMPOTENCY)?;
    let mut deliveries = txn.open_table(DELIVERIES)?;
    let mut dead = txn.open_table(DEAD)?;
    let mut attempts = txn.open_table(ATTEMPTS)?;
    let mut counters = txn.open_table(COUNTERS)?;
    let mut status = txn.open_table(STREAM_STATUS)?;
    let mut report = PurgeReport::default();
    let mut rows = 0usize;
    let budget = policy.max_rows.max(1);
    // The row budget, or the time budget once something was deleted (every call
    // makes progress).
    let started = std::time::Instant::now();
    let slice = std::time::Duration::from_millis(policy.max_millis);
    let spent = |rows: usize| {
        rows >= budget || (rows > 0 && !slice.is_zero() && started.elapsed() >= slice)
    };

    for (t, events_before, dead_before) in &tenants {
        let (t, events_before, dead_before) = (t.as_str(), *events_before, *dead_before);
        // Events, oldest first, while they are expired and settled.
        loop {
            if spent(rows) {
                return Ok(report);
            }
            let first = events
                .range::<(&str, u64)>((t, 0)..=(t, u64::MAX))?
                .next()
                .transpose()?
                .map(|(k, v)| (k.value().1, v.value().to_vec()));
            let Some((cursor, raw)) = first else { break };
            let event: Event = decode("events", &raw)?;
            if event.created_at >= events_before {
                break;
            }
            let prefix = DeliveryId::event_prefix(&event.id);
            let end = format!("{prefix}\u{7f}");
            let mut ds: Vec<Delivery> = Vec::new();
            for row in deliveries.range::<(&str, &str)>((t, prefix.as_str())..(t, end.as_str()))? {
                ds.push(decode("deliveries", row?.1.value())?);
            }
            let settled = ds.iter().all(|d| {
                matches!(
                    d.status,
                    DeliveryStatus::Succeeded | DeliveryStatus::Cancelled
                ) || (d.status == DeliveryStatus::Dead && d.updated_at < dead_before)
            });
            if !settled {
                break; // this event (and so every later one) waits
            }
            for d in &ds {
                rows += drop_delivery(
                    t,
                    d,
                    &mut deliveries,
                    &mut dead,
                    &mut attempts,
                    &mut counters,
                    &mut report,
                )?;
            }
            events.remove((t, cursor))?;
            event_ids.remove((t, event.id.as_str()))?;
            rows += 2;
            if let Some(key) = event.idempotency_key.as_deref() {
                let mine = idempotency
                    .get((t, key))?
                    .is_some_and(|g| g.value().2 == event.id.as_str());
                if mine {
                    idempotency.remove((t, key))?;
                    rows += 1;
                }
            }
            report.events += 1;
        }
        // Status items past the event age, below the oldest event kept: retention
        // always removes a prefix of the stream, never a hole in it.
        let floor = events
            .range::<(&str, u64)>((t, 0)..=(t, u64::MAX))?
            .next()
            .transpose()?
            .map_or(u64::MAX, |(k, _)| k.value().1);
        let mut doomed = Vec::new();
        for row in status.range::<(&str, u64)>((t, 0)..(t, floor))? {
            let (k, v) = row?;
            if v.value().0 >= events_before || rows + doomed.len() >= budget {
                break;
            }
            doomed.push(k.value().1);
        }
        for cursor in &doomed {
            status.remove((t, *cursor))?;
        }
        rows += doomed.len();
        if spent(rows) {
            return Ok(report);
        }
        // Dead deliveries past the DLQ retention, even when their event stays.
        let up = upper(t);
        let expired: Vec<Delivery> = {
            let mut out = Vec::new();
            for row in dead.range::<(&str, &str)>((t, "")..(up.as_str(), ""))? {
                let (k, _) = row?;
                if let Some(d) = load_delivery(&deliveries, t, k.value().1)?
                    && d.updated_at < dead_before
                {
                    out.push(d);
                    if out.len() >= budget.saturating_sub(rows).max(1) {
                        break;
                    }
                }
            }
            out
        };
        for d in &expired {
            if spent(rows) {
                return Ok(report);
            }
            rows += drop_delivery(
                t,
                d,
                &mut deliveries,
                &mut dead,
                &mut attempts,
                &mut counters,
                &mut report,
            )?;
        }
    }
    // Inbox messages past their age, every tenant.
    if policy.inbox_max_age_secs > 0 {
        let before = policy.now.saturating_sub(
            i64::try_from(policy.inbox_max_age_secs)
                .unwrap_or(i64::MAX)
                .saturating_mul(1000),
        );
        let mut inbox = txn.open_table(INBOX)?;
        let mut doomed: Vec<(String, String, String)> = Vec::new();
        for row in inbox.iter()? {
            let (k, v) = row?;
            let m: InboxMessage = decode("inbox", v.value())?;
            if m.received_at < before {
                let (t, e, id) = k.value();
                doomed.push((t.to_owned(), e.to_owned(), id.to_owned()));
                if rows + doomed.len() >= budget {
                    break;
                }
            }
        }
        for (t, e, id) in &doomed {
            inbox.remove((t.as_str(), e.as_str(), id.as_str()))?;
        }
        rows += doomed.len();
    }
    report.done = !spent(rows);
    Ok(report)
}

/// Removes one final delivery, its DLQ entry and its attempts; returns the rows removed.
pub(super) fn drop_delivery(
    t: &str,
    d: &Delivery,
    deliveries: &mut Table<(&str, &str), &[u8]>,
    dead: &mut Table<(&str, &str), &str>,
    attempts: &mut Table<(&str, &str, u32), &[u8]>,
    counters: &mut Table<(&str, &str), u64>,
    report: &mut PurgeReport,
) -> StoreResult<usize> {
    let id = d.id.as_str();
    deliveries.remove((t, id))?;
    if d.status == DeliveryStatus::Dead {
        dead.remove((t, id))?;
    }
    let doomed: Vec<u32> = attempts
        .range::<(&str, &str, u32)>((t, id, 0)..=(t, id, u32::MAX))?
        .map(|r| r.map(|(k, _)| k.value().2))
        .collect::<Result<_, _>>()?;
    for number in &doomed {
        attempts.remove((t, id, *number))?;
    }
    counter_add(counters, t, d.status.as_str(), -1)?;
    report.deliveries += 1;
    report.attempts += doomed.len() as u64;
    Ok(1 + doomed.len())
}

impl RedbStore {
    pub(super) async fn purge(&self, policy: PurgePolicy) -> StoreResult<PurgeReport> {
        self.write(move |txn| purge(txn, &policy)).await
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
