//! Configuration records: tenants, API keys, endpoints, subscriptions, plugins and
//! inbox messages. Changes that caches depend on are written to `change_log` in the
//! same transaction (other nodes' tails read them) and announced on this node's feed
//! at once (read-your-writes for the caller).

use crate::ids::{EndpointId, KeyId, SubscriptionId, TenantId};
use crate::store::feed::{Change, Committed};
use crate::store::{
    ApiKey, Endpoint, InboxMessage, Mutation, Page, PageRequest, PluginQuota, PluginRecord,
    RECORD_VERSION, StoreError, StoreResult, Subscription, Tenant,
};

use super::{PgStore, decode, encode, is_unique_violation, limit_of, page_of};

/// Columns of change-log rows: seq, kind, tenant, id, name, version, deleted.
type ChangeRows<'a> = (
    Vec<i64>,
    Vec<&'a str>,
    Vec<&'a str>,
    Vec<&'a str>,
    Vec<&'a str>,
    Vec<&'a str>,
    Vec<bool>,
);

/// Appends changes to the change log, numbered from `gp_meta.change_seq` (incremented
/// here, so numbers follow commit order).
pub(super) async fn log_changes(
    txn: &deadpool_postgres::Transaction<'_>,
    changes: &[Change],
) -> StoreResult<()> {
    if changes.is_empty() {
        return Ok(());
    }
    let n = i64::try_from(changes.len()).unwrap_or(i64::MAX);
    let last: i64 = txn
        .query_one(
            "UPDATE gp_meta SET change_seq = change_seq + $1 WHERE id = 1 RETURNING change_seq",
            &[&n],
        )
        .await?
        .try_get(0)?;
    let now = crate::clock::now_ms();
    let mut cols: ChangeRows<'_> = Default::default();
    for (i, c) in changes.iter().enumerate() {
        cols.0.push(last - n + 1 + i64::try_from(i).unwrap_or(0));
        match c {
            Change::Subscription { tenant, id } => {
                cols.1.push("subscription");
                cols.2.push(tenant.as_str());
                cols.3.push(id.as_str());
                cols.4.push("");
                cols.5.push("");
                cols.6.push(false);
            }
            Change::Endpoint {
                tenant,
                id,
                deleted,
            } => {
                cols.1.push("endpoint");
                cols.2.push(tenant.as_str());
                cols.3.push(id.as_str());
                cols.4.push("");
                cols.5.push("");
                cols.6.push(*deleted);
            }
            Change::ApiKey { tenant, id } => {
                cols.1.push("api_key");
                cols.2.push(tenant.as_str());
                cols.3.push(id.as_str());
                cols.4.push("");
                cols.5.push("");
                cols.6.push(false);
            }
            Change::Plugin {
                tenant,
                name,
                version,
            } => {
                cols.1.push("plugin");
                cols.2.push(tenant.as_str());
                cols.3.push("");
                cols.4.push(name);
                cols.5.push(version);
                cols.6.push(false);
            }
        }
    }
    txn.execute(
        "INSERT INTO change_log (seq, at, kind, tenant, id, name, version, deleted) \
         SELECT s, $8, k, t, i, n, v, d FROM unnest($1::int8[], $2::text[], $3::text[], \
         $4::text[], $5::text[], $6::text[], $7::bool[]) AS u(s, k, t, i, n, v, d)",
        &[
            &cols.0, &cols.1, &cols.2, &cols.3, &cols.4, &cols.5, &cols.6, &now,
        ],
    )
    .await?;
    Ok(())
}

