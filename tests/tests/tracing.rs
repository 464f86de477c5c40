//! Tracing against the real binary on both backends: with an OTLP endpoint set,
//! `gp` exports a span per publish and per delivery attempt to it (OTLP/HTTP, JSON),
//! a publish continues the publisher's `traceparent`, each attempt is a child of its
//! publish span (retries too), and the receiver's request carries the attempt's
//! `traceparent`, so one event can be followed from publisher to receiver.
//!
//! The collector is a small HTTP server in this test that records what it is sent:
//! no OpenTelemetry collector runs on this machine.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::State;
use axum::routing::post;
use gatepulse_e2e::receiver::{Behaviour, Receiver};
use gatepulse_e2e::{Backend, Gp};
use reqwest::StatusCode;
use serde_json::{Value, json};

/// Every span the collector received, flattened, with the request's headers.
#[derive(Default)]
struct Collected {
    spans: Vec<Value>,
    service_names: Vec<String>,
    authorization: Vec<Option<String>>,
}

async fn collector() -> (String, Arc<Mutex<Collected>>) {
    let got = Arc::new(Mutex::new(Collected::default()));
    async fn traces(
        State(got): State<Arc<Mutex<Collected>>>,
        headers: axum::http::HeaderMap,
        Json(body): Json<Value>,
    ) -> StatusCode {
        let mut c = got.lock().unwrap();
        c.authorization.push(
            headers
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
        );
        for rs in body["resourceSpans"].as_array().into_iter().flatten() {
            for a in rs["resource"]["attributes"]
                .as_array()
                .into_iter()
                .flatten()
            {
                if a["key"] == "service.name" {
                    c.service_names
                        .push(a["value"]["stringValue"].as_str().unwrap().to_owned());
                }
            }
            for ss in rs["scopeSpans"].as_array().into_iter().flatten() {
                c.spans
                    .extend(ss["spans"].as_array().into_iter().flatten().cloned());
            }
        }
        StatusCode::OK
    }
    let app = axum::Router::new()
        .route("/v1/traces", post(traces))
        .with_state(got.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, got)
}

fn attribute<'a>(span: &'a Value, key: &str) -> Option<&'a Value> {
    span["attributes"]
        .as_array()?
        .iter()
        .find(|a| a["key"] == key)
        .map(|a| &a["value"])
}

fn str_attr<'a>(span: &'a Value, key: &str) -> Option<&'a str> {
    attribute(span, key).and_then(|v| v["stringValue"].as_str())
}

