//! The embedded redb backend: one file, one writer thread with group commit, MVCC
//! readers that never block the writer.
//!
//! Reads run inline on the caller's task (a read transaction over the page cache
//! takes microseconds); writes go through [`writer`]. Table layout: [`tables`].
//!
//! One file per job: [`open`] (opening, migrations, compaction), [`records`]
//! (tenants, keys, endpoints, subscriptions, plugins, inbox), [`reads`] (events, the
//! stream, deliveries, counters), [`queue`] (the hot path: publishes, claims,
//! outcomes, reclaiming, requeues, replays), [`retention`] (purges), [`feed`] (what a
//! commit hands the live stream) and [`snapshot`]. The `Store` impl below only routes
//! each trait method to the inherent method of the same name in those files.

mod audit;
mod cluster;
pub mod export;
mod feed;
mod open;
mod queue;
mod reads;
mod records;
mod retention;
pub mod snapshot;
mod tables;
mod writer;

pub use self::open::{Inspected, compact_file, inspect};

use std::ops::Bound;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use redb::{Database, ReadTransaction, ReadableDatabase, ReadableTable, Table, WriteTransaction};
use serde::Serialize;
use serde::de::DeserializeOwned;

use self::tables::*;
use self::writer::WriterHandle;
use crate::ids::{DeliveryId, EndpointId, EventId, KeyId, SubscriptionId, TenantId};
use crate::store::feed::CommitFeed;
use crate::store::{
    ApiKey, AppendLimits, Appended, Attempt, AuditQuery, Claim, Claimed, Delivery, DeliveryQuery,
    DeliveryStatus, Endpoint, Event, EventQuery, InboxMessage, Mutation, NewEvent, Outcome, Page,
    PageRequest, PluginQuota, PluginRecord, PurgeCursor, PurgePolicy, PurgeReport, QueueCounts,
    Replay, ReplayDelivery, RequeueBatch, Requeued, SnapshotManifest, StorageStats, Store,
    StoreError, StoreMeta, StoreResult, StreamRead, Subscription, Tenant,
};

/// How a listing with filters may scan before it returns a partial page (with a
/// `next` cursor so the client can continue): `limit * SCAN_FACTOR` rows.
const SCAN_FACTOR: usize = 20;

/// Tuning of the redb backend (`[redb]` in the configuration).
#[derive(Debug, Clone, Copy)]
pub struct RedbOptions {
    pub commit_max_batch: usize,
    /// Writes waiting for the writer thread at most (callers wait for room).
    pub max_queued_writes: usize,
    pub commit_max_wait: Duration,
    pub cache_size_bytes: usize,
    /// Write a `deliveries.status` stream item with every attempt outcome.
    pub stream_status: bool,
}

impl Default for RedbOptions {
    fn default() -> Self {
        Self {
            commit_max_batch: 1024,
            max_queued_writes: 65_536,
            commit_max_wait: Duration::ZERO,
            cache_size_bytes: 64 << 20,
            stream_status: true,
        }
    }
}

pub struct RedbStore {
    /// `None` once closed: the last handle dropped closes the file cleanly, so the next
    /// open need not repair it (`close`).
    db: arc_swap::ArcSwapOption<Database>,
    writer: WriterHandle,
    writer_thread: Mutex<Option<std::thread::JoinHandle<()>>>,
    meta: Mutex<StoreMeta>,
    read_only: Option<String>,
    /// Where commits are announced (stream items, queued work, config changes).
    feed: Arc<CommitFeed>,
    path: std::path::PathBuf,
    /// The one node (this process) as its heartbeats describe it (`cluster.rs`).
    node: Mutex<Option<crate::store::NodeRecord>>,
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

impl RedbStore {
    async fn write<T, F>(&self, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&WriteTransaction) -> StoreResult<T> + Send + 'static,
    {
        self.writable()?;
        // The request's pending audit record commits with its change, or not at all.
        match crate::audit::take() {
            None => self.writer.write(f).await,
            Some(entry) => {
                let (out, streamed) = self
                    .writer
                    .write(move |txn| {
                        let out = f(txn)?;
                        let (_, streamed) = audit::append_in(txn, entry)?;
                        Ok((out, streamed))
                    })
                    .await?;
                self.announce_audit(streamed);
                Ok(out)
            }
        }
    }

    fn writable(&self) -> StoreResult<()> {
        match &self.read_only {
            Some(reason) => Err(StoreError::ReadOnly(reason.clone())),
            None => Ok(()),
        }
    }

    /// The open database; an error once the store is closed.
    fn database(&self) -> StoreResult<Arc<Database>> {
        self.db
            .load_full()
            .ok_or_else(|| StoreError::Backend("the store is closed".into()))
    }