/// A change-log row as a feed change.
pub(super) fn change_from_row(row: &tokio_postgres::Row) -> StoreResult<Option<Change>> {
    let kind: &str = row.try_get("kind")?;
    let tenant = TenantId::from_trusted(row.try_get("tenant")?);
    Ok(match kind {
        "subscription" => Some(Change::Subscription {
            tenant,
            id: SubscriptionId::from_trusted(row.try_get("id")?),
        }),
        "endpoint" => Some(Change::Endpoint {
            tenant,
            id: EndpointId::from_trusted(row.try_get("id")?),
            deleted: row.try_get("deleted")?,
        }),
        "api_key" => Some(Change::ApiKey {
            tenant,
            id: KeyId::from_trusted(row.try_get("id")?),
        }),
        "plugin" => Some(Change::Plugin {
            tenant,
            name: row.try_get("name")?,
            version: row.try_get("version")?,
        }),
        _ => None,
    })
}

async fn tenant_exists(txn: &deadpool_postgres::Transaction<'_>, t: &str) -> StoreResult<bool> {
    Ok(txn
        .query_opt("SELECT 1 FROM tenants WHERE id = $1", &[&t])
        .await?
        .is_some())
}

impl PgStore {
    /// Announces changes committed by this node.
    fn announce(&self, changes: Vec<Change>) {
        self.feed.announce(Committed {
            changes,
            ..Committed::default()
        });
        self.committed();
    }

    pub(super) async fn create_tenant(&self, tenant: Tenant) -> StoreResult<()> {
        self.writable()?;
        let bytes = encode(&tenant)?;
        let mut client = self.client().await?;
        let txn = client.transaction().await?;
        let inserted = txn
            .execute(
                "INSERT INTO tenants (id, data) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                &[&tenant.id.as_str(), &bytes],
            )
            .await?;
        if inserted == 0 {
            return Err(StoreError::Backend(format!("tenant {} exists", tenant.id)));
        }
        txn.execute(
            "INSERT INTO tenant_state (tenant) VALUES ($1) ON CONFLICT DO NOTHING",
            &[&tenant.id.as_str()],
        )
        .await?;
        self.commit(txn).await?;
        Ok(())
    }

    pub(super) async fn get_tenant(&self, id: &TenantId) -> StoreResult<Option<Tenant>> {
        let row = self
            .client()
            .await?
            .query_opt("SELECT data FROM tenants WHERE id = $1", &[&id.as_str()])
            .await?;
        row.map(|r| decode("tenants", r.try_get::<_, &[u8]>(0)?))
            .transpose()
    }

    pub(super) async fn update_tenant(
        &self,
        id: &TenantId,
        change: Mutation<Tenant>,
    ) -> StoreResult<Tenant> {
        self.writable()?;
        let mut client = self.client().await?;
        let txn = client.transaction().await?;
        let Some(row) = txn
            .query_opt(
                "SELECT data FROM tenants WHERE id = $1 FOR UPDATE",
                &[&id.as_str()],
            )
            .await?
        else {
            return Err(StoreError::NotFound("tenant"));
        };
        let mut tenant: Tenant = decode("tenants", row.try_get::<_, &[u8]>(0)?)?;
        let (keep_id, keep_created) = (tenant.id.clone(), tenant.created_at);
        change(&mut tenant);
        tenant.id = keep_id;
        tenant.created_at = keep_created;
        tenant.record_version = RECORD_VERSION;
        txn.execute(
            "UPDATE tenants SET data = $2 WHERE id = $1",
            &[&id.as_str(), &encode(&tenant)?],
        )
        .await?;
        self.commit(txn).await?;
        Ok(tenant)
    }

    pub(super) async fn list_tenants(&self, page: PageRequest) -> StoreResult<Page<Tenant>> {
        let limit = limit_of(&page);
        let after = page.after.unwrap_or_default();
        let rows = self
            .client()
            .await?
            .query(
                "SELECT data FROM tenants WHERE id > $1 ORDER BY id LIMIT $2",
                &[&after, &(limit as i64)],
            )
            .await?;
        let items = rows
            .iter()
            .map(|r| decode::<Tenant>("tenants", r.try_get::<_, &[u8]>(0)?))
            .collect::<StoreResult<Vec<_>>>()?;
        Ok(page_of(items, limit, |t| t.id.to_string()))
    }

