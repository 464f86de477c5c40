//! The commit feed on PostgreSQL: every node follows what every node committed.
//!
//! A tail task keeps the last cursor it announced per tenant and the last change-log
//! number. On each wake it reads the tenants' heads (one row each), announces the new
//! stream items of the tenants someone follows, in cursor order, and the new
//! configuration changes. It wakes when this node commits, when another node's
//! `NOTIFY gatepulse_feed` arrives (a wake-up only: no payload to trust or lose, sent
//! after the commit and never inside it), and every `poll_interval` regardless, so a
//! lost notification (or a pooler that drops LISTEN) delays, never loses, an item.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use deadpool_postgres::Pool;
use tokio::sync::{Notify, watch};
use tokio_postgres::{AsyncMessage, NoTls};

use crate::ids::TenantId;
use crate::store::feed::{CommitFeed, Committed};
use crate::store::{StoreError, StoreResult};

use super::{PgOptions, unbig};

/// The notification channel.
const CHANNEL: &str = "gatepulse_feed";
/// Stream positions read per query while catching up.
const PAGE: usize = 1000;
/// Passes are at least this far apart: commits in between are read together (a
/// publish burst costs a few passes per second, not one per commit).
const MIN_GAP: Duration = Duration::from_millis(5);
/// Change-log rows older than this are removed (every node has long read them).
const CHANGE_LOG_KEEP_MS: i64 = 3_600_000;

pub(super) struct TailHandle {
    wake: Arc<Notify>,
    local: Arc<AtomicBool>,
    stop: watch::Sender<bool>,
}

impl TailHandle {
    pub(super) async fn spawn(
        pool: Pool,
        config: tokio_postgres::Config,
        feed: Arc<CommitFeed>,
        options: &PgOptions,
    ) -> StoreResult<Self> {
        let wake = Arc::new(Notify::new());
        let local = Arc::new(AtomicBool::new(false));
        let (stop, stopped) = watch::channel(false);
        let mut tail = Tail {
            pool,
            feed,
            heads: HashMap::new(),
            change_seq: 0,
            instance: format!("{:016x}", rand::random::<u64>()),
            last_trim: std::time::Instant::now(),
        };
        tail.start().await?;
        let instance = tail.instance.clone();
        tokio::spawn(listen(config, instance, wake.clone(), stopped.clone()));
        tokio::spawn(tail.run(wake.clone(), local.clone(), options.poll_interval, stopped));
        Ok(Self { wake, local, stop })
    }

    /// This node committed stream items or changes.
    pub(super) fn wake(&self) {
        self.local.store(true, Ordering::Release);
        self.wake.notify_one();
    }

    pub(super) fn stop(&self) {
        let _ = self.stop.send(true);
    }
}

struct Tail {
    pool: Pool,
    feed: Arc<CommitFeed>,
    /// Last cursor announced per tenant.
    heads: HashMap<String, u64>,
    change_seq: i64,
    /// Sent as the notification payload so this node ignores its own.
    instance: String,
    last_trim: std::time::Instant,
}

impl Tail {
    /// Starts from what is committed now: earlier items are history (readers backfill
    /// them from the store), not live.
    async fn start(&mut self) -> StoreResult<()> {
        let client = self.pool.get().await?;
        for r in client
            .query("SELECT tenant, cursor FROM tenant_state", &[])
            .await?
        {
            self.heads.insert(r.try_get(0)?, unbig(r.try_get(1)?));
        }
        self.change_seq = client
            .query_one("SELECT change_seq FROM gp_meta WHERE id = 1", &[])
            .await?
            .try_get(0)?;
        Ok(())
    }

