//! The embedded redb backend: one file, one writer thread with group commit, MVCC
//! readers that never block the writer.
//!
//! Reads run inline on the caller's task (a read transaction over the page cache
//! takes microseconds); writes go through [`writer`]. Table layout: [`tables`].

pub mod snapshot;
mod tables;
mod writer;

use std::collections::HashMap;
use std::ops::Bound;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use redb::{
    Database, ReadTransaction, ReadableDatabase, ReadableTable, ReadableTableMetadata, Table,
    TableHandle, WriteTransaction,
};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::value::RawValue;

use self::tables::*;
use self::writer::{WriterHandle, WriterOptions};
use crate::ids::{DeliveryId, EndpointId, EventId, KeyId, SubscriptionId, TenantId};
use crate::store::{
    ApiKey, AppendLimits, AppendOutcome, Appended, Attempt, Claim, Claimed, Delivery,
    DeliveryQuery, DeliveryStatus, Endpoint, Event, EventQuery, InboxMessage, Mutation, NewEvent,
    NextState, Outcome, Page, PageRequest, PluginRecord, PurgePolicy, PurgeReport, QueueCounts,
    QueueSignal, RECORD_VERSION, Replay, ReplayDelivery, RequeueSelection, STORE_VERSION,
    SnapshotManifest, StorageStats, Store, StoreError, StoreMeta, StoreResult, StreamRead,
    Subscription, Tenant,
};
use crate::stream::hub::{HubConfig, StreamHub};
use crate::stream::{STATUS_TOPIC, StatusData, StreamItem};

/// How a listing with filters may scan before it returns a partial page (with a
/// `next` cursor so the client can continue): `limit * SCAN_FACTOR` rows.
const SCAN_FACTOR: usize = 20;

/// Tuning of the redb backend (`[redb]` in the configuration).
#[derive(Debug, Clone, Copy)]
pub struct RedbOptions {
    pub commit_max_batch: usize,
    pub commit_max_wait: Duration,
    pub cache_size_bytes: usize,
    /// Write a `deliveries.status` stream item with every attempt outcome.
    pub stream_status: bool,
    /// Live chunks held per tenant for stream clients.
    pub hub_capacity: usize,
    /// A busy tenant's live items go to stream clients at most once per this.
    pub stream_gather: Duration,
    /// Write groups per tenant, spread over `stream_gather`.
    pub stream_write_groups: usize,
}

impl Default for RedbOptions {
    fn default() -> Self {
        Self {
            commit_max_batch: 1024,
            commit_max_wait: Duration::ZERO,
            cache_size_bytes: 64 << 20,
            stream_status: true,
            hub_capacity: 256,
            stream_gather: Duration::from_millis(30),
            stream_write_groups: 8,
        }
    }
}

/// A migration from one store version to the next, run in one write transaction.
struct Migration {
    from: u32,
    run: fn(&WriteTransaction) -> StoreResult<()>,
}

/// Steps from older store versions; each takes `from` to `from + 1`.
const MIGRATIONS: &[Migration] = &[
    // 1 → 2: the `stream_status`, `plugins` and `plugin_modules` tables (created
    // with every other missing table).
    Migration {
        from: 1,
        run: |_| Ok(()),
    },
];

pub struct RedbStore {
    db: Arc<Database>,
    writer: WriterHandle,
    writer_thread: Mutex<Option<std::thread::JoinHandle<()>>>,
    meta: Mutex<StoreMeta>,
    read_only: Option<String>,
    signal: Arc<QueueSignal>,
    hub: Arc<StreamHub>,
    path: std::path::PathBuf,
}

impl std::fmt::Debug for RedbStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedbStore")
            .field("meta", &self.meta)
            .field("read_only", &self.read_only)
            .finish_non_exhaustive()
    }
}

macro_rules! backend_errors {
    ($($t:ty),*) => {$(
        impl From<$t> for StoreError {
            fn from(e: $t) -> Self {
                StoreError::Backend(e.to_string())
            }
        }
    )*};
}
backend_errors!(
    redb::DatabaseError,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError
);

fn encode<T: Serialize>(value: &T) -> StoreResult<Vec<u8>> {
    serde_json::to_vec(value).map_err(|e| StoreError::Backend(format!("encode: {e}")))
}

fn decode<T: DeserializeOwned>(table: &'static str, bytes: &[u8]) -> StoreResult<T> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt {
        table,
        message: e.to_string(),
    })
}

/// The smallest string greater than every string starting with `s`'s exact value as a
/// tuple's first element: `(s, anything) < (upper(s), "")`.
fn upper(s: &str) -> String {
    let mut u = String::with_capacity(s.len() + 1);
    u.push_str(s);
    u.push('\0');
    u
}

fn counter_add(
    table: &mut Table<(&str, &str), u64>,
    tenant: &str,
    name: &str,
    delta: i64,
) -> StoreResult<()> {
    let current = table.get((tenant, name))?.map(|g| g.value()).unwrap_or(0);
    let next = if delta >= 0 {
        current.saturating_add(delta.unsigned_abs())
    } else {
        current.saturating_sub(delta.unsigned_abs())
    };
    table.insert((tenant, name), next)?;
    Ok(())
}

fn counter_get(
    table: &impl ReadableTable<(&'static str, &'static str), u64>,
    tenant: &str,
    name: &str,
) -> StoreResult<u64> {
    Ok(table.get((tenant, name))?.map(|g| g.value()).unwrap_or(0))
}