    pub(super) async fn create_api_key(&self, key: ApiKey) -> StoreResult<()> {
        self.writable()?;
        let bytes = encode(&key)?;
        let mut client = self.client().await?;
        let txn = client.transaction().await?;
        if !tenant_exists(&txn, key.tenant_id.as_str()).await? {
            return Err(StoreError::MissingReference("tenant"));
        }
        txn.execute(
            "INSERT INTO api_keys (tenant, id, hash, live, data) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (tenant, id) DO UPDATE SET hash = EXCLUDED.hash, live = EXCLUDED.live, \
             data = EXCLUDED.data",
            &[
                &key.tenant_id.as_str(),
                &key.id.as_str(),
                &key.hash,
                &key.revoked_at.is_none(),
                &bytes,
            ],
        )
        .await
        .map_err(|e| {
            if is_unique_violation(&e) {
                StoreError::AlreadyExists("api key hash")
            } else {
                e.into()
            }
        })?;
        self.commit(txn).await?;
        Ok(())
    }

    pub(super) async fn list_api_keys(
        &self,
        tenant: &TenantId,
        page: PageRequest,
    ) -> StoreResult<Page<ApiKey>> {
        let limit = limit_of(&page);
        let rows = self
            .client()
            .await?
            .query(
                "SELECT data FROM api_keys WHERE tenant = $1 AND id > $2 ORDER BY id LIMIT $3",
                &[
                    &tenant.as_str(),
                    &page.after.unwrap_or_default(),
                    &(limit as i64),
                ],
            )
            .await?;
        let items = rows
            .iter()
            .map(|r| decode::<ApiKey>("api_keys", r.try_get::<_, &[u8]>(0)?))
            .collect::<StoreResult<Vec<_>>>()?;
        Ok(page_of(items, limit, |k| k.id.to_string()))
    }

    pub(super) async fn revoke_api_key(
        &self,
        tenant: &TenantId,
        id: &KeyId,
        at: i64,
    ) -> StoreResult<Option<ApiKey>> {
        self.writable()?;
        let mut client = self.client().await?;
        let txn = client.transaction().await?;
        let Some(row) = txn
            .query_opt(
                "SELECT data FROM api_keys WHERE tenant = $1 AND id = $2 FOR UPDATE",
                &[&tenant.as_str(), &id.as_str()],
            )
            .await?
        else {
            return Ok(None);
        };
        let mut key: ApiKey = decode("api_keys", row.try_get::<_, &[u8]>(0)?)?;
        if key.revoked_at.is_some() {
            return Ok(Some(key));
        }
        key.revoked_at = Some(at);
        txn.execute(
            "UPDATE api_keys SET live = false, data = $3 WHERE tenant = $1 AND id = $2",
            &[&tenant.as_str(), &id.as_str(), &encode(&key)?],
        )
        .await?;
        let change = Change::ApiKey {
            tenant: tenant.clone(),
            id: id.clone(),
        };
        log_changes(&txn, std::slice::from_ref(&change)).await?;
        self.commit(txn).await?;
        self.announce(vec![change]);
        Ok(Some(key))
    }

    pub(super) async fn find_api_key(&self, hash: &str) -> StoreResult<Option<ApiKey>> {
        let row = self
            .client()
            .await?
            .query_opt(
                "SELECT data FROM api_keys WHERE hash = $1 AND live",
                &[&hash],
            )
            .await?;
        let key: Option<ApiKey> = row
            .map(|r| decode("api_keys", r.try_get::<_, &[u8]>(0)?))
            .transpose()?;
        Ok(key.filter(|k| k.revoked_at.is_none()))
    }

