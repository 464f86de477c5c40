//! Several `gp` nodes on one PostgreSQL schema, for the cluster and chaos tests: each
//! node has its own data dir and id (`n0`, `n1`, …) and logs to a file, and the
//! nodes' database connections carry one `application_name` so a test can cut them
//! off. Its helpers panic on failure: they are the tests' own assertions.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::Value;

use crate::{ADMIN_TOKEN, Backend, Gp};

/// Nodes on one schema, each with its own data dir and id (`n0`, `n1`, …), their
/// connections named `app` so a test can cut them off.
pub struct Cluster {
    pub nodes: Vec<Gp>,
    app: String,
    _dirs: Vec<tempfile::TempDir>,
    // Last: the schema is dropped after the nodes stop.
    _backend: Backend,
}

impl Cluster {
    pub async fn start(n: usize, extra: &[(&str, &str)]) -> Self {
        let backend = Backend::postgres();
        let app = format!("gp-chaos-{}", backend.schema().unwrap());
        let url = crate::pg_url();
        let sep = if url.contains('?') { '&' } else { '?' };
        let url = format!("{url}{sep}application_name={app}");
        let mut nodes = Vec::new();
        let mut dirs = Vec::new();
        for i in 0..n {
            let dir = tempfile::tempdir().unwrap();
            let id = format!("n{i}");
            let mut env = backend.env(extra);
            env.push(("GATEPULSE_STORE", &url));
            env.push(("GATEPULSE_CLUSTER__NODE_ID", &id));
            env.push(("RUST_LOG", "info"));
            let log = log_path(&app, &id);
            nodes.push(Gp::start_logged(dir.path(), &env, &log).await.unwrap());
            dirs.push(dir);
        }
        Self {
            nodes,
            app,
            _dirs: dirs,
            _backend: backend,
        }
    }

    pub fn log(&self, i: usize) -> String {
        std::fs::read_to_string(log_path(&self.app, &format!("n{i}"))).unwrap_or_default()
    }

    /// `GET /v1/admin/cluster` as node `i` answers it.
    pub async fn state(&self, i: usize) -> Option<Value> {
        let (s, v) = self.nodes[i]
            .call(ADMIN_TOKEN, Method::GET, "/v1/admin/cluster", None)
            .await
            .ok()?;
        s.is_success().then_some(v)
    }

    /// Waits until node `i` sees a leader other than `not` (and at least `alive`
    /// nodes alive); returns (leader index, term, when it was first seen).
    pub async fn leader(
        &self,
        i: usize,
        not: Option<usize>,
        alive: usize,
    ) -> (usize, u64, Instant) {
        let end = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(v) = self.state(i).await
                && let Some(id) = v["leader"]["id"].as_str()
            {
                let idx: usize = id.trim_start_matches('n').parse().unwrap();
                let live = v["nodes"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .filter(|n| n["alive"] == true)
                    .count();
                if Some(idx) != not && live >= alive {
                    return (idx, v["leader"]["term"].as_u64().unwrap(), Instant::now());
                }
            }
            assert!(
                Instant::now() < end,
                "no new leader within 60 s: {:?}",
                self.state(i).await
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Leases held by any node, as node `i` reads them.
    pub async fn leases(&self, i: usize) -> u64 {
        let v = self.state(i).await.unwrap();
        v["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n["leases"].as_u64().unwrap())
            .sum()
    }

    /// Terminates every database connection of the nodes (what a restart of the
    /// database does to its clients); returns how many were terminated.
    pub async fn cut_database(&self) -> i64 {
        let (client, conn) = tokio_postgres::connect(&crate::pg_url(), tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(conn);
        let row = client
            .query_one(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = $1",
                &[&self.app],
            )
            .await
            .unwrap();
        row.get(0)
    }
}

/// Where node `id` of the cluster `app` logs.
pub fn log_path(app: &str, id: &str) -> PathBuf {
    std::env::temp_dir().join(format!("{app}-{id}.log"))
}
