//! The PostgreSQL backend: the same [`Store`] contract on a database several nodes can
//! share.
//!
//! - One pool of tokio-postgres connections (deadpool); queries are checked at run
//!   time, so building needs no database.
//! - Migrations are embedded ([`schema`]) and applied at open under an advisory lock;
//!   `gp_meta.version` follows the redb rule: older → migrate, newer → read-only.
//! - Publishes and attempt outcomes are group-committed ([`hot`]): many callers share
//!   one transaction with multi-row inserts, and each caller's future resolves only
//!   after the commit.
//! - A tenant's stream cursor is a counter row (`tenant_state.cursor`) updated in the
//!   publishing transaction: commit order is cursor order, with no gaps.
//! - Claims take due rows of the hot queue with `FOR UPDATE SKIP LOCKED` in a
//!   materialized CTE and delete them; a lease token guards every outcome.
//! - The commit feed ([`tail`]) follows the tables by cursor, woken by this node's own
//!   commits and by `NOTIFY` from other nodes, with a poll as the fallback.

mod audit;
mod cluster;
mod hot;
mod import;
#[cfg(test)]
mod plans;
mod queue;
mod reads;
mod records;
mod retention;
pub mod schema;
mod stats;
mod tail;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio_postgres::NoTls;

use crate::ids::{DeliveryId, EndpointId, EventId, KeyId, SubscriptionId, TenantId};
use crate::store::feed::CommitFeed;
use crate::store::{
    ApiKey, AppendLimits, Appended, Attempt, AuditQuery, Claim, Claimed, Delivery, DeliveryQuery,
    DeliveryStatus, Endpoint, Event, EventQuery, InboxMessage, Mutation, NewEvent, Outcome, Page,
    PageRequest, PluginQuota, PluginRecord, PurgeCursor, PurgePolicy, PurgeReport, QueueCounts,
    Replay, ReplayDelivery, RequeueBatch, Requeued, SnapshotManifest, StorageStats, Store,
    StoreError, StoreMeta, StoreResult, StreamRead, Subscription, Tenant,
};

/// How a listing with filters may scan before it returns a partial page.
const SCAN_FACTOR: usize = 20;

/// Settings of the PostgreSQL backend (`[postgres]`).
#[derive(Debug, Clone)]
pub struct PgOptions {
    /// `postgres://user:password@host:port/database`.
    pub url: String,
    /// The schema holding the tables (created when missing); `None`: the default.
    pub schema: Option<String>,
    pub pool_size: usize,
    pub commit_max_batch: usize,
    pub commit_concurrency: usize,
    pub poll_interval: Duration,
    pub connect_timeout: Duration,
    /// Write a `deliveries.status` stream item with every attempt outcome.
    pub stream_status: bool,
}

impl PgOptions {
    pub fn from_config(config: &crate::config::Config, url: &str) -> Self {
        let pg = &config.postgres;
        Self {
            url: url.to_owned(),
            schema: (!pg.schema.is_empty()).then(|| pg.schema.clone()),
            pool_size: pg.pool_size,
            commit_max_batch: pg.commit_max_batch,
            commit_concurrency: pg.commit_concurrency,
            poll_interval: Duration::from_millis(pg.poll_interval_ms.max(10)),
            connect_timeout: Duration::from_secs(pg.connect_timeout_secs.max(1)),
            stream_status: config.stream.delivery_status,
        }
    }
}

/// The store on PostgreSQL.
pub struct PgStore {
    pool: Pool,
    /// Connections whose commits do not wait for the WAL flush (claims only).
    relaxed: Pool,
    meta: Mutex<StoreMeta>,
    read_only: Option<String>,
    feed: Arc<CommitFeed>,
    hot: hot::HotHandle,
    tail: tail::TailHandle,
    stats: stats::StatsHandle,
    options: PgOptions,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the URL: it may carry a password.
        f.debug_struct("PgStore")
            .field("schema", &self.options.schema)
            .field("read_only", &self.read_only)
            .finish_non_exhaustive()
    }
}

