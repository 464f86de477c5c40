//! Storage: the [`Store`] trait of domain operations and its backends.
//!
//! Every method states its contract (atomicity, idempotency, ordering). Backends must
//! pass the conformance suite in `router/tests/store_conformance.rs`. Nothing outside
//! `store/` knows which backend runs; no backend type appears in this trait.
//!
//! Tenant isolation is structural: every tenant-owned record is read and written by
//! `(tenant, id)`, so another tenant's id simply is not found.

pub mod backends;
pub mod copy;
pub mod feed;
pub mod model;

use async_trait::async_trait;

use crate::ids::{DeliveryId, EndpointId, EventId, KeyId, SubscriptionId, TenantId};
pub use model::*;

/// The store version this build writes. Bump it with a migration step in each backend.
pub const STORE_VERSION: u32 = 4;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The record to change does not exist (or belongs to another tenant).
    #[error("{0} not found")]
    NotFound(&'static str),
    /// A record this one refers to does not exist.
    #[error("referenced {0} does not exist")]
    MissingReference(&'static str),
    /// A record with this identity exists and may not be replaced.
    #[error("{0} already exists")]
    AlreadyExists(&'static str),
    /// A per-tenant count limit would be exceeded.
    #[error("limit reached: at most {limit} {what} per tenant")]
    LimitReached { what: &'static str, limit: usize },
    /// The store was opened read-only; the text says why and what to do.
    #[error("store is read-only: {0}")]
    ReadOnly(String),
    /// The store is shutting down and takes no more writes.
    #[error("store is closed")]
    Closed,
    /// The backend can no longer write (its writer died); the text says why. The
    /// server reports itself not ready and not live until restarted.
    #[error("store failed: {0}")]
    Failed(String),
    /// This backend does not do that; the text says what to do instead.
    #[error("not supported by this store: {0}")]
    Unsupported(&'static str),
    /// The backend failed (I/O, corruption, database error).
    #[error("storage failure: {0}")]
    Backend(String),
    /// A stored record could not be decoded.
    #[error("corrupt record in {table}: {message}")]
    Corrupt {
        table: &'static str,
        message: String,
    },
}

pub type StoreResult<T> = Result<T, StoreError>;

/// File name of the embedded store inside the data dir.
pub const REDB_FILE: &str = "gatepulse.redb";

/// Verifies a snapshot directory and installs it as the data dir's store (offline).
pub fn restore_offline(
    snapshot: &std::path::Path,
    data_dir: &std::path::Path,
    force: bool,
) -> StoreResult<SnapshotManifest> {
    backends::redb::snapshot::restore(snapshot, data_dir, force)
}

/// Gives free space back to the file system (offline: the server must be stopped).
/// Returns the file size before and after, in bytes.
pub fn compact_offline(config: &crate::config::Config) -> StoreResult<(u64, u64)> {
    if config.postgres_url().is_some() {
        return Err(StoreError::Unsupported(
            "compaction is a redb feature; PostgreSQL reclaims space with VACUUM \
             (autovacuum does it; see docs/production/postgres.md)",
        ));
    }
    backends::redb::compact_file(&config.data_dir.join(REDB_FILE))
}

/// Opens the backend the configuration names (`store = "redb"` or a `postgres://`
/// URL); it announces its commits on `feed`.
/// What a store says about itself, read without changing it (`gp doctor`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Inspection {
    /// Embedded: no store file yet (the first start creates it).
    Missing,
    /// Embedded: a running server holds the file.
    InUse,
    /// Embedded: the file was not closed cleanly; the next start repairs it.
    NeedsRepair,
    /// The stored version against the one this build writes (`stored` is `None` in a
    /// PostgreSQL database GatePulse has not used yet); `server` is PostgreSQL's
    /// version.
    Version {
        stored: Option<u32>,
        current: u32,
        server: Option<String>,
    },
}

/// Looks at the configured store without opening it for writes: the embedded file
/// through a read-only handle, PostgreSQL over one connection.
pub async fn inspect(config: &crate::config::Config) -> StoreResult<Inspection> {
    if let Some(url) = config.postgres_url() {
        let schema =
            (!config.postgres.schema.is_empty()).then_some(config.postgres.schema.as_str());
        let timeout =
            std::time::Duration::from_secs(config.postgres.connect_timeout_secs.clamp(1, 10));
        let found = backends::postgres::inspect(url, schema, timeout).await?;
        return Ok(Inspection::Version {
            stored: found.schema_version,
            current: backends::postgres::schema::SCHEMA_VERSION,
            server: Some(found.server_version),
        });
    }
    use backends::redb::Inspected;
    Ok(
        match backends::redb::inspect(&config.data_dir.join(REDB_FILE))? {
            Inspected::Missing => Inspection::Missing,
            Inspected::InUse => Inspection::InUse,
            Inspected::NeedsRepair => Inspection::NeedsRepair,
            Inspected::Meta(meta) => Inspection::Version {
                stored: Some(meta.version),
                current: STORE_VERSION,
                server: None,
            },
        },
    )
}

pub async fn open(
    config: &crate::config::Config,
    feed: std::sync::Arc<feed::CommitFeed>,
) -> StoreResult<std::sync::Arc<dyn Store>> {
    if let Some(url) = config.postgres_url() {
        let options = backends::postgres::PgOptions::from_config(config, url);
        let store = backends::postgres::PgStore::open(options, feed).await?;
        return Ok(std::sync::Arc::new(store));
    }
    let store = backends::redb::RedbStore::open(
        &config.data_dir.join(REDB_FILE),
        backends::redb::RedbOptions {
            commit_max_batch: config.redb.commit_max_batch,
            max_queued_writes: config.redb.max_queued_writes,
            commit_max_wait: std::time::Duration::from_micros(config.redb.commit_max_wait_us),
            cache_size_bytes: config.redb.cache_size_mib << 20,
            stream_status: config.stream.delivery_status,
        },
        feed,
    )?;
    Ok(std::sync::Arc::new(store))
}

/// Tells the dispatcher that an endpoint has new queued work (new events, requeues,
/// replays, reclaimed leases): it follows the commit feed.
#[derive(Debug, Default)]
pub struct QueueSignal {
    pending: std::sync::Mutex<std::collections::HashSet<(TenantId, EndpointId)>>,
    notify: tokio::sync::Notify,
}

impl QueueSignal {
    pub fn announce(&self, items: impl IntoIterator<Item = (TenantId, EndpointId)>) {
        let mut any = false;
        if let Ok(mut p) = self.pending.lock() {
            for item in items {
                any |= p.insert(item);
            }
        }
        if any {
            self.notify.notify_one();
        }
    }

    /// Takes every announced endpoint.
    pub fn take(&self) -> Vec<(TenantId, EndpointId)> {
        self.pending
            .lock()
            .map(|mut p| p.drain().collect())
            .unwrap_or_default()
    }

    /// Resolves after the next announcement (or at once if one is waiting).
    pub async fn notified(&self) {
        self.notify.notified().await;
    }
}

impl feed::FeedListener for QueueSignal {
    fn committed(&self, batch: &feed::Committed) {
        if !batch.queued.is_empty() {
            self.announce(batch.queued.iter().cloned());
        }
    }
}

/// What one `Store::purge` call may spend: rows deleted or examined, and time once
/// something moved (shared by the backends' retention passes).
#[derive(Debug)]
pub(crate) struct PurgeBudget {
    pub rows: usize,
    pub max_rows: usize,
    started: std::time::Instant,
    slice: std::time::Duration,
}

impl PurgeBudget {
    pub fn new(policy: &PurgePolicy) -> Self {
        Self {
            rows: 0,
            max_rows: policy.max_rows.max(1),
            started: std::time::Instant::now(),
            slice: std::time::Duration::from_millis(policy.max_millis),
        }
    }

    pub fn spent(&self) -> bool {
        self.rows >= self.max_rows
            || (self.rows > 0 && !self.slice.is_zero() && self.started.elapsed() >= self.slice)
    }

    pub fn left(&self) -> usize {
        self.max_rows.saturating_sub(self.rows).max(1)
    }
}

/// Counts of what waits in the delivery queue (for `/v1/stats` and metrics).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueueCounts {
    pub pending: u64,
    pub retrying: u64,
    pub in_flight: u64,
    pub dead: u64,
}

/// Domain storage operations. All writes are durable when the returned future
/// resolves `Ok`.
#[async_trait]
pub trait Store: Send + Sync + std::fmt::Debug + 'static {
    /// The store's metadata as read (or written) at open.
    fn meta(&self) -> StoreMeta;

    /// Where this store announces what it committed (see [`feed`]): each tenant's new
    /// stream items in cursor order once their commit is durable, endpoints with new
    /// queued work, and configuration changes. Listeners subscribe to it.
    fn feed(&self) -> std::sync::Arc<feed::CommitFeed>;

    /// Stops taking writes after those in progress and releases the backend. Writes
    /// acknowledged before this call are durable; later ones fail with `Closed`.
    /// Blocking: call it from a blocking context.
    fn close(&self);

    /// `Some(reason)` when the store was opened read-only (e.g. a newer store version);
    /// every write then fails with [`StoreError::ReadOnly`].
    fn read_only_reason(&self) -> Option<String>;

    /// `Some(reason)` once the store can no longer write at all (see
    /// [`StoreError::Failed`]): the process is not healthy and should be restarted.
    fn failure(&self) -> Option<String>;

    /// Creates a tenant. Ids are unique; creating an existing id overwrites nothing and
    /// fails with `Backend`.
    async fn create_tenant(&self, tenant: Tenant) -> StoreResult<()>;
    async fn get_tenant(&self, id: &TenantId) -> StoreResult<Option<Tenant>>;
    /// Applies `change` to a tenant atomically (`id` and `created_at` cannot change);
    /// `NotFound` when absent.
    async fn update_tenant(&self, id: &TenantId, change: Mutation<Tenant>) -> StoreResult<Tenant>;
    /// Tenants in id (creation) order.
    async fn list_tenants(&self, page: PageRequest) -> StoreResult<Page<Tenant>>;

    /// Stores a key record (hash only) and its hash index atomically. The tenant must
    /// exist (`MissingReference("tenant")`).
    async fn create_api_key(&self, key: ApiKey) -> StoreResult<()>;
    /// Keys of one tenant in id order, revoked ones included.
    async fn list_api_keys(
        &self,
        tenant: &TenantId,
        page: PageRequest,
    ) -> StoreResult<Page<ApiKey>>;
    /// Marks a key revoked at `at` and removes its hash from the lookup index, so it
    /// stops authenticating as soon as this returns. Idempotent: revoking a revoked key
    /// returns it unchanged. `None` when no such key exists in this tenant.
    async fn revoke_api_key(
        &self,
        tenant: &TenantId,
        id: &KeyId,
        at: i64,
    ) -> StoreResult<Option<ApiKey>>;
    /// The live (not revoked) key with this hash.
    async fn find_api_key(&self, hash: &str) -> StoreResult<Option<ApiKey>>;

    /// Creates an endpoint; fails with `LimitReached` when the tenant already has
    /// `max_per_tenant`, `MissingReference("tenant")` for an unknown tenant.
    async fn create_endpoint(&self, endpoint: Endpoint, max_per_tenant: usize) -> StoreResult<()>;
    async fn get_endpoint(
        &self,
        tenant: &TenantId,
        id: &EndpointId,
    ) -> StoreResult<Option<Endpoint>>;
    async fn list_endpoints(
        &self,
        tenant: &TenantId,
        page: PageRequest,
    ) -> StoreResult<Page<Endpoint>>;
    /// Applies `change` to the stored endpoint atomically and returns the result;
    /// `NotFound` when absent. `id`, `tenant_id` and `created_at` cannot change.
    async fn update_endpoint(
        &self,
        tenant: &TenantId,
        id: &EndpointId,
        change: Mutation<Endpoint>,
    ) -> StoreResult<Endpoint>;
    /// Deletes the endpoint and, in the same transaction, its subscriptions. Returns
    /// the ids of the deleted subscriptions; `NotFound` when absent. Deliveries already
    /// created stay (the dispatcher settles them).
    async fn delete_endpoint(
        &self,
        tenant: &TenantId,
        id: &EndpointId,
    ) -> StoreResult<Vec<SubscriptionId>>;

    /// Creates a subscription; its endpoint must exist in the same tenant
    /// (`MissingReference("endpoint")`); `LimitReached` past `max_per_tenant`.
    async fn create_subscription(
        &self,
        subscription: Subscription,
        max_per_tenant: usize,
    ) -> StoreResult<()>;
    async fn get_subscription(
        &self,
        tenant: &TenantId,
        id: &SubscriptionId,
    ) -> StoreResult<Option<Subscription>>;
    /// Subscriptions of one tenant in id order, optionally only one endpoint's.
    async fn list_subscriptions(
        &self,
        tenant: &TenantId,
        endpoint: Option<&EndpointId>,
        page: PageRequest,
    ) -> StoreResult<Page<Subscription>>;
    /// Every subscription of a tenant (to build the in-memory topic index).
    async fn all_subscriptions(&self, tenant: &TenantId) -> StoreResult<Vec<Subscription>>;
    /// Like `update_endpoint`; the changed record's endpoint must exist.
    async fn update_subscription(
        &self,
        tenant: &TenantId,
        id: &SubscriptionId,
        change: Mutation<Subscription>,
    ) -> StoreResult<Subscription>;
    async fn delete_subscription(&self, tenant: &TenantId, id: &SubscriptionId) -> StoreResult<()>;

    /// Appends events with their deliveries. Each event, its stream position and its
    /// pending deliveries are written in one transaction and are durable when this
    /// returns; concurrent calls may share a commit (group commit).
    ///
    /// Per tenant, each new event takes the next `cursor` (last + 1, no gaps) in
    /// commit order. An event whose `idempotency_key` was stored for the same tenant
    /// less than `limits.idempotency_window_ms` ago (measured from its `created_at`) is not
    /// written; its outcome carries the original id and cursor with `deduped: true`.
    /// Outcomes come back in input order.
    ///
    /// An event whose new deliveries would take the tenant's queue (pending, retrying
    /// and in-flight deliveries) past `limits.max_queue_depth` is refused
    /// (`Appended::QueueFull`) and nothing of it is written; later events of the same
    /// call are still considered (a smaller fan-out may fit).
    async fn append_events(
        &self,
        events: Vec<NewEvent>,
        limits: AppendLimits,
    ) -> StoreResult<Vec<Appended>>;
    async fn get_event(&self, tenant: &TenantId, id: &EventId) -> StoreResult<Option<Event>>;
    /// Events in cursor order, after `after_cursor` (or the page's `after`).
    async fn list_events(&self, tenant: &TenantId, query: EventQuery) -> StoreResult<Page<Event>>;
    /// The newest cursor of a tenant (0 before the first event).
    async fn head_cursor(&self, tenant: &TenantId) -> StoreResult<u64>;

    /// The tenant's stream after cursor `after`, in cursor order: events and
    /// `deliveries.status` items. Examines at most `limit` positions; returns those
    /// whose topic matches `topic` (all when `None`) and were written at or after
    /// `min_created_at` (Unix ms).
    async fn read_stream(
        &self,
        tenant: &TenantId,
        after: u64,
        limit: usize,
        topic: Option<&crate::ingest::topic::TopicPattern>,
        min_created_at: i64,
    ) -> StoreResult<StreamRead>;

    async fn get_delivery(
        &self,
        tenant: &TenantId,
        id: &DeliveryId,
    ) -> StoreResult<Option<Delivery>>;
    /// Deliveries in id (creation) order matching every given filter.
    async fn list_deliveries(
        &self,
        tenant: &TenantId,
        query: DeliveryQuery,
    ) -> StoreResult<Page<Delivery>>;
    /// Attempts of one delivery in attempt order.
    async fn list_attempts(&self, tenant: &TenantId, id: &DeliveryId) -> StoreResult<Vec<Attempt>>;
    /// Endpoints that have queued (pending or retrying) deliveries, with their tenant.
    async fn queued_endpoints(&self) -> StoreResult<Vec<(TenantId, EndpointId)>>;
    /// The earliest `next_attempt_at` among an endpoint's queued deliveries.
    async fn next_due(&self, endpoint: &EndpointId) -> StoreResult<Option<i64>>;
    /// Leases up to `limit` of the endpoint's queued deliveries due at `claim.now`, oldest
    /// due first: each becomes `in_flight` with `claimed_by`, `lease_until` and a new
    /// `lease_token`, and leaves the queue, atomically. Durable no later than the next
    /// durable write (a crash may forget a claim; the delivery is then simply queued).
    async fn claim_due(&self, claim: Claim) -> StoreResult<Vec<Claimed>>;
    /// Writes an attempt and the delivery's next state in one transaction. Returns
    /// `false` (and writes nothing) when the delivery is no longer leased under
    /// `outcome.lease_token` (the lease expired and was reclaimed).
    async fn record_outcome(&self, outcome: Outcome) -> StoreResult<bool>;
    /// Returns to the queue (due at once) every in-flight delivery whose lease ended
    /// before `now`, or every in-flight delivery with `None`. Returns how many.
    async fn reclaim_leases(&self, now: Option<i64>) -> StoreResult<usize>;
    /// Returns to the queue (due at once) every in-flight delivery claimed by `node`,
    /// whatever its lease's end: that node is starting again, so none of its sends
    /// still runs. Other nodes' leases stay; theirs return when they restart or when
    /// their leases end. A store that one process opens at a time (redb) returns
    /// every lease: all are that process's. Returns how many.
    async fn reclaim_node_leases(&self, node: &str) -> StoreResult<usize>;
    /// Returns to the queue (due at once) every in-flight delivery claimed by a node
    /// other than `node`: all of them with `silent_for_ms = None` (the new leader
    /// of a cluster where only the leader dispatches: every other lease is a former
    /// leader's), else only those of nodes with no heartbeat for that long (or none
    /// registered). A single-process store (redb) has no other nodes: 0.
    async fn reclaim_foreign_leases(
        &self,
        node: &str,
        silent_for_ms: Option<u64>,
    ) -> StoreResult<usize>;
    /// Registers `beat.node`'s heartbeat and, when it campaigns, wins, renews or loses
    /// the leadership, in the store's clock: a node wins when no unexpired leadership
    /// exists (the term goes up by one); the holder renews only under its own unexpired
    /// term. A single-process store (redb) makes its one node the leader (term 1).
    async fn cluster_beat(&self, beat: Beat) -> StoreResult<LeaderState>;
    /// The node leaves: its heartbeat row goes, and its leadership ends now if it still
    /// holds `held` (the next node's bid wins at once).
    async fn cluster_leave(&self, node: &str, held: Option<u64>) -> StoreResult<()>;
    /// The registered nodes (with their lease counts) and the leadership.
    async fn cluster_state(&self) -> StoreResult<ClusterState>;
    /// Replaces each report's `(tenant, endpoint, node)` entry. A single-process store
    /// (redb) keeps none: its one node answers from its own dispatcher.
    async fn put_health(&self, reports: Vec<HealthReport>) -> StoreResult<()>;
    /// Every node's report on a tenant's endpoint, or on all its endpoints.
    async fn health_reports(
        &self,
        tenant: &TenantId,
        endpoint: Option<&EndpointId>,
    ) -> StoreResult<Vec<HealthReport>>;
    /// Dead deliveries (the DLQ) of a tenant, in id order, optionally of one endpoint.
    async fn list_dead(
        &self,
        tenant: &TenantId,
        endpoint: Option<&EndpointId>,
        page: PageRequest,
    ) -> StoreResult<Page<Delivery>>;
    /// Moves one bounded batch of dead deliveries back to the queue, due at
    /// `batch.now`, with their attempt count reset (a fresh retry schedule), in one
    /// transaction: at most `batch.limit` moved and `limit * 20` DLQ rows examined, and
    /// never past `batch.max_queue_depth` (checked in the transaction). Ids that are not
    /// dead are skipped. Call again with `after = next` until `next` is `None`.
    async fn requeue_dead(&self, tenant: &TenantId, batch: RequeueBatch) -> StoreResult<Requeued>;
    /// Creates one batch of a replay's deliveries (pending, due at
    /// `replay.created_at`) and writes the replay record with `deliveries` increased by
    /// the number created, in one transaction. Only as many as fit under
    /// `max_queue_depth` (pending, retrying and in flight, checked in the transaction)
    /// are created, in order; returns how many. Each gets the next free delivery id of
    /// its event; `LimitReached` (and nothing written) past 2^20 per event. Callers
    /// keep each batch bounded (the API: 1,000).
    async fn create_replay(
        &self,
        replay: Replay,
        deliveries: Vec<ReplayDelivery>,
        max_queue_depth: u64,
    ) -> StoreResult<usize>;
    /// Removes expired data (see [`PurgePolicy`]) in one bounded transaction (at most
    /// `max_rows` rows deleted or examined, at most `max_millis` once something was
    /// deleted), continuing from `from`; call again with the report's `next` until
    /// `done`. Never removes a queued or in-flight delivery or its event: such an event
    /// is passed by, and later settled events still go. What goes is recorded as the
    /// tenant's purge watermark, so stream readers behind it get a reset frame rather
    /// than a silent hole.
    async fn purge(&self, policy: PurgePolicy, from: PurgeCursor) -> StoreResult<PurgeReport>;
    /// Records `store_meta.last_compaction_at`.
    async fn mark_compacted(&self, at: i64) -> StoreResult<()>;
    /// Writes a consistent snapshot of the whole store into `dir` (which must not hold
    /// one already) while the store keeps serving: everything is copied from one read
    /// transaction. Blocking and I/O heavy: call it from a blocking context.
    fn snapshot_to(&self, dir: &std::path::Path) -> StoreResult<SnapshotManifest>;
    /// Stores a message captured by an inbox endpoint.
    async fn capture_inbox(&self, message: InboxMessage) -> StoreResult<()>;

    /// Stores a plugin version and its module; `AlreadyExists` when the tenant has
    /// that name and version (versions are immutable), `LimitReached` when it would
    /// take the tenant past `quota` (checked in the same transaction).
    async fn create_plugin(
        &self,
        plugin: PluginRecord,
        module: Vec<u8>,
        quota: PluginQuota,
    ) -> StoreResult<()>;

    /// The tenant's plugins, by name then version.
    async fn list_plugins(&self, tenant: &TenantId) -> StoreResult<Vec<PluginRecord>>;

    async fn get_plugin(
        &self,
        tenant: &TenantId,
        name: &str,
        version: &str,
    ) -> StoreResult<Option<PluginRecord>>;

    /// The module bytes of a plugin version.
    async fn get_plugin_module(
        &self,
        tenant: &TenantId,
        name: &str,
        version: &str,
    ) -> StoreResult<Option<Vec<u8>>>;

    /// Removes a plugin version (and its module when no other version shares it).
    async fn delete_plugin(&self, tenant: &TenantId, name: &str, version: &str) -> StoreResult<()>;
    /// An inbox endpoint's captured messages, oldest first.
    async fn list_inbox(
        &self,
        tenant: &TenantId,
        endpoint: &EndpointId,
        page: PageRequest,
    ) -> StoreResult<Page<InboxMessage>>;
    /// Row counts and sizes.
    async fn storage_stats(&self) -> StoreResult<StorageStats>;
    /// Queue counts for one tenant, or for all when `None`.
    async fn queue_counts(&self, tenant: Option<&TenantId>) -> StoreResult<QueueCounts>;

    /// Appends an audit record on its own, for an operation that changes nothing else
    /// (a secret revealed, a snapshot written). Every other record is appended by the
    /// write that makes its change, in the same transaction: each backend's writes
    /// take the request's pending entry (`crate::audit::take`) as they start.
    async fn append_audit(
        &self,
        entry: crate::audit::AuditEntry,
    ) -> StoreResult<crate::audit::AuditRecord>;
    /// Audit records in id (time) order, filtered.
    async fn list_audit(&self, query: AuditQuery) -> StoreResult<Page<crate::audit::AuditRecord>>;
    /// The chains that hold records: tenant ids, and `""` for the node's own.
    async fn audit_chains(&self) -> StoreResult<Vec<String>>;
    /// One chain's records with `seq` above `after_seq`, in `seq` order, at most `limit`.
    async fn audit_chain(
        &self,
        chain: &str,
        after_seq: u64,
        limit: usize,
    ) -> StoreResult<Vec<crate::audit::AuditRecord>>;
    /// Removes up to `limit` records older than `before` (each chain from its start, so
    /// what stays is still a chain); returns how many went.
    async fn purge_audit(&self, before: i64, limit: usize) -> StoreResult<u64>;
}