    pub(super) async fn create_endpoint(
        &self,
        endpoint: Endpoint,
        max_per_tenant: usize,
    ) -> StoreResult<()> {
        self.writable()?;
        let bytes = encode(&endpoint)?;
        let t = endpoint.tenant_id.as_str();
        let mut client = self.client().await?;
        let txn = client.transaction().await?;
        let Some(row) = txn
            .query_opt(
                "SELECT endpoints FROM tenant_state WHERE tenant = $1 FOR UPDATE",
                &[&t],
            )
            .await?
        else {
            return Err(StoreError::MissingReference("tenant"));
        };
        if !tenant_exists(&txn, t).await? {
            return Err(StoreError::MissingReference("tenant"));
        }
        let count: i64 = row.try_get(0)?;
        if count >= max_per_tenant as i64 {
            return Err(StoreError::LimitReached {
                what: "endpoints",
                limit: max_per_tenant,
            });
        }
        txn.execute(
            "INSERT INTO endpoints (tenant, id, data) VALUES ($1, $2, $3) \
             ON CONFLICT (tenant, id) DO UPDATE SET data = EXCLUDED.data",
            &[&t, &endpoint.id.as_str(), &bytes],
        )
        .await?;
        txn.execute(
            "UPDATE tenant_state SET endpoints = endpoints + 1 WHERE tenant = $1",
            &[&t],
        )
        .await?;
        self.commit(txn).await?;
        Ok(())
    }

    pub(super) async fn get_endpoint(
        &self,
        tenant: &TenantId,
        id: &EndpointId,
    ) -> StoreResult<Option<Endpoint>> {
        let row = self
            .client()
            .await?
            .query_opt(
                "SELECT data FROM endpoints WHERE tenant = $1 AND id = $2",
                &[&tenant.as_str(), &id.as_str()],
            )
            .await?;
        row.map(|r| decode("endpoints", r.try_get::<_, &[u8]>(0)?))
            .transpose()
    }

    pub(super) async fn list_endpoints(
        &self,
        tenant: &TenantId,
        page: PageRequest,
    ) -> StoreResult<Page<Endpoint>> {
        let limit = limit_of(&page);
        let rows = self
            .client()
            .await?
            .query(
                "SELECT data FROM endpoints WHERE tenant = $1 AND id > $2 ORDER BY id LIMIT $3",
                &[
                    &tenant.as_str(),
                    &page.after.unwrap_or_default(),
                    &(limit as i64),
                ],
            )
            .await?;
        let items = rows
            .iter()
            .map(|r| decode::<Endpoint>("endpoints", r.try_get::<_, &[u8]>(0)?))
            .collect::<StoreResult<Vec<_>>>()?;
        Ok(page_of(items, limit, |e| e.id.to_string()))
    }

    pub(super) async fn update_endpoint(
        &self,
        tenant: &TenantId,
        id: &EndpointId,
        change: Mutation<Endpoint>,
    ) -> StoreResult<Endpoint> {
        self.writable()?;
        let mut client = self.client().await?;
        let txn = client.transaction().await?;
        let Some(row) = txn
            .query_opt(
                "SELECT data FROM endpoints WHERE tenant = $1 AND id = $2 FOR UPDATE",
                &[&tenant.as_str(), &id.as_str()],
            )
            .await?
        else {
            return Err(StoreError::NotFound("endpoint"));
        };
        let mut endpoint: Endpoint = decode("endpoints", row.try_get::<_, &[u8]>(0)?)?;
        let (keep_id, keep_tenant, keep_created) = (
            endpoint.id.clone(),
            endpoint.tenant_id.clone(),
            endpoint.created_at,
        );
        change(&mut endpoint);
        endpoint.id = keep_id;
        endpoint.tenant_id = keep_tenant;
        endpoint.created_at = keep_created;
        // `record_version` stays the mutation's: for endpoints it says how the header
        // values are sealed (`crate::secrets`), which only the sealing code knows.
        txn.execute(
            "UPDATE endpoints SET data = $3 WHERE tenant = $1 AND id = $2",
            &[&tenant.as_str(), &id.as_str(), &encode(&endpoint)?],
        )
        .await?;
        let change = Change::Endpoint {
            tenant: tenant.clone(),
            id: id.clone(),
            deleted: false,
        };
        log_changes(&txn, std::slice::from_ref(&change)).await?;
        self.commit(txn).await?;
        self.announce(vec![change]);
        Ok(endpoint)
    }

