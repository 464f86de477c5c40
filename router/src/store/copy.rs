//! `gp store copy`: moves a stopped single node's embedded store into PostgreSQL, so a
//! user can grow into the cluster without losing history.
//!
//! The source backend exports its records ([`Exported`]); the target imports them in
//! one transaction into an empty database and compares its row counts with what was
//! exported before it commits. Nothing is written on a mismatch.

use std::collections::BTreeMap;

use crate::audit::AuditRecord;
use crate::ids::TenantId;
use crate::store::{
    ApiKey, Attempt, Delivery, Endpoint, Event, InboxMessage, PluginRecord, Replay, StoreResult,
    Subscription, Tenant,
};

/// One record of a store, as moved by `gp store copy`.
#[derive(Debug)]
pub enum Exported {
    Tenant {
        tenant: Tenant,
        /// The tenant's last stream cursor.
        cursor: u64,
        /// The tenant's purge watermark.
        purged_to: u64,
    },
    ApiKey(ApiKey),
    Endpoint(Endpoint),
    Subscription(Subscription),
    Event(Event),
    Idempotency {
        tenant: TenantId,
        key: String,
        cursor: u64,
        created_at: i64,
        event_id: String,
    },
    Delivery(Delivery),
    Attempt(Attempt),
    /// A stream position that is not an event (`deliveries.status`, `audit`).
    Status {
        tenant: TenantId,
        cursor: u64,
        at: i64,
        topic: String,
        data: String,
    },
    Inbox(InboxMessage),
    Replay(Replay),
    Plugin(PluginRecord),
    Module {
        tenant: TenantId,
        sha256: String,
        module: Vec<u8>,
    },
    /// An audit record, with its place in its chain (`seq`, hashes) as it was.
    Audit(AuditRecord),
}

impl Exported {
    /// The target table this record counts toward.
    pub fn table(&self) -> &'static str {
        match self {
            Self::Tenant { .. } => "tenants",
            Self::ApiKey(_) => "api_keys",
            Self::Endpoint(_) => "endpoints",
            Self::Subscription(_) => "subscriptions",
            Self::Event(_) => "events",
            Self::Idempotency { .. } => "idempotency",
            Self::Delivery(_) => "deliveries",
            Self::Attempt(_) => "attempts",
            Self::Status { .. } => "stream_status",
            Self::Inbox(_) => "inbox",
            Self::Replay(_) => "replays",
            Self::Plugin(_) => "plugins",
            Self::Module { .. } => "plugin_modules",
            Self::Audit(_) => "audit_log",
        }
    }
}

/// What a copy moved, per table (verified equal on both sides).
pub type CopyReport = BTreeMap<&'static str, u64>;

/// Copies the embedded store of `data_dir` into the PostgreSQL database of `config`
/// (its `store` URL and `[postgres]` schema), which must hold no tenant yet.
pub async fn redb_to_postgres(
    data_dir: &std::path::Path,
    config: &crate::config::Config,
) -> StoreResult<CopyReport> {
    let Some(url) = config.postgres_url() else {
        return Err(crate::store::StoreError::Backend(
            "--to must be a postgres:// URL".into(),
        ));
    };
    let path = data_dir.join(crate::store::REDB_FILE);
    if !path.exists() {
        return Err(crate::store::StoreError::Backend(format!(
            "{} does not exist",
            path.display()
        )));
    }
    let options = crate::store::backends::postgres::PgOptions::from_config(config, url);
    let target = crate::store::backends::postgres::PgStore::open(
        options,
        crate::store::feed::CommitFeed::new(),
    )
    .await?;
    // The export runs on a blocking thread and hands records over in batches.
    // `None` closes a complete export; a channel that closes without it means the
    // export failed, and the import then writes nothing.
    let (tx, rx) = tokio::sync::mpsc::channel::<Option<Vec<Exported>>>(4);
    let export = tokio::task::spawn_blocking(move || {
        let mut batch = Vec::with_capacity(512);
        crate::store::backends::redb::export::export(&path, |record| {
            batch.push(record);
            if batch.len() >= 512 {
                let full = std::mem::replace(&mut batch, Vec::with_capacity(512));
                tx.blocking_send(Some(full))
                    .map_err(|_| crate::store::StoreError::Backend("the import stopped".into()))?;
            }
            Ok(())
        })?;
        if !batch.is_empty() {
            let _ = tx.blocking_send(Some(batch));
        }
        let _ = tx.blocking_send(None);
        Ok::<_, crate::store::StoreError>(())
    });
    let imported = target.import(rx).await;
    let exported = export
        .await
        .map_err(|e| crate::store::StoreError::Backend(format!("export: {e}")))?;
    crate::store::Store::close(&target);
    let report = imported?;
    exported?;
    Ok(report)
}
