//! `gp store copy`: a single node's embedded store moved into PostgreSQL keeps its
//! history (events with their cursors, delivered and queued deliveries, attempts, API
//! keys) and picks up where it stopped: queued deliveries go out, the stream resumes
//! from its cursor, new events continue the cursor sequence, and the audit log comes
//! along with its hash chains intact, so the next record links to the last copied one.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use gatepulse_e2e::receiver::{Behaviour, Receiver};
use gatepulse_e2e::{ADMIN_TOKEN, Backend, Gp, gp_binary, pg_url};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

async fn eventually(what: &str, mut done: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !done().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redb_node_copied_to_postgres_keeps_its_history_and_continues() {
    let dir = tempfile::tempdir().unwrap();
    let up = Receiver::start(Behaviour::Ok, None).await.unwrap();
    let down = Receiver::start(Behaviour::Status(503), None).await.unwrap();
    let mut gp = Gp::start(
        dir.path(),
        &[("GATEPULSE_DELIVERY__RETRY_SCHEDULE_SECS", "[1]")],
    )
    .await
    .unwrap();
    let (_, key) = gp.tenant_with_key().await.unwrap();
    let mut endpoints = Vec::new();
    for rx in [&up, &down] {
        let (s, ep) = gp
            .call(
                &key,
                Method::POST,
                "/v1/endpoints",
                Some(json!({"url": rx.url(), "retry_schedule_secs": [3600]})),
            )
            .await
            .unwrap();
        assert_eq!(s, StatusCode::CREATED, "{ep}");
        let id = ep["id"].as_str().unwrap().to_owned();
        let (s, sub) = gp
            .call(
                &key,
                Method::POST,
                "/v1/subscriptions",
                Some(json!({"endpoint_id": id, "topics": ["orders.*"]})),
            )
            .await
            .unwrap();
        assert_eq!(s, StatusCode::CREATED, "{sub}");
        endpoints.push(id);
    }
    for i in 0..20 {
        gp.publish(&key, "orders.created", &json!({"n": i}))
            .await
            .unwrap();
    }
    // Delivered to one endpoint; the other failed (retry in an hour, or waiting
    // behind its open circuit).
    eventually("20 deliveries and a failed attempt", async || {
        up.count() >= 20 && down.count() >= 1
    })
    .await;
    let before = gp.list_all(&key, "/v1/events").await.unwrap();
    assert_eq!(before.len(), 20);
    let path = format!("/v1/deliveries?endpoint_id={}", endpoints[1]);
    let statuses = |v: &[Value]| -> Vec<(String, String, String)> {
        v.iter()
            .map(|d| {
                (
                    d["id"].as_str().unwrap().to_owned(),
                    d["status"].as_str().unwrap().to_owned(),
                    d["next_attempt_at"].to_string(),
                )
            })
            .collect()
    };
    // Wait for the engine to settle what it had in flight.
    eventually("no delivery in flight", async || {
        let ds = gp.list_all(&key, &path).await.unwrap();
        ds.iter().all(|d| d["status"] != "in_flight")
    })
    .await;
    let failed_before = statuses(&gp.list_all(&key, &path).await.unwrap());
    let audit_before = gp.list_all(ADMIN_TOKEN, "/v1/audit").await.unwrap();
    // The tenant, its key, two endpoints and two subscriptions.
    assert_eq!(audit_before.len(), 6, "{audit_before:?}");
    gp.terminate().unwrap();

    // The copy.
    let backend = Backend::postgres();
    let out = std::process::Command::new(gp_binary().unwrap())
        .args(["store", "copy", "--from"])
        .arg(dir.path())
        .args(["--to", &pg_url(), "--schema", backend.schema().unwrap()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["copied"]["events"], 20, "{report}");
    assert_eq!(report["copied"]["deliveries"], 40, "{report}");
    // One deliveries.status stream item per attempt, one audit item per record.
    let attempts = report["copied"]["attempts"].as_u64().unwrap();
    assert!(attempts >= 21, "{report}");
    assert_eq!(report["copied"]["audit_log"], 6, "{report}");
    assert_eq!(report["copied"]["stream_status"], attempts + 6, "{report}");
    // Copying again refuses: the target is no longer empty.
    let again = std::process::Command::new(gp_binary().unwrap())
        .args(["store", "copy", "--from"])
        .arg(dir.path())
        .args(["--to", &pg_url(), "--schema", backend.schema().unwrap()])
        .output()
        .unwrap();
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("empty"));

    // The same node on PostgreSQL: same key, same history, same cursors.
    let other_dir = tempfile::tempdir().unwrap();
    let gp = Gp::start(other_dir.path(), &backend.env(&[]))
        .await
        .unwrap();
    let after = gp.list_all(&key, "/v1/events").await.unwrap();
    let ids = |v: &[Value]| -> Vec<(String, u64)> {
        v.iter()
            .map(|e| {
                (
                    e["id"].as_str().unwrap().to_owned(),
                    e["cursor"].as_u64().unwrap(),
                )
            })
            .collect()
    };
    assert_eq!(ids(&after), ids(&before));
    // Read at once: the engine may attempt the never-attempted ones any moment.
    let failed = gp.list_all(&key, &path).await.unwrap();
    let ids_of = |v: &[(String, String, String)]| v.iter().map(|x| x.0.clone()).collect::<Vec<_>>();
    assert_eq!(ids_of(&statuses(&failed)), ids_of(&failed_before));
    assert!(
        failed.iter().all(|d| d["status"] == "retrying"
            || d["status"] == "pending"
            || d["status"] == "in_flight"),
        "{failed:?}"
    );
    // New events continue the sequence: after 20 events and one status per attempt
    // (more attempts may have been made since the start, each taking a cursor).
    let next = gp
        .publish(&key, "orders.created", &json!({"n": 20}))
        .await
        .unwrap();
    assert!(next["cursor"].as_u64().unwrap() > 26 + attempts, "{next}");
    eventually("the new event delivered", async || up.count() >= 21).await;

    // The audit log as it was, and its chains go on from where they stopped.
    let audit_after = gp.list_all(ADMIN_TOKEN, "/v1/audit").await.unwrap();
    assert_eq!(audit_after, audit_before);
    let (s, out) = gp
        .call(
            &key,
            Method::DELETE,
            &format!("/v1/endpoints/{}", endpoints[1]),
            None,
        )
        .await
        .unwrap();
    assert!(s.is_success(), "{s} {out}");
    let audit_now = gp.list_all(ADMIN_TOKEN, "/v1/audit").await.unwrap();
    let last = audit_now.last().unwrap();
    assert_eq!(last["action"], "endpoint.delete", "{last}");
    assert_eq!(last["seq"], 7, "{last}");
    assert_eq!(last["prev_hash"], audit_before[5]["hash"], "{last}");
    let (_, verified) = gp
        .call(ADMIN_TOKEN, Method::GET, "/v1/audit/verify", None)
        .await
        .unwrap();
    assert_eq!(verified["ok"], true, "{verified}");
}
