//! Reads of events, the stream, deliveries, attempts, the DLQ and the counters: MVCC
//! read transactions on the caller's task, never blocking the writer.

use std::ops::Bound;
use std::sync::Arc;

use redb::{ReadableTable, ReadableTableMetadata, TableHandle};

use crate::ids::{DeliveryId, EndpointId, EventId, TenantId};
use crate::store::{
    Attempt, Delivery, DeliveryQuery, DeliveryStatus, Event, EventQuery, Page, PageRequest,
    QueueCounts, StorageStats, Store, StoreResult, StreamRead,
};
use crate::stream::StreamItem;

use super::tables::*;
use super::{RedbStore, SCAN_FACTOR, counter_get, decode, get_json, list_scoped, upper};

/// The cursor of the next row of a `(tenant, cursor)` range.
pub(super) fn peek_cursor<V: redb::Value + 'static>(
    rows: &mut std::iter::Peekable<redb::Range<'_, (&'static str, u64), V>>,
) -> StoreResult<Option<u64>> {
    match rows.peek() {
        None => Ok(None),
        Some(Ok((k, _))) => Ok(Some(k.value().1)),
        Some(Err(_)) => match rows.next() {
            Some(Err(e)) => Err(e.into()),
            _ => Ok(None),
        },
    }
}

impl RedbStore {
    pub(super) async fn get_event(
        &self,
        tenant: &TenantId,
        id: &EventId,
    ) -> StoreResult<Option<Event>> {
        let txn = self.read()?;
        let Some(cursor) = txn
            .open_table(EVENT_IDS)?
            .get((tenant.as_str(), id.as_str()))?
            .map(|g| g.value())
        else {
            return Ok(None);
        };
        match txn.open_table(EVENTS)?.get((tenant.as_str(), cursor))? {
            Some(v) => {
                let mut event: Event = decode("events", v.value())?;
                event.cursor = cursor;
                Ok(Some(event))
            }
            None => Ok(None),
        }
    }

    pub(super) async fn list_events(
        &self,
        tenant: &TenantId,
        query: EventQuery,
    ) -> StoreResult<Page<Event>> {
        let tenant = tenant.clone();
        self.read_blocking(move |txn| {
            let tenant = &tenant;
            let table = txn.open_table(EVENTS)?;
            let t = tenant.as_str();
            let after_page = query
                .page
                .after
                .as_deref()
                .and_then(|s| s.parse::<u64>().ok());
            let after = after_page.max(query.after_cursor).unwrap_or(0);
            let limit = query.page.limit.max(1);
            let scan_cap = limit.saturating_mul(SCAN_FACTOR);
            let mut items = Vec::with_capacity(limit.min(256));
            let mut scanned = 0usize;
            for row in table.range::<(&str, u64)>((
                Bound::Excluded((t, after)),
                Bound::Included((t, u64::MAX)),
            ))? {
                let (k, v) = row?;
                scanned += 1;
                let cursor = k.value().1;
                let mut event: Event = decode("events", v.value())?;
                event.cursor = cursor;
                if query.topic.as_ref().is_none_or(|p| p.matches(&event.topic)) {
                    items.push(event);
                }
                if items.len() == limit || scanned == scan_cap {
                    return Ok(Page {
                        items,
                        next: Some(cursor.to_string()),
                    });
                }
            }
            Ok(Page { items, next: None })
        })
        .await
    }

    pub(super) async fn head_cursor(&self, tenant: &TenantId) -> StoreResult<u64> {
        let txn = self.read()?;
        counter_get(&txn.open_table(COUNTERS)?, tenant.as_str(), COUNTER_CURSOR)
    }

