//! Scopes on every route (SPEC SEC-1): the table in docs/api-guide.md names what each
//! route of the OpenAPI document needs (a route without an entry fails here), and the
//! real server refuses every route to a key holding every scope but the one needed,
//! to a key on an admin route, and to a request without a token — always with a
//! problem document — while a key with just the needed scope gets past.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use gatepulse_e2e::{ADMIN_TOKEN, Gp};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const ALL_SCOPES: &[&str] = &[
    "events:write",
    "events:read",
    "endpoints:manage",
    "replay:write",
    "dlq:manage",
    "stats:read",
    "audit:read",
];

#[derive(Debug, Clone, PartialEq, Eq)]
enum Needs {
    Nothing,
    Admin,
    /// Any valid token (OpenAPI cannot tell it from `Admin`: both are a bearer with no
    /// scope; the guide can).
    Token,
    /// Any one of these scopes.
    Any(BTreeSet<String>),
}

type Routes = BTreeMap<(String, String), Needs>;

fn repo(path: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(path)
}

/// The table under "Every route and what it needs" in docs/api-guide.md.
fn guide_routes() -> Routes {
    let text = std::fs::read_to_string(repo("docs/api-guide.md")).unwrap();
    let start = text
        .find("### Every route and what it needs")
        .expect("the route table's heading");
    let mut routes = Routes::new();
    for line in text[start..].lines().skip_while(|l| !l.starts_with('|')) {
        if !line.starts_with('|') {
            break;
        }
        let cells: Vec<&str> = line.trim_matches('|').split('|').map(str::trim).collect();
        let [method, route, needs] = cells[..] else {
            panic!("a row of three cells: {line}");
        };
        if method == "method" || method.starts_with("---") {
            continue;
        }
        let path = route.trim_matches('`').to_owned();
        let needs = if needs.starts_with("nothing") {
            Needs::Nothing
        } else if needs.starts_with("any token") {
            Needs::Token
        } else if needs == "admin" {
            Needs::Admin
        } else {
            Needs::Any(
                needs
                    .split(" or ")
                    .map(|s| s.trim().trim_matches('`').to_owned())
                    .collect(),
            )
        };
        let key = (method.to_owned(), path);
        assert!(routes.insert(key.clone(), needs).is_none(), "{key:?} twice");
    }
    routes
}

/// Every operation of an OpenAPI document with the scopes its `security` names.
fn openapi_routes(doc: &Value) -> Routes {
    let mut routes = Routes::new();
    for (path, ops) in doc["paths"].as_object().unwrap() {
        for (method, op) in ops.as_object().unwrap() {
            let needs = match op["security"].as_array() {
                None => Needs::Nothing,
                Some(reqs) => {
                    let scopes: BTreeSet<String> = reqs
                        .iter()
                        .flat_map(|r| r["bearer"].as_array().cloned().unwrap_or_default())
                        .map(|s| s.as_str().unwrap().to_owned())
                        .collect();
                    if scopes.is_empty() {
                        Needs::Admin
                    } else {
                        Needs::Any(scopes)
                    }
                }
            };
            routes.insert((method.to_uppercase(), path.clone()), needs);
        }
    }
    routes
}

#[test]
fn every_route_of_the_openapi_document_is_in_the_scope_table() {
    let doc: Value =
        serde_json::from_str(&std::fs::read_to_string(repo("docs/openapi.json")).unwrap()).unwrap();
    let api = openapi_routes(&doc);
    let guide = guide_routes();
    let missing: Vec<_> = api.keys().filter(|k| !guide.contains_key(*k)).collect();
    assert!(
        missing.is_empty(),
        "routes without an entry in docs/api-guide.md: {missing:?}"
    );
    let stale: Vec<_> = guide.keys().filter(|k| !api.contains_key(*k)).collect();
    assert!(
        stale.is_empty(),
        "entries for routes that do not exist: {stale:?}"
    );
    for (route, needs) in &api {
        let documented = &guide[route];
        let agree = documented == needs || (*documented == Needs::Token && *needs == Needs::Admin);
        assert!(
            agree,
            "{route:?}: the guide says {documented:?}, OpenAPI {needs:?}"
        );
    }
}

