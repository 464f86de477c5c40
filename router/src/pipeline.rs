//! The transform pipeline of a subscription (SPEC TR-5): mapping → plugins, run per
//! delivery before signing. This module turns a subscription's `transform` spec into
//! a compiled [`Pipeline`] (the mapping compiled, the plugins loaded into the sandbox)
//! and runs it; the mapping engine lives in `transform/`, the sandbox in
//! `plugin-host/`.
//!
//! Spec (the subscription's `transform` field):
//! `{"mapping"?: {"version": 1, "ops": [...]}, "plugins"?: [{"name", "version",
//! "config"?}], "on_error"?: "fail" | "deliver_original"}`. `fail` (the default) fails
//! the delivery closed: it goes to the DLQ with the stage's error on its attempt.
//! `deliver_original` fails open: the payload is sent untransformed.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;

use gatepulse_plugin_host::{CallError, Host, LoadError, Outcome, Plugin};
use gatepulse_transform::{CompileError, Context, Mapping, MappingLimits};
use serde::Deserialize;
use serde_json::Value;

use crate::ids::{SubscriptionId, TenantId};
use crate::store::{Event, Store, StoreError};
use crate::telemetry;

/// Most plugins one subscription may chain.
pub const MAX_PLUGINS: usize = 8;
/// Consecutive failed calls after which a plugin is disabled (until re-uploaded or the
/// server restarts) instead of running again.
pub const DISABLE_AFTER_FAILURES: u32 = 50;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct Spec {
    mapping: Option<Value>,
    #[serde(default)]
    plugins: Vec<PluginRef>,
    #[serde(default)]
    on_error: OnError,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct PluginRef {
    name: String,
    version: String,
    config: Option<Value>,
}

/// What a failing stage does to the delivery.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnError {
    /// Fail closed: the delivery goes to the DLQ with the error.
    #[default]
    Fail,
    /// Fail open: deliver the original payload.
    DeliverOriginal,
}

