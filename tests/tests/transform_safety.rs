//! A transform is a privacy control: no path may send a payload without the transform
//! its subscription applies. Deliveries of a deleted subscription (or endpoint) are
//! cancelled and recorded as such, never sent raw.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use gatepulse_e2e::Gp;
use gatepulse_e2e::receiver::{Behaviour, Receiver};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const EVENTS: usize = 100;

/// Every delivery of the endpoint once none is queued or in flight any more.
async fn settled_deliveries(gp: &Gp, key: &str, endpoint: &str) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let all = gp
            .list_all(key, &format!("/v1/deliveries?endpoint_id={endpoint}"))
            .await
            .unwrap();
        let open = all
            .iter()
            .filter(|d| {
                matches!(
                    d["status"].as_str(),
                    Some("pending" | "in_flight" | "retrying")
                )
            })
            .count();
        if all.len() == EVENTS && open == 0 {
            return all;
        }
        assert!(
            Instant::now() < deadline,
            "{open} of {} deliveries still open",
            all.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_subscription_cancels_its_queued_deliveries_instead_of_sending_them_raw() {
    let dir = tempfile::tempdir().unwrap();
    let gp = Gp::start(dir.path(), &[]).await.unwrap();
    let (_, key) = gp.tenant_with_key().await.unwrap();
    let rx = Receiver::start(Behaviour::Ok, None).await.unwrap();
    // A slow endpoint: one request at a time, 20 a second, so most of the 100 events
    // are still queued when the subscription goes.
    let (ep, sub) = gp
        .subscribe(
            &key,
            json!({"url": rx.url(), "max_in_flight": 1, "rate_limit_per_sec": 20}),
            &["people.#"],
            Some(json!({"transform": {"mapping": {"version": 1, "ops": [
                {"op": "remove", "paths": ["payload.ssn"]}
            ]}}})),
        )
        .await
        .unwrap();
    let (ep, sub) = (ep["id"].as_str().unwrap(), sub["id"].as_str().unwrap());
    for n in 0..EVENTS {
        gp.publish(
            &key,
            "people.created",
            &json!({"n": n, "ssn": "078-05-1120"}),
        )
        .await
        .unwrap();
    }
    rx.wait_for(|log| log.requests.len() >= 2, Duration::from_secs(30))
        .await
        .unwrap();
    let (s, _) = gp
        .call(
            &key,
            Method::DELETE,
            &format!("/v1/subscriptions/{sub}"),
            None,
        )
        .await
        .unwrap();
    assert_eq!(s, StatusCode::NO_CONTENT);

    let deliveries = settled_deliveries(&gp, &key, ep).await;
    for r in rx.requests() {
        let body = String::from_utf8_lossy(&r.body);
        assert!(!body.contains("ssn"), "sent without its transform: {body}");
    }
    let cancelled: Vec<&Value> = deliveries
        .iter()
        .filter(|d| d["status"] == "cancelled")
        .collect();
    let succeeded = deliveries
        .iter()
        .filter(|d| d["status"] == "succeeded")
        .count();
    assert_eq!(
        cancelled.len() + succeeded,
        EVENTS,
        "every delivery is either sent transformed or cancelled: {deliveries:?}"
    );
    assert!(
        cancelled.len() >= EVENTS / 2,
        "most were still queued: {} cancelled",
        cancelled.len()
    );
    assert_eq!(rx.count(), succeeded, "a cancelled delivery sends nothing");
    // The cancellation is recorded on the delivery's attempt, with its reason.
    let id = cancelled[0]["id"].as_str().unwrap();
    let (_, d) = gp
        .call(&key, Method::GET, &format!("/v1/deliveries/{id}"), None)
        .await
        .unwrap();
    let attempts = d["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 1, "{d}");
    assert_eq!(attempts[0]["error_kind"], "subscription_deleted", "{d}");
    assert!(attempts[0]["status_code"].is_null(), "{d}");
    // Cancelled deliveries are final: they are not in the DLQ and not queued.
    let dlq = gp
        .list_all(&key, &format!("/v1/dlq?endpoint_id={ep}"))
        .await
        .unwrap();
    assert!(dlq.is_empty(), "{dlq:?}");
    let (_, stats) = gp.call(&key, Method::GET, "/v1/stats", None).await.unwrap();
    assert_eq!(stats["queue_depth"], 0, "{stats}");
    assert_eq!(stats["in_flight"], 0, "{stats}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_an_endpoint_cancels_what_it_still_had_queued() {
    let dir = tempfile::tempdir().unwrap();
    let gp = Gp::start(dir.path(), &[]).await.unwrap();
    let (_, key) = gp.tenant_with_key().await.unwrap();
    // A receiver that never answers: every delivery stays queued behind it.
    let rx = Receiver::start(Behaviour::BlackHole, None).await.unwrap();
    let (ep, _) = gp
        .subscribe(
            &key,
            json!({"url": rx.url(), "max_in_flight": 1, "timeout_ms": 2000}),
            &["people.#"],
            None,
        )
        .await
        .unwrap();
    let ep = ep["id"].as_str().unwrap();
    for n in 0..EVENTS {
        gp.publish(&key, "people.created", &json!({"n": n}))
            .await
            .unwrap();
    }
    rx.wait_for(|log| !log.requests.is_empty(), Duration::from_secs(30))
        .await
        .unwrap();
    let (s, _) = gp
        .call(&key, Method::DELETE, &format!("/v1/endpoints/{ep}"), None)
        .await
        .unwrap();
    assert_eq!(s, StatusCode::NO_CONTENT);
    // The one held by the black hole times out and is cancelled at its retry; the
    // others are cancelled as soon as the engine sees the endpoint gone.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let all = gp
            .list_all(&key, &format!("/v1/deliveries?endpoint_id={ep}"))
            .await
            .unwrap();
        let cancelled = all.iter().filter(|d| d["status"] == "cancelled").count();
        if cancelled == EVENTS {
            break;
        }
        assert!(Instant::now() < deadline, "{cancelled} cancelled: {all:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(rx.count(), 1, "nothing more was sent to a deleted endpoint");
}
