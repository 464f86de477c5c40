//! Planner statistics that keep up with the hot tables.
//!
//! PostgreSQL plans from the statistics `ANALYZE` last gathered, and autovacuum
//! gathers them only after a table has changed by a tenth of its size, and looks at
//! most once a minute. A new store therefore runs its first minutes on statistics
//! that say its tables are empty, and the plans prepared then stay in each
//! connection's cache: measured, an outcome's row locks walked the tenant's whole
//! `deliveries_endpoint` index (0.5 ms per row, 16 ms per commit) instead of one
//! primary-key lookup, because on an "empty" table both indexes cost the same.
//!
//! This task analyzes a hot table as soon as it holds [`MIN_ROWS`] rows without
//! statistics, or twice as many as its statistics say, checking every [`EVERY`]. So a
//! table is analyzed O(log n) times while it grows, autovacuum's own analyzes take
//! over for a table in its steady state, and `ANALYZE` invalidates the cached plans
//! that were made without it.

use std::time::Duration;

use deadpool_postgres::Pool;
use tokio::sync::watch;

use crate::store::StoreResult;

/// The tables the hot path and the listings plan against.
const TABLES: &[&str] = &[
    "deliveries",
    "delivery_queue",
    "events",
    "attempts",
    "stream_status",
    "idempotency",
];
/// Below this many rows a plan cannot go far wrong.
pub(super) const MIN_ROWS: i64 = 1000;
/// How often the tables' sizes are looked at.
const EVERY: Duration = Duration::from_secs(2);

pub(super) struct StatsHandle {
    stop: watch::Sender<bool>,
}

impl StatsHandle {
    pub(super) fn spawn(pool: Pool) -> Self {
        let (stop, mut stopped) = watch::channel(false);
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(EVERY) => {}
                    _ = stopped.changed() => return,
                }
                if let Err(e) = analyze_grown(&pool).await {
                    tracing::debug!(error = %e, "store: refreshing planner statistics failed");
                }
            }
        });
        Self { stop }
    }

    pub(super) fn stop(&self) {
        let _ = self.stop.send(true);
    }
}

/// Analyzes the hot tables of the connection's schema that outgrew their statistics;
/// returns their names.
pub(super) async fn analyze_grown(pool: &Pool) -> StoreResult<Vec<String>> {
    let client = pool.get().await?;
    let rows = client
        .query(
            "SELECT c.relname::text FROM pg_class c \
             JOIN pg_stat_user_tables s ON s.relid = c.oid \
             WHERE c.relnamespace = to_regnamespace(current_schema()) \
               AND c.relname = ANY($1) AND s.n_live_tup >= $2 \
               AND s.n_live_tup > 2 * greatest(c.reltuples, 0)::int8",
            &[&TABLES, &MIN_ROWS],
        )
        .await?;
    let mut analyzed = Vec::with_capacity(rows.len());
    for r in rows {
        let table: String = r.try_get(0)?;
        // The name is one of `TABLES`, so it is safe to splice in.
        if let Some(known) = TABLES.iter().find(|t| **t == table) {
            client.batch_execute(&format!("ANALYZE {known}")).await?;
            tracing::debug!(table = known, "store: planner statistics refreshed");
            analyzed.push(table);
        }
    }
    Ok(analyzed)
}
