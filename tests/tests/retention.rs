//! Retention and compaction against the real binary: after a large delete, `gp store
//! compact` (offline) gives the space back; `gp store stats` reports the store; the
//! node starts again with exactly the data retention kept.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;
use std::time::{Duration, Instant};

use gatepulse_e2e::{Gp, gp_binary};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

fn gp_store(args: &[&str], data_dir: &std::path::Path, env: &[(&str, &str)]) -> Value {
    let mut cmd = Command::new(gp_binary().unwrap());
    cmd.arg("store").args(args).arg("--data-dir").arg(data_dir);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "gp store {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compaction_shrinks_the_file_after_a_large_delete() {
    let dir = tempfile::tempdir().unwrap();
    let mut gp = Gp::start(dir.path(), &[]).await.unwrap();
    let (_, key) = gp.tenant_with_key().await.unwrap();
    // ~16 MB of events with no subscription (nothing to deliver: settled at once).
    let blob = "x".repeat(2_000);
    let mut last_cursor = 0;
    for b in 0..16 {
        let events: Vec<Value> = (0..500)
            .map(|i| json!({"topic": "bulk.load", "payload": {"b": b, "i": i, "blob": blob}}))
            .collect();
        let (s, out) = gp
            .call(
                &key,
                Method::POST,
                "/v1/events/batch",
                Some(json!({"events": events})),
            )
            .await
            .unwrap();
        assert_eq!(s, StatusCode::ACCEPTED, "{out}");
        last_cursor = out["data"][499]["cursor"].as_u64().unwrap();
    }
    assert_eq!(gp.terminate().unwrap(), 0);

    let before = gp_store(&["stats"], dir.path(), &[]);
    assert_eq!(before["tables"]["events"], 8_000);
    let size_before = before["file_bytes"].as_u64().unwrap();
    assert!(size_before > 16_000_000, "{before}");

    // Retention of 1 s: every event is older than that once a second has passed.
    std::thread::sleep(std::time::Duration::from_millis(1_100));
    let report = gp_store(
        &["compact"],
        dir.path(),
        &[("GATEPULSE_RETENTION__EVENTS_MAX_AGE_SECS", "1")],
    );
    println!("compact: {report}");
    assert_eq!(report["deleted"]["events"], 8_000);
    let size_after = report["file_bytes_after"].as_u64().unwrap();
    assert!(
        size_after * 4 < size_before,
        "the file should shrink after deleting everything: {size_before} → {size_after}"
    );

    let after = gp_store(&["stats"], dir.path(), &[]);
    assert_eq!(after["tables"]["events"], 0);
    assert!(after["meta"]["last_compaction_at"].is_i64());

    // The node starts again; cursors continue after the deleted ones.
    gp.restart().await.unwrap();
    let (s, out) = gp
        .call(
            &key,
            Method::POST,
            "/v1/events",
            Some(json!({"topic": "bulk.load", "payload": {}})),
        )
        .await
        .unwrap();
    assert_eq!(s, StatusCode::ACCEPTED);
    assert_eq!(out["cursor"], last_cursor + 1);
    let events = gp.list_all(&key, "/v1/events").await.unwrap();
    assert_eq!(events.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_tools_refuse_a_store_the_server_has_open() {
    let dir = tempfile::tempdir().unwrap();
    let _gp = Gp::start(dir.path(), &[]).await.unwrap();
    let out = Command::new(gp_binary().unwrap())
        .args(["store", "stats", "--data-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("already open") || err.contains("stop"),
        "{err}"
    );
}

/// Deliveries parked behind a disabled endpoint do not wait forever: past
/// `delivery.parked_max_age_secs` they go to the DLQ (`parked_too_long`), stop counting
/// against the tenant's queue, and can be requeued once the endpoint is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parked_deliveries_go_to_the_dlq_after_their_age() {
    use gatepulse_e2e::receiver::{Behaviour, Receiver};
    let dir = tempfile::tempdir().unwrap();
    let gp = Gp::start(
        dir.path(),
        &[
            ("GATEPULSE_DELIVERY__PARKED_MAX_AGE_SECS", "2"),
            ("GATEPULSE_DELIVERY__REAPER_INTERVAL_SECS", "1"),
        ],
    )
    .await
    .unwrap();
    let (_, key) = gp.tenant_with_key().await.unwrap();
    let rx = Receiver::start(Behaviour::Ok, None).await.unwrap();
    // One a second: most of the ten are still queued when the endpoint is disabled.
    let (ep, _) = gp
        .subscribe(
            &key,
            json!({"url": rx.url(), "rate_limit_per_sec": 1, "max_in_flight": 1}),
            &["p.#"],
            None,
        )
        .await
        .unwrap();
    let ep = ep["id"].as_str().unwrap().to_owned();
    for n in 0..10 {
        gp.publish(&key, "p.x", &json!({"n": n})).await.unwrap();
    }
    let (s, _) = gp
        .call(
            &key,
            Method::PATCH,
            &format!("/v1/endpoints/{ep}"),
            Some(json!({"enabled": false})),
        )
        .await
        .unwrap();
    assert_eq!(s, StatusCode::OK);
    let deadline = Instant::now() + Duration::from_secs(60);
    let dead = loop {
        let ds = gp
            .list_all(&key, &format!("/v1/deliveries?endpoint_id={ep}"))
            .await
            .unwrap();
        let queued = ds
            .iter()
            .filter(|d| {
                matches!(
                    d["status"].as_str(),
                    Some("pending" | "retrying" | "in_flight")
                )
            })
            .count();
        if queued == 0 {
            break ds
                .into_iter()
                .filter(|d| d["status"] == "dead")
                .collect::<Vec<_>>();
        }
        assert!(Instant::now() < deadline, "still {queued} queued: {ds:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(dead.len() >= 5, "{dead:?}");
    let (_, d) = gp
        .call(
            &key,
            Method::GET,
            &format!("/v1/deliveries/{}", dead[0]["id"].as_str().unwrap()),
            None,
        )
        .await
        .unwrap();
    let last = d["attempts"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["error_kind"], "parked_too_long", "{d}");
    let (_, stats) = gp.call(&key, Method::GET, "/v1/stats", None).await.unwrap();
    assert_eq!(stats["queue_depth"], 0, "{stats}");
    assert_eq!(stats["dlq_size"], dead.len(), "{stats}");
}
