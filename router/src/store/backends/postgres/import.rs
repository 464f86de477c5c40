//! The import side of `gp store copy` (see [`crate::store::copy`]): every exported
//! record in one transaction into an empty database; the derived state (the hot
//! queue, per-tenant counts) is rebuilt from the records, and the row counts are
//! compared with the export's before the commit.

use std::collections::BTreeMap;

use futures_util::future::try_join_all;
use tokio::sync::mpsc;

use crate::store::copy::{CopyReport, Exported};
use crate::store::{DeliveryStatus, RECORD_VERSION, StoreError, StoreResult};

use super::{PgStore, big, encode};

impl PgStore {
    /// Imports batches until `None` (the export's end); refuses a database that
    /// already holds tenants.
    pub async fn import(
        &self,
        mut rx: mpsc::Receiver<Option<Vec<Exported>>>,
    ) -> StoreResult<CopyReport> {
        self.writable()?;
        let mut client = self.client().await?;
        let txn = client.transaction().await?;
        let existing: i64 = txn
            .query_one("SELECT count(*) FROM tenants", &[])
            .await?
            .try_get(0)?;
        if existing > 0 {
            return Err(StoreError::Backend(
                "the target database already holds tenants: copy into an empty one".into(),
            ));
        }
        let mut counts: CopyReport = BTreeMap::new();
        // Each audit chain's last record: the head the next record links to.
        let mut heads: BTreeMap<String, (u64, String)> = BTreeMap::new();
        let mut complete = false;
        while let Some(message) = rx.recv().await {
            let Some(batch) = message else {
                complete = true;
                break;
            };
            for r in &batch {
                *counts.entry(r.table()).or_default() += 1;
                if let Exported::Audit(a) = r {
                    let chain = a.tenant_id.as_ref().map_or("", |t| t.as_str());
                    let head = heads.entry(chain.to_owned()).or_default();
                    if a.seq > head.0 {
                        *head = (a.seq, a.hash.clone());
                    }
                }
            }
            try_join_all(batch.iter().map(|r| insert(&txn, r))).await?;
        }
        if !complete {
            return Err(StoreError::Backend(
                "the export stopped before its end; nothing was written".into(),
            ));
        }
        // Derived state, rebuilt from the records.
        for (chain, (seq, hash)) in &heads {
            txn.execute(
                "INSERT INTO audit_heads (chain, seq, hash) VALUES ($1, $2, $3)",
                &[chain, &big(*seq), hash],
            )
            .await?;
        }
        txn.batch_execute(
            "INSERT INTO delivery_queue (tenant, delivery_id, endpoint_id, due)
                SELECT tenant, id, endpoint_id, next_attempt_at FROM deliveries
                WHERE status IN ('pending', 'retrying');
             UPDATE tenant_state s SET
                endpoints = (SELECT count(*) FROM endpoints e WHERE e.tenant = s.tenant),
                subscriptions = (SELECT count(*) FROM subscriptions b WHERE b.tenant = s.tenant),
                queued = (SELECT count(*) FROM deliveries d WHERE d.tenant = s.tenant
                          AND d.status IN ('pending', 'retrying', 'in_flight'));",
        )
        .await?;
        for (table, want) in &counts {
            let got: i64 = txn
                .query_one(&format!("SELECT count(*) FROM {table}"), &[])
                .await?
                .try_get(0)?;
            if u64::try_from(got).unwrap_or(0) != *want {
                return Err(StoreError::Backend(format!(
                    "{table}: {want} exported but {got} stored; nothing was written"
                )));
            }
        }
        txn.commit().await?;
        Ok(counts)
    }
}