    pub(super) async fn delete_endpoint(
        &self,
        tenant: &TenantId,
        id: &EndpointId,
    ) -> StoreResult<Vec<SubscriptionId>> {
        self.writable()?;
        let t = tenant.as_str();
        let mut client = self.client().await?;
        let txn = client.transaction().await?;
        txn.execute(
            "SELECT 1 FROM tenant_state WHERE tenant = $1 FOR UPDATE",
            &[&t],
        )
        .await?;
        let gone = txn
            .execute(
                "DELETE FROM endpoints WHERE tenant = $1 AND id = $2",
                &[&t, &id.as_str()],
            )
            .await?;
        if gone == 0 {
            return Err(StoreError::NotFound("endpoint"));
        }
        let doomed: Vec<SubscriptionId> = txn
            .query(
                "DELETE FROM subscriptions WHERE tenant = $1 AND endpoint_id = $2 RETURNING id",
                &[&t, &id.as_str()],
            )
            .await?
            .iter()
            .map(|r| r.try_get::<_, String>(0).map(SubscriptionId::from_trusted))
            .collect::<Result<_, _>>()?;
        txn.execute(
            "UPDATE tenant_state SET endpoints = endpoints - 1, \
             subscriptions = subscriptions - $2 WHERE tenant = $1",
            &[&t, &(doomed.len() as i64)],
        )
        .await?;
        let mut changes: Vec<Change> = doomed
            .iter()
            .map(|sub| Change::Subscription {
                tenant: tenant.clone(),
                id: sub.clone(),
            })
            .collect();
        changes.push(Change::Endpoint {
            tenant: tenant.clone(),
            id: id.clone(),
            deleted: true,
        });
        log_changes(&txn, &changes).await?;
        self.commit(txn).await?;
        self.announce(changes);
        Ok(doomed)
    }

    pub(super) async fn create_subscription(
        &self,
        subscription: Subscription,
        max_per_tenant: usize,
    ) -> StoreResult<()> {
        self.writable()?;
        let bytes = encode(&subscription)?;
        let t = subscription.tenant_id.as_str();
        let mut client = self.client().await?;
        let txn = client.transaction().await?;
        let count: i64 = match txn
            .query_opt(
                "SELECT subscriptions FROM tenant_state WHERE tenant = $1 FOR UPDATE",
                &[&t],
            )
            .await?
        {
            Some(r) => r.try_get(0)?,
            None => return Err(StoreError::MissingReference("endpoint")),
        };
        if txn
            .query_opt(
                "SELECT 1 FROM endpoints WHERE tenant = $1 AND id = $2",
                &[&t, &subscription.endpoint_id.as_str()],
            )
            .await?
            .is_none()
        {
            return Err(StoreError::MissingReference("endpoint"));
        }
        if count >= max_per_tenant as i64 {
            return Err(StoreError::LimitReached {
                what: "subscriptions",
                limit: max_per_tenant,
            });
        }
        txn.execute(
            "INSERT INTO subscriptions (tenant, id, endpoint_id, data) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (tenant, id) DO UPDATE SET endpoint_id = EXCLUDED.endpoint_id, \
             data = EXCLUDED.data",
            &[
                &t,
                &subscription.id.as_str(),
                &subscription.endpoint_id.as_str(),
                &bytes,
            ],
        )
        .await?;
        txn.execute(
            "UPDATE tenant_state SET subscriptions = subscriptions + 1 WHERE tenant = $1",
            &[&t],
        )
        .await?;
        let change = Change::Subscription {
            tenant: subscription.tenant_id.clone(),
            id: subscription.id.clone(),
        };
        log_changes(&txn, std::slice::from_ref(&change)).await?;
        self.commit(txn).await?;
        self.announce(vec![change]);
        Ok(())
    }

