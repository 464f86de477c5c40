//! The audit log (SPEC SEC-3): who did what to which resource, when, from where.
//!
//! A request's context (actor, request id, client address) is set once by the scope
//! layer (`api::scopes::enforce`) for the request's task. A handler that changes
//! something declares its intent ([`intend`]: action, resource, details — never a
//! secret); the store's next write in that task takes it ([`take`]) and appends the
//! record in the same transaction as the change, so a change without its record (or a
//! record without its change) cannot be committed. Operations that change nothing in
//! the store (a secret revealed, a snapshot written) append their record on their own.
//!
//! Records form one hash chain per tenant (and one for the node's own operations):
//! each carries `seq`, the hash of the record before it and its own hash over both
//! ([`AuditEntry::seal`]), so an edited, removed or reordered record breaks the chain
//! at that point ([`verify_chain`], `gp audit verify`).

use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::ids::{KeyId, TenantId};

/// Who acted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AuditActor {
    /// `admin` (the admin token), `key` (an API key) or `system` (GatePulse itself,
    /// e.g. an endpoint disabled after a `410`).
    pub kind: String,
    /// The API key's id, for `key`.
    #[schema(value_type = Option<String>)]
    pub key_id: Option<KeyId>,
}

impl AuditActor {
    pub fn admin() -> Self {
        Self {
            kind: "admin".into(),
            key_id: None,
        }
    }

    pub fn key(id: KeyId) -> Self {
        Self {
            kind: "key".into(),
            key_id: Some(id),
        }
    }

    pub fn system() -> Self {
        Self {
            kind: "system".into(),
            key_id: None,
        }
    }

    /// The actor as filters name it: `admin`, `system` or the key id.
    pub fn label(&self) -> String {
        match &self.key_id {
            Some(id) => id.to_string(),
            None => self.kind.clone(),
        }
    }
}

/// What was acted on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AuditResource {
    /// `tenant`, `api_key`, `endpoint`, `subscription`, `plugin`, `event`, `dlq`,
    /// `store`, `master_key`.
    pub kind: String,
    pub id: String,
}

impl AuditResource {
    pub fn new(kind: &str, id: impl std::fmt::Display) -> Self {
        Self {
            kind: kind.to_owned(),
            id: id.to_string(),
        }
    }
}

/// A record before the store numbers and chains it.
#[derive(Debug, Clone)]
pub struct AuditEntry {
    /// The tenant whose chain it joins; `None`: the node's chain.
    pub tenant: Option<TenantId>,
    pub at: i64,
    pub actor: AuditActor,
    pub action: String,
    pub resource: AuditResource,
    pub request_id: Option<String>,
    pub client_addr: Option<String>,
    pub details: serde_json::Value,
}

/// One stored audit record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AuditRecord {
    pub id: String,
    #[schema(value_type = Option<String>)]
    pub tenant_id: Option<TenantId>,
    /// Position in its chain, from 1.
    pub seq: u64,
    /// Unix milliseconds.
    pub at: i64,
    pub actor: AuditActor,
    /// e.g. `endpoint.create`, `api_key.revoke`, `dlq.requeue`.
    pub action: String,
    pub resource: AuditResource,
    pub request_id: Option<String>,
    pub client_addr: Option<String>,
    /// What changed, without secret values.
    #[schema(value_type = Object)]
    pub details: serde_json::Value,
    /// `hash` of the record before it in the chain (empty for the first).
    pub prev_hash: String,
    /// SHA-256 (hex) over `prev_hash` and this record with `hash` empty.
    pub hash: String,
}

impl AuditEntry {
    /// The chain a record joins: the tenant id, or `""` for the node's own.
    pub fn chain(&self) -> &str {
        self.tenant.as_ref().map_or("", TenantId::as_str)
    }

    /// The stored record: number `seq` of its chain, after the record hashed
    /// `prev_hash`.
    pub fn seal(self, id: String, seq: u64, prev_hash: &str) -> AuditRecord {
        let mut record = AuditRecord {
            id,
            tenant_id: self.tenant,
            seq,
            at: self.at,
            actor: self.actor,
            action: self.action,
            resource: self.resource,
            request_id: self.request_id,
            client_addr: self.client_addr,
            details: self.details,
            prev_hash: prev_hash.to_owned(),
            hash: String::new(),
        };
        record.hash = record_hash(&record);
        record
    }
}

