//! The server entry point, [`run`], used by `gp serve`, tests and benchmarks alike.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;

use crate::api::{self, AppInner, AppState};
use crate::auth::{Authenticator, Scope};
use crate::config::Config;
use crate::crypto;
use crate::ids::TenantId;
use crate::ingest::{Ingest, IngestLimits};
use crate::store::{self, RECORD_VERSION, Store, StoreError, Tenant};
use crate::{clock, telemetry};

/// Dev-mode credentials, kept so that restarts print the same ones.
pub const DEV_CREDENTIALS_FILE: &str = "dev-credentials.json";

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("data dir {path}: {source}")]
    DataDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("secrets: {0}")]
    Secrets(#[from] crate::secrets::SecretsError),
    #[error("dev bootstrap: {0}")]
    Dev(String),
    #[error("http server: {0}")]
    Http(std::io::Error),
    #[error(transparent)]
    Tracing(#[from] crate::otel::TracingError),
    #[error(transparent)]
    Cluster(#[from] crate::cluster::ClusterError),
}

/// Dev-mode credentials as written to the data dir.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DevCredentials {
    pub admin_token: String,
    pub tenant_id: String,
    pub api_key: String,
}

/// Runs the server on `listener` until `shutdown` resolves, then finishes in-flight
/// requests (bounded by `shutdown_grace_secs`) and closes the store.
pub async fn run(
    mut config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    std::fs::create_dir_all(&config.data_dir).map_err(|source| ServeError::DataDir {
        path: config.data_dir.clone(),
        source,
    })?;
    for note in &config.deprecations {
        tracing::warn!(deprecated = %note, "configuration uses a deprecated name");
    }
    // Caches and live views follow what the store commits, on whichever node.
    let feed = store::feed::CommitFeed::new();
    let dyn_store = store::open(&config, feed.clone()).await?;
    // Before anything reads a secret: every stored key version must be configured, and
    // a store from before encryption at rest gets its secrets sealed now.
    let (keys, dev_key_file) = crate::secrets::load_keyring(
        &config.master_key,
        config.master_key_file(),
        config.dev.then_some(config.data_dir.as_path()),
    )?;
    let keys = Arc::new(keys);
    let prepared = crate::secrets::prepare(dyn_store.as_ref(), &keys).await?;
    tracing::info!(
        key_version = keys.current_version(),
        configured = ?keys.versions(),
        endpoints = prepared.census.endpoints,
        migrated = prepared.migrated,
        "master keys ready"
    );

    let dev = if config.dev {
        let creds = dev_bootstrap(&config, dyn_store.as_ref()).await?;
        config.admin_token = creds.admin_token.clone();
        Some(creds)
    } else {
        None
    };
    let addr = listener.local_addr().map_err(ServeError::Http)?;
    if let Some(creds) = &dev {
        print_dev_banner(
            &addr.to_string(),
            &config.data_dir,
            creds,
            dev_key_file.as_deref(),
        );
    }

    let config = Arc::new(config);
    let ready = Arc::new(AtomicBool::new(false));
    let ingest = Arc::new(
        Ingest::new(
            dyn_store.clone(),
            IngestLimits {
                max_payload_bytes: config.api.max_payload_bytes,
                max_topic_bytes: config.api.max_topic_bytes,
                max_idempotency_key_bytes: config.api.max_idempotency_key_bytes,
                idempotency_window_ms: i64::try_from(config.idempotency_window().as_millis())
                    .unwrap_or(i64::MAX),
                max_queue_depth_per_tenant: config.api.max_queue_depth_per_tenant,
                max_inflight_publishes: config.api.max_inflight_publishes,
            },
        )
        .with_filter_limits(config.filter.limits()),
    );
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let host = gatepulse_plugin_host::Host::new(
        config
            .plugins
            .limits(config.api.max_payload_bytes.saturating_mul(2)),
    )
    .map_err(|e| ServeError::Http(std::io::Error::other(e.to_string())))?;
    let pipelines = Arc::new(crate::pipeline::Pipelines::new(
        dyn_store.clone(),
        Arc::new(host),
        crate::pipeline::PipelineLimits {
            mapping: gatepulse_transform::MappingLimits {
                max_output_bytes: config.api.max_payload_bytes,
                ..gatepulse_transform::MappingLimits::default()
            },
            max_concurrent_calls: config.plugins.max_concurrent_calls,
            max_concurrent_compiles: config.plugins.max_concurrent_compiles,
        },
    ));
    let hub = Arc::new(crate::stream::hub::StreamHub::new(
        crate::stream::session::Streams::hub_config(&config.stream),
    ));
    let signal = Arc::new(store::QueueSignal::default());
    let tracer = crate::otel::Tracer::start(&config.tracing, &|name| std::env::var(name).ok())?;
    let node = crate::cluster::node_id(&config)?;
    tracing::info!(node_id = %node, mode = ?config.cluster.mode, "this node");
    let leadership =
        crate::cluster::Leadership::new(node, config.cluster.mode, config.postgres_url().is_some());
    // The first beat runs before anything acts as leader: a single node leads at once.
    let (leave_tx, leave_rx) = tokio::sync::watch::channel(false);
    let election = crate::cluster::start(
        dyn_store.clone(),
        leadership.clone(),
        crate::cluster::Election::from_config(&config.cluster, addr.to_string()),
        leave_rx,
    )
    .await;
    let (dispatch, dispatcher) = crate::dispatch::start(
        &config,
        crate::dispatch::Parts {
            store: dyn_store.clone(),
            keys: keys.clone(),
            pipelines: pipelines.clone(),
            signal: signal.clone(),
            tracer: tracer.clone(),
            leadership: leadership.clone(),
        },
        stop_rx.clone(),
    )
    .map_err(|e| ServeError::Http(std::io::Error::other(e)))?;
    feed.subscribe(hub.clone());
    feed.subscribe(signal);
    feed.subscribe(ingest.clone());
    feed.subscribe(pipelines.clone());
    feed.subscribe(Arc::new(dispatch.clone()));
    let retention = crate::retention::start(
        dyn_store.clone(),
        config.retention.clone(),
        leadership.clone(),
        stop_rx.clone(),
    );
    let auth = Authenticator::new(dyn_store.clone(), &config.admin_token);
    feed.subscribe(auth.key_cache());
    let streams = Arc::new(crate::stream::session::Streams::new(
        config.stream.clone(),
        hub,
        stop_rx.clone(),
    ));
    // Revoked keys end the streams they opened.
    feed.subscribe(streams.clone());
    // Leadership changes go to the streams that asked for them.
    {
        let mut view = leadership.subscribe();
        let (streams, node) = (streams.clone(), leadership.node().to_owned());
        tokio::spawn(async move {
            let mut last = (None, 0);
            while view.changed().await.is_ok() {
                let now = view.borrow_and_update().clone();
                if (now.leader.clone(), now.term) != last {
                    last = (now.leader.clone(), now.term);
                    streams.announce_cluster(&node, &now);
                }
            }
        });
    }
    let state = AppState::new(AppInner {
        auth,
        config: config.clone(),
        store: dyn_store.clone(),
        ingest,
        keys,
        rotation: Arc::default(),
        dispatch,
        metrics: telemetry::metrics_handle(),
        ready: ready.clone(),
        pipelines,
        streams: streams.clone(),
        tracer,
        leadership,
    });
    let app = api::app(state);
    let stream_runtime = StreamRuntime(Some(
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(match config.stream.worker_threads {
                0 => std::thread::available_parallelism().map_or(2, std::num::NonZero::get),
                n => n,
            })
            .thread_name("gp-stream")
            .on_thread_start(lower_priority(config.stream.worker_nice))
            .enable_all()
            .build()
            .map_err(ServeError::Http)?,
    ));
    let lane = api::listener::StreamLane::new(stream_runtime.handle());

    tokio::spawn(async move {
        shutdown.await;
        let _ = stop_tx.send(true);
    });
    let conns = api::listener::ConnConfig::from_api(&config.api);
    let ready_flag = ready.clone();
    let mut stopping = stop_rx.clone();
    tokio::spawn(async move {
        let _ = stopping.wait_for(|stop| *stop).await;
        ready_flag.store(false, Ordering::Release);
        tracing::info!("shutdown requested; finishing in-flight requests");
    });
    let server = api::listener::serve(listener, app, Some(lane), conns, stop_rx.clone());
    ready.store(true, Ordering::Release);
    tracing::info!(%addr, data_dir = %config.data_dir.display(), "gatepulse listening");

    let grace = config.shutdown_grace();
    let mut deadline = stop_rx;
    let result = tokio::select! {
        () = server => Ok(()),
        () = async move {
            let _ = deadline.wait_for(|stop| *stop).await;
            tokio::time::sleep(grace).await;
        } => {
            tracing::warn!(grace_secs = grace.as_secs(), "grace period over; closing remaining connections");
            Ok(())
        }
    };
    if let Some(task) = retention {
        task.abort();
    }
    // The dispatcher finishes in-flight attempts within the same grace period.
    if let Err(e) = dispatcher.await {
        tracing::error!(error = %e, "dispatcher ended abnormally");
    }
    // Its sends are done: the leadership is handed back, so another node takes over
    // at its next beat instead of after the leadership's expiry.
    let _ = leave_tx.send(true);
    if tokio::time::timeout(std::time::Duration::from_secs(5), election)
        .await
        .is_err()
    {
        tracing::warn!("leaving the cluster took too long; the leadership expires by itself");
    }
    // Every write that was acknowledged is already durable; stop the writer.
    let closing = dyn_store.clone();
    let _ = tokio::task::spawn_blocking(move || closing.close()).await;
    // Its sessions ended with the stop signal; what is left are idle connections.
    drop(stream_runtime);
    tracing::info!("gatepulse stopped");
    result
}

/// Creates (once) the default tenant and an all-scopes key; returns the credentials
/// to print. An admin token from the configuration is used as given.
async fn dev_bootstrap(config: &Config, store: &dyn Store) -> Result<DevCredentials, ServeError> {
    let path = config.data_dir.join(DEV_CREDENTIALS_FILE);
    let saved: Option<DevCredentials> = std::fs::read(&path)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok());
    if let Some(saved) = &saved
        && let Some(id) = TenantId::parse(&saved.tenant_id)
        && store.get_tenant(&id).await?.is_some()
    {
        let mut creds = saved.clone();
        if !config.admin_token.is_empty() {
            creds.admin_token = config.admin_token.clone();
        }
        return Ok(creds);
    }
    let now = clock::now_ms();
    let tenant = Tenant {
        record_version: RECORD_VERSION,
        id: TenantId::generate(now),
        name: "default".into(),
        created_at: now,
        retention: Default::default(),
    };
    // Recorded as GatePulse's own acts, like any tenant and key an admin creates.
    let created = crate::audit::Intent {
        tenant: Some(tenant.id.clone()),
        action: "tenant.create",
        resource: crate::audit::AuditResource::new("tenant", &tenant.id),
        details: serde_json::json!({"name": tenant.name, "dev": true}),
    };
    crate::audit::as_system(created, store.create_tenant(tenant.clone())).await?;
    let (key, secret) = api::tenants::new_key(tenant.id.clone(), "dev".into(), Scope::ALL.to_vec())
        .map_err(|e| ServeError::Dev(e.detail))?;
    let issued = crate::audit::Intent {
        tenant: Some(tenant.id.clone()),
        action: "api_key.create",
        resource: crate::audit::AuditResource::new("api_key", &key.id),
        details: serde_json::json!({"name": key.name, "scopes": key.scopes, "dev": true}),
    };
    crate::audit::as_system(issued, store.create_api_key(key)).await?;
    let generated_admin = saved
        .map(|s| s.admin_token)
        .unwrap_or_else(crypto::generate_admin_token);
    let stored = DevCredentials {
        admin_token: generated_admin,
        tenant_id: tenant.id.to_string(),
        api_key: secret,
    };
    write_private(
        &path,
        &serde_json::to_vec_pretty(&stored).unwrap_or_default(),
    )
    .map_err(|e| ServeError::Dev(format!("writing {}: {e}", path.display())))?;
    let mut creds = stored;
    if !config.admin_token.is_empty() {
        creds.admin_token = config.admin_token.clone();
    }
    Ok(creds)
}