    pub(super) async fn read_stream(
        &self,
        tenant: &TenantId,
        after: u64,
        limit: usize,
        topic: Option<&crate::ingest::topic::TopicPattern>,
        min_created_at: i64,
    ) -> StoreResult<StreamRead> {
        let txn = self.read()?;
        let t = tenant.as_str();
        let events = txn.open_table(EVENTS)?;
        let statuses = txn.open_table(STREAM_STATUS)?;
        let head = counter_get(&txn.open_table(COUNTERS)?, t, COUNTER_CURSOR)?;
        let first = |k: Option<u64>, j: Option<u64>| match (k, j) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let stored = first(
            events
                .range::<(&str, u64)>((t, 0)..=(t, u64::MAX))?
                .next()
                .transpose()?
                .map(|(k, _)| k.value().1),
            statuses
                .range::<(&str, u64)>((t, 0)..=(t, u64::MAX))?
                .next()
                .transpose()?
                .map(|(k, _)| k.value().1),
        );
        // Retention may keep an old event still being delivered while removing later
        // ones: below its watermark the stream has holes, so history starts above it.
        let purged_to = counter_get(&txn.open_table(COUNTERS)?, t, COUNTER_PURGED_TO)?;
        let oldest = match stored {
            Some(o) if purged_to >= o => Some(purged_to + 1),
            other => other,
        };
        let range = (Bound::Excluded((t, after)), Bound::Included((t, u64::MAX)));
        let mut ev = events.range::<(&str, u64)>(range)?.peekable();
        let mut st = statuses.range::<(&str, u64)>(range)?.peekable();
        let mut out = StreamRead {
            scanned_to: after,
            head,
            oldest,
            ..StreamRead::default()
        };
        let wants = |topic_name: &str| topic.is_none_or(|p| p.matches(topic_name));
        for _ in 0..limit.max(1) {
            let next_ev = peek_cursor(&mut ev)?;
            let next_st = peek_cursor(&mut st)?;
            let take_event = match (next_ev, next_st) {
                (None, None) => break,
                (Some(a), Some(b)) => a < b,
                (a, _) => a.is_some(),
            };
            if take_event {
                let Some(row) = ev.next() else { break };
                let (k, v) = row?;
                let cursor = k.value().1;
                out.scanned_to = cursor;
                let mut event: Event = decode("events", v.value())?;
                event.cursor = cursor;
                if event.created_at < min_created_at {
                    out.too_old += 1;
                } else if wants(&event.topic) {
                    out.items.push(Arc::new(StreamItem::from_event(&event)));
                }
            } else {
                let Some(row) = st.next() else { break };
                let (k, v) = row?;
                let cursor = k.value().1;
                out.scanned_to = cursor;
                let (at, row) = v.value();
                let (topic_name, data) = stream_row_parts(row)?;
                if at < min_created_at {
                    out.too_old += 1;
                } else if wants(topic_name) {
                    out.items
                        .push(Arc::new(StreamItem::new(cursor, topic_name, at, data)));
                }
            }
        }
        Ok(out)
    }

    pub(super) async fn get_delivery(
        &self,
        tenant: &TenantId,
        id: &DeliveryId,
    ) -> StoreResult<Option<Delivery>> {
        let txn = self.read()?;
        get_json(&txn, DELIVERIES, "deliveries", tenant.as_str(), id.as_str())
    }

    pub(super) async fn list_deliveries(
        &self,
        tenant: &TenantId,
        query: DeliveryQuery,
    ) -> StoreResult<Page<Delivery>> {
        let tenant = tenant.clone();
        self.read_blocking(move |txn| {
            let tenant = &tenant;
            let keep = |d: &Delivery| {
                query
                    .endpoint_id
                    .as_ref()
                    .is_none_or(|e| &d.endpoint_id == e)
                    && query.status.is_none_or(|s| d.status == s)
            };
            let Some(event) = &query.event_id else {
                return list_scoped(
                    txn,
                    DELIVERIES,
                    "deliveries",
                    tenant.as_str(),
                    &query.page,
                    keep,
                );
            };
            // One event's deliveries are the key range of its id prefix.
            let t = tenant.as_str();
            let deliveries = txn.open_table(DELIVERIES)?;
            let prefix = DeliveryId::event_prefix(event);
            let end = format!("{prefix}\u{7f}");
            // A caller's cursor outside this event's range starts at the range: it can
            // never make the scan walk other events' deliveries.
            let start = match query.page.after.as_deref() {
                Some(after) if after >= prefix.as_str() => Bound::Excluded((t, after)),
                _ => Bound::Included((t, prefix.as_str())),
            };
            let limit = query.page.limit.max(1);
            let scan_cap = limit.saturating_mul(SCAN_FACTOR);
            let mut items = Vec::new();
            let mut scanned = 0usize;
            for row in
                deliveries.range::<(&str, &str)>((start, Bound::Excluded((t, end.as_str()))))?
            {
                let (k, v) = row?;
                scanned += 1;
                let d: Delivery = decode("deliveries", v.value())?;
                if keep(&d) {
                    items.push(d);
                }
                if items.len() == limit || scanned == scan_cap {
                    let next = Some(k.value().1.to_owned());
                    return Ok(Page { items, next });
                }
            }
            Ok(Page { items, next: None })
        })
        .await
    }

    pub(super) async fn list_attempts(
        &self,
        tenant: &TenantId,
        id: &DeliveryId,
    ) -> StoreResult<Vec<Attempt>> {
        let txn = self.read()?;
        let table = txn.open_table(ATTEMPTS)?;
        let (t, d) = (tenant.as_str(), id.as_str());
        let mut out = Vec::new();
        for row in table.range::<(&str, &str, u32)>((t, d, 0)..=(t, d, u32::MAX))? {
            let (_, v) = row?;
            out.push(decode("attempts", v.value())?);
        }
        Ok(out)
    }

