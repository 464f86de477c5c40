//! One stream connection: history from the store, then live items, gap-free.
//!
//! The session registers with the hub *before* it reads the store, so every item
//! committed after the read is also in its live ring (as part of a chunk: the hub
//! gathers a busy tenant's items). It then remembers the highest cursor it has
//! examined (`last`, sent or filtered out) and for each live item:
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
//!
//! A connection opened with an API key ends when that key is revoked (as soon as the
//! revocation reaches this node's commit feed) or expires, with a `gatepulse.disconnect`
//! notice naming why (`key_revoked`, `key_expired`).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use serde::Serialize;
use tokio::sync::broadcast::error::{RecvError, TryRecvError};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use super::hub::Chunk;
use super::{StreamItem, frame};
use crate::config::StreamConfig;
use crate::ids::{KeyId, TenantId};
use crate::ingest::topic::TopicPattern;
use crate::store::{Store, StoreError, StreamRead};
use crate::telemetry;

/// Stream positions read from the store per step.
const PAGE: usize = 256;

/// The live ring overflowed past this session: re-read from the store.
struct Lag;

/// Chunks a connection's queue holds; each is at most a quarter of
/// `stream.client_buffer_bytes`, so the queue stays within it.
pub const QUEUE_CHUNKS: usize = 4;

/// Most bytes gathered into one queued chunk (a frame larger than that goes alone).
fn chunk_bytes(config: &StreamConfig) -> usize {
    (config.client_buffer_bytes / QUEUE_CHUNKS).max(1)
}

/// What every stream connection of this server shares.
#[derive(Debug)]
pub struct Streams {
    pub config: StreamConfig,
    open: AtomicUsize,
    /// Open connections per tenant (entries go when a tenant's last one closes), so
    /// that one tenant cannot take every slot.
    per_tenant: std::sync::Mutex<std::collections::HashMap<TenantId, usize>>,
    stop: watch::Receiver<bool>,
    /// Live items as the store commits them (the hub follows the commit feed).
    hub: Arc<crate::stream::hub::StreamHub>,
    /// Ids of API keys changed (revoked) on any node, from the commit feed.
    keys_changed: tokio::sync::broadcast::Sender<KeyId>,
    /// `gatepulse.cluster` notices (leadership changes as this node sees them), for
    /// the streams whose topic pattern asks for them.
    cluster: tokio::sync::broadcast::Sender<Bytes>,
}

/// Key changes a stream can miss before it re-checks its own key from the store.
const KEY_CHANGES_BUFFERED: usize = 1024;

impl Streams {
    /// Tells the streams that asked for `gatepulse.cluster` who leads now, as `node`
    /// (this node) sees it: a frame with no cursor (it is not part of the tenant's
    /// history and is not replayed on resume).
    pub fn announce_cluster(&self, node: &str, view: &crate::cluster::View) {
        let data = serde_json::json!({
            "node": node,
            "leader": view.leader,
            "term": view.term,
            "at": crate::clock::rfc3339(crate::clock::now_ms()),
        });
        // No stream open is not an error.
        let _ = self
            .cluster
            .send(super::frame(None, super::CLUSTER_TOPIC, &data.to_string()));
    }
}

impl crate::store::feed::FeedListener for Streams {
    fn committed(&self, batch: &crate::store::feed::Committed) {
        for change in &batch.changes {
            if let crate::store::feed::Change::ApiKey { id, .. } = change {
                // No receiver (no stream open) is not an error.
                let _ = self.keys_changed.send(id.clone());
            }
        }
    }
}

/// Why a connection was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// `stream.max_clients` connections are open.
    Server,
    /// The tenant has `stream.max_clients_per_tenant` open.
    Tenant,
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
    /// The API key that opened the stream was revoked.
    KeyRevoked,
    /// The API key that opened the stream expired.
    KeyExpired,
}

impl End {
    pub fn as_str(self) -> &'static str {
        match self {
            End::Client => "client",
            End::SlowClient => "slow_client",
            End::Shutdown => "shutdown",
            End::Store => "store_error",
            End::KeyRevoked => "key_revoked",
            End::KeyExpired => "key_expired",
        }
    }
}

/// One admitted connection; frees its slots when dropped.
#[derive(Debug)]
pub struct Slot {
    streams: Arc<Streams>,
    tenant: TenantId,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.streams.open.fetch_sub(1, Ordering::AcqRel);
        self.streams.release_tenant(&self.tenant);
        telemetry::stream_clients(-1.0);
    }
}

