//! The audit log (SPEC SEC-3) against the real binary, on redb and on PostgreSQL: a
//! scripted admin session leaves one record per act, in order, with actor, resource,
//! request id and client address and no secret; a refused change leaves none; a key
//! reads only its tenant's records; GatePulse's own acts (auto-disable) are recorded
//! as `system`; the chains verify, and a record edited in the database is found. The
//! same records are on the tenant's stream as topic `audit`, history and live, for
//! whoever may read the audit log, and only for them.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use gatepulse_e2e::receiver::{Behaviour, Receiver};
use gatepulse_e2e::sse::{self, Sse};
use gatepulse_e2e::{ADMIN_TOKEN, Backend, Gp, pg_url};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const SECRET: &str = "whsec_YXVkaXQtZTJlLWtub3duLXNpZ25pbmctc2VjcmV0IQ==";
const HEADER_VALUE: &str = "Bearer audit-header-token-3e8d";

async fn ok(gp: &Gp, token: &str, method: Method, path: &str, body: Option<Value>) -> Value {
    let (s, v) = gp.call(token, method.clone(), path, body).await.unwrap();
    assert!(s.is_success(), "{method} {path}: {s} {v}");
    v
}

async fn audit(gp: &Gp, token: &str, query: &str) -> Vec<Value> {
    gp.list_all(token, &format!("/v1/audit{query}"))
        .await
        .unwrap()
}

/// The scripted session; returns (tenant, endpoint id, the request id of the reveal).
async fn session(gp: &Gp, rx: &Receiver) -> (String, String, String) {
    let t = ok(
        gp,
        ADMIN_TOKEN,
        Method::POST,
        "/v1/tenants",
        Some(json!({"name": "audited"})),
    )
    .await;
    let tenant = t["id"].as_str().unwrap().to_owned();
    ok(
        gp,
        ADMIN_TOKEN,
        Method::PATCH,
        &format!("/v1/tenants/{tenant}"),
        Some(json!({"name": "audited-2"})),
    )
    .await;
    let k = ok(
        gp,
        ADMIN_TOKEN,
        Method::POST,
        &format!("/v1/tenants/{tenant}/keys"),
        Some(
            json!({"name": "ops", "scopes": ["endpoints:manage", "replay:write",
            "dlq:manage", "events:write", "events:read", "audit:read"]}),
        ),
    )
    .await;
    let key = k["key"].as_str().unwrap().to_owned();
    let key_id = k["id"].as_str().unwrap().to_owned();
    let ep = ok(
        gp,
        &key,
        Method::POST,
        "/v1/endpoints",
        Some(
            json!({"url": format!("{}/hook", rx.url()), "secret": SECRET,
                    "headers": {"Authorization": HEADER_VALUE}}),
        ),
    )
    .await;
    let ep = ep["id"].as_str().unwrap().to_owned();
    ok(
        gp,
        &key,
        Method::PATCH,
        &format!("/v1/endpoints/{ep}"),
        Some(json!({"description": "changed", "headers": {"Authorization": HEADER_VALUE}})),
    )
    .await;
    let reveal = gp
        .http
        .get(format!("{}/v1/endpoints/{ep}/secret", gp.base))
        .bearer_auth(&key)
        .header("x-request-id", "req-audit-reveal-1")
        .send()
        .await
        .unwrap();
    assert_eq!(reveal.status(), StatusCode::OK);
    ok(
        gp,
        &key,
        Method::POST,
        &format!("/v1/endpoints/{ep}/secret/rotate"),
        None,
    )
    .await;
    let sub = ok(
        gp,
        &key,
        Method::POST,
        "/v1/subscriptions",
        Some(json!({"endpoint_id": ep, "topics": ["audit.#"]})),
    )
    .await;
    let sub = sub["id"].as_str().unwrap().to_owned();
    ok(
        gp,
        &key,
        Method::PATCH,
        &format!("/v1/subscriptions/{sub}"),
        Some(json!({"topics": ["audit.#", "more.#"]})),
    )
    .await;
    let event = gp
        .publish(&key, "audit.created", &json!({"n": 1}))
        .await
        .unwrap();
    ok(
        gp,
        &key,
        Method::POST,
        "/v1/replay",
        Some(json!({"event_id": event["id"]})),
    )
    .await;
    ok(
        gp,
        &key,
        Method::POST,
        "/v1/dlq/requeue",
        Some(json!({"endpoint_id": ep})),
    )
    .await;
    ok(
        gp,
        &key,
        Method::DELETE,
        &format!("/v1/subscriptions/{sub}"),
        None,
    )
    .await;
    // Refused: no such endpoint. Nothing changes, nothing is recorded.
    let (s, _) = gp
        .call(
            &key,
            Method::POST,
            "/v1/subscriptions",
            Some(json!({"endpoint_id": "ep_01M8X9AAAAAAAAAAAAAAAAAAAA", "topics": ["x.#"]})),
        )
        .await
        .unwrap();
    assert!(s.is_client_error(), "{s}");
    ok(
        gp,
        &key,
        Method::DELETE,
        &format!("/v1/endpoints/{ep}"),
        None,
    )
    .await;
    ok(
        gp,
        ADMIN_TOKEN,
        Method::DELETE,
        &format!("/v1/tenants/{tenant}/keys/{key_id}"),
        None,
    )
    .await;
    (tenant, ep, "req-audit-reveal-1".to_owned())
}

