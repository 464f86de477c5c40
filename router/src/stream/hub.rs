//! Live fan-out of committed stream items, one broadcast ring of chunks per tenant.
//!
//! The store hands each commit's items to the hub. The hub gathers a tenant's items
//! into [`Chunk`]s, at most one per `gather` interval while items keep coming (the
//! first item after a quiet interval goes out at once), and broadcasts each chunk
//! with its frames already joined into one buffer. A client that is in step with the
//! stream sends that buffer as it is: one wake-up, one queue push and one write per
//! chunk, and no per-client copy, however many items the chunk holds. That is what
//! lets one server feed a thousand clients of a busy tenant.
//!
//! Chunks are shared (`Arc`), so memory is one ring per tenant however many clients
//! read it. A client that falls further behind than the ring holds sees a lag and
//! re-reads the gap from the store; nothing is buffered per client here.

use std::collections::HashMap;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use tokio::sync::broadcast;

use super::StreamItem;

pub type Receiver = broadcast::Receiver<Arc<Chunk>>;

/// Consecutive items of one tenant's stream, with their frames joined.
#[derive(Debug)]
pub struct Chunk {
    /// Cursor of the first item.
    pub first: u64,
    /// Cursor of the last item.
    pub last: u64,
    pub items: Vec<Arc<StreamItem>>,
    /// The distinct topics of `items` (a client's topic pattern is matched against
    /// these, not against every item).
    pub topics: Vec<Box<str>>,
    /// Every item's frame, in order.
    pub frames: Bytes,
}

impl Chunk {
    fn new(items: Vec<Arc<StreamItem>>) -> Option<Self> {
        let first = items.first()?.cursor;
        let last = items.last()?.cursor;
        let mut joined = BytesMut::with_capacity(items.iter().map(|i| i.frame.len()).sum());
        let mut topics: Vec<Box<str>> = Vec::new();
        for item in &items {
            joined.extend_from_slice(&item.frame);
            if !topics.iter().any(|t| *t == item.topic) {
                topics.push(item.topic.clone());
            }
        }
        let frames = joined.freeze();
        // Each item's frame becomes a view into the joined buffer: one copy in memory.
        let mut at = 0;
        let items = items
            .iter()
            .map(|item| {
                let end = at + item.frame.len();
                let view = StreamItem {
                    cursor: item.cursor,
                    topic: item.topic.clone(),
                    created_at: item.created_at,
                    frame: frames.slice(at..end),
                };
                at = end;
                Arc::new(view)
            })
            .collect();
        Some(Self {
            first,
            last,
            items,
            topics,
            frames,
        })
    }

    /// Every cursor from `first` to `last` is here.
    pub fn is_dense(&self) -> bool {
        usize::try_from(self.last - self.first).is_ok_and(|gap| gap + 1 == self.items.len())
    }
}

/// A tenant's pending items go out without waiting once this many have gathered.
const CHUNK_ITEMS: usize = 256;

#[derive(Debug)]
struct Tenant {
    tx: broadcast::Sender<Arc<Chunk>>,
    pending: Vec<Arc<StreamItem>>,
    /// When the last chunk went out.
    sent_at: Option<Instant>,
}

impl Tenant {
    fn send(&mut self, now: Instant) {
        let items = std::mem::take(&mut self.pending);
        if let Some(chunk) = Chunk::new(items) {
            // No receiver left: nothing to do.
            let _ = self.tx.send(Arc::new(chunk));
            self.sent_at = Some(now);
        }
    }

    /// When the pending items are due.
    fn due(&self, gather: Duration) -> Option<Instant> {
        if self.pending.is_empty() {
            return None;
        }
        Some(self.sent_at.map_or_else(Instant::now, |at| at + gather))
    }
}

#[derive(Debug)]
struct Shared {
    tenants: Mutex<HashMap<Box<str>, Tenant>>,
    /// Wakes the gatherer when items are pending.
    wake: Condvar,
    capacity: usize,
    gather: Duration,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, HashMap<Box<str>, Tenant>> {
        match self.tenants.lock() {
            Ok(t) => t,
            Err(poisoned) => poisoned.into_inner(),
        }
    }
}

#[derive(Debug)]
pub struct StreamHub {
    shared: Arc<Shared>,
}

impl StreamHub {
    /// `capacity`: chunks each tenant's ring holds; `gather`: at most one chunk per
    /// tenant per this interval while items keep coming (zero: a chunk per commit).
    pub fn new(capacity: usize, gather: Duration) -> Self {
        let shared = Arc::new(Shared {
            tenants: Mutex::new(HashMap::new()),
            wake: Condvar::new(),
            capacity: capacity.max(1),
            gather,
        });
        if !gather.is_zero() {
            let weak = Arc::downgrade(&shared);
            let spawned = std::thread::Builder::new()
                .name("gp-stream-gather".into())
                .spawn(move || gatherer(&weak));
            if let Err(e) = spawned {
                tracing::error!(error = %e, "cannot start the stream gatherer");
            }
        }
        Self { shared }
    }