    pub(super) async fn get_subscription(
        &self,
        tenant: &TenantId,
        id: &SubscriptionId,
    ) -> StoreResult<Option<Subscription>> {
        let row = self
            .client()
            .await?
            .query_opt(
                "SELECT data FROM subscriptions WHERE tenant = $1 AND id = $2",
                &[&tenant.as_str(), &id.as_str()],
            )
            .await?;
        row.map(|r| decode("subscriptions", r.try_get::<_, &[u8]>(0)?))
            .transpose()
    }

    pub(super) async fn list_subscriptions(
        &self,
        tenant: &TenantId,
        endpoint: Option<&EndpointId>,
        page: PageRequest,
    ) -> StoreResult<Page<Subscription>> {
        let limit = limit_of(&page);
        let rows = self
            .client()
            .await?
            .query(
                "SELECT data FROM subscriptions WHERE tenant = $1 AND id > $2 \
                 AND ($3::text IS NULL OR endpoint_id = $3) ORDER BY id LIMIT $4",
                &[
                    &tenant.as_str(),
                    &page.after.unwrap_or_default(),
                    &endpoint.map(EndpointId::as_str),
                    &(limit as i64),
                ],
            )
            .await?;
        let items = rows
            .iter()
            .map(|r| decode::<Subscription>("subscriptions", r.try_get::<_, &[u8]>(0)?))
            .collect::<StoreResult<Vec<_>>>()?;
        Ok(page_of(items, limit, |s| s.id.to_string()))
    }

    pub(super) async fn all_subscriptions(
        &self,
        tenant: &TenantId,
    ) -> StoreResult<Vec<Subscription>> {
        let rows = self
            .client()
            .await?
            .query(
                "SELECT data FROM subscriptions WHERE tenant = $1 ORDER BY id",
                &[&tenant.as_str()],
            )
            .await?;
        rows.iter()
            .map(|r| decode::<Subscription>("subscriptions", r.try_get::<_, &[u8]>(0)?))
            .collect()
    }

    pub(super) async fn update_subscription(
        &self,
        tenant: &TenantId,
        id: &SubscriptionId,
        change: Mutation<Subscription>,
    ) -> StoreResult<Subscription> {
        self.writable()?;
        let t = tenant.as_str();
        let mut client = self.client().await?;
        let txn = client.transaction().await?;
        let Some(row) = txn
            .query_opt(
                "SELECT data FROM subscriptions WHERE tenant = $1 AND id = $2 FOR UPDATE",
                &[&t, &id.as_str()],
            )
            .await?
        else {
            return Err(StoreError::NotFound("subscription"));
        };
        let mut sub: Subscription = decode("subscriptions", row.try_get::<_, &[u8]>(0)?)?;
        let (keep_id, keep_tenant, keep_created) =
            (sub.id.clone(), sub.tenant_id.clone(), sub.created_at);
        change(&mut sub);
        sub.id = keep_id;
        sub.tenant_id = keep_tenant;
        sub.created_at = keep_created;
        sub.record_version = RECORD_VERSION;
        if txn
            .query_opt(
                "SELECT 1 FROM endpoints WHERE tenant = $1 AND id = $2",
                &[&t, &sub.endpoint_id.as_str()],
            )
            .await?
            .is_none()
        {
            return Err(StoreError::MissingReference("endpoint"));
        }
        txn.execute(
            "UPDATE subscriptions SET endpoint_id = $3, data = $4 WHERE tenant = $1 AND id = $2",
            &[&t, &id.as_str(), &sub.endpoint_id.as_str(), &encode(&sub)?],
        )
        .await?;
        let change = Change::Subscription {
            tenant: tenant.clone(),
            id: id.clone(),
        };
        log_changes(&txn, std::slice::from_ref(&change)).await?;
        self.commit(txn).await?;
        self.announce(vec![change]);
        Ok(sub)
    }

