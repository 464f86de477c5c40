//! The audit log in redb: records by (chain, seq), an id index for the time-ordered
//! listing, and each chain's head (last seq and hash) that the next record links to.

use std::sync::Arc;

use redb::{ReadableTable, WriteTransaction};

use super::tables::{
    AUDIT, AUDIT_HEADS, AUDIT_IDS, COUNTER_CURSOR, COUNTERS, STREAM_STATUS, stream_row,
};
use super::{RedbStore, counter_get, decode, encode, tenant_exists};
use crate::audit::{AuditEntry, AuditRecord};
use crate::ids::AuditId;
use crate::store::feed::Committed;
use crate::store::{AuditQuery, Page, StoreResult};
use crate::stream::{AUDIT_TOPIC, StreamItem};

/// A tenant's audit record on its stream: the item to announce once committed.
pub(super) type Streamed = Option<(Box<str>, Arc<StreamItem>)>;

/// Appends `entry` to its chain inside `txn`, and a record of a tenant's chain to
/// that tenant's stream (topic `audit`, the next cursor).
pub(super) fn append_in(
    txn: &WriteTransaction,
    entry: AuditEntry,
) -> StoreResult<(AuditRecord, Streamed)> {
    let chain = entry.chain().to_owned();
    let mut heads = txn.open_table(AUDIT_HEADS)?;
    let (seq, prev) = match heads.get(chain.as_str())? {
        Some(v) => {
            let (seq, hash) = v.value();
            (seq + 1, hash.to_owned())
        }
        None => (1, String::new()),
    };
    let id = AuditId::generate(entry.at).to_string();
    let record = entry.seal(id, seq, &prev);
    let json = encode(&record)?;
    txn.open_table(AUDIT)?
        .insert((chain.as_str(), seq), json.as_slice())?;
    txn.open_table(AUDIT_IDS)?
        .insert(record.id.as_str(), (chain.as_str(), seq))?;
    heads.insert(chain.as_str(), (seq, record.hash.as_str()))?;
    drop(heads);
    let streamed = match &record.tenant_id {
        Some(t) if tenant_exists(txn, t.as_str())? => {
            Some(stream_in(txn, t.as_str(), record.at, &record.shown())?)
        }
        _ => None,
    };
    Ok((record, streamed))
}

/// Writes a record (as shown) at the tenant's next stream cursor.
fn stream_in(
    txn: &WriteTransaction,
    tenant: &str,
    at: i64,
    data: &str,
) -> StoreResult<(Box<str>, Arc<StreamItem>)> {
    let mut counters = txn.open_table(COUNTERS)?;
    let cursor = counter_get(&counters, tenant, COUNTER_CURSOR)? + 1;
    counters.insert((tenant, COUNTER_CURSOR), cursor)?;
    txn.open_table(STREAM_STATUS)?.insert(
        (tenant, cursor),
        (at, stream_row(AUDIT_TOPIC, data).as_slice()),
    )?;
    let item = StreamItem::new(cursor, AUDIT_TOPIC, at, data);
    Ok((tenant.into(), Arc::new(item)))
}

impl RedbStore {
    pub(super) async fn append_audit(&self, entry: AuditEntry) -> StoreResult<AuditRecord> {
        self.writable()?;
        let (record, streamed) = self.writer.write(move |txn| append_in(txn, entry)).await?;
        self.announce_audit(streamed);
        Ok(record)
    }

    /// Hands a committed audit record to live stream clients (after its durable
    /// commit; a client that saw a later cursor first re-reads this one from the
    /// store, and drops it here).
    pub(super) fn announce_audit(&self, streamed: Streamed) {
        if let Some((tenant, item)) = streamed
            && self.feed.wants_stream(&tenant)
        {
            self.feed.announce(Committed {
                stream: vec![(tenant, item)],
                ..Committed::default()
            });
        }
    }

    pub(super) async fn list_audit(&self, query: AuditQuery) -> StoreResult<Page<AuditRecord>> {
        self.read_blocking(move |txn| {
            let ids = txn.open_table(AUDIT_IDS)?;
            let records = txn.open_table(AUDIT)?;
            let limit = query.page.limit.max(1);
            let after = query.page.after.clone().unwrap_or_default();
            let mut items = Vec::new();
            let mut next = None;
            let range = ids.range::<&str>(after.as_str()..)?;
            for row in range {
                let (id, at) = row?;
                if id.value() == after {
                    continue;
                }
                let (chain, seq) = at.value();
                // The tenant filter before decoding: the chain is the tenant.
                if let Some(t) = &query.tenant
                    && chain != t.as_str()
                {
                    continue;
                }
                let Some(bytes) = records.get((chain, seq))? else {
                    continue;
                };
                let r: AuditRecord = decode("audit", bytes.value())?;
                if !query.matches(&r) {
                    continue;
                }
                if items.len() == limit {
                    next = items.last().map(|l: &AuditRecord| l.id.clone());
                    break;
                }
                items.push(r);
            }
            Ok(Page { items, next })
        })
        .await
    }

    pub(super) async fn audit_chains(&self) -> StoreResult<Vec<String>> {
        let txn = self.read()?;
        let heads = txn.open_table(AUDIT_HEADS)?;
        let mut out = Vec::new();
        for row in heads.iter()? {
            out.push(row?.0.value().to_owned());
        }
        Ok(out)
    }

    pub(super) async fn audit_chain(
        &self,
        chain: &str,
        after_seq: u64,
        limit: usize,
    ) -> StoreResult<Vec<AuditRecord>> {
        let chain = chain.to_owned();
        self.read_blocking(move |txn| {
            let records = txn.open_table(AUDIT)?;
            let mut out = Vec::new();
            let from = after_seq.saturating_add(1);
            for row in records.range((chain.as_str(), from)..=(chain.as_str(), u64::MAX))? {
                out.push(decode("audit", row?.1.value())?);
                if out.len() >= limit {
                    break;
                }
            }
            Ok(out)
        })
        .await
    }

    pub(super) async fn purge_audit(&self, before: i64, limit: usize) -> StoreResult<u64> {
        self.write(move |txn| {
            let chains: Vec<String> = {
                let heads = txn.open_table(AUDIT_HEADS)?;
                let mut v = Vec::new();
                for row in heads.iter()? {
                    v.push(row?.0.value().to_owned());
                }
                v
            };
            let mut records = txn.open_table(AUDIT)?;
            let mut ids = txn.open_table(AUDIT_IDS)?;
            let mut removed = 0u64;
            for chain in chains {
                loop {
                    if removed as usize >= limit {
                        return Ok(removed);
                    }
                    // The chain's oldest record; stop at the first one to keep.
                    let first = records
                        .range((chain.as_str(), 0)..=(chain.as_str(), u64::MAX))?
                        .next()
                        .transpose()?
                        .map(|(k, v)| (k.value().1, v.value().to_vec()));
                    let Some((seq, bytes)) = first else { break };
                    let r: AuditRecord = decode("audit", &bytes)?;
                    if r.at >= before {
                        break;
                    }
                    records.remove((chain.as_str(), seq))?;
                    ids.remove(r.id.as_str())?;
                    removed += 1;
                }
            }
            Ok(removed)
        })
        .await
    }
}