/// A database error as the store reports it: the server's message and code, never
/// the statement's values (a detail may quote a key or a secret).
pub(super) fn pg_err(e: &tokio_postgres::Error) -> StoreError {
    match e.as_db_error() {
        Some(db) => StoreError::Backend(format!(
            "postgres: {} (SQLSTATE {})",
            db.message(),
            db.code().code()
        )),
        None => StoreError::Backend(format!("postgres: {e}")),
    }
}

impl From<tokio_postgres::Error> for StoreError {
    fn from(e: tokio_postgres::Error) -> Self {
        pg_err(&e)
    }
}

impl From<deadpool_postgres::PoolError> for StoreError {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        match e {
            deadpool_postgres::PoolError::Backend(e) => pg_err(&e),
            other => StoreError::Backend(format!("postgres pool: {other}")),
        }
    }
}

/// What a database says about itself, read over one connection without writing (for
/// `gp doctor`).
#[derive(Debug, Clone)]
pub struct PgInspected {
    /// `SHOW server_version`.
    pub server_version: String,
    /// GatePulse's schema version there; `None` in a database GatePulse has not used.
    pub schema_version: Option<u32>,
}

/// Connects to `url` (tables in `schema`, if given) and reads the server's and the
/// schema's versions.
pub async fn inspect(
    url: &str,
    schema: Option<&str>,
    timeout: std::time::Duration,
) -> StoreResult<PgInspected> {
    let mut config: tokio_postgres::Config = url
        .parse()
        .map_err(|e| StoreError::Backend(format!("store: not a PostgreSQL URL ({e})")))?;
    config.connect_timeout(timeout);
    config.application_name("gatepulse-doctor");
    if let Some(schema) = schema {
        config.options(format!("-c search_path={schema}"));
    }
    let (client, conn) = tokio::time::timeout(timeout, config.connect(NoTls))
        .await
        .map_err(|_| StoreError::Backend(format!("postgres: no answer in {timeout:?}")))??;
    let task = tokio::spawn(conn);
    let server_version: String = client.query_one("SHOW server_version", &[]).await?.get(0);
    let has_meta: bool = client
        .query_one("SELECT to_regclass('gp_meta') IS NOT NULL", &[])
        .await?
        .get(0);
    let schema_version = if has_meta {
        client
            .query_opt("SELECT version FROM gp_meta WHERE id = 1", &[])
            .await?
            .map(|r| u32::try_from(r.get::<_, i32>(0)).unwrap_or(0))
    } else {
        None
    };
    drop(client);
    let _ = task.await;
    Ok(PgInspected {
        server_version,
        schema_version,
    })
}

/// Whether a database error is a unique violation.
pub(super) fn is_unique_violation(e: &tokio_postgres::Error) -> bool {
    e.code() == Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION)
}

pub(super) fn encode<T: Serialize>(value: &T) -> StoreResult<Vec<u8>> {
    serde_json::to_vec(value).map_err(|e| StoreError::Backend(format!("encode: {e}")))
}

pub(super) fn decode<T: DeserializeOwned>(table: &'static str, bytes: &[u8]) -> StoreResult<T> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt {
        table,
        message: e.to_string(),
    })
}

