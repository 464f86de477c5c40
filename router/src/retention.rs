//! The retention job: on the `retention.compaction_cron` schedule, delete expired
//! events, deliveries, attempts and DLQ entries in bounded batches, yielding between
//! batches so publishes never wait long behind it. Freed pages are reused by the
//! store, so under steady load the file stops growing; `gp store compact` (offline)
//! gives the space back to the file system.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;

use crate::clock::now_ms;
use crate::config::RetentionConfig;
use crate::store::{PurgeCursor, PurgeReport, Store, StoreResult};
use crate::telemetry;

/// Pause between batches, so other writes interleave.
const BETWEEN_BATCHES: Duration = Duration::from_millis(5);

/// Runs every batch of one retention pass while `go_on()` holds (the node still
/// leads its cluster); returns the totals.
pub async fn run_pass(
    store: &dyn Store,
    config: &RetentionConfig,
    go_on: impl Fn() -> bool,
) -> StoreResult<PurgeReport> {
    let started = Instant::now();
    let policy = config.policy(now_ms());
    let mut total = PurgeReport::default();
    let mut from = PurgeCursor::default();
    loop {
        let r = store.purge(policy, from).await?;
        if r.events + r.deliveries + r.attempts > 0 {
            telemetry::record_segment(r.events, r.deliveries, r.attempts);
        }
        total.events += r.events;
        total.deliveries += r.deliveries;
        total.attempts += r.attempts;
        total.other += r.other;
        match r.next {
            Some(next) if !r.done => from = next,
            _ => break,
        }
        tokio::time::sleep(BETWEEN_BATCHES).await;
        if !go_on() {
            tracing::info!("retention pass stopped: this node no longer leads the cluster");
            return Ok(total);
        }
    }
    total.other += purge_audit(store, config).await?;
    total.done = true;
    store.mark_compacted(now_ms()).await?;
    telemetry::record_retention_pass(started.elapsed());
    Ok(total)
}

/// Removes audit records older than `retention.audit_max_age_days`, in batches.
async fn purge_audit(store: &dyn Store, config: &RetentionConfig) -> StoreResult<u64> {
    if config.audit_max_age_days == 0 {
        return Ok(0);
    }
    let age_ms =
        i64::try_from(config.audit_max_age_days.saturating_mul(86_400_000)).unwrap_or(i64::MAX);
    let before = now_ms().saturating_sub(age_ms);
    let mut total = 0;
    loop {
        let n = store.purge_audit(before, config.batch_rows.max(1)).await?;
        total += n;
        if (n as usize) < config.batch_rows.max(1) {
            return Ok(total);
        }
        tokio::time::sleep(BETWEEN_BATCHES).await;
    }
}

/// Runs passes on the configured schedule until `shutdown`.
/// Only the cluster's leader runs a pass.
pub fn start(
    store: Arc<dyn Store>,
    config: RetentionConfig,
    leadership: Arc<crate::cluster::Leadership>,
    mut shutdown: watch::Receiver<bool>,
) -> Option<tokio::task::JoinHandle<()>> {
    let schedule = match config.schedule() {
        Ok(Some(s)) => s,
        _ => return None,
    };
    Some(tokio::spawn(async move {
        loop {
            let now = time::OffsetDateTime::now_utc();
            let Some(next) = schedule.next_after(now) else {
                return;
            };
            let wait = (next - now).unsigned_abs();
            tokio::select! {
                _ = shutdown.changed() => return,
                () = tokio::time::sleep(wait) => {}
            }
            if leadership.acting().is_none() {
                tracing::debug!("retention pass skipped: another node leads the cluster");
                continue;
            }
            let leads = || leadership.acting().is_some();
            match run_pass(store.as_ref(), &config, leads).await {
                Ok(r) => tracing::info!(
                    events = r.events,
                    deliveries = r.deliveries,
                    attempts = r.attempts,
                    "retention pass done"
                ),
                Err(e) => tracing::error!(error = %e, "retention pass failed"),
            }
        }
    }))
}
