//! The commit feed: what a store announces after a commit, to whoever listens.
//!
//! A backend never calls the stream hub, the dispatcher or a cache. After a durable
//! commit it hands a [`Committed`] to the [`CommitFeed`]: the new stream items (events
//! and attempt statuses, in cursor order per tenant), the endpoints that got queued
//! work, and the configuration changes caches depend on. Listeners subscribe once at
//! start: the stream hub (live SSE), the queue signal (wakes the dispatcher), the
//! topic index and the pipeline cache (invalidations), the dispatcher's endpoint
//! settings. On the embedded store the announcements come straight from the writer
//! thread; a shared database's backend produces the same batches by tailing what every
//! node committed, so every node's listeners see every node's changes.

use std::sync::{Arc, RwLock};

use crate::ids::{EndpointId, KeyId, SubscriptionId, TenantId};
use crate::stream::StreamItem;

/// A configuration change a cache may depend on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// A subscription was created, updated or deleted.
    Subscription {
        tenant: TenantId,
        id: SubscriptionId,
    },
    /// An endpoint was updated (settings, secrets, enabled) or deleted.
    Endpoint {
        tenant: TenantId,
        id: EndpointId,
        deleted: bool,
    },
    /// An API key was revoked (caches of looked-up keys drop it).
    ApiKey { tenant: TenantId, id: KeyId },
    /// A plugin version was uploaded or deleted.
    Plugin {
        tenant: TenantId,
        name: String,
        version: String,
    },
}

/// What one commit (or a tailed batch of commits) announces.
#[derive(Debug, Default)]
pub struct Committed {
    /// New stream items, per tenant in cursor order, only for tenants a listener
    /// wants (see [`CommitFeed::wants_stream`]).
    pub stream: Vec<(Box<str>, Arc<StreamItem>)>,
    /// Endpoints with new queued work (new deliveries, requeues, returned leases).
    pub queued: Vec<(TenantId, EndpointId)>,
    pub changes: Vec<Change>,
}

impl Committed {
    pub fn queued(queued: Vec<(TenantId, EndpointId)>) -> Self {
        Self {
            queued,
            ..Self::default()
        }
    }

    pub fn change(change: Change) -> Self {
        Self {
            changes: vec![change],
            ..Self::default()
        }
    }

    pub fn is_empty(&self) -> bool {
        self.stream.is_empty() && self.queued.is_empty() && self.changes.is_empty()
    }
}

/// Something that follows the feed. Called on the announcing thread: keep it short
/// (hand work off, never block).
pub trait FeedListener: Send + Sync + std::fmt::Debug {
    /// Whether this listener wants the stream items of `tenant` (building them costs
    /// a little per item; a tenant nobody follows gets none).
    fn wants_stream(&self, _tenant: &str) -> bool {
        false
    }

    fn committed(&self, batch: &Committed);
}

/// The listeners of one store.
#[derive(Debug, Default)]
pub struct CommitFeed {
    listeners: RwLock<Vec<Arc<dyn FeedListener>>>,
}

impl CommitFeed {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Adds a listener for every later announcement.
    pub fn subscribe(&self, listener: Arc<dyn FeedListener>) {
        if let Ok(mut l) = self.listeners.write() {
            l.push(listener);
        }
    }

    /// Whether any listener wants `tenant`'s stream items.
    pub fn wants_stream(&self, tenant: &str) -> bool {
        self.listeners
            .read()
            .is_ok_and(|l| l.iter().any(|x| x.wants_stream(tenant)))
    }

    /// Hands a batch to every listener.
    pub fn announce(&self, batch: Committed) {
        if batch.is_empty() {
            return;
        }
        let listeners = match self.listeners.read() {
            Ok(l) => l.clone(),
            Err(_) => return,
        };
        for l in &listeners {
            l.committed(&batch);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[derive(Debug, Default)]
    struct Recorder {
        seen: Mutex<Vec<usize>>,
        wants: bool,
    }

    impl FeedListener for Recorder {
        fn wants_stream(&self, _tenant: &str) -> bool {
            self.wants
        }

        fn committed(&self, batch: &Committed) {
            self.seen.lock().unwrap().push(batch.changes.len());
        }
    }

    #[test]
    fn every_listener_sees_every_non_empty_batch() {
        let feed = CommitFeed::new();
        let (a, b) = (
            Arc::new(Recorder::default()),
            Arc::new(Recorder {
                wants: true,
                ..Default::default()
            }),
        );
        assert!(!feed.wants_stream("t"));
        feed.subscribe(a.clone());
        feed.subscribe(b.clone());
        assert!(feed.wants_stream("t"));
        feed.announce(Committed::default());
        feed.announce(Committed::change(Change::Plugin {
            tenant: TenantId::generate(1),
            name: "p".into(),
            version: "1".into(),
        }));
        assert_eq!(*a.seen.lock().unwrap(), vec![1]);
        assert_eq!(*b.seen.lock().unwrap(), vec![1]);
    }
}
