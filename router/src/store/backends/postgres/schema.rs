//! The PostgreSQL schema: migrations embedded in the binary, applied at open under an
//! advisory lock so that nodes starting together migrate once.
//!
//! Records whose fields nothing queries are JSON (`data bytea`, the same encoding the
//! redb backend uses); what queries filter on has its own column. The hot queue is
//! `delivery_queue` (one row per queued delivery, deleted when claimed), so it stays
//! small however long the delivery history grows.

/// The schema version this build writes (`gp_meta.version`).
pub const SCHEMA_VERSION: u32 = 5;

/// Migration `n` takes the schema from version `n` to `n + 1`.
pub const MIGRATIONS: &[&str] = &[V1, V2, V3, V4, V5];

/// The leadership row's name: the node holding it dispatches (cluster mode
/// `leader`) and runs the reaper and scheduled maintenance.
pub const LEADERSHIP: &str = "gatepulse";

/// Key of the advisory lock held while migrating.
pub const MIGRATION_LOCK: i64 = 0x6770_6d69_6772_6174; // "gpmigrat"

/// 4 → 5: the cluster. Nodes register with a heartbeat (in the database's clock); one
/// row holds the leadership, with a term that only goes up and an expiry renewed by
/// the holder alone (`cluster.rs`).
const V5: &str = r#"
CREATE TABLE IF NOT EXISTS cluster_nodes (
    id text COLLATE "C" PRIMARY KEY,
    address text NOT NULL,
    version text NOT NULL,
    started_at bigint NOT NULL,
    last_heartbeat_at timestamptz NOT NULL
);
-- Each node's view of an endpoint's delivery health, so that any node answers with
-- the cluster's (written by dispatching nodes about once a second).
CREATE TABLE IF NOT EXISTS endpoint_health (
    tenant text COLLATE "C" NOT NULL,
    endpoint_id text COLLATE "C" NOT NULL,
    node text COLLATE "C" NOT NULL,
    at bigint NOT NULL,
    data text NOT NULL,
    PRIMARY KEY (tenant, endpoint_id, node)
);
CREATE TABLE IF NOT EXISTS cluster_leader (
    name text COLLATE "C" PRIMARY KEY,
    leader_id text COLLATE "C" NOT NULL,
    term bigint NOT NULL,
    elected_at timestamptz NOT NULL,
    expires_at timestamptz NOT NULL
);
"#;

/// 3 → 4: an event keeps its publish span's trace context (tracing); endpoints may
/// hold Ed25519 signing keys (`signature_schemes`, v1a), which a build that predates
/// them would drop on update: the version keeps such builds read-only.
const V4: &str = r#"
ALTER TABLE events ADD COLUMN IF NOT EXISTS traceparent text COLLATE "C";
"#;

/// 2 → 3: stream positions of topics other than `deliveries.status` (audit records)
/// share `stream_status`, with their topic (`NULL`: `deliveries.status`).
const V3: &str = r#"
ALTER TABLE stream_status ADD COLUMN IF NOT EXISTS topic text COLLATE "C";
"#;

