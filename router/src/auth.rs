//! Authentication and scopes: who is calling, in which tenant, allowed to do what.
//!
//! Two kinds of caller: the admin token (from config; manages tenants and keys, and
//! acts inside a tenant named by the `GatePulse-Tenant` header) and API keys (act only
//! inside their own tenant, limited by their scopes). This module knows no HTTP: the
//! API layer extracts the header values and maps [`AuthError`] to responses.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::crypto;
use crate::ids::{KeyId, TenantId};
use crate::store::{Store, StoreError};

/// What an API key may do (SPEC SEC-1).
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
pub enum Scope {
    #[serde(rename = "events:write")]
    EventsWrite,
    #[serde(rename = "events:read")]
    EventsRead,
    #[serde(rename = "endpoints:manage")]
    EndpointsManage,
    #[serde(rename = "replay:write")]
    ReplayWrite,
    #[serde(rename = "dlq:manage")]
    DlqManage,
    #[serde(rename = "audit:read")]
    AuditRead,
    /// Read `/v1/stats` (queues and endpoint health) without managing anything.
    #[serde(rename = "stats:read")]
    StatsRead,
}

impl Scope {
    pub const ALL: [Scope; 7] = [
        Self::EventsWrite,
        Self::EventsRead,
        Self::EndpointsManage,
        Self::ReplayWrite,
        Self::DlqManage,
        Self::AuditRead,
        Self::StatsRead,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::EventsWrite => "events:write",
            Self::EventsRead => "events:read",
            Self::EndpointsManage => "endpoints:manage",
            Self::ReplayWrite => "replay:write",
            Self::DlqManage => "dlq:manage",
            Self::AuditRead => "audit:read",
            Self::StatsRead => "stats:read",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.as_str() == s)
    }
}

/// An authenticated caller.
#[derive(Debug, Clone)]
pub enum Principal {
    /// The admin token; `tenant` is the tenant named by `GatePulse-Tenant`, if any
    /// (already checked to exist).
    Admin { tenant: Option<TenantId> },
    /// An API key of `tenant` with these scopes.
    Key {
        id: KeyId,
        tenant: TenantId,
        scopes: Vec<Scope>,
        /// When the key stops authenticating, if ever.
        expires_at: Option<i64>,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("missing or malformed Authorization header (expected `Bearer <token>`)")]
    MissingToken,
    #[error("invalid or revoked token")]
    InvalidToken,
    #[error("this API key expired")]
    KeyExpired,
    #[error("this operation needs the `{}` scope", .0.as_str())]
    MissingScope(Scope),
    #[error("this operation needs the admin token")]
    AdminOnly,
    #[error("the admin token must name a tenant with the `GatePulse-Tenant` header")]
    TenantRequired,
    #[error("GatePulse-Tenant names an unknown tenant")]
    UnknownTenant,
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Principal {
    /// The tenant this caller acts in, if it may do `scope` there. The admin token may
    /// do everything inside the tenant it names.
    pub fn tenant_for(&self, scope: Scope) -> Result<&TenantId, AuthError> {
        match self {
            Self::Admin { tenant: Some(t) } => Ok(t),
            Self::Admin { tenant: None } => Err(AuthError::TenantRequired),
            Self::Key { tenant, scopes, .. } => {
                if scopes.contains(&scope) {
                    Ok(tenant)
                } else {
                    Err(AuthError::MissingScope(scope))
                }
            }
        }
    }

    /// Like [`Principal::tenant_for`] for an operation that any one of `scopes` allows;
    /// a key without any of them is refused naming the first.
    pub fn tenant_for_any(&self, scopes: &[Scope]) -> Result<&TenantId, AuthError> {
        let mut refusal = AuthError::TenantRequired;
        for scope in scopes {
            match self.tenant_for(*scope) {
                Ok(t) => return Ok(t),
                Err(e) if matches!(refusal, AuthError::TenantRequired) => refusal = e,
                Err(_) => {}
            }
        }
        Err(refusal)
    }

    /// Succeeds only for the admin token.
    pub fn require_admin(&self) -> Result<(), AuthError> {
        match self {
            Self::Admin { .. } => Ok(()),
            Self::Key { .. } => Err(AuthError::AdminOnly),
        }
    }

    /// The tenant of a key, or the one an admin acts in; `None` for a bare admin.
    pub fn tenant(&self) -> Option<&TenantId> {
        match self {
            Self::Admin { tenant } => tenant.as_ref(),
            Self::Key { tenant, .. } => Some(tenant),
        }
    }
}

/// Resolves bearer tokens to principals.
#[derive(Debug, Clone)]
pub struct Authenticator {
    store: Arc<dyn Store>,
    admin_token: Arc<str>,
    keys: Arc<KeyCache>,
}

/// Live keys recently looked up, by hash, so a request does not read the store for
/// its key. An entry lives at most [`KEY_CACHE_TTL`]; a revocation announced on the
/// commit feed drops it at once (on every node following the feed).
#[derive(Debug, Default)]
pub struct KeyCache {
    entries: std::sync::RwLock<std::collections::HashMap<String, (crate::store::ApiKey, Instant)>>,
}

/// How long a looked-up key is trusted without reading the store again.
pub const KEY_CACHE_TTL: Duration = Duration::from_secs(30);
/// Most keys held; past it the cache starts over.
const KEY_CACHE_MAX: usize = 10_000;

impl KeyCache {
    fn get(&self, hash: &str) -> Option<crate::store::ApiKey> {
        let entries = self.entries.read().ok()?;
        let (key, at) = entries.get(hash)?;
        (at.elapsed() < KEY_CACHE_TTL).then(|| key.clone())
    }