/// Lists a `(tenant, id) → JSON` table in id order, keeping rows that pass `keep`,
/// scanning at most `limit * SCAN_FACTOR` rows.
fn list_scoped<T: DeserializeOwned>(
    txn: &ReadTransaction,
    def: redb::TableDefinition<(&str, &str), &[u8]>,
    table_name: &'static str,
    tenant: &str,
    page: &PageRequest,
    keep: impl Fn(&T) -> bool,
) -> StoreResult<Page<T>> {
    let table = match txn.open_table(def) {
        Ok(t) => t,
        Err(redb::TableError::TableDoesNotExist(_)) => {
            return Ok(Page {
                items: Vec::new(),
                next: None,
            });
        }
        Err(e) => return Err(e.into()),
    };
    let up = upper(tenant);
    let after = page.after.as_deref().unwrap_or("");
    let start = if page.after.is_some() {
        Bound::Excluded((tenant, after))
    } else {
        Bound::Included((tenant, ""))
    };
    let limit = page.limit.max(1);
    let scan_cap = limit.saturating_mul(SCAN_FACTOR);
    let mut items = Vec::with_capacity(limit.min(256));
    let mut scanned = 0usize;
    for row in table.range::<(&str, &str)>((start, Bound::Excluded((up.as_str(), ""))))? {
        let (k, v) = row?;
        scanned += 1;
        let record: T = decode(table_name, v.value())?;
        if keep(&record) {
            items.push(record);
        }
        if items.len() == limit || scanned == scan_cap {
            // There may be more; continue from here next time.
            return Ok(Page {
                items,
                next: Some(k.value().1.to_owned()),
            });
        }
    }
    Ok(Page { items, next: None })
}

fn get_json<T: DeserializeOwned>(
    txn: &ReadTransaction,
    def: redb::TableDefinition<(&str, &str), &[u8]>,
    table_name: &'static str,
    tenant: &str,
    id: &str,
) -> StoreResult<Option<T>> {
    let table = match txn.open_table(def) {
        Ok(t) => t,
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    match table.get((tenant, id))? {
        Some(v) => Ok(Some(decode(table_name, v.value())?)),
        None => Ok(None),
    }
}

/// The stored form of an event, borrowed from a [`NewEvent`] so nothing is copied
/// before encoding. Field names match [`Event`]; the cursor lives only in the key, so
/// the record can be encoded before the writer assigns it.
#[derive(Serialize)]
struct EventRef<'a> {
    record_version: u32,
    id: &'a EventId,
    tenant_id: &'a TenantId,
    topic: &'a str,
    payload: &'a RawValue,
    idempotency_key: Option<&'a str>,
    created_at: i64,
}

impl RedbStore {
    /// Opens (creating if absent) the store file at `path`, migrating an older store
    /// version; a newer or unmigratable one opens read-only with an instruction.
    pub fn open(path: &Path, options: RedbOptions) -> StoreResult<Self> {
        let db = Database::builder()
            .set_cache_size(options.cache_size_bytes)
            .create(path)
            .map_err(|e| match e {
                redb::DatabaseError::DatabaseAlreadyOpen => StoreError::Backend(format!(
                    "{} is already open in another process (is another `gp serve` running \
                     on this data dir?)",
                    path.display()
                )),
                other => StoreError::Backend(format!("opening {}: {other}", path.display())),
            })?;
        let (meta, read_only) = Self::prepare(&db)?;
        let db = Arc::new(db);
        let signal = Arc::new(QueueSignal::default());
        let hub = Arc::new(StreamHub::new(HubConfig {
            capacity: options.hub_capacity,
            gather: options.stream_gather,
            groups: options.stream_write_groups,
        }));
        let (writer, thread) = WriterHandle::spawn(
            db.clone(),
            signal.clone(),
            hub.clone(),
            WriterOptions {
                max_batch: options.commit_max_batch.max(1),
                max_wait: options.commit_max_wait,
                stream_status: options.stream_status,
            },
        )
        .map_err(|e| StoreError::Backend(format!("spawning writer thread: {e}")))?;
        if let Some(reason) = &read_only {
            tracing::warn!(reason = %reason, "store opened read-only");
        }
        Ok(Self {
            db,
            writer,
            writer_thread: Mutex::new(Some(thread)),
            meta: Mutex::new(meta),
            read_only,
            signal,
            hub,
            path: path.to_path_buf(),
        })
    }

    /// Reads `store_meta`, initialising a new store and running migrations.
    fn prepare(db: &Database) -> StoreResult<(StoreMeta, Option<String>)> {
        let txn = db.begin_write()?;
        let existing: Option<StoreMeta> = {
            let meta = txn.open_table(META)?;
            let value = meta.get("store_meta")?;
            match value {
                Some(v) => Some(decode("meta", v.value())?),
                None => None,
            }
        };
        let Some(mut meta) = existing else {
            let meta = StoreMeta {
                version: STORE_VERSION,
                created_at: crate::clock::now_ms(),
                last_compaction_at: None,
            };
            Self::create_tables(&txn)?;
            txn.open_table(META)?
                .insert("store_meta", encode(&meta)?.as_slice())?;
            txn.commit()?;
            return Ok((meta, None));
        };
        if meta.version == STORE_VERSION {
            txn.abort()?;
            return Ok((meta, None));
        }
        if meta.version > STORE_VERSION {
            txn.abort()?;
            let reason = format!(
                "this store was written by a newer GatePulse (store version {}, this build \
                 reads up to {STORE_VERSION}). Upgrade gp to the release that wrote it, or \
                 restore a backup taken with this version. Nothing will be written.",
                meta.version
            );
            return Ok((meta, Some(reason)));
        }
        let from = meta.version;
        while meta.version < STORE_VERSION {
            let Some(step) = MIGRATIONS.iter().find(|m| m.from == meta.version) else {
                txn.abort()?;
                let reason = format!(
                    "store version {} cannot be migrated to {STORE_VERSION} by this build \
                     (no migration path). Open it with the release that wrote it, take a \
                     snapshot, and restore into a new data dir. Nothing will be written.",
                    meta.version
                );
                return Ok((meta, Some(reason)));
            };
            (step.run)(&txn)?;
            meta.version += 1;
        }
        Self::create_tables(&txn)?;
        txn.open_table(META)?
            .insert("store_meta", encode(&meta)?.as_slice())?;
        txn.commit()?;
        tracing::info!(from, to = STORE_VERSION, "store migrated");
        Ok((meta, None))
    }

