//! The audit log in redb: records by (chain, seq), an id index for the time-ordered
//! listing, and each chain's head (last seq and hash) that the next record links to.

use redb::{ReadableTable, WriteTransaction};

use super::tables::{AUDIT, AUDIT_HEADS, AUDIT_IDS};
use super::{RedbStore, decode, encode};
use crate::audit::{AuditEntry, AuditRecord};
use crate::ids::AuditId;
use crate::store::{AuditQuery, Page, StoreResult};

/// Appends `entry` to its chain inside `txn`.
pub(super) fn append_in(txn: &WriteTransaction, entry: AuditEntry) -> StoreResult<AuditRecord> {
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
    txn.open_table(AUDIT)?
        .insert((chain.as_str(), seq), encode(&record)?.as_slice())?;
    txn.open_table(AUDIT_IDS)?
        .insert(record.id.as_str(), (chain.as_str(), seq))?;
    heads.insert(chain.as_str(), (seq, record.hash.as_str()))?;
    Ok(record)
}

impl RedbStore {
    pub(super) async fn append_audit(&self, entry: AuditEntry) -> StoreResult<AuditRecord> {
        self.write(move |txn| append_in(txn, entry)).await
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