    fn put(&self, hash: String, key: crate::store::ApiKey) {
        if let Ok(mut entries) = self.entries.write() {
            if entries.len() >= KEY_CACHE_MAX {
                entries.clear();
            }
            entries.insert(hash, (key, Instant::now()));
        }
    }
}

impl crate::store::feed::FeedListener for KeyCache {
    fn committed(&self, batch: &crate::store::feed::Committed) {
        for change in &batch.changes {
            if let crate::store::feed::Change::ApiKey { id, .. } = change
                && let Ok(mut entries) = self.entries.write()
            {
                entries.retain(|_, (key, _)| key.id != *id);
            }
        }
    }
}

impl Authenticator {
    pub fn new(store: Arc<dyn Store>, admin_token: &str) -> Self {
        Self {
            store,
            admin_token: Arc::from(admin_token),
            keys: Arc::new(KeyCache::default()),
        }
    }

    /// The key cache, to subscribe to the commit feed.
    pub fn key_cache(&self) -> Arc<KeyCache> {
        self.keys.clone()
    }

    /// `token` is the bearer value; `acting_tenant` the `GatePulse-Tenant` header.
    pub async fn authenticate(
        &self,
        token: &str,
        acting_tenant: Option<&str>,
    ) -> Result<Principal, AuthError> {
        if token.is_empty() {
            return Err(AuthError::MissingToken);
        }
        if !self.admin_token.is_empty()
            && crypto::constant_time_eq(token.as_bytes(), self.admin_token.as_bytes())
        {
            let tenant = match acting_tenant {
                None => None,
                Some(raw) => {
                    let id = TenantId::parse(raw).ok_or(AuthError::UnknownTenant)?;
                    if self.store.get_tenant(&id).await?.is_none() {
                        return Err(AuthError::UnknownTenant);
                    }
                    Some(id)
                }
            };
            return Ok(Principal::Admin { tenant });
        }
        if !token.starts_with(crypto::API_KEY_PREFIX) {
            return Err(AuthError::InvalidToken);
        }
        let hash = crypto::hash_api_key(token);
        let key = match self.keys.get(&hash) {
            Some(key) => key,
            None => {
                let key = self
                    .store
                    .find_api_key(&hash)
                    .await?
                    .ok_or(AuthError::InvalidToken)?;
                self.keys.put(hash, key.clone());
                key
            }
        };
        if key.expires_at.is_some_and(|t| t <= crate::clock::now_ms()) {
            return Err(AuthError::KeyExpired);
        }
        Ok(Principal::Key {
            id: key.id,
            tenant: key.tenant_id,
            scopes: key.scopes,
            expires_at: key.expires_at,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_round_trip_through_their_names() {
        for s in Scope::ALL {
            assert_eq!(Scope::parse(s.as_str()), Some(s));
            let json = serde_json::to_string(&s).unwrap();
            assert_eq!(json, format!("\"{}\"", s.as_str()));
        }
        assert_eq!(Scope::parse("events:delete"), None);
    }

    #[test]
    fn keys_are_limited_to_their_scopes_and_admin_needs_a_tenant() {
        let tenant = TenantId::generate(1);
        let key = Principal::Key {
            id: KeyId::generate(1),
            tenant: tenant.clone(),
            scopes: vec![Scope::EventsWrite],
            expires_at: None,
        };
        assert_eq!(key.tenant_for(Scope::EventsWrite).unwrap(), &tenant);
        assert!(matches!(
            key.tenant_for(Scope::ReplayWrite),
            Err(AuthError::MissingScope(Scope::ReplayWrite))
        ));
        assert!(key.require_admin().is_err());
        let admin = Principal::Admin { tenant: None };
        assert!(matches!(
            admin.tenant_for(Scope::EventsRead),
            Err(AuthError::TenantRequired)
        ));
        let admin = Principal::Admin {
            tenant: Some(tenant.clone()),
        };
        assert_eq!(admin.tenant_for(Scope::DlqManage).unwrap(), &tenant);
    }
}
