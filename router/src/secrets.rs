//! The sealed fields of endpoint records (signing secrets, `v1a` signing keys, header
//! values) and their life under the master keys
//! (SPEC SEC-2): sealing on write, opening for the dispatcher and the API, the check
//! at start (every stored version has its key), the migration of a store written
//! before encryption at rest, and online re-encryption under the newest key
//! (rotation). The cryptography itself is [`crate::crypto::keyring`]; this module
//! decides what is sealed and walks the store.
//!
//! Endpoint `record_version` 2 means its header values are sealed; version 1 records
//! (written before encryption at rest) hold them in plain text and their secrets in
//! the plain format, and are sealed at start.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde::Serialize;

use crate::crypto::{Aad, CryptoError, Field, KeyError, Keyring, Sealing};
use crate::ids::{EndpointId, TenantId};
use crate::store::{Endpoint, PageRequest, SealedSecret, Store, StoreError};

/// `record_version` of endpoint records whose header values are sealed.
pub const ENDPOINT_RECORD_VERSION: u32 = 2;
/// File `gp serve --dev` keeps its generated master key in, inside the data dir.
pub const DEV_KEY_FILE: &str = "master.key";
/// Endpoints read and resealed per batch by the migration and by rotation.
const BATCH: usize = 100;

#[derive(Debug, thiserror::Error)]
pub enum SecretsError {
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error(
        "the store holds secrets sealed with master key version(s) {}, which are not \
         configured: add them to `master_key` (GATEPULSE_MASTER_KEY) or `master_key_file` \
         (the highest version seals new secrets; keep older ones until `gp secrets rotate` \
         has finished)",
        list(.0)
    )]
    MissingKeys(Vec<u32>),
    #[error("endpoint {endpoint} of tenant {tenant}: {source}")]
    Record {
        tenant: String,
        endpoint: String,
        source: CryptoError,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("writing {path}: {source}")]
    DevKey {
        path: PathBuf,
        source: std::io::Error,
    },
}

fn list(versions: &[u32]) -> String {
    let v: Vec<String> = versions.iter().map(u32::to_string).collect();
    v.join(", ")
}

/// The master keys a server runs with: the configured ones; in dev mode without any,
/// a key generated once and kept in `<data_dir>/master.key` (returned as the second
/// value, to be printed).
pub fn load_keyring(
    inline: &str,
    file: Option<&Path>,
    dev_data_dir: Option<&Path>,
) -> Result<(Keyring, Option<PathBuf>), SecretsError> {
    match (inline.trim().is_empty() && file.is_none(), dev_data_dir) {
        (true, Some(dir)) => {
            let path = dir.join(DEV_KEY_FILE);
            if !path.exists() {
                let entry = format!(
                    "# GatePulse dev master key (gp serve --dev). Not for production.\n{}\n",
                    crate::crypto::generate_key(1)
                );
                crate::server::write_private(&path, entry.as_bytes()).map_err(|source| {
                    SecretsError::DevKey {
                        path: path.clone(),
                        source,
                    }
                })?;
            }
            Ok((Keyring::load("", Some(&path))?, Some(path)))
        }
        _ => Ok((Keyring::load(inline, file)?, None)),
    }
}

fn aad<'a>(e: &'a Endpoint, field: Field<'a>) -> Aad<'a> {
    Aad {
        tenant: e.tenant_id.as_str(),
        endpoint: e.id.as_str(),
        field,
    }
}

fn record_error(e: &Endpoint) -> impl FnOnce(CryptoError) -> SecretsError + '_ {
    |source| SecretsError::Record {
        tenant: e.tenant_id.to_string(),
        endpoint: e.id.to_string(),
        source,
    }
}

