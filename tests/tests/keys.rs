//! A revoked API key stops working at once on the node that revoked it, even right
//! after a request put it in that node's key cache; on PostgreSQL another node
//! sharing the database follows the revocation through the commit feed.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use gatepulse_e2e::{ADMIN_TOKEN, Backend, Gp};
use reqwest::{Method, StatusCode};

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