    pub(super) async fn delete_subscription(
        &self,
        tenant: &TenantId,
        id: &SubscriptionId,
    ) -> StoreResult<()> {
        self.writable()?;
        let t = tenant.as_str();
        let mut client = self.client().await?;
        let txn = client.transaction().await?;
        txn.execute(
            "SELECT 1 FROM tenant_state WHERE tenant = $1 FOR UPDATE",
            &[&t],
        )
        .await?;
        let gone = txn
            .execute(
                "DELETE FROM subscriptions WHERE tenant = $1 AND id = $2",
                &[&t, &id.as_str()],
            )
            .await?;
        if gone == 0 {
            return Err(StoreError::NotFound("subscription"));
        }
        txn.execute(
            "UPDATE tenant_state SET subscriptions = subscriptions - 1 WHERE tenant = $1",
            &[&t],
        )
        .await?;
        let change = Change::Subscription {
            tenant: tenant.clone(),
            id: id.clone(),
        };
        log_changes(&txn, std::slice::from_ref(&change)).await?;
        self.commit(txn).await?;
        self.announce(vec![change]);
        Ok(())
    }

    pub(super) async fn create_plugin(
        &self,
        plugin: PluginRecord,
        module: Vec<u8>,
        quota: PluginQuota,
    ) -> StoreResult<()> {
        self.writable()?;
        let record = encode(&plugin)?;
        let t = plugin.tenant_id.as_str();
        let mut client = self.client().await?;
        let txn = client.transaction().await?;
        if txn
            .query_opt(
                "SELECT 1 FROM tenant_state WHERE tenant = $1 FOR UPDATE",
                &[&t],
            )
            .await?
            .is_none()
            || !tenant_exists(&txn, t).await?
        {
            return Err(StoreError::MissingReference("tenant"));
        }
        if txn
            .query_opt(
                "SELECT 1 FROM plugins WHERE tenant = $1 AND name = $2 AND version = $3",
                &[&t, &plugin.name, &plugin.version],
            )
            .await?
            .is_some()
        {
            return Err(StoreError::AlreadyExists("plugin version"));
        }
        let row = txn
            .query_one(
                "SELECT count(*), coalesce(sum(size), 0)::int8 FROM plugins WHERE tenant = $1",
                &[&t],
            )
            .await?;
        let (versions, bytes): (i64, i64) = (row.try_get(0)?, row.try_get(1)?);
        if usize::try_from(versions).unwrap_or(usize::MAX) >= quota.max_versions {
            return Err(StoreError::LimitReached {
                what: "plugin versions",
                limit: quota.max_versions,
            });
        }
        if u64::try_from(bytes)
            .unwrap_or(0)
            .saturating_add(plugin.size)
            > quota.max_bytes
        {
            return Err(StoreError::LimitReached {
                what: "bytes of plugin modules",
                limit: usize::try_from(quota.max_bytes).unwrap_or(usize::MAX),
            });
        }
        txn.execute(
            "INSERT INTO plugins (tenant, name, version, sha256, size, data) \
             VALUES ($1, $2, $3, $4, $5, $6)",
            &[
                &t,
                &plugin.name,
                &plugin.version,
                &plugin.sha256,
                &super::big(plugin.size),
                &record,
            ],
        )
        .await?;
        txn.execute(
            "INSERT INTO plugin_modules (tenant, sha256, module) VALUES ($1, $2, $3) \
             ON CONFLICT (tenant, sha256) DO NOTHING",
            &[&t, &plugin.sha256, &module],
        )
        .await?;
        let change = Change::Plugin {
            tenant: plugin.tenant_id.clone(),
            name: plugin.name.clone(),
            version: plugin.version.clone(),
        };
        log_changes(&txn, std::slice::from_ref(&change)).await?;
        self.commit(txn).await?;
        self.announce(vec![change]);
        Ok(())
    }

    pub(super) async fn list_plugins(&self, tenant: &TenantId) -> StoreResult<Vec<PluginRecord>> {
        let rows = self
            .client()
            .await?
            .query(
                "SELECT data FROM plugins WHERE tenant = $1 ORDER BY name, version",
                &[&tenant.as_str()],
            )
            .await?;
        rows.iter()
            .map(|r| decode::<PluginRecord>("plugins", r.try_get::<_, &[u8]>(0)?))
            .collect()
    }

