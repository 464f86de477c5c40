//! Online snapshot and restore (SPEC OPS-3): a snapshot taken while publishes and
//! deliveries run, restored into a new node, delivers every event it holds.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashSet;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use gatepulse_e2e::receiver::{Behaviour, Receiver};
use gatepulse_e2e::{ADMIN_TOKEN, Gp, gp_binary};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

fn gp(args: &[&str]) -> std::process::Output {
    Command::new(gp_binary().unwrap())
        .args(args)
        .output()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_under_load_restores_into_a_node_that_delivers_everything() {
    let dir_a = tempfile::tempdir().unwrap();
    let snaps = tempfile::tempdir().unwrap();
    let dir_b = tempfile::tempdir().unwrap();
    let mut a = Gp::start(dir_a.path(), &[]).await.unwrap();
    let (_, key) = a.tenant_with_key().await.unwrap();
    // Deliveries lag behind publishes (rate limit), so the snapshot catches some
    // delivered, some queued and some in flight.
    let rx = Receiver::start(Behaviour::Ok, None).await.unwrap();
    let (s, ep) = a
        .call(
            &key,
            Method::POST,
            "/v1/endpoints",
            Some(json!({"url": rx.url(), "rate_limit_per_sec": 300})),
        )
        .await
        .unwrap();
    assert_eq!(s, StatusCode::CREATED);
    a.call(
        &key,
        Method::POST,
        "/v1/subscriptions",
        Some(json!({"endpoint_id": ep["id"], "topics": ["snap.#"]})),
    )
    .await
    .unwrap();

    // Steady publish load while the snapshot is taken.
    let stop = Arc::new(AtomicBool::new(false));
    let (http, base, k2, stop2) = (a.http.clone(), a.base.clone(), key.clone(), stop.clone());
    let publisher = tokio::spawn(async move {
        let mut n = 0u64;
        while !stop2.load(Ordering::Relaxed) {
            n += 1;
            let r = http
                .post(format!("{base}/v1/events"))
                .bearer_auth(&k2)
                .json(&json!({"topic": "snap.x", "payload": {"n": n}}))
                .send()
                .await;
            if r.is_err() {
                break;
            }
        }
        n
    });
    rx.wait_for(|l| l.succeeded_ids.len() >= 200, Duration::from_secs(60))
        .await
        .unwrap();
    let snap_dir = snaps.path().join("s1");
    let (s, manifest) = a
        .call(
            ADMIN_TOKEN,
            Method::POST,
            "/v1/admin/snapshots",
            Some(json!({"path": snap_dir})),
        )
        .await
        .unwrap();
    assert_eq!(s, StatusCode::CREATED, "{manifest}");
    let in_snapshot = manifest["tables"]["events"].as_u64().unwrap();
    assert!(in_snapshot > 0);
    // The node kept serving: publishes continue after the snapshot.
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::Relaxed);
    let published = publisher.await.unwrap();
    assert!(
        published > in_snapshot,
        "publishes continued during and after the snapshot"
    );
    // A second snapshot into the same directory is refused.
    let (s, p) = a
        .call(
            ADMIN_TOKEN,
            Method::POST,
            "/v1/admin/snapshots",
            Some(json!({"path": snap_dir})),
        )
        .await
        .unwrap();
    assert_eq!(
        (s, p["code"].as_str()),
        (StatusCode::CONFLICT, Some("snapshot_failed"))
    );
    a.kill9().unwrap();

    // Restore into a new data dir; the existing-store guard needs --force.
    let snap = snap_dir.to_str().unwrap();
    let out = gp(&[
        "store",
        "snapshot",
        "restore",
        snap,
        "--data-dir",
        dir_b.path().to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let again = gp(&[
        "store",
        "snapshot",
        "restore",
        snap,
        "--data-dir",
        dir_b.path().to_str().unwrap(),
    ]);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("--force"));

    // The new node delivers every event of the snapshot that was not yet delivered.
    let b = Gp::start(dir_b.path(), &[]).await.unwrap();
    let events = b.list_all(&key, "/v1/events").await.unwrap();
    assert_eq!(events.len() as u64, in_snapshot);
    let ids: HashSet<String> = events
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_owned())
        .collect();
    // The receiver may already have seen an event from node A whose outcome was not
    // in the snapshot; node B sends it again (at-least-once), so what decides is
    // node B's own delivery records: every one of them must end succeeded.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    let deliveries = loop {
        let deliveries: Vec<Value> = b.list_all(&key, "/v1/deliveries").await.unwrap();
        if deliveries.iter().all(|d| d["status"] == "succeeded") {
            break deliveries;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "every delivery of the restored node ends succeeded"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let delivered: HashSet<&str> = deliveries
        .iter()
        .filter_map(|d| d["event_id"].as_str())
        .collect();
    assert_eq!(delivered.len(), ids.len(), "one delivery per event");
    assert!(ids.iter().all(|id| delivered.contains(id.as_str())));
    let requests = rx.requests();
    let seen: HashSet<&str> = requests.iter().filter_map(|r| r.event_id()).collect();
    assert!(ids.iter().all(|id| seen.contains(id.as_str())));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_snapshot_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let snaps = tempfile::tempdir().unwrap();
    let mut a = Gp::start(dir.path(), &[]).await.unwrap();
    a.tenant_with_key().await.unwrap();
    let snap_dir = snaps.path().join("s");
    let (s, _) = a
        .call(
            ADMIN_TOKEN,
            Method::POST,
            "/v1/admin/snapshots",
            Some(json!({"path": snap_dir})),
        )
        .await
        .unwrap();
    assert_eq!(s, StatusCode::CREATED);
    a.terminate().unwrap();
    // Flip one byte of the store file.
    let file = snap_dir.join("gatepulse.redb");
    let mut bytes = std::fs::read(&file).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    std::fs::write(&file, bytes).unwrap();
    let target = tempfile::tempdir().unwrap();
    let out = gp(&[
        "store",
        "snapshot",
        "restore",
        snap_dir.to_str().unwrap(),
        "--data-dir",
        target.path().to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("damaged"));
    assert!(
        !target.path().join("gatepulse.redb").exists(),
        "nothing installed"
    );
}
