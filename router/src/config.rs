//! Configuration: one typed tree, loaded in layers and validated once at start.
//!
//! Layers, later wins: the built-in defaults (`router/config/default.toml`, compiled
//! in) → a TOML file (`--config` or `GATEPULSE_CONFIG`) → `GATEPULSE_*` environment
//! variables with `__` between nested keys → command-line flags. Unknown keys are
//! refused so that a typo never silently falls back to a default.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};

/// The compiled-in defaults file; every key is listed there with its default.
pub const DEFAULT_TOML: &str = include_str!("../config/default.toml");

/// Environment variable prefix for overrides.
pub const ENV_PREFIX: &str = "GATEPULSE_";

/// Why a configuration could not be used. The message names the offending key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("configuration: {}", describe_load_error(.0))]
    Load(Box<figment::Error>),
    #[error("configuration key `{key}`: {message}")]
    Invalid { key: &'static str, message: String },
}

/// figment's message, except for an unknown key: that one names the key and where it
/// came from, instead of listing every key that could have been meant.
fn describe_load_error(e: &figment::Error) -> String {
    match &e.kind {
        figment::error::Kind::UnknownField(..) => {
            let origin = match &e.metadata {
                Some(m) => match &m.source {
                    Some(source) => format!(" in {source}"),
                    None => format!(" from the {}", m.name),
                },
                None => String::new(),
            };
            format!(
                "unknown key `{}`{origin} (the keys are listed in docs/configuration.md)",
                e.path.join(".")
            )
        }
        _ => e.to_string(),
    }
}

impl From<figment::Error> for ConfigError {
    fn from(e: figment::Error) -> Self {
        Self::Load(Box::new(e))
    }
}

fn invalid(key: &'static str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key,
        message: message.into(),
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    pub admin_token: String,
    pub store: String,
    pub master_key: String,
    pub master_key_file: String,
    pub shutdown_grace_secs: u64,
    pub log: LogConfig,
    pub api: ApiConfig,
    pub retention: RetentionConfig,
    pub redb: RedbConfig,
    pub postgres: PostgresConfig,
    pub delivery: DeliveryConfig,
    pub filter: FilterConfig,
    pub stream: StreamConfig,
    pub plugins: PluginsConfig,
    pub console: ConsoleConfig,
    pub tracing: TracingConfig,
    pub cluster: ClusterConfig,
    /// Set by `gp serve --dev`; not a file key.
    #[serde(skip)]
    pub dev: bool,
    /// Deprecated keys this configuration used, with what to use instead (logged at
    /// start).
    #[serde(skip)]
    pub deprecations: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    pub format: LogFormat,
    pub level: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiConfig {
    pub max_body_bytes: usize,
    pub max_payload_bytes: usize,
    /// Deprecated name of `max_payload_bytes` (the roadmap's); wins when given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_payload_size: Option<usize>,
    pub max_batch_events: usize,
    pub max_topic_bytes: usize,
    pub max_idempotency_key_bytes: usize,
    pub idempotency_window_secs: u64,
    pub max_endpoints_per_tenant: usize,
    pub max_subscriptions_per_tenant: usize,
    pub max_topics_per_subscription: usize,
    pub max_queue_depth_per_tenant: u64,
    pub max_inflight_publishes: usize,
    /// Deprecated name of `max_inflight_publishes` (the roadmap's); wins when given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_inflight_global: Option<usize>,
    pub overload_status: u16,
    pub overload_retry_after_secs: u64,
    pub write_timeout_secs: u64,
    /// A request's headers must arrive within this (also the longest a kept-alive
    /// connection may wait for its next request).
    pub header_read_timeout_secs: u64,
    /// A request's whole body must arrive within this.
    pub body_read_timeout_secs: u64,
    /// A connection with no bytes read or written for this long is closed.
    pub idle_timeout_secs: u64,
    /// Open client connections, all addresses (lowered to fit the process's file
    /// descriptor limit minus `reserved_fds`).
    pub max_connections: usize,
    /// Open client connections from one IP address.
    pub max_connections_per_ip: usize,
    /// File descriptors kept free of client connections, for deliveries, the store
    /// and the process itself.
    pub reserved_fds: usize,
    /// Most events one range replay may select.
    pub max_replay_events: usize,
    /// Most dead deliveries one `POST /v1/dlq/requeue` moves.
    pub max_requeue: usize,
    pub metrics_token: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetentionConfig {
    pub events_max_age_secs: u64,
    pub dlq_max_age_secs: u64,
    pub inbox_max_age_secs: u64,
    pub audit_max_age_days: u64,
    pub compaction_cron: String,
    pub batch_rows: usize,
    /// Most milliseconds one batch may take (it shares a commit with publishes).
    pub batch_max_ms: u64,
}

impl RetentionConfig {
    /// The retention job's schedule; `None` when disabled.
    pub fn schedule(&self) -> Result<Option<crate::cron::Cron>, crate::cron::CronError> {
        if self.compaction_cron.trim().is_empty() {
            return Ok(None);
        }
        crate::cron::Cron::parse(&self.compaction_cron).map(Some)
    }

    /// What a pass run at `now` may remove.
    pub fn policy(&self, now: i64) -> crate::store::PurgePolicy {
        crate::store::PurgePolicy {
            now,
            events_max_age_secs: self.events_max_age_secs,
            dlq_max_age_secs: self.dlq_max_age_secs,
            inbox_max_age_secs: self.inbox_max_age_secs,
            max_rows: self.batch_rows,
            max_millis: self.batch_max_ms,
        }
    }
}

/// The operator console at `/console/` (`[console]`, docs/console.md).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsoleConfig {
    /// Serve the console's files from this directory instead of the copy built into
    /// the binary (empty: the built-in copy). For working on the console.
    pub assets_dir: PathBuf,
}

/// This node among the nodes sharing a store (`[cluster]`, docs/production/ha.md).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterConfig {
    /// Names this node in leases (`claimed_by`) and logs. Empty: generated at the
    /// first start and kept in the data dir (`node-id`).
    pub node_id: String,
    /// Who dispatches: the elected leader alone (`leader`, the default) or every node
    /// (`active-active`, experimental).
    pub mode: ClusterMode,
    /// How long a leadership lasts without renewal, in the database's clock.
    pub leader_ttl_ms: u64,
    /// How often a node beats: the leader renews, the others bid.
    pub election_interval_ms: u64,
    /// A leader stops acting this long before its leadership could expire (counted
    /// from the start of the renewal that last succeeded).
    pub trust_margin_ms: u64,
    /// The address other nodes and operators see for this node (empty: the listen
    /// address).
    pub advertise_address: String,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        Self {
            node_id: String::new(),
            mode: ClusterMode::Leader,
            leader_ttl_ms: 5000,
            election_interval_ms: 1000,
            trust_margin_ms: 1000,
            advertise_address: String::new(),
        }
    }
}