    async fn run(
        mut self,
        wake: Arc<Notify>,
        local: Arc<AtomicBool>,
        poll: Duration,
        mut stopped: watch::Receiver<bool>,
    ) {
        loop {
            tokio::select! {
                () = wake.notified() => {}
                () = tokio::time::sleep(poll) => {}
                _ = stopped.changed() => return,
            }
            if *stopped.borrow() {
                return;
            }
            let mine = local.swap(false, Ordering::AcqRel);
            if let Err(e) = self.pass(mine).await {
                tracing::warn!(error = %e, "store: following commits failed; retrying");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            tokio::time::sleep(MIN_GAP).await;
        }
    }

    async fn pass(&mut self, notify_others: bool) -> StoreResult<()> {
        let client = self.pool.get().await?;
        if notify_others {
            // After the commit, outside it: wakes the other nodes' tails.
            client
                .execute("SELECT pg_notify($1, $2)", &[&CHANNEL, &self.instance])
                .await?;
        }
        let rows = client
            .query("SELECT tenant, cursor FROM tenant_state", &[])
            .await?;
        for r in &rows {
            let tenant: String = r.try_get(0)?;
            let head = unbig(r.try_get(1)?);
            let known = self.heads.get(&tenant).copied().unwrap_or(0);
            if head <= known {
                continue;
            }
            if self.feed.wants_stream(&tenant) {
                let id = TenantId::from_trusted(tenant.clone());
                let name: Box<str> = tenant.as_str().into();
                let mut after = known;
                while after < head {
                    let page =
                        super::reads::stream_page(&client, &id, after, head, PAGE, None).await?;
                    let Some(last) = page.last().map(|p| p.0) else {
                        break;
                    };
                    after = last;
                    let stream = page
                        .into_iter()
                        .filter_map(|(_, _, item)| item.map(|i| (name.clone(), i)))
                        .collect();
                    self.feed.announce(Committed {
                        stream,
                        ..Committed::default()
                    });
                }
            }
            self.heads.insert(tenant, head);
        }
        let changes = client
            .query(
                "SELECT seq, kind, tenant, id, name, version, deleted FROM change_log \
                 WHERE seq > $1 ORDER BY seq LIMIT 1000",
                &[&self.change_seq],
            )
            .await?;
        if let Some(last) = changes.last() {
            self.change_seq = last.try_get(0)?;
            let changes = changes
                .iter()
                .map(super::records::change_from_row)
                .filter_map(Result::transpose)
                .collect::<StoreResult<Vec<_>>>()?;
            self.feed.announce(Committed {
                changes,
                ..Committed::default()
            });
        }
        if self.last_trim.elapsed() > Duration::from_secs(60) {
            self.last_trim = std::time::Instant::now();
            let before = crate::clock::now_ms() - CHANGE_LOG_KEEP_MS;
            client
                .execute("DELETE FROM change_log WHERE at < $1", &[&before])
                .await?;
        }
        Ok(())
    }
}

/// Holds a connection that LISTENs, waking the tail on each notification from
/// another node; reconnects by itself after the database restarts.
async fn listen(
    config: tokio_postgres::Config,
    instance: String,
    wake: Arc<Notify>,
    mut stopped: watch::Receiver<bool>,
) {
    let mut backoff = Duration::from_millis(100);
    loop {
        if *stopped.borrow() {
            return;
        }
        match listen_once(&config, &instance, &wake, &mut stopped).await {
            Ok(()) => return,
            Err(e) => {
                tracing::debug!(error = %e, "store: LISTEN connection lost; polling meanwhile");
                // Something may have been missed while disconnected.
                wake.notify_one();
            }
        }
        tokio::select! {
            () = tokio::time::sleep(backoff) => {}
            _ = stopped.changed() => return,
        }
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}

async fn listen_once(
    config: &tokio_postgres::Config,
    instance: &str,
    wake: &Notify,
    stopped: &mut watch::Receiver<bool>,
) -> StoreResult<()> {
    let (client, mut connection) = config.connect(NoTls).await?;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let driver = tokio::spawn(async move {
        let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
        while let Some(message) = futures_util::StreamExt::next(&mut messages).await {
            match message {
                Ok(AsyncMessage::Notification(n)) => {
                    if tx.send(n.payload().to_owned()).is_err() {
                        return;
                    }
                }
                Ok(_) => {}
                Err(_) => return,
            }
        }
    });
    client.batch_execute(&format!("LISTEN {CHANNEL}")).await?;
    let result = loop {
        tokio::select! {
            payload = rx.recv() => match payload {
                Some(p) if p == instance => {}
                Some(_) => wake.notify_one(),
                None => break Err(StoreError::Backend("LISTEN connection closed".into())),
            },
            _ = stopped.changed() => break Ok(()),
        }
    };
    driver.abort();
    result
}
