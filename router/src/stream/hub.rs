//! Live fan-out of committed stream items, broadcast rings of chunks per tenant.
//!
//! The store hands each commit's items to the hub. The hub gathers a tenant's items
//! into [`Chunk`]s, at most about one per `gather` interval while items keep coming
//! (the first item after a quiet interval goes out at once), and broadcasts each
//! chunk with its frames already joined into one buffer. A client that is in step
//! with the stream sends that buffer as it is: one wake-up, one queue push and one
//! write per chunk, and no per-client copy, however many items the chunk holds.
//!
//! A tenant's clients are spread over `groups` write groups, each with its own ring
//! and its own gathering, and the groups' chunks go out at evenly spaced phases of
//! the interval (group `g` of `n` at `g/n` of it). A busy tenant's thousand clients
//! are then written a few hundred at a time, a burst every `gather / n`, instead of
//! all at once every `gather`: the same writes per second, but a client's chunk no
//! longer waits behind every other client's, so the tail latency is about the
//! interval plus one small burst. That is what lets one server feed a thousand
//! clients of a busy tenant.
//!
//! Chunks are shared (`Arc`) by the clients of a group and dropped once all of them
//! have read it, so memory is what the slowest clients have not read yet, not a copy
//! per client. A client that falls further behind than its ring holds sees a lag and
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

/// A group's pending items go out without waiting once this many have gathered.
const CHUNK_ITEMS: usize = 256;

/// How the hub gathers and spreads a tenant's live items.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HubConfig {
    /// Chunks each write group's ring holds.
    pub capacity: usize,
    /// At most about one chunk per group per this interval while items keep coming
    /// (zero: a chunk per commit, and one group).
    pub gather: Duration,
    /// Write groups per tenant, their chunks spread evenly over the interval.
    pub groups: usize,
}

/// Some of a tenant's clients, written together.
#[derive(Debug)]
struct Group {
    tx: broadcast::Sender<Arc<Chunk>>,
    pending: Vec<Arc<StreamItem>>,
    /// Where in the interval this group's chunks go out.
    phase: Duration,
    /// The group's next slot; `None` before its first chunk.
    due: Option<Instant>,
}

impl Group {
    fn listened(&self) -> bool {
        self.tx.receiver_count() > 0
    }

    fn send(&mut self, now: Instant, shared: &Shared) {
        let items = std::mem::take(&mut self.pending);
        if let Some(chunk) = Chunk::new(items) {
            // No receiver left: nothing to do.
            let _ = self.tx.send(Arc::new(chunk));
            self.due = Some(shared.next_slot(self.phase, now));
        }
    }
}

#[derive(Debug)]
struct Tenant {
    groups: Box<[Group]>,
}

impl Tenant {
    fn listened(&self) -> bool {
        self.groups.iter().any(Group::listened)
    }
}

