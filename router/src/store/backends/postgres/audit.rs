//! The audit log in PostgreSQL: `audit_log` rows by (chain, seq) and `audit_heads`, one
//! row per chain locked by the appending transaction, so records of one chain are
//! numbered and linked in commit order even with several nodes writing.

use deadpool_postgres::Transaction;

use super::{PgStore, decode, encode, limit_of, page_of};
use crate::audit::{AuditEntry, AuditRecord};
use crate::ids::AuditId;
use crate::store::{AuditQuery, Page, StoreResult};
use crate::stream::AUDIT_TOPIC;

/// Appends `entry` to its chain inside `txn`, and a record of a tenant's chain to that
/// tenant's stream (topic `audit`, the next cursor). Returns the record and whether it
/// went on a stream (the tail then has something to announce).
pub(super) async fn append_in(
    txn: &Transaction<'_>,
    entry: AuditEntry,
) -> StoreResult<(AuditRecord, bool)> {
    let chain = entry.chain().to_owned();
    // The tenant's cursor row first: the publishing transactions lock it, and taking it
    // before the chain's head keeps one lock order everywhere (no deadlock).
    let cursor = match &entry.tenant {
        Some(t) => txn
            .query_opt(
                "UPDATE tenant_state SET cursor = cursor + 1 WHERE tenant = $1 RETURNING cursor",
                &[&t.as_str()],
            )
            .await?
            .map(|r| r.try_get::<_, i64>(0))
            .transpose()?,
        None => None,
    };
    txn.execute(
        "INSERT INTO audit_heads (chain, seq, hash) VALUES ($1, 0, '') ON CONFLICT DO NOTHING",
        &[&chain],
    )
    .await?;
    let head = txn
        .query_one(
            "SELECT seq, hash FROM audit_heads WHERE chain = $1 FOR UPDATE",
            &[&chain],
        )
        .await?;
    let (seq, prev): (i64, String) = (head.try_get(0)?, head.try_get(1)?);
    let seq = u64::try_from(seq).unwrap_or(0) + 1;
    let id = AuditId::generate(entry.at).to_string();
    let record = entry.seal(id, seq, &prev);
    let seq_i = i64::try_from(seq).unwrap_or(i64::MAX);
    let json = encode(&record)?;
    txn.execute(
        "INSERT INTO audit_log (chain, seq, id, at, data) VALUES ($1, $2, $3, $4, $5)",
        &[&chain, &seq_i, &record.id, &record.at, &json],
    )
    .await?;
    if let Some(cursor) = cursor {
        let data = record.shown();
        txn.execute(
            "INSERT INTO stream_status (tenant, cursor, created_at, data, topic) \
             VALUES ($1, $2, $3, $4, $5)",
            &[&chain, &cursor, &record.at, &data, &AUDIT_TOPIC],
        )
        .await?;
    }
    txn.execute(
        "UPDATE audit_heads SET seq = $2, hash = $3 WHERE chain = $1",
        &[&chain, &seq_i, &record.hash],
    )
    .await?;
    Ok((record, cursor.is_some()))
}

impl PgStore {
    /// Commits `txn` with the request's pending audit record in it (if any): every
    /// configuration write of this backend ends here.
    pub(super) async fn commit(&self, txn: Transaction<'_>) -> StoreResult<()> {
        let streamed = match crate::audit::take() {
            Some(entry) => append_in(&txn, entry).await?.1,
            None => false,
        };
        txn.commit().await?;
        if streamed {
            self.committed();
        }
        Ok(())
    }

    pub(super) async fn append_audit(&self, entry: AuditEntry) -> StoreResult<AuditRecord> {
        self.writable()?;
        let mut client = self.client().await?;
        let txn = client.transaction().await?;
        let (record, streamed) = append_in(&txn, entry).await?;
        txn.commit().await?;
        if streamed {
            self.committed();
        }
        Ok(record)
    }

    pub(super) async fn list_audit(&self, query: AuditQuery) -> StoreResult<Page<AuditRecord>> {
        let limit = limit_of(&query.page);
        let client = self.client().await?;
        let mut after = query.page.after.clone().unwrap_or_default();
        let chain = query.tenant.as_ref().map(|t| t.to_string());
        let since = query.since.unwrap_or(i64::MIN);
        let until = query.until.unwrap_or(i64::MAX);
        // Filters other than tenant and time run here, over bounded batches.
        let mut items = Vec::new();
        loop {
            let rows = client
                .query(
                    "SELECT data FROM audit_log WHERE id > $1 \
                     AND ($2::text IS NULL OR chain = $2) AND at >= $3 AND at < $4 \
                     ORDER BY id LIMIT 500",
                    &[&after, &chain, &since, &until],
                )
                .await?;
            let exhausted = rows.len() < 500;
            for row in &rows {
                let r: AuditRecord = decode("audit_log", row.try_get::<_, &[u8]>(0)?)?;
                after.clone_from(&r.id);
                if query.matches(&r) {
                    items.push(r);
                    if items.len() == limit {
                        return Ok(page_of(items, limit, |r| r.id.clone()));
                    }
                }
            }
            if exhausted {
                return Ok(Page { items, next: None });
            }
        }
    }

    pub(super) async fn audit_chains(&self) -> StoreResult<Vec<String>> {
        let rows = self
            .client()
            .await?
            .query(
                "SELECT chain FROM audit_heads WHERE seq > 0 ORDER BY chain",
                &[],
            )
            .await?;
        rows.iter()
            .map(|r| Ok(r.try_get::<_, String>(0)?))
            .collect()
    }

    pub(super) async fn audit_chain(
        &self,
        chain: &str,
        after_seq: u64,
        limit: usize,
    ) -> StoreResult<Vec<AuditRecord>> {
        let after = i64::try_from(after_seq).unwrap_or(i64::MAX);
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = self
            .client()
            .await?
            .query(
                "SELECT data FROM audit_log WHERE chain = $1 AND seq > $2 ORDER BY seq LIMIT $3",
                &[&chain, &after, &limit],
            )
            .await?;
        rows.iter()
            .map(|r| decode("audit_log", r.try_get::<_, &[u8]>(0)?))
            .collect()
    }

    pub(super) async fn purge_audit(&self, before: i64, limit: usize) -> StoreResult<u64> {
        self.writable()?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        // Records are appended in time order per chain, so what is older than `before`
        // is each chain's start.
        let n = self
            .client()
            .await?
            .execute(
                "DELETE FROM audit_log WHERE (chain, seq) IN \
                 (SELECT chain, seq FROM audit_log WHERE at < $1 ORDER BY chain, seq LIMIT $2)",
                &[&before, &limit],
            )
            .await?;
        Ok(n)
    }
}
