//! The cluster as the store sees it (admin token): `GET /v1/admin/cluster`, the nodes
//! with their heartbeats, roles and leases, and the leadership (`gp cluster status`).

use axum::Router;
use axum::extract::State;
use axum::routing::get;
use serde::Serialize;
use utoipa::ToSchema;

use super::AppState;
use super::error::{ApiError, Problem};
use crate::auth::Principal;
use crate::clock::rfc3339;
use crate::config::ClusterMode;
use crate::store::ClusterState;

#[derive(Debug, Serialize, ToSchema)]
pub struct ClusterOut {
    /// The id of the node that answered.
    #[serde(rename = "self")]
    pub self_id: String,
    /// `leader` (only the leader dispatches) or `active-active`.
    pub mode: &'static str,
    /// The leadership, when a node holds one that has not expired.
    pub leader: Option<LeaderOut>,
    /// Nodes by id: every node with a recent heartbeat, and any node still holding
    /// leases (with no heartbeat when it left the list).
    pub nodes: Vec<NodeOut>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct LeaderOut {
    pub id: String,
    /// Goes up by one each time the leadership changes hands.
    pub term: u64,
    pub elected_at: String,
    /// When it lapses unless renewed (the store's clock).
    pub expires_at: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct NodeOut {
    pub id: String,
    /// `leader` or `follower`.
    pub role: &'static str,
    pub address: String,
    pub version: String,
    pub started_at: Option<String>,
    pub last_heartbeat_at: Option<String>,
    /// Milliseconds since its last heartbeat, in the store's clock.
    pub heartbeat_age_ms: Option<u64>,
    /// Heartbeats within `cluster.leader_ttl_ms`.
    pub alive: bool,
    /// Deliveries it holds leases on.
    pub leases: u64,
}

/// The answer for `state`, seen from `self_id`: a node is alive while its last
/// heartbeat is younger than `ttl_ms`; the leader is the leadership row's node while
/// that row has not expired.
pub fn cluster_out(
    self_id: &str,
    mode: ClusterMode,
    ttl_ms: u64,
    state: ClusterState,
) -> ClusterOut {
    let now = state.now;
    let leader = state.leader.filter(|l| l.expires_at > now);
    let nodes = state
        .nodes
        .into_iter()
        .map(|n| {
            let seen = n.last_heartbeat_at > 0;
            let age = seen.then(|| u64::try_from(now - n.last_heartbeat_at).unwrap_or(0));
            NodeOut {
                role: if leader.as_ref().is_some_and(|l| l.node == n.id) {
                    "leader"
                } else {
                    "follower"
                },
                alive: age.is_some_and(|a| a < ttl_ms),
                started_at: (n.started_at > 0).then(|| rfc3339(n.started_at)),
                last_heartbeat_at: seen.then(|| rfc3339(n.last_heartbeat_at)),
                heartbeat_age_ms: age,
                id: n.id,
                address: n.address,
                version: n.version,
                leases: n.leases,
            }
        })
        .collect();
    ClusterOut {
        self_id: self_id.to_owned(),
        mode: match mode {
            ClusterMode::Leader => "leader",
            ClusterMode::ActiveActive => "active-active",
        },
        leader: leader.map(|l| LeaderOut {
            id: l.node,
            term: l.term,
            elected_at: rfc3339(l.elected_at),
            expires_at: if l.expires_at == i64::MAX {
                // The embedded store's one node: its leadership never lapses.
                rfc3339(253_402_300_799_000)
            } else {
                rfc3339(l.expires_at)
            },
        }),
        nodes,
    }
}

/// The nodes sharing this store and the leadership (admin token).
#[utoipa::path(get, path = "/v1/admin/cluster", tag = "operations",
    responses((status = 200, body = ClusterOut), (status = "4XX", body = Problem)),
    security(("bearer" = [])))]
pub async fn get_cluster(
    State(state): State<AppState>,
    principal: Principal,
) -> Result<axum::Json<ClusterOut>, ApiError> {
    principal.require_admin()?;
    let found = state.store.cluster_state().await?;
    let c = &state.config.cluster;
    Ok(axum::Json(cluster_out(
        state.leadership.node(),
        c.mode,
        c.leader_ttl_ms,
        found,
    )))
}

pub fn router() -> Router<AppState> {
    Router::new().route("/v1/admin/cluster", get(get_cluster))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::store::{LeaderRecord, NodeRecord};

    fn node(id: &str, beat: i64, leases: u64) -> NodeRecord {
        NodeRecord {
            id: id.into(),
            address: format!("{id}:8080"),
            version: "1.3.0".into(),
            started_at: if beat > 0 { 1_000 } else { 0 },
            last_heartbeat_at: beat,
            leases,
        }
    }

    #[test]
    fn roles_ages_and_a_lapsed_leadership() {
        let state = |expires_at| ClusterState {
            now: 100_000,
            leader: Some(LeaderRecord {
                node: "a".into(),
                term: 7,
                elected_at: 90_000,
                expires_at,
            }),
            nodes: vec![
                node("a", 99_500, 3),
                node("b", 99_900, 0),
                node("c", 80_000, 0),
                node("gone", 0, 2),
            ],
        };
        let out = cluster_out("b", ClusterMode::Leader, 5_000, state(104_000));
        let v = serde_json::to_value(&out).unwrap();
        assert_eq!(v["self"], "b");
        assert_eq!(v["leader"]["id"], "a");
        assert_eq!(v["leader"]["term"], 7);
        let roles: Vec<_> = out
            .nodes
            .iter()
            .map(|n| (n.id.as_str(), n.role, n.alive))
            .collect();
        assert_eq!(
            roles,
            [
                ("a", "leader", true),
                ("b", "follower", true),
                ("c", "follower", false),
                ("gone", "follower", false)
            ]
        );
        assert_eq!(out.nodes[0].heartbeat_age_ms, Some(500));
        assert_eq!(out.nodes[3].last_heartbeat_at, None);
        assert_eq!(out.nodes[3].leases, 2);
        // Expired: nobody leads until the next bid.
        let out = cluster_out("b", ClusterMode::Leader, 5_000, state(100_000));
        assert!(out.leader.is_none());
        assert!(out.nodes.iter().all(|n| n.role == "follower"));
    }
}
