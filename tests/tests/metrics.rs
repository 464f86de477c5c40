//! `/metrics` carries no per-endpoint or per-tenant labels: ids as labels are
//! unbounded series, and they would list every endpoint to anyone who can scrape.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use gatepulse_e2e::Gp;
use gatepulse_e2e::receiver::{Behaviour, Receiver};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_circuits_by_state_without_naming_endpoints() {
    let dir = tempfile::tempdir().unwrap();
    let gp = Gp::start(dir.path(), &[]).await.unwrap();
    let (_, key) = gp.tenant_with_key().await.unwrap();
    let ok = Receiver::start(Behaviour::Ok, None).await.unwrap();
    let failing = Receiver::start(Behaviour::Status(500), None).await.unwrap();
    for rx in [&ok, &failing] {
        gp.subscribe(&key, json!({"url": rx.url()}), &["m.#"], None)
            .await
            .unwrap();
    }
    gp.publish(&key, "m.x", &json!({})).await.unwrap();
    for rx in [&ok, &failing] {
        rx.wait_for(|log| !log.requests.is_empty(), Duration::from_secs(30))
            .await
            .unwrap();
    }
    // The engine has seen both endpoints: the gauge counts them.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let text = loop {
        let text = gp
            .http
            .get(format!("{}/metrics", gp.base))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        if text.contains("gatepulse_endpoint_circuits{state=\"closed\"} 2") {
            break text;
        }
        assert!(std::time::Instant::now() < deadline, "{text}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    for id_prefix in ["ep_", "ten_", "sub_", "evt_", "dlv_"] {
        assert!(
            !text.contains(id_prefix),
            "/metrics names a resource ({id_prefix}…):\n{text}"
        );
    }
}