/// Seals a new signing secret of endpoint `endpoint` of `tenant`.
pub fn seal_secret(
    keys: &Keyring,
    tenant: &TenantId,
    endpoint: &EndpointId,
    secret: &str,
    now: i64,
) -> Result<SealedSecret, CryptoError> {
    let aad = Aad {
        tenant: tenant.as_str(),
        endpoint: endpoint.as_str(),
        field: Field::Secret,
    };
    Ok(SealedSecret {
        sealed: keys.seal(aad, secret.as_bytes())?,
        created_at: now,
        expires_at: None,
    })
}

/// Opens one of `endpoint`'s signing secrets.
pub fn open_secret(
    keys: &Keyring,
    endpoint: &Endpoint,
    secret: &SealedSecret,
) -> Result<String, CryptoError> {
    keys.open_string(aad(endpoint, Field::Secret), &secret.sealed)
}

/// Seals a new `whsk_` signing key (`v1a`) of endpoint `endpoint` of `tenant`.
pub fn seal_signing_key(
    keys: &Keyring,
    tenant: &TenantId,
    endpoint: &EndpointId,
    signing_key: &str,
    now: i64,
) -> Result<SealedSecret, CryptoError> {
    let aad = Aad {
        tenant: tenant.as_str(),
        endpoint: endpoint.as_str(),
        field: Field::SigningKey,
    };
    Ok(SealedSecret {
        sealed: keys.seal(aad, signing_key.as_bytes())?,
        created_at: now,
        expires_at: None,
    })
}

/// Opens one of `endpoint`'s signing keys.
pub fn open_signing_key(
    keys: &Keyring,
    endpoint: &Endpoint,
    key: &SealedSecret,
) -> Result<String, CryptoError> {
    keys.open_string(aad(endpoint, Field::SigningKey), &key.sealed)
}

/// Custom headers of endpoint `endpoint` of `tenant` with each value sealed, as the
/// record holds them (with `record_version` [`ENDPOINT_RECORD_VERSION`]).
pub fn seal_headers(
    keys: &Keyring,
    tenant: &TenantId,
    endpoint: &EndpointId,
    plain: BTreeMap<String, String>,
) -> Result<BTreeMap<String, String>, CryptoError> {
    plain
        .into_iter()
        .map(|(name, value)| {
            let aad = Aad {
                tenant: tenant.as_str(),
                endpoint: endpoint.as_str(),
                field: Field::Header(&name),
            };
            let sealed = keys.seal(aad, value.as_bytes())?;
            Ok((name, sealed))
        })
        .collect()
}

/// `endpoint`'s custom headers with their values opened.
pub fn open_headers(
    keys: &Keyring,
    endpoint: &Endpoint,
) -> Result<BTreeMap<String, String>, CryptoError> {
    if endpoint.record_version < ENDPOINT_RECORD_VERSION {
        return Ok(endpoint.headers.clone());
    }
    endpoint
        .headers
        .iter()
        .map(|(name, sealed)| {
            let value = keys.open_string(aad(endpoint, Field::Header(name)), sealed)?;
            Ok((name.clone(), value))
        })
        .collect()
}

/// How every sealed value of one endpoint is sealed (`Plain` for unsealed headers of
/// an old record).
fn sealings(e: &Endpoint) -> Result<Vec<Sealing>, CryptoError> {
    let mut out = Vec::with_capacity(e.secrets.len() + e.signing_keys.len() + e.headers.len());
    for s in e.secrets.iter().chain(&e.signing_keys) {
        out.push(Keyring::sealing(&s.sealed)?);
    }
    if e.record_version < ENDPOINT_RECORD_VERSION {
        out.extend(e.headers.iter().map(|_| Sealing::Plain));
    } else {
        for v in e.headers.values() {
            out.push(Keyring::sealing(v)?);
        }
    }
    Ok(out)
}

