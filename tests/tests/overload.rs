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

/// The in-flight publish limit is checked from the request's head, before its body is
/// read: a publish still sending its body holds a slot, and one that finds every slot
/// taken is refused at once, whatever it was about to send.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publishes_are_admitted_before_their_body_is_read() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let dir = tempfile::tempdir().unwrap();
    let gp = Gp::start(
        dir.path(),
        &[("GATEPULSE_API__MAX_INFLIGHT_GLOBAL", "1")], // the roadmap's name, an alias
    )
    .await
    .unwrap();
    let (_, key) = gp.tenant_with_key().await.unwrap();
    let body = br#"{"topic": "slow.body", "payload": {"n": 1}}"#;
    let head = format!(
        "POST /v1/events HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {key}\r\n\
         content-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    );
    // A publish that sends its head and part of its body, then waits. Once the server
    // has read the head it holds the only slot, and any other publish is refused.
    // (Until then another publish may still win the slot; then try again.)
    let mut tries = 0;
    let mut slow = loop {
        tries += 1;
        assert!(tries <= 20, "the slow publish never held the slot");
        let mut slow = tokio::net::TcpStream::connect(gp.base.trim_start_matches("http://"))
            .await
            .unwrap();
        slow.write_all(head.as_bytes()).await.unwrap();
        slow.write_all(&body[..5]).await.unwrap();
        tokio::time::sleep(Duration::from_millis(50 * tries)).await;
        let (s, p) = gp
            .call(
                &key,
                Method::POST,
                "/v1/events",
                Some(json!({"topic": "other", "payload": {}})),
            )
            .await
            .unwrap();
        if s == StatusCode::TOO_MANY_REQUESTS {
            assert_eq!(p["code"], "overloaded", "{p}");
            break slow;
        }
        assert_eq!(s, StatusCode::ACCEPTED, "{p}");
    };
    // The slow one finishes sending and is accepted; the slot is free again.
    slow.write_all(&body[5..]).await.unwrap();
    let mut answer = String::new();
    slow.read_to_string(&mut answer).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 202"), "{answer}");
    gp.publish(&key, "after", &json!({})).await.unwrap();
}

/// Slow clients cannot take the API down: connections that send part of a request's
/// headers and then nothing are cut off after the header timeout, one address cannot
/// hold more than its share of connections, and a publisher elsewhere is served
/// meanwhile. Refusals are counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_header_senders_neither_exhaust_connections_nor_block_publishes() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let dir = tempfile::tempdir().unwrap();
    let gp = Gp::start(
        dir.path(),
        &[
            ("GATEPULSE_API__MAX_CONNECTIONS_PER_IP", "50"),
            ("GATEPULSE_API__HEADER_READ_TIMEOUT_SECS", "2"),
        ],
    )
    .await
    .unwrap();
    let (_, key) = gp.tenant_with_key().await.unwrap();
    let server: std::net::SocketAddr = gp.base.trim_start_matches("http://").parse().unwrap();
    // 200 connections from another loopback address, each a header and then silence.
    let mut held = Vec::new();
    for _ in 0..200 {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind("127.0.0.2:0".parse().unwrap()).unwrap();
        let Ok(mut io) = socket.connect(server).await else {
            continue;
        };
        let _ = io
            .write_all(b"POST /v1/events HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n")
            .await;
        held.push(io);
    }
    // The publisher on another address is served promptly.
    let started = Instant::now();
    gp.publish(&key, "still.served", &json!({})).await.unwrap();
    assert!(started.elapsed() < Duration::from_secs(5));
    let metrics = gp
        .http
        .get(format!("{}/metrics", gp.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let refused: f64 = metrics
        .lines()
        .find(|l| {
            l.starts_with("gatepulse_connections_refused_total")
                && l.contains("reason=\"max_connections_per_ip\"")
        })
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    assert!(refused >= 150.0, "{metrics}");
    // Every held connection is closed by the server once its headers are overdue.
    for mut io in held {
        let mut buf = [0u8; 512];
        let end = tokio::time::timeout(Duration::from_secs(20), io.read(&mut buf)).await;
        assert!(end.is_ok(), "a silent connection was kept open");
    }
}