/// Why a transform spec was refused (at subscription create/update or preview).
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    #[error("transform: {0}")]
    Shape(String),
    #[error("transform mapping: {0}")]
    Mapping(#[from] CompileError),
    #[error("transform plugins/{index}: plugin {name}@{version} is not uploaded")]
    UnknownPlugin {
        index: usize,
        name: String,
        version: String,
    },
    #[error("transform plugins/{index}: {name}@{version} cannot be loaded: {reason}")]
    PluginLoad {
        index: usize,
        name: String,
        version: String,
        reason: String,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A plugin version of one tenant: the unit of health, warm instances and quotas.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PluginKey {
    pub tenant: TenantId,
    pub name: String,
    pub version: String,
}

/// A tenant's plugin version, loaded: shared by every subscription using it.
#[derive(Debug)]
struct Loaded {
    plugin: Arc<Plugin>,
    /// This plugin's share of the call slots: one busy plugin never takes them all.
    calls: Semaphore,
}

/// One plugin stage, loaded.
#[derive(Debug)]
struct Stage {
    key: PluginKey,
    loaded: Arc<Loaded>,
    config: Vec<u8>,
}

/// A compiled pipeline: cheap to share.
#[derive(Debug)]
pub struct Pipeline {
    mapping: Option<Mapping>,
    plugins: Vec<Stage>,
    pub on_error: OnError,
}

/// The result of running a pipeline on one event.
#[derive(Debug)]
pub enum Transformed {
    /// Send this body.
    Body(Vec<u8>),
    /// A plugin dropped the delivery: send nothing.
    Dropped { by: String },
}

/// A stage that failed, with what it said.
#[derive(Debug, Clone)]
pub struct StageFailure {
    /// `mapping` or `plugin:<name>@<version>`.
    pub stage: String,
    /// Stable machine-readable kind (`mapping_limit`, `plugin_out_of_fuel`, …).
    pub kind: &'static str,
    pub detail: String,
}

/// One stage's timing and outcome, for previews.
#[derive(Debug, Clone)]
pub struct StageReport {
    pub stage: String,
    pub took: Duration,
    pub error: Option<String>,
}

/// Health of one tenant's plugin version: consecutive failures, disabled flag.
#[derive(Debug, Default)]
struct Health {
    failures: u32,
    disabled: bool,
}

/// What a subscription's transform is, as the delivery engine needs to know it.
#[derive(Debug, Clone)]
pub enum Lookup {
    /// The subscription no longer exists: its deliveries must not be sent (they would
    /// go out without the transform they were created under).
    Deleted,
    /// The subscription has no transform: the payload is sent as published.
    Plain,
    /// The subscription's compiled transform.
    Transform(Arc<Pipeline>),
}

/// Most subscriptions whose lookup is cached; past it the cache starts over.
const MAX_CACHED: usize = 100_000;

/// How the pipelines share the machine (`[plugins]`).
#[derive(Debug, Clone)]
pub struct PipelineLimits {
    pub mapping: MappingLimits,
    /// Plugin calls running at once, all tenants; more wait their turn.
    pub max_concurrent_calls: usize,
    /// Plugin modules compiled at once (uploads and subscription saves).
    pub max_concurrent_compiles: usize,
}

/// Compiled pipelines per subscription and the plugin sandbox.
pub struct Pipelines {
    store: Arc<dyn Store>,
    host: Arc<Host>,
    mapping_limits: MappingLimits,
    cache: Mutex<HashMap<SubscriptionId, (TenantId, Lookup)>>,
    /// Bumped by every invalidation, so a lookup read before a change is never cached
    /// after it.
    generation: AtomicU64,
    /// Loaded plugins by tenant and version, shared by the subscriptions using them
    /// while any does.
    plugins: Mutex<HashMap<PluginKey, Weak<Loaded>>>,
    health: Mutex<HashMap<PluginKey, Health>>,
    /// Every plugin call runs on the blocking pool, never on a runtime thread; this
    /// bounds how many at once.
    calls: Semaphore,
    /// Call slots one plugin may hold at once (half of `calls`).
    calls_per_plugin: usize,
    compiles: Semaphore,
}

impl std::fmt::Debug for Pipelines {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pipelines").finish_non_exhaustive()
    }
}

impl Pipelines {
    pub fn new(store: Arc<dyn Store>, host: Arc<Host>, limits: PipelineLimits) -> Self {
        Self {
            store,
            host,
            mapping_limits: limits.mapping,
            cache: Mutex::new(HashMap::new()),
            generation: AtomicU64::new(0),
            plugins: Mutex::new(HashMap::new()),
            health: Mutex::new(HashMap::new()),
            calls: Semaphore::new(limits.max_concurrent_calls.max(1)),
            calls_per_plugin: (limits.max_concurrent_calls / 2).max(1),
            compiles: Semaphore::new(limits.max_concurrent_compiles.max(1)),
        }
    }

    pub fn host(&self) -> &Arc<Host> {
        &self.host
    }

    /// Validates and compiles a module on the blocking pool, at most
    /// `max_concurrent_compiles` at once (an upload, a subscription save).
    pub async fn load_module(&self, wasm: Vec<u8>) -> Result<Arc<Plugin>, LoadError> {
        let _permit = self
            .compiles
            .acquire()
            .await
            .map_err(|_| LoadError::Compile("the plugin host is shutting down".into()))?;
        let host = self.host.clone();
        tokio::task::spawn_blocking(move || host.load(&wasm))
            .await
            .map_err(|e| LoadError::Compile(format!("compiling: {e}")))?
    }

    /// The tenant's plugin version, loaded once and shared while in use.
    async fn plugin(&self, key: &PluginKey, index: usize) -> Result<Arc<Loaded>, SpecError> {
        if let Some(p) = self
            .plugins
            .lock()
            .ok()
            .and_then(|m| m.get(key).and_then(Weak::upgrade))
        {
            return Ok(p);
        }
        let Some(wasm) = self
            .store
            .get_plugin_module(&key.tenant, &key.name, &key.version)
            .await?
        else {
            return Err(SpecError::UnknownPlugin {
                index,
                name: key.name.clone(),
                version: key.version.clone(),
            });
        };
        let plugin = self
            .load_module(wasm)
            .await
            .map_err(|e| SpecError::PluginLoad {
                index,
                name: key.name.clone(),
                version: key.version.clone(),
                reason: e.to_string(),
            })?;
        let loaded = Arc::new(Loaded {
            plugin,
            calls: Semaphore::new(self.calls_per_plugin),
        });
        if let Ok(mut m) = self.plugins.lock() {
            m.retain(|_, w| w.strong_count() > 0);
            m.insert(key.clone(), Arc::downgrade(&loaded));
        }
        Ok(loaded)
    }

    /// Compiles a spec: the mapping, and every plugin loaded from the store.
    pub async fn compile(&self, tenant: &TenantId, spec: &Value) -> Result<Pipeline, SpecError> {
        let spec: Spec =
            serde_json::from_value(spec.clone()).map_err(|e| SpecError::Shape(e.to_string()))?;
        if spec.plugins.len() > MAX_PLUGINS {
            return Err(SpecError::Shape(format!(
                "at most {MAX_PLUGINS} plugins per subscription"
            )));
        }
        let mapping = spec
            .mapping
            .as_ref()
            .map(|m| Mapping::compile(m, &self.mapping_limits))
            .transpose()?;
        let mut plugins = Vec::with_capacity(spec.plugins.len());
        for (index, p) in spec.plugins.into_iter().enumerate() {
            let config = match &p.config {
                None => b"{}".to_vec(),
                Some(c) if c.is_object() => serde_json::to_vec(c).unwrap_or_default(),
                Some(_) => {
                    return Err(SpecError::Shape(format!(
                        "plugins/{index}/config must be a JSON object"
                    )));
                }
            };
            let key = PluginKey {
                tenant: tenant.clone(),
                name: p.name,
                version: p.version,
            };
            let loaded = self.plugin(&key, index).await?;
            plugins.push(Stage {
                key,
                loaded,
                config,
            });
        }
        Ok(Pipeline {
            mapping,
            plugins,
            on_error: spec.on_error,
        })
    }

    /// What a subscription's transform is: compiled on first use and kept until the
    /// subscription changes ([`Pipelines::invalidate`], called by the API on update and
    /// delete). A subscription that no longer exists is [`Lookup::Deleted`], never
    /// "no transform".
    pub async fn for_subscription(
        &self,
        tenant: &TenantId,
        id: &SubscriptionId,
    ) -> Result<Lookup, SpecError> {
        if let Some((_, lookup)) = self.cache.lock().ok().and_then(|c| c.get(id).cloned()) {
            return Ok(lookup);
        }
        let generation = self.generation.load(Ordering::SeqCst);
        let lookup = match self.store.get_subscription(tenant, id).await? {
            None => Lookup::Deleted,
            Some(sub) => match &sub.transform {
                None => Lookup::Plain,
                Some(spec) => Lookup::Transform(Arc::new(self.compile(tenant, spec).await?)),
            },
        };
        if let Ok(mut c) = self.cache.lock()
            && self.generation.load(Ordering::SeqCst) == generation
        {
            if c.len() >= MAX_CACHED {
                c.clear();
            }
            c.insert(id.clone(), (tenant.clone(), lookup.clone()));
        }
        Ok(lookup)
    }

    /// Forgets a subscription's compiled pipeline.
    pub fn invalidate(&self, id: &SubscriptionId) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        if let Ok(mut c) = self.cache.lock() {
            c.remove(id);
        }
    }

    /// Forgets every compiled pipeline of a tenant (a plugin version was deleted: the
    /// subscriptions naming it must compile again, and fail closed).
    pub fn invalidate_tenant(&self, tenant: &TenantId) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        if let Ok(mut c) = self.cache.lock() {
            c.retain(|_, (t, _)| t != tenant);
        }
    }

    /// Runs the pipeline on an event. A plugin whose last call was fast runs on this
    /// task; any other call runs on the blocking pool (every call is bounded by fuel
    /// and a deadline), so a hostile plugin never stalls other deliveries' tasks more
    /// than once.
    pub async fn run(
        &self,
        pipeline: &Arc<Pipeline>,
        event: &Event,
        mut reports: Option<&mut Vec<StageReport>>,
    ) -> Result<Transformed, StageFailure> {
        let mut body: Vec<u8> = event.payload.get().as_bytes().to_vec();
        if let Some(mapping) = &pipeline.mapping {
            let started = Instant::now();
            let result = apply_mapping(mapping, event);
            let took = started.elapsed();
            telemetry::record_transform_stage("mapping", took);
            if let Some(r) = reports.as_deref_mut() {
                r.push(StageReport {
                    stage: "mapping".into(),
                    took,
                    error: result.as_ref().err().map(|f| f.detail.clone()),
                });
            }
            match result {
                Ok(b) => body = b,
                Err(f) => {
                    telemetry::record_transform_error("mapping", f.kind);
                    return Err(f);
                }
            }
        }
        for stage in &pipeline.plugins {
            let label = format!("plugin:{}@{}", stage.key.name, stage.key.version);
            let started = Instant::now();
            let result = self.call(stage, event, &body, &label).await;
            let took = started.elapsed();
            telemetry::record_transform_stage("plugin", took);
            if let Some(r) = reports.as_deref_mut() {
                r.push(StageReport {
                    stage: label.clone(),
                    took,
                    error: result.as_ref().err().map(|f| f.detail.clone()),
                });
            }
            match result {
                Ok(Outcome::Emit(out)) => body = out,
                Ok(Outcome::Pass) => {}
                Ok(Outcome::Drop) => return Ok(Transformed::Dropped { by: label }),
                Err(f) => {
                    telemetry::record_transform_error("plugin", f.kind);
                    return Err(f);
                }
            }
        }
        Ok(Transformed::Body(body))
    }

    async fn call(
        &self,
        stage: &Stage,
        event: &Event,
        body: &[u8],
        label: &str,
    ) -> Result<Outcome, StageFailure> {
        let disabled = self
            .health
            .lock()
            .ok()
            .and_then(|h| h.get(&stage.key).map(|h| h.disabled))
            .unwrap_or(false);
        if disabled {
            return Err(StageFailure {
                stage: label.to_owned(),
                kind: "plugin_disabled",
                detail: format!(
                    "{label} is disabled after {DISABLE_AFTER_FAILURES} consecutive failures; upload a fixed version"
                ),
            });
        }
        let input = plugin_input(event, body);
        let unavailable = |e: String| StageFailure {
            stage: label.to_owned(),
            kind: "plugin_trap",
            detail: format!("{label}: {e}"),
        };
        // Plugins never run on a runtime thread: a payload that makes one slow holds
        // a blocking-pool thread for at most its deadline, never the API's workers.
        let _own = stage
            .loaded
            .calls
            .acquire()
            .await
            .map_err(|e| unavailable(e.to_string()))?;
        let _permit = self
            .calls
            .acquire()
            .await
            .map_err(|e| unavailable(e.to_string()))?;
        let plugin = stage.loaded.plugin.clone();
        let config = stage.config.clone();
        let report = tokio::task::spawn_blocking(move || plugin.call(&input, &config))
            .await
            .map_err(|e| unavailable(e.to_string()))?;
        for line in &report.logs {
            tracing::info!(tenant_id = %stage.key.tenant, plugin = label, level = line.level,
                message = %line.message, "plugin log");
        }
        let ok = report.outcome.is_ok();
        if let Ok(mut health) = self.health.lock() {
            let h = health.entry(stage.key.clone()).or_default();
            if ok {
                h.failures = 0;
            } else {
                h.failures += 1;
                if h.failures >= DISABLE_AFTER_FAILURES && !h.disabled {
                    h.disabled = true;
                    telemetry::record_plugin_disabled();
                    tracing::error!(
                        tenant_id = %stage.key.tenant,
                        plugin = label,
                        failures = h.failures,
                        "plugin disabled: it keeps failing"
                    );
                }
            }
        }
        report.outcome.map_err(|e: CallError| StageFailure {
            stage: label.to_owned(),
            kind: e.kind(),
            detail: format!("{label}: {e}"),
        })
    }

    /// Forgets the health record of a tenant's plugin version (a re-upload gets a
    /// fresh start).
    pub fn reset_health(&self, key: &PluginKey) {
        if let Ok(mut h) = self.health.lock() {
            h.remove(key);
        }
    }

    /// Whether a tenant's plugin version is disabled after repeated failures.
    pub fn is_disabled(&self, key: &PluginKey) -> bool {
        self.health
            .lock()
            .ok()
            .and_then(|h| h.get(key).map(|h| h.disabled))
            .unwrap_or(false)
    }
}