/// `e` with every sealed value sealed under the current key, or `None` when it is
/// already.
fn resealed(keys: &Keyring, e: &Endpoint) -> Result<Option<Endpoint>, SecretsError> {
    let current = Sealing::Key(keys.current_version());
    let stale = sealings(e)
        .map_err(record_error(e))?
        .iter()
        .any(|s| *s != current);
    if !stale && e.record_version >= ENDPOINT_RECORD_VERSION {
        return Ok(None);
    }
    let mut next = e.clone();
    for s in &mut next.secrets {
        let plain = open_secret(keys, e, s).map_err(record_error(e))?;
        s.sealed = seal_secret(keys, &e.tenant_id, &e.id, &plain, s.created_at)
            .map_err(record_error(e))?
            .sealed;
    }
    for k in &mut next.signing_keys {
        let plain = open_signing_key(keys, e, k).map_err(record_error(e))?;
        k.sealed = seal_signing_key(keys, &e.tenant_id, &e.id, &plain, k.created_at)
            .map_err(record_error(e))?
            .sealed;
    }
    let headers = open_headers(keys, e).map_err(record_error(e))?;
    next.headers = seal_headers(keys, &e.tenant_id, &e.id, headers).map_err(record_error(e))?;
    next.record_version = ENDPOINT_RECORD_VERSION;
    Ok(Some(next))
}

/// Writes `next`'s sealed fields over the stored record if it has not changed since
/// `read`; `false` when it has (the caller reads it again).
async fn write_resealed(
    store: &dyn Store,
    read: &Endpoint,
    next: Endpoint,
) -> Result<bool, SecretsError> {
    let (seen_secrets, seen_keys, seen_headers) = (
        read.secrets.clone(),
        read.signing_keys.clone(),
        read.headers.clone(),
    );
    let applied = Arc::new(Mutex::new(false));
    let flag = applied.clone();
    let result = store
        .update_endpoint(
            &read.tenant_id,
            &read.id,
            Box::new(move |e: &mut Endpoint| {
                if e.secrets == seen_secrets
                    && e.signing_keys == seen_keys
                    && e.headers == seen_headers
                {
                    e.secrets = next.secrets;
                    e.signing_keys = next.signing_keys;
                    e.headers = next.headers;
                    e.record_version = next.record_version;
                    if let Ok(mut f) = flag.lock() {
                        *f = true;
                    }
                }
            }),
        )
        .await;
    match result {
        Ok(_) => Ok(applied.lock().map(|f| *f).unwrap_or(false)),
        // Deleted meanwhile: nothing left to seal.
        Err(StoreError::NotFound(_)) => Ok(true),
        Err(e) => Err(e.into()),
    }
}

/// Counts of stored sealed values by how they are sealed.
#[derive(Debug, Clone, Default, Serialize, utoipa::ToSchema)]
pub struct Census {
    pub endpoints: u64,
    /// Values not yet encrypted (a store from before encryption at rest).
    pub plaintext: u64,
    /// Values per master key version (as a string key, for JSON).
    pub by_key_version: BTreeMap<String, u64>,
}

impl Census {
    fn versions(&self) -> Vec<u32> {
        self.by_key_version
            .keys()
            .filter_map(|v| v.parse().ok())
            .collect()
    }
}

/// Every tenant's id, in id order.
async fn tenant_ids(store: &dyn Store) -> Result<Vec<TenantId>, SecretsError> {
    let mut ids = Vec::new();
    let mut page = PageRequest {
        after: None,
        limit: BATCH,
    };
    loop {
        let p = store.list_tenants(page.clone()).await?;
        ids.extend(p.items.into_iter().map(|t| t.id));
        match p.next {
            Some(next) => page.after = Some(next),
            None => return Ok(ids),
        }
    }
}

/// One page of a tenant's endpoints after `after`, and where the next starts.
async fn endpoint_page(
    store: &dyn Store,
    tenant: &TenantId,
    after: Option<String>,
) -> Result<(Vec<Endpoint>, Option<String>), SecretsError> {
    let p = store
        .list_endpoints(
            tenant,
            PageRequest {
                after,
                limit: BATCH,
            },
        )
        .await?;
    Ok((p.items, p.next))
}