impl Streams {
    pub fn new(
        config: StreamConfig,
        hub: Arc<crate::stream::hub::StreamHub>,
        stop: watch::Receiver<bool>,
    ) -> Self {
        Self {
            config,
            open: AtomicUsize::new(0),
            per_tenant: std::sync::Mutex::new(std::collections::HashMap::new()),
            stop,
            hub,
            keys_changed: tokio::sync::broadcast::channel(KEY_CHANGES_BUFFERED).0,
            cluster: tokio::sync::broadcast::channel(16).0,
        }
    }

    /// The hub's settings for this configuration.
    pub fn hub_config(config: &StreamConfig) -> crate::stream::hub::HubConfig {
        crate::stream::hub::HubConfig {
            capacity: config.hub_capacity,
            gather: std::time::Duration::from_millis(config.min_write_interval_ms),
            groups: config.write_groups,
        }
    }

    /// Admits one more connection of `tenant`, or says which limit refused it.
    pub fn admit(self: &Arc<Self>, tenant: &TenantId) -> Result<Slot, Refused> {
        {
            let mut per_tenant = self
                .per_tenant
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let mine = per_tenant.entry(tenant.clone()).or_insert(0);
            if *mine >= self.config.max_clients_per_tenant {
                return Err(Refused::Tenant);
            }
            *mine += 1;
        }
        let before = self.open.fetch_add(1, Ordering::AcqRel);
        if before >= self.config.max_clients {
            self.open.fetch_sub(1, Ordering::AcqRel);
            self.release_tenant(tenant);
            return Err(Refused::Server);
        }
        telemetry::stream_clients(1.0);
        Ok(Slot {
            streams: self.clone(),
            tenant: tenant.clone(),
        })
    }

    fn release_tenant(&self, tenant: &TenantId) {
        let mut per_tenant = self
            .per_tenant
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(n) = per_tenant.get_mut(tenant) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                per_tenant.remove(tenant);
            }
        }
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
    /// The API key the stream was opened with (`None`: the admin token).
    pub key: Option<StreamKey>,
    /// May see topic `audit` (the admin token, or a key with `audit:read`).
    pub audit: bool,
}

/// The API key behind a stream: it ends the stream when revoked or expired.
#[derive(Debug, Clone)]
pub struct StreamKey {
    pub id: KeyId,
    pub expires_at: Option<i64>,
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
pub async fn open(
    streams: &Streams,
    store: &dyn Store,
    tenant: &TenantId,
) -> Result<Opened, StoreError> {
    let live = streams.hub.subscribe(tenant.as_str());
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
    /// Part of `sent_count` already added to `sent`.
    counted: u64,
    /// How long a live frame may wait for room in the queue.
    slow_after: Duration,
    /// The connection's last frame, written after the queue drains.
    trailer: Trailer,
    /// When the last frame was queued (keepalives fill silences).
    last_frame_at: Instant,
    /// Frames gathered for the connection's next write.
    out: BytesMut,
    /// Largest chunk queued at once (a quarter of `client_buffer_bytes`).
    chunk_max: usize,
    /// Size of the last chunk: what the next one likely needs.
    chunk_hint: usize,
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
    let mut keys_changed = streams.keys_changed.subscribe();
    let mut cluster = streams.cluster.subscribe();
    let topic = req.topic.as_ref().map_or("#", TopicPattern::as_str);
    let mut s = Session {
        store: store.as_ref(),
        req: &req,
        tx,
        last: 0,
        last_sent: req.after.unwrap_or(0),
        sent: telemetry::stream_items_sent(),
        sent_count: 0,
        counted: 0,
        slow_after: Duration::from_millis(streams.config.slow_client_timeout_ms),
        trailer,
        last_frame_at: Instant::now(),
        out: BytesMut::new(),
        chunk_max: chunk_bytes(&streams.config),
        chunk_hint: 0,
    };
    let end = match s.open(&streams, head).await {
        Err(end) => end,
        Ok(()) => {
            tracing::info!(tenant_id = %req.tenant, topic, resume_cursor = ?req.after,
                from = s.last, "stream: client connected");
            s.count_sent();
            s.follow(
                &mut live,
                &mut stop,
                &mut keys_changed,
                &mut cluster,
                &streams.config,
            )
            .await
        }
    };
    s.count_sent();
    tracing::info!(tenant_id = %req.tenant, topic, reason = end.as_str(), items = s.sent_count,
        last_cursor = s.last_sent, "stream: client disconnected");
    telemetry::record_stream_end(end.as_str());
    drop(slot);
    end
}

impl Session<'_> {
    /// Whether the stream's key still authenticates (a change announced for it may be
    /// its creation arriving late from another node). A store error counts as live:
    /// the next change or the key's expiry is checked again.
    async fn key_is_live(&self, id: &KeyId) -> bool {
        let mut page = crate::store::PageRequest {
            after: None,
            limit: 1000,
        };
        loop {
            let Ok(p) = self
                .store
                .list_api_keys(&self.req.tenant, page.clone())
                .await
            else {
                return true;
            };
            if let Some(k) = p.items.iter().find(|k| k.id == *id) {
                return k.revoked_at.is_none();
            }
            match p.next {
                Some(next) => page.after = Some(next),
                None => return false,
            }
        }
    }

