//! Retention on PostgreSQL: the same bounded, resumable pass as the embedded store
//! (see `Store::purge`), one transaction per call. Per tenant it goes through expired
//! events (a settled one goes with its deliveries and attempts, one still being
//! delivered is passed by), expired status items, old DLQ entries and replay records;
//! then through the inbox. The tenant's purge watermark is raised last, just before
//! the commit, so the tenant row (which publishes lock) is held only briefly.

use std::collections::HashMap;

use deadpool_postgres::Transaction;

use crate::ids::{DeliveryId, EventId};
use crate::store::{
    PurgeBudget, PurgeCursor, PurgePhase, PurgePolicy, PurgeReport, StoreResult, Tenant,
};

use super::{PgStore, big, decode, unbig};

type Finished = bool;

/// One pass's state inside its transaction.
struct Pass<'a, 't> {
    txn: &'a Transaction<'t>,
    budget: PurgeBudget,
    report: PurgeReport,
    /// Highest cursor removed per tenant.
    watermarks: HashMap<String, u64>,
}

impl Pass<'_, '_> {
    fn removed(&mut self, t: &str, cursor: u64) {
        let w = self.watermarks.entry(t.to_owned()).or_default();
        *w = (*w).max(cursor);
    }

    /// Drops deliveries and their attempts; returns rows removed.
    async fn drop_deliveries(&mut self, t: &str, ids: &[String]) -> StoreResult<usize> {
        if ids.is_empty() {
            return Ok(0);
        }
        let attempts = self
            .txn
            .execute(
                "DELETE FROM attempts WHERE tenant = $1 AND delivery_id = ANY($2)",
                &[&t, &ids],
            )
            .await?;
        let deliveries = self
            .txn
            .execute(
                "DELETE FROM deliveries WHERE tenant = $1 AND id = ANY($2)",
                &[&t, &ids],
            )
            .await?;
        self.report.deliveries += deliveries;
        self.report.attempts += attempts;
        Ok(usize::try_from(deliveries + attempts).unwrap_or(usize::MAX))
    }

    async fn events(
        &mut self,
        t: &str,
        events_before: i64,
        dead_before: i64,
        after: &mut Option<String>,
    ) -> StoreResult<Finished> {
        while !self.budget.spent() {
            let from = after
                .as_deref()
                .and_then(|a| a.parse::<u64>().ok())
                .unwrap_or(0);
            let chunk = self
                .txn
                .query(
                    "SELECT cursor, id, created_at, idempotency_key FROM events \
                     WHERE tenant = $1 AND cursor > $2 ORDER BY cursor LIMIT $3",
                    &[&t, &big(from), &(self.budget.left().min(256) as i64)],
                )
                .await?;
            if chunk.is_empty() {
                return Ok(true);
            }
            for r in &chunk {
                if self.budget.spent() {
                    return Ok(false);
                }
                let cursor = unbig(r.try_get(0)?);
                let id: String = r.try_get(1)?;
                let created_at: i64 = r.try_get(2)?;
                let key: Option<String> = r.try_get(3)?;
                *after = Some(cursor.to_string());
                self.budget.rows += 1;
                if created_at >= events_before {
                    return Ok(true); // acceptance order: every later event is younger
                }
                let prefix = DeliveryId::event_prefix(&EventId::from_trusted(id.clone()));
                let end = format!("{prefix}~");
                let ds = self
                    .txn
                    .query(
                        "SELECT id, status, updated_at FROM deliveries \
                         WHERE tenant = $1 AND id >= $2 AND id < $3",
                        &[&t, &prefix, &end],
                    )
                    .await?;
                let mut ids = Vec::with_capacity(ds.len());
                let mut settled = true;
                for d in &ds {
                    let status: &str = d.try_get(1)?;
                    let updated_at: i64 = d.try_get(2)?;
                    settled &= matches!(status, "succeeded" | "cancelled")
                        || (status == "dead" && updated_at < dead_before);
                    ids.push(d.try_get::<_, String>(0)?);
                }
                if !settled {
                    continue; // still being delivered: passed by
                }
                self.budget.rows += self.drop_deliveries(t, &ids).await?;
                self.txn
                    .execute(
                        "DELETE FROM events WHERE tenant = $1 AND cursor = $2",
                        &[&t, &big(cursor)],
                    )
                    .await?;
                self.budget.rows += 1;
                if let Some(key) = key {
                    self.budget.rows += usize::try_from(
                        self.txn
                            .execute(
                                "DELETE FROM idempotency WHERE tenant = $1 AND key = $2 \
                                 AND event_id = $3",
                                &[&t, &key, &id],
                            )
                            .await?,
                    )
                    .unwrap_or(0);
                }
                self.removed(t, cursor);
                self.report.events += 1;
            }
        }
        Ok(false)
    }

