//! Storage: the [`Store`] trait of domain operations and its backends.
//!
//! Every method states its contract (atomicity, idempotency, ordering). Backends must
//! pass the conformance suite in `router/tests/store_conformance.rs`. Nothing outside
//! `store/` knows which backend runs; no backend type appears in this trait.
//!
//! Tenant isolation is structural: every tenant-owned record is read and written by
//! `(tenant, id)`, so another tenant's id simply is not found.

pub mod backends;
pub mod model;

use async_trait::async_trait;

use crate::ids::{DeliveryId, EndpointId, EventId, KeyId, SubscriptionId, TenantId};
pub use model::*;

/// The store version this build writes. Bump it with a migration step in each backend.
pub const STORE_VERSION: u32 = 1;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The record to change does not exist (or belongs to another tenant).
    #[error("{0} not found")]
    NotFound(&'static str),
    /// A record this one refers to does not exist.
    #[error("referenced {0} does not exist")]
    MissingReference(&'static str),
    /// A per-tenant count limit would be exceeded.
    #[error("limit reached: at most {limit} {what} per tenant")]
    LimitReached { what: &'static str, limit: usize },
    /// The store was opened read-only; the text says why and what to do.
    #[error("store is read-only: {0}")]
    ReadOnly(String),
    /// The store is shutting down and takes no more writes.
    #[error("store is closed")]
    Closed,
    /// The backend failed (I/O, corruption, database error).
    #[error("storage failure: {0}")]
    Backend(String),
    /// A stored record could not be decoded.
    #[error("corrupt record in {table}: {message}")]
    Corrupt { table: &'static str, message: String },
}

pub type StoreResult<T> = Result<T, StoreError>;

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

    /// `Some(reason)` when the store was opened read-only (e.g. a newer store version);
    /// every write then fails with [`StoreError::ReadOnly`].
    fn read_only_reason(&self) -> Option<String>;

    /// Creates a tenant. Ids are unique; creating an existing id overwrites nothing and
    /// fails with `Backend`.
    async fn create_tenant(&self, tenant: Tenant) -> StoreResult<()>;
    async fn get_tenant(&self, id: &TenantId) -> StoreResult<Option<Tenant>>;
    /// Tenants in id (creation) order.
    async fn list_tenants(&self, page: PageRequest) -> StoreResult<Page<Tenant>>;

    /// Stores a key record (hash only) and its hash index atomically. The tenant must
    /// exist (`MissingReference("tenant")`).
    async fn create_api_key(&self, key: ApiKey) -> StoreResult<()>;
    /// Keys of one tenant in id order, revoked ones included.
    async fn list_api_keys(&self, tenant: &TenantId, page: PageRequest)
    -> StoreResult<Page<ApiKey>>;
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
    async fn get_endpoint(&self, tenant: &TenantId, id: &EndpointId)
    -> StoreResult<Option<Endpoint>>;
    async fn list_endpoints(&self, tenant: &TenantId, page: PageRequest)
    -> StoreResult<Page<Endpoint>>;
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
    async fn delete_subscription(&self, tenant: &TenantId, id: &SubscriptionId)
    -> StoreResult<()>;

    /// Appends events with their deliveries. Each event, its stream position and its
    /// pending deliveries are written in one transaction and are durable when this
    /// returns; concurrent calls may share a commit (group commit).
    ///
    /// Per tenant, each new event takes the next `cursor` (last + 1, no gaps) in
    /// commit order. An event whose `idempotency_key` was stored for the same tenant
    /// less than `idempotency_window_ms` ago (measured from its `created_at`) is not
    /// written; its outcome carries the original id and cursor with `deduped: true`.
    /// Outcomes come back in input order.
    async fn append_events(
        &self,
        events: Vec<NewEvent>,
        idempotency_window_ms: i64,
    ) -> StoreResult<Vec<AppendOutcome>>;
    async fn get_event(&self, tenant: &TenantId, id: &EventId) -> StoreResult<Option<Event>>;
    /// Events in cursor order, after `after_cursor` (or the page's `after`).
    async fn list_events(&self, tenant: &TenantId, query: EventQuery) -> StoreResult<Page<Event>>;
    /// The newest cursor of a tenant (0 before the first event).
    async fn head_cursor(&self, tenant: &TenantId) -> StoreResult<u64>;

    async fn get_delivery(&self, tenant: &TenantId, id: &DeliveryId)
    -> StoreResult<Option<Delivery>>;
    /// Deliveries in id (creation) order matching every given filter.
    async fn list_deliveries(
        &self,
        tenant: &TenantId,
        query: DeliveryQuery,
    ) -> StoreResult<Page<Delivery>>;
    /// Attempts of one delivery in attempt order.
    async fn list_attempts(&self, tenant: &TenantId, id: &DeliveryId) -> StoreResult<Vec<Attempt>>;
    /// Deliveries waiting in the queue whose `next_attempt_at` is at or before `now`,
    /// oldest due first, at most `limit` (read-only peek; claiming is the dispatcher's).
    async fn due_deliveries(&self, now: i64, limit: usize) -> StoreResult<Vec<Delivery>>;
    /// Queue counts for one tenant, or for all when `None`.
    async fn queue_counts(&self, tenant: Option<&TenantId>) -> StoreResult<QueueCounts>;
}
