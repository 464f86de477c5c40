//! The cluster's rows: node heartbeats and the one leadership row, every time in
//! the database's clock (`now()`), so nodes' clocks never decide who leads.
//!
//! A bid is one `INSERT … ON CONFLICT DO UPDATE … WHERE`: it wins when the row is
//! missing or expired (the term goes up by one), renews when the row is the bidder's
//! own unexpired term, and otherwise changes nothing. A row naming the bidder under
//! another term is a previous run of the same node (it restarted): the bid takes a new
//! term at once instead of waiting for the old one to expire.

use std::collections::BTreeMap;

use super::PgStore;
use super::schema::LEADERSHIP;
use crate::ids::{EndpointId, TenantId};
use crate::store::{
    Beat, ClusterState, HealthReport, LeaderRecord, LeaderState, NodeRecord, StoreResult,
};

/// Registered nodes silent for a day are dropped from the list (by the leader).
const FORGET_SQL: &str =
    "DELETE FROM cluster_nodes WHERE last_heartbeat_at < now() - interval '1 day'";

const HEARTBEAT_SQL: &str =
    "INSERT INTO cluster_nodes (id, address, version, started_at, last_heartbeat_at)
     VALUES ($1, $2, $3, $4, now())
     ON CONFLICT (id) DO UPDATE SET address = EXCLUDED.address, version = EXCLUDED.version,
        started_at = EXCLUDED.started_at, last_heartbeat_at = EXCLUDED.last_heartbeat_at";

const BID_SQL: &str = "INSERT INTO cluster_leader AS l (name, leader_id, term, elected_at, expires_at)
     VALUES ($1, $2, 1, now(), now() + ($3::int8)::float8 * interval '1 millisecond')
     ON CONFLICT (name) DO UPDATE SET
        leader_id = EXCLUDED.leader_id,
        term = CASE WHEN l.leader_id = EXCLUDED.leader_id AND l.term = $4 AND l.expires_at > now()
            THEN l.term ELSE l.term + 1 END,
        elected_at = CASE WHEN l.leader_id = EXCLUDED.leader_id AND l.term = $4 AND l.expires_at > now()
            THEN l.elected_at ELSE now() END,
        expires_at = EXCLUDED.expires_at
     WHERE l.expires_at <= now() OR l.leader_id = EXCLUDED.leader_id
     RETURNING term";

/// Milliseconds since the epoch of a `timestamptz` expression.
macro_rules! ms {
    ($e:literal) => {
        concat!("(extract(epoch from ", $e, ") * 1000)::int8")
    };
}

impl PgStore {
    pub(super) async fn beat(&self, beat: Beat) -> StoreResult<LeaderState> {
        let client = self.client().await?;
        client
            .execute(
                HEARTBEAT_SQL,
                &[&beat.node, &beat.address, &beat.version, &beat.started_at],
            )
            .await?;
        if beat.campaign {
            let ttl = i64::try_from(beat.ttl_ms).unwrap_or(i64::MAX);
            let held = beat.held.map(|t| i64::try_from(t).unwrap_or(i64::MAX));
            let won = client
                .query_opt(BID_SQL, &[&LEADERSHIP, &beat.node, &ttl, &held])
                .await?;
            if let Some(row) = won {
                let term: i64 = row.try_get(0)?;
                client.execute(FORGET_SQL, &[]).await?;
                return Ok(LeaderState {
                    held: true,
                    leader: Some(beat.node),
                    term: u64::try_from(term).unwrap_or(0),
                });
            }
        }
        let row = client
            .query_opt(
                "SELECT leader_id, term, expires_at > now() FROM cluster_leader WHERE name = $1",
                &[&LEADERSHIP],
            )
            .await?;
        Ok(match row {
            Some(r) => {
                let (leader, term, live): (String, i64, bool) =
                    (r.try_get(0)?, r.try_get(1)?, r.try_get(2)?);
                LeaderState {
                    held: false,
                    leader: live.then_some(leader),
                    term: u64::try_from(term).unwrap_or(0),
                }
            }
            None => LeaderState {
                held: false,
                leader: None,
                term: 0,
            },
        })
    }

    pub(super) async fn leave(&self, node: &str, held: Option<u64>) -> StoreResult<()> {
        let client = self.client().await?;
        if let Some(term) = held {
            let term = i64::try_from(term).unwrap_or(i64::MAX);
            // Expired now: the next bid of any node wins; the term stays, so the next
            // leader's is higher.
            client
                .execute(
                    "UPDATE cluster_leader SET expires_at = now()
                     WHERE name = $1 AND leader_id = $2 AND term = $3",
                    &[&LEADERSHIP, &node, &term],
                )
                .await?;
        }
        client
            .execute("DELETE FROM cluster_nodes WHERE id = $1", &[&node])
            .await?;
        Ok(())
    }