    fn read(&self) -> StoreResult<ReadTransaction> {
        Ok(self.database()?.begin_read()?)
    }

    /// Runs a read that may examine many rows (a listing: up to 20,000 decoded) on
    /// the blocking pool, so that it never holds one of the async worker threads that
    /// publishes and deliveries share. Point reads stay inline: they take microseconds.
    async fn read_blocking<T, F>(&self, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&ReadTransaction) -> StoreResult<T> + Send + 'static,
    {
        let db = self.database()?;
        tokio::task::spawn_blocking(move || {
            let txn = db.begin_read()?;
            f(&txn)
        })
        .await
        .map_err(|e| StoreError::Backend(format!("read task: {e}")))?
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

    fn failure(&self) -> Option<String> {
        self.writer.failure()
    }

    fn feed(&self) -> Arc<CommitFeed> {
        self.feed.clone()
    }

    fn close(&self) {
        self.writer.stop();
        let handle = self.writer_thread.lock().ok().and_then(|mut h| h.take());
        if let Some(handle) = handle {
            let _ = handle.join();
        }
        // Without the writer, this is the last handle but for reads still running:
        // the one dropped last closes the database, which records its allocator state.
        // A file left open until the process exits is repaired at the next start
        // (a walk of the whole file).
        if let Some(db) = self.db.swap(None) {
            match Arc::try_unwrap(db) {
                Ok(db) => {
                    if let Err(e) = db.close() {
                        tracing::warn!(error = %e, "store: closing the file");
                    }
                }
                Err(shared) => drop(shared),
            }
        }
    }

    async fn create_tenant(&self, tenant: Tenant) -> StoreResult<()> {
        self.create_tenant(tenant).await
    }

    async fn update_tenant(&self, id: &TenantId, change: Mutation<Tenant>) -> StoreResult<Tenant> {
        self.update_tenant(id, change).await
    }

    async fn get_tenant(&self, id: &TenantId) -> StoreResult<Option<Tenant>> {
        self.get_tenant(id).await
    }

    async fn list_tenants(&self, page: PageRequest) -> StoreResult<Page<Tenant>> {
        self.list_tenants(page).await
    }

    async fn create_api_key(&self, key: ApiKey) -> StoreResult<()> {
        self.create_api_key(key).await
    }

    async fn list_api_keys(
        &self,
        tenant: &TenantId,
        page: PageRequest,
    ) -> StoreResult<Page<ApiKey>> {
        self.list_api_keys(tenant, page).await
    }

    async fn revoke_api_key(
        &self,
        tenant: &TenantId,
        id: &KeyId,
        at: i64,
    ) -> StoreResult<Option<ApiKey>> {
        self.revoke_api_key(tenant, id, at).await
    }

    async fn find_api_key(&self, hash: &str) -> StoreResult<Option<ApiKey>> {
        self.find_api_key(hash).await
    }

    async fn create_endpoint(&self, endpoint: Endpoint, max_per_tenant: usize) -> StoreResult<()> {
        self.create_endpoint(endpoint, max_per_tenant).await
    }

    async fn get_endpoint(
        &self,
        tenant: &TenantId,
        id: &EndpointId,
    ) -> StoreResult<Option<Endpoint>> {
        self.get_endpoint(tenant, id).await
    }

    async fn list_endpoints(
        &self,
        tenant: &TenantId,
        page: PageRequest,
    ) -> StoreResult<Page<Endpoint>> {
        self.list_endpoints(tenant, page).await
    }

    async fn update_endpoint(
        &self,
        tenant: &TenantId,
        id: &EndpointId,
        change: Mutation<Endpoint>,
    ) -> StoreResult<Endpoint> {
        self.update_endpoint(tenant, id, change).await
    }

    async fn delete_endpoint(
        &self,
        tenant: &TenantId,
        id: &EndpointId,
    ) -> StoreResult<Vec<SubscriptionId>> {
        self.delete_endpoint(tenant, id).await
    }

    async fn create_subscription(
        &self,
        subscription: Subscription,
        max_per_tenant: usize,
    ) -> StoreResult<()> {
        self.create_subscription(subscription, max_per_tenant).await
    }

    async fn get_subscription(
        &self,
        tenant: &TenantId,
        id: &SubscriptionId,
    ) -> StoreResult<Option<Subscription>> {
        self.get_subscription(tenant, id).await
    }

    async fn list_subscriptions(
        &self,
        tenant: &TenantId,
        endpoint: Option<&EndpointId>,
        page: PageRequest,
    ) -> StoreResult<Page<Subscription>> {
        self.list_subscriptions(tenant, endpoint, page).await
    }

    async fn all_subscriptions(&self, tenant: &TenantId) -> StoreResult<Vec<Subscription>> {
        self.all_subscriptions(tenant).await
    }

    async fn update_subscription(
        &self,
        tenant: &TenantId,
        id: &SubscriptionId,
        change: Mutation<Subscription>,
    ) -> StoreResult<Subscription> {
        self.update_subscription(tenant, id, change).await
    }

    async fn delete_subscription(&self, tenant: &TenantId, id: &SubscriptionId) -> StoreResult<()> {
        self.delete_subscription(tenant, id).await
    }

    async fn append_events(
        &self,
        events: Vec<NewEvent>,
        limits: AppendLimits,
    ) -> StoreResult<Vec<Appended>> {
        self.append_events(events, limits).await
    }

    async fn get_event(&self, tenant: &TenantId, id: &EventId) -> StoreResult<Option<Event>> {
        self.get_event(tenant, id).await
    }

    async fn list_events(&self, tenant: &TenantId, query: EventQuery) -> StoreResult<Page<Event>> {
        self.list_events(tenant, query).await
    }

    async fn head_cursor(&self, tenant: &TenantId) -> StoreResult<u64> {
        self.head_cursor(tenant).await
    }

    async fn read_stream(
        &self,
        tenant: &TenantId,
        after: u64,
        limit: usize,
        topic: Option<&crate::ingest::topic::TopicPattern>,
        min_created_at: i64,
    ) -> StoreResult<StreamRead> {
        self.read_stream(tenant, after, limit, topic, min_created_at)
            .await
    }

    async fn get_delivery(
        &self,
        tenant: &TenantId,
        id: &DeliveryId,
    ) -> StoreResult<Option<Delivery>> {
        self.get_delivery(tenant, id).await
    }

    async fn list_deliveries(
        &self,
        tenant: &TenantId,
        query: DeliveryQuery,
    ) -> StoreResult<Page<Delivery>> {
        self.list_deliveries(tenant, query).await
    }

    async fn list_attempts(&self, tenant: &TenantId, id: &DeliveryId) -> StoreResult<Vec<Attempt>> {
        self.list_attempts(tenant, id).await
    }

    async fn queued_endpoints(&self) -> StoreResult<Vec<(TenantId, EndpointId)>> {
        self.queued_endpoints().await
    }

    async fn next_due(&self, endpoint: &EndpointId) -> StoreResult<Option<i64>> {
        self.next_due(endpoint).await
    }

    async fn claim_due(&self, claim: Claim) -> StoreResult<Vec<Claimed>> {
        self.claim_due(claim).await
    }

    async fn record_outcome(&self, outcome: Outcome) -> StoreResult<bool> {
        self.record_outcome(outcome).await
    }

    async fn reclaim_leases(&self, now: Option<i64>) -> StoreResult<usize> {
        self.reclaim_leases(now).await
    }

    async fn reclaim_node_leases(&self, _node: &str) -> StoreResult<usize> {
        // One process opens a redb store: every recorded lease is its previous run's.
        self.reclaim_leases(None).await
    }

    async fn reclaim_foreign_leases(
        &self,
        _node: &str,
        _silent_for_ms: Option<u64>,
    ) -> StoreResult<usize> {
        Ok(0) // one process, one node: no lease is another node's
    }

    async fn cluster_beat(
        &self,
        beat: crate::store::Beat,
    ) -> StoreResult<crate::store::LeaderState> {
        Ok(self.beat(beat))
    }

    async fn cluster_leave(&self, _node: &str, _held: Option<u64>) -> StoreResult<()> {
        self.leave();
        Ok(())
    }

    async fn cluster_state(&self) -> StoreResult<crate::store::ClusterState> {
        self.cluster_state().await
    }

    async fn put_health(&self, _reports: Vec<crate::store::HealthReport>) -> StoreResult<()> {
        Ok(()) // one node: its dispatcher's health is the whole truth
    }

    async fn health_reports(
        &self,
        _tenant: &TenantId,
        _endpoint: Option<&EndpointId>,
    ) -> StoreResult<Vec<crate::store::HealthReport>> {
        Ok(Vec::new())
    }

    async fn list_dead(
        &self,
        tenant: &TenantId,
        endpoint: Option<&EndpointId>,
        page: PageRequest,
    ) -> StoreResult<Page<Delivery>> {
        self.list_dead(tenant, endpoint, page).await
    }

    async fn requeue_dead(&self, tenant: &TenantId, batch: RequeueBatch) -> StoreResult<Requeued> {
        self.requeue_dead(tenant, batch).await
    }

    async fn create_replay(
        &self,
        replay: Replay,
        deliveries: Vec<ReplayDelivery>,
        max_queue_depth: u64,
    ) -> StoreResult<usize> {
        self.create_replay(replay, deliveries, max_queue_depth)
            .await
    }

    async fn purge(&self, policy: PurgePolicy, from: PurgeCursor) -> StoreResult<PurgeReport> {
        self.purge(policy, from).await
    }

    async fn mark_compacted(&self, at: i64) -> StoreResult<()> {
        self.mark_compacted(at).await
    }

    fn snapshot_to(&self, dir: &Path) -> StoreResult<SnapshotManifest> {
        let db = self.database()?;
        snapshot::write(&db, dir, self.meta().version)
    }

    async fn capture_inbox(&self, message: InboxMessage) -> StoreResult<()> {
        self.capture_inbox(message).await
    }

    async fn list_inbox(
        &self,
        tenant: &TenantId,
        endpoint: &EndpointId,
        page: PageRequest,
    ) -> StoreResult<Page<InboxMessage>> {
        self.list_inbox(tenant, endpoint, page).await
    }

    async fn create_plugin(
        &self,
        plugin: PluginRecord,
        module: Vec<u8>,
        quota: PluginQuota,
    ) -> StoreResult<()> {
        self.create_plugin(plugin, module, quota).await
    }

    async fn list_plugins(&self, tenant: &TenantId) -> StoreResult<Vec<PluginRecord>> {
        self.list_plugins(tenant).await
    }

    async fn get_plugin(
        &self,
        tenant: &TenantId,
        name: &str,
        version: &str,
    ) -> StoreResult<Option<PluginRecord>> {
        self.get_plugin(tenant, name, version).await
    }

    async fn get_plugin_module(
        &self,
        tenant: &TenantId,
        name: &str,
        version: &str,
    ) -> StoreResult<Option<Vec<u8>>> {
        self.get_plugin_module(tenant, name, version).await
    }

    async fn delete_plugin(&self, tenant: &TenantId, name: &str, version: &str) -> StoreResult<()> {
        self.delete_plugin(tenant, name, version).await
    }

    async fn append_audit(
        &self,
        entry: crate::audit::AuditEntry,
    ) -> StoreResult<crate::audit::AuditRecord> {
        self.append_audit(entry).await
    }

    async fn list_audit(&self, query: AuditQuery) -> StoreResult<Page<crate::audit::AuditRecord>> {
        self.list_audit(query).await
    }

    async fn audit_chains(&self) -> StoreResult<Vec<String>> {
        self.audit_chains().await
    }

    async fn audit_chain(
        &self,
        chain: &str,
        after_seq: u64,
        limit: usize,
    ) -> StoreResult<Vec<crate::audit::AuditRecord>> {
        self.audit_chain(chain, after_seq, limit).await
    }

    async fn purge_audit(&self, before: i64, limit: usize) -> StoreResult<u64> {
        self.purge_audit(before, limit).await
    }

    async fn storage_stats(&self) -> StoreResult<StorageStats> {
        self.storage_stats().await
    }

    async fn queue_counts(&self, tenant: Option<&TenantId>) -> StoreResult<QueueCounts> {
        self.queue_counts(tenant).await
    }
}

fn ms(t: i64) -> u64 {
    u64::try_from(t).unwrap_or(0)
}

/// Records a row that cannot be decoded (see [`tables::QUARANTINE`]) and logs it
/// with its key. The caller removes the index entry that led to it.
fn quarantine(txn: &WriteTransaction, table: &str, key: &str, message: &str) -> StoreResult<()> {
    tracing::error!(
        table,
        key,
        error = message,
        "store: corrupt row quarantined; the operation that met it failed alone"
    );
    txn.open_table(QUARANTINE)?
        .insert((table, key), (crate::clock::now_ms(), message))?;
    Ok(())
}

/// Loads a delivery inside a write transaction; a row that cannot be decoded is
/// quarantined and reads as absent, so maintenance (reaping, requeueing, retention)
/// passes it by instead of failing on it forever.
fn load_delivery_or_quarantine(
    txn: &WriteTransaction,
    deliveries: &Table<(&str, &str), &[u8]>,
    tenant: &str,
    id: &str,
) -> StoreResult<Option<Delivery>> {
    match load_delivery(deliveries, tenant, id) {
        Err(StoreError::Corrupt { table, message }) => {
            quarantine(txn, table, &format!("{tenant}/{id}"), &message)?;
            Ok(None)
        }
        other => other,
    }
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
