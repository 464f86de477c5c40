//! The delivery engine end to end (SPEC CORE-3, CORE-4, CORE-5): the real `gp` binary
//! delivers to real HTTP receivers; signatures are checked with the official Standard
//! Webhooks library; retries, the DLQ, requeue, replay, `410 Gone`, scopes and the
//! circuit breaker are observed over HTTP only.
//!
//! Waits poll the API or the receiver until a condition holds, with generous deadlines
//! that fail with what was last seen. Timings are printed, never asserted.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant};

use gatepulse_e2e::receiver::{Behaviour, Receiver, Recorded};
use gatepulse_e2e::{ADMIN_TOKEN, Backend, Gp};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// No jitter and no circuit breaker, so retry counts are exact.
const ENGINE_ENV: &[(&str, &str)] = &[
    ("GATEPULSE_DELIVERY__RETRY_JITTER", "0"),
    ("GATEPULSE_DELIVERY__CIRCUIT_FAILURE_THRESHOLD", "0"),
    ("GATEPULSE_DELIVERY__CIRCUIT_COOLDOWN_SECS", "1"),
];

/// A valid `whsec_` secret (base64 of 24 bytes).
const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

const MINUTE: Duration = Duration::from_secs(60);

/// Polls `probe` every `every` until it answers `Ok`, or panics after `deadline` with
/// `what` and the last observation (the `Err` text).
async fn eventually<T>(
    what: &str,
    deadline: Duration,
    every: Duration,
    mut probe: impl AsyncFnMut() -> Result<T, String>,
) -> T {
    let start = Instant::now();
    loop {
        match probe().await {
            Ok(v) => return v,
            Err(last) => {
                assert!(
                    start.elapsed() < deadline,
                    "{what}: not reached within {deadline:?}; last seen: {last}"
                );
            }
        }
        tokio::time::sleep(every).await;
    }
}

async fn create_endpoint(gp: &Gp, key: &str, body: Value) -> String {
    let (s, ep) = gp
        .call(key, Method::POST, "/v1/endpoints", Some(body))
        .await
        .unwrap();
    assert_eq!(s, StatusCode::CREATED, "create endpoint: {ep}");
    ep["id"].as_str().unwrap().to_owned()
}

async fn subscribe(gp: &Gp, key: &str, ep: &str, topics: &[&str]) -> String {
    let (s, sub) = gp
        .call(
            key,
            Method::POST,
            "/v1/subscriptions",
            Some(json!({"endpoint_id": ep, "topics": topics})),
        )
        .await
        .unwrap();
    assert_eq!(s, StatusCode::CREATED, "create subscription: {sub}");
    sub["id"].as_str().unwrap().to_owned()
}

async fn publish(gp: &Gp, key: &str, topic: &str, payload: &Value) -> String {
    let out = gp.publish(key, topic, payload).await.unwrap();
    out["id"].as_str().unwrap().to_owned()
}

/// `POST /v1/events/batch` (at most 500 events); the event ids in order.
async fn publish_batch(gp: &Gp, key: &str, events: Vec<Value>) -> Vec<String> {
    let n = events.len();
    let (s, out) = gp
        .call(
            key,
            Method::POST,
            "/v1/events/batch",
            Some(json!({"events": events})),
        )
        .await
        .unwrap();
    assert_eq!(s, StatusCode::ACCEPTED, "batch publish: {out}");
    let data = out["data"].as_array().unwrap();
    assert_eq!(data.len(), n, "one answer per batch item");
    data.iter()
        .map(|d| {
            d["id"]
                .as_str()
                .unwrap_or_else(|| panic!("batch item rejected: {d}"))
                .to_owned()
        })
        .collect()
}

/// Every delivery matching `query` (`endpoint_id=…&status=…`), all pages.
async fn deliveries(gp: &Gp, key: &str, query: &str) -> Result<Vec<Value>, String> {
    gp.list_all(key, &format!("/v1/deliveries?{query}"))
        .await
        .map_err(|e| e.to_string())
}

fn status_counts(ds: &[Value]) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for d in ds {
        *m.entry(d["status"].as_str().unwrap_or("?").to_owned())
            .or_insert(0) += 1;
    }
    m
}

/// Polls until exactly `n` deliveries of `endpoint` exist and all are `succeeded`.
async fn all_succeeded(gp: &Gp, key: &str, endpoint: &str, n: usize, deadline: Duration) {
    eventually(
        &format!("all {n} deliveries of {endpoint} succeeded"),
        deadline,
        Duration::from_millis(500),
        async || {
            let ds = deliveries(gp, key, &format!("endpoint_id={endpoint}")).await?;
            let counts = status_counts(&ds);
            if ds.len() == n && counts.get("succeeded") == Some(&n) {
                Ok(())
            } else {
                Err(format!("{} deliveries, by status {counts:?}", ds.len()))
            }
        },
    )
    .await;
}