async fn check(backend: &Backend) {
    let dir = tempfile::tempdir().unwrap();
    let gp = Gp::start(dir.path(), &backend.env(&[])).await.unwrap();
    let rx = Receiver::start(Behaviour::Ok, None).await.unwrap();
    let (tenant, ep, reveal_id) = session(&gp, &rx).await;

    let records = audit(&gp, ADMIN_TOKEN, "").await;
    let mine: Vec<&Value> = records
        .iter()
        .filter(|r| r["tenant_id"] == tenant.as_str())
        .collect();
    let actions: Vec<&str> = mine.iter().map(|r| r["action"].as_str().unwrap()).collect();
    assert_eq!(
        actions,
        [
            "tenant.create",
            "tenant.update",
            "api_key.create",
            "endpoint.create",
            "endpoint.update",
            "endpoint.secret.reveal",
            "endpoint.secret.rotate",
            "subscription.create",
            "subscription.update",
            "replay.create",
            "dlq.requeue",
            "subscription.delete",
            "endpoint.delete",
            "api_key.revoke",
        ],
        "{}",
        backend.name
    );
    for (i, r) in mine.iter().enumerate() {
        assert_eq!(r["seq"], i as u64 + 1, "{r}");
        assert_eq!(r["client_addr"], "127.0.0.1", "{r}");
        assert!(
            r["request_id"].as_str().is_some_and(|s| !s.is_empty()),
            "{r}"
        );
        assert!(r["hash"].as_str().is_some_and(|h| h.len() == 64), "{r}");
    }
    let admin_acts = [
        "tenant.create",
        "tenant.update",
        "api_key.create",
        "api_key.revoke",
    ];
    for r in &mine {
        let kind = r["actor"]["kind"].as_str().unwrap();
        let action = r["action"].as_str().unwrap();
        assert_eq!(kind == "admin", admin_acts.contains(&action), "{r}");
        if kind == "key" {
            assert!(
                r["actor"]["key_id"].as_str().unwrap().starts_with("key_"),
                "{r}"
            );
        }
    }
    let reveal = mine
        .iter()
        .find(|r| r["action"] == "endpoint.secret.reveal")
        .unwrap();
    assert_eq!(reveal["request_id"], reveal_id.as_str());
    assert_eq!(reveal["resource"], json!({"kind": "endpoint", "id": ep}));
    // Never a secret value.
    let text = serde_json::to_string(&records).unwrap();
    for secret in [SECRET, HEADER_VALUE, "audit-header-token-3e8d"] {
        assert!(!text.contains(secret), "{secret} in the audit log");
    }
    assert!(
        text.contains("\"Authorization\""),
        "header names are recorded"
    );

    // Filters.
    let deleted = audit(&gp, ADMIN_TOKEN, "?action=endpoint.delete").await;
    assert_eq!(deleted.len(), 1);
    let on_ep = audit(&gp, ADMIN_TOKEN, &format!("?resource={ep}")).await;
    // create, update, reveal, rotate, delete.
    assert_eq!(on_ep.len(), 5, "{on_ep:?}");
    let by_admin = audit(&gp, ADMIN_TOKEN, "?actor=admin").await;
    assert!(by_admin.iter().all(|r| r["actor"]["kind"] == "admin"));
    assert_eq!(
        audit(&gp, ADMIN_TOKEN, "?until=2000-01-01T00:00:00Z")
            .await
            .len(),
        0
    );
    let (s, bad) = gp
        .call(ADMIN_TOKEN, Method::GET, "/v1/audit?since=yesterday", None)
        .await
        .unwrap();
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{bad}");

    // A key of another tenant reads only its own records.
    let (other, _) = gp.tenant_with_key().await.unwrap();
    let reader = ok(
        &gp,
        ADMIN_TOKEN,
        Method::POST,
        &format!("/v1/tenants/{other}/keys"),
        Some(json!({"name": "siem", "scopes": ["audit:read"]})),
    )
    .await["key"]
        .as_str()
        .unwrap()
        .to_owned();
    let theirs = audit(&gp, &reader, "").await;
    assert!(!theirs.is_empty());
    assert!(
        theirs.iter().all(|r| r["tenant_id"] == other.as_str()),
        "{theirs:?}"
    );

    let verified = ok(&gp, ADMIN_TOKEN, Method::GET, "/v1/audit/verify", None).await;
    assert_eq!(verified["ok"], true, "{verified}");
    assert!(verified["records"].as_u64().unwrap() >= 14, "{verified}");

    streamed(&gp, &tenant).await;
}

