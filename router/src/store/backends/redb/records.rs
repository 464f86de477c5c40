//! Configuration records: tenants, API keys, endpoints, subscriptions, plugins and
//! inbox messages. Writes go through the writer as ordinary jobs; reads run inline.

use std::ops::Bound;

use redb::ReadableTable;

use crate::ids::{EndpointId, KeyId, SubscriptionId, TenantId};
use crate::store::{
    ApiKey, Endpoint, InboxMessage, Mutation, Page, PageRequest, PluginQuota, PluginRecord,
    RECORD_VERSION, StoreError, StoreResult, Subscription, Tenant,
};

use crate::store::feed::{Change, Committed};

use super::tables::*;
use super::{
    RedbStore, counter_add, counter_get, decode, encode, get_json, list_scoped, tenant_exists,
    upper,
};

impl RedbStore {
    pub(super) async fn create_tenant(&self, tenant: Tenant) -> StoreResult<()> {
        let bytes = encode(&tenant)?;
        self.write(move |txn| {
            let mut t = txn.open_table(TENANTS)?;
            if t.get(tenant.id.as_str())?.is_some() {
                return Err(StoreError::Backend(format!("tenant {} exists", tenant.id)));
            }
            t.insert(tenant.id.as_str(), bytes.as_slice())?;
            Ok(())
        })
        .await
    }

    pub(super) async fn update_tenant(
        &self,
        id: &TenantId,
        change: Mutation<Tenant>,
    ) -> StoreResult<Tenant> {
        let id = id.clone();
        self.write(move |txn| {
            let mut table = txn.open_table(TENANTS)?;
            let mut tenant: Tenant = match table.get(id.as_str())? {
                Some(v) => decode("tenants", v.value())?,
                None => return Err(StoreError::NotFound("tenant")),
            };
            let (keep_id, keep_created) = (tenant.id.clone(), tenant.created_at);
            change(&mut tenant);
            tenant.id = keep_id;
            tenant.created_at = keep_created;
            tenant.record_version = RECORD_VERSION;
            table.insert(id.as_str(), encode(&tenant)?.as_slice())?;
            Ok(tenant)
        })
        .await
    }

    pub(super) async fn get_tenant(&self, id: &TenantId) -> StoreResult<Option<Tenant>> {
        let txn = self.read()?;
        let t = txn.open_table(TENANTS)?;
        match t.get(id.as_str())? {
            Some(v) => Ok(Some(decode("tenants", v.value())?)),
            None => Ok(None),
        }
    }

    pub(super) async fn list_tenants(&self, page: PageRequest) -> StoreResult<Page<Tenant>> {
        let txn = self.read()?;
        let t = txn.open_table(TENANTS)?;
        let limit = page.limit.max(1);
        let after = page.after.unwrap_or_default();
        let range = if after.is_empty() {
            t.range::<&str>(..)?
        } else {
            t.range::<&str>((Bound::Excluded(after.as_str()), Bound::Unbounded))?
        };
        let mut items = Vec::new();
        for row in range {
            let (_, v) = row?;
            let tenant: Tenant = decode("tenants", v.value())?;
            items.push(tenant);
            if items.len() == limit {
                let next = items.last().map(|t: &Tenant| t.id.to_string());
                return Ok(Page { items, next });
            }
        }
        Ok(Page { items, next: None })
    }

    pub(super) async fn create_api_key(&self, key: ApiKey) -> StoreResult<()> {
        let bytes = encode(&key)?;
        self.write(move |txn| {
            if !tenant_exists(txn, key.tenant_id.as_str())? {
                return Err(StoreError::MissingReference("tenant"));
            }
            txn.open_table(API_KEYS)?
                .insert((key.tenant_id.as_str(), key.id.as_str()), bytes.as_slice())?;
            txn.open_table(API_KEY_HASHES)?
                .insert(key.hash.as_str(), (key.tenant_id.as_str(), key.id.as_str()))?;
            Ok(())
        })
        .await
    }

    pub(super) async fn list_api_keys(
        &self,
        tenant: &TenantId,
        page: PageRequest,
    ) -> StoreResult<Page<ApiKey>> {
        let tenant = tenant.clone();
        self.read_blocking(move |txn| {
            let tenant = &tenant;
            list_scoped(txn, API_KEYS, "api_keys", tenant.as_str(), &page, |_| true)
        })
        .await
    }

