//! Store files written by earlier versions keep opening (SPEC CORE-6); a store from a
//! newer version opens read-only with an instruction. Fixtures: tests/fixtures/.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use gatepulse_e2e::Gp;
use reqwest::{Method, StatusCode};
use serde_json::json;

const FIXTURE_KEY: &str = "gpk_ZOCFtW86srMdEnEldSslRZ8yBvbcQ3T9iNt_ovu4X8A";
const FIXTURE_ENDPOINT: &str = "ep_01M8BSNQ2GTMA6SZ5R7585NWRE";

/// Settings that keep a fixture's age from mattering: the fixtures were written on a
/// fixed day and every test must pass on any later one. Idempotency records dedupe
/// for a century, retention never runs, and stream history has no age limit.
const AGELESS: &[(&str, &str)] = &[
    ("GATEPULSE_API__IDEMPOTENCY_WINDOW_SECS", "3155760000"),
    ("GATEPULSE_RETENTION__COMPACTION_CRON", ""),
    ("GATEPULSE_STREAM__BACKFILL_MAX_AGE_DAYS", "0"),
];

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
    let gp = Gp::start(dir.path(), AGELESS).await.unwrap();
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
async fn a_store_written_by_store_version_2_keeps_working() {
    const KEY: &str = "gpk_vPVXhYpg3PJLPtgRhTsNRCzkYU85nS3TCbqqDYoxw_I";
    const INBOX: &str = "ep_01M8C45AE67NV4H93G25GY9D04";
    let dir = data_dir_with("store-v2.redb");
    let gp = Gp::start(dir.path(), AGELESS).await.unwrap();
    let events = gp.list_all(KEY, "/v1/events").await.unwrap();
    let cursors: Vec<u64> = events
        .iter()
        .map(|e| e["cursor"].as_u64().unwrap())
        .collect();
    assert_eq!(cursors, [1, 2, 5]);
    // The stream holds the events and the attempt statuses between them.
    let http = gatepulse_e2e::sse::client().unwrap();
    let mut stream = gatepulse_e2e::sse::Sse::connect(&http, &gp.base, KEY, "?from_cursor=0", None)
        .await
        .unwrap();
    let mut topics = Vec::new();
    for _ in 0..6 {
        let f = stream
            .next_within(std::time::Duration::from_secs(30))
            .await
            .unwrap()
            .unwrap();
        topics.push((f.cursor().unwrap(), f.event));
    }
    let statuses: Vec<u64> = topics
        .iter()
        .filter(|(_, t)| t == "deliveries.status")
        .map(|(c, _)| *c)
        .collect();
    assert_eq!(statuses, [3, 4, 6]);
    // Captured messages and the subscription's mapping survive.
    let messages = gp
        .list_all(KEY, &format!("/v1/inbox/{INBOX}/messages"))
        .await
        .unwrap();
    assert_eq!(messages.len(), 3);
    assert!(
        messages[0]["body"]
            .as_str()
            .unwrap()
            .contains("\"mapped\":true")
    );
    let (s, next) = gp
        .call(
            KEY,
            Method::POST,
            "/v1/events",
            Some(json!({"topic": "fixture.created", "payload": {"n": 4}})),
        )
        .await
        .unwrap();
    assert_eq!(s, StatusCode::ACCEPTED);
    assert!(next["cursor"].as_u64().unwrap() >= 7, "{next}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while gp
        .list_all(KEY, &format!("/v1/inbox/{INBOX}/messages"))
        .await
        .unwrap()
        .len()
        < 4
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the new event was not captured"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_from_a_newer_version_opens_read_only_with_an_instruction() {
    let dir = data_dir_with("store-newer.redb");
    // The node starts but never reports ready.
    let mut gp = Gp::start_unready(dir.path(), AGELESS).await.unwrap();
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