/// The hash a record must carry: over its content with `hash` empty (which includes
/// `prev_hash`).
pub fn record_hash(record: &AuditRecord) -> String {
    let mut blank = record.clone();
    blank.hash.clear();
    // Struct fields serialize in declaration order and JSON objects with sorted keys
    // (serde_json without `preserve_order`): the same record always gives the same bytes.
    let bytes = serde_json::to_vec(&blank).unwrap_or_default();
    hex::encode(Sha256::digest(bytes))
}

/// One record as the API and the stream (topic `audit`) show it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AuditOut {
    pub id: String,
    /// The tenant whose chain holds it; `null`: the node's own operations.
    pub tenant_id: Option<String>,
    /// Position in its chain, from 1.
    pub seq: u64,
    pub at: String,
    pub actor: AuditActor,
    pub action: String,
    pub resource: AuditResource,
    pub request_id: Option<String>,
    pub client_addr: Option<String>,
    #[schema(value_type = Object)]
    pub details: serde_json::Value,
    pub prev_hash: String,
    pub hash: String,
}

impl From<AuditRecord> for AuditOut {
    fn from(r: AuditRecord) -> Self {
        Self {
            id: r.id,
            tenant_id: r.tenant_id.map(|t| t.to_string()),
            seq: r.seq,
            at: crate::clock::rfc3339(r.at),
            actor: r.actor,
            action: r.action,
            resource: r.resource,
            request_id: r.request_id,
            client_addr: r.client_addr,
            details: r.details,
            prev_hash: r.prev_hash,
            hash: r.hash,
        }
    }
}

impl AuditRecord {
    /// The record as the API shows it, as JSON text (the data of its stream item).
    pub fn shown(&self) -> String {
        // Strings, numbers and a JSON value: serializing cannot fail.
        serde_json::to_string(&AuditOut::from(self.clone())).unwrap_or_default()
    }
}

/// Where a chain first breaks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct BrokenLink {
    /// The tenant of the chain (`null`: the node's chain).
    pub tenant_id: Option<String>,
    pub seq: u64,
    pub id: String,
    /// `hash_mismatch` (the record was changed), `prev_hash_mismatch` (a record
    /// before it was changed or removed), `seq_gap` (records are missing).
    pub reason: &'static str,
}

/// Checks one chain's records, given in `seq` order. The first record may follow
/// records retention removed (its `prev_hash` is then taken as given).
pub fn verify_chain<'a>(records: impl IntoIterator<Item = &'a AuditRecord>) -> Option<BrokenLink> {
    let mut prev: Option<&AuditRecord> = None;
    for r in records {
        let broken = |reason| {
            Some(BrokenLink {
                tenant_id: r.tenant_id.as_ref().map(ToString::to_string),
                seq: r.seq,
                id: r.id.clone(),
                reason,
            })
        };
        if record_hash(r) != r.hash {
            return broken("hash_mismatch");
        }
        match prev {
            Some(p) if r.seq != p.seq + 1 => return broken("seq_gap"),
            Some(p) if r.prev_hash != p.hash => return broken("prev_hash_mismatch"),
            None if r.seq == 1 && !r.prev_hash.is_empty() => return broken("prev_hash_mismatch"),
            _ => {}
        }
        prev = Some(r);
    }
    None
}

/// What a handler is about to do.
#[derive(Debug, Clone)]
pub struct Intent {
    pub tenant: Option<TenantId>,
    pub action: &'static str,
    pub resource: AuditResource,
    pub details: serde_json::Value,
}

/// A request's audit context. Set for every authenticated request (publishes
/// included), so it holds what it has as it came (a shared header value, an address)
/// and makes strings only when a record is written.
#[derive(Debug)]
pub struct Context {
    pub actor: AuditActor,
    request_id: Option<hyper::http::HeaderValue>,
    client_addr: Option<std::net::IpAddr>,
    pending: Mutex<Option<Intent>>,
}

impl Context {
    pub fn new(
        actor: AuditActor,
        request_id: Option<hyper::http::HeaderValue>,
        client_addr: Option<std::net::IpAddr>,
    ) -> Self {
        Self {
            actor,
            request_id,
            client_addr,
            pending: Mutex::new(None),
        }
    }

    fn entry(&self, intent: Intent) -> AuditEntry {
        AuditEntry {
            tenant: intent.tenant,
            at: crate::clock::now_ms(),
            actor: self.actor.clone(),
            action: intent.action.to_owned(),
            resource: intent.resource,
            request_id: self
                .request_id
                .as_ref()
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
            client_addr: self.client_addr.map(|a| a.to_string()),
            details: intent.details,
        }
    }
}

tokio::task_local! {
    static CONTEXT: Context;
}

/// Runs `fut` (a request's handling) with `context` as its audit context.
pub async fn scope<F: std::future::Future>(context: Context, fut: F) -> F::Output {
    CONTEXT.scope(context, fut).await
}