/// Counts how the stored secrets are sealed.
pub async fn census(store: &dyn Store) -> Result<Census, SecretsError> {
    let mut census = Census::default();
    for tenant in tenant_ids(store).await? {
        let mut after = None;
        loop {
            let (endpoints, next) = endpoint_page(store, &tenant, after).await?;
            for e in &endpoints {
                census.endpoints += 1;
                for s in sealings(e).map_err(record_error(e))? {
                    match s {
                        Sealing::Plain => census.plaintext += 1,
                        Sealing::Key(v) => {
                            *census.by_key_version.entry(v.to_string()).or_default() += 1;
                        }
                    }
                }
            }
            match next {
                Some(n) => after = Some(n),
                None => break,
            }
        }
    }
    Ok(census)
}

/// What [`prepare`] found and did.
#[derive(Debug, Clone, Default)]
pub struct Prepared {
    pub census: Census,
    /// Endpoints whose plaintext values were sealed now.
    pub migrated: u64,
}

/// Run at start, before anything reads a secret: refuses a store holding a key
/// version that is not configured, and seals what a store from before encryption at
/// rest holds in plain text (unless the store is read-only).
pub async fn prepare(store: &dyn Store, keys: &Keyring) -> Result<Prepared, SecretsError> {
    let census = census(store).await?;
    let missing: Vec<u32> = census
        .versions()
        .into_iter()
        .filter(|v| !keys.has(*v))
        .collect();
    if !missing.is_empty() {
        return Err(SecretsError::MissingKeys(missing));
    }
    let mut migrated = 0;
    if census.plaintext > 0 && store.read_only_reason().is_none() {
        migrated = reseal_where(store, keys, None, |e| {
            e.record_version < ENDPOINT_RECORD_VERSION
                || sealings(e).is_ok_and(|s| s.contains(&Sealing::Plain))
        })
        .await?;
        tracing::warn!(
            endpoints = migrated,
            key_version = keys.current_version(),
            "secrets: sealed the plaintext secrets of a store written before encryption at \
             rest. Space the store freed may still hold the old values until it is reused, \
             and older backups hold them: take a snapshot now, restore it into a new data \
             dir (PostgreSQL: VACUUM FULL endpoints), and retire the old backups \
             (docs/security.md)"
        );
        // GatePulse's own act, on the node's chain.
        let entry = crate::audit::AuditEntry {
            tenant: None,
            at: crate::clock::now_ms(),
            actor: crate::audit::AuditActor::system(),
            action: "master_key.migrate".into(),
            resource: crate::audit::AuditResource::new("master_key", keys.current_version()),
            request_id: None,
            client_addr: None,
            details: serde_json::json!({"endpoints": migrated}),
        };
        store.append_audit(entry).await?;
    }
    Ok(Prepared { census, migrated })
}

/// Reseals, under the current key, every endpoint `select` picks; counts the
/// endpoints rewritten. A record changed between read and write is read again.
async fn reseal_where(
    store: &dyn Store,
    keys: &Keyring,
    progress: Option<&Rotation>,
    select: impl Fn(&Endpoint) -> bool,
) -> Result<u64, SecretsError> {
    let mut rewritten = 0;
    for tenant in tenant_ids(store).await? {
        let mut after = None;
        loop {
            let (endpoints, next) = endpoint_page(store, &tenant, after).await?;
            for e in endpoints {
                if reseal_one(store, keys, &tenant, e, &select).await? {
                    rewritten += 1;
                }
                if let Some(p) = progress {
                    p.step(rewritten);
                }
            }
            // Bounded batches: let the hot path in between.
            tokio::task::yield_now().await;
            match next {
                Some(n) => after = Some(n),
                None => break,
            }
        }
    }
    Ok(rewritten)
}