async fn get_json(gp: &Gp, key: &str, path: &str) -> Value {
    let (s, v) = gp.call(key, Method::GET, path, None).await.unwrap();
    assert_eq!(s, StatusCode::OK, "GET {path}: {v}");
    v
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deliveries_verify_with_the_standard_webhooks_library() {
    deliveries_verify_with_the_standard_webhooks_library_on(Backend::redb()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deliveries_verify_with_the_standard_webhooks_library_on_postgres() {
    deliveries_verify_with_the_standard_webhooks_library_on(Backend::postgres()).await;
}

async fn deliveries_verify_with_the_standard_webhooks_library_on(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let gp = Gp::start(dir.path(), &backend.env(ENGINE_ENV))
        .await
        .unwrap();
    let (_, key) = gp.tenant_with_key().await.unwrap();
    let rx = Receiver::start(Behaviour::Ok, Some(SECRET.to_owned()))
        .await
        .unwrap();
    let ep = create_endpoint(
        &gp,
        &key,
        json!({"url": rx.url(), "secret": SECRET, "headers": {"x-e2e-tag": "signed"}}),
    )
    .await;
    let secret = get_json(&gp, &key, &format!("/v1/endpoints/{ep}/secret")).await;
    assert_eq!(secret["secret"], SECRET);
    subscribe(&gp, &key, &ep, &["orders.*", "invoices.#"]).await;

    // 50 events over four matching topics: half one by one, half in one batch.
    let topics = [
        "orders.created",
        "orders.paid",
        "invoices.sent",
        "invoices.eu.sent",
    ];
    let payload = |i: usize| {
        json!({"i": i, "amount": i * 10, "note": "ünïcødé ✓ \"quoted\"",
               "nested": {"list": [1, 2.5, null, true], "empty": {}}})
    };
    let mut published: HashMap<String, (String, Value)> = HashMap::new();
    for i in 0..25 {
        let (topic, p) = (topics[i % 4], payload(i));
        let id = publish(&gp, &key, topic, &p).await;
        published.insert(id, (topic.to_owned(), p));
    }
    let batch: Vec<(String, Value)> = (25..50)
        .map(|i| (topics[i % 4].to_owned(), payload(i)))
        .collect();
    let ids = publish_batch(
        &gp,
        &key,
        batch
            .iter()
            .map(|(t, p)| json!({"topic": t, "payload": p}))
            .collect(),
    )
    .await;
    for (id, tp) in ids.into_iter().zip(batch) {
        published.insert(id, tp);
    }
    assert_eq!(published.len(), 50);
    // A topic no subscription matches creates no delivery.
    let unmatched = publish(&gp, &key, "users.created", &json!({"x": 1})).await;

    rx.wait_for(|l| l.succeeded_ids.len() >= 50, 2 * MINUTE)
        .await
        .expect("all 50 deliveries arrive");
    all_succeeded(&gp, &key, &ep, 50, MINUTE).await;
    let delivery_of: HashMap<String, String> = deliveries(&gp, &key, &format!("endpoint_id={ep}"))
        .await
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["event_id"].as_str().unwrap().to_owned(),
                d["id"].as_str().unwrap().to_owned(),
            )
        })
        .collect();

    let requests = rx.requests();
    assert_eq!(
        requests.len(),
        50,
        "exactly one request per delivery to a healthy receiver"
    );
    let mut seen_events = HashSet::new();
    for r in &requests {
        assert_eq!(
            r.signature_ok,
            Some(true),
            "standardwebhooks rejected a delivery: {:?}; headers {:?}",
            r.signature_error,
            r.headers
        );
        assert_eq!(r.method, "POST");
        assert_eq!(r.path, "/hook");
        assert!(
            r.header("content-type")
                .is_some_and(|c| c.starts_with("application/json")),
            "content-type: {:?}",
            r.header("content-type")
        );
        let event = r.event_id().expect("gatepulse-event-id header");
        let (topic, payload) = published
            .get(event)
            .unwrap_or_else(|| panic!("delivery for an unknown event {event}"));
        assert!(seen_events.insert(event.to_owned()), "{event} twice");
        assert_eq!(r.header("gatepulse-topic"), Some(topic.as_str()));
        assert_eq!(r.attempt(), Some(1), "gatepulse-attempt");
        assert_eq!(r.header("x-e2e-tag"), Some("signed"), "custom header");
        let webhook_id = r.webhook_id().expect("webhook-id header");
        assert!(webhook_id.starts_with("dlv_"), "webhook-id {webhook_id}");
        assert_eq!(
            Some(webhook_id),
            delivery_of.get(event).map(String::as_str),
            "webhook-id is the delivery id"
        );
        let ts: i64 = r
            .header("webhook-timestamp")
            .expect("webhook-timestamp")
            .parse()
            .expect("webhook-timestamp is unix seconds");
        assert!((ts - unix_now()).abs() < 300, "webhook-timestamp {ts}");
        let sigs = r.signatures();
        assert_eq!(sigs.len(), 1, "one signature before rotation: {sigs:?}");
        assert!(sigs[0].starts_with("v1,"), "{sigs:?}");
        assert_eq!(
            r.body.as_ref(),
            serde_json::to_vec(payload).unwrap().as_slice(),
            "the body is the payload exactly as published"
        );
    }
    let (s, d) = gp
        .call(
            &key,
            Method::GET,
            &format!("/v1/deliveries?event_id={unmatched}"),
            None,
        )
        .await
        .unwrap();
    assert_eq!(s, StatusCode::OK, "{d}");
    assert_eq!(
        d["data"].as_array().unwrap().len(),
        0,
        "unmatched topic: {d}"
    );

    // The delivery record shows its one successful attempt.
    let one = delivery_of.values().next().unwrap();
    let detail = get_json(&gp, &key, &format!("/v1/deliveries/{one}")).await;
    assert_eq!(detail["status"], "succeeded", "{detail}");
    let attempts = detail["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 1, "{detail}");
    assert_eq!(attempts[0]["number"], 1, "{detail}");
    assert_eq!(attempts[0]["status_code"], 200, "{detail}");
    assert!(attempts[0]["latency_ms"].is_number(), "{detail}");

    // Rotation: the new secret signs, and the old one keeps signing alongside.
    let (s, rotated) = gp
        .call(
            &key,
            Method::POST,
            &format!("/v1/endpoints/{ep}/secret/rotate"),
            None,
        )
        .await
        .unwrap();
    let rotated_at = Instant::now();
    assert_eq!(s, StatusCode::OK, "{rotated}");
    let new_secret = rotated["secret"].as_str().unwrap().to_owned();
    assert!(new_secret.starts_with("whsec_"), "{rotated}");
    assert_ne!(new_secret, SECRET);
    let current = get_json(&gp, &key, &format!("/v1/endpoints/{ep}/secret")).await;
    assert_eq!(current["secret"], new_secret.as_str());

    let mut after_rotation = HashSet::new();
    for i in 0..5 {
        after_rotation.insert(publish(&gp, &key, "orders.created", &json!({"after": i})).await);
    }
    rx.wait_for(|l| l.succeeded_ids.len() >= 55, MINUTE)
        .await
        .expect("deliveries after the rotation arrive");
    let rotated_requests: Vec<_> = rx
        .requests()
        .into_iter()
        .filter(|r| r.event_id().is_some_and(|e| after_rotation.contains(e)))
        .collect();
    assert_eq!(rotated_requests.len(), 5);
    for r in &rotated_requests {
        let sigs = r.signatures();
        assert_eq!(
            sigs.len(),
            2,
            "two signatures during the grace period, for a delivery published after the \
             rotation answered; got {sigs:?} (old secret verifies: {:?}, new secret \
             verifies: {:?}, {} ms after the rotation answered)",
            r.verify_with(SECRET),
            r.verify_with(&new_secret),
            r.received_at.duration_since(rotated_at).as_millis()
        );
        assert!(sigs.iter().all(|s| s.starts_with("v1,")), "{sigs:?}");
        r.verify_with(SECRET)
            .unwrap_or_else(|e| panic!("old secret does not verify: {e}; {sigs:?}"));
        r.verify_with(&new_secret)
            .unwrap_or_else(|e| panic!("new secret does not verify: {e}; {sigs:?}"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_endpoints_healthy_flaky_and_black_hole() {
    three_endpoints_healthy_flaky_and_black_hole_on(Backend::redb()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_endpoints_healthy_flaky_and_black_hole_on_postgres() {
    three_endpoints_healthy_flaky_and_black_hole_on(Backend::postgres()).await;
}

async fn three_endpoints_healthy_flaky_and_black_hole_on(backend: Backend) {
    const N: usize = 10_000;
    const BATCH: usize = 500;
    let dir = tempfile::tempdir().unwrap();
    let gp = Gp::start(dir.path(), &backend.env(ENGINE_ENV))
        .await
        .unwrap();
    let (_, key) = gp.tenant_with_key().await.unwrap();
    let healthy = Receiver::start(Behaviour::Ok, None).await.unwrap();
    let flaky = Receiver::start(Behaviour::FailFirst(2), None)
        .await
        .unwrap();
    let hole = Receiver::start(Behaviour::BlackHole, None).await.unwrap();
    let ep_healthy = create_endpoint(&gp, &key, json!({"url": healthy.url()})).await;
    let ep_flaky = create_endpoint(
        &gp,
        &key,
        json!({"url": flaky.url(), "retry_schedule_secs": [1, 1]}),
    )
    .await;
    let ep_hole = create_endpoint(
        &gp,
        &key,
        json!({"url": hole.url(), "timeout_ms": 300, "max_in_flight": 1000,
               "retry_schedule_secs": [1]}),
    )
    .await;
    for ep in [&ep_healthy, &ep_flaky, &ep_hole] {
        subscribe(&gp, &key, ep, &["orders.created"]).await;
    }

    // Publish: 20 batches of 500; each event remembers when its batch was sent.
    let t0 = Instant::now();
    let mut sent_at: HashMap<String, Instant> = HashMap::with_capacity(N);
    let mut event_ids: Vec<String> = Vec::with_capacity(N);
    for b in 0..N / BATCH {
        let events = (0..BATCH)
            .map(|j| json!({"topic": "orders.created", "payload": {"i": b * BATCH + j}}))
            .collect();
        let at = Instant::now();
        for id in publish_batch(&gp, &key, events).await {
            sent_at.insert(id.clone(), at);
            event_ids.push(id);
        }
    }
    let all_events: HashSet<String> = event_ids.iter().cloned().collect();
    assert_eq!(all_events.len(), N, "distinct event ids");
    println!("phase publish: {N} events in {:?}", t0.elapsed());

    // Healthy: all 10,000 distinct webhook-ids arrive.
    let t = Instant::now();
    healthy
        .wait_for(|l| l.succeeded_ids.len() >= N, 10 * MINUTE)
        .await
        .expect("the healthy endpoint receives every delivery");
    println!(
        "phase healthy: all {N} received {:?} after publishing",
        t.elapsed()
    );
    let mut hist = hdrhistogram::Histogram::<u64>::new(3).unwrap();
    healthy.with_log(|l| {
        assert_eq!(l.per_webhook_id.len(), N, "distinct webhook-ids");
        let mut first: HashMap<&str, Instant> = HashMap::new();
        for r in &l.requests {
            let e = r.event_id().expect("gatepulse-event-id");
            first.entry(e).or_insert(r.received_at);
        }
        let seen: HashSet<String> = first.keys().map(|e| (*e).to_owned()).collect();
        assert_eq!(seen, all_events, "the healthy endpoint saw every event");
        for (e, at) in first {
            let lat = at.saturating_duration_since(sent_at[e]);
            hist.record(lat.as_micros() as u64).unwrap();
        }
        println!(
            "healthy: {} requests for {} webhook-ids",
            l.requests.len(),
            l.per_webhook_id.len()
        );
    });
    println!(
        "healthy publish→receipt latency (batch send → first request): p50 {:.1} ms, p95 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        hist.value_at_quantile(0.50) as f64 / 1000.0,
        hist.value_at_quantile(0.95) as f64 / 1000.0,
        hist.value_at_quantile(0.99) as f64 / 1000.0,
        hist.max() as f64 / 1000.0,
    );
    all_succeeded(&gp, &key, &ep_healthy, N, 5 * MINUTE).await;

    // Flaky: two 500s then a 200 for every delivery, same webhook-id each time.
    let t = Instant::now();
    flaky
        .wait_for(|l| l.succeeded_ids.len() >= N, 10 * MINUTE)
        .await
        .expect("the flaky endpoint eventually receives every delivery");
    all_succeeded(&gp, &key, &ep_flaky, N, 5 * MINUTE).await;
    println!("phase flaky: all {N} succeeded {:?} later", t.elapsed());
    flaky.with_log(|l| {
        assert_eq!(l.per_webhook_id.len(), N, "distinct webhook-ids");
        let mut by_id: HashMap<&str, Vec<&Recorded>> = HashMap::new();
        for r in &l.requests {
            by_id
                .entry(r.webhook_id().expect("webhook-id"))
                .or_default()
                .push(r);
        }
        let mut events = HashSet::new();
        let mut min_gap = Duration::MAX;
        for (id, tries) in &by_id {
            let attempts: Vec<_> = tries.iter().map(|t| t.attempt()).collect();
            let answers: Vec<_> = tries.iter().map(|t| t.answered).collect();
            assert_eq!(
                tries.len(),
                3,
                "exactly 3 requests for {id}: attempts {attempts:?}, answers {answers:?}"
            );
            assert_eq!(attempts, [Some(1), Some(2), Some(3)], "{id}");
            assert_eq!(answers, [Some(500), Some(500), Some(200)], "{id}");
            let event = tries[0].event_id().expect("gatepulse-event-id");
            assert!(
                tries.iter().all(|t| t.event_id() == Some(event)),
                "one event per webhook-id {id}"
            );
            events.insert(event.to_owned());
            for w in tries.windows(2) {
                min_gap = min_gap.min(w[1].received_at - w[0].received_at);
            }
        }
        assert_eq!(events, all_events, "the flaky endpoint saw every event");
        println!("flaky: smallest gap between retries {min_gap:?} (schedule 1 s)");
    });

    // Black hole: every delivery times out twice and ends in the DLQ.
    let t = Instant::now();
    let dlq_path = format!("/v1/dlq?endpoint_id={ep_hole}");
    let dead = eventually(
        "every black-hole delivery is in the DLQ",
        10 * MINUTE,
        Duration::from_secs(2),
        async || {
            let dlq = gp
                .list_all(&key, &dlq_path)
                .await
                .map_err(|e| e.to_string())?;
            if dlq.len() >= N {
                Ok(dlq)
            } else {
                let others = deliveries(&gp, &key, &format!("endpoint_id={ep_hole}")).await?;
                Err(format!(
                    "{} in the DLQ; deliveries by status {:?}",
                    dlq.len(),
                    status_counts(&others)
                ))
            }
        },
    )
    .await;
    println!("phase black hole: {N} in the DLQ {:?} later", t.elapsed());
    assert_eq!(dead.len(), N, "one DLQ entry per delivery");
    let dead_ids: HashSet<String> = dead
        .iter()
        .map(|d| {
            assert_eq!(d["status"], "dead", "{d}");
            assert_eq!(d["endpoint_id"], ep_hole.as_str(), "{d}");
            assert_eq!(d["attempt_count"], 2, "schedule [1] = 2 attempts: {d}");
            d["id"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(dead_ids.len(), N);
    let sample = dead[0]["id"].as_str().unwrap();
    let detail = get_json(&gp, &key, &format!("/v1/deliveries/{sample}")).await;
    let attempts = detail["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 2, "{detail}");
    for a in attempts {
        assert!(a["status_code"].is_null(), "a timeout has no status: {a}");
        assert!(
            a["error_kind"].as_str().is_some_and(|k| !k.is_empty()),
            "{a}"
        );
    }
    println!(
        "black-hole attempt error_kind: {}",
        attempts[0]["error_kind"]
    );
    hole.with_log(|l| {
        let mut per_count: BTreeMap<u32, usize> = BTreeMap::new();
        for c in l.per_webhook_id.values() {
            *per_count.entry(*c).or_insert(0) += 1;
        }
        println!("black hole: requests per webhook-id → how many ids: {per_count:?}");
        assert!(
            per_count.keys().all(|c| *c <= 2),
            "never more than 2 attempts with schedule [1]: {per_count:?}"
        );
        assert!(
            l.per_webhook_id.keys().all(|id| dead_ids.contains(id)),
            "every webhook-id seen by the black hole is a dead delivery"
        );
        assert!(l.requests.iter().all(|r| r.answered.is_none()));
    });

    // Recovery: the black hole answers again; requeue the whole endpoint from the DLQ.
    hole.set_behaviour(Behaviour::Ok);
    let t = Instant::now();
    let (s, out) = gp
        .call(
            &key,
            Method::POST,
            "/v1/dlq/requeue",
            Some(json!({"endpoint_id": ep_hole})),
        )
        .await
        .unwrap();
    assert_eq!(s, StatusCode::ACCEPTED, "{out}");
    assert_eq!(out["requeued"], N, "{out}");
    hole.wait_for(|l| l.succeeded_ids.len() >= N, 10 * MINUTE)
        .await
        .expect("every requeued delivery arrives");
    all_succeeded(&gp, &key, &ep_hole, N, 5 * MINUTE).await;
    let dlq = gp.list_all(&key, &dlq_path).await.unwrap();
    assert!(
        dlq.is_empty(),
        "DLQ empty after requeue: {} left",
        dlq.len()
    );
    println!(
        "phase requeue: {N} delivered {:?} after requeue",
        t.elapsed()
    );
    hole.with_log(|l| {
        let ok: HashSet<String> = l.succeeded_ids.iter().cloned().collect();
        assert_eq!(
            ok, dead_ids,
            "the requeued deliveries keep their webhook-id"
        );
        let mut attempt_headers: BTreeMap<Option<u32>, usize> = BTreeMap::new();
        for r in l.requests.iter().filter(|r| r.answered.is_some()) {
            *attempt_headers.entry(r.attempt()).or_insert(0) += 1;
        }
        println!("requeued deliveries: gatepulse-attempt values {attempt_headers:?}");
    });

    // Replay one event to the (former) black hole only: one new delivery, new webhook-id.
    let replayed = &event_ids[0];
    let (s, out) = gp
        .call(
            &key,
            Method::POST,
            "/v1/replay",
            Some(json!({"event_id": replayed, "endpoint_id": ep_hole})),
        )
        .await
        .unwrap();
    assert_eq!(s, StatusCode::ACCEPTED, "{out}");
    assert_eq!(out["deliveries"], 1, "{out}");
    assert!(
        out["replay_id"].as_str().is_some_and(|r| !r.is_empty()),
        "{out}"
    );
    hole.wait_for(|l| l.succeeded_ids.len() > N, 2 * MINUTE)
        .await
        .expect("the replayed delivery arrives");
    let fresh: Vec<_> = hole
        .requests()
        .into_iter()
        .filter(|r| r.webhook_id().is_some_and(|id| !dead_ids.contains(id)))
        .collect();
    assert_eq!(fresh.len(), 1, "exactly one replayed request");
    assert_eq!(fresh[0].event_id(), Some(replayed.as_str()));
    let fresh_id = fresh[0].webhook_id().unwrap().to_owned();
    let per_event = eventually(
        "the replay delivery is recorded as succeeded",
        MINUTE,
        Duration::from_millis(200),
        async || {
            let ds = deliveries(&gp, &key, &format!("event_id={replayed}")).await?;
            if ds
                .iter()
                .any(|d| d["id"] == fresh_id.as_str() && d["status"] == "succeeded")
            {
                Ok(ds)
            } else {
                Err(format!("{ds:?}"))
            }
        },
    )
    .await;
    assert_eq!(
        per_event.len(),
        4,
        "three original deliveries and one replay: {per_event:?}"
    );
    let replay_delivery = per_event.iter().find(|d| d["id"] == fresh_id.as_str());
    assert_eq!(
        replay_delivery.unwrap()["endpoint_id"],
        ep_hole.as_str(),
        "the replay went to the named endpoint only"
    );
    assert_eq!(healthy.unique_webhook_ids().len(), N);
    assert_eq!(flaky.unique_webhook_ids().len(), N);
    println!("total {:?}", t0.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_mid_delivery_loses_nothing() {
    kill_9_mid_delivery_loses_nothing_on(Backend::redb()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_mid_delivery_loses_nothing_on_postgres() {
    kill_9_mid_delivery_loses_nothing_on(Backend::postgres()).await;
}

async fn kill_9_mid_delivery_loses_nothing_on(backend: Backend) {
    const N: usize = 3_000;
    let dir = tempfile::tempdir().unwrap();
    let mut gp = Gp::start(dir.path(), &backend.env(ENGINE_ENV))
        .await
        .unwrap();
    let (_, key) = gp.tenant_with_key().await.unwrap();
    let rx = Receiver::start(Behaviour::Ok, None).await.unwrap();
    // The rate limit stretches delivery over several seconds so that the kill lands
    // while deliveries are still going out.
    let ep = create_endpoint(
        &gp,
        &key,
        json!({"url": rx.url(), "rate_limit_per_sec": 500}),
    )
    .await;
    subscribe(&gp, &key, &ep, &["orders.#"]).await;
    let mut all_events = HashSet::new();
    for b in 0..N / 500 {
        let events = (0..500)
            .map(|j| json!({"topic": "orders.created", "payload": {"i": b * 500 + j}}))
            .collect();
        all_events.extend(publish_batch(&gp, &key, events).await);
    }
    assert_eq!(all_events.len(), N);

    rx.wait_for(|l| l.requests.len() >= 300, 2 * MINUTE)
        .await
        .expect("deliveries start");
    gp.kill9().unwrap();
    let at_kill = rx.count();
    println!("kill -9 after the receiver saw {at_kill} of {N} deliveries");
    let t = Instant::now();
    gp.restart().await.unwrap();

    rx.wait_for(|l| l.succeeded_ids.len() >= N, 10 * MINUTE)
        .await
        .expect("every delivery arrives after the restart");
    println!("all {N} delivered {:?} after the restart", t.elapsed());
    let (requests, unique, events) = rx.with_log(|l| {
        let events: HashSet<String> = l
            .requests
            .iter()
            .filter_map(|r| r.event_id().map(str::to_owned))
            .collect();
        (l.requests.len(), l.per_webhook_id.len(), events)
    });
    assert_eq!(events, all_events, "every event reached the receiver");
    assert_eq!(unique, N, "one webhook-id per event");
    println!(
        "duplicates after kill -9: {} ({requests} requests for {unique} deliveries)",
        requests - unique
    );
    eventually(
        "no delivery left pending, in_flight or retrying",
        5 * MINUTE,
        Duration::from_millis(500),
        async || {
            let ds = deliveries(&gp, &key, &format!("endpoint_id={ep}")).await?;
            let counts = status_counts(&ds);
            let unfinished: usize = ["pending", "in_flight", "retrying"]
                .iter()
                .map(|s| counts.get(*s).copied().unwrap_or(0))
                .sum();
            if ds.len() == N && unfinished == 0 {
                Ok(())
            } else {
                Err(format!("{} deliveries, by status {counts:?}", ds.len()))
            }
        },
    )
    .await;
    all_succeeded(&gp, &key, &ep, N, MINUTE).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gone_disables_the_endpoint() {
    let dir = tempfile::tempdir().unwrap();
    let gp = Gp::start(dir.path(), ENGINE_ENV).await.unwrap();
    let (_, key) = gp.tenant_with_key().await.unwrap();
    let rx = Receiver::start(Behaviour::Status(410), None).await.unwrap();
    let ep = create_endpoint(
        &gp,
        &key,
        json!({"url": rx.url(), "retry_schedule_secs": [1, 1, 1]}),
    )
    .await;
    subscribe(&gp, &key, &ep, &["orders.*"]).await;
    publish(&gp, &key, "orders.created", &json!({"n": 1})).await;

    let endpoint = eventually(
        "410 Gone disables the endpoint",
        MINUTE,
        Duration::from_millis(200),
        async || {
            let (s, e) = gp
                .call(&key, Method::GET, &format!("/v1/endpoints/{ep}"), None)
                .await
                .map_err(|e| e.to_string())?;
            if s == StatusCode::OK && e["enabled"] == false {
                Ok(e)
            } else {
                Err(format!("{s} {e}"))
            }
        },
    )
    .await;
    assert!(
        endpoint["disabled_reason"]
            .as_str()
            .is_some_and(|r| !r.is_empty()),
        "a disabled endpoint says why: {endpoint}"
    );
    let dead = eventually(
        "the delivery answered 410 goes dead",
        MINUTE,
        Duration::from_millis(200),
        async || {
            let ds = deliveries(&gp, &key, &format!("endpoint_id={ep}")).await?;
            if ds.len() == 1 && ds[0]["status"] == "dead" {
                Ok(ds[0].clone())
            } else {
                Err(format!("{ds:?}"))
            }
        },
    )
    .await;
    let id = dead["id"].as_str().unwrap();
    let detail = get_json(&gp, &key, &format!("/v1/deliveries/{id}")).await;
    let attempts = detail["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 1, "410 is not retried: {detail}");
    assert_eq!(attempts[0]["status_code"], 410, "{detail}");
    assert_eq!(rx.count(), 1, "the receiver saw exactly one request");
    let dlq = gp
        .list_all(&key, &format!("/v1/dlq?endpoint_id={ep}"))
        .await
        .unwrap();
    assert_eq!(dlq.len(), 1, "{dlq:?}");
    assert_eq!(dlq[0]["id"], id);
    let health = get_json(&gp, &key, &format!("/v1/endpoints/{ep}/health")).await;
    assert_eq!(health["enabled"], false, "{health}");
    assert_eq!(health["last_status_code"], 410, "{health}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scopes_guard_replay_and_dlq() {
    let dir = tempfile::tempdir().unwrap();
    let gp = Gp::start(dir.path(), ENGINE_ENV).await.unwrap();
    let (tenant, key) = gp.tenant_with_key().await.unwrap();
    let rx = Receiver::start(Behaviour::Ok, None).await.unwrap();
    let ep = create_endpoint(&gp, &key, json!({"url": rx.url()})).await;
    subscribe(&gp, &key, &ep, &["orders.*"]).await;
    let event = publish(&gp, &key, "orders.created", &json!({"n": 1})).await;
    rx.wait_for(|l| !l.succeeded_ids.is_empty(), MINUTE)
        .await
        .expect("the event is delivered");
    let delivery = rx.requests()[0].webhook_id().unwrap().to_owned();

    let key_with = async |scopes: &[&str]| {
        let (s, k) = gp
            .call(
                ADMIN_TOKEN,
                Method::POST,
                &format!("/v1/tenants/{tenant}/keys"),
                Some(json!({"name": "limited", "scopes": scopes})),
            )
            .await
            .unwrap();
        assert_eq!(s, StatusCode::CREATED, "{k}");
        k["key"].as_str().unwrap().to_owned()
    };
    let basic = ["events:write", "events:read", "endpoints:manage"];
    let no_extra = key_with(&basic).await;
    let replay_only = key_with(&["replay:write"]).await;
    let dlq_only = key_with(&["dlq:manage"]).await;

    let replay = || {
        (
            Method::POST,
            "/v1/replay".to_owned(),
            Some(json!({"event_id": event})),
        )
    };
    let dlq_routes = || {
        vec![
            (Method::GET, "/v1/dlq".to_owned(), None),
            (Method::GET, format!("/v1/dlq?endpoint_id={ep}"), None),
            (
                Method::POST,
                "/v1/dlq/requeue".to_owned(),
                Some(json!({"endpoint_id": ep})),
            ),
            (
                Method::POST,
                "/v1/dlq/requeue".to_owned(),
                Some(json!({"delivery_ids": [delivery]})),
            ),
        ]
    };
    let mut forbidden = vec![(no_extra.clone(), replay()), (dlq_only.clone(), replay())];
    for r in dlq_routes() {
        forbidden.push((no_extra.clone(), r.clone()));
        forbidden.push((replay_only.clone(), r));
    }
    for (k, (method, path, body)) in forbidden {
        let (s, p) = gp.call(&k, method.clone(), &path, body).await.unwrap();
        assert_eq!(s, StatusCode::FORBIDDEN, "{method} {path}: {p}");
        assert_eq!(p["code"], "missing_scope", "{method} {path}: {p}");
    }

    // The keys that hold the scope get through.
    let (s, out) = gp
        .call(
            &replay_only,
            Method::POST,
            "/v1/replay",
            Some(json!({"event_id": event})),
        )
        .await
        .unwrap();
    assert_eq!(s, StatusCode::ACCEPTED, "{out}");
    assert_eq!(out["deliveries"], 1, "{out}");
    let (s, out) = gp
        .call(
            &dlq_only,
            Method::GET,
            &format!("/v1/dlq?endpoint_id={ep}"),
            None,
        )
        .await
        .unwrap();
    assert_eq!(s, StatusCode::OK, "{out}");
    let (s, out) = gp
        .call(
            &dlq_only,
            Method::POST,
            "/v1/dlq/requeue",
            Some(json!({"endpoint_id": ep})),
        )
        .await
        .unwrap();
    assert_eq!(s, StatusCode::ACCEPTED, "{out}");
    assert_eq!(out["requeued"], 0, "nothing is dead: {out}");

    // The refused replays created nothing: the original plus the one allowed replay.
    let ds = deliveries(&gp, &key, &format!("event_id={event}"))
        .await
        .unwrap();
    assert_eq!(ds.len(), 2, "{ds:?}");
    rx.wait_for(|l| l.succeeded_ids.len() >= 2, MINUTE)
        .await
        .expect("the allowed replay is delivered");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn circuit_breaker_opens_and_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let gp = Gp::start(
        dir.path(),
        &[
            ("GATEPULSE_DELIVERY__RETRY_JITTER", "0"),
            ("GATEPULSE_DELIVERY__CIRCUIT_FAILURE_THRESHOLD", "3"),
            ("GATEPULSE_DELIVERY__CIRCUIT_COOLDOWN_SECS", "1"),
        ],
    )
    .await
    .unwrap();
    let (_, key) = gp.tenant_with_key().await.unwrap();
    let rx = Receiver::start(Behaviour::Status(500), None).await.unwrap();
    // A long schedule so that nothing goes dead while the circuit is open.
    let schedule = vec![1u32; 20];
    let ep = create_endpoint(
        &gp,
        &key,
        json!({"url": rx.url(), "retry_schedule_secs": schedule}),
    )
    .await;
    subscribe(&gp, &key, &ep, &["orders.*"]).await;
    let health_path = format!("/v1/endpoints/{ep}/health");
    let health = get_json(&gp, &key, &health_path).await;
    assert_eq!(health["circuit"], "closed", "{health}");
    assert_eq!(health["endpoint_id"], ep.as_str(), "{health}");
    for n in 0..5 {
        publish(&gp, &key, "orders.created", &json!({"n": n})).await;
    }

    let open = eventually(
        "the circuit opens after 3 failures",
        2 * MINUTE,
        Duration::from_millis(100),
        async || {
            let (s, h) = gp
                .call(&key, Method::GET, &health_path, None)
                .await
                .map_err(|e| e.to_string())?;
            if s == StatusCode::OK && h["circuit"] == "open" {
                Ok(h)
            } else {
                Err(format!("{s} {h}"))
            }
        },
    )
    .await;
    println!("open: {open}");
    assert!(
        open["consecutive_failures"].as_u64().unwrap() >= 3,
        "{open}"
    );
    assert_eq!(open["last_status_code"], 500, "{open}");
    assert_eq!(
        open["enabled"], true,
        "an open circuit is not a disabled endpoint"
    );

    rx.set_behaviour(Behaviour::Ok);
    let closed = eventually(
        "the circuit closes once the endpoint answers 2xx",
        2 * MINUTE,
        Duration::from_millis(200),
        async || {
            let h = get_json(&gp, &key, &health_path).await;
            if h["circuit"] == "closed" {
                Ok(h)
            } else {
                Err(h.to_string())
            }
        },
    )
    .await;
    println!("closed: {closed}");
    all_succeeded(&gp, &key, &ep, 5, 2 * MINUTE).await;
    publish(&gp, &key, "orders.created", &json!({"n": "after"})).await;
    all_succeeded(&gp, &key, &ep, 6, MINUTE).await;
    rx.wait_for(|l| l.succeeded_ids.len() >= 6, MINUTE)
        .await
        .expect("every delivery arrives once the circuit closed");
    let health = get_json(&gp, &key, &health_path).await;
    assert_eq!(health["consecutive_failures"], 0, "{health}");
    assert_eq!(health["last_status_code"], 200, "{health}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_a_time_range_to_one_subscription() {
    let dir = tempfile::tempdir().unwrap();
    let gp = Gp::start(dir.path(), ENGINE_ENV).await.unwrap();
    let (_, key) = gp.tenant_with_key().await.unwrap();
    let a = Receiver::start(Behaviour::Ok, None).await.unwrap();
    let b = Receiver::start(Behaviour::Ok, None).await.unwrap();
    let ep_a = create_endpoint(&gp, &key, json!({"url": a.url()})).await;
    let ep_b = create_endpoint(&gp, &key, json!({"url": b.url()})).await;
    let sub_a = subscribe(&gp, &key, &ep_a, &["orders.*"]).await;
    subscribe(&gp, &key, &ep_b, &["orders.*"]).await;
    let mut events = HashSet::new();
    for n in 0..4 {
        events.insert(publish(&gp, &key, "orders.created", &json!({"n": n})).await);
    }
    for rx in [&a, &b] {
        rx.wait_for(|l| l.succeeded_ids.len() >= 4, MINUTE)
            .await
            .expect("first deliveries arrive");
    }
    let first_a = a.unique_webhook_ids();

    // A window in the past matches nothing.
    let (s, out) = gp
        .call(
            &key,
            Method::POST,
            "/v1/replay",
            Some(json!({"from": "2001-01-01T00:00:00Z", "to": "2001-01-02T00:00:00Z"})),
        )
        .await
        .unwrap();
    assert_eq!(s, StatusCode::ACCEPTED, "{out}");
    assert_eq!(out["deliveries"], 0, "{out}");

    // A window around everything, narrowed to subscription A.
    let (s, out) = gp
        .call(
            &key,
            Method::POST,
            "/v1/replay",
            Some(
                json!({"from": "2000-01-01T00:00:00Z", "to": "2100-01-01T00:00:00Z",
                        "subscription_id": sub_a}),
            ),
        )
        .await
        .unwrap();
    assert_eq!(s, StatusCode::ACCEPTED, "{out}");
    assert_eq!(out["deliveries"], 4, "{out}");
    a.wait_for(|l| l.succeeded_ids.len() >= 8, MINUTE)
        .await
        .expect("the replayed deliveries arrive at A");
    let replayed: Vec<_> = a
        .requests()
        .into_iter()
        .filter(|r| r.webhook_id().is_some_and(|id| !first_a.contains(id)))
        .collect();
    assert_eq!(replayed.len(), 4, "four new webhook-ids at A");
    let replayed_events: HashSet<String> = replayed
        .iter()
        .map(|r| r.event_id().unwrap().to_owned())
        .collect();
    assert_eq!(replayed_events, events);
    all_succeeded(&gp, &key, &ep_a, 8, MINUTE).await;
    let ds_b = deliveries(&gp, &key, &format!("endpoint_id={ep_b}"))
        .await
        .unwrap();
    assert_eq!(ds_b.len(), 4, "subscription B got no replay: {ds_b:?}");
}

/// The crash acceptance: `kill -9` in the middle of the healthy / flaky /
/// black-hole run, then restart. Nothing is lost (every event reaches the healthy and
/// the flaky endpoint, every black-hole delivery ends in the DLQ) and nothing is stuck
/// (no delivery left pending, in flight or retrying). Duplicates are allowed (at least
/// once) and printed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_the_three_endpoint_run_loses_nothing() {
    const N: usize = 3_000;
    let dir = tempfile::tempdir().unwrap();
    let mut gp = Gp::start(dir.path(), ENGINE_ENV).await.unwrap();
    let (_, key) = gp.tenant_with_key().await.unwrap();
    let healthy = Receiver::start(Behaviour::Ok, None).await.unwrap();
    let flaky = Receiver::start(Behaviour::FailFirst(2), None)
        .await
        .unwrap();
    let hole = Receiver::start(Behaviour::BlackHole, None).await.unwrap();
    let ep_healthy = create_endpoint(
        &gp,
        &key,
        json!({"url": healthy.url(), "rate_limit_per_sec": 1000}),
    )
    .await;
    let ep_flaky = create_endpoint(
        &gp,
        &key,
        json!({"url": flaky.url(), "retry_schedule_secs": [1, 1]}),
    )
    .await;
    let ep_hole = create_endpoint(
        &gp,
        &key,
        json!({"url": hole.url(), "timeout_ms": 300, "max_in_flight": 1000, "retry_schedule_secs": [1]}),
    )
    .await;
    for ep in [&ep_healthy, &ep_flaky, &ep_hole] {
        subscribe(&gp, &key, ep, &["orders.created"]).await;
    }
    let mut all_events = HashSet::new();
    for b in 0..N / 500 {
        let events = (0..500)
            .map(|j| json!({"topic": "orders.created", "payload": {"i": b * 500 + j}}))
            .collect();
        all_events.extend(publish_batch(&gp, &key, events).await);
    }
    assert_eq!(all_events.len(), N);

    // Kill once deliveries are well under way but far from done.
    healthy
        .wait_for(|l| l.succeeded_ids.len() >= N / 5, 2 * MINUTE)
        .await
        .unwrap();
    gp.kill9().unwrap();
    let before = healthy.count();
    println!("killed after the healthy endpoint saw {before} of {N}");
    gp.restart().await.unwrap();

    healthy
        .wait_for(|l| l.succeeded_ids.len() >= N, 5 * MINUTE)
        .await
        .unwrap();
    flaky
        .wait_for(|l| l.succeeded_ids.len() >= N, 5 * MINUTE)
        .await
        .unwrap();
    let ep = ep_hole.clone();
    let dead = eventually(
        "every black-hole delivery dead",
        5 * MINUTE,
        Duration::from_millis(300),
        async || {
            let d = gp
                .list_all(&key, &format!("/v1/dlq?endpoint_id={ep}"))
                .await
                .map_err(|e| e.to_string())?;
            if d.len() >= N {
                Ok(d)
            } else {
                Err(format!("{} dead", d.len()))
            }
        },
    )
    .await;
    assert_eq!(dead.len(), N);

    // Every event reached the healthy and the flaky endpoint.
    for rx in [&healthy, &flaky] {
        rx.with_log(|l| {
            let seen: HashSet<String> = l
                .requests
                .iter()
                .filter_map(|r| r.event_id().map(str::to_owned))
                .collect();
            assert_eq!(seen, all_events);
        });
    }
    let dups = healthy.count() - N;
    println!("healthy endpoint duplicates after kill -9: {dups}");

    // Nothing stuck.
    let all = eventually(
        "no delivery left in flight",
        2 * MINUTE,
        Duration::from_millis(300),
        async || {
            let ds = deliveries(&gp, &key, "").await?;
            let counts = status_counts(&ds);
            let open = ["pending", "in_flight", "retrying"]
                .iter()
                .map(|s| counts.get(*s).copied().unwrap_or(0))
                .sum::<usize>();
            if open == 0 {
                Ok(ds)
            } else {
                Err(format!("{counts:?}"))
            }
        },
    )
    .await;
    assert_eq!(all.len(), 3 * N);
    let counts = status_counts(&all);
    assert_eq!(counts.get("succeeded").copied(), Some(2 * N), "{counts:?}");
    assert_eq!(counts.get("dead").copied(), Some(N), "{counts:?}");
}

/// A single failed delivery, with nothing else happening on the node, is retried when
/// its retry falls due (the engine wakes the endpoint's lane for it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lone_failed_delivery_is_retried_on_schedule() {
    let dir = tempfile::tempdir().unwrap();
    let gp = Gp::start(dir.path(), ENGINE_ENV).await.unwrap();
    let (_, key) = gp.tenant_with_key().await.unwrap();
    let rx = Receiver::start(Behaviour::FailFirst(1), None)
        .await
        .unwrap();
    gp.subscribe(
        &key,
        json!({"url": rx.url(), "retry_schedule_secs": [1]}),
        &["lone.#"],
        None,
    )
    .await
    .unwrap();
    let (s, _) = gp
        .call(
            &key,
            Method::POST,
            "/v1/events",
            Some(json!({"topic": "lone.x", "payload": {}})),
        )
        .await
        .unwrap();
    assert_eq!(s, StatusCode::ACCEPTED);
    rx.wait_for(|l| !l.succeeded_ids.is_empty(), MINUTE)
        .await
        .unwrap();
    assert_eq!(rx.count(), 2, "one failure, one retry");
}

/// `since` and `until` select deliveries by their event's creation time, page by page,
/// without the client knowing how ids or cursors are made.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deliveries_list_by_event_time() {
    let dir = tempfile::tempdir().unwrap();
    let gp = Gp::start(dir.path(), &[]).await.unwrap();
    let (_, key) = gp.tenant_with_key().await.unwrap();
    let ep = create_endpoint(&gp, &key, json!({"kind": "inbox"})).await;
    subscribe(&gp, &key, &ep, &["timed.#"]).await;
    let mut created = Vec::new();
    for n in 0..4 {
        let id = publish(&gp, &key, "timed.x", &json!({"n": n})).await;
        let (_, ev) = gp
            .call(&key, Method::GET, &format!("/v1/events/{id}"), None)
            .await
            .unwrap();
        created.push(ev["created_at"].as_str().unwrap().to_owned());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let events_of = |ds: &[Value]| -> Vec<String> {
        ds.iter()
            .map(|d| d["event_id"].as_str().unwrap().to_owned())
            .collect()
    };
    let all = deliveries(&gp, &key, "").await.unwrap();
    assert_eq!(all.len(), 4);
    let enc = |t: &str| t.replace(':', "%3A").replace('+', "%2B");
    // One delivery per page, following next_cursor.
    let paged = async |query: String| -> Vec<Value> {
        let mut out = Vec::new();
        let mut cursor = String::new();
        loop {
            let (s, page) = gp
                .call(
                    &key,
                    Method::GET,
                    &format!("/v1/deliveries?limit=1&{query}{cursor}"),
                    None,
                )
                .await
                .unwrap();
            assert_eq!(s, StatusCode::OK, "{page}");
            out.extend(page["data"].as_array().unwrap().iter().cloned());
            match page["next_cursor"].as_str() {
                Some(c) => cursor = format!("&cursor={}", c.replace('\u{7f}', "%7F")),
                None => return out,
            }
        }
    };
    // From the third event on, one per page, across pages.
    let later = paged(format!("since={}", enc(&created[2]))).await;
    assert_eq!(events_of(&later), events_of(&all[2..]));
    // Before the second event; and a window holding the middle two.
    let early = deliveries(&gp, &key, &format!("until={}", enc(&created[1])))
        .await
        .unwrap();
    assert_eq!(events_of(&early), events_of(&all[..1]));
    let middle = paged(format!(
        "since={}&until={}",
        enc(&created[1]),
        enc(&created[3])
    ))
    .await;
    assert_eq!(events_of(&middle), events_of(&all[1..3]));
    let (s, v) = gp
        .call(&key, Method::GET, "/v1/deliveries?since=yesterday", None)
        .await
        .unwrap();
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    assert_eq!(v["code"], "invalid_query");
}

/// Each attempt keeps the headers it was sent with: the exact timestamp and signature
/// the receiver got, and the custom headers' names with their values redacted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attempts_show_the_headers_they_were_sent_with() {
    let dir = tempfile::tempdir().unwrap();
    let gp = Gp::start(dir.path(), &[]).await.unwrap();
    let (_, key) = gp.tenant_with_key().await.unwrap();
    let rx = Receiver::start(Behaviour::FailFirst(1), None)
        .await
        .unwrap();
    let ep = create_endpoint(
        &gp,
        &key,
        json!({"url": rx.url(), "retry_schedule_secs": [1],
               "headers": {"X-Api-Token": "do-not-store-me"}}),
    )
    .await;
    subscribe(&gp, &key, &ep, &["sent.#"]).await;
    publish(&gp, &key, "sent.x", &json!({"a": 1})).await;
    rx.wait_for(|l| l.requests.len() >= 2, Duration::from_secs(30))
        .await
        .unwrap();
    let got = rx.requests();
    let ds = deliveries(&gp, &key, &format!("endpoint_id={ep}"))
        .await
        .unwrap();
    let id = ds[0]["id"].as_str().unwrap();
    let delivery = eventually(
        "both attempts recorded",
        Duration::from_secs(10),
        Duration::from_millis(100),
        async || {
            let (_, d) = gp
                .call(&key, Method::GET, &format!("/v1/deliveries/{id}"), None)
                .await
                .map_err(|e| e.to_string())?;
            match d["attempts"].as_array().map(Vec::len) {
                Some(2) => Ok(d),
                other => Err(format!("{other:?} attempts")),
            }
        },
    )
    .await;
    for (attempt, request) in delivery["attempts"].as_array().unwrap().iter().zip(&got) {
        let headers: HashMap<String, String> = attempt["request_headers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| {
                (
                    p[0].as_str().unwrap().to_owned(),
                    p[1].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        for name in [
            "webhook-id",
            "webhook-timestamp",
            "webhook-signature",
            "gatepulse-event-id",
            "gatepulse-topic",
            "gatepulse-attempt",
        ] {
            assert_eq!(
                headers.get(name).map(String::as_str),
                request.header(name),
                "{name} of attempt {}",
                attempt["number"]
            );
        }
        assert_eq!(headers["x-api-token"], "[redacted]");
    }
    assert!(!delivery.to_string().contains("do-not-store-me"));
}

/// `max_in_flight` bounds requests to the endpoint, not the store's latency: once
/// the endpoint answered, its slot goes to the next delivery while the outcome waits
/// for its commit. On PostgreSQL a test transaction holds a lock on `attempts`, so
/// every outcome write waits; with `max_in_flight` 1 the second delivery must still
/// be sent (before the change it waited behind the first outcome's commit). Then the
/// lock goes and both outcomes land: nothing sent twice, nothing lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_outcome_write_does_not_hold_the_endpoint_slot() {
    let backend = Backend::postgres();
    let dir = tempfile::tempdir().unwrap();
    let gp = Gp::start(dir.path(), &backend.env(ENGINE_ENV))
        .await
        .unwrap();
    let (_, key) = gp.tenant_with_key().await.unwrap();
    let rx = Receiver::start(Behaviour::Ok, None).await.unwrap();
    let ep = create_endpoint(&gp, &key, json!({"url": rx.url(), "max_in_flight": 1})).await;
    subscribe(&gp, &key, &ep, &["slot.#"]).await;
    // One delivery first, so the lane knows the endpoint's settings.
    publish(&gp, &key, "slot.warm", &json!({})).await;
    all_succeeded(&gp, &key, &ep, 1, MINUTE).await;

    let (db, conn) = tokio_postgres::connect(&gatepulse_e2e::pg_url(), tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    let schema = backend.schema().unwrap();
    // SHARE ROW EXCLUSIVE conflicts with the INSERT of an outcome's attempt, with
    // nothing a publish or a claim takes.
    db.batch_execute(&format!(
        "BEGIN; LOCK TABLE {schema}.attempts IN SHARE ROW EXCLUSIVE MODE"
    ))
    .await
    .unwrap();
    publish_batch(
        &gp,
        &key,
        (0..2)
            .map(|i| json!({"topic": "slot.test", "payload": {"i": i}}))
            .collect(),
    )
    .await;
    rx.wait_for(|log| log.requests.len() >= 3, MINUTE)
        .await
        .expect("the second delivery is sent while the first outcome waits for its commit");
    let ds = deliveries(&gp, &key, &format!("endpoint_id={ep}"))
        .await
        .unwrap();
    assert_eq!(
        (status_counts(&ds).get("in_flight"), ds.len()),
        (Some(&2), 3),
        "no outcome can be recorded while attempts is locked: {ds:?}"
    );
    db.batch_execute("COMMIT").await.unwrap();
    all_succeeded(&gp, &key, &ep, 3, MINUTE).await;
    assert_eq!(rx.unique_webhook_ids().len(), 3);
    assert_eq!(rx.count(), 3, "each delivery sent once");
}

/// An endpoint's first claim, made before the engine has its settings, still leases
/// no more than its `max_in_flight` (it used to take the default, 32).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_claim_respects_the_endpoints_max_in_flight() {
    let dir = tempfile::tempdir().unwrap();
    let gp = Gp::start(dir.path(), ENGINE_ENV).await.unwrap();
    let (_, key) = gp.tenant_with_key().await.unwrap();
    let rx = Receiver::start(Behaviour::BlackHole, None).await.unwrap();
    let ep = create_endpoint(
        &gp,
        &key,
        json!({"url": rx.url(), "max_in_flight": 1, "timeout_ms": 30000}),
    )
    .await;
    subscribe(&gp, &key, &ep, &["first.#"]).await;
    publish_batch(
        &gp,
        &key,
        (0..3)
            .map(|i| json!({"topic": "first.claim", "payload": {"i": i}}))
            .collect(),
    )
    .await;
    rx.wait_for(|log| !log.requests.is_empty(), MINUTE)
        .await
        .unwrap();
    // The held request is the only one leased until it times out (30 s).
    let ds = deliveries(&gp, &key, &format!("endpoint_id={ep}"))
        .await
        .unwrap();
    let counts = status_counts(&ds);
    assert_eq!(
        (counts.get("in_flight"), counts.get("pending")),
        (Some(&1), Some(&2)),
        "{counts:?}"
    );
    assert_eq!(rx.count(), 1);
}
