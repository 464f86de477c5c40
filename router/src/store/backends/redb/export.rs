//! Reads a stopped node's whole store, record by record, for `gp store copy` (moving a
//! single node onto PostgreSQL). Derived indexes (the due queue, leases, the DLQ
//! index, key hashes) are not exported: the importer rebuilds them from the records.

use std::path::Path;

use redb::{Database, ReadableDatabase, ReadableTable};

use crate::ids::TenantId;
use crate::store::copy::Exported;
use crate::store::{Event, StoreError, StoreResult};

use super::tables::*;
use super::{counter_get, decode};

/// Calls `each` with every record of the store at `path`, tenants first, in key
/// order. The store must not be open in another process.
pub fn export(path: &Path, mut each: impl FnMut(Exported) -> StoreResult<()>) -> StoreResult<()> {
    let db = Database::open(path).map_err(|e| match e {
        redb::DatabaseError::DatabaseAlreadyOpen => StoreError::Backend(format!(
            "{} is open in another process: stop `gp serve` first",
            path.display()
        )),
        other => StoreError::Backend(format!("opening {}: {other}", path.display())),
    })?;
    let txn = db.begin_read()?;
    let counters = txn.open_table(COUNTERS)?;
    for row in txn.open_table(TENANTS)?.iter()? {
        let (_, v) = row?;
        let tenant: crate::store::Tenant = decode("tenants", v.value())?;
        let t = tenant.id.as_str();
        let cursor = counter_get(&counters, t, COUNTER_CURSOR)?;
        let purged_to = counter_get(&counters, t, COUNTER_PURGED_TO)?;
        each(Exported::Tenant {
            tenant,
            cursor,
            purged_to,
        })?;
    }
    for row in txn.open_table(API_KEYS)?.iter()? {
        each(Exported::ApiKey(decode("api_keys", row?.1.value())?))?;
    }
    for row in txn.open_table(ENDPOINTS)?.iter()? {
        each(Exported::Endpoint(decode("endpoints", row?.1.value())?))?;
    }
    for row in txn.open_table(SUBSCRIPTIONS)?.iter()? {
        each(Exported::Subscription(decode(
            "subscriptions",
            row?.1.value(),
        )?))?;
    }
    for row in txn.open_table(EVENTS)?.iter()? {
        let (k, v) = row?;
        let mut event: Event = decode("events", v.value())?;
        event.cursor = k.value().1;
        each(Exported::Event(event))?;
    }
    for row in txn.open_table(IDEMPOTENCY)?.iter()? {
        let (k, v) = row?;
        let (tenant, key) = k.value();
        let (cursor, created_at, event_id) = v.value();
        each(Exported::Idempotency {
            tenant: TenantId::from_trusted(tenant.to_owned()),
            key: key.to_owned(),
            cursor,
            created_at,
            event_id: event_id.to_owned(),
        })?;
    }
    for row in txn.open_table(DELIVERIES)?.iter()? {
        each(Exported::Delivery(decode("deliveries", row?.1.value())?))?;
    }
    for row in txn.open_table(ATTEMPTS)?.iter()? {
        each(Exported::Attempt(decode("attempts", row?.1.value())?))?;
    }
    for row in txn.open_table(STREAM_STATUS)?.iter()? {
        let (k, v) = row?;
        let (tenant, cursor) = k.value();
        let (at, row) = v.value();
        let (topic, data) = stream_row_parts(row)?;
        each(Exported::Status {
            tenant: TenantId::from_trusted(tenant.to_owned()),
            cursor,
            at,
            topic: topic.to_owned(),
            data: data.to_owned(),
        })?;
    }
    // Tables that stores of older versions may not have yet.
    if let Ok(inbox) = txn.open_table(INBOX) {
        for row in inbox.iter()? {
            each(Exported::Inbox(decode("inbox", row?.1.value())?))?;
        }
    }
    if let Ok(replays) = txn.open_table(REPLAYS) {
        for row in replays.iter()? {
            each(Exported::Replay(decode("replays", row?.1.value())?))?;
        }
    }
    if let Ok(plugins) = txn.open_table(PLUGINS) {
        for row in plugins.iter()? {
            each(Exported::Plugin(decode("plugins", row?.1.value())?))?;
        }
    }
    if let Ok(audit) = txn.open_table(AUDIT) {
        for row in audit.iter()? {
            each(Exported::Audit(decode("audit", row?.1.value())?))?;
        }
    }
    if let Ok(modules) = txn.open_table(PLUGIN_MODULES) {
        for row in modules.iter()? {
            let (k, v) = row?;
            let (tenant, sha256) = k.value();
            each(Exported::Module {
                tenant: TenantId::from_trusted(tenant.to_owned()),
                sha256: sha256.to_owned(),
                module: v.value().to_vec(),
            })?;
        }
    }
    Ok(())
}
