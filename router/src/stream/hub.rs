//! Live fan-out of committed stream items, one broadcast ring per tenant.
//!
//! Items are shared (`Arc`), so memory is one ring per tenant with listeners however
//! many clients read it. A client that falls further behind than the ring holds sees
//! a lag and re-reads the gap from the store; nothing is buffered per client here.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use tokio::sync::broadcast;

use super::StreamItem;

pub type Receiver = broadcast::Receiver<Arc<StreamItem>>;

#[derive(Debug)]
pub struct StreamHub {
    tenants: RwLock<HashMap<Box<str>, broadcast::Sender<Arc<StreamItem>>>>,
    capacity: usize,
}

impl StreamHub {
    pub fn new(capacity: usize) -> Self {
        Self {
            tenants: RwLock::new(HashMap::new()),
            capacity: capacity.max(1),
        }
    }

    /// Starts receiving the tenant's items committed from now on.
    pub fn subscribe(&self, tenant: &str) -> Receiver {
        let mut tenants = match self.tenants.write() {
            Ok(t) => t,
            Err(poisoned) => poisoned.into_inner(),
        };
        // Rings nobody listens to any more go; a tenant's ring stays while it has one.
        tenants.retain(|_, tx| tx.receiver_count() > 0);
        tenants
            .entry(tenant.into())
            .or_insert_with(|| broadcast::channel(self.capacity).0)
            .subscribe()
    }

    /// True when someone listens to the tenant: only then are items built.
    pub fn wants(&self, tenant: &str) -> bool {
        let tenants = match self.tenants.read() {
            Ok(t) => t,
            Err(poisoned) => poisoned.into_inner(),
        };
        tenants
            .get(tenant)
            .is_some_and(|tx| tx.receiver_count() > 0)
    }

    /// Sends items of one tenant, in cursor order.
    pub fn publish(&self, tenant: &str, items: impl IntoIterator<Item = Arc<StreamItem>>) {
        let tenants = match self.tenants.read() {
            Ok(t) => t,
            Err(poisoned) => poisoned.into_inner(),
        };
        if let Some(tx) = tenants.get(tenant) {
            for item in items {
                // No receiver left: nothing to do.
                let _ = tx.send(item);
            }
        }
    }

    /// Ends every live subscription (server shutdown).
    pub fn close(&self) {
        let mut tenants = match self.tenants.write() {
            Ok(t) => t,
            Err(poisoned) => poisoned.into_inner(),
        };
        tenants.clear();
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
        let hub = StreamHub::new(8);
        assert!(!hub.wants("a"));
        let mut rx = hub.subscribe("a");
        assert!(hub.wants("a"));
        assert!(!hub.wants("b"));
        hub.publish("b", [item(1)]);
        hub.publish("a", [item(1), item(2)]);
        assert_eq!(rx.recv().await.unwrap().cursor, 1);
        assert_eq!(rx.recv().await.unwrap().cursor, 2);
        drop(rx);
        assert!(!hub.wants("a"));
    }

    #[tokio::test]
    async fn a_reader_behind_the_ring_sees_a_lag() {
        let hub = StreamHub::new(2);
        let mut rx = hub.subscribe("a");
        hub.publish("a", (1..=5).map(item));
        assert!(matches!(
            rx.recv().await,
            Err(broadcast::error::RecvError::Lagged(3))
        ));
        assert_eq!(rx.recv().await.unwrap().cursor, 4);
    }
}
