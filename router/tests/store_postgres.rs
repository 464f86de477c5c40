//! PostgreSQL-only behaviour: several nodes sharing one database (concurrent opens
//! migrate once, a tailing reader sees every other writer's cursors exactly once and
//! in order) and the schema version rule.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use gatepulse::ids::*;
use gatepulse::store::backends::postgres::{PgOptions, PgStore};
use gatepulse::store::feed::{CommitFeed, Committed, FeedListener};
use gatepulse::store::*;
use serde_json::value::RawValue;

fn pg_url() -> String {
    std::env::var("GATEPULSE_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

async fn sql(statement: &str) {
    let (client, conn) = tokio_postgres::connect(&pg_url(), tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    client.batch_execute(statement).await.unwrap();
}

/// A schema for one test, dropped at the end.
struct Schema(String);

impl Schema {
    fn new() -> Self {
        Self(format!("gp_pg_{:016x}", rand::random::<u64>()))
    }

    async fn open(&self) -> PgStore {
        PgStore::open(
            PgOptions {
                url: pg_url(),
                schema: Some(self.0.clone()),
                pool_size: 6,
                commit_max_batch: 64,
                commit_concurrency: 2,
                poll_interval: Duration::from_millis(500),
                connect_timeout: Duration::from_secs(5),
                stream_status: true,
            },
            CommitFeed::new(),
        )
        .await
        .unwrap()
    }
}

impl Drop for Schema {
    fn drop(&mut self) {
        let schema = self.0.clone();
        let _ = std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
                .block_on(sql(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE")));
        })
        .join();
    }
}

#[derive(Debug, Default)]
struct Cursors(Mutex<Vec<u64>>);

impl FeedListener for Cursors {
    fn wants_stream(&self, _tenant: &str) -> bool {
        true
    }

    fn committed(&self, batch: &Committed) {
        self.0
            .lock()
            .unwrap()
            .extend(batch.stream.iter().map(|(_, i)| i.cursor));
    }
}

fn event(t: &TenantId, i: u64) -> NewEvent {
    NewEvent {
        id: EventId::generate(1_700_000_000_000 + i as i64),
        tenant_id: t.clone(),
        topic: "orders.created".into(),
        payload: RawValue::from_string(format!(r#"{{"n":{i}}}"#)).unwrap(),
        idempotency_key: None,
        created_at: 1_700_000_000_000,
        traceparent: None,
        deliveries: vec![],
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tail_sees_every_writers_cursor_once_and_in_order() {
    let schema = Schema::new();
    // Three nodes opening together: the advisory lock makes one of them migrate.
    let (reader, a, b) = tokio::join!(schema.open(), schema.open(), schema.open());
    let seen = Arc::new(Cursors::default());
    reader.feed().subscribe(seen.clone());
    let t = TenantId::generate(1);
    a.create_tenant(Tenant {
        record_version: RECORD_VERSION,
        id: t.clone(),
        name: "t".into(),
        created_at: 1,
        retention: Default::default(),
    })
    .await
    .unwrap();
    let writers: Vec<Arc<PgStore>> = vec![Arc::new(a), Arc::new(b)];
    const PER_TASK: u64 = 60;
    let mut tasks = Vec::new();
    for (w, store) in writers.iter().enumerate() {
        for task in 0..4u64 {
            let (store, t) = (store.clone(), t.clone());
            tasks.push(tokio::spawn(async move {
                for i in 0..PER_TASK {
                    let n = (w as u64 * 4 + task) * PER_TASK + i;
                    let limits = AppendLimits {
                        idempotency_window_ms: 0,
                        max_queue_depth: u64::MAX,
                    };
                    // Some publishes carry several events: one transaction, several cursors.
                    let events = if i % 5 == 0 {
                        vec![event(&t, n), event(&t, n + 1_000_000)]
                    } else {
                        vec![event(&t, n)]
                    };
                    store.append_events(events, limits).await.unwrap();
                }
            }));
        }
    }
    for task in tasks {
        task.await.unwrap();
    }
    let head = reader.head_cursor(&t).await.unwrap();
    assert_eq!(head, 8 * PER_TASK + 8 * PER_TASK / 5);
    for _ in 0..1000 {
        if seen.0.lock().unwrap().len() as u64 >= head {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // A moment more: nothing may arrive twice.
    tokio::time::sleep(Duration::from_millis(700)).await;
    let got = seen.0.lock().unwrap().clone();
    assert_eq!(
        got,
        (1..=head).collect::<Vec<_>>(),
        "every cursor once, in order"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_newer_schema_opens_read_only_and_refuses_writes() {
    let schema = Schema::new();
    let store = schema.open().await;
    // Version 5: secrets sealed (2), stream positions with their topic (3), events
    // with their trace context (4), the cluster's tables (5).
    assert_eq!(store.meta().version, 5);
    assert!(store.read_only_reason().is_none());
    store.close();
    // A schema of version 1 (before encryption at rest) is migrated on open, to 5.
    sql(&format!("UPDATE {}.gp_meta SET version = 1", schema.0)).await;
    let migrated = schema.open().await;
    assert_eq!(migrated.meta().version, 5);
    assert!(migrated.read_only_reason().is_none());
    // From 4 (v1.2), the cluster's tables appear.
    migrated.close();
    sql(&format!(
        "UPDATE {0}.gp_meta SET version = 4; DROP TABLE {0}.cluster_nodes, {0}.cluster_leader, {0}.endpoint_health",
        schema.0
    ))
    .await;
    let migrated = schema.open().await;
    assert_eq!(migrated.meta().version, 5);
    let beat = migrated
        .cluster_beat(Beat {
            node: "n1".into(),
            address: String::new(),
            version: "test".into(),
            started_at: 1,
            ttl_ms: 5_000,
            campaign: true,
            held: None,
        })
        .await
        .unwrap();
    assert!(beat.held, "{beat:?}");
    migrated.close();
    sql(&format!("UPDATE {}.gp_meta SET version = 99", schema.0)).await;
    let newer = schema.open().await;
    let reason = newer.read_only_reason().expect("read-only");
    assert!(reason.contains("99"), "{reason}");
    let err = newer
        .create_tenant(Tenant {
            record_version: RECORD_VERSION,
            id: TenantId::generate(1),
            name: "t".into(),
            created_at: 1,
            retention: Default::default(),
        })
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::ReadOnly(_)), "{err:?}");
    // Reading still works.
    assert!(newer.list_tenants(PageRequest::default()).await.is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_snapshots_are_refused_with_what_to_do() {
    let schema = Schema::new();
    let store = schema.open().await;
    let dir = tempfile::tempdir().unwrap();
    let err = store.snapshot_to(dir.path()).unwrap_err();
    assert!(matches!(err, StoreError::Unsupported(_)));
    assert!(err.to_string().contains("pg_dump"), "{err}");
}

#[derive(Debug, Default)]
struct Queued(Mutex<std::collections::HashSet<(String, String)>>);

impl FeedListener for Queued {
    fn wants_stream(&self, _tenant: &str) -> bool {
        false
    }

    fn committed(&self, batch: &Committed) {
        self.0.lock().unwrap().extend(
            batch
                .queued
                .iter()
                .map(|(t, e)| (t.to_string(), e.to_string())),
        );
    }
}

/// An event queued for each endpoint of `endpoints`.
fn queued_event(t: &TenantId, i: u64, endpoints: &[EndpointId]) -> NewEvent {
    let mut ev = event(t, i);
    ev.deliveries = endpoints
        .iter()
        .enumerate()
        .map(|(n, e)| NewDelivery {
            id: DeliveryId::for_event(&ev.id, n as u32),
            subscription_id: SubscriptionId::generate(1),
            endpoint_id: e.clone(),
        })
        .collect();
    ev
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_nodes_hear_of_work_queued_on_one() {
    let schema = Schema::new();
    let (a, b) = tokio::join!(schema.open(), schema.open());
    let heard = Arc::new(Queued::default());
    b.feed().subscribe(heard.clone());
    let t = TenantId::generate(1);
    let limits = AppendLimits {
        idempotency_window_ms: 0,
        max_queue_depth: u64::MAX,
    };
    let wait_for = |want: Vec<(String, String)>| {
        let heard = heard.clone();
        async move {
            for _ in 0..500 {
                let got = heard.0.lock().unwrap().clone();
                if want.iter().all(|w| got.contains(w)) {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            panic!("node B never heard of {want:?}");
        }
    };
    // One endpoint: named in A's notification.
    let one = EndpointId::generate(1);
    a.append_events(
        vec![queued_event(&t, 1, std::slice::from_ref(&one))],
        limits,
    )
    .await
    .unwrap();
    wait_for(vec![(t.to_string(), one.to_string())]).await;
    // More than a notification holds: B reads the queue instead.
    let many: Vec<EndpointId> = (0..400).map(|i| EndpointId::generate(i + 2)).collect();
    a.append_events(vec![queued_event(&t, 2, &many)], limits)
        .await
        .unwrap();
    wait_for(
        many.iter()
            .map(|e| (t.to_string(), e.to_string()))
            .collect(),
    )
    .await;
    a.close();
    b.close();
}