/// Writes a file only its owner can read (mode 0600 on Unix), synced.
pub(crate) fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

fn print_dev_banner(addr: &str, data_dir: &Path, creds: &DevCredentials, key_file: Option<&Path>) {
    let master = key_file.map_or_else(
        || "as configured".to_owned(),
        |p| format!("{} (generated; keep it with the data dir)", p.display()),
    );
    let banner = format!(
        "\nGatePulse dev mode (embedded store in {dir}; private destinations allowed)\n\
         \n  url          http://{addr}\
         \n  console      http://{addr}/console/  (sign in with the api key or the admin token)\
         \n  admin token  {admin}\
         \n  tenant       {tenant}  (\"default\")\
         \n  api key      {key}  (all scopes)\
         \n  master key   {master}\
         \n\nTry it:\
         \n  curl -s -X POST http://{addr}/v1/events -H 'Authorization: Bearer {key}' \\\
         \n    -H 'Content-Type: application/json' -d '{{\"topic\":\"hello.world\",\"payload\":{{\"hi\":1}}}}'\n",
        dir = data_dir.display(),
        admin = creds.admin_token,
        tenant = creds.tenant_id,
        key = creds.api_key,
    );
    // One write, and a closed stdout (`gp serve --dev | head`) is not a reason to stop
    // serving: println! would panic on EPIPE, and its per-piece writes let a reader see
    // part of the banner and go.
    use std::io::Write;
    if let Err(e) = writeln!(std::io::stdout().lock(), "{banner}") {
        tracing::warn!(error = %e, "cannot print the dev banner to stdout");
    }
}

/// Raises the calling thread's nice value by `by` (Linux: nice is per thread).
fn lower_priority(by: u8) -> impl Fn() + Send + Sync + 'static {
    move || {
        if by == 0 {
            return;
        }
        let now = rustix::process::getpriority_process(None).unwrap_or(0);
        if let Err(e) = rustix::process::setpriority_process(None, now + i32::from(by)) {
            tracing::debug!(error = %e, "cannot lower the stream threads' priority");
        }
    }
}

/// The runtime serving stream connections. Dropped (on any return from `run`) it
/// stops without waiting: a runtime may not block inside another one's task.
struct StreamRuntime(Option<tokio::runtime::Runtime>);

impl StreamRuntime {
    fn handle(&self) -> tokio::runtime::Handle {
        match &self.0 {
            Some(rt) => rt.handle().clone(),
            None => tokio::runtime::Handle::current(),
        }
    }
}

impl Drop for StreamRuntime {
    fn drop(&mut self) {
        if let Some(rt) = self.0.take() {
            rt.shutdown_background();
        }
    }
}