    pub(super) async fn revoke_api_key(
        &self,
        tenant: &TenantId,
        id: &KeyId,
        at: i64,
    ) -> StoreResult<Option<ApiKey>> {
        let announced = Change::ApiKey {
            tenant: tenant.clone(),
            id: id.clone(),
        };
        let (tenant, id) = (tenant.clone(), id.clone());
        let revoked = self
            .write(move |txn| {
                let mut keys = txn.open_table(API_KEYS)?;
                let mut key: ApiKey = match keys.get((tenant.as_str(), id.as_str()))? {
                    Some(v) => decode("api_keys", v.value())?,
                    None => return Ok(None),
                };
                if key.revoked_at.is_some() {
                    return Ok(Some(key));
                }
                key.revoked_at = Some(at);
                keys.insert((tenant.as_str(), id.as_str()), encode(&key)?.as_slice())?;
                txn.open_table(API_KEY_HASHES)?.remove(key.hash.as_str())?;
                Ok(Some(key))
            })
            .await?;
        if revoked.is_some() {
            self.feed.announce(Committed::change(announced));
        }
        Ok(revoked)
    }

    pub(super) async fn find_api_key(&self, hash: &str) -> StoreResult<Option<ApiKey>> {
        let txn = self.read()?;
        let hashes = txn.open_table(API_KEY_HASHES)?;
        let Some(found) = hashes.get(hash)? else {
            return Ok(None);
        };
        let (tenant, id) = found.value();
        let key: Option<ApiKey> = get_json(&txn, API_KEYS, "api_keys", tenant, id)?;
        Ok(key.filter(|k| k.revoked_at.is_none()))
    }

    pub(super) async fn create_endpoint(
        &self,
        endpoint: Endpoint,
        max_per_tenant: usize,
    ) -> StoreResult<()> {
        let bytes = encode(&endpoint)?;
        self.write(move |txn| {
            let tenant = endpoint.tenant_id.as_str();
            if !tenant_exists(txn, tenant)? {
                return Err(StoreError::MissingReference("tenant"));
            }
            let mut counters = txn.open_table(COUNTERS)?;
            if counter_get(&counters, tenant, COUNTER_ENDPOINTS)? >= max_per_tenant as u64 {
                return Err(StoreError::LimitReached {
                    what: "endpoints",
                    limit: max_per_tenant,
                });
            }
            txn.open_table(ENDPOINTS)?
                .insert((tenant, endpoint.id.as_str()), bytes.as_slice())?;
            counter_add(&mut counters, tenant, COUNTER_ENDPOINTS, 1)?;
            Ok(())
        })
        .await
    }

    pub(super) async fn get_endpoint(
        &self,
        tenant: &TenantId,
        id: &EndpointId,
    ) -> StoreResult<Option<Endpoint>> {
        let txn = self.read()?;
        get_json(&txn, ENDPOINTS, "endpoints", tenant.as_str(), id.as_str())
    }

    pub(super) async fn list_endpoints(
        &self,
        tenant: &TenantId,
        page: PageRequest,
    ) -> StoreResult<Page<Endpoint>> {
        let tenant = tenant.clone();
        self.read_blocking(move |txn| {
            let tenant = &tenant;
            list_scoped(txn, ENDPOINTS, "endpoints", tenant.as_str(), &page, |_| {
                true
            })
        })
        .await
    }

    pub(super) async fn update_endpoint(
        &self,
        tenant: &TenantId,
        id: &EndpointId,
        change: Mutation<Endpoint>,
    ) -> StoreResult<Endpoint> {
        let (tenant, id) = (tenant.clone(), id.clone());
        let updated = self
            .write(move |txn| {
                let mut table = txn.open_table(ENDPOINTS)?;
                let mut endpoint: Endpoint = match table.get((tenant.as_str(), id.as_str()))? {
                    Some(v) => decode("endpoints", v.value())?,
                    None => return Err(StoreError::NotFound("endpoint")),
                };
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
                table.insert(
                    (tenant.as_str(), id.as_str()),
                    encode(&endpoint)?.as_slice(),
                )?;
                Ok(endpoint)
            })
            .await?;
        self.feed.announce(Committed::change(Change::Endpoint {
            tenant: updated.tenant_id.clone(),
            id: updated.id.clone(),
            deleted: false,
        }));
        Ok(updated)
    }

