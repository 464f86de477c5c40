//! Asymmetric signatures (Standard Webhooks `v1a`, Ed25519), against the real binary
//! on both backends: an endpoint that enables `v1a` gets a key pair, its public key is
//! readable through the API, deliveries carry `v1a` entries that verify with that key
//! alone (and `v1` entries the official library verifies, when both are on), a key
//! rotation signs with both keys during the grace period, and `v1a` alone drops `v1`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use gatepulse_e2e::receiver::{Behaviour, Receiver};
use gatepulse_e2e::{Backend, Gp};
use reqwest::{Method, StatusCode};
use serde_json::json;

const SECRET: &str = "whsec_c2lnbmF0dXJlcy1lMmUta25vd24tc2lnbmluZy1zZWNyZXQ=";

/// Publishes one event and waits for the receiver's next request.
async fn deliver_one(
    gp: &Gp,
    token: &str,
    rx: &Receiver,
    n: u64,
) -> gatepulse_e2e::receiver::Recorded {
    let before = rx.count();
    gp.publish(token, "sig.test", &json!({"n": n}))
        .await
        .unwrap();
    rx.wait_for(|l| l.requests.len() > before, Duration::from_secs(30))
        .await
        .unwrap();
    rx.requests().pop().unwrap()
}

async fn v1a_flow(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let gp = Gp::start(dir.path(), &backend.env(&[])).await.unwrap();
    let (_tenant, token) = gp.tenant_with_key().await.unwrap();
    let rx = Receiver::start(Behaviour::Ok, Some(SECRET.into()))
        .await
        .unwrap();

    // Bad scheme lists are refused with the field named.
    for bad in [json!([]), json!(["v2"]), json!("v1a")] {
        let (s, v) = gp
            .call(
                &token,
                Method::POST,
                "/v1/endpoints",
                Some(json!({"url": rx.url(), "signature_schemes": bad})),
            )
            .await
            .unwrap();
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{bad}: {v}");
        assert!(v["code"].is_string(), "{v}");
    }

    let (ep, _) = gp
        .subscribe(
            &token,
            json!({"url": rx.url(), "secret": SECRET,
                   "signature_schemes": ["v1a", "v1", "v1a"]}),
            &["sig.#"],
            None,
        )
        .await
        .unwrap();
    let id = ep["id"].as_str().unwrap().to_owned();
    assert_eq!(ep["signature_schemes"], json!(["v1", "v1a"]), "{ep}");
    let first_key = ep["public_key"].as_str().unwrap().to_owned();
    assert!(first_key.starts_with("whpk_"), "{ep}");
    let (s, pk) = gp
        .call(
            &token,
            Method::GET,
            &format!("/v1/endpoints/{id}/public-key"),
            None,
        )
        .await
        .unwrap();
    assert_eq!(s, StatusCode::OK, "{pk}");
    assert_eq!(pk["public_key"], first_key.as_str());
    assert_eq!(pk["keys"].as_array().unwrap().len(), 1, "{pk}");

    // Both schemes: the official library verifies v1, the public key verifies v1a.
    let got = deliver_one(&gp, &token, &rx, 1).await;
    assert_eq!(got.signature_ok, Some(true), "{:?}", got.signature_error);
    got.verify_v1a(&first_key).unwrap();
    let schemes: Vec<&str> = got
        .signatures()
        .iter()
        .map(|e| e.split(',').next().unwrap())
        .collect();
    assert_eq!(schemes, ["v1", "v1a"]);
    // A key nobody holds does not verify it.
    let (other, _) = gp
        .subscribe(
            &token,
            json!({"url": rx.url(), "signature_schemes": ["v1a"]}),
            &["other.#"],
            None,
        )
        .await
        .unwrap();
    let other_key = other["public_key"].as_str().unwrap();
    assert_ne!(other_key, first_key);
    assert!(got.verify_v1a(other_key).is_err());

    // Rotation: the new key signs at once, the old one beside it during the grace.
    let (s, rotated) = gp
        .call(
            &token,
            Method::POST,
            &format!("/v1/endpoints/{id}/public-key/rotate"),
            None,
        )
        .await
        .unwrap();
    assert_eq!(s, StatusCode::OK, "{rotated}");
    let new_key = rotated["public_key"].as_str().unwrap().to_owned();
    assert_ne!(new_key, first_key);
    let keys = rotated["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 2, "{rotated}");
    assert_eq!(keys[1]["public_key"], first_key.as_str());
    assert!(keys[0]["expires_at"].is_null() && keys[1]["expires_at"].is_string());
    let got = deliver_one(&gp, &token, &rx, 2).await;
    got.verify_v1a(&new_key).unwrap();
    got.verify_v1a(&first_key).unwrap();
    assert_eq!(got.signature_ok, Some(true), "{:?}", got.signature_error);

    // v1a alone: no v1 entry left for the symmetric secret to verify.
    let (s, patched) = gp
        .call(
            &token,
            Method::PATCH,
            &format!("/v1/endpoints/{id}"),
            Some(json!({"signature_schemes": ["v1a"]})),
        )
        .await
        .unwrap();
    assert_eq!(s, StatusCode::OK, "{patched}");
    assert_eq!(patched["public_key"], new_key.as_str(), "the pair is kept");
    let got = deliver_one(&gp, &token, &rx, 3).await;
    assert!(
        got.signatures().iter().all(|e| e.starts_with("v1a,")),
        "{:?}",
        got.signatures()
    );
    assert_eq!(got.signature_ok, Some(false));
    got.verify_v1a(&new_key).unwrap();

    // An endpoint without a pair says how to get one; rotating needs one too.
    let (plain, _) = gp
        .subscribe(&token, json!({"url": rx.url()}), &["plain.#"], None)
        .await
        .unwrap();
    assert_eq!(plain["signature_schemes"], json!(["v1"]));
    assert!(plain["public_key"].is_null(), "{plain}");
    for (method, path) in [(Method::GET, ""), (Method::POST, "/rotate")] {
        let (s, v) = gp
            .call(
                &token,
                method,
                &format!(
                    "/v1/endpoints/{}/public-key{path}",
                    plain["id"].as_str().unwrap()
                ),
                None,
            )
            .await
            .unwrap();
        assert_eq!(s, StatusCode::CONFLICT, "{v}");
        assert_eq!(v["code"], "signing_key_not_enabled", "{v}");
    }
    // Turning v1a on later generates the pair.
    let (s, enabled) = gp
        .call(
            &token,
            Method::PATCH,
            &format!("/v1/endpoints/{}", plain["id"].as_str().unwrap()),
            Some(json!({"signature_schemes": ["v1", "v1a"]})),
        )
        .await
        .unwrap();
    assert_eq!(s, StatusCode::OK, "{enabled}");
    let late_key = enabled["public_key"].as_str().unwrap();
    assert!(
        late_key.starts_with("whpk_") && late_key != new_key,
        "{enabled}"
    );

    // The rotation is on the audit trail.
    let records = gp.list_all(&token, "/v1/audit").await.unwrap();
    let actions: Vec<&str> = records
        .iter()
        .filter(|r| r["resource"]["id"] == id.as_str())
        .map(|r| r["action"].as_str().unwrap())
        .collect();
    assert!(
        actions.contains(&"endpoint.signing_key.rotate"),
        "{actions:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v1a_signatures_verify_with_the_public_key_and_rotate() {
    v1a_flow(Backend::redb()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v1a_signatures_on_postgres() {
    v1a_flow(Backend::postgres()).await;
}
