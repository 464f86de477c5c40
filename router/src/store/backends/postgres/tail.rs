//! The commit feed on PostgreSQL: every node follows what every node committed.
//!
//! A tail task keeps the last cursor it announced per tenant and the last change-log
//! number. On each wake it reads the tenants' heads (one row each), announces the new
//! stream items of the tenants someone follows, in cursor order, and the new
//! configuration changes. It wakes when this node commits, when another node's
//! `NOTIFY gatepulse_feed` arrives (a wake-up only: no payload to trust or lose, sent
//! after the commit and never inside it), and every `poll_interval` regardless, so a
//! lost notification (or a pooler that drops LISTEN) delays, never loses, an item.
//!
//! Queued work is announced the same way: a node's notification names the endpoints
//! its commits queued work for since its last one (`q <tenant> <endpoint>` lines
//! after the sender's instance), and the other nodes' tails announce them to their
//! dispatchers. What does not fit in one notification, and whatever may have been
//! missed (the LISTEN connection was down, or is not possible), is found by reading
//! which endpoints have queued deliveries (`q *`, and every [`FULL_SCAN_EVERY`]
//! without a LISTEN connection).

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use deadpool_postgres::Pool;
use tokio::sync::{Notify, watch};
use tokio_postgres::{AsyncMessage, NoTls};

use crate::ids::{EndpointId, TenantId};
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
/// A notification's payload stays below PostgreSQL's limit (8,000 bytes).
const PAYLOAD_MAX: usize = 7_000;
/// Without a LISTEN connection, the queue is read this often for other nodes' work.
const FULL_SCAN_EVERY: Duration = Duration::from_secs(5);

/// Queued work: named endpoints, or "look at the whole queue".
#[derive(Debug, Default)]
struct QueuedHints {
    endpoints: HashSet<(String, String)>,
    everything: bool,
}

impl QueuedHints {
    fn add(&mut self, woken: &[(TenantId, EndpointId)]) {
        for (t, e) in woken {
            if self.endpoints.len() >= 4096 {
                self.everything = true;
                return;
            }
            self.endpoints
                .insert((t.as_str().to_owned(), e.as_str().to_owned()));
        }
    }

    fn take(&mut self) -> Self {
        std::mem::take(self)
    }
}

/// The notification payload: `instance`, then `q <tenant> <endpoint>` lines, or
/// `q *` when they do not fit.
fn payload(instance: &str, hints: QueuedHints) -> String {
    let mut out = String::from(instance);
    if hints.everything {
        out.push_str("\nq *");
        return out;
    }
    for (t, e) in &hints.endpoints {
        if out.len() + t.len() + e.len() + 4 > PAYLOAD_MAX {
            out.truncate(instance.len());
            out.push_str("\nq *");
            return out;
        }
        out.push_str("\nq ");
        out.push_str(t);
        out.push(' ');
        out.push_str(e);
    }
    out
}

/// Reads a payload: `None` when it is this node's own.
fn parse_payload(payload: &str, instance: &str) -> Option<QueuedHints> {
    let mut lines = payload.lines();
    if lines.next()? == instance {
        return None;
    }
    let mut hints = QueuedHints::default();
    for line in lines {
        let Some(rest) = line.strip_prefix("q ") else {
            continue;
        };
        if rest == "*" {
            hints.everything = true;
        } else if let Some((t, e)) = rest.split_once(' ') {
            hints.endpoints.insert((t.to_owned(), e.to_owned()));
        }
    }
    Some(hints)
}