    async fn statuses(
        &mut self,
        t: &str,
        events_before: i64,
        after: &mut Option<String>,
    ) -> StoreResult<Finished> {
        let from = after
            .as_deref()
            .and_then(|a| a.parse::<u64>().ok())
            .unwrap_or(0);
        let left = self.budget.max_rows.saturating_sub(self.budget.rows).max(1);
        let rows = self
            .txn
            .query(
                "SELECT cursor, created_at FROM stream_status WHERE tenant = $1 AND cursor > $2 \
                 ORDER BY cursor LIMIT $3",
                &[&t, &big(from), &(left as i64 + 1)],
            )
            .await?;
        let mut doomed: Vec<i64> = Vec::new();
        let mut finished = true;
        for r in &rows {
            if r.try_get::<_, i64>(1)? >= events_before {
                break;
            }
            doomed.push(r.try_get(0)?);
            if doomed.len() >= left {
                finished = false;
                break;
            }
        }
        if let Some(last) = doomed.last() {
            self.txn
                .execute(
                    "DELETE FROM stream_status WHERE tenant = $1 AND cursor = ANY($2)",
                    &[&t, &doomed],
                )
                .await?;
            *after = Some(last.to_string());
            self.removed(t, unbig(*last));
        }
        self.budget.rows += doomed.len();
        self.report.other += doomed.len() as u64;
        Ok(finished && !self.budget.spent())
    }

    async fn dead(
        &mut self,
        t: &str,
        dead_before: i64,
        after: &mut Option<String>,
    ) -> StoreResult<Finished> {
        let left = self.budget.left();
        let rows = self
            .txn
            .query(
                "SELECT id, updated_at FROM deliveries WHERE tenant = $1 AND status = 'dead' \
                 AND id > $2 ORDER BY id LIMIT $3",
                &[&t, &after.clone().unwrap_or_default(), &(left as i64)],
            )
            .await?;
        let finished = rows.len() < left;
        let mut doomed = Vec::new();
        for r in &rows {
            let id: String = r.try_get(0)?;
            *after = Some(id.clone());
            self.budget.rows += 1;
            if r.try_get::<_, i64>(1)? < dead_before {
                doomed.push(id);
            }
        }
        self.budget.rows += self.drop_deliveries(t, &doomed).await?;
        Ok(finished && !self.budget.spent())
    }

    async fn replays(
        &mut self,
        t: &str,
        events_before: i64,
        after: &mut Option<String>,
    ) -> StoreResult<Finished> {
        let left = self.budget.max_rows.saturating_sub(self.budget.rows).max(1);
        let rows = self
            .txn
            .query(
                "SELECT id, created_at FROM replays WHERE tenant = $1 AND id > $2 \
                 ORDER BY id LIMIT $3",
                &[&t, &after.clone().unwrap_or_default(), &(left as i64 + 1)],
            )
            .await?;
        let mut doomed: Vec<String> = Vec::new();
        let mut finished = true;
        for r in &rows {
            if r.try_get::<_, i64>(1)? >= events_before {
                break;
            }
            doomed.push(r.try_get(0)?);
            if doomed.len() >= left {
                finished = false;
                break;
            }
        }
        if let Some(last) = doomed.last() {
            *after = Some(last.clone());
            self.txn
                .execute(
                    "DELETE FROM replays WHERE tenant = $1 AND id = ANY($2)",
                    &[&t, &doomed],
                )
                .await?;
        }
        self.budget.rows += doomed.len();
        self.report.other += doomed.len() as u64;
        Ok(finished && !self.budget.spent())
    }

