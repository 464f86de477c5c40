//! One stream connection: history from the store, then live items, gap-free.
//!
//! The session registers with the hub *before* it reads the store, so every item
//! committed after the read is also in its live ring. It then remembers the highest
//! cursor it has examined (`last`, sent or filtered out) and for each live item:
//!
//! - `cursor <= last`: already covered by history; dropped;
//! - `cursor == last + 1`: sent (when its topic matches);
//! - `cursor > last + 1`: a hole (the item before was committed while the hub had no
//!   listener for the tenant, or the ring overflowed): the gap is re-read from the
//!   store, never skipped.
//!
//! Frames go to the connection through a bounded queue. History is written at the
//! client's pace (the store is the buffer). A live item that finds the queue full
//! waits up to `slow_client_timeout_ms` for room (bursts are fine); past that the
//! client reads slower than items arrive: it gets a best-effort
//! `gatepulse.disconnect` notice and the connection ends. It resumes from the store
//! with `Last-Event-ID`. Memory per connection is the queue; live items themselves
//! are shared with every other client of the tenant.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use serde::Serialize;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::{mpsc, watch};

use super::frame;
use crate::config::StreamConfig;
use crate::ids::TenantId;
use crate::ingest::topic::TopicPattern;
use crate::store::{Store, StoreError, StreamRead};
use crate::telemetry;

/// Stream positions read from the store per step.
const PAGE: usize = 256;

/// What every stream connection of this server shares.
#[derive(Debug)]
pub struct Streams {
    pub config: StreamConfig,
    open: AtomicUsize,
    stop: watch::Receiver<bool>,
}

/// Why a session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// The client went away.
    Client,
    /// The client read too slowly; its queue filled.
    SlowClient,
    /// The server is shutting down.
    Shutdown,
    /// The store failed.
    Store,
}

impl End {
    pub fn as_str(self) -> &'static str {
        match self {
            End::Client => "client",
            End::SlowClient => "slow_client",
            End::Shutdown => "shutdown",
            End::Store => "store_error",
        }
    }
}

/// One admitted connection; frees its slot when dropped.
#[derive(Debug)]
pub struct Slot {
    streams: Arc<Streams>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.streams.open.fetch_sub(1, Ordering::AcqRel);
        telemetry::stream_clients(-1.0);
    }
}

impl Streams {
    pub fn new(config: StreamConfig, stop: watch::Receiver<bool>) -> Self {
        Self {
            config,
            open: AtomicUsize::new(0),
            stop,
        }
    }

    /// Admits one more connection, or `None` at `max_clients`.
    pub fn admit(self: &Arc<Self>) -> Option<Slot> {
        let before = self.open.fetch_add(1, Ordering::AcqRel);
        if before >= self.config.max_clients {
            self.open.fetch_sub(1, Ordering::AcqRel);
            return None;
        }
        telemetry::stream_clients(1.0);
        Some(Slot {
            streams: self.clone(),
        })
    }

    pub fn open_connections(&self) -> usize {
        self.open.load(Ordering::Acquire)
    }

    /// The `retry:` hint: the configured base plus up to 50% jitter, so that clients
    /// dropped together do not all come back in the same millisecond.
    pub fn retry_ms(&self) -> u64 {
        let base = self.config.retry_ms;
        base + rand::random_range(0..=base / 2)
    }
}

/// What a client asked for.
#[derive(Debug, Clone)]
pub struct Request {
    pub tenant: TenantId,
    pub topic: Option<TopicPattern>,
    /// Resume after this cursor (`Last-Event-ID` or `from_cursor`); `None`: live only.
    pub after: Option<u64>,
}

/// A connection registered for live items, before its response goes out: a
/// live-only client gets exactly what is committed after it connected.
#[derive(Debug)]
pub struct Opened {
    live: crate::stream::hub::Receiver,
    /// The head when the live registration happened.
    head: u64,
}

/// Registers for the tenant's live items, then reads the head.
pub async fn open(store: &dyn Store, tenant: &TenantId) -> Result<Opened, StoreError> {
    let live = store.stream_hub().subscribe(tenant.as_str());
    let head = store.head_cursor(tenant).await?;
    Ok(Opened { live, head })
}

/// The `data` of a `gatepulse.reset` frame.
#[derive(Debug, Serialize)]
struct Reset {
    /// The cursor the client asked to resume after.
    requested_cursor: u64,
    /// Where the stream resumes instead (the frame's `id`).
    resumed_after: u64,
    /// The oldest stream position still stored.
    oldest_available: Option<u64>,
    head: u64,
    /// `backfill_max_events`, `backfill_max_age`, `retention` or `cursor_ahead` (the
    /// cursor is past this store's head: a restored or different store).
    reason: &'static str,
}