/// Which nodes of a cluster dispatch deliveries (`cluster.mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ClusterMode {
    /// Mode A: only the elected leader dispatches, reaps leases and runs retention.
    Leader,
    /// Mode B: every node dispatches under its own leases; the leader alone reaps
    /// and runs retention.
    ActiveActive,
}

/// OpenTelemetry trace export (`[tracing]`, docs/operations.md#tracing).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TracingConfig {
    /// OTLP/HTTP endpoint (`http://collector:4318`; `/v1/traces` is appended unless
    /// given). Empty: `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`, then
    /// `OTEL_EXPORTER_OTLP_ENDPOINT`; none of them: tracing is off.
    pub otlp_endpoint: String,
    /// Headers sent with every export (credentials of a hosted backend); added to
    /// those of `OTEL_EXPORTER_OTLP_HEADERS`. Never logged.
    pub otlp_headers: std::collections::BTreeMap<String, String>,
    /// `service.name` of the spans.
    pub service_name: String,
    /// Share of new traces kept (0.0–1.0). A publish that carries a `traceparent`
    /// follows its sampled flag instead.
    pub sample_ratio: f64,
    /// Finished spans waiting for export at most; more are dropped (and counted).
    pub max_queue_spans: usize,
    /// Timeout of one export request.
    pub export_timeout_secs: u64,
}

impl Default for TracingConfig {
    fn default() -> Self {
        Self {
            otlp_endpoint: String::new(),
            otlp_headers: std::collections::BTreeMap::new(),
            service_name: "gatepulse".into(),
            sample_ratio: 1.0,
            max_queue_spans: 4096,
            export_timeout_secs: 10,
        }
    }
}

/// Limits of the WASM plugin sandbox (`[plugins]`, docs/plugins.md).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PluginsConfig {
    /// Wasm fuel per call (about one unit per instruction).
    pub fuel: u64,
    /// Wall-clock budget per call, in milliseconds.
    pub deadline_ms: u64,
    /// Largest linear memory of a plugin, in MiB.
    pub memory_mib: usize,
    /// Largest module accepted on upload, in bytes.
    pub max_module_bytes: usize,
    /// Largest output of one call, in bytes.
    pub max_output_bytes: usize,
    /// Plugin instances alive at once (all plugins).
    pub max_instances: u32,
    /// Warm instances one plugin version keeps between calls.
    pub max_warm_per_plugin: usize,
    /// Warm instances all plugins keep together (below `max_instances`, so calls
    /// always find a free instance).
    pub max_warm_total: usize,
    /// Plugin calls running at once, all tenants (one plugin takes at most half).
    pub max_concurrent_calls: usize,
    /// Modules compiled at once (uploads, subscription saves).
    pub max_concurrent_compiles: usize,
    /// Plugin versions one tenant may store.
    pub max_per_tenant: usize,
    /// Bytes of plugin modules one tenant may store.
    pub max_bytes_per_tenant: u64,
}

impl PluginsConfig {
    pub fn limits(&self, max_input_bytes: usize) -> gatepulse_plugin_host::Limits {
        gatepulse_plugin_host::Limits {
            fuel: self.fuel,
            deadline: std::time::Duration::from_millis(self.deadline_ms),
            memory_bytes: self.memory_mib << 20,
            max_input_bytes,
            max_output_bytes: self.max_output_bytes,
            max_module_bytes: self.max_module_bytes,
            max_instances: self.max_instances,
            max_warm_per_plugin: self.max_warm_per_plugin,
            max_warm_total: self.max_warm_total,
            ..gatepulse_plugin_host::Limits::default()
        }
    }
}

