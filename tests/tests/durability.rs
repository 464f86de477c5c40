//! Durability of accepted events across restarts and `kill -9`, against the real
//! binary.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use gatepulse_e2e::sse::{self, Sse};
use gatepulse_e2e::{Backend, Gp};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio::sync::Semaphore;

async fn setup(gp: &Gp) -> (String, String) {
    let (_, key) = gp.tenant_with_key().await.unwrap();
    // Port 9 refuses connections, so deliveries stay queued for retries.
    let (s, ep) = gp
        .call(
            &key,
            Method::POST,
            "/v1/endpoints",
            Some(json!({"url": "http://127.0.0.1:9/hook"})),
        )
        .await
        .unwrap();
    assert_eq!(s, StatusCode::CREATED, "{ep}");
    let ep = ep["id"].as_str().unwrap().to_owned();
    let (s, sub) = gp
        .call(
            &key,
            Method::POST,
            "/v1/subscriptions",
            Some(json!({"endpoint_id": ep, "topics": ["orders.#"]})),
        )
        .await
        .unwrap();
    assert_eq!(s, StatusCode::CREATED, "{sub}");
    (key, ep)
}

/// Events are in cursor order, and the tenant's stream (events and the attempt
/// statuses between them) holds every cursor from 1 to the last event's: no gap.
async fn assert_gapless(gp: &Gp, key: &str, events: &[Value]) -> Vec<u64> {
    let cursors: Vec<u64> = events
        .iter()
        .map(|e| e["cursor"].as_u64().unwrap())
        .collect();
    assert!(
        cursors.windows(2).all(|w| w[0] < w[1]),
        "events in cursor order"
    );
    let last = *cursors.last().unwrap();
    let http = sse::client().unwrap();
    let mut stream = Sse::connect(&http, &gp.base, key, "?from_cursor=0", None)
        .await
        .unwrap();
    let mut seen = Vec::new();
    while seen.last().is_none_or(|c| *c < last) {
        let frame = stream
            .next_within(std::time::Duration::from_secs(30))
            .await
            .unwrap()
            .expect("stream ended");
        seen.push(frame.cursor().unwrap());
    }
    assert_eq!(
        seen,
        (1..=last).collect::<Vec<_>>(),
        "stream cursors must be 1..=N in order with no gap"
    );
    let in_stream: HashSet<u64> = seen.into_iter().collect();
    assert!(cursors.iter().all(|c| in_stream.contains(c)));
    cursors
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_publishes_survive_restart_with_their_deliveries() {
    concurrent_publishes_survive_restart_with_their_deliveries_on(Backend::redb()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_publishes_survive_restart_with_their_deliveries_on_postgres() {
    concurrent_publishes_survive_restart_with_their_deliveries_on(Backend::postgres()).await;
}

async fn concurrent_publishes_survive_restart_with_their_deliveries_on(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let gp = Gp::start(dir.path(), &backend.env(&[])).await.unwrap();
    let (key, _ep) = setup(&gp).await;

    // 1,000 publishes at concurrency 32; every 10th reuses one of 20 idempotency keys.
    let gp = Arc::new(gp);
    let sem = Arc::new(Semaphore::new(32));
    let mut tasks = Vec::new();
    for i in 0..1000u32 {
        let (gp, key, sem) = (gp.clone(), key.clone(), sem.clone());
        tasks.push(tokio::spawn(async move {
            let _permit = sem.acquire().await.unwrap();
            let idem = (i % 10 == 0).then(|| format!("dup-{}", (i / 10) % 20));
            let mut body =
                json!({"topic": "orders.created", "payload": {"i": i, "blob": "x".repeat(200)}});
            if let Some(k) = &idem {
                body["idempotency_key"] = json!(k);
            }
            let (s, out) = gp
                .call(&key, Method::POST, "/v1/events", Some(body))
                .await
                .unwrap();
            assert_eq!(s, StatusCode::ACCEPTED, "{out}");
            (idem, out)
        }));
    }
    let mut accepted = HashSet::new();
    let mut by_key: HashMap<String, HashSet<String>> = HashMap::new();
    let mut deduped = 0;
    for t in tasks {
        let (idem, out) = t.await.unwrap();
        let id = out["id"].as_str().unwrap().to_owned();
        if out["deduped"] == true {
            deduped += 1;
        } else {
            assert!(
                accepted.insert(id.clone()),
                "a new event id was returned twice"
            );
        }
        if let Some(k) = idem {
            by_key.entry(k).or_default().insert(id);
        }
    }
    assert_eq!(by_key.len(), 20);
    for (k, ids) in &by_key {
        assert_eq!(
            ids.len(),
            1,
            "idempotency key {k} stored more than one event: {ids:?}"
        );
    }
    assert_eq!(deduped, 100 - 20);
    assert_eq!(accepted.len(), 1000 - deduped);

    let mut gp = Arc::into_inner(gp).unwrap();
    assert_eq!(gp.terminate().unwrap(), 0, "SIGTERM exits 0");
    gp.restart().await.unwrap();

    let events = gp.list_all(&key, "/v1/events").await.unwrap();
    let ids: HashSet<String> = events
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids, accepted, "exactly the accepted events are stored");
    assert_gapless(&gp, &key, &events).await;
    let deliveries = gp.list_all(&key, "/v1/deliveries").await.unwrap();
    assert_eq!(deliveries.len(), accepted.len(), "one delivery per event");
    let per_event: HashSet<&str> = deliveries
        .iter()
        .map(|d| d["event_id"].as_str().unwrap())
        .collect();
    assert_eq!(per_event.len(), accepted.len());
    // Port 9 refuses connections: every delivery is still waiting for a retry.
    assert!(
        deliveries
            .iter()
            .all(|d| ["pending", "in_flight", "retrying"].contains(&d["status"].as_str().unwrap())),
        "no delivery to a refusing endpoint can have succeeded"
    );
    // Keys still dedupe after the restart.
    let (_, again) = gp
        .call(
            &key,
            Method::POST,
            "/v1/events",
            Some(json!({"topic": "orders.created", "payload": {}, "idempotency_key": "dup-0"})),
        )
        .await
        .unwrap();
    assert_eq!(again["deduped"], true);
    assert!(by_key["dup-0"].contains(again["id"].as_str().unwrap()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_a_publish_burst_loses_no_acknowledged_event() {
    kill_9_during_a_publish_burst_loses_no_acknowledged_event_on(Backend::redb()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_a_publish_burst_loses_no_acknowledged_event_on_postgres() {
    kill_9_during_a_publish_burst_loses_no_acknowledged_event_on(Backend::postgres()).await;
}

async fn kill_9_during_a_publish_burst_loses_no_acknowledged_event_on(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let mut gp = Gp::start(dir.path(), &backend.env(&[])).await.unwrap();
    let (key, _) = setup(&gp).await;
    let base = gp.base.clone();
    let http = gp.http.clone();

    // 16 publishers publish until the server dies; every 202 is recorded.
    let stop = Arc::new(AtomicBool::new(false));
    let acked = Arc::new(std::sync::Mutex::new(BTreeMap::<String, u64>::new()));
    let mut publishers = Vec::new();
    for w in 0..16 {
        let (http, base, key, stop, acked) = (
            http.clone(),
            base.clone(),
            key.clone(),
            stop.clone(),
            acked.clone(),
        );
        publishers.push(tokio::spawn(async move {
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) && n < 5_000 {
                n += 1;
                let resp = http
                    .post(format!("{base}/v1/events"))
                    .bearer_auth(&key)
                    .json(&json!({"topic": "orders.created", "payload": {"w": w, "n": n}}))
                    .send()
                    .await;
                let Ok(resp) = resp else { break };
                if resp.status() != StatusCode::ACCEPTED {
                    break;
                }
                let Ok(out) = resp.json::<Value>().await else {
                    break;
                };
                acked.lock().unwrap().insert(
                    out["id"].as_str().unwrap().to_owned(),
                    out["cursor"].as_u64().unwrap(),
                );
            }
        }));
    }
    // Let the burst run until a few hundred events are acknowledged, then kill -9.
    loop {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        if acked.lock().unwrap().len() >= 400 {
            break;
        }
    }
    gp.kill9().unwrap();
    stop.store(true, Ordering::Relaxed);
    for p in publishers {
        p.await.unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    assert!(acked.len() >= 400);

    gp.restart().await.unwrap();
    let events = gp.list_all(&key, "/v1/events").await.unwrap();
    let stored: HashMap<String, u64> = events
        .iter()
        .map(|e| {
            (
                e["id"].as_str().unwrap().to_owned(),
                e["cursor"].as_u64().unwrap(),
            )
        })
        .collect();
    for (id, cursor) in &acked {
        assert_eq!(
            stored.get(id),
            Some(cursor),
            "acknowledged event {id} lost or moved"
        );
    }
    // Events whose answer was lost in the kill may exist too, but never with a gap.
    assert_gapless(&gp, &key, &events).await;
    assert!(stored.len() >= acked.len());
    let deliveries = gp.list_all(&key, "/v1/deliveries").await.unwrap();
    assert_eq!(
        deliveries.len(),
        stored.len(),
        "every stored event kept its delivery"
    );
}