    pub(super) async fn delete_endpoint(
        &self,
        tenant: &TenantId,
        id: &EndpointId,
    ) -> StoreResult<Vec<SubscriptionId>> {
        let (tenant, id) = (tenant.clone(), id.clone());
        let (t2, id2) = (tenant.clone(), id.clone());
        let doomed = self
            .write(move |txn| {
                let t = tenant.as_str();
                let mut endpoints = txn.open_table(ENDPOINTS)?;
                if endpoints.get((t, id.as_str()))?.is_none() {
                    return Err(StoreError::NotFound("endpoint"));
                }
                let mut subs = txn.open_table(SUBSCRIPTIONS)?;
                let up = upper(t);
                let mut doomed = Vec::new();
                for row in subs.range::<(&str, &str)>((t, "")..(up.as_str(), ""))? {
                    let (_, v) = row?;
                    let sub: Subscription = decode("subscriptions", v.value())?;
                    if sub.endpoint_id == id {
                        doomed.push(sub.id);
                    }
                }
                endpoints.remove((t, id.as_str()))?;
                for sub in &doomed {
                    subs.remove((t, sub.as_str()))?;
                }
                let mut counters = txn.open_table(COUNTERS)?;
                counter_add(&mut counters, t, COUNTER_ENDPOINTS, -1)?;
                counter_add(
                    &mut counters,
                    t,
                    COUNTER_SUBSCRIPTIONS,
                    -(doomed.len() as i64),
                )?;
                Ok(doomed)
            })
            .await?;
        let mut changes: Vec<Change> = doomed
            .iter()
            .map(|sub| Change::Subscription {
                tenant: t2.clone(),
                id: sub.clone(),
            })
            .collect();
        changes.push(Change::Endpoint {
            tenant: t2,
            id: id2,
            deleted: true,
        });
        self.feed.announce(Committed {
            changes,
            ..Committed::default()
        });
        Ok(doomed)
    }

    pub(super) async fn create_subscription(
        &self,
        subscription: Subscription,
        max_per_tenant: usize,
    ) -> StoreResult<()> {
        let bytes = encode(&subscription)?;
        let change = Change::Subscription {
            tenant: subscription.tenant_id.clone(),
            id: subscription.id.clone(),
        };
        self.write(move |txn| {
            let t = subscription.tenant_id.as_str();
            if txn
                .open_table(ENDPOINTS)?
                .get((t, subscription.endpoint_id.as_str()))?
                .is_none()
            {
                return Err(StoreError::MissingReference("endpoint"));
            }
            let mut counters = txn.open_table(COUNTERS)?;
            if counter_get(&counters, t, COUNTER_SUBSCRIPTIONS)? >= max_per_tenant as u64 {
                return Err(StoreError::LimitReached {
                    what: "subscriptions",
                    limit: max_per_tenant,
                });
            }
            txn.open_table(SUBSCRIPTIONS)?
                .insert((t, subscription.id.as_str()), bytes.as_slice())?;
            counter_add(&mut counters, t, COUNTER_SUBSCRIPTIONS, 1)?;
            Ok(())
        })
        .await?;
        self.feed.announce(Committed::change(change));
        Ok(())
    }

    pub(super) async fn get_subscription(
        &self,
        tenant: &TenantId,
        id: &SubscriptionId,
    ) -> StoreResult<Option<Subscription>> {
        let txn = self.read()?;
        get_json(
            &txn,
            SUBSCRIPTIONS,
            "subscriptions",
            tenant.as_str(),
            id.as_str(),
        )
    }

    pub(super) async fn list_subscriptions(
        &self,
        tenant: &TenantId,
        endpoint: Option<&EndpointId>,
        page: PageRequest,
    ) -> StoreResult<Page<Subscription>> {
        let tenant = tenant.clone();
        let endpoint = endpoint.cloned();
        self.read_blocking(move |txn| {
            let tenant = &tenant;
            let endpoint = endpoint.as_ref();
            list_scoped(
                txn,
                SUBSCRIPTIONS,
                "subscriptions",
                tenant.as_str(),
                &page,
                |s: &Subscription| endpoint.is_none_or(|e| &s.endpoint_id == e),
            )
        })
        .await
    }

    pub(super) async fn all_subscriptions(
        &self,
        tenant: &TenantId,
    ) -> StoreResult<Vec<Subscription>> {
        let tenant = tenant.clone();
        self.read_blocking(move |txn| {
            let tenant = &tenant;
            let table = txn.open_table(SUBSCRIPTIONS)?;
            let t = tenant.as_str();
            let up = upper(t);
            let mut out = Vec::new();
            for row in table.range::<(&str, &str)>((t, "")..(up.as_str(), ""))? {
                let (_, v) = row?;
                out.push(decode("subscriptions", v.value())?);
            }
            Ok(out)
        })
        .await
    }

