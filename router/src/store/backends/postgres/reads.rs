//! Reads: events, the stream, deliveries, attempts, the DLQ and the counts. Each is one
//! statement on a pooled connection (READ COMMITTED: it sees every commit before it).

use std::sync::Arc;

use crate::ids::{DeliveryId, EndpointId, EventId, TenantId};
use crate::store::{
    Attempt, Delivery, DeliveryQuery, DeliveryStatus, Event, EventQuery, Page, PageRequest,
    QueueCounts, StorageStats, StoreResult, StreamRead,
};
use crate::stream::{STATUS_TOPIC, StreamItem};

use super::{
    DELIVERY_COLUMNS, EVENT_COLUMNS, PgStore, SCAN_FACTOR, big, decode, delivery_from_row,
    event_from_row, limit_of, page_of, unbig,
};

/// The tables `storage_stats` counts.
const TABLES: &[&str] = &[
    "tenants",
    "api_keys",
    "endpoints",
    "subscriptions",
    "events",
    "idempotency",
    "deliveries",
    "delivery_queue",
    "attempts",
    "stream_status",
    "inbox",
    "replays",
    "plugins",
    "plugin_modules",
    "change_log",
];

impl PgStore {
    pub(super) async fn get_event(
        &self,
        tenant: &TenantId,
        id: &EventId,
    ) -> StoreResult<Option<Event>> {
        let sql = format!("SELECT {EVENT_COLUMNS} FROM events WHERE tenant = $1 AND id = $2");
        let row = self
            .client()
            .await?
            .query_opt(&sql, &[&tenant.as_str(), &id.as_str()])
            .await?;
        row.map(|r| event_from_row(&r)).transpose()
    }