/// The tenant stream, `GET /v1/stream` (`[stream]`, docs/streaming.md).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StreamConfig {
    /// Most stream positions a resuming client is sent from history.
    pub backfill_max_events: u64,
    /// Oldest history a resuming client is sent, in days (0: no age limit).
    pub backfill_max_age_days: u64,
    /// Bytes of frames queued per connection, beyond the socket's own buffer.
    pub client_buffer_bytes: usize,
    /// A busy tenant's live items go to its clients at most once per this many
    /// milliseconds, gathered into one write per client (0: a write per commit).
    pub min_write_interval_ms: u64,
    /// A tenant's clients are split into this many write groups whose writes go out
    /// at evenly spaced points of each interval instead of all at once.
    pub write_groups: usize,
    /// A live frame waits this long for room in a full queue; then the client is
    /// disconnected as too slow.
    pub slow_client_timeout_ms: u64,
    /// Live chunks kept per write group of a tenant; a client further behind re-reads.
    pub hub_capacity: usize,
    /// Most stream connections at once (all tenants).
    pub max_clients: usize,
    /// Most stream connections of one tenant.
    pub max_clients_per_tenant: usize,
    /// Seconds between keepalive comments.
    pub keepalive_secs: u64,
    /// Base of the jittered `retry:` hint, in milliseconds.
    pub retry_ms: u64,
    /// Write a `deliveries.status` item for every delivery attempt.
    pub delivery_status: bool,
    /// Threads of the runtime that serves stream connections, apart from the API's
    /// (0: one per CPU).
    pub worker_threads: usize,
    /// Added to the stream threads' nice value (0 to 19): when the machine is fully
    /// busy, publishes and deliveries get the CPU before stream writes.
    pub worker_nice: u8,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedbConfig {
    pub commit_max_batch: usize,
    pub commit_max_wait_us: u64,
    pub cache_size_mib: usize,
    /// Writes waiting for the writer thread; more callers wait for room.
    pub max_queued_writes: usize,
}

/// The PostgreSQL backend (`[postgres]`, docs/production/postgres.md); used when
/// `store` is a `postgres://` URL.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostgresConfig {
    pub pool_size: usize,
    pub schema: String,
    pub commit_max_batch: usize,
    pub commit_concurrency: usize,
    pub poll_interval_ms: u64,
    pub connect_timeout_secs: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeliveryConfig {
    pub allow_private_destinations: bool,
    pub default_timeout_ms: u64,
    pub secret_rotation_grace_secs: u64,
    pub retry_schedule_secs: Vec<u32>,
    pub retry_jitter: f64,
    pub max_retry_after_secs: u64,
    pub default_max_in_flight: u32,
    pub max_in_flight_global: usize,
    pub circuit_failure_threshold: u32,
    pub circuit_cooldown_secs: u64,
    pub circuit_max_cooldown_secs: u64,
    pub auto_disable_after_secs: u64,
    pub response_excerpt_bytes: usize,
    pub claim_batch: usize,
    pub reaper_interval_secs: u64,
    /// Send every delivery through this HTTP(S) proxy (empty: connect directly). The
    /// environment's HTTP_PROXY / HTTPS_PROXY / ALL_PROXY are never used.
    pub proxy_url: String,
    /// A queued delivery not sent for this long after it was due (its endpoint is
    /// disabled, or its circuit stays open) goes to the DLQ. 0: it waits forever.
    pub parked_max_age_secs: u64,
}

/// Complexity limits for subscription filters (`[filter]`), one key per field of
/// [`gatepulse_filter_dsl::Limits`] with the crate's defaults. Checked when a
/// subscription is created or updated, and when the ingest index compiles it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilterConfig {
    pub max_source_len: usize,
    pub max_depth: usize,
    pub max_nodes: usize,
    pub max_chain_terms: usize,
    pub max_path_segments: usize,
    pub max_list_len: usize,
    pub max_string_len: usize,
    pub max_regexes: usize,
    pub max_regex_size: usize,
    pub max_regex_dfa_size: usize,
    pub max_array_iterations: usize,
}

impl FilterConfig {
    /// The limits handed to `Filter::compile`.
    pub fn limits(&self) -> gatepulse_filter_dsl::Limits {
        gatepulse_filter_dsl::Limits {
            max_source_len: self.max_source_len,
            max_depth: self.max_depth,
            max_nodes: self.max_nodes,
            max_chain_terms: self.max_chain_terms,
            max_path_segments: self.max_path_segments,
            max_list_len: self.max_list_len,
            max_string_len: self.max_string_len,
            max_regexes: self.max_regexes,
            max_regex_size: self.max_regex_size,
            max_regex_dfa_size: self.max_regex_dfa_size,
            max_array_iterations: self.max_array_iterations,
        }
    }
}

