//! API tests: the real server (`gatepulse::run`) on 127.0.0.1:0 with a temp data dir,
//! driven over HTTP.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{ADMIN, TestServer};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const ALL: &[&str] = &[
    "events:write",
    "events:read",
    "endpoints:manage",
    "replay:write",
    "dlq:manage",
    "audit:read",
];

async fn endpoint_and_subscription(s: &TestServer, key: &str, topics: &[&str]) -> (String, String) {
    let (st, ep) = s
        .call(
            key,
            Method::POST,
            "/v1/endpoints",
            Some(json!({"url": "https://example.com/hook"})),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{ep}");
    let ep_id = ep["id"].as_str().unwrap().to_owned();
    let (st, sub) = s
        .call(
            key,
            Method::POST,
            "/v1/subscriptions",
            Some(json!({"endpoint_id": ep_id, "topics": topics})),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{sub}");
    (ep_id, sub["id"].as_str().unwrap().to_owned())
}

#[tokio::test]
async fn publish_creates_one_pending_delivery_per_matching_subscription() {
    let s = TestServer::start().await;
    let (_, key) = s.tenant_with_key(ALL).await;
    let (ep, sub) = endpoint_and_subscription(&s, &key, &["orders.*"]).await;
    let (_, sub2) = endpoint_and_subscription(&s, &key, &["orders.#", "orders.created"]).await;
    endpoint_and_subscription(&s, &key, &["billing.#"]).await;

    let (st, out) = s
        .call(
            key.as_str(),
            Method::POST,
            "/v1/events",
            Some(json!({"topic": "orders.created", "payload": {"amount": 120}})),
        )
        .await;
    assert_eq!(st, StatusCode::ACCEPTED, "{out}");
    // After the tenant's audit records: its creation, its key, 3 endpoints and 3
    // subscriptions.
    assert_eq!(out["cursor"], 9);
    assert_eq!(out["deduped"], false);
    let id = out["id"].as_str().unwrap();

    let (st, ev) = s
        .call(&key, Method::GET, &format!("/v1/events/{id}"), None)
        .await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(ev["payload"], json!({"amount": 120}));
    let deliveries = ev["deliveries"].as_array().unwrap();
    assert_eq!(deliveries.len(), 2, "{ev}");
    let mut subs: Vec<&str> = deliveries
        .iter()
        .map(|d| d["subscription_id"].as_str().unwrap())
        .collect();
    subs.sort_unstable();
    let mut expected = vec![sub.as_str(), sub2.as_str()];
    expected.sort_unstable();
    assert_eq!(subs, expected);
    // Queued for the dispatcher (example.com is unreachable from tests, so they never
    // succeed here).
    assert!(
        deliveries
            .iter()
            .all(|d| ["pending", "in_flight", "retrying"].contains(&d["status"].as_str().unwrap())),
        "{deliveries:?}"
    );

    // Disabling the endpoint stops new deliveries to it.
    let (st, _) = s
        .call(
            &key,
            Method::PATCH,
            &format!("/v1/endpoints/{ep}"),
            Some(json!({"enabled": false})),
        )
        .await;
    assert_eq!(st, StatusCode::OK);
    let (_, out) = s
        .call(
            &key,
            Method::POST,
            "/v1/events",
            Some(json!({"topic": "orders.created", "payload": {}})),
        )
        .await;
    let (_, ev) = s
        .call(
            &key,
            Method::GET,
            &format!("/v1/events/{}", out["id"].as_str().unwrap()),
            None,
        )
        .await;
    assert_eq!(ev["deliveries"].as_array().unwrap().len(), 1);
    assert!(out["cursor"].as_u64().unwrap() >= 2);
    s.shutdown().await;
}

#[tokio::test]
async fn idempotency_key_from_header_or_body_returns_the_original() {
    let s = TestServer::start().await;
    let (_, key) = s.tenant_with_key(&["events:write"]).await;
    let body = json!({"topic": "a.b", "payload": {"n": 1}});
    let (_, first) = s
        .call_with(
            &key,
            Method::POST,
            "/v1/events",
            Some(body.clone()),
            &[("Idempotency-Key", "k-1")],
        )
        .await;
    let (_, second) = s
        .call(
            &key,
            Method::POST,
            "/v1/events",
            Some(json!({"topic": "a.b", "payload": {"n": 2}, "idempotency_key": "k-1"})),
        )
        .await;
    assert_eq!(first["deduped"], false);
    assert_eq!(second["deduped"], true);
    assert_eq!(first["id"], second["id"]);
    assert_eq!(first["cursor"], second["cursor"]);
    let (st, err) = s
        .call_with(
            &key,
            Method::POST,
            "/v1/events",
            Some(json!({"topic": "a.b", "payload": {}, "idempotency_key": "x"})),
            &[("Idempotency-Key", "y")],
        )
        .await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(err["field"], "idempotency_key");
    s.shutdown().await;
}

#[tokio::test]
async fn batch_publish_answers_per_item_and_keeps_order() {
    let s = TestServer::start().await;
    let (_, key) = s.tenant_with_key(&["events:write", "events:read"]).await;
    let (st, out) = s
        .call(
            &key,
            Method::POST,
            "/v1/events/batch",
            Some(json!({"events": [
                {"topic": "a.one", "payload": {"i": 1}},
                {"topic": "", "payload": {}},
                {"topic": "a.two", "payload": [1, 2]},
                {"topic": "a.three", "payload": {"i": 3}, "idempotency_key": "b"},
                {"topic": "a.four", "payload": {"i": 4}, "idempotency_key": "b"},
                "not an object"
            ]})),
        )
        .await;
    assert_eq!(st, StatusCode::ACCEPTED, "{out}");
    let data = out["data"].as_array().unwrap();
    assert_eq!(data.len(), 6);
    let first = data[0]["cursor"].as_u64().unwrap();
    assert_eq!(data[1]["error"]["code"], "invalid_topic");
    assert_eq!(data[2]["error"]["code"], "invalid_payload");
    assert_eq!(data[3]["cursor"], first + 1);
    assert_eq!(data[4]["deduped"], true);
    assert_eq!(data[4]["id"], data[3]["id"]);
    assert_eq!(data[5]["error"]["code"], "invalid_body");
    let (_, list) = s.call(&key, Method::GET, "/v1/events", None).await;
    assert_eq!(list["data"].as_array().unwrap().len(), 2);
    s.shutdown().await;
}

#[tokio::test]
async fn scopes_and_tokens_are_enforced() {
    let s = TestServer::start().await;
    let (tid, writer) = s.tenant_with_key(&["events:write"]).await;
    let (st, p) = s.call(&writer, Method::GET, "/v1/events", None).await;
    assert_eq!(st, StatusCode::FORBIDDEN);
    assert_eq!(p["code"], "missing_scope");
    assert_eq!(p["scope"], "events:read");
    let (st, _) = s
        .call(
            &writer,
            Method::POST,
            "/v1/endpoints",
            Some(json!({"url": "https://example.com"})),
        )
        .await;
    assert_eq!(st, StatusCode::FORBIDDEN);
    let (st, p) = s
        .call(
            &writer,
            Method::POST,
            "/v1/tenants",
            Some(json!({"name": "x"})),
        )
        .await;
    assert_eq!(
        (st, p["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("admin_only"))
    );

    let (st, p) = s.call("gpk_nope", Method::GET, "/v1/events", None).await;
    assert_eq!(
        (st, p["code"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("invalid_token"))
    );
    let (st, p) = s.call("", Method::GET, "/v1/events", None).await;
    assert_eq!(
        (st, p["code"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("missing_token"))
    );

    // The admin token needs a tenant to act in, and then may do anything there.
    let (st, p) = s.call(ADMIN, Method::GET, "/v1/events", None).await;
    assert_eq!(
        (st, p["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("tenant_required"))
    );
    let (st, _) = s
        .call_with(
            ADMIN,
            Method::GET,
            "/v1/events",
            None,
            &[("GatePulse-Tenant", &tid)],
        )
        .await;
    assert_eq!(st, StatusCode::OK);
    let (st, p) = s
        .call_with(
            ADMIN,
            Method::GET,
            "/v1/events",
            None,
            &[("GatePulse-Tenant", "ten_01M8BND5M3ZT198Q37TDKBEH7S")],
        )
        .await;
    assert_eq!(
        (st, p["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("unknown_tenant"))
    );

    // A revoked key stops working at once.
    let (_, keys) = s
        .call(ADMIN, Method::GET, &format!("/v1/tenants/{tid}/keys"), None)
        .await;
    let kid = keys["data"][0]["id"].as_str().unwrap();
    let (st, _) = s
        .call(
            ADMIN,
            Method::DELETE,
            &format!("/v1/tenants/{tid}/keys/{kid}"),
            None,
        )
        .await;
    assert_eq!(st, StatusCode::NO_CONTENT);
    let (st, _) = s
        .call(
            &writer,
            Method::POST,
            "/v1/events",
            Some(json!({"topic": "a", "payload": {}})),
        )
        .await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);
    let (_, keys) = s
        .call(ADMIN, Method::GET, &format!("/v1/tenants/{tid}/keys"), None)
        .await;
    assert!(keys["data"][0]["revoked_at"].is_string());
    assert!(
        keys["data"][0].get("key").is_none(),
        "secrets are never listed"
    );
    s.shutdown().await;
}

#[tokio::test]
async fn another_tenants_ids_answer_404() {
    let s = TestServer::start().await;
    let (_, a) = s.tenant_with_key(ALL).await;
    let (_, b) = s.tenant_with_key(ALL).await;
    let (ep, sub) = endpoint_and_subscription(&s, &a, &["x.#"]).await;
    let (_, ev) = s
        .call(
            &a,
            Method::POST,
            "/v1/events",
            Some(json!({"topic": "x.y", "payload": {}})),
        )
        .await;
    let evt = ev["id"].as_str().unwrap();
    let (_, full) = s
        .call(&a, Method::GET, &format!("/v1/events/{evt}"), None)
        .await;
    let dlv = full["deliveries"][0]["id"].as_str().unwrap();
    for path in [
        format!("/v1/endpoints/{ep}"),
        format!("/v1/endpoints/{ep}/secret"),
        format!("/v1/subscriptions/{sub}"),
        format!("/v1/events/{evt}"),
        format!("/v1/deliveries/{dlv}"),
    ] {
        let (st, p) = s.call(&b, Method::GET, &path, None).await;
        assert_eq!(st, StatusCode::NOT_FOUND, "{path}: {p}");
        assert_eq!(p["code"], "not_found");
        let (st, _) = s.call(&a, Method::GET, &path, None).await;
        assert_eq!(st, StatusCode::OK, "{path}");
    }
    let (st, _) = s
        .call(&b, Method::DELETE, &format!("/v1/endpoints/{ep}"), None)
        .await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    let (st, p) = s
        .call(
            &b,
            Method::POST,
            "/v1/subscriptions",
            Some(json!({"endpoint_id": ep, "topics": ["x"]})),
        )
        .await;
    assert_eq!(
        (st, p["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("unknown_reference"))
    );
    let (_, list) = s.call(&b, Method::GET, "/v1/events", None).await;
    assert!(list["data"].as_array().unwrap().is_empty());
    s.shutdown().await;
}

#[tokio::test]
async fn malformed_input_gets_a_problem_document_never_a_5xx() {
    let s = TestServer::start_with(|c| {
        c.api.max_body_bytes = 4096;
        c.api.max_payload_bytes = 1024;
    })
    .await;
    let (_, key) = s.tenant_with_key(ALL).await;
    let big_payload = json!({"topic": "a", "payload": {"x": "y".repeat(2000)}});
    let huge_body = format!(
        r#"{{"topic":"a","payload":{{"x":"{}"}}}}"#,
        "y".repeat(10_000)
    );
    // (method, path, content-type, body, status, code)
    let cases: Vec<(Method, &str, &str, String, u16, &str)> = vec![
        (
            Method::POST,
            "/v1/events",
            "application/json",
            "{".into(),
            400,
            "invalid_json",
        ),
        (
            Method::POST,
            "/v1/events",
            "application/json",
            "[]".into(),
            422,
            "invalid_body",
        ),
        (
            Method::POST,
            "/v1/events",
            "application/json",
            r#"{"topic": 5, "payload": {}}"#.into(),
            422,
            "invalid_body",
        ),
        (
            Method::POST,
            "/v1/events",
            "application/json",
            r#"{"topic": "a"}"#.into(),
            422,
            "invalid_body",
        ),
        (
            Method::POST,
            "/v1/events",
            "application/json",
            r#"{"topic": "a", "payload": {}, "extra": 1}"#.into(),
            422,
            "invalid_body",
        ),
        (
            Method::POST,
            "/v1/events",
            "application/json",
            r#"{"topic": "a b", "payload": {}}"#.into(),
            422,
            "invalid_topic",
        ),
        (
            Method::POST,
            "/v1/events",
            "application/json",
            r#"{"topic": "a", "payload": "str"}"#.into(),
            422,
            "invalid_payload",
        ),
        (
            Method::POST,
            "/v1/events",
            "application/json",
            big_payload.to_string(),
            413,
            "payload_too_large",
        ),
        (
            Method::POST,
            "/v1/events",
            "application/json",
            huge_body,
            413,
            "body_too_large",
        ),
        (
            Method::POST,
            "/v1/events",
            "text/plain",
            "{}".into(),
            415,
            "unsupported_media_type",
        ),
        (
            Method::POST,
            "/v1/events/batch",
            "application/json",
            r#"{"events": []}"#.into(),
            422,
            "invalid_field",
        ),
        (
            Method::GET,
            "/v1/events?limit=0",
            "",
            String::new(),
            400,
            "invalid_query",
        ),
        (
            Method::GET,
            "/v1/events?limit=abc",
            "",
            String::new(),
            400,
            "invalid_query",
        ),
        (
            Method::GET,
            "/v1/events?cursor=zzz",
            "",
            String::new(),
            400,
            "invalid_query",
        ),
        (
            Method::GET,
            "/v1/events?topic=a..b",
            "",
            String::new(),
            400,
            "invalid_query",
        ),
        (
            Method::GET,
            "/v1/events/evt_nope",
            "",
            String::new(),
            404,
            "not_found",
        ),
        (
            Method::GET,
            "/v1/events/evt_01M8BND780RDA7YJFKH94BSM1W",
            "",
            String::new(),
            404,
            "not_found",
        ),
        (
            Method::GET,
            "/v1/deliveries?status=lost",
            "",
            String::new(),
            400,
            "invalid_query",
        ),
        (
            Method::GET,
            "/v1/nowhere",
            "",
            String::new(),
            404,
            "route_not_found",
        ),
        (
            Method::DELETE,
            "/v1/events",
            "",
            String::new(),
            405,
            "method_not_allowed",
        ),
        (
            Method::POST,
            "/v1/endpoints",
            "application/json",
            r#"{"url": "ftp://x"}"#.into(),
            422,
            "invalid_url",
        ),
        (
            Method::POST,
            "/v1/endpoints",
            "application/json",
            r#"{"url": "http://10.0.0.1/"}"#.into(),
            422,
            "destination_not_allowed",
        ),
        (
            Method::POST,
            "/v1/endpoints",
            "application/json",
            r#"{}"#.into(),
            422,
            "invalid_field",
        ),
        (
            Method::POST,
            "/v1/endpoints",
            "application/json",
            r#"{"url": "https://e.com", "secret": "nope"}"#.into(),
            422,
            "invalid_field",
        ),
        (
            Method::POST,
            "/v1/endpoints",
            "application/json",
            r#"{"url": "https://e.com", "headers": {"webhook-id": "x"}}"#.into(),
            422,
            "invalid_field",
        ),
        (
            Method::POST,
            "/v1/endpoints",
            "application/json",
            r#"{"url": "https://e.com", "timeout_ms": 0}"#.into(),
            422,
            "invalid_field",
        ),
        (
            Method::POST,
            "/v1/endpoints",
            "application/json",
            r#"{"url": "https://e.com", "kind": "smtp"}"#.into(),
            422,
            "invalid_body",
        ),
        (
            Method::POST,
            "/v1/subscriptions",
            "application/json",
            r#"{"endpoint_id": "ep_x", "topics": ["a"]}"#.into(),
            422,
            "unknown_reference",
        ),
        (
            Method::PATCH,
            "/v1/endpoints/ep_nope",
            "application/json",
            r#"{"enabled": true}"#.into(),
            404,
            "not_found",
        ),
        (
            Method::POST,
            "/v1/tenants",
            "application/json",
            r#"{"name": ""}"#.into(),
            403,
            "admin_only",
        ),
    ];
    for (method, path, ctype, body, status, code) in cases {
        let mut req = s
            .http
            .request(method.clone(), format!("{}{path}", s.base))
            .bearer_auth(&key);
        if !ctype.is_empty() {
            req = req.header("content-type", ctype);
        }
        if !body.is_empty() {
            req = req.body(body);
        }
        let resp = req.send().await.unwrap();
        let got = resp.status().as_u16();
        let ctype_out = resp
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_owned());
        let doc: Value = resp.json().await.unwrap();
        assert_eq!(
            (got, doc["code"].as_str().unwrap_or("")),
            (status, code),
            "{method} {path}: {doc}"
        );
        assert_eq!(
            ctype_out.as_deref(),
            Some("application/problem+json"),
            "{method} {path}"
        );
        assert_eq!(doc["status"], status);
        assert!(doc["type"].as_str().unwrap().ends_with(code));
    }
    // Nothing refused was stored.
    let (_, list) = s.call(&key, Method::GET, "/v1/events", None).await;
    assert!(list["data"].as_array().unwrap().is_empty());
    s.shutdown().await;
}

#[tokio::test]
async fn endpoint_secrets_are_revealed_and_rotated() {
    let s = TestServer::start().await;
    let (_, key) = s.tenant_with_key(&["endpoints:manage"]).await;
    let mine = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let (st, ep) = s
        .call(
            &key,
            Method::POST,
            "/v1/endpoints",
            Some(json!({"url": "https://e.com/h", "secret": mine, "headers": {"X-Team": "core"}})),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{ep}");
    assert!(
        ep.get("secret").is_none(),
        "created endpoint must not echo its secret"
    );
    assert_eq!(ep["headers"]["X-Team"], "core");
    let id = ep["id"].as_str().unwrap();
    let (_, sec) = s
        .call(
            &key,
            Method::GET,
            &format!("/v1/endpoints/{id}/secret"),
            None,
        )
        .await;
    assert_eq!(sec["secret"], mine);
    let (st, rotated) = s
        .call(
            &key,
            Method::POST,
            &format!("/v1/endpoints/{id}/secret/rotate"),
            None,
        )
        .await;
    assert_eq!(st, StatusCode::OK);
    let new = rotated["secret"].as_str().unwrap();
    assert!(new.starts_with("whsec_") && new != mine);
    let (_, sec) = s
        .call(
            &key,
            Method::GET,
            &format!("/v1/endpoints/{id}/secret"),
            None,
        )
        .await;
    assert_eq!(sec["secret"], new);
    // Generated secrets are valid Standard Webhooks secrets.
    let (_, ep2) = s
        .call(
            &key,
            Method::POST,
            "/v1/endpoints",
            Some(json!({"kind": "inbox"})),
        )
        .await;
    let (_, sec2) = s
        .call(
            &key,
            Method::GET,
            &format!("/v1/endpoints/{}/secret", ep2["id"].as_str().unwrap()),
            None,
        )
        .await;
    assert!(sec2["secret"].as_str().unwrap().starts_with("whsec_"));
    // PATCH with null clears an optional setting.
    let (_, p) = s
        .call(
            &key,
            Method::PATCH,
            &format!("/v1/endpoints/{id}"),
            Some(json!({"timeout_ms": 5000})),
        )
        .await;
    assert_eq!(p["timeout_ms"], 5000);
    let (_, p) = s
        .call(
            &key,
            Method::PATCH,
            &format!("/v1/endpoints/{id}"),
            Some(json!({"timeout_ms": null})),
        )
        .await;
    assert_eq!(p["timeout_ms"], Value::Null);
    s.shutdown().await;
}

#[tokio::test]
async fn lists_paginate_with_opaque_cursors() {
    let s = TestServer::start().await;
    let (_, key) = s.tenant_with_key(ALL).await;
    for _ in 0..5 {
        s.call(
            &key,
            Method::POST,
            "/v1/endpoints",
            Some(json!({"url": "https://e.com"})),
        )
        .await;
    }
    let (_, p1) = s
        .call(&key, Method::GET, "/v1/endpoints?limit=2", None)
        .await;
    assert_eq!(p1["data"].as_array().unwrap().len(), 2);
    let c = p1["next_cursor"].as_str().unwrap();
    let (_, p2) = s
        .call(
            &key,
            Method::GET,
            &format!("/v1/endpoints?limit=2&cursor={c}"),
            None,
        )
        .await;
    let c = p2["next_cursor"].as_str().unwrap();
    let (_, p3) = s
        .call(
            &key,
            Method::GET,
            &format!("/v1/endpoints?limit=2&cursor={c}"),
            None,
        )
        .await;
    assert_eq!(p3["data"].as_array().unwrap().len(), 1);
    assert_eq!(p3["next_cursor"], Value::Null);
    let mut ids: Vec<&str> = [&p1, &p2, &p3]
        .iter()
        .flat_map(|p| {
            p["data"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["id"].as_str().unwrap())
        })
        .collect();
    ids.dedup();
    assert_eq!(ids.len(), 5);

    let mut published = Vec::new();
    for i in 0..5 {
        let (_, out) = s
            .call(
                &key,
                Method::POST,
                "/v1/events",
                Some(json!({"topic": format!("t.{}", i % 2), "payload": {}})),
            )
            .await;
        published.push(out["cursor"].as_u64().unwrap());
    }
    let (_, evs) = s
        .call(&key, Method::GET, "/v1/events?topic=t.1", None)
        .await;
    let cursors: Vec<u64> = evs["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["cursor"].as_u64().unwrap())
        .collect();
    assert_eq!(cursors, vec![published[1], published[3]]);
    let (_, evs) = s
        .call(
            &key,
            Method::GET,
            &format!("/v1/events?after_cursor={}", published[2]),
            None,
        )
        .await;
    assert_eq!(evs["data"].as_array().unwrap().len(), 2);
    s.shutdown().await;
}

#[tokio::test]
async fn operational_routes_answer() {
    let s = TestServer::start().await;
    let r = s
        .http
        .get(format!("{}/healthz", s.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let (_, key) = s.tenant_with_key(&["events:write"]).await;
    s.call(
        &key,
        Method::POST,
        "/v1/events",
        Some(json!({"topic": "a", "payload": {}})),
    )
    .await;
    let text = s
        .http
        .get(format!("{}/metrics", s.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    use gatepulse::telemetry as t;
    for name in [
        t::HTTP_REQUESTS_TOTAL,
        t::EVENTS_ACCEPTED_TOTAL,
        t::EVENTS_DEDUPED_TOTAL,
        t::STORE_COMMIT_BATCH_SIZE,
        t::DELIVERY_ATTEMPTS_TOTAL,
    ] {
        assert!(text.contains(name), "{name} missing from /metrics");
    }
    assert!(
        text.contains(r#"route="/v1/events""#),
        "routes are labelled by pattern"
    );
    let doc: Value = s
        .http
        .get(format!("{}/openapi.json", s.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(doc["paths"]["/v1/events"]["post"].is_object());
    s.shutdown().await;
}

#[tokio::test]
async fn a_full_queue_refuses_publishes_with_retry_after_and_stores_nothing() {
    let s = TestServer::start_with(|c| {
        c.api.max_queue_depth_per_tenant = 2;
        c.api.overload_status = 503;
        c.api.overload_retry_after_secs = 7;
    })
    .await;
    let (_, key) = s.tenant_with_key(ALL).await;
    // example.com cannot be reached from tests: deliveries stay queued (pending, in
    // flight or retrying all count), so the queue only fills.
    let (st, ep) = s
        .call(
            &key,
            Method::POST,
            "/v1/endpoints",
            Some(json!({"url": "https://example.com/h"})),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED);
    let (st, _) = s
        .call(
            &key,
            Method::POST,
            "/v1/subscriptions",
            Some(json!({"endpoint_id": ep["id"], "topics": ["q.#"]})),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED);
    let mut last_cursor = 0;
    for _ in 0..2 {
        let (st, out) = s
            .call(
                &key,
                Method::POST,
                "/v1/events",
                Some(json!({"topic": "q.a", "payload": {}})),
            )
            .await;
        assert_eq!(st, StatusCode::ACCEPTED);
        last_cursor = out["cursor"].as_u64().unwrap();
    }
    let resp = s
        .http
        .post(format!("{}/v1/events", s.base))
        .bearer_auth(&key)
        .json(&json!({"topic": "q.a", "payload": {}}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(resp.headers()["retry-after"], "7");
    let p: Value = resp.json().await.unwrap();
    assert_eq!(p["code"], "queue_full");
    // Events matching nothing still go in; the batch answers per item.
    let (st, out) = s
        .call(
            &key,
            Method::POST,
            "/v1/events/batch",
            Some(json!({"events": [{"topic": "other", "payload": {}}, {"topic": "q.b", "payload": {}}]})),
        )
        .await;
    assert_eq!(st, StatusCode::ACCEPTED);
    // Stored after the others (attempt statuses may hold cursors in between).
    assert!(out["data"][0]["cursor"].as_u64().unwrap() > last_cursor);
    assert_eq!(out["data"][1]["error"]["code"], "queue_full");
    let (_, list) = s.call(&key, Method::GET, "/v1/events", None).await;
    assert_eq!(
        list["data"].as_array().unwrap().len(),
        3,
        "refused events are not stored"
    );
    let text = s
        .http
        .get(format!("{}/metrics", s.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        text.contains(r#"gatepulse_overload_drops_total{reason="queue_full"}"#),
        "{text}"
    );
    s.shutdown().await;
}

#[tokio::test]
async fn stats_show_a_tenant_its_queue_and_the_admin_every_tenant() {
    let s = TestServer::start().await;
    let (tid, key) = s.tenant_with_key(ALL).await;
    let (_, other) = s.tenant_with_key(ALL).await;
    endpoint_and_subscription(&s, &key, &["s.#"]).await;
    for _ in 0..3 {
        s.call(
            &key,
            Method::POST,
            "/v1/events",
            Some(json!({"topic": "s.x", "payload": {}})),
        )
        .await;
    }
    let (st, mine) = s.call(&key, Method::GET, "/v1/stats", None).await;
    assert_eq!(st, StatusCode::OK, "{mine}");
    assert_eq!(mine["scope"], "tenant");
    assert_eq!(mine["tenant_id"], tid.as_str());
    let queued = ["queue_depth", "in_flight", "retry_backlog", "dlq_size"]
        .iter()
        .map(|k| mine[k].as_u64().unwrap())
        .sum::<u64>();
    assert_eq!(
        queued, 3,
        "every delivery is somewhere in the queue: {mine}"
    );
    assert_eq!(mine["endpoints"].as_array().unwrap().len(), 1);
    assert!(mine["endpoints"][0]["circuit"].is_string());
    let (_, theirs) = s.call(&other, Method::GET, "/v1/stats", None).await;
    assert_eq!(theirs["queue_depth"], 0);
    assert_eq!(theirs["endpoints"].as_array().unwrap().len(), 0);
    let (_, all) = s.call(ADMIN, Method::GET, "/v1/stats", None).await;
    assert_eq!(all["scope"], "all");
    assert_eq!(all["tenants"].as_array().unwrap().len(), 2);
    s.shutdown().await;
}

#[tokio::test]
async fn stats_need_stats_read_or_endpoints_manage() {
    let s = TestServer::start().await;
    let (_, reader) = s.tenant_with_key(&["events:read"]).await;
    let (st, p) = s.call(&reader, Method::GET, "/v1/stats", None).await;
    assert_eq!(
        (st, p["code"].as_str(), p["scope"].as_str()),
        (
            StatusCode::FORBIDDEN,
            Some("missing_scope"),
            Some("stats:read")
        ),
        "{p}"
    );
    for scopes in [&["stats:read"][..], &["endpoints:manage"][..]] {
        let (_, key) = s.tenant_with_key(scopes).await;
        let (st, p) = s.call(&key, Method::GET, "/v1/stats", None).await;
        assert_eq!(st, StatusCode::OK, "{scopes:?}: {p}");
    }
    s.shutdown().await;
}

#[tokio::test]
async fn hop_by_hop_and_reserved_header_names_are_refused_as_custom_headers() {
    let s = TestServer::start().await;
    let (_, key) = s.tenant_with_key(ALL).await;
    for name in [
        "te",
        "Upgrade",
        "keep-alive",
        "expect",
        "trailer",
        "proxy-authorization",
        "proxy-connection",
        "Connection",
        "transfer-encoding",
        "host",
        "webhook-signature",
        "gatepulse-topic",
    ] {
        let (st, p) = s
            .call(
                &key,
                Method::POST,
                "/v1/endpoints",
                Some(json!({"url": "https://example.com/h", "headers": {name: "x"}})),
            )
            .await;
        assert_eq!(
            (st, p["field"].as_str()),
            (
                StatusCode::UNPROCESSABLE_ENTITY,
                Some(format!("headers/{name}").as_str())
            ),
            "{name}: {p}"
        );
    }
    let (st, _) = s
        .call(
            &key,
            Method::POST,
            "/v1/endpoints",
            Some(json!({"url": "https://example.com/h", "headers": {"authorization": "Bearer t", "x-tenant": "1"}})),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED);
    s.shutdown().await;
}

#[tokio::test]
async fn the_admin_sets_and_clears_a_tenants_retention_overrides() {
    let s = TestServer::start().await;
    let (tid, key) = s.tenant_with_key(ALL).await;
    let path = format!("/v1/tenants/{tid}");
    let (st, t) = s
        .call(
            ADMIN,
            Method::PATCH,
            &path,
            Some(json!({"retention": {"events_max_age_secs": 3600}})),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{t}");
    assert_eq!(t["retention"]["events_max_age_secs"], 3600);
    assert_eq!(t["retention"]["dlq_max_age_secs"], Value::Null);
    let (_, t) = s
        .call(
            ADMIN,
            Method::PATCH,
            &path,
            Some(json!({"retention": {"events_max_age_secs": null}, "name": "renamed"})),
        )
        .await;
    assert_eq!(t["retention"]["events_max_age_secs"], Value::Null);
    assert_eq!(t["name"], "renamed");
    let (st, p) = s
        .call(&key, Method::PATCH, &path, Some(json!({"name": "x"})))
        .await;
    assert_eq!(
        (st, p["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("admin_only"))
    );
    let (st, _) = s
        .call(
            ADMIN,
            Method::PATCH,
            "/v1/tenants/ten_01M8BND5M3ZT198Q37TDKBEH7S",
            Some(json!({"name": "x"})),
        )
        .await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    s.shutdown().await;
}

#[tokio::test]
async fn inbox_endpoints_capture_the_request_a_subscriber_would_receive() {
    let s = TestServer::start().await;
    let (_, key) = s.tenant_with_key(ALL).await;
    let (st, ep) = s
        .call(
            &key,
            Method::POST,
            "/v1/endpoints",
            Some(json!({"kind": "inbox", "headers": {"X-Team": "core"}})),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{ep}");
    let ep_id = ep["id"].as_str().unwrap().to_owned();
    s.call(
        &key,
        Method::POST,
        "/v1/subscriptions",
        Some(json!({"endpoint_id": ep_id, "topics": ["in.#"]})),
    )
    .await;
    let (_, ev) = s
        .call(
            &key,
            Method::POST,
            "/v1/events",
            Some(json!({"topic": "in.box", "payload": {"hello": "wörld"}})),
        )
        .await;
    let path = format!("/v1/inbox/{ep_id}/messages");
    let mut messages = Value::Null;
    for _ in 0..200 {
        let (st, out) = s.call(&key, Method::GET, &path, None).await;
        assert_eq!(st, StatusCode::OK, "{out}");
        if !out["data"].as_array().unwrap().is_empty() {
            messages = out;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let m = &messages["data"][0];
    assert_eq!(m["event_id"], ev["id"]);
    assert_eq!(m["body"], r#"{"hello":"wörld"}"#);
    let headers: Vec<(String, String)> = serde_json::from_value(m["headers"].clone()).unwrap();
    let get = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    assert!(get("webhook-signature").unwrap().starts_with("v1,"));
    assert_eq!(get("webhook-id").as_deref(), m["delivery_id"].as_str());
    // The endpoint's own header values are secrets: the capture does not keep them.
    assert_eq!(get("x-team").as_deref(), Some("[redacted]"));
    // The delivery succeeded (captured), and a non-inbox endpoint has no inbox.
    let (_, full) = s
        .call(
            &key,
            Method::GET,
            &format!("/v1/events/{}", ev["id"].as_str().unwrap()),
            None,
        )
        .await;
    assert_eq!(full["deliveries"][0]["status"], "succeeded");
    let (http_ep, _) = endpoint_and_subscription(&s, &key, &["other"]).await;
    let (st, _) = s
        .call(
            &key,
            Method::GET,
            &format!("/v1/inbox/{http_ep}/messages"),
            None,
        )
        .await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY);
    s.shutdown().await;
}

#[tokio::test]
async fn a_replay_stops_at_the_queue_limit_and_says_where_to_resume() {
    let s = TestServer::start_with(|c| c.api.max_queue_depth_per_tenant = 5).await;
    let (_, key) = s.tenant_with_key(ALL).await;
    // Ten events before any subscription: nothing is queued yet.
    for n in 0..10 {
        let (st, _) = s
            .call(
                &key,
                Method::POST,
                "/v1/events",
                Some(json!({"topic": "r.x", "payload": {"n": n}})),
            )
            .await;
        assert_eq!(st, StatusCode::ACCEPTED);
    }
    // An endpoint nobody can reach: replayed deliveries stay queued.
    endpoint_and_subscription(&s, &key, &["r.#"]).await;
    let range = json!({"from": "2000-01-01T00:00:00Z", "to": "2100-01-01T00:00:00Z"});
    let (st, out) = s
        .call(&key, Method::POST, "/v1/replay", Some(range.clone()))
        .await;
    assert_eq!(st, StatusCode::ACCEPTED, "{out}");
    assert_eq!(out["events"], 10, "{out}");
    assert_eq!(out["deliveries"], 5, "{out}");
    assert_eq!(out["complete"], false, "{out}");
    assert_eq!(out["stopped"], "queue_full", "{out}");
    assert!(out["resume_from"].is_string(), "{out}");
    let (_, stats) = s.call(&key, Method::GET, "/v1/stats", None).await;
    let queued = ["queue_depth", "in_flight", "retry_backlog"]
        .iter()
        .map(|k| stats[k].as_u64().unwrap())
        .sum::<u64>();
    assert_eq!(queued, 5, "the queue stayed at its limit: {stats}");
    // Nothing fits any more: refused like a publish, nothing written.
    let (st, p) = s.call(&key, Method::POST, "/v1/replay", Some(range)).await;
    assert_eq!(
        (st, p["code"].as_str()),
        (StatusCode::TOO_MANY_REQUESTS, Some("queue_full")),
        "{p}"
    );
    s.shutdown().await;
}

#[tokio::test]
async fn a_range_replay_over_the_event_limit_is_refused_before_anything_is_written() {
    let s = TestServer::start_with(|c| c.api.max_replay_events = 3).await;
    let (_, key) = s.tenant_with_key(ALL).await;
    endpoint_and_subscription(&s, &key, &["r.#"]).await;
    for n in 0..4 {
        s.call(
            &key,
            Method::POST,
            "/v1/events",
            Some(json!({"topic": "r.x", "payload": {"n": n}})),
        )
        .await;
    }
    let (st, p) = s
        .call(
            &key,
            Method::POST,
            "/v1/replay",
            Some(json!({"from": "2000-01-01T00:00:00Z", "to": "2100-01-01T00:00:00Z"})),
        )
        .await;
    assert_eq!(
        (st, p["field"].as_str(), p["limit"].as_u64()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("from"), Some(3)),
        "{p}"
    );
    let deliveries = s
        .call(&key, Method::GET, "/v1/deliveries?limit=100", None)
        .await
        .1;
    assert_eq!(
        deliveries["data"].as_array().unwrap().len(),
        4,
        "only the originals"
    );
    s.shutdown().await;
}

#[tokio::test]
async fn every_answer_carries_a_request_id_and_a_callers_own_is_echoed() {
    let s = TestServer::start().await;
    let r = s
        .http
        .get(format!("{}/healthz", s.base))
        .send()
        .await
        .unwrap();
    let id = r.headers()["x-request-id"].to_str().unwrap().to_owned();
    assert!(id.starts_with("req_") && id.len() == 20, "{id}");
    let r = s
        .http
        .get(format!("{}/v1/events", s.base))
        .header("x-request-id", "trace-abc-123")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(r.headers()["x-request-id"], "trace-abc-123");
    s.shutdown().await;
}
