//! Secrets at rest through the public seams (`gatepulse::secrets` over a real redb
//! store): a ciphertext moved to another record does not open, a missing key version
//! is refused at start, rotation reseals every value and lets the old key go.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::sync::Arc;

use gatepulse::crypto::{CryptoError, Keyring};
use gatepulse::ids::{EndpointId, TenantId};
use gatepulse::secrets::*;
use gatepulse::store::backends::redb::{RedbOptions, RedbStore};
use gatepulse::store::feed::CommitFeed;
use gatepulse::store::{
    Endpoint, EndpointKind, PageRequest, RECORD_VERSION, SignatureScheme, Store, Tenant,
};

fn keys(spec: &str) -> Keyring {
    Keyring::load(spec, None).unwrap()
}

async fn store_with_endpoints(keys: &Keyring, n: usize) -> (tempfile::TempDir, Arc<dyn Store>) {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = Arc::new(
        RedbStore::open(
            &dir.path().join("s.redb"),
            RedbOptions::default(),
            CommitFeed::new(),
        )
        .unwrap(),
    );
    let tenant = Tenant {
        record_version: RECORD_VERSION,
        id: TenantId::generate(1),
        name: "t".into(),
        created_at: 1,
        retention: Default::default(),
    };
    store.create_tenant(tenant.clone()).await.unwrap();
    for i in 0..n {
        let id = EndpointId::generate(1_700_000_000_000 + i as i64);
        let headers = BTreeMap::from([("Authorization".to_owned(), format!("Bearer {i}"))]);
        let endpoint = Endpoint {
            record_version: ENDPOINT_RECORD_VERSION,
            secrets: vec![seal_secret(keys, &tenant.id, &id, &format!("whsec_{i}"), 1).unwrap()],
            // Every other endpoint also signs v1a, with an Ed25519 key sealed beside.
            signature_schemes: if i % 2 == 0 {
                vec![SignatureScheme::V1, SignatureScheme::V1a]
            } else {
                vec![SignatureScheme::V1]
            },
            signing_keys: if i % 2 == 0 {
                let key = format!("whsk_{}", "A".repeat(43) + "=");
                vec![seal_signing_key(keys, &tenant.id, &id, &key, 1).unwrap()]
            } else {
                vec![]
            },
            headers: seal_headers(keys, &tenant.id, &id, headers).unwrap(),
            id,
            tenant_id: tenant.id.clone(),
            kind: EndpointKind::Http,
            url: Some("https://example.com/".into()),
            description: String::new(),
            timeout_ms: None,
            rate_limit_per_sec: None,
            max_in_flight: None,
            retry_schedule_secs: None,
            enabled: true,
            disabled_reason: None,
            created_at: 1,
            updated_at: 1,
        };
        store.create_endpoint(endpoint, 1000).await.unwrap();
    }
    (dir, store)
}

async fn all(store: &dyn Store) -> Vec<Endpoint> {
    let tenant = store
        .list_tenants(PageRequest::default())
        .await
        .unwrap()
        .items
        .remove(0);
    let page = PageRequest {
        after: None,
        limit: 1000,
    };
    store.list_endpoints(&tenant.id, page).await.unwrap().items
}

#[tokio::test]
async fn a_sealed_value_copied_into_another_record_does_not_open() {
    let k = keys(&gatepulse::crypto::generate_key(1));
    let (_dir, store) = store_with_endpoints(&k, 2).await;
    let eps = all(store.as_ref()).await;
    let (a, b) = (&eps[0], &eps[1]);
    assert_eq!(open_secret(&k, a, &a.secrets[0]).unwrap(), "whsec_0");
    assert_eq!(open_headers(&k, b).unwrap()["Authorization"], "Bearer 1");
    let signing_key = open_signing_key(&k, a, &a.signing_keys[0]).unwrap();
    assert!(signing_key.starts_with("whsk_"), "{signing_key}");
    // b's record holding a's ciphertexts: neither the secret, the signing key nor the
    // header opens; nor does a's secret as a's signing key (the field is bound too).
    let mut forged = b.clone();
    forged.secrets = a.secrets.clone();
    forged.signing_keys = a.signing_keys.clone();
    forged.headers = a.headers.clone();
    assert!(matches!(
        open_signing_key(&k, &forged, &forged.signing_keys[0]),
        Err(CryptoError::Forged(1))
    ));
    assert!(matches!(
        open_signing_key(&k, a, &a.secrets[0]),
        Err(CryptoError::Forged(1))
    ));
    assert!(matches!(
        open_secret(&k, &forged, &forged.secrets[0]),
        Err(CryptoError::Forged(1))
    ));
    assert!(matches!(
        open_headers(&k, &forged),
        Err(CryptoError::Forged(1))
    ));
}

#[tokio::test]
async fn prepare_refuses_a_missing_version_and_rotation_reseals_every_value() {
    let (k1, k2) = (
        gatepulse::crypto::generate_key(1),
        gatepulse::crypto::generate_key(2),
    );
    let (_dir, store) = store_with_endpoints(&keys(&k1), 150).await;
    let err = prepare(store.as_ref(), &keys(&k2)).await.unwrap_err();
    assert!(
        matches!(&err, SecretsError::MissingKeys(v) if v == &[1]),
        "{err}"
    );
    assert!(err.to_string().contains("version(s) 1"), "{err}");

    let both = Arc::new(keys(&format!("{k1},{k2}")));
    let census = prepare(store.as_ref(), &both).await.unwrap().census;
    // 150 secrets, 150 header values, 75 signing keys.
    assert_eq!(census.by_key_version, BTreeMap::from([("1".into(), 375)]));
    let rotation = Arc::new(Rotation::default());
    let started = rotation.start(store.clone(), both.clone(), census.endpoints);
    assert_eq!(started.state, "running");
    while rotation.status().state == "running" {
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    let done = rotation.status();
    assert_eq!(
        (done.state, done.endpoints_done, done.endpoints_resealed),
        ("succeeded", 150, 150)
    );
    let after = census_of(store.as_ref()).await;
    assert_eq!(after.by_key_version, BTreeMap::from([("2".into(), 375)]));
    // Key 1 can go; values still open, and a second run has nothing to do.
    let only2 = Arc::new(keys(&k2));
    prepare(store.as_ref(), &only2).await.unwrap();
    let eps = all(store.as_ref()).await;
    assert_eq!(
        open_headers(&only2, &eps[7]).unwrap()["Authorization"],
        "Bearer 7"
    );
    assert!(
        open_signing_key(&only2, &eps[8], &eps[8].signing_keys[0])
            .unwrap()
            .starts_with("whsk_")
    );
    rotation.start(store.clone(), only2, 150);
    while rotation.status().state == "running" {
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    assert_eq!(rotation.status().endpoints_resealed, 0);
}

async fn census_of(store: &dyn Store) -> Census {
    census(store).await.unwrap()
}