    /// Creates every table so readers never meet a missing one.
    fn create_tables(txn: &WriteTransaction) -> StoreResult<()> {
        txn.open_table(TENANTS)?;
        txn.open_table(API_KEYS)?;
        txn.open_table(API_KEY_HASHES)?;
        txn.open_table(ENDPOINTS)?;
        txn.open_table(SUBSCRIPTIONS)?;
        txn.open_table(EVENTS)?;
        txn.open_table(EVENT_IDS)?;
        txn.open_table(IDEMPOTENCY)?;
        txn.open_table(DELIVERIES)?;
        txn.open_table(DELIVERIES_DUE)?;
        txn.open_table(LEASES)?;
        txn.open_table(DEAD)?;
        txn.open_table(REPLAYS)?;
        txn.open_table(INBOX)?;
        txn.open_table(ATTEMPTS)?;
        txn.open_table(COUNTERS)?;
        txn.open_table(STREAM_STATUS)?;
        txn.open_table(PLUGINS)?;
        txn.open_table(PLUGIN_MODULES)?;
        Ok(())
    }

    async fn write<T, F>(&self, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&WriteTransaction) -> StoreResult<T> + Send + 'static,
    {
        if let Some(reason) = &self.read_only {
            return Err(StoreError::ReadOnly(reason.clone()));
        }
        self.writer.write(f).await
    }

    fn read(&self) -> StoreResult<ReadTransaction> {
        Ok(self.db.begin_read()?)
    }
}

impl Drop for RedbStore {
    fn drop(&mut self) {
        self.writer.stop();
    }
}

fn tenant_exists(txn: &WriteTransaction, tenant: &str) -> StoreResult<bool> {
    Ok(txn.open_table(TENANTS)?.get(tenant)?.is_some())
}

#[async_trait]
impl Store for RedbStore {
    fn meta(&self) -> StoreMeta {
        self.meta
            .lock()
            .map(|m| m.clone())
            .unwrap_or_else(|e| e.into_inner().clone())
    }

    fn read_only_reason(&self) -> Option<String> {
        self.read_only.clone()
    }

    fn stream_hub(&self) -> Arc<StreamHub> {
        self.hub.clone()
    }

    fn queue_signal(&self) -> Arc<QueueSignal> {
        self.signal.clone()
    }

    fn close(&self) {
        self.writer.stop();
        let handle = self.writer_thread.lock().ok().and_then(|mut h| h.take());
        if let Some(handle) = handle {
            let _ = handle.join();
        }
    }

    async fn create_tenant(&self, tenant: Tenant) -> StoreResult<()> {
        let bytes = encode(&tenant)?;
        self.write(move |txn| {
            let mut t = txn.open_table(TENANTS)?;
            if t.get(tenant.id.as_str())?.is_some() {
                return Err(StoreError::Backend(format!("tenant {} exists", tenant.id)));
            }
            t.insert(tenant.id.as_str(), bytes.as_slice())?;
            Ok(())
        })
        .await
    }

    async fn update_tenant(&self, id: &TenantId, change: Mutation<Tenant>) -> StoreResult<Tenant> {
        let id = id.clone();
        self.write(move |txn| {
            let mut table = txn.open_table(TENANTS)?;
            let mut tenant: Tenant = match table.get(id.as_str())? {
                Some(v) => decode("tenants", v.value())?,
                None => return Err(StoreError::NotFound("tenant")),
            };
            let (keep_id, keep_created) = (tenant.id.clone(), tenant.created_at);
            change(&mut tenant);
            tenant.id = keep_id;
            tenant.created_at = keep_created;
            tenant.record_version = RECORD_VERSION;
            table.insert(id.as_str(), encode(&tenant)?.as_slice())?;
            Ok(tenant)
        })
        .await
    }

    async fn get_tenant(&self, id: &TenantId) -> StoreResult<Option<Tenant>> {
        let txn = self.read()?;
        let t = txn.open_table(TENANTS)?;
        match t.get(id.as_str())? {
            Some(v) => Ok(Some(decode("tenants", v.value())?)),
            None => Ok(None),
        }
    }

    async fn list_tenants(&self, page: PageRequest) -> StoreResult<Page<Tenant>> {
        let txn = self.read()?;
        let t = txn.open_table(TENANTS)?;
        let limit = page.limit.max(1);
        let after = page.after.unwrap_or_default();
        let range = if after.is_empty() {
            t.range::<&str>(..)?
        } else {
            t.range::<&str>((Bound::Excluded(after.as_str()), Bound::Unbounded))?
        };
        let mut items = Vec::new();
        for row in range {
            let (_, v) = row?;
            let tenant: Tenant = decode("tenants", v.value())?;
            items.push(tenant);
            if items.len() == limit {
                let next = items.last().map(|t: &Tenant| t.id.to_string());
                return Ok(Page { items, next });
            }
        }
        Ok(Page { items, next: None })
    }

    async fn create_api_key(&self, key: ApiKey) -> StoreResult<()> {
        let bytes = encode(&key)?;
        self.write(move |txn| {
            if !tenant_exists(txn, key.tenant_id.as_str())? {
                return Err(StoreError::MissingReference("tenant"));
            }
            txn.open_table(API_KEYS)?
                .insert((key.tenant_id.as_str(), key.id.as_str()), bytes.as_slice())?;
            txn.open_table(API_KEY_HASHES)?
                .insert(key.hash.as_str(), (key.tenant_id.as_str(), key.id.as_str()))?;
            Ok(())
        })
        .await
    }

    async fn list_api_keys(
        &self,
        tenant: &TenantId,
        page: PageRequest,
    ) -> StoreResult<Page<ApiKey>> {
        let txn = self.read()?;
        list_scoped(&txn, API_KEYS, "api_keys", tenant.as_str(), &page, |_| true)
    }