/// 1 → 2: the audit log's tables; endpoint secrets and header values are sealed under
/// the master keys. The
/// server seals rows it finds in plain form before serving (`crate::secrets::prepare`);
/// the version keeps older builds from writing plaintext.
const V2: &str = r#"
COMMENT ON TABLE endpoints IS 'secrets and header values sealed under GatePulse master keys (endpoint record_version 2)';
-- The audit log: one hash chain per tenant ('' for the node's own operations).
-- IF NOT EXISTS: running it again where they exist (a version set back by hand) is harmless.
CREATE TABLE IF NOT EXISTS audit_log (
    chain text COLLATE "C" NOT NULL,
    seq bigint NOT NULL,
    id text COLLATE "C" NOT NULL UNIQUE,
    at bigint NOT NULL,
    data bytea NOT NULL,
    PRIMARY KEY (chain, seq)
);
CREATE INDEX IF NOT EXISTS audit_log_at ON audit_log (at);
CREATE TABLE IF NOT EXISTS audit_heads (
    chain text COLLATE "C" PRIMARY KEY,
    seq bigint NOT NULL,
    hash text NOT NULL
);
"#;

const V1: &str = r#"
CREATE TABLE tenants (
    id text COLLATE "C" PRIMARY KEY,
    data bytea NOT NULL
);
-- One row per tenant: the stream cursor (incremented in the publishing transaction, so
-- commit order is cursor order and a tailing reader never skips), the purge watermark
-- and the counts that limits are checked against.
CREATE TABLE tenant_state (
    tenant text COLLATE "C" PRIMARY KEY,
    cursor bigint NOT NULL DEFAULT 0,
    purged_to bigint NOT NULL DEFAULT 0,
    queued bigint NOT NULL DEFAULT 0,
    endpoints bigint NOT NULL DEFAULT 0,
    subscriptions bigint NOT NULL DEFAULT 0
);
CREATE TABLE api_keys (
    tenant text COLLATE "C" NOT NULL,
    id text COLLATE "C" NOT NULL,
    hash text COLLATE "C" NOT NULL,
    live boolean NOT NULL,
    data bytea NOT NULL,
    PRIMARY KEY (tenant, id)
);
CREATE UNIQUE INDEX api_keys_live_hash ON api_keys (hash) WHERE live;
CREATE TABLE endpoints (
    tenant text COLLATE "C" NOT NULL,
    id text COLLATE "C" NOT NULL,
    data bytea NOT NULL,
    PRIMARY KEY (tenant, id)
);
CREATE TABLE subscriptions (
    tenant text COLLATE "C" NOT NULL,
    id text COLLATE "C" NOT NULL,
    endpoint_id text COLLATE "C" NOT NULL,
    data bytea NOT NULL,
    PRIMARY KEY (tenant, id)
);
CREATE INDEX subscriptions_endpoint ON subscriptions (tenant, endpoint_id);
CREATE TABLE events (
    tenant text COLLATE "C" NOT NULL,
    cursor bigint NOT NULL,
    id text COLLATE "C" NOT NULL,
    topic text COLLATE "C" NOT NULL,
    created_at bigint NOT NULL,
    idempotency_key text COLLATE "C",
    payload text COLLATE "C" NOT NULL,
    record_version integer NOT NULL,
    PRIMARY KEY (tenant, cursor)
);
CREATE UNIQUE INDEX events_id ON events (tenant, id);
CREATE TABLE idempotency (
    tenant text COLLATE "C" NOT NULL,
    key text COLLATE "C" NOT NULL,
    cursor bigint NOT NULL,
    created_at bigint NOT NULL,
    event_id text COLLATE "C" NOT NULL,
    PRIMARY KEY (tenant, key)
);
CREATE TABLE deliveries (
    tenant text COLLATE "C" NOT NULL,
    id text COLLATE "C" NOT NULL,
    event_id text COLLATE "C" NOT NULL,
    subscription_id text COLLATE "C" NOT NULL,
    endpoint_id text COLLATE "C" NOT NULL,
    status text COLLATE "C" NOT NULL,
    attempts integer NOT NULL,
    next_attempt_at bigint NOT NULL,
    claimed_by text COLLATE "C",
    lease_until bigint,
    lease_token bigint NOT NULL,
    created_at bigint NOT NULL,
    updated_at bigint NOT NULL,
    body text COLLATE "C",
    record_version integer NOT NULL,
    PRIMARY KEY (tenant, id)
);
CREATE INDEX deliveries_endpoint ON deliveries (tenant, endpoint_id, id);
CREATE INDEX deliveries_open ON deliveries (tenant, status, id)
    WHERE status IN ('pending', 'retrying', 'in_flight', 'dead');
CREATE INDEX deliveries_leases ON deliveries (lease_until) WHERE status = 'in_flight';
-- The hot queue: one row per queued delivery, due first. Claimed rows are deleted.
CREATE TABLE delivery_queue (
    tenant text COLLATE "C" NOT NULL,
    delivery_id text COLLATE "C" NOT NULL,
    endpoint_id text COLLATE "C" NOT NULL,
    due bigint NOT NULL,
    PRIMARY KEY (tenant, delivery_id)
);
CREATE INDEX delivery_queue_due ON delivery_queue (endpoint_id, due, delivery_id);
CREATE TABLE attempts (
    tenant text COLLATE "C" NOT NULL,
    delivery_id text COLLATE "C" NOT NULL,
    number integer NOT NULL,
    data bytea NOT NULL,
    PRIMARY KEY (tenant, delivery_id, number)
);
-- deliveries.status items: the tenant's stream positions that are not events.
CREATE TABLE stream_status (
    tenant text COLLATE "C" NOT NULL,
    cursor bigint NOT NULL,
    created_at bigint NOT NULL,
    data text COLLATE "C" NOT NULL,
    PRIMARY KEY (tenant, cursor)
);
CREATE TABLE inbox (
    tenant text COLLATE "C" NOT NULL,
    endpoint_id text COLLATE "C" NOT NULL,
    id text COLLATE "C" NOT NULL,
    received_at bigint NOT NULL,
    data bytea NOT NULL,
    PRIMARY KEY (tenant, endpoint_id, id)
);
CREATE INDEX inbox_received ON inbox (received_at);
CREATE TABLE replays (
    tenant text COLLATE "C" NOT NULL,
    id text COLLATE "C" NOT NULL,
    created_at bigint NOT NULL,
    data bytea NOT NULL,
    PRIMARY KEY (tenant, id)
);
CREATE TABLE plugins (
    tenant text COLLATE "C" NOT NULL,
    name text COLLATE "C" NOT NULL,
    version text COLLATE "C" NOT NULL,
    sha256 text COLLATE "C" NOT NULL,
    size bigint NOT NULL,
    data bytea NOT NULL,
    PRIMARY KEY (tenant, name, version)
);
CREATE TABLE plugin_modules (
    tenant text COLLATE "C" NOT NULL,
    sha256 text COLLATE "C" NOT NULL,
    module bytea NOT NULL,
    PRIMARY KEY (tenant, sha256)
);
-- Configuration changes for other nodes' caches, in commit order: `seq` comes from
-- gp_meta.change_seq, incremented in the changing transaction (never a sequence).
CREATE TABLE change_log (
    seq bigint PRIMARY KEY,
    at bigint NOT NULL,
    kind text COLLATE "C" NOT NULL,
    tenant text COLLATE "C" NOT NULL,
    id text COLLATE "C" NOT NULL,
    name text COLLATE "C" NOT NULL DEFAULT '',
    version text COLLATE "C" NOT NULL DEFAULT '',
    deleted boolean NOT NULL DEFAULT false
);
"#;
