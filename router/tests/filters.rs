//! Filters end to end: the real server (`gatepulse::run`) on 127.0.0.1:0, driven over
//! HTTP. Create/update validation (including hostile filters), delivery selection on
//! publish for every operator family, and the preview dry run.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{ADMIN, TestServer};
use gatepulse::ids::{DeliveryId, EventId};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
const SCOPES: &[&str] = &["events:write", "events:read", "endpoints:manage"];

/// Filter-test helpers on the shared test server.
trait FilterHelpers {
    async fn tenant(&self) -> (String, String);
    async fn subscribe(
        &self,
        key: &str,
        ep: &str,
        topic: &str,
        filter: Option<&str>,
    ) -> (StatusCode, Value);
    async fn publish(&self, key: &str, topic: &str, payload: &Value) -> (String, Vec<String>);
}

impl FilterHelpers for TestServer {
    /// A tenant, an API key for it and one endpoint; returns (key, endpoint id).
    async fn tenant(&self) -> (String, String) {
        let (s, t) = self
            .call(
                ADMIN,
                Method::POST,
                "/v1/tenants",
                Some(json!({"name": "acme"})),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{t}");
        let path = format!("/v1/tenants/{}/keys", t["id"].as_str().unwrap());
        let (s, k) = self
            .call(
                ADMIN,
                Method::POST,
                &path,
                Some(json!({"name": "k", "scopes": SCOPES})),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{k}");
        let key = k["key"].as_str().unwrap().to_owned();
        let body = json!({"url": "https://example.com/hook"});
        let (s, ep) = self
            .call(&key, Method::POST, "/v1/endpoints", Some(body))
            .await;
        assert_eq!(s, StatusCode::CREATED, "{ep}");
        (key, ep["id"].as_str().unwrap().to_owned())
    }

    async fn subscribe(
        &self,
        key: &str,
        ep: &str,
        topic: &str,
        filter: Option<&str>,
    ) -> (StatusCode, Value) {
        let body = json!({"endpoint_id": ep, "topics": [topic], "filter": filter});
        self.call(key, Method::POST, "/v1/subscriptions", Some(body))
            .await
    }

    /// Publishes and returns (event id, ids of the deliveries created).
    async fn publish(&self, key: &str, topic: &str, payload: &Value) -> (String, Vec<String>) {
        let body = json!({"topic": topic, "payload": payload});
        let (s, out) = self.call(key, Method::POST, "/v1/events", Some(body)).await;
        assert_eq!(s, StatusCode::ACCEPTED, "{out}");
        let id = out["id"].as_str().unwrap().to_owned();
        let (s, ev) = self
            .call(key, Method::GET, &format!("/v1/events/{id}"), None)
            .await;
        assert_eq!(s, StatusCode::OK, "{ev}");
        let ids = ev["deliveries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["id"].as_str().unwrap().to_owned());
        (id, ids.collect())
    }
}

fn order() -> Value {
    json!({
        "amount": 250, "currency": "USD", "status": "paid",
        "customer": {"email": "Jane@Example.com", "tier": "vip"},
        "tags": ["new", "vip"],
        "items": [{"sku": "A-1", "qty": 3, "price": 10}, {"sku": "B-2", "qty": 1, "price": 5}],
        "ip": "10.1.2.3", "sku": "AB-123", "coupon": null
    })
}

/// (filter, delivery expected?) against `order()`, one operator family per group.
const CASES: &[(&str, bool)] = &[
    // comparisons
    ("payload.amount > 100", true),
    ("payload.amount < 100", false),
    ("payload.amount >= 250", true),
    ("payload.amount <= 249.5", false),
    ("payload.amount == 250.0", true),
    (r#"payload.amount == "250""#, false),
    (r#"payload.status != "paid""#, false),
    (r#"payload.tags == ["new", "vip"]"#, true),
    (r#"topic == "orders.created""#, false),
    // logic
    (r#"payload.amount > 100 && payload.currency == "USD""#, true),
    (
        r#"payload.amount > 100 && payload.currency == "EUR""#,
        false,
    ),
    (
        r#"payload.amount > 1000 || payload.currency == "USD""#,
        true,
    ),
    (r#"!(payload.status == "paid")"#, false),
    (r#"!(payload.missing == "x")"#, true),
    // membership
    (r#"payload.currency in ["USD", "EUR"]"#, true),
    (r#"payload.currency not in ["USD", "EUR"]"#, false),
    (r#"payload.customer.tier not in ["basic"]"#, true),
    (r#""vip" in payload.tags"#, true),
    (r#""old" in payload.tags"#, false),
    // exists
    ("exists(payload.coupon)", true),
    ("exists(payload.deleted_at)", false),
    ("!exists(payload.deleted_at)", true),
    // string tests and their case-insensitive forms
    (r#"payload.customer.email starts_with "Jane""#, true),
    (r#"payload.customer.email starts_with "jane""#, false),
    (r#"payload.customer.email istarts_with "jane""#, true),
    (r#"payload.customer.email ends_with "@example.com""#, false),
    (r#"payload.customer.email iends_with "@EXAMPLE.COM""#, true),
    (r#"payload.customer.email contains "@Ex""#, true),
    (r#"payload.customer.email icontains "@ex""#, true),
    (r#"payload.amount contains "2""#, false),
    // matches, like, between, cidr
    (r#"matches(payload.sku, "^[A-Z]{2}-[0-9]+$")"#, true),
    (r#"matches(payload.sku, "^[0-9]+$")"#, false),
    (r#"like(payload.sku, "AB-*")"#, true),
    (r#"like(payload.sku, "?B-12")"#, false),
    (r#"like(topic, "case.*")"#, true),
    ("between(payload.amount, 100, 500)", true),
    ("between(payload.amount, 251, 500)", false),
    (r#"cidr(payload.ip, "10.0.0.0/8")"#, true),
    (r#"cidr(payload.ip, ["192.168.0.0/16", "fd00::/8"])"#, false),
    // quantifiers
    (
        r#"any(payload.items, it.sku starts_with "A-" && it.qty > 2)"#,
        true,
    ),
    ("any(payload.items, it.qty > 5)", false),
    ("all(payload.items, it.price > 0)", true),
    ("all(payload.items, it.price > 6)", false),
    // missing fields make every comparison false, `!=` and `not in` included
    (r#"payload.missing != "a""#, false),
    (r#"payload.missing not in ["a"]"#, false),
    ("payload.missing < 5", false),
    ("payload.missing == null", false),
    // nulls
    ("payload.coupon == null", true),
    ("payload.coupon != null", false),
    (r#"payload.coupon not in ["a"]"#, true),
    // envelope: id and time are set; source and headers are always missing
    (
        r#"exists(meta.id) && meta.time > "2000-01-01T00:00:00Z""#,
        true,
    ),
    ("exists(meta.source)", false),
    (r#"exists(headers["content-type"])"#, false),
];

#[tokio::test]
async fn filters_decide_which_deliveries_are_created() {
    let s = TestServer::start().await;
    let (key, ep) = s.tenant().await;
    let payload = order();
    let mut wrong = Vec::new();
    for (i, (filter, expected)) in CASES.iter().enumerate() {
        let topic = format!("case.{i}");
        let (st, sub) = s.subscribe(&key, &ep, &topic, Some(filter)).await;
        assert_eq!(st, StatusCode::CREATED, "`{filter}`: {sub}");
        let (_, deliveries) = s.publish(&key, &topic, &payload).await;
        if (deliveries.len() == 1) != *expected {
            wrong.push(format!(
                "`{filter}`: expected {expected}, got {} deliveries",
                deliveries.len()
            ));
        }
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
    s.shutdown().await;
}

#[tokio::test]
async fn delivery_ids_count_only_the_deliveries_created() {
    let s = TestServer::start().await;
    let (key, ep) = s.tenant().await;
    for filter in [
        None,
        Some("payload.amount > 1000"),
        Some("payload.amount > 100"),
        None,
    ] {
        let (st, sub) = s.subscribe(&key, &ep, "orders.*", filter).await;
        assert_eq!(st, StatusCode::CREATED, "{sub}");
    }
    let (id, mut deliveries) = s
        .publish(&key, "orders.created", &json!({"amount": 250}))
        .await;
    let event = EventId::parse(&id).unwrap();
    let mut expected: Vec<String> = (0..3)
        .map(|n| DeliveryId::for_event(&event, n).to_string())
        .collect();
    deliveries.sort();
    expected.sort();
    assert_eq!(deliveries, expected);
    s.shutdown().await;
}

#[tokio::test]
async fn hostile_filters_are_refused_and_the_server_stays_up() {
    let s = TestServer::start().await;
    let (key, ep) = s.tenant().await;
    let parens = format!("{}payload.a == 1{}", "(".repeat(10_000), ")".repeat(10_000));
    let one_mb = "payload.a == 1 || ".repeat(1_000_000 / 18);
    let over_body = "x".repeat(1_100_000);
    let small_parens = format!("{}payload.a == 1{}", "(".repeat(100), ")".repeat(100));
    let small_list = format!("payload.a in [{}]", vec!["0"; 300].join(","));
    let list = format!("payload.a in [{}]", vec!["0"; 100_000].join(","));
    let path = format!("payload{} == 1", ".a".repeat(100));
    let regexes = [r#"matches(payload.a, "a")"#; 5].join(" || ");
    let chain = ["payload.a == 1"; 100].join(" || ");
    let string = format!(r#"payload.a == "{}""#, "x".repeat(2000));
    let cases: Vec<(&str, String, &str)> = vec![
        // Length is checked first, before any parsing.
        ("10,000 nested parentheses", parens, "expression_too_long"),
        ("100 nested parentheses", small_parens, "nesting_too_deep"),
        ("a 1 MB expression", one_mb, "expression_too_long"),
        (
            "a body over api.max_body_bytes",
            over_body,
            "body_too_large",
        ),
        ("a 100,000-element list", list, "expression_too_long"),
        ("a 300-element list", small_list, "list_too_long"),
        ("a 100-segment path", path, "path_too_long"),
        (
            "a huge counted repetition",
            r#"matches(payload.a, "a{10000}{10000}")"#.into(),
            "regex_too_big",
        ),
        (
            "a wide counted class",
            r#"matches(payload.a, "\\w{500}")"#.into(),
            "regex_too_big",
        ),
        ("five regexes", regexes, "too_many_regexes"),
        ("a 100-term chain", chain, "chain_too_long"),
        ("a 2 KB string", string, "string_too_long"),
    ];
    for (what, filter, code) in cases {
        let (st, problem) = s
            .subscribe(&key, &ep, "orders.created", Some(&filter))
            .await;
        assert!(
            st == StatusCode::BAD_REQUEST || st == StatusCode::PAYLOAD_TOO_LARGE,
            "{what}: {st} {problem}"
        );
        assert_eq!(problem["code"], code, "{what}: {problem}");
        if st == StatusCode::BAD_REQUEST {
            assert_eq!(problem["field"], "filter", "{what}");
            assert!(problem["position"]["line"].is_u64(), "{what}: {problem}");
        }
        assert!(s.ready().await, "{what}: /readyz after");
    }
    // A regex that backtracking engines choke on is harmless here: accepted, and a
    // publish against a matching-prone payload still answers.
    let (st, sub) = s
        .subscribe(
            &key,
            &ep,
            "re.dos",
            Some(r#"matches(payload.a, "^(a+)+$")"#),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{sub}");
    let payload = json!({"a": format!("{}!", "a".repeat(50_000))});
    let (_, deliveries) = s.publish(&key, "re.dos", &payload).await;
    assert!(deliveries.is_empty());
    let (list_st, subs) = s.call(&key, Method::GET, "/v1/subscriptions", None).await;
    assert_eq!(list_st, StatusCode::OK);
    assert_eq!(
        subs["data"].as_array().unwrap().len(),
        1,
        "only the harmless one was stored"
    );
    s.shutdown().await;
}

#[tokio::test]
async fn a_syntax_error_says_where_and_what() {
    let s = TestServer::start().await;
    let (key, ep) = s.tenant().await;
    let (st, p) = s
        .subscribe(&key, &ep, "orders.created", Some("payload.amount 100"))
        .await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{p}");
    assert_eq!(p["code"], "syntax_error");
    assert_eq!(p["type"], "https://gatepulse.dev/problems/syntax_error");
    assert_eq!(p["status"], 400);
    assert_eq!(p["field"], "filter");
    assert_eq!(
        p["position"],
        json!({"line": 1, "column": 16, "offset": 15})
    );
    assert_eq!(p["excerpt"], "payload.amount 100\n               ^");
    assert!(p["detail"].as_str().unwrap().contains("expected"), "{p}");
    s.shutdown().await;
}

#[tokio::test]
async fn patch_refuses_a_bad_filter_keeps_the_old_one_and_null_removes_it() {
    let s = TestServer::start().await;
    let (key, ep) = s.tenant().await;
    let (st, sub) = s
        .subscribe(&key, &ep, "orders.created", Some("payload.amount > 100"))
        .await;
    assert_eq!(st, StatusCode::CREATED, "{sub}");
    let path = format!("/v1/subscriptions/{}", sub["id"].as_str().unwrap());

    let (st, p) = s
        .call(
            &key,
            Method::PATCH,
            &path,
            Some(json!({"filter": "payload.amount >"})),
        )
        .await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{p}");
    assert_eq!(p["code"], "syntax_error");
    let (_, got) = s.call(&key, Method::GET, &path, None).await;
    assert_eq!(got["filter"], "payload.amount > 100");
    let (_, deliveries) = s
        .publish(&key, "orders.created", &json!({"amount": 5}))
        .await;
    assert!(deliveries.is_empty(), "the old filter still applies");

    let (st, got) = s
        .call(&key, Method::PATCH, &path, Some(json!({"filter": null})))
        .await;
    assert_eq!(st, StatusCode::OK, "{got}");
    assert_eq!(got["filter"], Value::Null);
    let (_, deliveries) = s
        .publish(&key, "orders.created", &json!({"amount": 5}))
        .await;
    assert_eq!(deliveries.len(), 1, "no filter any more");
    s.shutdown().await;
}

#[tokio::test]
async fn preview_explains_the_decision_and_stores_nothing() {
    let s = TestServer::start().await;
    let (key, ep) = s.tenant().await;
    let preview = |sub: Value, topic: &str| json!({"subscription": sub, "event": {"topic": topic, "payload": {"amount": 250, "currency": "USD"}}});
    let sub = json!({"endpoint_id": ep, "topics": ["orders.*"], "filter": r#"payload.amount > 100 && payload.currency == "USD""#});

    // Matched: both stages pass and the body is the payload.
    let (st, out) = s
        .call(
            &key,
            Method::POST,
            "/v1/subscriptions/preview",
            Some(preview(sub.clone(), "orders.created")),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{out}");
    assert_eq!(out["matched"], true);
    assert_eq!(out["body"], json!({"amount": 250, "currency": "USD"}));
    let stages = out["stages"].as_array().unwrap();
    assert_eq!(stages.len(), 2);
    assert_eq!(
        (stages[0]["stage"].as_str(), stages[0]["matched"].as_bool()),
        (Some("topic"), Some(true))
    );
    assert_eq!(
        (stages[1]["stage"].as_str(), stages[1]["matched"].as_bool()),
        (Some("filter"), Some(true))
    );
    assert!(stages[1]["took_us"].is_u64());

    // Not matched by topic: the topic stage lists the patterns and the pipeline stops.
    let (st, out) = s
        .call(
            &key,
            Method::POST,
            "/v1/subscriptions/preview",
            Some(preview(sub.clone(), "billing.paid")),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{out}");
    assert_eq!(
        (out["matched"].as_bool(), &out["body"]),
        (Some(false), &Value::Null)
    );
    let stages = out["stages"].as_array().unwrap();
    assert_eq!(stages.len(), 1, "{out}");
    assert_eq!(stages[0]["matched"], false);
    assert_eq!(stages[0]["explain"]["patterns"], json!(["orders.*"]));

    // Not matched by the filter: the failing term is named. No endpoint needed.
    let sub = json!({"topics": ["orders.#"], "filter": r#"payload.amount > 100 && payload.currency == "EUR""#});
    let (st, out) = s
        .call(
            &key,
            Method::POST,
            "/v1/subscriptions/preview",
            Some(preview(sub, "orders.created")),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{out}");
    assert_eq!(out["matched"], false);
    let filter = &out["stages"][1];
    assert_eq!(
        (filter["stage"].as_str(), filter["matched"].as_bool()),
        (Some("filter"), Some(false))
    );
    assert_eq!(
        filter["explain"]["terms"],
        json!([{"term": "payload.amount > 100", "matched": true}, {"term": r#"payload.currency == "EUR""#, "matched": false}])
    );

    // Validation errors are the create problems.
    let bad = json!({"topics": ["orders.#"], "filter": "payload.amount 100"});
    let (st, p) = s
        .call(
            &key,
            Method::POST,
            "/v1/subscriptions/preview",
            Some(preview(bad, "orders.created")),
        )
        .await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{p}");
    assert_eq!(
        (p["code"].as_str(), p["field"].as_str()),
        (Some("syntax_error"), Some("filter"))
    );
    assert_eq!(p["position"]["column"], 16);

    // An unknown endpoint and a bad event are refused too.
    let unknown = json!({"endpoint_id": "ep_nope", "topics": ["orders.#"]});
    let (st, p) = s
        .call(
            &key,
            Method::POST,
            "/v1/subscriptions/preview",
            Some(preview(unknown, "orders.created")),
        )
        .await;
    assert_eq!(
        (st, p["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("unknown_reference"))
    );
    let body = json!({"subscription": {"topics": ["orders.#"]}, "event": {"topic": "orders.created", "payload": [1]}});
    let (st, p) = s
        .call(&key, Method::POST, "/v1/subscriptions/preview", Some(body))
        .await;
    assert_eq!(
        (st, p["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("invalid_payload"))
    );

    // `preview` is its own route, not a subscription id.
    let (st, _) = s
        .call(&key, Method::GET, "/v1/subscriptions/preview", None)
        .await;
    assert_eq!(st, StatusCode::METHOD_NOT_ALLOWED);

    // Nothing was stored.
    let (_, events) = s.call(&key, Method::GET, "/v1/events", None).await;
    assert_eq!(events["data"], json!([]), "{events}");
    let (_, subs) = s.call(&key, Method::GET, "/v1/subscriptions", None).await;
    assert_eq!(subs["data"], json!([]), "{subs}");
    s.shutdown().await;
}