    /// Ends the stream because of its key, telling the client why.
    fn end_for_key(&self, end: End) -> End {
        let notice = serde_json::to_string(&Disconnect {
            reason: end.as_str(),
            last_event_id: self.last_sent,
        })
        .unwrap_or_default();
        if let Ok(mut t) = self.trailer.lock() {
            *t = Some(super::frame(None, "gatepulse.disconnect", &notice));
        }
        end
    }

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

    /// Follows live chunks until the session ends. The hub gathers a busy tenant's
    /// items into a chunk per `min_write_interval_ms`; a session in step with the
    /// stream queues a chunk's joined frames as they are (no copy), otherwise the
    /// items it still needs one by one.
    async fn follow(
        &mut self,
        live: &mut crate::stream::hub::Receiver,
        stop: &mut watch::Receiver<bool>,
        keys_changed: &mut tokio::sync::broadcast::Receiver<KeyId>,
        cluster: &mut tokio::sync::broadcast::Receiver<Bytes>,
        config: &StreamConfig,
    ) -> End {
        let keepalive = Duration::from_secs(config.keepalive_secs);
        self.last_frame_at = Instant::now();
        // The stop signal, the client leaving and the keepalive timer are registered
        // once, not per chunk: at fan-out a session runs this loop ~50 times a second,
        // and re-arming them each time (the stop signal's waiter list is shared by
        // every session) cost more than the chunk itself.
        let stopped = async {
            drop(stop.wait_for(|stop| *stop).await);
        };
        tokio::pin!(stopped);
        let tx = self.tx.clone();
        let gone = tx.closed();
        tokio::pin!(gone);
        let quiet = tokio::time::sleep_until(self.last_frame_at + keepalive);
        tokio::pin!(quiet);
        let key = self.req.key.clone();
        let expiry = async {
            match key.as_ref().and_then(|k| k.expires_at) {
                Some(at) => {
                    let left = at.saturating_sub(crate::clock::now_ms()).max(0);
                    tokio::time::sleep(Duration::from_millis(left as u64)).await;
                }
                None => std::future::pending::<()>().await,
            }
        };
        tokio::pin!(expiry);
        // Only a pattern that names them: "everything" means the tenant's items.
        let wants_cluster = self
            .req
            .topic
            .as_ref()
            .is_some_and(|p| p.matches(super::CLUSTER_TOPIC));
        loop {
            let sent_before = self.sent_count;
            let next = tokio::select! {
                biased;
                () = &mut stopped => return End::Shutdown,
                () = &mut gone => return End::Client,
                () = &mut expiry => return self.end_for_key(End::KeyExpired),
                notice = cluster.recv(), if wants_cluster => {
                    // A missed notice is superseded by the next one.
                    if let Ok(frame) = notice {
                        if let Err(end) = self.send_live(frame).await {
                            return end;
                        }
                        self.last_frame_at = Instant::now();
                    }
                    continue;
                }
                changed = keys_changed.recv(), if key.is_some() => {
                    let Some(k) = &key else { continue };
                    let ours = match changed {
                        Ok(id) => id == k.id,
                        // Missed some: look at our own key.
                        Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => true,
                        Err(tokio::sync::broadcast::error::RecvError::Closed) => false,
                    };
                    if ours && !self.key_is_live(&k.id).await {
                        return self.end_for_key(End::KeyRevoked);
                    }
                    continue;
                }
                r = live.recv() => r,
                () = &mut quiet => {
                    let due = self.last_frame_at + keepalive;
                    if Instant::now() >= due {
                        if let Err(end) = self.send_live(Bytes::from_static(b": keepalive\n\n")).await {
                            return end;
                        }
                        self.last_frame_at = Instant::now();
                    }
                    quiet.as_mut().reset(self.last_frame_at + keepalive);
                    continue;
                }
            };
            let mut next = match next {
                Ok(chunk) => Ok(chunk),
                Err(RecvError::Lagged(_)) => Err(Lag),
                Err(RecvError::Closed) => return End::Shutdown,
            };
            // Take every chunk already there before writing.
            loop {
                if let Err(end) = self.take(next).await {
                    return end;
                }
                next = match live.try_recv() {
                    Ok(chunk) => Ok(chunk),
                    Err(TryRecvError::Lagged(_)) => Err(Lag),
                    Err(TryRecvError::Empty) => break,
                    Err(TryRecvError::Closed) => return End::Shutdown,
                };
            }
            if let Err(end) = self.flush(true).await {
                return end;
            }
            if self.sent_count != sent_before {
                self.last_frame_at = Instant::now();
                self.count_sent();
            }
        }
    }