impl Default for FilterConfig {
    fn default() -> Self {
        let l = gatepulse_filter_dsl::Limits::default();
        Self {
            max_source_len: l.max_source_len,
            max_depth: l.max_depth,
            max_nodes: l.max_nodes,
            max_chain_terms: l.max_chain_terms,
            max_path_segments: l.max_path_segments,
            max_list_len: l.max_list_len,
            max_string_len: l.max_string_len,
            max_regexes: l.max_regexes,
            max_regex_size: l.max_regex_size,
            max_regex_dfa_size: l.max_regex_dfa_size,
            max_array_iterations: l.max_array_iterations,
        }
    }
}

/// Values given on the command line; `None` leaves the lower layers alone.
#[derive(Debug, Default, Clone, Serialize)]
pub struct CliOverrides {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen: Option<SocketAddr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_dir: Option<PathBuf>,
}

impl Config {
    /// Loads every layer from the real process environment.
    pub fn load(file: Option<&Path>, cli: &CliOverrides, dev: bool) -> Result<Self, ConfigError> {
        let file = file
            .map(Path::to_path_buf)
            .or_else(|| std::env::var_os("GATEPULSE_CONFIG").map(PathBuf::from));
        Self::from_figment(Self::figment(file.as_deref(), cli), dev)
    }

    /// The layered figment; exposed so tests can inject environment values.
    pub fn figment(file: Option<&Path>, cli: &CliOverrides) -> Figment {
        let mut fig = Figment::from(Toml::string(DEFAULT_TOML));
        if let Some(path) = file {
            fig = fig.merge(Toml::file_exact(path));
        }
        fig.merge(
            Env::prefixed(ENV_PREFIX)
                .split("__")
                // The client's variables (cli/profile.rs), not server settings.
                .ignore(&[
                    "config",
                    "url",
                    "token",
                    "tenant",
                    "profile",
                    "client_config",
                ]),
        )
        .merge(Serialized::defaults(cli))
    }

    /// Extracts and validates; `dev` applies the `--dev` adjustments first.
    pub fn from_figment(fig: Figment, dev: bool) -> Result<Self, ConfigError> {
        let mut config: Config = fig.extract()?;
        config.apply_deprecated_names();
        config.dev = dev;
        if dev {
            config.delivery.allow_private_destinations = true;
        }
        config.validate()?;
        Ok(config)
    }

    /// The `master_key_file` setting, when set.
    pub fn master_key_file(&self) -> Option<&Path> {
        (!self.master_key_file.is_empty()).then(|| Path::new(self.master_key_file.as_str()))
    }

    /// The PostgreSQL URL when `store` names one.
    pub fn postgres_url(&self) -> Option<&str> {
        (self.store.starts_with("postgres://") || self.store.starts_with("postgresql://"))
            .then_some(self.store.as_str())
    }

    /// The defaults alone, as `--dev` would see them (tests and benchmarks).
    pub fn defaults_for_dev(data_dir: PathBuf, admin_token: String) -> Result<Self, ConfigError> {
        let mut config: Config = Figment::from(Toml::string(DEFAULT_TOML)).extract()?;
        config.data_dir = data_dir;
        config.admin_token = admin_token;
        config.dev = true;
        config.delivery.allow_private_destinations = true;
        config.validate()?;
        Ok(config)
    }

    /// Moves values given under deprecated names (the roadmap's) to their keys.
    fn apply_deprecated_names(&mut self) {
        let api = &mut self.api;
        if let Some(v) = api.max_payload_size.take() {
            api.max_payload_bytes = v;
            self.deprecations.push(
                "api.max_payload_size is deprecated; use api.max_payload_bytes \
                 (GATEPULSE_API__MAX_PAYLOAD_BYTES)"
                    .into(),
            );
        }
        if let Some(v) = api.max_inflight_global.take() {
            api.max_inflight_publishes = v;
            self.deprecations.push(
                "api.max_inflight_global is deprecated; use api.max_inflight_publishes \
                 (GATEPULSE_API__MAX_INFLIGHT_PUBLISHES)"
                    .into(),
            );
        }
    }