/// Waits until `pick` finds what it looks for among the collected spans.
async fn wait_spans<T>(got: &Mutex<Collected>, mut pick: impl FnMut(&[Value]) -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(found) = pick(&got.lock().unwrap().spans) {
            return found;
        }
        assert!(
            Instant::now() < deadline,
            "spans never arrived: {:#?}",
            got.lock().unwrap().spans
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Publishes `trace.created` with `payload` from inside the publisher's trace
/// `traceparent`; returns the 202's body.
async fn publish_in_trace(gp: &Gp, token: &str, traceparent: &str, payload: Value) -> Value {
    let resp = gp
        .http
        .post(format!("{}/v1/events", gp.base))
        .bearer_auth(token)
        .header("traceparent", traceparent)
        .json(&json!({"topic": "trace.created", "payload": payload}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::ACCEPTED);
    resp.json().await.unwrap()
}

/// (trace id, span id) of a `traceparent`.
fn ids(traceparent: &str) -> (String, String) {
    let parts: Vec<&str> = traceparent.split('-').collect();
    assert_eq!(parts.len(), 4, "{traceparent}");
    assert_eq!(parts[0], "00", "{traceparent}");
    (parts[1].to_owned(), parts[2].to_owned())
}

async fn follow_one_event(backend: Backend) {
    let (otlp, got) = collector().await;
    let dir = tempfile::tempdir().unwrap();
    let gp = Gp::start(
        dir.path(),
        &backend.env(&[
            ("GATEPULSE_TRACING__OTLP_ENDPOINT", otlp.as_str()),
            ("GATEPULSE_TRACING__SERVICE_NAME", "gp-under-test"),
            (
                "OTEL_EXPORTER_OTLP_HEADERS",
                "authorization=Bearer%20collector-token",
            ),
        ]),
    )
    .await
    .unwrap();
    let (tenant, token) = gp.tenant_with_key().await.unwrap();
    // The first attempt of each delivery fails: its retry must join the same trace.
    let rx = Receiver::start(Behaviour::FailFirst(1), None)
        .await
        .unwrap();
    gp.subscribe(
        &token,
        json!({"url": rx.url(), "retry_schedule_secs": [1]}),
        &["trace.#"],
        None,
    )
    .await
    .unwrap();

    // A publisher inside a trace of its own.
    let publisher_trace = "0af7651916cd43dd8448eb211c80319c";
    let publisher_span = "b7ad6b7169203331";
    let event = publish_in_trace(
        &gp,
        &token,
        &format!("00-{publisher_trace}-{publisher_span}-01"),
        json!({"n": 1}),
    )
    .await;
    let event_id = event["id"].as_str().unwrap().to_owned();

    rx.wait_for(|l| l.requests.len() >= 2, Duration::from_secs(30))
        .await
        .unwrap();
    let requests = rx.requests();
    let sent: Vec<(String, String)> = requests
        .iter()
        .map(|r| {
            ids(r
                .header("traceparent")
                .expect("the receiver got a traceparent"))
        })
        .collect();
    // Both attempts are in the publisher's trace, each with its own span.
    assert!(sent.iter().all(|(t, _)| t == publisher_trace), "{sent:?}");
    assert_ne!(sent[0].1, sent[1].1);

    // The publish span: a server span, child of the publisher's.
    let publish = wait_spans(&got, |spans| {
        spans
            .iter()
            .find(|s| s["name"] == "POST /v1/events")
            .cloned()
    })
    .await;
    assert_eq!(publish["traceId"], publisher_trace, "{publish}");
    assert_eq!(publish["parentSpanId"], publisher_span, "{publish}");
    assert_eq!(publish["kind"], 2, "{publish}");
    assert_eq!(
        str_attr(&publish, "gatepulse.event_id"),
        Some(event_id.as_str())
    );
    assert_eq!(
        str_attr(&publish, "gatepulse.tenant_id"),
        Some(tenant.as_str())
    );
    assert_eq!(
        attribute(&publish, "http.response.status_code").unwrap()["intValue"],
        "202"
    );

    // The attempt spans: client spans under the publish span, one per request the
    // receiver got (the span id it was sent), the failed one marked as an error.
    let attempts = wait_spans(&got, |spans| {
        let a: Vec<Value> = spans
            .iter()
            .filter(|s| s["name"] == "POST" && s["kind"] == 3)
            .cloned()
            .collect();
        (a.len() >= 2).then_some(a)
    })
    .await;
    for (i, (_, span_id)) in sent.iter().enumerate() {
        let a = attempts
            .iter()
            .find(|a| a["spanId"] == span_id.as_str())
            .unwrap_or_else(|| panic!("no span {span_id} in {attempts:#?}"));
        assert_eq!(a["traceId"], publisher_trace);
        assert_eq!(a["parentSpanId"], publish["spanId"], "{a}");
        assert_eq!(str_attr(a, "gatepulse.event_id"), Some(event_id.as_str()));
        assert!(
            str_attr(a, "gatepulse.delivery_id").is_some_and(|d| d.starts_with("dlv_")),
            "{a}"
        );
        assert_eq!(str_attr(a, "server.address"), Some("127.0.0.1"));
        assert_eq!(
            attribute(a, "gatepulse.attempt").unwrap()["intValue"],
            (i + 1).to_string()
        );
        let code = &attribute(a, "http.response.status_code").unwrap()["intValue"];
        if i == 0 {
            assert_eq!(code, "500");
            assert_eq!(a["status"]["code"], 2, "{a}");
        } else {
            assert_eq!(code, "200");
            assert_eq!(a["status"]["code"], 1, "{a}");
        }
        // Never the URL (it may hold a token).
        assert!(!a.to_string().contains(rx.url()), "{a}");
    }

    // A publish without a traceparent starts a trace that reaches the receiver too.
    let before = rx.count();
    gp.publish(&token, "trace.created", &json!({"n": 2}))
        .await
        .unwrap();
    rx.wait_for(|l| l.requests.len() >= before + 2, Duration::from_secs(30))
        .await
        .unwrap();
    let (trace, _) = ids(rx.requests()[before].header("traceparent").unwrap());
    assert_ne!(trace, publisher_trace);
    let root = wait_spans(&got, |spans| {
        spans
            .iter()
            .find(|s| s["name"] == "POST /v1/events" && s["traceId"] == trace.as_str())
            .cloned()
    })
    .await;
    assert!(root.get("parentSpanId").is_none(), "{root}");

    let c = got.lock().unwrap();
    assert!(c.service_names.iter().all(|s| s == "gp-under-test"));
    assert!(
        c.authorization
            .iter()
            .all(|a| a.as_deref() == Some("Bearer collector-token")),
        "{:?}",
        c.authorization
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_event_can_be_followed_from_publisher_to_receiver() {
    follow_one_event(Backend::redb()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_event_can_be_followed_from_publisher_to_receiver_on_postgres() {
    follow_one_event(Backend::postgres()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_an_endpoint_nothing_is_traced_or_sent() {
    let dir = tempfile::tempdir().unwrap();
    let gp = Gp::start(dir.path(), &[]).await.unwrap();
    let (_, token) = gp.tenant_with_key().await.unwrap();
    let rx = Receiver::start(Behaviour::Ok, None).await.unwrap();
    gp.subscribe(&token, json!({"url": rx.url()}), &["trace.#"], None)
        .await
        .unwrap();
    publish_in_trace(
        &gp,
        &token,
        "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        json!({}),
    )
    .await;
    rx.wait_for(|l| !l.requests.is_empty(), Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(rx.requests()[0].header("traceparent"), None);
}