fn apply_mapping(mapping: &Mapping, event: &Event) -> Result<Vec<u8>, StageFailure> {
    let failure = |kind: &'static str, detail: String| StageFailure {
        stage: "mapping".into(),
        kind,
        detail,
    };
    let payload: Value = serde_json::from_str(event.payload.get())
        .map_err(|e| failure("mapping_bad_payload", format!("mapping: payload: {e}")))?;
    let created = crate::clock::rfc3339(event.created_at);
    let mut ctx = Context::new(&event.topic);
    ctx.meta.id = Some(event.id.as_str());
    ctx.meta.time = Some(&created);
    mapping
        .apply_to_vec(payload, &ctx)
        .map_err(|limited| failure("mapping_limit", format!("mapping: {}", limited.detail)))
}

/// The input document of a plugin call (ABI v1): the event's fields, then the
/// current body (already JSON) spliced in as `payload` without re-parsing it.
fn plugin_input(event: &Event, body: &[u8]) -> Vec<u8> {
    #[derive(serde::Serialize)]
    struct Head<'a> {
        topic: &'a str,
        event_id: &'a str,
        created_at: String,
    }
    let mut input = Vec::with_capacity(body.len() + event.topic.len() + 96);
    let head = Head {
        topic: &event.topic,
        event_id: event.id.as_str(),
        created_at: crate::clock::rfc3339(event.created_at),
    };
    // Serializing borrowed strings into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut input, &head);
    input.pop(); // the closing brace
    input.extend_from_slice(b",\"payload\":");
    input.extend_from_slice(body);
    input.push(b'}');
    input
}