    pub(super) async fn cluster_state(&self) -> StoreResult<ClusterState> {
        let client = self.client().await?;
        let now: i64 = client
            .query_one(concat!("SELECT ", ms!("now()")), &[])
            .await?
            .try_get(0)?;
        let leader = client
            .query_opt(
                concat!(
                    "SELECT leader_id, term, ",
                    ms!("elected_at"),
                    ", ",
                    ms!("expires_at"),
                    " FROM cluster_leader WHERE name = $1"
                ),
                &[&LEADERSHIP],
            )
            .await?
            .map(|r| -> StoreResult<LeaderRecord> {
                Ok(LeaderRecord {
                    node: r.try_get(0)?,
                    term: u64::try_from(r.try_get::<_, i64>(1)?).unwrap_or(0),
                    elected_at: r.try_get(2)?,
                    expires_at: r.try_get(3)?,
                })
            })
            .transpose()?;
        let mut nodes = BTreeMap::new();
        for r in client
            .query(
                concat!(
                    "SELECT id, address, version, started_at, ",
                    ms!("last_heartbeat_at"),
                    " FROM cluster_nodes"
                ),
                &[],
            )
            .await?
        {
            let id: String = r.try_get(0)?;
            nodes.insert(
                id.clone(),
                NodeRecord {
                    id,
                    address: r.try_get(1)?,
                    version: r.try_get(2)?,
                    started_at: r.try_get(3)?,
                    last_heartbeat_at: r.try_get(4)?,
                    leases: 0,
                },
            );
        }
        // Leases of a node that left the list (or never registered: an older build)
        // are shown under its id, with no heartbeat.
        for r in client
            .query(
                "SELECT claimed_by, count(*) FROM deliveries
                 WHERE status = 'in_flight' AND claimed_by IS NOT NULL GROUP BY claimed_by",
                &[],
            )
            .await?
        {
            let (id, n): (String, i64) = (r.try_get(0)?, r.try_get(1)?);
            nodes
                .entry(id.clone())
                .or_insert_with(|| NodeRecord {
                    id,
                    address: String::new(),
                    version: String::new(),
                    started_at: 0,
                    last_heartbeat_at: 0,
                    leases: 0,
                })
                .leases = u64::try_from(n).unwrap_or(0);
        }
        Ok(ClusterState {
            now,
            leader,
            nodes: nodes.into_values().collect(),
        })
    }

    pub(super) async fn put_health(&self, reports: Vec<HealthReport>) -> StoreResult<()> {
        if reports.is_empty() {
            return Ok(());
        }
        let tenants: Vec<&str> = reports.iter().map(|r| r.tenant.as_str()).collect();
        let endpoints: Vec<&str> = reports.iter().map(|r| r.endpoint.as_str()).collect();
        let nodes: Vec<&str> = reports.iter().map(|r| r.node.as_str()).collect();
        let ats: Vec<i64> = reports.iter().map(|r| r.at).collect();
        let data: Vec<&str> = reports.iter().map(|r| r.data.as_str()).collect();
        let client = self.client().await?;
        client
            .execute(
                "INSERT INTO endpoint_health (tenant, endpoint_id, node, at, data)
                 SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::int8[], $5::text[])
                 ON CONFLICT (tenant, endpoint_id, node) DO UPDATE SET at = EXCLUDED.at, data = EXCLUDED.data",
                &[&tenants, &endpoints, &nodes, &ats, &data],
            )
            .await?;
        Ok(())
    }

    pub(super) async fn health_reports(
        &self,
        tenant: &TenantId,
        endpoint: Option<&EndpointId>,
    ) -> StoreResult<Vec<HealthReport>> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT endpoint_id, node, at, data FROM endpoint_health
                 WHERE tenant = $1 AND ($2::text IS NULL OR endpoint_id = $2)",
                &[&tenant.as_str(), &endpoint.map(EndpointId::as_str)],
            )
            .await?;
        rows.iter()
            .map(|r| {
                Ok(HealthReport {
                    tenant: tenant.clone(),
                    endpoint: EndpointId::from_trusted(r.try_get::<_, String>(0)?),
                    node: r.try_get(1)?,
                    at: r.try_get(2)?,
                    data: r.try_get(3)?,
                })
            })
            .collect()
    }
}
