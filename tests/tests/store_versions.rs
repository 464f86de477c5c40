//! Store files written by earlier versions keep opening (SPEC CORE-6); a store from a
//! newer version opens read-only with an instruction. Fixtures: tests/fixtures/.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use gatepulse_e2e::Gp;
use reqwest::{Method, StatusCode};
use serde_json::json;

const FIXTURE_KEY: &str = "gpk_ZOCFtW86srMdEnEldSslRZ8yBvbcQ3T9iNt_ovu4X8A";
const FIXTURE_ENDPOINT: &str = "ep_01M8BSNQ2GTMA6SZ5R7585NWRE";

fn data_dir_with(fixture: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let src = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(fixture);
    std::fs::copy(src, dir.path().join("gatepulse.redb")).unwrap();
    dir
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_written_by_store_version_1_keeps_working() {
    let dir = data_dir_with("store-v1.redb");
    let gp = Gp::start(dir.path(), &[]).await.unwrap();
    let events = gp.list_all(FIXTURE_KEY, "/v1/events").await.unwrap();
    assert_eq!(events.len(), 3);
    for (i, e) in events.iter().enumerate() {
        assert_eq!(e["cursor"], i as u64 + 1);
        assert_eq!(e["payload"], json!({"n": i + 1, "name": "é"}));
    }
    // Keys, idempotency records, endpoints with their secrets and filters survive.
    let (s, again) = gp
        .call(
            FIXTURE_KEY,
            Method::POST,
            "/v1/events",
            Some(
                json!({"topic": "fixture.created", "payload": {"n": 9}, "idempotency_key": "fx-2"}),
            ),
        )
        .await
        .unwrap();
    assert_eq!(s, StatusCode::ACCEPTED);
    assert_eq!(
        (again["deduped"].as_bool(), again["cursor"].as_u64()),
        (Some(true), Some(2))
    );
    let (_, secret) = gp
        .call(
            FIXTURE_KEY,
            Method::GET,
            &format!("/v1/endpoints/{FIXTURE_ENDPOINT}/secret"),
            None,
        )
        .await
        .unwrap();
    assert_eq!(secret["secret"], "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");
    let subs = gp.list_all(FIXTURE_KEY, "/v1/subscriptions").await.unwrap();
    assert_eq!(subs[0]["filter"], "payload.n > 0");
    assert_eq!(
        gp.list_all(FIXTURE_KEY, "/v1/deliveries")
            .await
            .unwrap()
            .len(),
        3
    );
    // New writes continue the stream and still go through the stored filter.
    let (_, next) = gp
        .call(
            FIXTURE_KEY,
            Method::POST,
            "/v1/events",
            Some(json!({"topic": "fixture.created", "payload": {"n": 0}})),
        )
        .await
        .unwrap();
    // After the fixture's three (attempt statuses may come in between).
    assert!(next["cursor"].as_u64().unwrap() >= 4, "{next}");
    let (_, ev) = gp
        .call(
            FIXTURE_KEY,
            Method::GET,
            &format!("/v1/events/{}", next["id"].as_str().unwrap()),
            None,
        )
        .await
        .unwrap();
    assert_eq!(
        ev["deliveries"].as_array().unwrap().len(),
        0,
        "filtered out by payload.n > 0"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_from_a_newer_version_opens_read_only_with_an_instruction() {
    let dir = data_dir_with("store-newer.redb");
    // The node starts but never reports ready.
    let mut gp = Gp::start_unready(dir.path(), &[]).await.unwrap();
    let (s, p) = gp.call("", Method::GET, "/readyz", None).await.unwrap();
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(p["code"], "store_read_only");
    assert!(
        p["detail"].as_str().unwrap().contains("newer GatePulse"),
        "{p}"
    );
    // Reads work; writes are refused with the same instruction.
    let events = gp.list_all(FIXTURE_KEY, "/v1/events").await.unwrap();
    assert_eq!(events.len(), 3);
    let (s, p) = gp
        .call(
            FIXTURE_KEY,
            Method::POST,
            "/v1/events",
            Some(json!({"topic": "fixture.created", "payload": {}})),
        )
        .await
        .unwrap();
    assert_eq!(
        (s, p["code"].as_str()),
        (StatusCode::SERVICE_UNAVAILABLE, Some("store_read_only"))
    );
    gp.terminate().unwrap();
    // The file is untouched: still the newer version.
    let bytes = std::fs::read(dir.path().join("gatepulse.redb")).unwrap();
    let fixture =
        std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/store-newer.redb"))
            .unwrap();
    assert_eq!(bytes.len(), fixture.len());
}
