//! Nodes sharing a store (SPEC HA-1..4), against the real binary. A node has an id
//! that survives its restarts (`cluster.node_id`, or one kept in `<data_dir>/node-id`)
//! and a bad id is refused with the key named; a single node leads itself; and two
//! nodes on PostgreSQL answer as one: a stream on the follower gets every event
//! published through either node in cursor order, a change made through the follower
//! is in force on the leader's deliveries, and endpoint health and `/v1/stats` on the
//! follower show the leader's attempts. (Failover: `chaos.rs`.)

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use gatepulse_e2e::cluster::Cluster;
use gatepulse_e2e::receiver::{Behaviour, Receiver};
use gatepulse_e2e::sse::Sse;
use gatepulse_e2e::{ADMIN_TOKEN, Gp};
use reqwest::Method;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_keeps_its_id_across_restarts_and_a_bad_one_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut gp = Gp::start(dir.path(), &[]).await.unwrap();
    let file = dir.path().join("node-id");
    let first = std::fs::read_to_string(&file).unwrap();
    let id = first.trim();
    assert!(
        id.starts_with("node-") && id.len() == "node-".len() + 12,
        "{first:?}"
    );
    assert_eq!(gp.terminate().unwrap(), 0);
    gp.restart().await.unwrap();
    assert_eq!(
        std::fs::read_to_string(&file).unwrap(),
        first,
        "the same node"
    );
    drop(gp);

    // A configured id wins over the kept one; a bad one stops the start, named.
    let out = std::process::Command::new(gatepulse_e2e::gp_binary().unwrap())
        .args(["serve", "--dev", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        .env("GATEPULSE_CLUSTER__NODE_ID", "two words")
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    assert!(!out.status.success(), "gp started with a bad node id");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cluster.node_id"), "{err}");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), first, "left alone");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_single_node_leads_itself() {
    let dir = tempfile::tempdir().unwrap();
    let gp = Gp::start(dir.path(), &[("GATEPULSE_CLUSTER__NODE_ID", "solo")])
        .await
        .unwrap();
    let (s, v) = gp
        .call(ADMIN_TOKEN, Method::GET, "/v1/admin/cluster", None)
        .await
        .unwrap();
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["self"], "solo");
    assert_eq!(v["mode"], "leader");
    assert_eq!(v["leader"]["id"], "solo");
    assert_eq!(v["nodes"][0]["role"], "leader");
    assert_eq!(v["nodes"][0]["alive"], true);
    // Admin only.
    let (_, key) = gp.tenant_with_key().await.unwrap();
    let (s, _) = gp
        .call(&key, Method::GET, "/v1/admin/cluster", None)
        .await
        .unwrap();
    assert_eq!(s, 403);
    // A single redb node does not export the cluster gauge (no "no leader" alert).
    let metrics = gp.metrics().await.unwrap();
    assert!(!metrics.contains("gatepulse_cluster_leader "), "{metrics}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_nodes_answer_as_one() {
    let cluster = Cluster::start(2, &[]).await;
    let (leader, _, _) = cluster.leader(0, None, 2).await;
    let follower = 1 - leader;
    let (lead, follow) = (&cluster.nodes[leader], &cluster.nodes[follower]);
    let first = Receiver::start(Behaviour::Ok, None).await.unwrap();
    let second = Receiver::start(Behaviour::Ok, None).await.unwrap();
    // Configured through the follower; delivered by the leader.
    let (_, key) = follow.tenant_with_key().await.unwrap();
    let (ep, _) = follow
        .subscribe(&key, json!({"url": first.url()}), &["cc.*"], None)
        .await
        .unwrap();
    let ep_id = ep["id"].as_str().unwrap().to_owned();

    let http = gatepulse_e2e::sse::client().unwrap();
    let mut stream = Sse::connect(&http, &follow.base, &key, "?topic=cc.%23", None)
        .await
        .unwrap();
    let mut published = Vec::new();
    for i in 0..60 {
        let via = if i % 2 == 0 { lead } else { follow };
        let out = via
            .publish(&key, "cc.tick", &json!({"i": i}))
            .await
            .unwrap();
        published.push((
            out["cursor"].as_u64().unwrap(),
            out["id"].as_str().unwrap().to_owned(),
        ));
    }
    // Live on the follower, in cursor order, none missing.
    let mut seen = Vec::new();
    while seen.len() < published.len() {
        let frame = stream
            .next_within(Duration::from_secs(20))
            .await
            .unwrap()
            .expect("the stream ended");
        if frame.event == "cc.tick" {
            seen.push((
                frame.cursor().unwrap(),
                frame.json().unwrap()["id"].as_str().unwrap().to_owned(),
            ));
        }
    }
    let mut expected = published.clone();
    expected.sort();
    assert_eq!(seen, expected, "the follower's stream, in cursor order");
    first
        .wait_for(|log| log.succeeded_ids.len() >= 60, Duration::from_secs(30))
        .await
        .unwrap();

    // The follower shows the leader's attempts: health and stats.
    let end = Instant::now() + Duration::from_secs(20);
    loop {
        let (s, h) = follow
            .call(
                &key,
                Method::GET,
                &format!("/v1/endpoints/{ep_id}/health"),
                None,
            )
            .await
            .unwrap();
        assert_eq!(s, 200, "{h}");
        if h["recent_attempts"].as_u64() >= Some(60) {
            assert_eq!(h["success_rate"], 1.0, "{h}");
            assert_eq!(h["last_status_code"], 200, "{h}");
            break;
        }
        assert!(
            Instant::now() < end,
            "the follower never saw the leader's attempts: {h}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (_, stats) = follow
        .call(&key, Method::GET, "/v1/stats", None)
        .await
        .unwrap();
    let ep_stats = &stats["endpoints"][0];
    assert_eq!(ep_stats["endpoint_id"], ep_id.as_str());
    assert_eq!(ep_stats["success_rate"], 1.0, "{stats}");

    // A change through the follower is in force on the leader's next deliveries.
    let (s, _) = follow
        .call(
            &key,
            Method::PATCH,
            &format!("/v1/endpoints/{ep_id}"),
            Some(json!({"url": second.url()})),
        )
        .await
        .unwrap();
    assert_eq!(s, 200);
    tokio::time::sleep(Duration::from_secs(2)).await;
    follow
        .publish(&key, "cc.tick", &json!({"after": true}))
        .await
        .unwrap();
    second
        .wait_for(|log| log.succeeded_ids.len() == 1, Duration::from_secs(20))
        .await
        .unwrap();
}