/// Compiled pipelines follow subscription and plugin changes from the commit feed.
impl crate::store::feed::FeedListener for Pipelines {
    fn committed(&self, batch: &crate::store::feed::Committed) {
        use crate::store::feed::Change;
        for change in &batch.changes {
            match change {
                Change::Subscription { id, .. } => self.invalidate(id),
                // A subscription saved meanwhile must compile again (and fail closed),
                // and a re-upload of the same version starts with a clean record.
                Change::Plugin {
                    tenant,
                    name,
                    version,
                } => {
                    self.invalidate_tenant(tenant);
                    self.reset_health(&PluginKey {
                        tenant: tenant.clone(),
                        name: name.clone(),
                        version: version.clone(),
                    });
                }
                Change::Endpoint { .. } | Change::ApiKey { .. } => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plugin_input_embeds_the_body_as_payload() {
        let event = Event {
            record_version: 1,
            id: crate::ids::EventId::generate(0),
            tenant_id: TenantId::generate(0),
            cursor: 1,
            topic: "a.b".into(),
            payload: serde_json::value::RawValue::from_string("{\"x\":1}".into()).unwrap(),
            idempotency_key: None,
            created_at: 0,
            traceparent: None,
        };
        let input = plugin_input(&event, br#"{"y":[1,2]}"#);
        let v: Value = serde_json::from_slice(&input).unwrap();
        assert_eq!(v["topic"], "a.b");
        assert_eq!(v["payload"]["y"][1], 2);
        assert_eq!(v["created_at"], "1970-01-01T00:00:00.000Z");
    }
}