    pub(super) async fn update_subscription(
        &self,
        tenant: &TenantId,
        id: &SubscriptionId,
        change: Mutation<Subscription>,
    ) -> StoreResult<Subscription> {
        let announced = Change::Subscription {
            tenant: tenant.clone(),
            id: id.clone(),
        };
        let (tenant, id) = (tenant.clone(), id.clone());
        let sub = self
            .write(move |txn| {
                let t = tenant.as_str();
                let mut table = txn.open_table(SUBSCRIPTIONS)?;
                let mut sub: Subscription = match table.get((t, id.as_str()))? {
                    Some(v) => decode("subscriptions", v.value())?,
                    None => return Err(StoreError::NotFound("subscription")),
                };
                let (keep_id, keep_tenant, keep_created) =
                    (sub.id.clone(), sub.tenant_id.clone(), sub.created_at);
                change(&mut sub);
                sub.id = keep_id;
                sub.tenant_id = keep_tenant;
                sub.created_at = keep_created;
                sub.record_version = RECORD_VERSION;
                if txn
                    .open_table(ENDPOINTS)?
                    .get((t, sub.endpoint_id.as_str()))?
                    .is_none()
                {
                    return Err(StoreError::MissingReference("endpoint"));
                }
                table.insert((t, id.as_str()), encode(&sub)?.as_slice())?;
                Ok(sub)
            })
            .await?;
        self.feed.announce(Committed::change(announced));
        Ok(sub)
    }

    pub(super) async fn delete_subscription(
        &self,
        tenant: &TenantId,
        id: &SubscriptionId,
    ) -> StoreResult<()> {
        let change = Change::Subscription {
            tenant: tenant.clone(),
            id: id.clone(),
        };
        let (tenant, id) = (tenant.clone(), id.clone());
        self.write(move |txn| {
            let t = tenant.as_str();
            if txn
                .open_table(SUBSCRIPTIONS)?
                .remove((t, id.as_str()))?
                .is_none()
            {
                return Err(StoreError::NotFound("subscription"));
            }
            counter_add(&mut txn.open_table(COUNTERS)?, t, COUNTER_SUBSCRIPTIONS, -1)?;
            Ok(())
        })
        .await?;
        self.feed.announce(Committed::change(change));
        Ok(())
    }

    pub(super) async fn create_plugin(
        &self,
        plugin: PluginRecord,
        module: Vec<u8>,
        quota: PluginQuota,
    ) -> StoreResult<()> {
        let record = encode(&plugin)?;
        let change = Change::Plugin {
            tenant: plugin.tenant_id.clone(),
            name: plugin.name.clone(),
            version: plugin.version.clone(),
        };
        self.write(move |txn| {
            let t = plugin.tenant_id.as_str();
            if !tenant_exists(txn, t)? {
                return Err(StoreError::MissingReference("tenant"));
            }
            let mut plugins = txn.open_table(PLUGINS)?;
            let key = (t, plugin.name.as_str(), plugin.version.as_str());
            if plugins.get(key)?.is_some() {
                return Err(StoreError::AlreadyExists("plugin version"));
            }
            // The quota: at most `max_versions` rows to read, so this stays cheap.
            let up = upper(t);
            let (mut versions, mut bytes) = (0usize, plugin.size);
            for row in plugins.range::<(&str, &str, &str)>((t, "", "")..(up.as_str(), "", ""))? {
                let other: PluginRecord = decode("plugins", row?.1.value())?;
                versions += 1;
                bytes = bytes.saturating_add(other.size);
                if versions >= quota.max_versions {
                    return Err(StoreError::LimitReached {
                        what: "plugin versions",
                        limit: quota.max_versions,
                    });
                }
            }
            if bytes > quota.max_bytes {
                return Err(StoreError::LimitReached {
                    what: "bytes of plugin modules",
                    limit: usize::try_from(quota.max_bytes).unwrap_or(usize::MAX),
                });
            }
            plugins.insert(key, record.as_slice())?;
            txn.open_table(PLUGIN_MODULES)?
                .insert((t, plugin.sha256.as_str()), module.as_slice())?;
            Ok(())
        })
        .await?;
        self.feed.announce(Committed::change(change));
        Ok(())
    }

    pub(super) async fn list_plugins(&self, tenant: &TenantId) -> StoreResult<Vec<PluginRecord>> {
        let tenant = tenant.clone();
        self.read_blocking(move |txn| {
            let tenant = &tenant;
            let t = tenant.as_str();
            let up = upper(t);
            let mut out = Vec::new();
            for row in txn
                .open_table(PLUGINS)?
                .range::<(&str, &str, &str)>((t, "", "")..(up.as_str(), "", ""))?
            {
                out.push(decode("plugins", row?.1.value())?);
            }
            Ok(out)
        })
        .await
    }