/// Runs `fut` as GatePulse itself acting (no request), with `intent` pending for its
/// first write.
pub async fn as_system<F: std::future::Future>(intent: Intent, fut: F) -> F::Output {
    let context = Context::new(AuditActor::system(), None, None);
    if let Ok(mut p) = context.pending.lock() {
        *p = Some(intent);
    }
    CONTEXT.scope(context, fut).await
}

/// Declares what the current request is about to change; the store's next write in
/// this task records it. Outside a request context it does nothing.
pub fn intend(intent: Intent) {
    let _ = CONTEXT.try_with(|c| {
        if let Ok(mut p) = c.pending.lock() {
            *p = Some(intent);
        }
    });
}

/// [`intend`] in one line: `action` on the resource `kind`/`id` of `tenant`.
pub fn record(
    tenant: Option<&TenantId>,
    action: &'static str,
    kind: &str,
    id: impl std::fmt::Display,
    details: serde_json::Value,
) {
    intend(Intent {
        tenant: tenant.cloned(),
        action,
        resource: AuditResource::new(kind, id),
        details,
    });
}

/// The declared intent as an entry, taken (a backend calls this as it starts a write
/// and appends the entry in that write's transaction).
pub fn take() -> Option<AuditEntry> {
    CONTEXT
        .try_with(|c| {
            let intent = c.pending.lock().ok()?.take()?;
            Some(c.entry(intent))
        })
        .ok()
        .flatten()
}

/// An entry for something that changes nothing in the store (a secret revealed, a
/// snapshot written), to append on its own; `None` outside a request context.
pub fn entry_now(intent: Intent) -> Option<AuditEntry> {
    CONTEXT.try_with(|c| c.entry(intent)).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(action: &str) -> AuditEntry {
        AuditEntry {
            tenant: Some(TenantId::generate(1)),
            at: 1,
            actor: AuditActor::admin(),
            action: action.into(),
            resource: AuditResource::new("endpoint", "ep_1"),
            request_id: Some("req_1".into()),
            client_addr: Some("127.0.0.1".into()),
            details: serde_json::json!({"b": 1, "a": [1, 2]}),
        }
    }

    fn chain(n: u64) -> Vec<AuditRecord> {
        let mut out: Vec<AuditRecord> = Vec::new();
        for seq in 1..=n {
            let prev = out.last().map_or(String::new(), |r| r.hash.clone());
            out.push(entry("endpoint.update").seal(format!("aud_{seq}"), seq, &prev));
        }
        out
    }

    #[test]
    fn a_chain_verifies_and_each_kind_of_tampering_is_found_where_it_is() {
        let good = chain(5);
        assert_eq!(verify_chain(&good), None);
        // Retention removed the first two: the rest still verifies.
        assert_eq!(verify_chain(&good[2..]), None);

        let mut edited = good.clone();
        edited[2].action = "endpoint.delete".into();
        let b = verify_chain(&edited).unwrap();
        assert_eq!((b.seq, b.reason), (3, "hash_mismatch"));

        // Edited and re-hashed: the next record's link breaks.
        let mut rehashed = good.clone();
        rehashed[2].details = serde_json::json!({});
        rehashed[2].hash = record_hash(&rehashed[2]);
        let b = verify_chain(&rehashed).unwrap();
        assert_eq!((b.seq, b.reason), (4, "prev_hash_mismatch"));

        let mut removed = good.clone();
        removed.remove(1);
        let b = verify_chain(&removed).unwrap();
        assert_eq!((b.seq, b.reason), (3, "seq_gap"));
    }

    #[tokio::test]
    async fn an_intent_is_taken_once_and_only_inside_its_context() {
        let intent = Intent {
            tenant: None,
            action: "store.snapshot",
            resource: AuditResource::new("store", "/snap"),
            details: serde_json::Value::Null,
        };
        intend(intent.clone());
        assert!(take().is_none(), "no context: nothing pending");
        let ctx = Context::new(
            AuditActor::admin(),
            Some(hyper::http::HeaderValue::from_static("req_9")),
            None,
        );
        scope(ctx, async {
            assert!(take().is_none());
            intend(intent.clone());
            let e = take().unwrap();
            assert_eq!(
                (e.action.as_str(), e.request_id.as_deref()),
                ("store.snapshot", Some("req_9"))
            );
            assert!(take().is_none(), "taken once");
        })
        .await;
        as_system(intent, async {
            assert_eq!(take().unwrap().actor, AuditActor::system());
        })
        .await;
    }
}