#[derive(Debug)]
struct Shared {
    tenants: Mutex<HashMap<Box<str>, Tenant>>,
    /// Wakes the gatherer when items are pending.
    wake: Condvar,
    config: HubConfig,
    /// Origin of every group's slots.
    epoch: Instant,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, HashMap<Box<str>, Tenant>> {
        match self.tenants.lock() {
            Ok(t) => t,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    fn new_tenant(&self) -> Tenant {
        let n = self.config.groups;
        let groups = (0..n)
            .map(|g| Group {
                tx: broadcast::channel(self.config.capacity).0,
                pending: Vec::new(),
                phase: phase(self.config.gather, g, n),
                due: None,
            })
            .collect();
        Tenant { groups }
    }

    /// The first slot of a group with `phase` strictly after `after`: slots are
    /// `epoch + phase + k × gather`.
    fn next_slot(&self, phase: Duration, after: Instant) -> Instant {
        let gather = self.config.gather.as_nanos().max(1);
        let base = self.epoch + phase;
        let Some(since) = after.checked_duration_since(base) else {
            return base;
        };
        let slots = since.as_nanos() / gather + 1;
        base + Duration::from_nanos(u64::try_from(slots * gather).unwrap_or(u64::MAX))
    }
}

/// Group `g` of `n` goes out `g/n` of the way into each interval.
fn phase(gather: Duration, g: usize, n: usize) -> Duration {
    let (g, n) = (
        u32::try_from(g).unwrap_or(u32::MAX),
        u32::try_from(n).unwrap_or(u32::MAX).max(1),
    );
    gather * g / n
}

#[derive(Debug)]
pub struct StreamHub {
    shared: Arc<Shared>,
}

impl StreamHub {
    pub fn new(config: HubConfig) -> Self {
        let config = HubConfig {
            capacity: config.capacity.max(1),
            gather: config.gather,
            // Without gathering every commit goes out at once: nothing to spread.
            groups: if config.gather.is_zero() {
                1
            } else {
                config.groups.max(1)
            },
        };
        let shared = Arc::new(Shared {
            tenants: Mutex::new(HashMap::new()),
            wake: Condvar::new(),
            config,
            epoch: Instant::now(),
        });
        if !config.gather.is_zero() {
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

    /// Starts receiving the tenant's chunks committed from now on, in the write group
    /// with the fewest clients.
    pub fn subscribe(&self, tenant: &str) -> Receiver {
        let mut tenants = self.shared.lock();
        // Rings nobody listens to any more go; a tenant's rings stay while it has a
        // client.
        tenants.retain(|_, t| t.listened());
        let t = tenants
            .entry(tenant.into())
            .or_insert_with(|| self.shared.new_tenant());
        let group = t.groups.iter_mut().min_by_key(|g| g.tx.receiver_count());
        match group {
            Some(g) => g.tx.subscribe(),
            // A tenant always has a group; a closed receiver if not.
            None => broadcast::channel(1).1,
        }
    }

    /// True when someone listens to the tenant: only then are items built.
    pub fn wants(&self, tenant: &str) -> bool {
        self.shared.lock().get(tenant).is_some_and(Tenant::listened)
    }

    /// Hands over items of one tenant, in cursor order.
    pub fn publish(&self, tenant: &str, items: impl IntoIterator<Item = Arc<StreamItem>>) {
        let mut tenants = self.shared.lock();
        let Some(t) = tenants.get_mut(tenant) else {
            return;
        };
        let items: Vec<Arc<StreamItem>> = items.into_iter().collect();
        let now = Instant::now();
        let at_once = self.shared.config.gather.is_zero();
        let mut wake = false;
        for g in t.groups.iter_mut().filter(|g| g.listened()) {
            let was_empty = g.pending.is_empty();
            // The group's slot has passed with nothing to send: this goes at once.
            let quiet = was_empty && g.due.is_none_or(|due| now >= due);
            g.pending.extend(items.iter().cloned());
            if at_once || quiet || g.pending.len() >= CHUNK_ITEMS {
                g.send(now, &self.shared);
            } else if was_empty {
                wake = true;
            }
        }
        if wake {
            // A new due slot for the gatherer.
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

/// Sends each group's pending items when its slot comes; ends with the hub.
fn gatherer(shared: &Weak<Shared>) {
    loop {
        let Some(shared) = shared.upgrade() else {
            return;
        };
        let mut tenants = shared.lock();
        let now = Instant::now();
        let mut next: Option<Instant> = None;
        for t in tenants.values_mut() {
            for g in t.groups.iter_mut() {
                if g.pending.is_empty() {
                    continue;
                }
                if !g.listened() {
                    // Its clients left before the slot.
                    g.pending.clear();
                    continue;
                }
                match g.due {
                    Some(due) if due > now => next = Some(next.map_or(due, |n| n.min(due))),
                    _ => g.send(now, &shared),
                }
            }
        }
        // Sleep until the next due slot; a publish with new pending items wakes it.
        // The wait is bounded so that a dropped hub ends the thread.
        let wait = next.map_or(Duration::from_secs(1), |n| n.saturating_duration_since(now));
        let guard = shared.wake.wait_timeout(tenants, wait);
        drop(guard);
    }
}

/// The hub follows the commit feed: each batch's items go to their tenants' rings,
/// each tenant's in cursor order.
impl crate::store::feed::FeedListener for StreamHub {
    fn wants_stream(&self, tenant: &str) -> bool {
        self.wants(tenant)
    }

    fn committed(&self, batch: &crate::store::feed::Committed) {
        if batch.stream.is_empty() {
            return;
        }
        let mut items: Vec<&(Box<str>, Arc<StreamItem>)> = batch.stream.iter().collect();
        items.sort_by(|a, b| (&a.0, a.1.cursor).cmp(&(&b.0, b.1.cursor)));
        let mut rest = items.into_iter().peekable();
        while let Some((tenant, first)) = rest.next() {
            let mut mine = vec![first.clone()];
            while let Some((_, item)) = rest.next_if(|(t, _)| t == tenant) {
                mine.push(item.clone());
            }
            self.publish(tenant, mine);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(cursor: u64) -> Arc<StreamItem> {
        Arc::new(StreamItem::new(cursor, "t", 0, "{}"))
    }

    fn hub(capacity: usize, gather: Duration, groups: usize) -> StreamHub {
        StreamHub::new(HubConfig {
            capacity,
            gather,
            groups,
        })
    }

    #[tokio::test]
    async fn only_listened_tenants_get_items() {
        let hub = hub(8, Duration::ZERO, 4);
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
        let hub = hub(2, Duration::ZERO, 4);
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
        let hub = hub(64, Duration::from_millis(50), 4);
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
        let hub = hub(64, Duration::from_secs(3600), 4);
        let mut rx = hub.subscribe("a");
        hub.publish("a", [item(1)]);
        hub.publish("a", (2..=300).map(item));
        assert_eq!(rx.try_recv().unwrap().last, 1);
        let big = rx.try_recv().unwrap();
        assert_eq!((big.first, big.last), (2, 300));
    }

    #[test]
    fn clients_are_spread_over_the_groups_and_each_gets_every_item() {
        let hub = hub(64, Duration::from_secs(3600), 4);
        let mut rxs: Vec<_> = (0..8).map(|_| hub.subscribe("a")).collect();
        {
            let tenants = hub.shared.lock();
            let counts: Vec<_> = tenants["a"]
                .groups
                .iter()
                .map(|g| g.tx.receiver_count())
                .collect();
            assert_eq!(counts, [2, 2, 2, 2]);
        }
        hub.publish("a", [item(1)]);
        hub.publish("a", (2..=300).map(item));
        for rx in &mut rxs {
            assert_eq!(rx.try_recv().unwrap().last, 1);
            let big = rx.try_recv().unwrap();
            assert_eq!((big.first, big.last, big.items.len()), (2, 300, 299));
            assert!(rx.try_recv().is_err());
        }
        // A client that leaves frees its place: the next one joins that group.
        drop(rxs.swap_remove(0));
        let _again = hub.subscribe("a");
        let tenants = hub.shared.lock();
        assert!(
            tenants["a"]
                .groups
                .iter()
                .all(|g| g.tx.receiver_count() == 2)
        );
    }

    #[test]
    fn groups_gather_on_slots_spread_over_the_interval() {
        let gather = Duration::from_millis(400);
        let hub = hub(64, gather, 4);
        let _rxs: Vec<_> = (0..4).map(|_| hub.subscribe("a")).collect();
        // The first item goes at once to every group; each group's next chunk waits
        // for its own slot, a quarter of the interval apart.
        hub.publish("a", [item(1)]);
        let tenants = hub.shared.lock();
        let epoch = hub.shared.epoch;
        let offsets: Vec<u128> = tenants["a"]
            .groups
            .iter()
            .map(|g| (g.due.unwrap() - epoch).as_millis() % 400)
            .collect();
        assert_eq!(offsets, [0, 100, 200, 300]);
    }

    #[test]
    fn a_slot_is_strictly_after_the_time_asked() {
        let hub = hub(64, Duration::from_millis(40), 4);
        let shared = &hub.shared;
        let at = |ms| shared.epoch + Duration::from_millis(ms);
        let phase = Duration::from_millis(10);
        assert_eq!(shared.next_slot(phase, at(5)), at(10));
        assert_eq!(shared.next_slot(phase, at(10)), at(50));
        assert_eq!(shared.next_slot(phase, at(15)), at(50));
        assert_eq!(shared.next_slot(Duration::ZERO, at(80)), at(120));
        assert_eq!(
            super::phase(Duration::from_millis(40), 3, 4),
            Duration::from_millis(30)
        );
    }
}
