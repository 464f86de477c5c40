//! The cluster of one: a redb file is opened by one process, so its node is the
//! leader (term 1) from its first beat, and the node list is that node.

use super::RedbStore;
use crate::store::{Beat, ClusterState, LeaderRecord, LeaderState, NodeRecord, StoreResult};

/// The one node's leadership: term 1, renewed by every beat.
const TERM: u64 = 1;

impl RedbStore {
    pub(super) fn beat(&self, beat: Beat) -> LeaderState {
        let now = crate::clock::now_ms();
        let node = beat.node.clone();
        if let Ok(mut slot) = self.node.lock() {
            *slot = Some(NodeRecord {
                id: beat.node,
                address: beat.address,
                version: beat.version,
                started_at: beat.started_at,
                last_heartbeat_at: now,
                leases: 0,
            });
        }
        LeaderState {
            held: true,
            leader: Some(node),
            term: TERM,
        }
    }

    pub(super) fn leave(&self) {
        if let Ok(mut slot) = self.node.lock() {
            *slot = None;
        }
    }

    pub(super) async fn cluster_state(&self) -> StoreResult<ClusterState> {
        let now = crate::clock::now_ms();
        let in_flight = self.queue_counts(None).await?.in_flight;
        let node = self.node.lock().ok().and_then(|n| n.clone());
        Ok(ClusterState {
            now,
            leader: node.as_ref().map(|n| LeaderRecord {
                node: n.id.clone(),
                term: TERM,
                elected_at: n.started_at,
                expires_at: i64::MAX,
            }),
            nodes: node
                .map(|n| NodeRecord {
                    leases: in_flight,
                    ..n
                })
                .into_iter()
                .collect(),
        })
    }
}