    pub(super) async fn queued_endpoints(&self) -> StoreResult<Vec<(TenantId, EndpointId)>> {
        let txn = self.read()?;
        let due = txn.open_table(DELIVERIES_DUE)?;
        let mut out = Vec::new();
        // Skip from one endpoint's range to the next instead of reading every row.
        let mut from = String::new();
        loop {
            let mut range = due.range::<(&str, u64, &str)>((from.as_str(), 0, "")..)?;
            let Some(row) = range.next() else { break };
            let (k, v) = row?;
            let (endpoint, _, _) = k.value();
            out.push((
                TenantId::from_trusted(v.value().to_owned()),
                EndpointId::from_trusted(endpoint.to_owned()),
            ));
            from = upper(endpoint);
        }
        Ok(out)
    }

    pub(super) async fn next_due(&self, endpoint: &EndpointId) -> StoreResult<Option<i64>> {
        let txn = self.read()?;
        let due = txn.open_table(DELIVERIES_DUE)?;
        let e = endpoint.as_str();
        let mut range = due.range::<(&str, u64, &str)>((e, 0, "")..=(e, u64::MAX, "\u{7f}"))?;
        match range.next() {
            Some(row) => Ok(Some(i64::try_from(row?.0.value().1).unwrap_or(i64::MAX))),
            None => Ok(None),
        }
    }

    pub(super) async fn list_dead(
        &self,
        tenant: &TenantId,
        endpoint: Option<&EndpointId>,
        page: PageRequest,
    ) -> StoreResult<Page<Delivery>> {
        let tenant = tenant.clone();
        let endpoint = endpoint.cloned();
        self.read_blocking(move |txn| {
            let tenant = &tenant;
            let endpoint = endpoint.as_ref();
            let dead = txn.open_table(DEAD)?;
            let deliveries = txn.open_table(DELIVERIES)?;
            let t = tenant.as_str();
            let up = upper(t);
            let start = match page.after.as_deref() {
                Some(a) => Bound::Excluded((t, a)),
                None => Bound::Included((t, "")),
            };
            let limit = page.limit.max(1);
            let scan_cap = limit.saturating_mul(SCAN_FACTOR);
            let mut items = Vec::new();
            let mut scanned = 0;
            for row in dead.range::<(&str, &str)>((start, Bound::Excluded((up.as_str(), ""))))? {
                let (k, v) = row?;
                scanned += 1;
                let id = k.value().1;
                if endpoint.is_none_or(|e| e.as_str() == v.value())
                    && let Some(rec) = deliveries.get((t, id))?
                {
                    items.push(decode("deliveries", rec.value())?);
                }
                if items.len() == limit || scanned == scan_cap {
                    return Ok(Page {
                        items,
                        next: Some(id.to_owned()),
                    });
                }
            }
            Ok(Page { items, next: None })
        })
        .await
    }

    pub(super) async fn storage_stats(&self) -> StoreResult<StorageStats> {
        let txn = self.read()?;
        let mut tables = std::collections::BTreeMap::new();
        for handle in txn.list_tables()? {
            let name = handle.name().to_owned();
            let count = txn.open_untyped_table(handle)?.len()?;
            tables.insert(name, count);
        }
        Ok(StorageStats {
            tables,
            file_bytes: std::fs::metadata(&self.path).ok().map(|m| m.len()),
            stored_bytes: None,
            fragmented_bytes: None,
            meta: Some(self.meta()),
        })
    }

    pub(super) async fn queue_counts(&self, tenant: Option<&TenantId>) -> StoreResult<QueueCounts> {
        let txn = self.read()?;
        let counters = txn.open_table(COUNTERS)?;
        let mut counts = QueueCounts::default();
        let mut add = |name: &str, n: u64| match DeliveryStatus::parse(name) {
            Some(DeliveryStatus::Pending) => counts.pending += n,
            Some(DeliveryStatus::Retrying) => counts.retrying += n,
            Some(DeliveryStatus::InFlight) => counts.in_flight += n,
            Some(DeliveryStatus::Dead) => counts.dead += n,
            _ => {}
        };
        match tenant {
            Some(t) => {
                for status in DeliveryStatus::ALL {
                    add(
                        status.as_str(),
                        counter_get(&counters, t.as_str(), status.as_str())?,
                    );
                }
            }
            None => {
                for row in counters.iter()? {
                    let (k, v) = row?;
                    add(k.value().1, v.value());
                }
            }
        }
        Ok(counts)
    }
}
