//! The plans of the hot statements, as PostgreSQL prepares them on the connections
//! that run them: on tables that were never analyzed (a new store, or a queue that
//! changes faster than `ANALYZE` follows), and generic (what a prepared statement
//! settles on after its first executions). Each must reach its rows by key; a scan
//! of a whole table costs nothing on an empty one and tens of milliseconds per
//! statement under load (docs/benchmarks.md, "PostgreSQL delivery").
//!
//! Needs the test database (`GATEPULSE_TEST_POSTGRES`, default
//! postgres://postgres@127.0.0.1:5432/test); each test uses a schema of its own.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use deadpool_postgres::Pool;

use super::{PgOptions, PgStore};
use crate::store::feed::CommitFeed;

fn pg_url() -> String {
    std::env::var("GATEPULSE_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

/// A store on a fresh schema, dropped with it.
struct Fresh {
    store: PgStore,
    schema: String,
}

impl Fresh {
    async fn open() -> Self {
        let schema = format!("gp_plans_{:016x}", rand::random::<u64>());
        let store = PgStore::open(
            PgOptions {
                url: pg_url(),
                schema: Some(schema.clone()),
                pool_size: 2,
                commit_max_batch: 16,
                commit_concurrency: 1,
                poll_interval: Duration::from_millis(500),
                connect_timeout: Duration::from_secs(5),
                stream_status: true,
            },
            CommitFeed::new(),
        )
        .await
        .unwrap();
        Self { store, schema }
    }

    /// One tenant's deliveries, as many as a few seconds of traffic, then what the
    /// statistics task does: without statistics every index that starts with
    /// `tenant` looks as cheap as the key.
    async fn grow_deliveries(&self) {
        self.store
            .pool
            .get()
            .await
            .unwrap()
            .batch_execute(
                "INSERT INTO deliveries (tenant, id, event_id, subscription_id, endpoint_id, \
                 status, attempts, next_attempt_at, lease_token, created_at, updated_at, \
                 record_version) \
                 SELECT 't_x', 'dlv_' || g, 'evt_' || g, 'sub_x', 'ep_' || (g % 3), \
                 'succeeded', 1, g, 0, g, g, 1 FROM generate_series(1, 5000) g",
            )
            .await
            .unwrap();
        // pg_stat counts reach the statistics views within a second or so.
        let mut analyzed = Vec::new();
        for _ in 0..50 {
            analyzed = super::stats::analyze_grown(&self.store.pool).await.unwrap();
            if !analyzed.is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(analyzed, ["deliveries"]);
        // Grown no further: nothing to do.
        assert!(
            super::stats::analyze_grown(&self.store.pool)
                .await
                .unwrap()
                .is_empty()
        );
    }

    async fn drop_schema(self) {
        crate::store::Store::close(&self.store);
        let (client, conn) = tokio_postgres::connect(&pg_url(), tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(conn);
        client
            .batch_execute(&format!("DROP SCHEMA {} CASCADE", self.schema))
            .await
            .unwrap();
    }
}

/// The generic plan of `sql` with `args` on a connection of `pool`.
async fn generic_plan(pool: &Pool, sql: &str, args: &str) -> String {
    let client = pool.get().await.unwrap();
    client
        .batch_execute(&format!(
            "SET plan_cache_mode = force_generic_plan; PREPARE probe AS {sql}"
        ))
        .await
        .unwrap();
    let rows = client
        .query(&format!("EXPLAIN (COSTS OFF) EXECUTE probe({args})"), &[])
        .await
        .unwrap();
    client
        .batch_execute("DEALLOCATE probe; RESET plan_cache_mode")
        .await
        .unwrap();
    rows.iter()
        .map(|r| r.get::<_, String>(0))
        .collect::<Vec<_>>()
        .join("\n")
}

fn assert_keyed(plan: &str, must_use: &[&str]) {
    let forbidden = [
        "Seq Scan",
        "Hash Join",
        "Hash Semi Join",
        "Hash Anti Join",
        "Hash Right",
        "Merge",
        "Bitmap",
        "deliveries_open",
    ];
    for scan in forbidden {
        assert!(!plan.contains(scan), "{scan} in the plan:\n{plan}");
    }
    for index in must_use {
        assert!(plan.contains(index), "{index} not in the plan:\n{plan}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_touches_only_the_rows_it_takes() {
    let fresh = Fresh::open().await;
    let claim = |fresh: &Fresh| {
        let pool = fresh.store.relaxed.clone();
        async move { generic_plan(&pool, &super::queue::CLAIM_SQL, "'ep_1', 0, 32, 'node', 0").await }
    };
    // A new store: no statistics at all.
    assert_keyed(
        &claim(&fresh).await,
        &[
            "Index Scan using delivery_queue_due",
            "Tid Scan on delivery_queue",
            "Index Scan using events_id",
        ],
    );
    fresh.grow_deliveries().await;
    assert_keyed(&claim(&fresh).await, &["Index Scan using deliveries_pkey"]);
    fresh.drop_schema().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_group_commit_locks_the_deliveries_it_settles_by_key() {
    let fresh = Fresh::open().await;
    fresh.grow_deliveries().await;
    let plan = generic_plan(
        &fresh.store.hot.pool,
        &super::hot::LOCK_DELIVERIES,
        "ARRAY['t_x'], ARRAY['dlv_x']",
    )
    .await;
    assert_keyed(&plan, &["deliveries_pkey"]);
    fresh.drop_schema().await;
}
