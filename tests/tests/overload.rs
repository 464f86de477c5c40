//! Overload (SPEC OPS-1): a publisher at several times capacity gets only 202, 429 or
//! 503; the queue stays under its limit; memory stays bounded; nothing accepted is
//! lost.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use gatepulse_e2e::Gp;
use gatepulse_e2e::receiver::{Behaviour, Receiver};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const QUEUE_LIMIT: u64 = 300;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publisher_at_several_times_capacity_gets_only_202_429_or_503() {
    let dir = tempfile::tempdir().unwrap();
    let gp = Gp::start(
        dir.path(),
        &[
            ("GATEPULSE_API__MAX_QUEUE_DEPTH_PER_TENANT", "300"),
            ("GATEPULSE_API__MAX_INFLIGHT_PUBLISHES", "8"),
            ("GATEPULSE_API__OVERLOAD_STATUS", "429"),
        ],
    )
    .await
    .unwrap();
    let (_, key) = gp.tenant_with_key().await.unwrap();
    // Capacity: 200 deliveries/s (the endpoint's rate limit); offered: far more.
    let rx = Receiver::start(Behaviour::Ok, None).await.unwrap();
    let (s, ep) = gp
        .call(
            &key,
            Method::POST,
            "/v1/endpoints",
            Some(json!({"url": rx.url(), "rate_limit_per_sec": 200})),
        )
        .await
        .unwrap();
    assert_eq!(s, StatusCode::CREATED, "{ep}");
    let (s, _) = gp
        .call(
            &key,
            Method::POST,
            "/v1/subscriptions",
            Some(json!({"endpoint_id": ep["id"], "topics": ["load.#"]})),
        )
        .await
        .unwrap();
    assert_eq!(s, StatusCode::CREATED);

    let gp = Arc::new(gp);
    let stop = Arc::new(AtomicBool::new(false));
    let mut publishers = Vec::new();
    for w in 0..32 {
        let (gp, key, stop) = (gp.clone(), key.clone(), stop.clone());
        publishers.push(tokio::spawn(async move {
            let mut statuses: BTreeMap<u16, u64> = BTreeMap::new();
            let mut accepted = Vec::new();
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                let resp = gp
                    .http
                    .post(format!("{}/v1/events", gp.base))
                    .bearer_auth(&key)
                    .json(&json!({"topic": "load.x", "payload": {"w": w, "n": n}}))
                    .send()
                    .await
                    .unwrap();
                let status = resp.status().as_u16();
                *statuses.entry(status).or_default() += 1;
                if status == 202 {
                    let out: Value = resp.json().await.unwrap();
                    accepted.push(out["id"].as_str().unwrap().to_owned());
                } else {
                    assert!(
                        resp.headers().contains_key("retry-after"),
                        "{status} without Retry-After"
                    );
                    let _ = resp.bytes().await;
                }
            }
            (statuses, accepted)
        }));
    }
    // Watch the queue and the server's memory while the load runs.
    let started = Instant::now();
    let mut max_queue = 0;
    let mut max_rss = 0;
    while started.elapsed() < Duration::from_secs(6) {
        let (_, stats) = gp.call(&key, Method::GET, "/v1/stats", None).await.unwrap();
        let queued: u64 = ["queue_depth", "in_flight", "retry_backlog"]
            .iter()
            .map(|k| stats[k].as_u64().unwrap())
            .sum();
        max_queue = max_queue.max(queued);
        max_rss = max_rss.max(gp.rss_kib().unwrap_or(0));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    stop.store(true, Ordering::Relaxed);
    let mut statuses: BTreeMap<u16, u64> = BTreeMap::new();
    let mut accepted = HashSet::new();
    for p in publishers {
        let (s, a) = p.await.unwrap();
        for (k, v) in s {
            *statuses.entry(k).or_default() += v;
        }
        accepted.extend(a);
    }
    println!("statuses {statuses:?}; max queue {max_queue}; max RSS {max_rss} KiB");
    assert!(
        statuses.keys().all(|s| matches!(s, 202 | 429 | 503)),
        "only 202/429/503: {statuses:?}"
    );
    assert!(
        statuses.get(&429).copied().unwrap_or(0) > 0,
        "the load must have hit the limits: {statuses:?}"
    );
    assert!(
        max_queue <= QUEUE_LIMIT,
        "queue {max_queue} went past its limit {QUEUE_LIMIT}"
    );
    assert!(
        max_rss < 256 * 1024,
        "server RSS {max_rss} KiB is not bounded"
    );

    // Nothing accepted is lost: every 202 reaches the receiver.
    let n = accepted.len();
    rx.wait_for(|l| l.succeeded_ids.len() >= n, Duration::from_secs(120))
        .await
        .unwrap();
    rx.with_log(|l| {
        let seen: HashSet<String> = l
            .requests
            .iter()
            .filter_map(|r| r.event_id().map(str::to_owned))
            .collect();
        assert_eq!(
            seen, accepted,
            "every accepted event was delivered, and only those"
        );
    });
}