async fn key_with(gp: &Gp, tenant: &str, scopes: &[&str]) -> String {
    ok(
        gp,
        ADMIN_TOKEN,
        Method::POST,
        &format!("/v1/tenants/{tenant}/keys"),
        Some(json!({"name": "stream", "scopes": scopes})),
    )
    .await["key"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// The tenant's audit records on its stream: the history equals `GET /v1/audit`, a new
/// record arrives live in cursor order with the events, a resume continues after its
/// cursor, and a token without `audit:read` never sees one.
async fn streamed(gp: &Gp, tenant: &str) {
    let wait = Duration::from_secs(10);
    let http = sse::client().unwrap();
    let siem = key_with(gp, tenant, &["events:read", "audit:read"]).await;
    let app = key_with(gp, tenant, &["events:read", "events:write"]).await;
    let mut listed = audit(gp, &siem, "").await;
    listed.sort_by_key(|r| r["seq"].as_u64());

    // History: every record, in order, as the audit API shows it.
    let mut history = Sse::connect(&http, &gp.base, &siem, "?topic=audit&from_cursor=0", None)
        .await
        .unwrap();
    let mut cursors = Vec::new();
    for record in &listed {
        let f = history.next_within(wait).await.unwrap().unwrap();
        assert_eq!(f.event, "audit", "{f:?}");
        assert_eq!(&f.json().unwrap(), record);
        cursors.push(f.cursor().unwrap());
    }
    assert!(cursors.windows(2).all(|w| w[0] < w[1]), "{cursors:?}");

    // Live: an admin act and a publish arrive in commit order on an unfiltered
    // stream; the application key's stream carries the event only.
    let mut everything = Sse::connect(&http, &gp.base, &siem, "", None)
        .await
        .unwrap();
    let mut events_only = Sse::connect(&http, &gp.base, &app, "", None).await.unwrap();
    ok(
        gp,
        ADMIN_TOKEN,
        Method::PATCH,
        &format!("/v1/tenants/{tenant}"),
        Some(json!({"name": "audited-live"})),
    )
    .await;
    let published = gp
        .publish(&app, "orders.created", &json!({"n": 2}))
        .await
        .unwrap();
    let first = everything.next_within(wait).await.unwrap().unwrap();
    let record = first.json().unwrap();
    assert_eq!(first.event, "audit");
    assert_eq!(record["action"], "tenant.update", "{record}");
    assert_eq!(record["actor"]["kind"], "admin", "{record}");
    assert!(first.cursor().unwrap() > *cursors.last().unwrap());
    let second = everything.next_within(wait).await.unwrap().unwrap();
    assert_eq!(second.event, "orders.created");
    assert_eq!(second.cursor(), published["cursor"].as_u64());
    assert_eq!(second.cursor(), Some(first.cursor().unwrap() + 1));
    let only = events_only.next_within(wait).await.unwrap().unwrap();
    assert_eq!(only.event, "orders.created", "{only:?}");

    // A resume after the last record but one gives the last one, then the live one.
    let before_last = cursors[cursors.len() - 2].to_string();
    let mut resumed = Sse::connect(&http, &gp.base, &siem, "?topic=audit", Some(&before_last))
        .await
        .unwrap();
    let f = resumed.next_within(wait).await.unwrap().unwrap();
    assert_eq!(f.cursor(), cursors.last().copied());
    let f = resumed.next_within(wait).await.unwrap().unwrap();
    assert_eq!(f.cursor(), first.cursor());

    // Without audit:read: asking for the topic is refused; history skips the records.
    let refused = Sse::connect(&http, &gp.base, &app, "?topic=audit", None)
        .await
        .err()
        .unwrap();
    assert!(refused.to_string().contains("403"), "{refused}");
    let mut app_history = Sse::connect(&http, &gp.base, &app, "?from_cursor=0", None)
        .await
        .unwrap();
    loop {
        let f = app_history.next_within(wait).await.unwrap().unwrap();
        assert_ne!(f.event, "audit", "{f:?}");
        if f.cursor() == published["cursor"].as_u64() {
            break;
        }
    }
    // Publishers cannot write to the topic.
    let (s, body) = gp
        .call(
            &app,
            Method::POST,
            "/v1/events",
            Some(json!({"topic": "audit", "payload": {}})),
        )
        .await
        .unwrap();
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["code"], "reserved_topic", "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scripted_admin_session_is_audited_on_redb() {
    check(&Backend::redb()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scripted_admin_session_is_audited_on_postgres() {
    check(&Backend::postgres()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_auto_disable_is_recorded_as_gatepulse_itself() {
    let dir = tempfile::tempdir().unwrap();
    let gp = Gp::start(dir.path(), &[]).await.unwrap();
    let rx = Receiver::start(Behaviour::Status(410), None).await.unwrap();
    let (tenant, key) = gp.tenant_with_key().await.unwrap();
    let (ep, _) = gp
        .subscribe(
            &key,
            json!({"url": format!("{}/gone", rx.url())}),
            &["gone.#"],
            None,
        )
        .await
        .unwrap();
    gp.publish(&key, "gone.now", &json!({})).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let record = loop {
        let found = audit(&gp, ADMIN_TOKEN, "?action=endpoint.auto_disable").await;
        if let Some(r) = found.into_iter().next() {
            break r;
        }
        assert!(Instant::now() < deadline, "no auto-disable record");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(record["actor"], json!({"kind": "system", "key_id": null}));
    assert_eq!(record["tenant_id"], tenant.as_str());
    assert_eq!(record["resource"]["id"], ep["id"]);
    assert!(
        record["details"]["reason"]
            .as_str()
            .is_some_and(|r| !r.is_empty()),
        "{record}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edited_record_breaks_the_chain_where_it_is() {
    let backend = Backend::postgres();
    let dir = tempfile::tempdir().unwrap();
    let gp = Gp::start(dir.path(), &backend.env(&[])).await.unwrap();
    let (tenant, key) = gp.tenant_with_key().await.unwrap();
    for i in 0..3 {
        ok(
            &gp,
            &key,
            Method::POST,
            "/v1/endpoints",
            Some(json!({"kind": "inbox", "description": format!("n{i}")})),
        )
        .await;
    }
    let before = ok(&gp, ADMIN_TOKEN, Method::GET, "/v1/audit/verify", None).await;
    assert_eq!(before["ok"], true, "{before}");
    // Someone with database access rewrites history: the 4th record of the tenant's
    // chain (the second endpoint) now claims another action.
    let schema = backend.schema().unwrap();
    let (client, conn) = tokio_postgres::connect(&pg_url(), tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    let n = client
        .execute(
            &format!(
                "UPDATE {schema}.audit_log SET data = convert_to(replace(convert_from(data, \
                 'UTF8'), 'endpoint.create', 'endpoint.delete'), 'UTF8') \
                 WHERE chain = $1 AND seq = 4"
            ),
            &[&tenant],
        )
        .await
        .unwrap();
    assert_eq!(n, 1);
    let after = ok(&gp, ADMIN_TOKEN, Method::GET, "/v1/audit/verify", None).await;
    assert_eq!(after["ok"], false, "{after}");
    assert_eq!(after["first_broken"]["tenant_id"], tenant.as_str());
    assert_eq!(after["first_broken"]["seq"], 4);
    assert_eq!(after["first_broken"]["reason"], "hash_mismatch");
    // `gp audit verify` says so and exits 1.
    let out = std::process::Command::new(gatepulse_e2e::gp_binary().unwrap())
        .args(["audit", "verify"])
        .env("GATEPULSE_URL", &gp.base)
        .env("GATEPULSE_TOKEN", ADMIN_TOKEN)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("hash_mismatch") && err.contains(&tenant),
        "{err}"
    );
}