    /// Checks relations between keys that types alone cannot express.
    pub fn validate(&self) -> Result<(), ConfigError> {
        // In dev mode an empty token means "generate one" (done at start).
        if !self.dev && self.admin_token.len() < 16 {
            return Err(invalid(
                "admin_token",
                "must be set to at least 16 characters (GATEPULSE_ADMIN_TOKEN, or \
                 admin_token in the config file), or run `gp serve --dev`",
            ));
        }
        if self.dev && !self.admin_token.is_empty() && self.admin_token.len() < 16 {
            return Err(invalid("admin_token", "must be at least 16 characters"));
        }
        if !self.dev && self.master_key.trim().is_empty() && self.master_key_file.is_empty() {
            return Err(invalid(
                "master_key",
                "must be set: endpoint secrets and header values are stored encrypted \
                 under it. Generate one with `gp secrets generate-key` and pass it as \
                 GATEPULSE_MASTER_KEY (or master_key_file = a file holding it), or run \
                 `gp serve --dev`",
            ));
        }
        if let Err(e) = crate::crypto::keyring::parse_keys(&self.master_key) {
            return Err(invalid("master_key", e.to_string()));
        }
        if !self.api.metrics_token.is_empty() && self.api.metrics_token.len() < 16 {
            return Err(invalid(
                "api.metrics_token",
                "must be at least 16 characters",
            ));
        }
        if self.store != "redb" && self.postgres_url().is_none() {
            return Err(invalid(
                "store",
                format!(
                    "unknown store {:?}; expected \"redb\" or a postgres:// URL",
                    self.store
                ),
            ));
        }
        if self.postgres_url().is_some() {
            let pg = &self.postgres;
            positive("postgres.pool_size", pg.pool_size)?;
            positive("postgres.commit_max_batch", pg.commit_max_batch)?;
            positive("postgres.commit_concurrency", pg.commit_concurrency)?;
            if pg.commit_concurrency >= pg.pool_size {
                return Err(invalid(
                    "postgres.commit_concurrency",
                    "must be smaller than postgres.pool_size (claims and reads need connections too)",
                ));
            }
            if !pg.schema.is_empty()
                && !pg
                    .schema
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_')
            {
                return Err(invalid(
                    "postgres.schema",
                    "letters, digits and underscores only",
                ));
            }
        }
        let t = &self.tracing;
        if !(0.0..=1.0).contains(&t.sample_ratio) {
            return Err(invalid(
                "tracing.sample_ratio",
                "must be between 0.0 and 1.0",
            ));
        }
        positive("tracing.max_queue_spans", t.max_queue_spans)?;
        let node = self.cluster.node_id.trim();
        if !node.is_empty() && !crate::cluster::valid_node_id(node) {
            return Err(invalid(
                "cluster.node_id",
                "1 to 64 letters, digits, '.', '_' or '-'",
            ));
        }
        let c = &self.cluster;
        if c.leader_ttl_ms < 1000 {
            return Err(invalid("cluster.leader_ttl_ms", "at least 1000"));
        }
        if c.trust_margin_ms < 100 || c.trust_margin_ms >= c.leader_ttl_ms {
            return Err(invalid(
                "cluster.trust_margin_ms",
                "at least 100 and less than cluster.leader_ttl_ms",
            ));
        }
        if c.election_interval_ms == 0
            || c.election_interval_ms.saturating_mul(2) > c.leader_ttl_ms - c.trust_margin_ms
        {
            return Err(invalid(
                "cluster.election_interval_ms",
                "positive, and at most half of leader_ttl_ms - trust_margin_ms (a leader renews at least twice within its trust window)",
            ));
        }
        let api = &self.api;
        positive("api.max_body_bytes", api.max_body_bytes)?;
        positive("api.max_payload_bytes", api.max_payload_bytes)?;
        positive("api.max_batch_events", api.max_batch_events)?;
        positive("api.max_topic_bytes", api.max_topic_bytes)?;
        positive(
            "api.max_idempotency_key_bytes",
            api.max_idempotency_key_bytes,
        )?;
        positive(
            "api.max_topics_per_subscription",
            api.max_topics_per_subscription,
        )?;
        positive("api.max_inflight_publishes", api.max_inflight_publishes)?;
        if api.max_queue_depth_per_tenant == 0 {
            return Err(invalid(
                "api.max_queue_depth_per_tenant",
                "must be positive",
            ));
        }
        if !matches!(api.overload_status, 429 | 503) {
            return Err(invalid("api.overload_status", "must be 429 or 503"));
        }
        if api.max_payload_bytes > api.max_body_bytes {
            return Err(invalid(
                "api.max_payload_bytes",
                format!(
                    "{} is larger than api.max_body_bytes ({})",
                    api.max_payload_bytes, api.max_body_bytes
                ),
            ));
        }
        if let Err(e) = self.retention.schedule() {
            return Err(invalid("retention.compaction_cron", e.to_string()));
        }
        if !(1..=1_000_000).contains(&self.retention.batch_rows) {
            return Err(invalid("retention.batch_rows", "must be 1 to 1000000"));
        }
        if self.retention.batch_max_ms > 60_000 {
            return Err(invalid("retention.batch_max_ms", "must be 0 to 60000"));
        }
        if !(1..=65_536).contains(&self.redb.commit_max_batch) {
            return Err(invalid(
                "redb.commit_max_batch",
                "must be between 1 and 65536",
            ));
        }
        if !(1..=1 << 24).contains(&self.redb.max_queued_writes) {
            return Err(invalid(
                "redb.max_queued_writes",
                "must be between 1 and 16777216",
            ));
        }
        if self.redb.commit_max_wait_us > 100_000 {
            return Err(invalid(
                "redb.commit_max_wait_us",
                "must be at most 100000 (100 ms)",
            ));
        }
        let f = &self.filter;
        positive("filter.max_source_len", f.max_source_len)?;
        positive("filter.max_depth", f.max_depth)?;
        positive("filter.max_nodes", f.max_nodes)?;
        positive("filter.max_chain_terms", f.max_chain_terms)?;
        positive("filter.max_path_segments", f.max_path_segments)?;
        positive("filter.max_list_len", f.max_list_len)?;
        positive("filter.max_string_len", f.max_string_len)?;
        positive("filter.max_regex_size", f.max_regex_size)?;
        positive("filter.max_regex_dfa_size", f.max_regex_dfa_size)?;
        if f.max_depth > gatepulse_filter_dsl::HARD_MAX_DEPTH {
            return Err(invalid(
                "filter.max_depth",
                format!(
                    "must be at most {} (the filter language's hard cap)",
                    gatepulse_filter_dsl::HARD_MAX_DEPTH
                ),
            ));
        }
        if self.api.idle_timeout_secs != 0
            && self.api.idle_timeout_secs <= self.stream.keepalive_secs
        {
            return Err(invalid(
                "api.idle_timeout_secs",
                "must be 0 or longer than stream.keepalive_secs (idle streams would be cut)",
            ));
        }
        positive(
            "api.header_read_timeout_secs",
            self.api.header_read_timeout_secs as usize,
        )?;
        positive(
            "api.body_read_timeout_secs",
            self.api.body_read_timeout_secs as usize,
        )?;
        positive("api.max_connections", self.api.max_connections)?;
        positive(
            "api.max_connections_per_ip",
            self.api.max_connections_per_ip,
        )?;
        positive("api.max_replay_events", self.api.max_replay_events)?;
        positive("api.max_requeue", self.api.max_requeue)?;
        let proxy = &self.delivery.proxy_url;
        if !proxy.is_empty() {
            match url::Url::parse(proxy) {
                Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => {}
                _ => {
                    return Err(invalid(
                        "delivery.proxy_url",
                        "must be an http:// or https:// URL naming the proxy, or empty",
                    ));
                }
            }
        }
        let pl = &self.plugins;
        if pl.fuel == 0 || !(1..=60_000).contains(&pl.deadline_ms) {
            return Err(invalid(
                "plugins",
                "fuel must be positive and deadline_ms 1 to 60000",
            ));
        }
        if !(1..=4096).contains(&pl.memory_mib) || pl.max_instances == 0 {
            return Err(invalid(
                "plugins",
                "memory_mib must be 1 to 4096 and max_instances positive",
            ));
        }
        positive("plugins.max_module_bytes", pl.max_module_bytes)?;
        positive("plugins.max_output_bytes", pl.max_output_bytes)?;
        positive("plugins.max_concurrent_calls", pl.max_concurrent_calls)?;
        positive(
            "plugins.max_concurrent_compiles",
            pl.max_concurrent_compiles,
        )?;
        positive("plugins.max_per_tenant", pl.max_per_tenant)?;
        if pl.max_warm_total >= pl.max_instances as usize {
            return Err(invalid(
                "plugins.max_warm_total",
                "must be below plugins.max_instances (calls need free instances)",
            ));
        }
        if pl.max_bytes_per_tenant < pl.max_module_bytes as u64 {
            return Err(invalid(
                "plugins.max_bytes_per_tenant",
                "must be at least plugins.max_module_bytes",
            ));
        }
        let st = &self.stream;
        positive(
            "stream.backfill_max_events",
            st.backfill_max_events as usize,
        )?;
        if !(4096..=(256 << 20)).contains(&st.client_buffer_bytes) {
            return Err(invalid(
                "stream.client_buffer_bytes",
                "must be 4096 to 268435456",
            ));
        }
        if !(16..=65_536).contains(&st.hub_capacity) {
            return Err(invalid("stream.hub_capacity", "must be 16 to 65536"));
        }
        positive("stream.max_clients", st.max_clients)?;
        positive("stream.max_clients_per_tenant", st.max_clients_per_tenant)?;
        if !(1..=64).contains(&st.write_groups) {
            return Err(invalid("stream.write_groups", "must be 1 to 64"));
        }
        if st.min_write_interval_ms > 1000 {
            return Err(invalid(
                "stream.min_write_interval_ms",
                "must be at most 1000",
            ));
        }
        if !(1..=600_000).contains(&st.slow_client_timeout_ms) {
            return Err(invalid(
                "stream.slow_client_timeout_ms",
                "must be 1 to 600000",
            ));
        }
        if !(1..=3600).contains(&st.keepalive_secs) {
            return Err(invalid("stream.keepalive_secs", "must be 1 to 3600"));
        }
        if !(100..=600_000).contains(&st.retry_ms) {
            return Err(invalid("stream.retry_ms", "must be 100 to 600000"));
        }
        if st.worker_threads > 256 {
            return Err(invalid("stream.worker_threads", "must be 0 to 256"));
        }
        if st.worker_nice > 19 {
            return Err(invalid("stream.worker_nice", "must be 0 to 19"));
        }
        if self.api.write_timeout_secs > 3600 {
            return Err(invalid("api.write_timeout_secs", "must be at most 3600"));
        }
        let d = &self.delivery;
        if d.default_timeout_ms == 0 || d.default_timeout_ms > 120_000 {
            return Err(invalid(
                "delivery.default_timeout_ms",
                "must be 1 to 120000",
            ));
        }
        if d.retry_schedule_secs.len() > 50 {
            return Err(invalid("delivery.retry_schedule_secs", "at most 50 delays"));
        }
        if !(0.0..=1.0).contains(&d.retry_jitter) {
            return Err(invalid("delivery.retry_jitter", "must be between 0 and 1"));
        }
        if !(1..=1000).contains(&d.default_max_in_flight) {
            return Err(invalid(
                "delivery.default_max_in_flight",
                "must be 1 to 1000",
            ));
        }
        if d.max_in_flight_global == 0 {
            return Err(invalid("delivery.max_in_flight_global", "must be positive"));
        }
        if d.claim_batch == 0 || d.claim_batch > 10_000 {
            return Err(invalid("delivery.claim_batch", "must be 1 to 10000"));
        }
        if d.reaper_interval_secs == 0 {
            return Err(invalid("delivery.reaper_interval_secs", "must be positive"));
        }
        if d.circuit_cooldown_secs == 0 || d.circuit_max_cooldown_secs < d.circuit_cooldown_secs {
            return Err(invalid(
                "delivery.circuit_cooldown_secs",
                "must be positive and at most delivery.circuit_max_cooldown_secs",
            ));
        }
        Ok(())
    }