    async fn inbox(&mut self, policy: &PurgePolicy) -> StoreResult<Finished> {
        if policy.inbox_max_age_secs == 0 {
            return Ok(true);
        }
        let before = policy.now.saturating_sub(
            i64::try_from(policy.inbox_max_age_secs)
                .unwrap_or(i64::MAX)
                .saturating_mul(1000),
        );
        while !self.budget.spent() {
            let left = self.budget.left();
            let n = self
                .txn
                .execute(
                    "DELETE FROM inbox WHERE ctid IN \
                     (SELECT ctid FROM inbox WHERE received_at < $1 LIMIT $2)",
                    &[&before, &(left as i64)],
                )
                .await?;
            let n = usize::try_from(n).unwrap_or(0);
            self.budget.rows += n;
            self.report.other += n as u64;
            if n < left {
                return Ok(true);
            }
        }
        Ok(false)
    }
}

impl PgStore {
    pub(super) async fn purge(
        &self,
        policy: PurgePolicy,
        from: PurgeCursor,
    ) -> StoreResult<PurgeReport> {
        let mut client = self.client().await?;
        let txn = client.transaction().await?;
        let mut pass = Pass {
            txn: &txn,
            budget: PurgeBudget::new(&policy),
            report: PurgeReport::default(),
            watermarks: HashMap::new(),
        };
        let mut cur = from;
        loop {
            if pass.budget.spent() {
                pass.report.next = Some(cur);
                break;
            }
            if cur.phase == PurgePhase::Inbox {
                if pass.inbox(&policy).await? {
                    pass.report.done = true;
                } else {
                    pass.report.next = Some(cur);
                }
                break;
            }
            let row = txn
                .query_opt(
                    "SELECT data FROM tenants WHERE id >= $1 ORDER BY id LIMIT 1",
                    &[&cur.tenant.clone().unwrap_or_default()],
                )
                .await?;
            let Some(row) = row else {
                cur = PurgeCursor {
                    tenant: None,
                    phase: PurgePhase::Inbox,
                    after: None,
                };
                continue;
            };
            let tenant: Tenant = decode("tenants", row.try_get::<_, &[u8]>(0)?)?;
            let t = tenant.id.to_string();
            if cur.tenant.as_deref() != Some(t.as_str()) {
                cur = PurgeCursor {
                    tenant: Some(t.clone()),
                    phase: PurgePhase::Events,
                    after: None,
                };
            }
            let (events_before, dead_before) = policy.cutoffs(&tenant.retention);
            let finished = match cur.phase {
                PurgePhase::Events => {
                    pass.events(&t, events_before, dead_before, &mut cur.after)
                        .await?
                }
                PurgePhase::Statuses => pass.statuses(&t, events_before, &mut cur.after).await?,
                PurgePhase::Dead => pass.dead(&t, dead_before, &mut cur.after).await?,
                PurgePhase::Replays => pass.replays(&t, events_before, &mut cur.after).await?,
                PurgePhase::Inbox => true,
            };
            if !finished {
                pass.report.next = Some(cur);
                break;
            }
            cur.after = None;
            cur.phase = match cur.phase {
                PurgePhase::Events => PurgePhase::Statuses,
                PurgePhase::Statuses => PurgePhase::Dead,
                PurgePhase::Dead => PurgePhase::Replays,
                PurgePhase::Replays | PurgePhase::Inbox => {
                    // This tenant is done: on to the next one.
                    let next = txn
                        .query_opt(
                            "SELECT id FROM tenants WHERE id > $1 ORDER BY id LIMIT 1",
                            &[&t],
                        )
                        .await?;
                    match next {
                        Some(r) => {
                            cur.tenant = Some(r.try_get(0)?);
                            PurgePhase::Events
                        }
                        None => {
                            cur.tenant = None;
                            PurgePhase::Inbox
                        }
                    }
                }
            };
        }
        let Pass {
            report, watermarks, ..
        } = pass;
        if !watermarks.is_empty() {
            let (names, marks): (Vec<String>, Vec<i64>) =
                watermarks.into_iter().map(|(t, c)| (t, big(c))).unzip();
            txn.execute(
                "UPDATE tenant_state s SET purged_to = GREATEST(s.purged_to, u.c) \
                 FROM unnest($1::text[], $2::int8[]) AS u(t, c) WHERE s.tenant = u.t",
                &[&names, &marks],
            )
            .await?;
        }
        txn.commit().await?;
        Ok(report)
    }
}