    pub(super) async fn get_plugin(
        &self,
        tenant: &TenantId,
        name: &str,
        version: &str,
    ) -> StoreResult<Option<PluginRecord>> {
        let txn = self.read()?;
        match txn
            .open_table(PLUGINS)?
            .get((tenant.as_str(), name, version))?
        {
            Some(v) => Ok(Some(decode("plugins", v.value())?)),
            None => Ok(None),
        }
    }

    pub(super) async fn get_plugin_module(
        &self,
        tenant: &TenantId,
        name: &str,
        version: &str,
    ) -> StoreResult<Option<Vec<u8>>> {
        let txn = self.read()?;
        let Some(v) = txn
            .open_table(PLUGINS)?
            .get((tenant.as_str(), name, version))?
        else {
            return Ok(None);
        };
        let record: PluginRecord = decode("plugins", v.value())?;
        Ok(txn
            .open_table(PLUGIN_MODULES)?
            .get((tenant.as_str(), record.sha256.as_str()))?
            .map(|m| m.value().to_vec()))
    }

    pub(super) async fn delete_plugin(
        &self,
        tenant: &TenantId,
        name: &str,
        version: &str,
    ) -> StoreResult<()> {
        let change = Change::Plugin {
            tenant: tenant.clone(),
            name: name.to_owned(),
            version: version.to_owned(),
        };
        let (t, name, version) = (tenant.to_string(), name.to_owned(), version.to_owned());
        self.write(move |txn| {
            let mut plugins = txn.open_table(PLUGINS)?;
            let key = (t.as_str(), name.as_str(), version.as_str());
            // Decode before removing: a job must not fail after it wrote.
            let record: PluginRecord = match plugins.get(key)? {
                Some(v) => decode("plugins", v.value())?,
                None => return Err(StoreError::NotFound("plugin version")),
            };
            plugins.remove(key)?;
            let up = upper(&t);
            let mut shared = false;
            for row in
                plugins.range::<(&str, &str, &str)>((t.as_str(), "", "")..(up.as_str(), "", ""))?
            {
                // A row that cannot be read might share the module: keep it.
                let other: StoreResult<PluginRecord> = decode("plugins", row?.1.value());
                shared |= other.map_or(true, |o| o.sha256 == record.sha256);
            }
            if !shared {
                txn.open_table(PLUGIN_MODULES)?
                    .remove((t.as_str(), record.sha256.as_str()))?;
            }
            Ok(())
        })
        .await?;
        self.feed.announce(Committed::change(change));
        Ok(())
    }

    pub(super) async fn capture_inbox(&self, message: InboxMessage) -> StoreResult<()> {
        let bytes = encode(&message)?;
        self.write(move |txn| {
            txn.open_table(INBOX)?.insert(
                (
                    message.tenant_id.as_str(),
                    message.endpoint_id.as_str(),
                    message.id.as_str(),
                ),
                bytes.as_slice(),
            )?;
            Ok(())
        })
        .await
    }

    pub(super) async fn list_inbox(
        &self,
        tenant: &TenantId,
        endpoint: &EndpointId,
        page: PageRequest,
    ) -> StoreResult<Page<InboxMessage>> {
        let tenant = tenant.clone();
        let endpoint = endpoint.clone();
        self.read_blocking(move |txn| {
            let tenant = &tenant;
            let endpoint = &endpoint;
            // Stores written before inboxes existed have no table yet.
            let inbox = match txn.open_table(INBOX) {
                Ok(t) => t,
                Err(redb::TableError::TableDoesNotExist(_)) => {
                    return Ok(Page {
                        items: Vec::new(),
                        next: None,
                    });
                }
                Err(e) => return Err(e.into()),
            };
            let (t, e) = (tenant.as_str(), endpoint.as_str());
            let up = upper(e);
            let start = match page.after.as_deref() {
                Some(a) => Bound::Excluded((t, e, a)),
                None => Bound::Included((t, e, "")),
            };
            let limit = page.limit.max(1);
            let mut items = Vec::new();
            for row in
                inbox.range::<(&str, &str, &str)>((start, Bound::Excluded((t, up.as_str(), ""))))?
            {
                let (k, v) = row?;
                items.push(decode("inbox", v.value())?);
                if items.len() == limit {
                    return Ok(Page {
                        items,
                        next: Some(k.value().2.to_owned()),
                    });
                }
            }
            Ok(Page { items, next: None })
        })
        .await
    }
}