/// A real path for a routed one: placeholders become well-formed ids nothing has.
fn concrete(path: &str, tenant: &str) -> String {
    path.replace("{tenant_id}", tenant)
        .replace("{key_id}", "key_01M8X9AAAAAAAAAAAAAAAAAAAA")
        .replace("{endpoint_id}", "ep_01M8X9AAAAAAAAAAAAAAAAAAAA")
        .replace("{subscription_id}", "sub_01M8X9AAAAAAAAAAAAAAAAAAAA")
        .replace("{event_id}", "evt_01M8X9AAAAAAAAAAAAAAAAAAAA")
        .replace("{delivery_id}", "dlv_01M8X9AAAAAAAAAAAAAAAAAAAA0000")
        .replace("{name}", "probe")
        .replace("{version}", "1.0.0")
}

/// A body the route would accept in shape, so nothing but the scope can refuse it.
fn body_for(method: &str, path: &str) -> Option<Value> {
    Some(match (method, path) {
        ("POST", "/v1/tenants") | ("PATCH", "/v1/tenants/{tenant_id}") => json!({"name": "probe"}),
        ("POST", "/v1/tenants/{tenant_id}/keys") => {
            json!({"name": "probe", "scopes": ["events:read"]})
        }
        ("POST", "/v1/admin/snapshots") => json!({"path": "/nonexistent/probe"}),
        ("POST", "/v1/events") => json!({"topic": "probe.sent", "payload": {}}),
        ("POST", "/v1/events/batch") => {
            json!({"events": [{"topic": "probe.sent", "payload": {}}]})
        }
        ("POST", "/v1/endpoints") => json!({"kind": "inbox"}),
        ("PATCH", "/v1/endpoints/{endpoint_id}") => json!({"description": "probe"}),
        ("POST", "/v1/subscriptions") => {
            json!({"endpoint_id": "ep_01M8X9AAAAAAAAAAAAAAAAAAAA", "topics": ["probe.#"]})
        }
        ("PATCH", "/v1/subscriptions/{subscription_id}") => json!({"topics": ["probe.#"]}),
        ("POST", "/v1/replay") => json!({"event_id": "evt_01M8X9AAAAAAAAAAAAAAAAAAAA"}),
        ("POST", "/v1/dlq/requeue") => {
            json!({"endpoint_id": "ep_01M8X9AAAAAAAAAAAAAAAAAAAA"})
        }
        _ => return None,
    })
}

async fn key_with(gp: &Gp, tenant: &str, scopes: &[&str]) -> String {
    let (s, k) = gp
        .call(
            ADMIN_TOKEN,
            Method::POST,
            &format!("/v1/tenants/{tenant}/keys"),
            Some(json!({"name": "probe", "scopes": scopes})),
        )
        .await
        .unwrap();
    assert_eq!(s, StatusCode::CREATED, "{k}");
    k["key"].as_str().unwrap().to_owned()
}