/// A u64 as PostgreSQL's bigint (cursors and tokens stay far below 2^63).
pub(super) fn big(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

pub(super) fn unbig(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

/// The columns of `deliveries`, in the order [`delivery_from_row`] reads them.
pub(super) const DELIVERY_COLUMNS: &str = "tenant, id, event_id, subscription_id, endpoint_id, \
     status, attempts, next_attempt_at, claimed_by, lease_until, lease_token, created_at, \
     updated_at, body, record_version";

pub(super) fn delivery_from_row(row: &tokio_postgres::Row) -> StoreResult<Delivery> {
    delivery_at(row, 0)
}

/// A delivery whose [`DELIVERY_COLUMNS`] start at column `at` of the row.
pub(super) fn delivery_at(row: &tokio_postgres::Row, at: usize) -> StoreResult<Delivery> {
    let status: &str = row.try_get(at + 5)?;
    let status = DeliveryStatus::parse(status).ok_or_else(|| StoreError::Corrupt {
        table: "deliveries",
        message: format!("unknown status {status:?}"),
    })?;
    Ok(Delivery {
        tenant_id: TenantId::from_trusted(row.try_get(at)?),
        id: DeliveryId::from_trusted(row.try_get(at + 1)?),
        event_id: EventId::from_trusted(row.try_get(at + 2)?),
        subscription_id: SubscriptionId::from_trusted(row.try_get(at + 3)?),
        endpoint_id: EndpointId::from_trusted(row.try_get(at + 4)?),
        status,
        attempts: u32::try_from(row.try_get::<_, i32>(at + 6)?).unwrap_or(0),
        next_attempt_at: row.try_get(at + 7)?,
        claimed_by: row.try_get(at + 8)?,
        lease_until: row.try_get(at + 9)?,
        lease_token: unbig(row.try_get(at + 10)?),
        created_at: row.try_get(at + 11)?,
        updated_at: row.try_get(at + 12)?,
        body: row.try_get(at + 13)?,
        record_version: u32::try_from(row.try_get::<_, i32>(at + 14)?).unwrap_or(1),
    })
}

/// The columns of `events`, in the order [`event_from_row`] reads them.
pub(super) const EVENT_COLUMNS: &str =
    "tenant, cursor, id, topic, created_at, idempotency_key, payload, record_version, traceparent";

pub(super) fn event_from_row(row: &tokio_postgres::Row) -> StoreResult<Event> {
    event_at(row, 0)
}

/// An event whose [`EVENT_COLUMNS`] start at column `at` of the row.
pub(super) fn event_at(row: &tokio_postgres::Row, at: usize) -> StoreResult<Event> {
    let payload: String = row.try_get(at + 6)?;
    let payload =
        serde_json::value::RawValue::from_string(payload).map_err(|e| StoreError::Corrupt {
            table: "events",
            message: e.to_string(),
        })?;
    Ok(Event {
        tenant_id: TenantId::from_trusted(row.try_get(at)?),
        cursor: unbig(row.try_get(at + 1)?),
        id: EventId::from_trusted(row.try_get(at + 2)?),
        topic: row.try_get(at + 3)?,
        created_at: row.try_get(at + 4)?,
        idempotency_key: row.try_get(at + 5)?,
        payload,
        record_version: u32::try_from(row.try_get::<_, i32>(at + 7)?).unwrap_or(1),
        traceparent: row.try_get(at + 8)?,
    })
}

/// A page of `items` fetched with `limit` rows asked for: full pages name where the
/// next one starts.
pub(super) fn page_of<T>(items: Vec<T>, limit: usize, key: impl Fn(&T) -> String) -> Page<T> {
    let next = if items.len() >= limit {
        items.last().map(key)
    } else {
        None
    };
    Page { items, next }
}

pub(super) fn limit_of(page: &PageRequest) -> usize {
    page.limit.max(1)
}

/// Planner settings for connections whose every statement reaches its rows by key:
/// the claims and the group commit. Their plans are prepared once per connection,
/// often while the tables are still empty, and the statistics lag a queue that
/// changes by thousands of rows a second, so the planner otherwise keeps plans made
/// for empty tables: measured under load, sequential scans and hash joins over
/// `deliveries` (the outcome's row locks: 17 ms for one row of 49,600) and
/// `delivery_queue` (a claim of 48: 17–22 ms against ~1 ms), and bitmap scans that
/// read and sort an endpoint's whole queue (8.7 ms against 1.2 ms with 5,000 queued).
/// Switched off, a scan that is never right for these statements costs what it
/// should; none of them is without an index path.
const KEYED_ONLY: &str = "-c enable_bitmapscan=off -c enable_seqscan=off \
    -c enable_hashjoin=off -c enable_mergejoin=off";

impl PgStore {
    /// Connects, migrates (under an advisory lock) and starts the group committer
    /// and the commit-feed tail. Fails with an instruction when the database cannot
    /// be reached.
    pub async fn open(options: PgOptions, feed: Arc<CommitFeed>) -> StoreResult<Self> {
        let mut config: tokio_postgres::Config = options
            .url
            .parse()
            .map_err(|e| StoreError::Backend(format!("store: not a PostgreSQL URL ({e})")))?;
        let search_path = options
            .schema
            .as_ref()
            .map(|schema| format!("-c search_path={schema}"))
            .unwrap_or_default();
        if !search_path.is_empty() {
            config.options(&search_path);
        }
        config.connect_timeout(options.connect_timeout);
        if config.get_application_name().is_none() {
            config.application_name("gatepulse");
        }
        let pool = Self::pool(config.clone(), options.pool_size.max(2), &options)?;
        // The claims and the group commit each have connections of their own, on
        // which nothing else runs, so that the planner can be told what their
        // statements need (`KEYED_ONLY`). Claims may be forgotten by a crash (the
        // delivery is then simply queued again: `Store::claim_due`), so they commit
        // without waiting for the WAL flush; the next durable commit makes them
        // durable.
        let mut relaxed_config = config.clone();
        relaxed_config
            .options(format!("{search_path} -c synchronous_commit=off {KEYED_ONLY}").trim());
        let relaxed = Self::pool(relaxed_config, 4, &options)?;
        let mut hot_config = config.clone();
        hot_config.options(format!("{search_path} {KEYED_ONLY}").trim());
        let hot_pool = Self::pool(hot_config, options.commit_concurrency.max(1) + 1, &options)?;
        if let Some(name) = &options.schema {
            // Before any pooled connection uses it as its search path.
            let (client, conn) = config.connect(NoTls).await.map_err(|e| {
                StoreError::Backend(format!(
                    "store: cannot connect to PostgreSQL: {}",
                    pg_err(&e)
                ))
            })?;
            let task = tokio::spawn(conn);
            // Under the migration lock: nodes starting together race otherwise.
            client
                .execute("SELECT pg_advisory_lock($1)", &[&schema::MIGRATION_LOCK])
                .await?;
            let created = client
                .batch_execute(&format!("CREATE SCHEMA IF NOT EXISTS {name}"))
                .await;
            let _ = client
                .execute("SELECT pg_advisory_unlock($1)", &[&schema::MIGRATION_LOCK])
                .await;
            created?;
            drop(client);
            let _ = task.await;
        }
        let (meta, read_only) = Self::prepare(&pool).await?;
        let hot = hot::HotHandle::spawn(hot_pool, &options);
        let tail = tail::TailHandle::spawn(pool.clone(), config, feed.clone(), &options).await?;
        let stats = stats::StatsHandle::spawn(pool.clone());
        Ok(Self {
            pool,
            relaxed,
            meta: Mutex::new(meta),
            read_only,
            feed,
            hot,
            tail,
            stats,
            options,
        })
    }

    /// A connection pool on `config`.
    fn pool(config: tokio_postgres::Config, size: usize, options: &PgOptions) -> StoreResult<Pool> {
        let manager = Manager::from_config(
            config,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        Pool::builder(manager)
            .max_size(size)
            .wait_timeout(Some(options.connect_timeout))
            .create_timeout(Some(options.connect_timeout))
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .build()
            .map_err(|e| StoreError::Backend(format!("postgres pool: {e}")))
    }

    /// Creates or migrates the schema; reads the metadata.
    async fn prepare(pool: &Pool) -> StoreResult<(StoreMeta, Option<String>)> {
        let mut client = pool.get().await.map_err(|e| {
            StoreError::Backend(format!("store: cannot connect to PostgreSQL: {e}"))
        })?;
        client
            .execute("SELECT pg_advisory_lock($1)", &[&schema::MIGRATION_LOCK])
            .await?;
        let result = Self::migrate(&mut client).await;
        // Released on every path; a lost connection releases it too.
        let _ = client
            .execute("SELECT pg_advisory_unlock($1)", &[&schema::MIGRATION_LOCK])
            .await;
        result
    }

    async fn migrate(
        client: &mut deadpool_postgres::Object,
    ) -> StoreResult<(StoreMeta, Option<String>)> {
        client
            .batch_execute(
                "CREATE TABLE IF NOT EXISTS gp_meta (
                    id integer PRIMARY KEY CHECK (id = 1),
                    version integer NOT NULL,
                    created_at bigint NOT NULL,
                    last_compaction_at bigint,
                    change_seq bigint NOT NULL DEFAULT 0
                )",
            )
            .await?;
        let row = client
            .query_opt(
                "SELECT version, created_at, last_compaction_at FROM gp_meta WHERE id = 1",
                &[],
            )
            .await?;
        let (mut version, created_at, last_compaction_at) = match row {
            Some(r) => (
                u32::try_from(r.get::<_, i32>(0)).unwrap_or(0),
                r.get::<_, i64>(1),
                r.get::<_, Option<i64>>(2),
            ),
            None => {
                let now = crate::clock::now_ms();
                client
                    .execute(
                        "INSERT INTO gp_meta (id, version, created_at) VALUES (1, 0, $1)",
                        &[&now],
                    )
                    .await?;
                (0, now, None)
            }
        };
        if version > schema::SCHEMA_VERSION {
            let reason = format!(
                "the database schema is version {version}, newer than this build's {}; \
                 run a newer gatepulse (reading works, writing is refused)",
                schema::SCHEMA_VERSION
            );
            tracing::warn!(%reason, "store opened read-only");
            let meta = StoreMeta {
                version,
                created_at,
                last_compaction_at,
            };
            return Ok((meta, Some(reason)));
        }
        while version < schema::SCHEMA_VERSION {
            let step = schema::MIGRATIONS
                .get(version as usize)
                .ok_or_else(|| StoreError::Backend(format!("no migration from {version}")))?;
            let txn = client.transaction().await?;
            txn.batch_execute(step).await?;
            let next = i32::try_from(version + 1).unwrap_or(i32::MAX);
            txn.execute("UPDATE gp_meta SET version = $1 WHERE id = 1", &[&next])
                .await?;
            txn.commit().await?;
            version += 1;
            tracing::info!(version, "store: PostgreSQL schema migrated");
        }
        Ok((
            StoreMeta {
                version,
                created_at,
                last_compaction_at,
            },
            None,
        ))
    }

    pub(super) async fn client(&self) -> StoreResult<deadpool_postgres::Object> {
        Ok(self.pool.get().await?)
    }

    pub(super) fn writable(&self) -> StoreResult<()> {
        match &self.read_only {
            Some(reason) => Err(StoreError::ReadOnly(reason.clone())),
            None => Ok(()),
        }
    }

    /// Tells the tail that this node committed stream items or changes.
    pub(super) fn committed(&self) {
        self.tail.wake();
    }

    /// Announces committed queued work to this node's listeners (the dispatcher) and,
    /// with the tail's next notification, to the other nodes'.
    pub(super) fn announce_queued(&self, woken: Vec<(TenantId, EndpointId)>) {
        if woken.is_empty() {
            return;
        }
        self.tail.queued(&woken);
        self.feed
            .announce(crate::store::feed::Committed::queued(woken));
    }
}

#[async_trait]
impl Store for PgStore {
    fn meta(&self) -> StoreMeta {
        self.meta
            .lock()
            .map(|m| m.clone())
            .unwrap_or_else(|e| e.into_inner().clone())
    }

    fn feed(&self) -> Arc<CommitFeed> {
        self.feed.clone()
    }

    fn close(&self) {
        self.hot.stop();
        self.tail.stop();
        self.stats.stop();
        self.pool.close();
        self.relaxed.close();
    }

    fn read_only_reason(&self) -> Option<String> {
        self.read_only.clone()
    }

    fn failure(&self) -> Option<String> {
        None
    }

    async fn create_tenant(&self, tenant: Tenant) -> StoreResult<()> {
        self.create_tenant(tenant).await
    }

    async fn get_tenant(&self, id: &TenantId) -> StoreResult<Option<Tenant>> {
        self.get_tenant(id).await
    }

    async fn update_tenant(&self, id: &TenantId, change: Mutation<Tenant>) -> StoreResult<Tenant> {
        self.update_tenant(id, change).await
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
        self.writable()?;
        let (outcomes, queued) = self.hot.append(events, limits).await?;
        self.announce_queued(queued);
        self.committed();
        Ok(outcomes)
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
        self.writable()?;
        self.claim_due(claim).await
    }

    async fn record_outcome(&self, outcome: Outcome) -> StoreResult<bool> {
        self.writable()?;
        let recorded = self.hot.outcome(outcome).await?;
        self.committed();
        Ok(recorded)
    }

    async fn reclaim_leases(&self, now: Option<i64>) -> StoreResult<usize> {
        self.writable()?;
        self.reclaim_leases(now, queue::Holders::Any).await
    }

    async fn reclaim_node_leases(&self, node: &str) -> StoreResult<usize> {
        self.writable()?;
        self.reclaim_leases(None, queue::Holders::Node(node)).await
    }

    async fn reclaim_foreign_leases(
        &self,
        node: &str,
        silent_for_ms: Option<u64>,
    ) -> StoreResult<usize> {
        self.writable()?;
        self.reclaim_leases(None, queue::Holders::OtherThan(node, silent_for_ms))
            .await
    }

    async fn cluster_beat(
        &self,
        beat: crate::store::Beat,
    ) -> StoreResult<crate::store::LeaderState> {
        self.writable()?;
        self.beat(beat).await
    }

    async fn cluster_leave(&self, node: &str, held: Option<u64>) -> StoreResult<()> {
        self.writable()?;
        self.leave(node, held).await
    }

    async fn cluster_state(&self) -> StoreResult<crate::store::ClusterState> {
        self.cluster_state().await
    }

    async fn put_health(&self, reports: Vec<crate::store::HealthReport>) -> StoreResult<()> {
        self.writable()?;
        self.put_health(reports).await
    }

    async fn health_reports(
        &self,
        tenant: &TenantId,
        endpoint: Option<&EndpointId>,
    ) -> StoreResult<Vec<crate::store::HealthReport>> {
        self.health_reports(tenant, endpoint).await
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
        self.writable()?;
        self.requeue_dead(tenant, batch).await
    }

    async fn create_replay(
        &self,
        replay: Replay,
        deliveries: Vec<ReplayDelivery>,
        max_queue_depth: u64,
    ) -> StoreResult<usize> {
        self.writable()?;
        self.create_replay(replay, deliveries, max_queue_depth)
            .await
    }

    async fn purge(&self, policy: PurgePolicy, from: PurgeCursor) -> StoreResult<PurgeReport> {
        self.writable()?;
        self.purge(policy, from).await
    }

    async fn mark_compacted(&self, at: i64) -> StoreResult<()> {
        self.writable()?;
        self.client()
            .await?
            .execute(
                "UPDATE gp_meta SET last_compaction_at = $1 WHERE id = 1",
                &[&at],
            )
            .await?;
        if let Ok(mut m) = self.meta.lock() {
            m.last_compaction_at = Some(at);
        }
        Ok(())
    }

    fn snapshot_to(&self, _dir: &std::path::Path) -> StoreResult<SnapshotManifest> {
        Err(StoreError::Unsupported(
            "file snapshots are a redb feature; on PostgreSQL back up with the database's \
             own tools (pg_dump, or base backups with WAL archiving for point-in-time \
             recovery): see docs/production/postgres.md",
        ))
    }

    async fn capture_inbox(&self, message: InboxMessage) -> StoreResult<()> {
        self.capture_inbox(message).await
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

    async fn list_inbox(
        &self,
        tenant: &TenantId,
        endpoint: &EndpointId,
        page: PageRequest,
    ) -> StoreResult<Page<InboxMessage>> {
        self.list_inbox(tenant, endpoint, page).await
    }

    async fn storage_stats(&self) -> StoreResult<StorageStats> {
        self.storage_stats().await
    }

    async fn queue_counts(&self, tenant: Option<&TenantId>) -> StoreResult<QueueCounts> {
        self.queue_counts(tenant).await
    }
}