    async fn revoke_api_key(
        &self,
        tenant: &TenantId,
        id: &KeyId,
        at: i64,
    ) -> StoreResult<Option<ApiKey>> {
        let (tenant, id) = (tenant.clone(), id.clone());
        self.write(move |txn| {
            let mut keys = txn.open_table(API_KEYS)?;
            let mut key: ApiKey = match keys.get((tenant.as_str(), id.as_str()))? {
                Some(v) => decode("api_keys", v.value())?,
                None => return Ok(None),
            };
            if key.revoked_at.is_some() {
                return Ok(Some(key));
            }
            key.revoked_at = Some(at);
            keys.insert((tenant.as_str(), id.as_str()), encode(&key)?.as_slice())?;
            txn.open_table(API_KEY_HASHES)?.remove(key.hash.as_str())?;
            Ok(Some(key))
        })
        .await
    }

    async fn find_api_key(&self, hash: &str) -> StoreResult<Option<ApiKey>> {
        let txn = self.read()?;
        let hashes = txn.open_table(API_KEY_HASHES)?;
        let Some(found) = hashes.get(hash)? else {
            return Ok(None);
        };
        let (tenant, id) = found.value();
        let key: Option<ApiKey> = get_json(&txn, API_KEYS, "api_keys", tenant, id)?;
        Ok(key.filter(|k| k.revoked_at.is_none()))
    }

    async fn create_endpoint(&self, endpoint: Endpoint, max_per_tenant: usize) -> StoreResult<()> {
        let bytes = encode(&endpoint)?;
        self.write(move |txn| {
            let tenant = endpoint.tenant_id.as_str();
            if !tenant_exists(txn, tenant)? {
                return Err(StoreError::MissingReference("tenant"));
            }
            let mut counters = txn.open_table(COUNTERS)?;
            if counter_get(&counters, tenant, COUNTER_ENDPOINTS)? >= max_per_tenant as u64 {
                return Err(StoreError::LimitReached {
                    what: "endpoints",
                    limit: max_per_tenant,
                });
            }
            txn.open_table(ENDPOINTS)?
                .insert((tenant, endpoint.id.as_str()), bytes.as_slice())?;
            counter_add(&mut counters, tenant, COUNTER_ENDPOINTS, 1)?;
            Ok(())
        })
        .await
    }

    async fn get_endpoint(
        &self,
        tenant: &TenantId,
        id: &EndpointId,
    ) -> StoreResult<Option<Endpoint>> {
        let txn = self.read()?;
        get_json(&txn, ENDPOINTS, "endpoints", tenant.as_str(), id.as_str())
    }

    async fn list_endpoints(
        &self,
        tenant: &TenantId,
        page: PageRequest,
    ) -> StoreResult<Page<Endpoint>> {
        let txn = self.read()?;
        list_scoped(&txn, ENDPOINTS, "endpoints", tenant.as_str(), &page, |_| {
            true
        })
    }

    async fn update_endpoint(
        &self,
        tenant: &TenantId,
        id: &EndpointId,
        change: Mutation<Endpoint>,
    ) -> StoreResult<Endpoint> {
        let (tenant, id) = (tenant.clone(), id.clone());
        self.write(move |txn| {
            let mut table = txn.open_table(ENDPOINTS)?;
            let mut endpoint: Endpoint = match table.get((tenant.as_str(), id.as_str()))? {
                Some(v) => decode("endpoints", v.value())?,
                None => return Err(StoreError::NotFound("endpoint")),
            };
            let (keep_id, keep_tenant, keep_created) = (
                endpoint.id.clone(),
                endpoint.tenant_id.clone(),
                endpoint.created_at,
            );
            change(&mut endpoint);
            endpoint.id = keep_id;
            endpoint.tenant_id = keep_tenant;
            endpoint.created_at = keep_created;
            endpoint.record_version = RECORD_VERSION;
            table.insert(
                (tenant.as_str(), id.as_str()),
                encode(&endpoint)?.as_slice(),
            )?;
            Ok(endpoint)
        })
        .await
    }

    async fn delete_endpoint(
        &self,
        tenant: &TenantId,
        id: &EndpointId,
    ) -> StoreResult<Vec<SubscriptionId>> {
        let (tenant, id) = (tenant.clone(), id.clone());
        self.write(move |txn| {
            let t = tenant.as_str();
            let mut endpoints = txn.open_table(ENDPOINTS)?;
            if endpoints.get((t, id.as_str()))?.is_none() {
                return Err(StoreError::NotFound("endpoint"));
            }
            let mut subs = txn.open_table(SUBSCRIPTIONS)?;
            let up = upper(t);
            let mut doomed = Vec::new();
            for row in subs.range::<(&str, &str)>((t, "")..(up.as_str(), ""))? {
                let (_, v) = row?;
                let sub: Subscription = decode("subscriptions", v.value())?;
                if sub.endpoint_id == id {
                    doomed.push(sub.id);
                }
            }
            endpoints.remove((t, id.as_str()))?;
            for sub in &doomed {
                subs.remove((t, sub.as_str()))?;
            }
            let mut counters = txn.open_table(COUNTERS)?;
            counter_add(&mut counters, t, COUNTER_ENDPOINTS, -1)?;
            counter_add(
                &mut counters,
                t,
                COUNTER_SUBSCRIPTIONS,
                -(doomed.len() as i64),
            )?;
            Ok(doomed)
        })
        .await
    }

    async fn create_subscription(
        &self,
        subscription: Subscription,
        max_per_tenant: usize,
    ) -> StoreResult<()> {
        let bytes = encode(&subscription)?;
        self.write(move |txn| {
            let t = subscription.tenant_id.as_str();
            if txn
                .open_table(ENDPOINTS)?
                .get((t, subscription.endpoint_id.as_str()))?
                .is_none()
            {
                return Err(StoreError::MissingReference("endpoint"));
            }
            let mut counters = txn.open_table(COUNTERS)?;
            if counter_get(&counters, t, COUNTER_SUBSCRIPTIONS)? >= max_per_tenant as u64 {
                return Err(StoreError::LimitReached {
                    what: "subscriptions",
                    limit: max_per_tenant,
                });
            }
            txn.open_table(SUBSCRIPTIONS)?
                .insert((t, subscription.id.as_str()), bytes.as_slice())?;
            counter_add(&mut counters, t, COUNTER_SUBSCRIPTIONS, 1)?;
            Ok(())
        })
        .await
    }