/// The `data` of a `gatepulse.disconnect` notice.
#[derive(Debug, Serialize)]
struct Disconnect {
    reason: &'static str,
    /// Resume with `Last-Event-ID` set to this (the last item sent).
    last_event_id: u64,
}

struct Session<'a> {
    store: &'a dyn Store,
    req: &'a Request,
    tx: mpsc::Sender<Bytes>,
    /// Highest cursor examined (sent or filtered out).
    last: u64,
    /// Highest cursor sent.
    last_sent: u64,
    sent: metrics::Counter,
    sent_count: u64,
    /// How long a live frame may wait for room in the queue.
    slow_after: Duration,
    /// The connection's last frame, written after the queue drains.
    trailer: Trailer,
}

/// A frame the connection writes after everything queued (the disconnect notice).
pub type Trailer = Arc<std::sync::Mutex<Option<Bytes>>>;

/// Runs one connection until the client leaves, reads too slowly or the server
/// stops. Frames go to `tx`; the first is the `retry:` hint.
pub async fn run(
    streams: Arc<Streams>,
    store: Arc<dyn Store>,
    req: Request,
    opened: Opened,
    tx: mpsc::Sender<Bytes>,
    trailer: Trailer,
    slot: Slot,
) -> End {
    let Opened { mut live, head } = opened;
    let mut stop = streams.stop.clone();
    let topic = req.topic.as_ref().map_or("#", TopicPattern::as_str);
    let mut s = Session {
        store: store.as_ref(),
        req: &req,
        tx,
        last: 0,
        last_sent: req.after.unwrap_or(0),
        sent: telemetry::stream_items_sent(),
        sent_count: 0,
        slow_after: Duration::from_millis(streams.config.slow_client_timeout_ms),
        trailer,
    };
    let end = match s.open(&streams, head).await {
        Err(end) => end,
        Ok(()) => {
            tracing::info!(tenant_id = %req.tenant, topic, resume_cursor = ?req.after,
                from = s.last, "stream: client connected");
            s.follow(&mut live, &mut stop, &streams.config).await
        }
    };
    tracing::info!(tenant_id = %req.tenant, topic, reason = end.as_str(), items = s.sent_count,
        last_cursor = s.last_sent, "stream: client disconnected");
    telemetry::record_stream_end(end.as_str());
    drop(slot);
    end
}