    pub fn idempotency_window(&self) -> Duration {
        Duration::from_secs(self.api.idempotency_window_secs)
    }

    pub fn shutdown_grace(&self) -> Duration {
        Duration::from_secs(self.shutdown_grace_secs)
    }
}

fn positive(key: &'static str, value: usize) -> Result<(), ConfigError> {
    if value == 0 {
        return Err(invalid(key, "must be positive"));
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::result_large_err)] // figment::Jail's closure signature
mod tests {
    use super::*;

    /// Loads with a test master key unless the test set one.
    fn load_with(jail: &mut figment::Jail, dev: bool) -> Result<Config, ConfigError> {
        if std::env::var_os("GATEPULSE_MASTER_KEY").is_none() {
            jail.set_env("GATEPULSE_MASTER_KEY", TEST_KEY);
        }
        load_bare(jail, dev)
    }

    fn load_bare(jail: &mut figment::Jail, dev: bool) -> Result<Config, ConfigError> {
        let _ = jail;
        Config::from_figment(Config::figment(None, &CliOverrides::default()), dev)
    }

    #[test]
    fn the_roadmaps_names_are_accepted_as_deprecated_aliases() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("GATEPULSE_ADMIN_TOKEN", "0123456789abcdef");
            jail.set_env("GATEPULSE_API__MAX_PAYLOAD_SIZE", "1000");
            jail.set_env("GATEPULSE_API__MAX_INFLIGHT_GLOBAL", "9");
            let config = load_with(jail, false).unwrap();
            assert_eq!(config.api.max_payload_bytes, 1000);
            assert_eq!(config.api.max_inflight_publishes, 9);
            assert_eq!(config.deprecations.len(), 2, "{:?}", config.deprecations);
            assert!(config.deprecations[0].contains("use api.max_payload_bytes"));
            Ok(())
        });
    }

    #[test]
    fn an_unknown_key_is_named_with_where_it_came_from() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("GATEPULSE_ADMIN_TOKEN", "0123456789abcdef");
            jail.set_env("GATEPULSE_API__BOGUS_KEY", "1");
            let err = load_with(jail, false).unwrap_err().to_string();
            assert!(err.contains("unknown key `api.bogus_key`"), "{err}");
            assert!(err.contains("environment"), "{err}");
            assert!(!err.contains("max_body_bytes"), "lists every key: {err}");
            Ok(())
        });
    }

    #[test]
    fn defaults_file_is_complete_and_dev_mode_validates() {
        let config = Config::defaults_for_dev(PathBuf::from("/tmp/x"), String::new()).unwrap();
        assert_eq!(config.listen.to_string(), "127.0.0.1:8080");
        assert!(config.delivery.allow_private_destinations);
    }

    const TEST_KEY: &str = "1:Z2F0ZXB1bHNlLXRlc3QtbWFzdGVyLWtleS12MS0zMmI=";

    #[test]
    fn a_master_key_is_required_outside_dev_mode_and_checked() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("GATEPULSE_ADMIN_TOKEN", "0123456789abcdef");
            let err = load_bare(jail, false).unwrap_err().to_string();
            assert!(
                err.contains("master_key") && err.contains("generate-key"),
                "{err}"
            );
            // Dev mode generates one instead.
            assert!(load_bare(jail, true).is_ok());
            jail.set_env("GATEPULSE_MASTER_KEY", "1:not-a-key");
            let err = load_bare(jail, false).unwrap_err().to_string();
            assert!(
                err.contains("master_key") && err.contains("base64"),
                "{err}"
            );
            jail.set_env("GATEPULSE_MASTER_KEY", "");
            jail.set_env("GATEPULSE_MASTER_KEY_FILE", "/run/secrets/gp-keys");
            let config = load_bare(jail, false).unwrap();
            assert_eq!(
                config.master_key_file(),
                Some(Path::new("/run/secrets/gp-keys"))
            );
            Ok(())
        });
    }

    #[test]
    fn env_overrides_nested_keys_and_names_bad_ones() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("GATEPULSE_ADMIN_TOKEN", "0123456789abcdef");
            jail.set_env("GATEPULSE_MASTER_KEY", TEST_KEY);
            jail.set_env("GATEPULSE_API__MAX_BATCH_EVENTS", "7");
            jail.set_env("GATEPULSE_DELIVERY__ALLOW_PRIVATE_DESTINATIONS", "true");
            let config = load_with(jail, false).unwrap();
            assert_eq!(config.api.max_batch_events, 7);
            assert!(config.delivery.allow_private_destinations);

            jail.set_env("GATEPULSE_API__MAX_BATCH_EVENTS", "lots");
            let err = load_with(jail, false)
                .unwrap_err()
                .to_string()
                .to_lowercase();
            assert!(err.contains("api.max_batch_events"), "{err}");

            jail.set_env("GATEPULSE_API__MAX_BATCH_EVENTS", "7");
            jail.set_env("GATEPULSE_API__MAX_BATCH_EVENT", "7");
            let err = load_with(jail, false)
                .unwrap_err()
                .to_string()
                .to_lowercase();
            assert!(err.contains("max_batch_event"), "{err}");
            Ok(())
        });
    }

    #[test]
    fn file_layer_sits_between_defaults_and_env() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "gp.toml",
                "admin_token = \"from-file-0123456789\"\nlisten = \"127.0.0.1:9999\"\n[redb]\ncommit_max_batch = 16\n",
            )?;
            jail.set_env("GATEPULSE_LISTEN", "127.0.0.1:7777");
            jail.set_env("GATEPULSE_MASTER_KEY", TEST_KEY);
            let fig = Config::figment(Some(Path::new("gp.toml")), &CliOverrides::default());
            let config = Config::from_figment(fig, false).unwrap();
            assert_eq!(config.admin_token, "from-file-0123456789");
            assert_eq!(config.listen.port(), 7777);
            assert_eq!(config.redb.commit_max_batch, 16);

            let cli = CliOverrides {
                listen: Some("127.0.0.1:6666".parse().unwrap()),
                data_dir: None,
            };
            let config =
                Config::from_figment(Config::figment(Some(Path::new("gp.toml")), &cli), false)
                    .unwrap();
            assert_eq!(config.listen.port(), 6666);
            Ok(())
        });
    }

    #[test]
    fn filter_defaults_equal_the_crate_limits() {
        let config = Config::defaults_for_dev(PathBuf::from("/tmp/x"), String::new()).unwrap();
        assert_eq!(
            config.filter.limits(),
            gatepulse_filter_dsl::Limits::default()
        );
        assert_eq!(config.filter, FilterConfig::default());
    }

    #[test]
    fn filter_keys_are_overridable_and_checked() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("GATEPULSE_ADMIN_TOKEN", "0123456789abcdef");
            jail.set_env("GATEPULSE_FILTER__MAX_SOURCE_LEN", "100");
            let config = load_with(jail, false).unwrap();
            assert_eq!(config.filter.limits().max_source_len, 100);

            jail.set_env("GATEPULSE_FILTER__MAX_DEPTH", "65");
            let err = load_with(jail, false).unwrap_err().to_string();
            assert!(err.contains("filter.max_depth"), "{err}");

            jail.set_env("GATEPULSE_FILTER__MAX_DEPTH", "8");
            jail.set_env("GATEPULSE_FILTER__MAX_DEPHT", "8");
            let err = load_with(jail, false)
                .unwrap_err()
                .to_string()
                .to_lowercase();
            assert!(err.contains("max_depht"), "{err}");
            Ok(())
        });
    }

    #[test]
    fn stream_write_groups_are_overridable_and_checked() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("GATEPULSE_ADMIN_TOKEN", "0123456789abcdef");
            assert_eq!(load_with(jail, false).unwrap().stream.write_groups, 8);
            jail.set_env("GATEPULSE_STREAM__WRITE_GROUPS", "16");
            assert_eq!(load_with(jail, false).unwrap().stream.write_groups, 16);
            for bad in ["0", "65"] {
                jail.set_env("GATEPULSE_STREAM__WRITE_GROUPS", bad);
                let err = load_with(jail, false).unwrap_err().to_string();
                assert!(err.contains("stream.write_groups"), "{err}");
            }
            Ok(())
        });
    }

    #[test]
    fn missing_admin_token_is_refused_outside_dev() {
        figment::Jail::expect_with(|jail| {
            let err = load_with(jail, false).unwrap_err().to_string();
            assert!(err.contains("admin_token"), "{err}");
            assert!(load_with(jail, true).is_ok());
            jail.set_env("GATEPULSE_STORE", "mysql://localhost/x");
            let err = load_with(jail, true).unwrap_err().to_string();
            assert!(err.contains("`store`"), "{err}");
            jail.set_env("GATEPULSE_STORE", "postgres://localhost/x");
            assert!(load_with(jail, true).is_ok());
            Ok(())
        });
    }
}