    async fn get_subscription(
        &self,
        tenant: &TenantId,
        id: &SubscriptionId,
    ) -> StoreResult<Option<Subscription>> {
        let txn = self.read()?;
        get_json(
            &txn,
            SUBSCRIPTIONS,
            "subscriptions",
            tenant.as_str(),
            id.as_str(),
        )
    }

    async fn list_subscriptions(
        &self,
        tenant: &TenantId,
        endpoint: Option<&EndpointId>,
        page: PageRequest,
    ) -> StoreResult<Page<Subscription>> {
        let txn = self.read()?;
        list_scoped(
            &txn,
            SUBSCRIPTIONS,
            "subscriptions",
            tenant.as_str(),
            &page,
            |s: &Subscription| endpoint.is_none_or(|e| &s.endpoint_id == e),
        )
    }

    async fn all_subscriptions(&self, tenant: &TenantId) -> StoreResult<Vec<Subscription>> {
        let txn = self.read()?;
        let table = txn.open_table(SUBSCRIPTIONS)?;
        let t = tenant.as_str();
        let up = upper(t);
        let mut out = Vec::new();
        for row in table.range::<(&str, &str)>((t, "")..(up.as_str(), ""))? {
            let (_, v) = row?;
            out.push(decode("subscriptions", v.value())?);
        }
        Ok(out)
    }

    async fn update_subscription(
        &self,
        tenant: &TenantId,
        id: &SubscriptionId,
        change: Mutation<Subscription>,
    ) -> StoreResult<Subscription> {
        let (tenant, id) = (tenant.clone(), id.clone());
        self.write(move |txn| {
            let t = tenant.as_str();
            let mut table = txn.open_table(SUBSCRIPTIONS)?;
            let mut sub: Subscription = match table.get((t, id.as_str()))? {
                Some(v) => decode("subscriptions", v.value())?,
                None => return Err(StoreError::NotFound("subscription")),
            };
            let (keep_id, keep_tenant, keep_created) =
                (sub.id.clone(), sub.tenant_id.clone(), sub.created_at);
            change(&mut sub);
            sub.id = keep_id;
            sub.tenant_id = keep_tenant;
            sub.created_at = keep_created;
            sub.record_version = RECORD_VERSION;
            if txn
                .open_table(ENDPOINTS)?
                .get((t, sub.endpoint_id.as_str()))?
                .is_none()
            {
                return Err(StoreError::MissingReference("endpoint"));
            }
            table.insert((t, id.as_str()), encode(&sub)?.as_slice())?;
            Ok(sub)
        })
        .await
    }

    async fn delete_subscription(&self, tenant: &TenantId, id: &SubscriptionId) -> StoreResult<()> {
        let (tenant, id) = (tenant.clone(), id.clone());
        self.write(move |txn| {
            let t = tenant.as_str();
            if txn
                .open_table(SUBSCRIPTIONS)?
                .remove((t, id.as_str()))?
                .is_none()
            {
                return Err(StoreError::NotFound("subscription"));
            }
            counter_add(&mut txn.open_table(COUNTERS)?, t, COUNTER_SUBSCRIPTIONS, -1)?;
            Ok(())
        })
        .await
    }

    async fn append_events(
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
            .hot(|reply| writer::HotOp::Append {
                events: prepared,
                limits,
                reply,
            })
            .await
    }