    pub(super) async fn list_events(
        &self,
        tenant: &TenantId,
        query: EventQuery,
    ) -> StoreResult<Page<Event>> {
        let after_page = query
            .page
            .after
            .as_deref()
            .and_then(|s| s.parse::<u64>().ok());
        let after = after_page.max(query.after_cursor).unwrap_or(0);
        let limit = limit_of(&query.page);
        // With a topic filter, examine at most limit * SCAN_FACTOR events (a partial
        // page then says where to continue), as the embedded store does.
        let scan_cap = if query.topic.is_some() {
            limit.saturating_mul(SCAN_FACTOR)
        } else {
            limit
        };
        let sql = format!(
            "SELECT {EVENT_COLUMNS} FROM events WHERE tenant = $1 AND cursor > $2 \
             ORDER BY cursor LIMIT $3"
        );
        let rows = self
            .client()
            .await?
            .query(&sql, &[&tenant.as_str(), &big(after), &(scan_cap as i64)])
            .await?;
        let mut items = Vec::with_capacity(limit.min(rows.len()));
        let mut scanned = 0usize;
        for r in &rows {
            scanned += 1;
            let event = event_from_row(r)?;
            let cursor = event.cursor;
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
    }

    pub(super) async fn head_cursor(&self, tenant: &TenantId) -> StoreResult<u64> {
        let row = self
            .client()
            .await?
            .query_opt(
                "SELECT cursor FROM tenant_state WHERE tenant = $1",
                &[&tenant.as_str()],
            )
            .await?;
        Ok(row
            .map(|r| r.try_get::<_, i64>(0))
            .transpose()?
            .map_or(0, unbig))
    }

    pub(super) async fn read_stream(
        &self,
        tenant: &TenantId,
        after: u64,
        limit: usize,
        topic: Option<&crate::ingest::topic::TopicPattern>,
        min_created_at: i64,
    ) -> StoreResult<StreamRead> {
        let t = tenant.as_str();
        let limit = limit.max(1);
        let client = self.client().await?;
        // The head first: every row up to it is committed when we read the rows.
        let state = client
            .query_opt(
                "SELECT cursor, purged_to, \
                 (SELECT min(cursor) FROM events WHERE tenant = $1), \
                 (SELECT min(cursor) FROM stream_status WHERE tenant = $1) \
                 FROM tenant_state WHERE tenant = $1",
                &[&t],
            )
            .await?;
        let Some(state) = state else {
            return Ok(StreamRead {
                scanned_to: after,
                ..StreamRead::default()
            });
        };
        let head = unbig(state.try_get(0)?);
        let purged_to = unbig(state.try_get(1)?);
        let stored = match (
            state.try_get::<_, Option<i64>>(2)?,
            state.try_get::<_, Option<i64>>(3)?,
        ) {
            (Some(a), Some(b)) => Some(unbig(a.min(b))),
            (a, b) => a.or(b).map(unbig),
        };
        // Retention may keep an old event still being delivered while removing later
        // ones: below its watermark the stream has holes, so history starts above it.
        let oldest = match stored {
            Some(o) if purged_to >= o => Some(purged_to + 1),
            other => other,
        };
        let mut out = StreamRead {
            scanned_to: after,
            head,
            oldest,
            ..StreamRead::default()
        };
        for (cursor, created_at, item) in
            stream_page(&client, tenant, after, head, limit, topic).await?
        {
            out.scanned_to = cursor;
            if created_at < min_created_at {
                out.too_old += 1;
            } else if let Some(item) = item {
                out.items.push(item);
            }
        }
        Ok(out)
    }

    pub(super) async fn get_delivery(
        &self,
        tenant: &TenantId,
        id: &DeliveryId,
    ) -> StoreResult<Option<Delivery>> {
        let sql =
            format!("SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE tenant = $1 AND id = $2");
        let row = self
            .client()
            .await?
            .query_opt(&sql, &[&tenant.as_str(), &id.as_str()])
            .await?;
        row.map(|r| delivery_from_row(&r)).transpose()
    }

    pub(super) async fn list_deliveries(
        &self,
        tenant: &TenantId,
        query: DeliveryQuery,
    ) -> StoreResult<Page<Delivery>> {
        let limit = limit_of(&query.page);
        // One event's deliveries are one id range (their ids extend the event's).
        let (from, to) = match &query.event_id {
            Some(e) => {
                let prefix = DeliveryId::event_prefix(e);
                let end = format!("{prefix}~");
                (Some(prefix), Some(end))
            }
            None => (None, None),
        };
        let sql = format!(
            "SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE tenant = $1 AND id > $2 \
             AND ($3::text IS NULL OR id >= $3) AND ($4::text IS NULL OR id < $4) \
             AND ($5::text IS NULL OR endpoint_id = $5) AND ($6::text IS NULL OR status = $6) \
             ORDER BY id LIMIT $7"
        );
        let rows = self
            .client()
            .await?
            .query(
                &sql,
                &[
                    &tenant.as_str(),
                    &query.page.after.unwrap_or_default(),
                    &from,
                    &to,
                    &query.endpoint_id.as_ref().map(EndpointId::as_str),
                    &query.status.map(DeliveryStatus::as_str),
                    &(limit as i64),
                ],
            )
            .await?;
        let items = rows
            .iter()
            .map(delivery_from_row)
            .collect::<StoreResult<Vec<_>>>()?;
        Ok(page_of(items, limit, |d| d.id.to_string()))
    }

    pub(super) async fn list_attempts(
        &self,
        tenant: &TenantId,
        id: &DeliveryId,
    ) -> StoreResult<Vec<Attempt>> {
        let rows = self
            .client()
            .await?
            .query(
                "SELECT data FROM attempts WHERE tenant = $1 AND delivery_id = $2 ORDER BY number",
                &[&tenant.as_str(), &id.as_str()],
            )
            .await?;
        rows.iter()
            .map(|r| decode::<Attempt>("attempts", r.try_get::<_, &[u8]>(0)?))
            .collect()
    }

    pub(super) async fn queued_endpoints(&self) -> StoreResult<Vec<(TenantId, EndpointId)>> {
        let client = self.client().await?;
        queued_endpoints_on(&client).await
    }

    pub(super) async fn next_due(&self, endpoint: &EndpointId) -> StoreResult<Option<i64>> {
        let row = self
            .client()
            .await?
            .query_one(
                "SELECT min(due) FROM delivery_queue WHERE endpoint_id = $1",
                &[&endpoint.as_str()],
            )
            .await?;
        Ok(row.try_get(0)?)
    }

    pub(super) async fn list_dead(
        &self,
        tenant: &TenantId,
        endpoint: Option<&EndpointId>,
        page: PageRequest,
    ) -> StoreResult<Page<Delivery>> {
        let limit = limit_of(&page);
        let sql = format!(
            "SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE tenant = $1 AND status = 'dead' \
             AND id > $2 AND ($3::text IS NULL OR endpoint_id = $3) ORDER BY id LIMIT $4"
        );
        let rows = self
            .client()
            .await?
            .query(
                &sql,
                &[
                    &tenant.as_str(),
                    &page.after.unwrap_or_default(),
                    &endpoint.map(EndpointId::as_str),
                    &(limit as i64),
                ],
            )
            .await?;
        let items = rows
            .iter()
            .map(delivery_from_row)
            .collect::<StoreResult<Vec<_>>>()?;
        Ok(page_of(items, limit, |d| d.id.to_string()))
    }

    pub(super) async fn storage_stats(&self) -> StoreResult<StorageStats> {
        let client = self.client().await?;
        let sql = TABLES
            .iter()
            .map(|t| format!("SELECT '{t}'::text, count(*)::int8 FROM {t}"))
            .collect::<Vec<_>>()
            .join(" UNION ALL ");
        let mut tables = std::collections::BTreeMap::new();
        for r in client.query(&sql, &[]).await? {
            tables.insert(r.try_get::<_, String>(0)?, unbig(r.try_get(1)?));
        }
        let size: i64 = client
            .query_one(
                "SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0)::int8 FROM pg_class c \
                 JOIN pg_namespace n ON n.oid = c.relnamespace \
                 WHERE n.nspname = current_schema() AND c.relkind = 'r'",
                &[],
            )
            .await?
            .try_get(0)?;
        Ok(StorageStats {
            tables,
            file_bytes: Some(unbig(size)),
            stored_bytes: None,
            fragmented_bytes: None,
            meta: Some(crate::store::Store::meta(self)),
        })
    }

    pub(super) async fn queue_counts(&self, tenant: Option<&TenantId>) -> StoreResult<QueueCounts> {
        let rows = self
            .client()
            .await?
            .query(
                "SELECT status, count(*)::int8 FROM deliveries \
                 WHERE ($1::text IS NULL OR tenant = $1) \
                 AND status IN ('pending', 'retrying', 'in_flight', 'dead') GROUP BY status",
                &[&tenant.map(TenantId::as_str)],
            )
            .await?;
        let mut counts = QueueCounts::default();
        for r in &rows {
            let n = unbig(r.try_get(1)?);
            match DeliveryStatus::parse(r.try_get(0)?) {
                Some(DeliveryStatus::Pending) => counts.pending += n,
                Some(DeliveryStatus::Retrying) => counts.retrying += n,
                Some(DeliveryStatus::InFlight) => counts.in_flight += n,
                Some(DeliveryStatus::Dead) => counts.dead += n,
                _ => {}
            }
        }
        Ok(counts)
    }
}

/// A tenant's stream positions in `(after, upto]`, at most `limit`, in cursor order:
/// (cursor, written at, the item when its topic matches `topic`).
pub(super) async fn stream_page(
    client: &tokio_postgres::Client,
    tenant: &TenantId,
    after: u64,
    upto: u64,
    limit: usize,
    topic: Option<&crate::ingest::topic::TopicPattern>,
) -> StoreResult<Vec<(u64, i64, Option<Arc<StreamItem>>)>> {
    let rows = client
        .query(
            "(SELECT cursor, id, topic, created_at, idempotency_key, payload, \
              record_version, false AS status FROM events \
              WHERE tenant = $1 AND cursor > $2 AND cursor <= $4 ORDER BY cursor LIMIT $3) \
             UNION ALL \
             (SELECT cursor, NULL, topic, created_at, NULL, data, 0, true FROM stream_status \
              WHERE tenant = $1 AND cursor > $2 AND cursor <= $4 ORDER BY cursor LIMIT $3) \
             ORDER BY cursor LIMIT $3",
            &[
                &tenant.as_str(),
                &big(after),
                &(limit.max(1) as i64),
                &big(upto),
            ],
        )
        .await?;
    let wants = |topic_name: &str| topic.is_none_or(|p| p.matches(topic_name));
    let mut out = Vec::with_capacity(rows.len());
    for r in &rows {
        let cursor = unbig(r.try_get(0)?);
        let created_at: i64 = r.try_get(3)?;
        let item = if r.try_get::<_, bool>(7)? {
            // No topic: `deliveries.status`.
            let topic_name = r.try_get::<_, Option<&str>>(2)?.unwrap_or(STATUS_TOPIC);
            wants(topic_name).then(|| -> StoreResult<Arc<StreamItem>> {
                let data: &str = r.try_get(5)?;
                Ok(Arc::new(StreamItem::new(
                    cursor, topic_name, created_at, data,
                )))
            })
        } else {
            let topic_name: &str = r.try_get(2)?;
            wants(topic_name).then(|| -> StoreResult<Arc<StreamItem>> {
                let payload: String = r.try_get(5)?;
                let event = Event {
                    record_version: u32::try_from(r.try_get::<_, i32>(6)?).unwrap_or(1),
                    id: EventId::from_trusted(r.try_get(1)?),
                    tenant_id: tenant.clone(),
                    cursor,
                    topic: topic_name.to_owned(),
                    payload: serde_json::value::RawValue::from_string(payload).map_err(|e| {
                        crate::store::StoreError::Corrupt {
                            table: "events",
                            message: e.to_string(),
                        }
                    })?,
                    idempotency_key: r.try_get(4)?,
                    created_at,
                    traceparent: None,
                };
                Ok(Arc::new(StreamItem::from_event(&event)))
            })
        };
        out.push((cursor, created_at, item.transpose()?));
    }
    Ok(out)
}

/// Every endpoint with queued deliveries, on `client`.
pub(super) async fn queued_endpoints_on(
    client: &tokio_postgres::Client,
) -> StoreResult<Vec<(TenantId, EndpointId)>> {
    let rows = client
        .query(
            "SELECT DISTINCT tenant, endpoint_id FROM delivery_queue",
            &[],
        )
        .await?;
    rows.iter()
        .map(|r| {
            Ok((
                TenantId::from_trusted(r.try_get(0)?),
                EndpointId::from_trusted(r.try_get(1)?),
            ))
        })
        .collect()
}