    /// One live chunk (or a lag in the ring): what lies before it and is not sent yet
    /// is read from the store first, so nothing is skipped.
    async fn take(&mut self, next: Result<Arc<Chunk>, Lag>) -> Result<(), End> {
        let chunk = match next {
            Ok(chunk) => chunk,
            Err(Lag) => return self.catch_up(u64::MAX).await,
        };
        if chunk.last <= self.last {
            return Ok(());
        }
        if chunk.first > self.last + 1 {
            // A hole: read what lies before this chunk from the store.
            self.catch_up(chunk.first - 1).await?;
            if chunk.last <= self.last {
                return Ok(());
            }
        }
        let whole = chunk.first == self.last + 1
            && chunk.is_dense()
            && chunk.topics.iter().all(|t| self.matches(t));
        if whole {
            // In step and every item wanted: the shared frames as they are.
            self.flush(true).await?;
            self.send_live(chunk.frames.clone()).await?;
            self.sent_count += chunk.items.len() as u64;
            self.last_sent = chunk.last;
            self.last = chunk.last;
            return Ok(());
        }
        for item in &chunk.items {
            if item.cursor <= self.last {
                continue;
            }
            if item.cursor > self.last + 1 {
                self.catch_up(item.cursor - 1).await?;
                if item.cursor <= self.last {
                    continue;
                }
            }
            self.offer(item).await?;
        }
        Ok(())
    }

    /// A live item: sent when its topic matches.
    async fn offer(&mut self, item: &StreamItem) -> Result<(), End> {
        self.last = item.cursor;
        if self.matches(&item.topic) {
            self.push(&item.frame);
            self.sent_item(item.cursor);
            if self.out.len() >= self.chunk_max {
                self.flush(true).await?;
            }
        }
        Ok(())
    }

    fn matches(&self, topic: &str) -> bool {
        (self.req.audit || topic != super::AUDIT_TOPIC)
            && self.req.topic.as_ref().is_none_or(|p| p.matches(topic))
    }

    fn sent_item(&mut self, cursor: u64) {
        self.last_sent = cursor;
        self.sent_count += 1;
    }

    /// Adds the items sent since the last call to the shared counter (once per batch:
    /// one shared atomic per item per client would be the hottest line at fan-out).
    fn count_sent(&mut self) {
        self.sent.increment(self.sent_count - self.counted);
        self.counted = self.sent_count;
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
                if !self.req.audit && &*item.topic == super::AUDIT_TOPIC {
                    continue;
                }
                self.push(&item.frame);
                self.sent_item(item.cursor);
                if self.out.len() >= self.chunk_max {
                    self.flush(false).await?;
                }
            }
            self.flush(false).await?;
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

    /// Adds a frame to the connection's next write.
    fn push(&mut self, frame: &[u8]) {
        if self.out.capacity() == 0 {
            self.out.reserve(
                self.chunk_hint
                    .clamp(frame.len(), self.chunk_max.max(frame.len())),
            );
        }
        self.out.extend_from_slice(frame);
    }

    /// Queues the gathered frames as one write: a live chunk may wait only
    /// `slow_client_timeout_ms` for room, history as long as it takes.
    async fn flush(&mut self, live: bool) -> Result<(), End> {
        if self.out.is_empty() {
            return Ok(());
        }
        self.chunk_hint = self.out.len();
        let chunk = self.out.split().freeze();
        if live {
            self.send_live(chunk).await
        } else {
            self.send(chunk).await
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_tenant_cannot_take_every_stream_slot() {
        let mut config =
            crate::config::Config::defaults_for_dev("/nonexistent".into(), String::new())
                .unwrap()
                .stream;
        config.max_clients = 3;
        config.max_clients_per_tenant = 2;
        let (_tx, stop) = watch::channel(false);
        let hub = Arc::new(crate::stream::hub::StreamHub::new(Streams::hub_config(
            &config,
        )));
        let streams = Arc::new(Streams::new(config, hub, stop));
        let (a, b) = (TenantId::generate(1), TenantId::generate(2));
        let a1 = streams.admit(&a).unwrap();
        let _a2 = streams.admit(&a).unwrap();
        assert_eq!(streams.admit(&a).unwrap_err(), Refused::Tenant);
        let _b1 = streams.admit(&b).unwrap();
        assert_eq!(streams.admit(&b).unwrap_err(), Refused::Server);
        assert_eq!(streams.open_connections(), 3);
        drop(a1);
        let _b2 = streams.admit(&b).unwrap();
        assert_eq!(streams.admit(&b).unwrap_err(), Refused::Tenant);
        assert_eq!(streams.open_connections(), 3);
    }
}
