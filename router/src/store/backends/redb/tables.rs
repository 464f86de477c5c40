//! Table definitions of the redb backend: the on-disk layout, in one place.
//!
//! Tenant-owned tables are keyed by `(tenant, …)` so that every read is tenant-scoped
//! and a tenant's rows form one contiguous key range. Record values are JSON.

use redb::TableDefinition;

/// `"store_meta"` → JSON [`crate::store::StoreMeta`].
pub const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
/// tenant id → JSON tenant.
pub const TENANTS: TableDefinition<&str, &[u8]> = TableDefinition::new("tenants");
/// (tenant, key id) → JSON key record.
pub const API_KEYS: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("api_keys");
/// key hash → (tenant, key id); only live keys are present.
pub const API_KEY_HASHES: TableDefinition<&str, (&str, &str)> =
    TableDefinition::new("api_key_hashes");
/// (tenant, endpoint id) → JSON endpoint.
pub const ENDPOINTS: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("endpoints");
/// (tenant, subscription id) → JSON subscription.
pub const SUBSCRIPTIONS: TableDefinition<(&str, &str), &[u8]> =
    TableDefinition::new("subscriptions");
/// (tenant, cursor) → JSON event. The tenant's stream, in cursor order.
pub const EVENTS: TableDefinition<(&str, u64), &[u8]> = TableDefinition::new("events");
/// (tenant, event id) → cursor.
pub const EVENT_IDS: TableDefinition<(&str, &str), u64> = TableDefinition::new("event_ids");
/// (tenant, idempotency key) → (cursor, created_at ms, event id).
pub const IDEMPOTENCY: TableDefinition<(&str, &str), (u64, i64, &str)> =
    TableDefinition::new("idempotency");
/// (tenant, delivery id) → JSON delivery. Delivery ids extend their event's id, so
/// one event's deliveries are one key range.
pub const DELIVERIES: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("deliveries");
/// (endpoint id, next attempt ms, delivery id) → tenant: each endpoint's queue by due
/// time. Per endpoint, so a backlog at one endpoint never sits in front of another's.
pub const DELIVERIES_DUE: TableDefinition<(&str, u64, &str), &str> =
    TableDefinition::new("deliveries_due_v2");
/// (lease end ms, delivery id) → tenant: in-flight deliveries, for the reaper.
pub const LEASES: TableDefinition<(u64, &str), &str> = TableDefinition::new("leases");
/// (tenant, delivery id) → endpoint id: the dead-letter queue.
pub const DEAD: TableDefinition<(&str, &str), &str> = TableDefinition::new("dead");
/// (tenant, endpoint id, message id) → JSON inbox message.
pub const INBOX: TableDefinition<(&str, &str, &str), &[u8]> = TableDefinition::new("inbox");
/// (tenant, replay id) → JSON replay record.
pub const REPLAYS: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("replays");
/// (tenant, delivery id, attempt number) → JSON attempt.
pub const ATTEMPTS: TableDefinition<(&str, &str, u32), &[u8]> = TableDefinition::new("attempts");
/// (tenant, cursor) → (written at, Unix ms; [`stream_row`]): the stream positions
/// that are not events (delivery attempts' statuses, audit records), sharing the
/// tenant's cursor with events.
pub const STREAM_STATUS: TableDefinition<(&str, u64), (i64, &[u8])> =
    TableDefinition::new("stream_status");

/// A [`STREAM_STATUS`] row's data: a `deliveries.status` item's JSON as it is (every
/// row of stores before the audit topic), any other topic's as `\0topic\0` then its
/// JSON. JSON never starts with a NUL byte, so the two cannot be confused.
pub fn stream_row(topic: &str, data: &str) -> Vec<u8> {
    if topic == crate::stream::STATUS_TOPIC {
        return data.as_bytes().to_vec();
    }
    let mut out = Vec::with_capacity(topic.len() + data.len() + 2);
    out.push(0);
    out.extend_from_slice(topic.as_bytes());
    out.push(0);
    out.extend_from_slice(data.as_bytes());
    out
}

/// A [`STREAM_STATUS`] row's (topic, JSON data).
pub fn stream_row_parts(row: &[u8]) -> crate::store::StoreResult<(&str, &str)> {
    let corrupt = |message: String| crate::store::StoreError::Corrupt {
        table: "stream_status",
        message,
    };
    let (topic, data) = match row.strip_prefix(&[0]) {
        None => (crate::stream::STATUS_TOPIC.as_bytes(), row),
        Some(rest) => {
            let end = rest
                .iter()
                .position(|b| *b == 0)
                .ok_or_else(|| corrupt("a tagged row without its topic's end".into()))?;
            (&rest[..end], &rest[end + 1..])
        }
    };
    let text = |b| std::str::from_utf8(b).map_err(|e| corrupt(e.to_string()));
    Ok((text(topic)?, text(data)?))
}
/// (tenant, plugin name, version) → JSON plugin record.
pub const PLUGINS: TableDefinition<(&str, &str, &str), &[u8]> = TableDefinition::new("plugins");
/// (tenant, module sha256) → the module's bytes.
pub const PLUGIN_MODULES: TableDefinition<(&str, &str), &[u8]> =
    TableDefinition::new("plugin_modules");
/// (table, key as text) → (found at, Unix ms; what was wrong): rows that could not be
/// decoded, moved out of the queue's way so that the operation that met one failed
/// alone and no later one meets it again. Listed by `gp store stats`.
pub const QUARANTINE: TableDefinition<(&str, &str), (i64, &str)> =
    TableDefinition::new("quarantine");
/// (tenant, counter name) → count: the stream cursor (incremented in the publishing
/// transaction), endpoints, subscriptions and deliveries per status.
pub const COUNTERS: TableDefinition<(&str, &str), u64> = TableDefinition::new("counters");

/// Counter holding a tenant's last assigned stream cursor.
pub const COUNTER_CURSOR: &str = "cursor";

/// Counter holding the highest stream cursor retention may have removed: a reader
/// resuming below it may have missed items, and is told so (a reset frame).
pub const COUNTER_PURGED_TO: &str = "purged_to";

pub const COUNTER_ENDPOINTS: &str = "endpoints";
pub const COUNTER_SUBSCRIPTIONS: &str = "subscriptions";

/// (chain, seq) → JSON audit record; the chain is the tenant id, `""` for the node's.
pub const AUDIT: TableDefinition<(&str, u64), &[u8]> = TableDefinition::new("audit");
/// audit record id → (chain, seq): the log in id (time) order.
pub const AUDIT_IDS: TableDefinition<&str, (&str, u64)> = TableDefinition::new("audit_ids");
/// chain → (last seq, its hash): where the next record links.
pub const AUDIT_HEADS: TableDefinition<&str, (u64, &str)> = TableDefinition::new("audit_heads");