    pub(super) async fn get_plugin(
        &self,
        tenant: &TenantId,
        name: &str,
        version: &str,
    ) -> StoreResult<Option<PluginRecord>> {
        let row = self
            .client()
            .await?
            .query_opt(
                "SELECT data FROM plugins WHERE tenant = $1 AND name = $2 AND version = $3",
                &[&tenant.as_str(), &name, &version],
            )
            .await?;
        row.map(|r| decode("plugins", r.try_get::<_, &[u8]>(0)?))
            .transpose()
    }

    pub(super) async fn get_plugin_module(
        &self,
        tenant: &TenantId,
        name: &str,
        version: &str,
    ) -> StoreResult<Option<Vec<u8>>> {
        let row = self
            .client()
            .await?
            .query_opt(
                "SELECT m.module FROM plugins p JOIN plugin_modules m \
                 ON m.tenant = p.tenant AND m.sha256 = p.sha256 \
                 WHERE p.tenant = $1 AND p.name = $2 AND p.version = $3",
                &[&tenant.as_str(), &name, &version],
            )
            .await?;
        Ok(row.map(|r| r.try_get::<_, Vec<u8>>(0)).transpose()?)
    }

    pub(super) async fn delete_plugin(
        &self,
        tenant: &TenantId,
        name: &str,
        version: &str,
    ) -> StoreResult<()> {
        self.writable()?;
        let t = tenant.as_str();
        let mut client = self.client().await?;
        let txn = client.transaction().await?;
        let Some(row) = txn
            .query_opt(
                "DELETE FROM plugins WHERE tenant = $1 AND name = $2 AND version = $3 \
                 RETURNING sha256",
                &[&t, &name, &version],
            )
            .await?
        else {
            return Err(StoreError::NotFound("plugin version"));
        };
        let sha: String = row.try_get(0)?;
        txn.execute(
            "DELETE FROM plugin_modules m WHERE m.tenant = $1 AND m.sha256 = $2 \
             AND NOT EXISTS (SELECT 1 FROM plugins p WHERE p.tenant = $1 AND p.sha256 = $2)",
            &[&t, &sha],
        )
        .await?;
        let change = Change::Plugin {
            tenant: tenant.clone(),
            name: name.to_owned(),
            version: version.to_owned(),
        };
        log_changes(&txn, std::slice::from_ref(&change)).await?;
        self.commit(txn).await?;
        self.announce(vec![change]);
        Ok(())
    }

    pub(super) async fn capture_inbox(&self, message: InboxMessage) -> StoreResult<()> {
        self.writable()?;
        let bytes = encode(&message)?;
        self.client()
            .await?
            .execute(
                "INSERT INTO inbox (tenant, endpoint_id, id, received_at, data) \
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT (tenant, endpoint_id, id) \
                 DO UPDATE SET data = EXCLUDED.data, received_at = EXCLUDED.received_at",
                &[
                    &message.tenant_id.as_str(),
                    &message.endpoint_id.as_str(),
                    &message.id.as_str(),
                    &message.received_at,
                    &bytes,
                ],
            )
            .await?;
        Ok(())
    }

    pub(super) async fn list_inbox(
        &self,
        tenant: &TenantId,
        endpoint: &EndpointId,
        page: PageRequest,
    ) -> StoreResult<Page<InboxMessage>> {
        let limit = limit_of(&page);
        let rows = self
            .client()
            .await?
            .query(
                "SELECT id, data FROM inbox WHERE tenant = $1 AND endpoint_id = $2 AND id > $3 \
                 ORDER BY id LIMIT $4",
                &[
                    &tenant.as_str(),
                    &endpoint.as_str(),
                    &page.after.unwrap_or_default(),
                    &(limit as i64),
                ],
            )
            .await?;
        let items = rows
            .iter()
            .map(|r| decode::<InboxMessage>("inbox", r.try_get::<_, &[u8]>(1)?))
            .collect::<StoreResult<Vec<_>>>()?;
        Ok(page_of(items, limit, |m| m.id.to_string()))
    }
}
