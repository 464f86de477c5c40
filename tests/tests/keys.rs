//! A revoked API key stops working at once on the node that revoked it, even right
//! after a request put it in that node's key cache; on PostgreSQL another node
//! sharing the database follows the revocation through the commit feed. Revoking a
//! key, or its expiry, also ends the streams it opened. `/metrics` can require a token.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use gatepulse_e2e::sse::{Sse, client};
use gatepulse_e2e::{ADMIN_TOKEN, Backend, Gp};
use reqwest::{Method, StatusCode};
use serde_json::json;

async fn status(gp: &Gp, key: &str) -> StatusCode {
    gp.call(key, Method::GET, "/v1/endpoints", None)
        .await
        .unwrap()
        .0
}

/// Revokes the tenant's one key.
async fn revoke(gp: &Gp, tenant: &str) {
    let keys = gp
        .list_all(ADMIN_TOKEN, &format!("/v1/tenants/{tenant}/keys"))
        .await
        .unwrap();
    assert_eq!(keys.len(), 1, "{keys:?}");
    let kid = keys[0]["id"].as_str().unwrap();
    let (s, body) = gp
        .call(
            ADMIN_TOKEN,
            Method::DELETE,
            &format!("/v1/tenants/{tenant}/keys/{kid}"),
            None,
        )
        .await
        .unwrap();
    assert!(s.is_success(), "{s} {body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_key_is_refused_at_once_on_redb() {
    let dir = tempfile::tempdir().unwrap();
    let gp = Gp::start(dir.path(), &[]).await.unwrap();
    let (tenant, key) = gp.tenant_with_key().await.unwrap();
    assert_eq!(status(&gp, &key).await, StatusCode::OK);
    revoke(&gp, &tenant).await;
    assert_eq!(status(&gp, &key).await, StatusCode::UNAUTHORIZED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_key_is_refused_on_every_node_sharing_postgres() {
    let backend = Backend::postgres();
    let (a_dir, b_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = Gp::start(a_dir.path(), &backend.env(&[])).await.unwrap();
    let b = Gp::start(b_dir.path(), &backend.env(&[])).await.unwrap();
    let (tenant, key) = a.tenant_with_key().await.unwrap();
    // Both nodes know (and cache) the key.
    assert_eq!(status(&a, &key).await, StatusCode::OK);
    assert_eq!(status(&b, &key).await, StatusCode::OK);
    revoke(&a, &tenant).await;
    assert_eq!(status(&a, &key).await, StatusCode::UNAUTHORIZED);
    // The other node hears of it through the feed (NOTIFY, or the poll at worst).
    let deadline = Instant::now() + Duration::from_secs(5);
    while status(&b, &key).await != StatusCode::UNAUTHORIZED {
        assert!(
            Instant::now() < deadline,
            "node b still accepts the revoked key"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Creates a key of `tenant` from `body` with the admin token: the status and answer.
async fn create_key(
    gp: &Gp,
    tenant: &str,
    body: serde_json::Value,
) -> (StatusCode, serde_json::Value) {
    gp.call(
        ADMIN_TOKEN,
        Method::POST,
        &format!("/v1/tenants/{tenant}/keys"),
        Some(body),
    )
    .await
    .unwrap()
}

/// Reads frames until a `gatepulse.disconnect` notice; returns its data.
async fn disconnect_notice(sse: &mut Sse) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        assert!(Instant::now() < deadline, "no disconnect notice");
        match sse.next_within(Duration::from_secs(10)).await.unwrap() {
            Some(f) if f.event == "gatepulse.disconnect" => return f.json().unwrap(),
            Some(_) => {}
            None => panic!("the stream closed without a disconnect notice"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoking_a_key_ends_the_streams_it_opened_and_only_those() {
    let dir = tempfile::tempdir().unwrap();
    let gp = Gp::start(dir.path(), &[]).await.unwrap();
    let (tenant, key) = gp.tenant_with_key().await.unwrap();
    let http = client().unwrap();
    let mut doomed = Sse::connect(&http, &gp.base, &key, "", None).await.unwrap();
    // The admin token's stream in the same tenant stays.
    let mut kept = http
        .get(format!("{}/v1/stream", gp.base))
        .bearer_auth(ADMIN_TOKEN)
        .header("GatePulse-Tenant", &tenant)
        .send()
        .await
        .unwrap();
    assert_eq!(kept.status(), StatusCode::OK);
    let published = gp.publish(&key, "keys.before", &json!({})).await.unwrap();
    let first = doomed
        .next_within(Duration::from_secs(10))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(first.cursor(), published["cursor"].as_u64());
    revoke(&gp, &tenant).await;
    let notice = disconnect_notice(&mut doomed).await;
    assert_eq!(notice["reason"], "key_revoked", "{notice}");
    // The last item sent: the event, or the key's own revocation record (audit
    // records of its tenant reach a key with `audit:read`, and the record commits
    // with the revocation).
    let last = notice["last_event_id"].as_u64().unwrap();
    let cursor = published["cursor"].as_u64().unwrap();
    assert!(last == cursor || last == cursor + 1, "{notice}");
    assert!(
        doomed
            .next_within(Duration::from_secs(5))
            .await
            .unwrap()
            .is_none()
    );
    // Reconnecting with the revoked key is refused.
    let again = http
        .get(format!("{}/v1/stream", gp.base))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), StatusCode::UNAUTHORIZED);
    // The admin's stream is still open and receives what comes next.
    let admin_key = create_key(
        &gp,
        &tenant,
        json!({"name": "next", "scopes": ["events:write"]}),
    )
    .await
    .1["key"]
        .as_str()
        .unwrap()
        .to_owned();
    gp.publish(&admin_key, "keys.after", &json!({}))
        .await
        .unwrap();
    let chunk = tokio::time::timeout(Duration::from_secs(10), async {
        let mut seen = String::new();
        while !seen.contains("keys.after") {
            let bytes = kept.chunk().await.unwrap().expect("admin stream open");
            seen.push_str(&String::from_utf8_lossy(&bytes));
        }
        seen
    })
    .await
    .unwrap();
    assert!(!chunk.contains("gatepulse.disconnect"), "{chunk}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expiring_key_stops_authenticating_and_ends_its_stream() {
    let dir = tempfile::tempdir().unwrap();
    let gp = Gp::start(dir.path(), &[]).await.unwrap();
    let (tenant, _) = gp.tenant_with_key().await.unwrap();
    // In the past: refused with the field named.
    let (s, err) = create_key(
        &gp,
        &tenant,
        json!({"name": "old", "scopes": ["events:read"], "expires_at": "2020-01-01T00:00:00Z"}),
    )
    .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{err}");
    assert_eq!(err["field"], "expires_at", "{err}");
    let at = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 3;
    let stamp = rfc3339_utc(at);
    let (s, created) = create_key(
        &gp,
        &tenant,
        json!({"name": "short", "scopes": ["events:read", "endpoints:manage"], "expires_at": stamp}),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{created}");
    assert_eq!(
        created["expires_at"].as_str().unwrap().get(..19),
        stamp.get(..19)
    );
    let key = created["key"].as_str().unwrap().to_owned();
    assert_eq!(status(&gp, &key).await, StatusCode::OK);
    let http = client().unwrap();
    let mut sse = Sse::connect(&http, &gp.base, &key, "", None).await.unwrap();
    let notice = disconnect_notice(&mut sse).await;
    assert_eq!(notice["reason"], "key_expired", "{notice}");
    let (s, body) = gp
        .call(&key, Method::GET, "/v1/endpoints", None)
        .await
        .unwrap();
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert_eq!(body["code"], "key_expired", "{body}");
}

/// `secs` since the epoch as RFC 3339 (UTC), without pulling in a date crate.
fn rfc3339_utc(secs: u64) -> String {
    let days = secs / 86_400;
    let rem = secs % 86_400;
    // Civil from days (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_can_require_a_bearer_token() {
    let dir = tempfile::tempdir().unwrap();
    let token = "metrics-token-0123456789abcdef";
    let gp = Gp::start(dir.path(), &[("GATEPULSE_API__METRICS_TOKEN", token)])
        .await
        .unwrap();
    let url = format!("{}/metrics", gp.base);
    let bare = gp.http.get(&url).send().await.unwrap();
    assert_eq!(bare.status(), StatusCode::UNAUTHORIZED);
    let problem: serde_json::Value = bare.json().await.unwrap();
    assert_eq!(problem["code"], "missing_token");
    let wrong = gp.http.get(&url).bearer_auth("nope").send().await.unwrap();
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    let ok = gp.http.get(&url).bearer_auth(token).send().await.unwrap();
    assert_eq!(ok.status(), StatusCode::OK);
    assert!(ok.text().await.unwrap().contains("gatepulse_"));
    // An API key or the admin token is not the metrics token.
    let admin = gp
        .http
        .get(&url)
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(admin.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whoami_says_what_the_token_is() {
    let dir = tempfile::tempdir().unwrap();
    let gp = Gp::start(dir.path(), &[]).await.unwrap();
    let (tenant, _) = gp.tenant_with_key().await.unwrap();
    let (s, created) = create_key(
        &gp,
        &tenant,
        json!({"name": "reader", "scopes": ["events:read", "stats:read"],
               "expires_at": "2099-01-01T00:00:00Z"}),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{created}");
    let key = created["key"].as_str().unwrap();
    let (s, me) = gp.call(key, Method::GET, "/v1/whoami", None).await.unwrap();
    assert_eq!(s, StatusCode::OK, "{me}");
    assert_eq!(me["kind"], "key");
    assert_eq!(me["tenant_id"], tenant.as_str());
    assert_eq!(me["key_id"], created["id"]);
    assert_eq!(me["scopes"], json!(["events:read", "stats:read"]));
    assert!(
        me["expires_at"].as_str().unwrap().starts_with("2099-01-01"),
        "{me}"
    );
    assert!(!me.to_string().contains(key), "the secret is never echoed");
    let (_, admin) = gp
        .call(ADMIN_TOKEN, Method::GET, "/v1/whoami", None)
        .await
        .unwrap();
    assert_eq!(admin["kind"], "admin");
    assert_eq!(admin["tenant_id"], serde_json::Value::Null);
    assert_eq!(admin["scopes"].as_array().unwrap().len(), 7, "{admin}");
}