/// Sends one probe; the status and, for a refusal, its problem document.
async fn probe(
    gp: &Gp,
    token: Option<&str>,
    method: &str,
    path: &str,
    tenant: &str,
) -> (StatusCode, Option<Value>) {
    let mut req = gp.http.request(
        Method::from_bytes(method.as_bytes()).unwrap(),
        format!("{}{}", gp.base, concrete(path, tenant)),
    );
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if let Some(b) = body_for(method, path) {
        req = req.json(&b);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status();
    if status != StatusCode::UNAUTHORIZED && status != StatusCode::FORBIDDEN {
        // Streams stay open; nothing more to read from a success.
        return (status, None);
    }
    let ct = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert!(
        ct.starts_with("application/problem+json"),
        "{method} {path}: {status} as {ct:?}"
    );
    (status, Some(resp.json().await.unwrap()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_refuses_what_its_scope_does_not_allow() {
    let dir = tempfile::tempdir().unwrap();
    let gp = Gp::start(dir.path(), &[]).await.unwrap();
    let (tenant, _) = gp.tenant_with_key().await.unwrap();
    // The server's own document, not the committed copy.
    let (s, doc) = gp
        .call(ADMIN_TOKEN, Method::GET, "/openapi.json", None)
        .await
        .unwrap();
    assert_eq!(s, StatusCode::OK);
    let routes = openapi_routes(&doc);
    assert!(routes.len() > 40, "{}", routes.len());
    // What to probe for: the guide's words (it tells "any token" from "admin").
    let guide = guide_routes();
    let everything = key_with(&gp, &tenant, ALL_SCOPES).await;
    let mut probed = 0;
    for key in routes.keys() {
        let (method, path) = key;
        let needs = &guide[key];
        let route = format!("{method} {path}");
        if *needs == Needs::Nothing {
            let (s, _) = probe(&gp, None, method, path, &tenant).await;
            assert!(s.is_success(), "{route}: {s} without a token");
            continue;
        }
        let (s, p) = probe(&gp, None, method, path, &tenant).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED, "{route} without a token");
        assert_eq!(p.unwrap()["code"], "missing_token", "{route}");
        let (s, p) = probe(&gp, Some("gpk_not-a-key"), method, path, &tenant).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED, "{route} with a wrong key");
        assert_eq!(p.unwrap()["code"], "invalid_token", "{route}");
        match needs {
            Needs::Nothing => unreachable!(),
            Needs::Token => {
                let one = key_with(&gp, &tenant, &["events:read"]).await;
                for token in [one.as_str(), ADMIN_TOKEN] {
                    let (s, p) = probe(&gp, Some(token), method, path, &tenant).await;
                    assert!(s.is_success(), "{route} refused a valid token: {s} {p:?}");
                }
            }
            Needs::Admin => {
                let (s, p) = probe(&gp, Some(&everything), method, path, &tenant).await;
                assert_eq!(s, StatusCode::FORBIDDEN, "{route} with an all-scopes key");
                assert_eq!(p.unwrap()["code"], "admin_only", "{route}");
            }
            Needs::Any(scopes) => {
                let others: Vec<&str> = ALL_SCOPES
                    .iter()
                    .copied()
                    .filter(|s| !scopes.contains(*s))
                    .collect();
                let lacking = key_with(&gp, &tenant, &others).await;
                let (s, p) = probe(&gp, Some(&lacking), method, path, &tenant).await;
                assert_eq!(s, StatusCode::FORBIDDEN, "{route} without {scopes:?}");
                let p = p.unwrap();
                assert_eq!(p["code"], "missing_scope", "{route}: {p}");
                assert!(
                    scopes.contains(p["scope"].as_str().unwrap()),
                    "{route}: names {p}"
                );
                for scope in scopes {
                    let just = key_with(&gp, &tenant, &[scope.as_str()]).await;
                    let (s, p) = probe(&gp, Some(&just), method, path, &tenant).await;
                    assert!(
                        s != StatusCode::UNAUTHORIZED && s != StatusCode::FORBIDDEN,
                        "{route} refused with {scope}: {s} {p:?}"
                    );
                }
            }
        }
        probed += 1;
    }
    assert!(probed > 35, "{probed}");
}

/// Waits until `path` lists at least one item for `key`.
async fn first_listed(gp: &Gp, key: &str, path: &str) -> Value {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let items = gp.list_all(key, path).await.unwrap();
        if let Some(first) = items.into_iter().next() {
            return first;
        }
        assert!(std::time::Instant::now() < deadline, "{path} stayed empty");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_tenants_resources_are_not_found_and_nothing_leaks() {
    let dir = tempfile::tempdir().unwrap();
    let gp = Gp::start(dir.path(), &[]).await.unwrap();
    let (tenant_a, key_a) = gp.tenant_with_key().await.unwrap();
    let (tenant_b, _) = gp.tenant_with_key().await.unwrap();
    let key_b = key_with(&gp, &tenant_b, ALL_SCOPES).await;
    // Tenant A: an inbox endpoint with a subscription, an event, its delivery and
    // capture, and a dead delivery to replay or requeue.
    let marker = "tenant-a-private-7c1e";
    let (ep, sub) = gp
        .subscribe(
            &key_a,
            json!({"kind": "inbox", "description": marker, "headers": {"X-Secret": marker}}),
            &["private.#"],
            None,
        )
        .await
        .unwrap();
    let (ep, sub) = (
        ep["id"].as_str().unwrap().to_owned(),
        sub["id"].as_str().unwrap().to_owned(),
    );
    let event = gp
        .publish(&key_a, "private.created", &json!({"note": marker}))
        .await
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let delivery = first_listed(&gp, &key_a, "/v1/deliveries").await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    first_listed(&gp, &key_a, &format!("/v1/inbox/{ep}/messages")).await;

    let probes: Vec<(Method, String, Option<Value>)> = vec![
        (Method::GET, format!("/v1/endpoints/{ep}"), None),
        (
            Method::PATCH,
            format!("/v1/endpoints/{ep}"),
            Some(json!({"description": "x"})),
        ),
        (Method::DELETE, format!("/v1/endpoints/{ep}"), None),
        (Method::GET, format!("/v1/endpoints/{ep}/secret"), None),
        (
            Method::POST,
            format!("/v1/endpoints/{ep}/secret/rotate"),
            None,
        ),
        (Method::GET, format!("/v1/endpoints/{ep}/health"), None),
        (Method::GET, format!("/v1/subscriptions/{sub}"), None),
        (
            Method::PATCH,
            format!("/v1/subscriptions/{sub}"),
            Some(json!({"topics": ["x.#"]})),
        ),
        (Method::DELETE, format!("/v1/subscriptions/{sub}"), None),
        (
            Method::POST,
            "/v1/subscriptions".to_owned(),
            Some(json!({"endpoint_id": ep, "topics": ["x.#"]})),
        ),
        (Method::GET, format!("/v1/events/{event}"), None),
        (Method::GET, format!("/v1/deliveries/{delivery}"), None),
        (Method::GET, format!("/v1/inbox/{ep}/messages"), None),
        (
            Method::POST,
            "/v1/replay".to_owned(),
            Some(json!({"event_id": event})),
        ),
        (
            Method::POST,
            "/v1/dlq/requeue".to_owned(),
            Some(json!({"endpoint_id": ep})),
        ),
    ];
    for (method, path, body) in probes {
        let mut req = gp
            .http
            .request(method.clone(), format!("{}{path}", gp.base))
            .bearer_auth(&key_b);
        if let Some(b) = &body {
            req = req.json(b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status();
        let headers = format!("{:?}", resp.headers());
        let text = resp.text().await.unwrap();
        assert!(
            status == StatusCode::NOT_FOUND || status == StatusCode::UNPROCESSABLE_ENTITY,
            "{method} {path} from another tenant: {status} {text}"
        );
        for secret in [marker, tenant_a.as_str()] {
            assert!(
                !text.contains(secret),
                "{method} {path} leaks {secret}: {text}"
            );
            assert!(
                !headers.contains(secret),
                "{method} {path} leaks {secret}: {headers}"
            );
        }
    }
    // Listings show nothing of A's, and A's things are untouched.
    for path in [
        "/v1/endpoints",
        "/v1/subscriptions",
        "/v1/events",
        "/v1/deliveries",
        "/v1/dlq",
    ] {
        let items = gp.list_all(&key_b, path).await.unwrap();
        let text = serde_json::to_string(&items).unwrap();
        assert!(
            !text.contains(&ep) && !text.contains(&event) && !text.contains(marker),
            "{path} for tenant b shows a's: {text}"
        );
    }
    let (s, still) = gp
        .call(&key_a, Method::GET, &format!("/v1/endpoints/{ep}"), None)
        .await
        .unwrap();
    assert_eq!(s, StatusCode::OK);
    assert_eq!(still["description"], marker);
    let (s, _) = gp
        .call(
            &key_a,
            Method::GET,
            &format!("/v1/subscriptions/{sub}"),
            None,
        )
        .await
        .unwrap();
    assert_eq!(s, StatusCode::OK);
}