async fn insert(txn: &deadpool_postgres::Transaction<'_>, record: &Exported) -> StoreResult<()> {
    match record {
        Exported::Tenant {
            tenant,
            cursor,
            purged_to,
        } => {
            txn.execute(
                "INSERT INTO tenants (id, data) VALUES ($1, $2)",
                &[&tenant.id.as_str(), &encode(tenant)?],
            )
            .await?;
            txn.execute(
                "INSERT INTO tenant_state (tenant, cursor, purged_to) VALUES ($1, $2, $3)",
                &[&tenant.id.as_str(), &big(*cursor), &big(*purged_to)],
            )
            .await?;
        }
        Exported::ApiKey(k) => {
            txn.execute(
                "INSERT INTO api_keys (tenant, id, hash, live, data) VALUES ($1, $2, $3, $4, $5)",
                &[
                    &k.tenant_id.as_str(),
                    &k.id.as_str(),
                    &k.hash,
                    &k.revoked_at.is_none(),
                    &encode(k)?,
                ],
            )
            .await?;
        }
        Exported::Endpoint(e) => {
            txn.execute(
                "INSERT INTO endpoints (tenant, id, data) VALUES ($1, $2, $3)",
                &[&e.tenant_id.as_str(), &e.id.as_str(), &encode(e)?],
            )
            .await?;
        }
        Exported::Subscription(s) => {
            txn.execute(
                "INSERT INTO subscriptions (tenant, id, endpoint_id, data) VALUES ($1, $2, $3, $4)",
                &[
                    &s.tenant_id.as_str(),
                    &s.id.as_str(),
                    &s.endpoint_id.as_str(),
                    &encode(s)?,
                ],
            )
            .await?;
        }
        Exported::Event(e) => {
            txn.execute(
                "INSERT INTO events (tenant, cursor, id, topic, created_at, idempotency_key, \
                 payload, record_version, traceparent) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                &[
                    &e.tenant_id.as_str(),
                    &big(e.cursor),
                    &e.id.as_str(),
                    &e.topic,
                    &e.created_at,
                    &e.idempotency_key,
                    &e.payload.get(),
                    &i32::try_from(e.record_version).unwrap_or(1),
                    &e.traceparent,
                ],
            )
            .await?;
        }
        Exported::Idempotency {
            tenant,
            key,
            cursor,
            created_at,
            event_id,
        } => {
            txn.execute(
                "INSERT INTO idempotency (tenant, key, cursor, created_at, event_id) \
                 VALUES ($1, $2, $3, $4, $5)",
                &[&tenant.as_str(), key, &big(*cursor), created_at, event_id],
            )
            .await?;
        }
        Exported::Delivery(d) => {
            // The source node is stopped: its leases are void, in-flight work is queued.
            let status = match d.status {
                DeliveryStatus::InFlight if d.attempts == 0 => DeliveryStatus::Pending,
                DeliveryStatus::InFlight => DeliveryStatus::Retrying,
                other => other,
            };
            txn.execute(
                "INSERT INTO deliveries (tenant, id, event_id, subscription_id, endpoint_id, \
                 status, attempts, next_attempt_at, claimed_by, lease_until, lease_token, \
                 created_at, updated_at, body, record_version) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, NULL, NULL, $9, $10, $11, $12, $13)",
                &[
                    &d.tenant_id.as_str(),
                    &d.id.as_str(),
                    &d.event_id.as_str(),
                    &d.subscription_id.as_str(),
                    &d.endpoint_id.as_str(),
                    &status.as_str(),
                    &i32::try_from(d.attempts).unwrap_or(i32::MAX),
                    &d.next_attempt_at,
                    &big(d.lease_token),
                    &d.created_at,
                    &d.updated_at,
                    &d.body,
                    &i32::try_from(RECORD_VERSION).unwrap_or(1),
                ],
            )
            .await?;
        }
        Exported::Attempt(a) => {
            txn.execute(
                "INSERT INTO attempts (tenant, delivery_id, number, data) VALUES ($1, $2, $3, $4)",
                &[
                    &a.tenant_id.as_str(),
                    &a.delivery_id.as_str(),
                    &i32::try_from(a.number).unwrap_or(i32::MAX),
                    &encode(a)?,
                ],
            )
            .await?;
        }
        Exported::Status {
            tenant,
            cursor,
            at,
            topic,
            data,
        } => {
            let topic = (topic != crate::stream::STATUS_TOPIC).then_some(topic.as_str());
            txn.execute(
                "INSERT INTO stream_status (tenant, cursor, created_at, data, topic) \
                 VALUES ($1, $2, $3, $4, $5)",
                &[&tenant.as_str(), &big(*cursor), at, data, &topic],
            )
            .await?;
        }
        Exported::Inbox(m) => {
            txn.execute(
                "INSERT INTO inbox (tenant, endpoint_id, id, received_at, data) \
                 VALUES ($1, $2, $3, $4, $5)",
                &[
                    &m.tenant_id.as_str(),
                    &m.endpoint_id.as_str(),
                    &m.id.as_str(),
                    &m.received_at,
                    &encode(m)?,
                ],
            )
            .await?;
        }
        Exported::Replay(r) => {
            txn.execute(
                "INSERT INTO replays (tenant, id, created_at, data) VALUES ($1, $2, $3, $4)",
                &[&r.tenant_id.as_str(), &r.id, &r.created_at, &encode(r)?],
            )
            .await?;
        }
        Exported::Plugin(p) => {
            txn.execute(
                "INSERT INTO plugins (tenant, name, version, sha256, size, data) \
                 VALUES ($1, $2, $3, $4, $5, $6)",
                &[
                    &p.tenant_id.as_str(),
                    &p.name,
                    &p.version,
                    &p.sha256,
                    &big(p.size),
                    &encode(p)?,
                ],
            )
            .await?;
        }
        Exported::Module {
            tenant,
            sha256,
            module,
        } => {
            txn.execute(
                "INSERT INTO plugin_modules (tenant, sha256, module) VALUES ($1, $2, $3)",
                &[&tenant.as_str(), sha256, module],
            )
            .await?;
        }
        Exported::Audit(a) => {
            let chain = a.tenant_id.as_ref().map_or("", |t| t.as_str());
            txn.execute(
                "INSERT INTO audit_log (chain, seq, id, at, data) VALUES ($1, $2, $3, $4, $5)",
                &[&chain, &big(a.seq), &a.id, &a.at, &encode(a)?],
            )
            .await?;
        }
    }
    Ok(())
}