    /// Starts receiving the tenant's chunks committed from now on.
    pub fn subscribe(&self, tenant: &str) -> Receiver {
        let mut tenants = self.shared.lock();
        // Rings nobody listens to any more go; a tenant's ring stays while it has one.
        tenants.retain(|_, t| t.tx.receiver_count() > 0);
        tenants
            .entry(tenant.into())
            .or_insert_with(|| Tenant {
                tx: broadcast::channel(self.shared.capacity).0,
                pending: Vec::new(),
                sent_at: None,
            })
            .tx
            .subscribe()
    }

    /// True when someone listens to the tenant: only then are items built.
    pub fn wants(&self, tenant: &str) -> bool {
        self.shared
            .lock()
            .get(tenant)
            .is_some_and(|t| t.tx.receiver_count() > 0)
    }

    /// Hands over items of one tenant, in cursor order.
    pub fn publish(&self, tenant: &str, items: impl IntoIterator<Item = Arc<StreamItem>>) {
        let mut tenants = self.shared.lock();
        let Some(t) = tenants.get_mut(tenant) else {
            return;
        };
        let now = Instant::now();
        let was_empty = t.pending.is_empty();
        let quiet = was_empty
            && t.sent_at
                .is_none_or(|at| now.duration_since(at) >= self.shared.gather);
        t.pending.extend(items);
        if quiet || t.pending.len() >= CHUNK_ITEMS || self.shared.gather.is_zero() {
            t.send(now);
        } else if was_empty {
            // A new due time for the gatherer.
            self.shared.wake.notify_one();
        }
    }

    /// Ends every live subscription (server shutdown).
    pub fn close(&self) {
        self.shared.lock().clear();
        self.shared.wake.notify_one();
    }
}

impl Drop for StreamHub {
    fn drop(&mut self) {
        self.close();
    }
}

/// Sends each tenant's pending items when they are due; ends with the hub.
fn gatherer(shared: &Weak<Shared>) {
    loop {
        let Some(shared) = shared.upgrade() else {
            return;
        };
        let mut tenants = shared.lock();
        let now = Instant::now();
        let mut next: Option<Instant> = None;
        for t in tenants.values_mut() {
            match t.due(shared.gather) {
                Some(due) if due <= now => t.send(now),
                Some(due) => next = Some(next.map_or(due, |n| n.min(due))),
                None => {}
            }
        }
        // Sleep until the next due chunk; a publish with new pending items wakes it.
        // The wait is bounded so that a dropped hub ends the thread.
        let wait = next.map_or(Duration::from_secs(1), |n| n.saturating_duration_since(now));
        let guard = shared.wake.wait_timeout(tenants, wait);
        drop(guard);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(cursor: u64) -> Arc<StreamItem> {
        Arc::new(StreamItem::new(cursor, "t", 0, "{}"))
    }

    #[tokio::test]
    async fn only_listened_tenants_get_items() {
        let hub = StreamHub::new(8, Duration::ZERO);
        assert!(!hub.wants("a"));
        let mut rx = hub.subscribe("a");
        assert!(hub.wants("a"));
        assert!(!hub.wants("b"));
        hub.publish("b", [item(1)]);
        hub.publish("a", [item(1), item(2)]);
        let chunk = rx.recv().await.unwrap();
        assert_eq!((chunk.first, chunk.last), (1, 2));
        assert_eq!(
            &chunk.frames[..],
            b"id: 1\nevent: t\ndata: {}\n\nid: 2\nevent: t\ndata: {}\n\n"
        );
        assert_eq!(chunk.topics, vec!["t".into()]);
        drop(rx);
        assert!(!hub.wants("a"));
    }

    #[tokio::test]
    async fn a_reader_behind_the_ring_sees_a_lag() {
        let hub = StreamHub::new(2, Duration::ZERO);
        let mut rx = hub.subscribe("a");
        for c in 1..=5 {
            hub.publish("a", [item(c)]);
        }
        assert!(matches!(
            rx.recv().await,
            Err(broadcast::error::RecvError::Lagged(3))
        ));
        assert_eq!(rx.recv().await.unwrap().first, 4);
    }

    #[tokio::test]
    async fn a_busy_tenant_gets_one_chunk_per_interval() {
        let hub = StreamHub::new(64, Duration::from_millis(50));
        let mut rx = hub.subscribe("a");
        // After a quiet interval the first item goes out at once...
        hub.publish("a", [item(1)]);
        let first = rx.try_recv().unwrap();
        assert_eq!((first.first, first.last), (1, 1));
        // ...the ones right behind it wait for the interval, gathered.
        for c in 2..=10 {
            hub.publish("a", [item(c)]);
        }
        assert!(rx.try_recv().is_err());
        let gathered = tokio::time::timeout(Duration::from_secs(10), rx.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!((gathered.first, gathered.last), (2, 10));
        assert_eq!(gathered.items.len(), 9);
    }

    #[test]
    fn many_pending_items_go_out_without_waiting() {
        let hub = StreamHub::new(64, Duration::from_secs(3600));
        let mut rx = hub.subscribe("a");
        hub.publish("a", [item(1)]);
        hub.publish("a", (2..=300).map(item));
        assert_eq!(rx.try_recv().unwrap().last, 1);
        let big = rx.try_recv().unwrap();
        assert_eq!((big.first, big.last), (2, 300));
    }
}