/// Reseals one endpoint if `select` picks it; `true` when it was rewritten. A record
/// changed between read and write is read again (a few times).
async fn reseal_one(
    store: &dyn Store,
    keys: &Keyring,
    tenant: &TenantId,
    mut current: Endpoint,
    select: &impl Fn(&Endpoint) -> bool,
) -> Result<bool, SecretsError> {
    for _ in 0..5 {
        if !select(&current) {
            return Ok(false);
        }
        let Some(next) = resealed(keys, &current)? else {
            return Ok(false);
        };
        if write_resealed(store, &current, next).await? {
            return Ok(true);
        }
        match store.get_endpoint(tenant, &current.id).await? {
            Some(again) => current = again,
            None => return Ok(false),
        }
    }
    Ok(false)
}

/// The state of the re-encryption job (`POST /v1/admin/secrets/rotate`).
#[derive(Debug, Clone, Default, Serialize, utoipa::ToSchema)]
pub struct RotationStatus {
    /// `idle`, `running`, `succeeded` or `failed`.
    pub state: &'static str,
    /// The key version values are being resealed under.
    pub key_version: Option<u32>,
    /// Endpoints when the job started.
    pub endpoints_total: u64,
    /// Endpoints looked at so far.
    pub endpoints_done: u64,
    /// Endpoints rewritten so far (the others were already under the newest key).
    pub endpoints_resealed: u64,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    /// Why it failed, when it did.
    pub error: Option<String>,
}

/// The one re-encryption job of this process.
#[derive(Debug)]
pub struct Rotation {
    status: Mutex<RotationStatus>,
}

impl Default for Rotation {
    fn default() -> Self {
        Self {
            status: Mutex::new(RotationStatus {
                state: "idle",
                ..RotationStatus::default()
            }),
        }
    }
}

impl Rotation {
    pub fn status(&self) -> RotationStatus {
        self.status.lock().map(|s| s.clone()).unwrap_or_default()
    }

    fn update(&self, f: impl FnOnce(&mut RotationStatus)) {
        if let Ok(mut s) = self.status.lock() {
            f(&mut s);
        }
    }

    fn step(&self, resealed: u64) {
        self.update(|s| {
            s.endpoints_done += 1;
            s.endpoints_resealed = resealed;
        });
    }

    /// Starts re-encrypting every stored secret under `keys`' newest version, unless a
    /// job is already running; returns the status either way.
    pub fn start(
        self: &Arc<Self>,
        store: Arc<dyn Store>,
        keys: Arc<Keyring>,
        total: u64,
    ) -> RotationStatus {
        let mut started = false;
        self.update(|s| {
            if s.state != "running" {
                *s = RotationStatus {
                    state: "running",
                    key_version: Some(keys.current_version()),
                    endpoints_total: total,
                    started_at: Some(crate::clock::rfc3339(crate::clock::now_ms())),
                    ..RotationStatus::default()
                };
                started = true;
            }
        });
        if started {
            let me = self.clone();
            tokio::spawn(async move {
                let current = Sealing::Key(keys.current_version());
                let result = reseal_where(store.as_ref(), &keys, Some(&me), |e| {
                    e.record_version < ENDPOINT_RECORD_VERSION
                        || sealings(e).is_ok_and(|s| s.iter().any(|x| *x != current))
                })
                .await;
                let now = crate::clock::rfc3339(crate::clock::now_ms());
                match result {
                    Ok(n) => {
                        tracing::info!(
                            endpoints = n,
                            key_version = keys.current_version(),
                            "secrets: rotation finished"
                        );
                        me.update(|s| {
                            s.state = "succeeded";
                            s.endpoints_resealed = n;
                            s.finished_at = Some(now);
                        });
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "secrets: rotation failed");
                        me.update(|s| {
                            s.state = "failed";
                            s.error = Some(e.to_string());
                            s.finished_at = Some(now);
                        });
                    }
                }
            });
        }
        self.status()
    }
}