impl Session<'_> {
    /// Sends the `retry:` hint, decides where history starts (with a reset frame
    /// when the cursor is out of reach) and sends the history.
    async fn open(&mut self, streams: &Streams, head: u64) -> Result<(), End> {
        let hello = format!("retry: {}\n: gatepulse stream\n\n", streams.retry_ms());
        self.send(Bytes::from(hello)).await?;
        let Some(requested) = self.req.after else {
            self.last = head;
            return Ok(());
        };
        let config = &streams.config;
        let mut start = requested;
        let mut reason = None;
        if requested > head {
            start = head;
            reason = Some("cursor_ahead");
        } else if head - requested > config.backfill_max_events {
            start = head - config.backfill_max_events;
            reason = Some("backfill_max_events");
        }
        let probe = self.read(start, 1, i64::MIN).await?;
        if let Some(oldest) = probe.oldest
            && oldest > start + 1
        {
            start = oldest - 1;
            reason = Some("retention");
        }
        if config.backfill_max_age_days > 0 {
            let days = i64::try_from(config.backfill_max_age_days).unwrap_or(i64::MAX);
            let cutoff = crate::clock::now_ms().saturating_sub(days.saturating_mul(86_400_000));
            // Step over positions older than the cutoff (stream order is time order,
            // to within a few milliseconds).
            loop {
                let r = self.read(start, PAGE, cutoff).await?;
                if r.too_old == 0 {
                    break;
                }
                reason = Some("backfill_max_age");
                match r.items.first() {
                    Some(first) => {
                        start = first.cursor - 1;
                        break;
                    }
                    None => {
                        start = r.scanned_to;
                        if r.scanned_to >= r.head {
                            break;
                        }
                    }
                }
            }
        }
        if let Some(reason) = reason {
            let data = serde_json::to_string(&Reset {
                requested_cursor: requested,
                resumed_after: start,
                oldest_available: probe.oldest,
                head: probe.head,
                reason,
            })
            .unwrap_or_default();
            telemetry::record_stream_reset(reason);
            tracing::info!(tenant_id = %self.req.tenant, requested, resumed_after = start, reason,
                "stream: cursor out of reach; reset");
            self.send(frame(Some(start), "gatepulse.reset", &data))
                .await?;
            self.last_sent = start;
        }
        self.last = start;
        self.catch_up(u64::MAX).await
    }

    /// Follows live items until the session ends.
    async fn follow(
        &mut self,
        live: &mut crate::stream::hub::Receiver,
        stop: &mut watch::Receiver<bool>,
        config: &StreamConfig,
    ) -> End {
        let keepalive = Duration::from_secs(config.keepalive_secs);
        let mut idle = tokio::time::Instant::now() + keepalive;
        loop {
            if *stop.borrow() {
                return End::Shutdown;
            }
            let result = tokio::select! {
                biased;
                _ = stop.changed() => return End::Shutdown,
                () = self.tx.closed() => return End::Client,
                r = live.recv() => r,
                () = tokio::time::sleep_until(idle) => {
                    if let Err(end) = self.send_live(Bytes::from_static(b": keepalive\n\n")).await {
                        return end;
                    }
                    idle = tokio::time::Instant::now() + keepalive;
                    continue;
                }
            };
            let step = match result {
                Ok(item) => {
                    if item.cursor <= self.last {
                        continue;
                    }
                    if item.cursor > self.last + 1 {
                        // A hole: read what lies before this item from the store.
                        if let Err(end) = self.catch_up(item.cursor - 1).await {
                            return end;
                        }
                    }
                    if item.cursor <= self.last {
                        Ok(())
                    } else {
                        self.offer(&item).await
                    }
                }
                Err(RecvError::Lagged(_)) => self.catch_up(u64::MAX).await,
                Err(RecvError::Closed) => Err(End::Shutdown),
            };
            if let Err(end) = step {
                return end;
            }
            idle = tokio::time::Instant::now() + keepalive;
        }
    }

    /// A live item: sent when its topic matches.
    async fn offer(&mut self, item: &crate::stream::StreamItem) -> Result<(), End> {
        self.last = item.cursor;
        if self.matches(&item.topic) {
            self.send_live(item.frame.clone()).await?;
            self.sent_item(item.cursor);
        }
        Ok(())
    }

    fn matches(&self, topic: &str) -> bool {
        self.req.topic.as_ref().is_none_or(|p| p.matches(topic))
    }

    fn sent_item(&mut self, cursor: u64) {
        self.last_sent = cursor;
        self.sent_count += 1;
        self.sent.increment(1);
    }

    /// Sends what the store holds after `last`, up to `upto` or its head.
    async fn catch_up(&mut self, upto: u64) -> Result<(), End> {
        loop {
            let limit = usize::try_from(upto.saturating_sub(self.last))
                .unwrap_or(PAGE)
                .min(PAGE);
            if limit == 0 {
                return Ok(());
            }
            let r = self.read(self.last, limit, i64::MIN).await?;
            let before = self.last;
            for item in &r.items {
                self.send(item.frame.clone()).await?;
                self.sent_item(item.cursor);
            }
            self.last = r.scanned_to.max(self.last);
            if self.last == before || self.last >= r.head || self.last >= upto {
                return Ok(());
            }
        }
    }

    async fn read(&self, after: u64, limit: usize, min_created_at: i64) -> Result<StreamRead, End> {
        self.store
            .read_stream(
                &self.req.tenant,
                after,
                limit,
                self.req.topic.as_ref(),
                min_created_at,
            )
            .await
            .map_err(|e| self.failed(&e))
    }

    fn failed(&self, e: &StoreError) -> End {
        tracing::error!(tenant_id = %self.req.tenant, error = %e, "stream: store read failed");
        End::Store
    }

    /// Queues a frame, waiting for room (history: the store is the buffer).
    async fn send(&self, frame: Bytes) -> Result<(), End> {
        self.tx.send(frame).await.map_err(|_| End::Client)
    }

    /// Queues a live frame. When the queue is full the client gets
    /// `slow_client_timeout_ms` to make room; then it is disconnected with a
    /// `gatepulse.disconnect` notice as the connection's last frame.
    async fn send_live(&self, frame: Bytes) -> Result<(), End> {
        let frame = match self.tx.try_send(frame) {
            Ok(()) => return Ok(()),
            Err(mpsc::error::TrySendError::Closed(_)) => return Err(End::Client),
            Err(mpsc::error::TrySendError::Full(frame)) => frame,
        };
        match tokio::time::timeout(self.slow_after, self.tx.send(frame)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(End::Client),
            Err(_) => {
                let notice = serde_json::to_string(&Disconnect {
                    reason: "slow_client",
                    last_event_id: self.last_sent,
                })
                .unwrap_or_default();
                if let Ok(mut t) = self.trailer.lock() {
                    *t = Some(super::frame(None, "gatepulse.disconnect", &notice));
                }
                Err(End::SlowClient)
            }
        }
    }
}