pub(super) struct TailHandle {
    wake: Arc<Notify>,
    local: Arc<AtomicBool>,
    stop: watch::Sender<bool>,
    /// Queued by this node since its last notification.
    outbox: Arc<Mutex<QueuedHints>>,
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
        let outbox = Arc::new(Mutex::new(QueuedHints::default()));
        let heard = Arc::new(Mutex::new(QueuedHints::default()));
        let listening = Arc::new(AtomicBool::new(false));
        let mut tail = Tail {
            pool,
            feed,
            heads: HashMap::new(),
            change_seq: 0,
            instance: format!("{:016x}", rand::random::<u64>()),
            last_trim: std::time::Instant::now(),
            outbox: outbox.clone(),
            heard: heard.clone(),
            listening: listening.clone(),
            last_full_scan: std::time::Instant::now(),
        };
        tail.start().await?;
        let listener = Listener {
            instance: tail.instance.clone(),
            wake: wake.clone(),
            heard,
            listening,
        };
        tokio::spawn(listen(config, listener, stopped.clone()));
        tokio::spawn(tail.run(wake.clone(), local.clone(), options.poll_interval, stopped));
        Ok(Self {
            wake,
            local,
            stop,
            outbox,
        })
    }

    /// This node committed stream items or changes.
    pub(super) fn wake(&self) {
        self.local.store(true, Ordering::Release);
        self.wake.notify_one();
    }

    /// This node committed queued work for these endpoints: the other nodes hear of
    /// it with the next notification.
    pub(super) fn queued(&self, woken: &[(TenantId, EndpointId)]) {
        if let Ok(mut outbox) = self.outbox.lock() {
            outbox.add(woken);
        }
        self.wake();
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
    /// Sent first in each notification so this node ignores its own.
    instance: String,
    last_trim: std::time::Instant,
    outbox: Arc<Mutex<QueuedHints>>,
    /// Queued work other nodes told of.
    heard: Arc<Mutex<QueuedHints>>,
    /// Whether the LISTEN connection is up.
    listening: Arc<AtomicBool>,
    last_full_scan: std::time::Instant,
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
            let hints = self.outbox.lock().map(|mut o| o.take()).unwrap_or_default();
            let message = payload(&self.instance, hints);
            client
                .execute("SELECT pg_notify($1, $2)", &[&CHANNEL, &message])
                .await?;
        }
        self.announce_heard(&client).await?;
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
        self.trim(&client).await
    }

    /// Announces the queued work other nodes told of (or all of the queue's, when a
    /// notification could not name it or may have been missed).
    async fn announce_heard(&mut self, client: &tokio_postgres::Client) -> StoreResult<()> {
        let mut heard = self.heard.lock().map(|mut h| h.take()).unwrap_or_default();
        if !self.listening.load(Ordering::Acquire)
            && self.last_full_scan.elapsed() >= FULL_SCAN_EVERY
        {
            heard.everything = true;
        }
        let queued: Vec<(TenantId, EndpointId)> = if heard.everything {
            self.last_full_scan = std::time::Instant::now();
            super::reads::queued_endpoints_on(client).await?
        } else {
            heard
                .endpoints
                .into_iter()
                .map(|(t, e)| (TenantId::from_trusted(t), EndpointId::from_trusted(e)))
                .collect()
        };
        if !queued.is_empty() {
            self.feed.announce(Committed::queued(queued));
        }
        Ok(())
    }

    /// Drops change-log rows every node has long read.
    async fn trim(&mut self, client: &tokio_postgres::Client) -> StoreResult<()> {
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

/// What the LISTEN task shares with the tail.
struct Listener {
    instance: String,
    wake: Arc<Notify>,
    heard: Arc<Mutex<QueuedHints>>,
    listening: Arc<AtomicBool>,
}

impl Listener {
    /// Something may have been missed: the tail reads the whole queue once.
    fn missed(&self) {
        if let Ok(mut h) = self.heard.lock() {
            h.everything = true;
        }
        self.wake.notify_one();
    }
}

/// Holds a connection that LISTENs, waking the tail on each notification from
/// another node; reconnects by itself after the database restarts.
async fn listen(
    config: tokio_postgres::Config,
    listener: Listener,
    mut stopped: watch::Receiver<bool>,
) {
    let mut backoff = Duration::from_millis(100);
    loop {
        if *stopped.borrow() {
            return;
        }
        let result = listen_once(&config, &listener, &mut stopped).await;
        listener.listening.store(false, Ordering::Release);
        match result {
            Ok(()) => return,
            Err(e) => {
                tracing::debug!(error = %e, "store: LISTEN connection lost; polling meanwhile");
                listener.missed();
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
    listener: &Listener,
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
    // Listening from now on; what was queued before is read once.
    listener.listening.store(true, Ordering::Release);
    listener.missed();
    let result = loop {
        tokio::select! {
            payload = rx.recv() => match payload {
                Some(p) => {
                    if let Some(hints) = parse_payload(&p, &listener.instance) {
                        if let Ok(mut heard) = listener.heard.lock() {
                            heard.everything |= hints.everything;
                            heard.endpoints.extend(hints.endpoints);
                        }
                        listener.wake.notify_one();
                    }
                }
                None => break Err(StoreError::Backend("LISTEN connection closed".into())),
            },
            _ = stopped.changed() => break Ok(()),
        }
    };
    driver.abort();
    result
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn notifications_name_queued_endpoints_or_say_look_at_the_queue() {
        let mut hints = QueuedHints::default();
        hints.add(&[(
            TenantId::from_trusted("ten_a".into()),
            EndpointId::from_trusted("ep_1".into()),
        )]);
        let p = payload("me", hints);
        assert_eq!(p, "me\nq ten_a ep_1");
        assert!(parse_payload(&p, "me").is_none(), "a node ignores its own");
        let heard = parse_payload(&p, "other").unwrap();
        assert!(!heard.everything);
        assert!(heard.endpoints.contains(&("ten_a".into(), "ep_1".into())));
        // Too many for one notification: "look at the queue".
        let mut many = QueuedHints::default();
        let woken: Vec<_> = (0..300)
            .map(|i| {
                (
                    TenantId::from_trusted(format!("ten_{i:026}")),
                    EndpointId::from_trusted(format!("ep_{i:026}")),
                )
            })
            .collect();
        many.add(&woken);
        let p = payload("me", many);
        assert!(p.len() <= PAYLOAD_MAX, "{}", p.len());
        let heard = parse_payload(&p, "other").unwrap();
        assert!(heard.everything && heard.endpoints.is_empty());
        // An older node's payload (its instance alone) is a plain wake-up.
        let old = parse_payload("someone", "me").unwrap();
        assert!(!old.everything && old.endpoints.is_empty());
    }
}