    async fn get_event(&self, tenant: &TenantId, id: &EventId) -> StoreResult<Option<Event>> {
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

    async fn list_events(&self, tenant: &TenantId, query: EventQuery) -> StoreResult<Page<Event>> {
        let txn = self.read()?;
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
        for row in table
            .range::<(&str, u64)>((Bound::Excluded((t, after)), Bound::Included((t, u64::MAX))))?
        {
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
    }

    async fn head_cursor(&self, tenant: &TenantId) -> StoreResult<u64> {
        let txn = self.read()?;
        counter_get(&txn.open_table(COUNTERS)?, tenant.as_str(), COUNTER_CURSOR)
    }

    async fn read_stream(
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
        let oldest = first(
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
                let (at, data) = v.value();
                if at < min_created_at {
                    out.too_old += 1;
                } else if wants(STATUS_TOPIC) {
                    let data = std::str::from_utf8(data).map_err(|e| StoreError::Corrupt {
                        table: "stream_status",
                        message: e.to_string(),
                    })?;
                    out.items
                        .push(Arc::new(StreamItem::new(cursor, STATUS_TOPIC, at, data)));
                }
            }
        }
        Ok(out)
    }

    async fn get_delivery(
        &self,
        tenant: &TenantId,
        id: &DeliveryId,
    ) -> StoreResult<Option<Delivery>> {
        let txn = self.read()?;
        get_json(&txn, DELIVERIES, "deliveries", tenant.as_str(), id.as_str())
    }

    async fn list_deliveries(
        &self,
        tenant: &TenantId,
        query: DeliveryQuery,
    ) -> StoreResult<Page<Delivery>> {
        let txn = self.read()?;
        let keep = |d: &Delivery| {
            query
                .endpoint_id
                .as_ref()
                .is_none_or(|e| &d.endpoint_id == e)
                && query.status.is_none_or(|s| d.status == s)
        };
        let Some(event) = &query.event_id else {
            return list_scoped(
                &txn,
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
        let after = query.page.after.as_deref().unwrap_or("");
        let start = if query.page.after.is_some() {
            Bound::Excluded((t, after))
        } else {
            Bound::Included((t, prefix.as_str()))
        };
        let limit = query.page.limit.max(1);
        let mut items = Vec::new();
        for row in deliveries.range::<(&str, &str)>((start, Bound::Excluded((t, end.as_str()))))? {
            let (k, v) = row?;
            let d: Delivery = decode("deliveries", v.value())?;
            if keep(&d) {
                items.push(d);
            }
            if items.len() == limit {
                let next = Some(k.value().1.to_owned());
                return Ok(Page { items, next });
            }
        }
        Ok(Page { items, next: None })
    }

    async fn list_attempts(&self, tenant: &TenantId, id: &DeliveryId) -> StoreResult<Vec<Attempt>> {
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

    async fn queued_endpoints(&self) -> StoreResult<Vec<(TenantId, EndpointId)>> {
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

    async fn next_due(&self, endpoint: &EndpointId) -> StoreResult<Option<i64>> {
        let txn = self.read()?;
        let due = txn.open_table(DELIVERIES_DUE)?;
        let e = endpoint.as_str();
        let mut range = due.range::<(&str, u64, &str)>((e, 0, "")..=(e, u64::MAX, "\u{7f}"))?;
        match range.next() {
            Some(row) => Ok(Some(i64::try_from(row?.0.value().1).unwrap_or(i64::MAX))),
            None => Ok(None),
        }
    }

    async fn claim_due(&self, claim: Claim) -> StoreResult<Vec<Claimed>> {
        if let Some(reason) = &self.read_only {
            return Err(StoreError::ReadOnly(reason.clone()));
        }
        let tenant = claim.tenant.clone();
        let deliveries = self
            .writer
            .hot(|reply| writer::HotOp::Claim { claim, reply })
            .await?;
        // Events are immutable: read them outside the writer, in parallel with it.
        let txn = self.read()?;
        let event_ids = txn.open_table(EVENT_IDS)?;
        let events = txn.open_table(EVENTS)?;
        let t = tenant.as_str();
        let mut out = Vec::with_capacity(deliveries.len());
        let mut last: Option<Arc<Event>> = None;
        for delivery in deliveries {
            let event = match last.take() {
                Some(e) if e.id == delivery.event_id => e,
                _ => {
                    let Some(cursor) = event_ids
                        .get((t, delivery.event_id.as_str()))?
                        .map(|g| g.value())
                    else {
                        continue; // removed by retention: nothing left to deliver
                    };
                    let Some(raw) = events.get((t, cursor))? else {
                        continue;
                    };
                    let mut e: Event = decode("events", raw.value())?;
                    e.cursor = cursor;
                    Arc::new(e)
                }
            };
            last = Some(Arc::clone(&event));
            out.push(Claimed { delivery, event });
        }
        Ok(out)
    }

    async fn record_outcome(&self, outcome: Outcome) -> StoreResult<bool> {
        if let Some(reason) = &self.read_only {
            return Err(StoreError::ReadOnly(reason.clone()));
        }
        self.writer
            .hot(|reply| writer::HotOp::Outcome { outcome, reply })
            .await
    }

    async fn reclaim_leases(&self, now: Option<i64>) -> StoreResult<usize> {
        let woken = self.write(move |txn| reclaim_leases(txn, now)).await?;
        let n = woken.len();
        self.signal.announce(woken);
        Ok(n)
    }

    async fn list_dead(
        &self,
        tenant: &TenantId,
        endpoint: Option<&EndpointId>,
        page: PageRequest,
    ) -> StoreResult<Page<Delivery>> {
        let txn = self.read()?;
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
    }

    async fn requeue_dead(
        &self,
        tenant: &TenantId,
        selection: RequeueSelection,
        now: i64,
        limit: usize,
    ) -> StoreResult<Vec<(TenantId, EndpointId)>> {
        let tenant = tenant.clone();
        let woken = self
            .write(move |txn| requeue_dead(txn, &tenant, &selection, now, limit))
            .await?;
        self.signal.announce(woken.iter().cloned());
        Ok(woken)
    }

    async fn create_replay(
        &self,
        replay: Replay,
        deliveries: Vec<ReplayDelivery>,
    ) -> StoreResult<()> {
        let woken: Vec<(TenantId, EndpointId)> = deliveries
            .iter()
            .map(|d| (replay.tenant_id.clone(), d.endpoint_id.clone()))
            .collect();
        self.write(move |txn| create_replay(txn, &replay, &deliveries))
            .await?;
        self.signal.announce(woken);
        Ok(())
    }

    async fn purge(&self, policy: PurgePolicy) -> StoreResult<PurgeReport> {
        self.write(move |txn| purge(txn, &policy)).await
    }

    async fn mark_compacted(&self, at: i64) -> StoreResult<()> {
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

    fn snapshot_to(&self, dir: &Path) -> StoreResult<SnapshotManifest> {
        snapshot::write(&self.db, dir, self.meta().version)
    }

    async fn capture_inbox(&self, message: InboxMessage) -> StoreResult<()> {
        let bytes = encode(&message)?;
        self.write(move |txn| {
            txn.open_table(INBOX)?.insert(
                (
                    message.tenant_id.as_str(),
                    message.endpoint_id.as_str(),
                    message.id.as_str(),
                ),
                bytes.as_slice(),
            )?;
            Ok(())
        })
        .await
    }

    async fn list_inbox(
        &self,
        tenant: &TenantId,
        endpoint: &EndpointId,
        page: PageRequest,
    ) -> StoreResult<Page<InboxMessage>> {
        let txn = self.read()?;
        // Stores written before inboxes existed have no table yet.
        let inbox = match txn.open_table(INBOX) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => {
                return Ok(Page {
                    items: Vec::new(),
                    next: None,
                });
            }
            Err(e) => return Err(e.into()),
        };
        let (t, e) = (tenant.as_str(), endpoint.as_str());
        let up = upper(e);
        let start = match page.after.as_deref() {
            Some(a) => Bound::Excluded((t, e, a)),
            None => Bound::Included((t, e, "")),
        };
        let limit = page.limit.max(1);
        let mut items = Vec::new();
        for row in
            inbox.range::<(&str, &str, &str)>((start, Bound::Excluded((t, up.as_str(), ""))))?
        {
            let (k, v) = row?;
            items.push(decode("inbox", v.value())?);
            if items.len() == limit {
                return Ok(Page {
                    items,
                    next: Some(k.value().2.to_owned()),
                });
            }
        }
        Ok(Page { items, next: None })
    }

    async fn create_plugin(&self, plugin: PluginRecord, module: Vec<u8>) -> StoreResult<()> {
        let record = encode(&plugin)?;
        self.write(move |txn| {
            let t = plugin.tenant_id.as_str();
            if !tenant_exists(txn, t)? {
                return Err(StoreError::MissingReference("tenant"));
            }
            let mut plugins = txn.open_table(PLUGINS)?;
            let key = (t, plugin.name.as_str(), plugin.version.as_str());
            if plugins.get(key)?.is_some() {
                return Err(StoreError::AlreadyExists("plugin version"));
            }
            plugins.insert(key, record.as_slice())?;
            txn.open_table(PLUGIN_MODULES)?
                .insert((t, plugin.sha256.as_str()), module.as_slice())?;
            Ok(())
        })
        .await
    }

    async fn list_plugins(&self, tenant: &TenantId) -> StoreResult<Vec<PluginRecord>> {
        let txn = self.read()?;
        let t = tenant.as_str();
        let up = upper(t);
        let mut out = Vec::new();
        for row in txn
            .open_table(PLUGINS)?
            .range::<(&str, &str, &str)>((t, "", "")..(up.as_str(), "", ""))?
        {
            out.push(decode("plugins", row?.1.value())?);
        }
        Ok(out)
    }

    async fn get_plugin(
        &self,
        tenant: &TenantId,
        name: &str,
        version: &str,
    ) -> StoreResult<Option<PluginRecord>> {
        let txn = self.read()?;
        match txn
            .open_table(PLUGINS)?
            .get((tenant.as_str(), name, version))?
        {
            Some(v) => Ok(Some(decode("plugins", v.value())?)),
            None => Ok(None),
        }
    }

    async fn get_plugin_module(
        &self,
        tenant: &TenantId,
        name: &str,
        version: &str,
    ) -> StoreResult<Option<Vec<u8>>> {
        let txn = self.read()?;
        let Some(v) = txn
            .open_table(PLUGINS)?
            .get((tenant.as_str(), name, version))?
        else {
            return Ok(None);
        };
        let record: PluginRecord = decode("plugins", v.value())?;
        Ok(txn
            .open_table(PLUGIN_MODULES)?
            .get((tenant.as_str(), record.sha256.as_str()))?
            .map(|m| m.value().to_vec()))
    }

    async fn delete_plugin(&self, tenant: &TenantId, name: &str, version: &str) -> StoreResult<()> {
        let (t, name, version) = (tenant.to_string(), name.to_owned(), version.to_owned());
        self.write(move |txn| {
            let mut plugins = txn.open_table(PLUGINS)?;
            let record: PluginRecord =
                match plugins.remove((t.as_str(), name.as_str(), version.as_str()))? {
                    Some(v) => decode("plugins", v.value())?,
                    None => return Err(StoreError::NotFound("plugin version")),
                };
            let up = upper(&t);
            let mut shared = false;
            for row in
                plugins.range::<(&str, &str, &str)>((t.as_str(), "", "")..(up.as_str(), "", ""))?
            {
                let other: PluginRecord = decode("plugins", row?.1.value())?;
                shared |= other.sha256 == record.sha256;
            }
            if !shared {
                txn.open_table(PLUGIN_MODULES)?
                    .remove((t.as_str(), record.sha256.as_str()))?;
            }
            Ok(())
        })
        .await
    }

    async fn storage_stats(&self) -> StoreResult<StorageStats> {
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

    async fn queue_counts(&self, tenant: Option<&TenantId>) -> StoreResult<QueueCounts> {
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

/// An event encoded for storage before it reaches the writer.
pub(super) struct PreparedEvent {
    tenant: String,
    id: EventId,
    idempotency_key: Option<String>,
    created_at: i64,
    record: Vec<u8>,
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

/// The cursor of the next row of a `(tenant, cursor)` range.
fn peek_cursor<V: redb::Value + 'static>(
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

fn ms(t: i64) -> u64 {
    u64::try_from(t).unwrap_or(0)
}

/// Loads a delivery for a state change inside a write transaction.
fn load_delivery(
    deliveries: &Table<(&str, &str), &[u8]>,
    tenant: &str,
    id: &str,
) -> StoreResult<Option<Delivery>> {
    match deliveries.get((tenant, id))? {
        Some(v) => Ok(Some(decode("deliveries", v.value())?)),
        None => Ok(None),
    }
}

/// Moves per-status counters for a transition.
fn count_transition(
    counters: &mut Table<(&str, &str), u64>,
    tenant: &str,
    from: DeliveryStatus,
    to: DeliveryStatus,
) -> StoreResult<()> {
    if from != to {
        counter_add(counters, tenant, from.as_str(), -1)?;
        counter_add(counters, tenant, to.as_str(), 1)?;
    }
    Ok(())
}

fn reclaim_leases(
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
        let Some(mut d) = load_delivery(&deliveries, &tenant, &id)? else {
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

fn requeue_dead(
    txn: &WriteTransaction,
    tenant: &TenantId,
    selection: &RequeueSelection,
    now: i64,
    limit: usize,
) -> StoreResult<Vec<(TenantId, EndpointId)>> {
    let t = tenant.as_str();
    let mut dead = txn.open_table(DEAD)?;
    let mut deliveries = txn.open_table(DELIVERIES)?;
    let mut due = txn.open_table(DELIVERIES_DUE)?;
    let mut counters = txn.open_table(COUNTERS)?;
    let ids: Vec<String> = match selection {
        RequeueSelection::Ids(ids) => ids.iter().map(|i| i.to_string()).collect(),
        RequeueSelection::Endpoint(e) => {
            let up = upper(t);
            let mut ids = Vec::new();
            for row in dead.range::<(&str, &str)>((t, "")..(up.as_str(), ""))? {
                let (k, v) = row?;
                if v.value() == e.as_str() {
                    ids.push(k.value().1.to_owned());
                    if ids.len() >= limit {
                        break;
                    }
                }
            }
            ids
        }
    };
    let mut woken = Vec::new();
    for id in ids.iter().take(limit) {
        if dead.remove((t, id.as_str()))?.is_none() {
            continue;
        }
        let Some(mut d) = load_delivery(&deliveries, t, id)? else {
            continue;
        };
        count_transition(&mut counters, t, d.status, DeliveryStatus::Pending)?;
        d.status = DeliveryStatus::Pending;
        d.attempts = 0;
        d.next_attempt_at = now;
        d.updated_at = now;
        // A requeue is a new start: the transform runs again (it may have been fixed).
        d.body = None;
        deliveries.insert((t, id.as_str()), encode(&d)?.as_slice())?;
        due.insert((d.endpoint_id.as_str(), ms(now), id.as_str()), t)?;
        woken.push((tenant.clone(), d.endpoint_id));
    }
    Ok(woken)
}

fn create_replay(
    txn: &WriteTransaction,
    replay: &Replay,
    new: &[ReplayDelivery],
) -> StoreResult<()> {
    let t = replay.tenant_id.as_str();
    let mut deliveries = txn.open_table(DELIVERIES)?;
    let mut due = txn.open_table(DELIVERIES_DUE)?;
    let mut counters = txn.open_table(COUNTERS)?;
    // Next free sequence number per event: one past the last existing delivery id.
    let mut next_seq: HashMap<&str, u32> = HashMap::new();
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
                        decode_seq(k.value().1).map_or(0, |s| s + 1)
                    }
                    None => 0,
                }
            }
        };
        next_seq.insert(nd.event_id.as_str(), seq + 1);
        let id = DeliveryId::for_event(&nd.event_id, seq);
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
    txn.open_table(REPLAYS)?
        .insert((t, replay.id.as_str()), encode(replay)?.as_slice())?;
    Ok(())
}

/// The sequence number at the end of a delivery id (see [`DeliveryId::for_event`]).
fn decode_seq(id: &str) -> Option<u32> {
    const CROCKFORD: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
    let tail = id.get(id.len().checked_sub(4)?..)?;
    tail.bytes().try_fold(0u32, |acc, b| {
        CROCKFORD
            .iter()
            .position(|c| *c == b)
            .map(|v| (acc << 5) | v as u32)
    })
}

/// The hot-path tables, opened once per commit for every publish, claim and outcome
/// in it. Counter changes are summed and written once at the end.
struct Hot<'t> {
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

/// A `deliveries.status` item written by this commit.
pub(super) struct StatusRow {
    tenant: Box<str>,
    cursor: u64,
    at: i64,
    data: String,
}

/// The stream items of one successful commit, for tenants that have listeners:
/// new events (in the order of `ops`) and status rows.
fn live_items(
    hub: &StreamHub,
    ops: &[writer::HotOp],
    results: &[StoreResult<writer::HotResult>],
    statuses: Vec<StatusRow>,
) -> Vec<(Box<str>, Arc<StreamItem>)> {
    let mut out = Vec::new();
    for (op, result) in ops.iter().zip(results) {
        let (writer::HotOp::Append { events, .. }, Ok(writer::HotResult::Append(appended))) =
            (op, result)
        else {
            continue;
        };
        for (ev, appended) in events.iter().zip(appended) {
            let Appended::Stored(AppendOutcome {
                cursor,
                deduped: false,
                ..
            }) = appended
            else {
                continue;
            };
            if !hub.wants(&ev.tenant) {
                continue;
            }
            match serde_json::from_slice::<Event>(&ev.record) {
                Ok(mut event) => {
                    event.cursor = *cursor;
                    out.push((
                        ev.tenant.as_str().into(),
                        Arc::new(StreamItem::from_event(&event)),
                    ));
                }
                Err(e) => tracing::error!(error = %e, "stream: cannot decode a new event"),
            }
        }
    }
    for row in statuses {
        if hub.wants(&row.tenant) {
            let item = StreamItem::new(row.cursor, STATUS_TOPIC, row.at, &row.data);
            out.push((row.tenant, Arc::new(item)));
        }
    }
    out
}

/// Runs every hot operation of one commit. `Err` is a storage failure (the batch
/// aborts); domain outcomes are per operation.
#[allow(clippy::type_complexity)]
fn run_hot(
    txn: &WriteTransaction,
    ops: &[writer::HotOp],
    stream_status: bool,
) -> StoreResult<(Vec<StoreResult<writer::HotResult>>, Vec<StatusRow>)> {
    use writer::{HotOp, HotResult};
    let mut h = Hot {
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
        results.push(Ok(match op {
            HotOp::Append { events, limits, .. } => HotResult::Append(h.append(events, limits)?),
            HotOp::Claim { claim, .. } => HotResult::Claim(h.claim(claim)?),
            HotOp::Outcome { outcome, .. } => HotResult::Outcome(h.outcome(outcome)?),
        }));
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
            let Some(mut d) = load_delivery(&self.deliveries, &tenant, &id)? else {
                continue;
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
            NextState::Succeeded => {}
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

/// One bounded retention pass (see `Store::purge`).
fn purge(txn: &WriteTransaction, policy: &PurgePolicy) -> StoreResult<PurgeReport> {
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
                d.status == DeliveryStatus::Succeeded
                    || (d.status == DeliveryStatus::Dead && d.updated_at < dead_before)
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
fn drop_delivery(
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

/// Compacts a store file that no process has open.
pub fn compact_file(path: &Path) -> StoreResult<(u64, u64)> {
    let size = |p: &Path| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
    let before = size(path);
    let mut db = Database::open(path).map_err(|e| match e {
        redb::DatabaseError::DatabaseAlreadyOpen => StoreError::Backend(format!(
            "{} is open in another process: stop `gp serve` first",
            path.display()
        )),
        other => StoreError::Backend(format!("opening {}: {other}", path.display())),
    })?;
    // Each call moves what it can; repeat until nothing more moves.
    for _ in 0..16 {
        match db.compact() {
            Ok(true) => {}
            Ok(false) => break,
            Err(e) => return Err(StoreError::Backend(format!("compacting: {e}"))),
        }
    }
    drop(db);
    Ok((before, size(path)))
}
