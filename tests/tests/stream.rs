//! The tenant stream over SSE (SPEC STR-1..4) against the real binary: resume with
//! Last-Event-ID across dropped connections and a server restart, publishes racing
//! with backfill, reset frames, delivery statuses and slow clients.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashSet;
use std::time::Duration;

use gatepulse_e2e::receiver::{Behaviour, Receiver};
use gatepulse_e2e::sse::{self, Frame, Sse};
use gatepulse_e2e::{Backend, Gp};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(30);

async fn publish(gp: &Gp, key: &str, topic: &str, payload: Value) -> u64 {
    let out = gp.publish(key, topic, &payload).await.unwrap();
    out["cursor"].as_u64().unwrap()
}

async fn publish_batch(gp: &Gp, key: &str, events: Vec<Value>) {
    let (s, out) = gp
        .call(
            key,
            Method::POST,
            "/v1/events/batch",
            Some(json!({ "events": events })),
        )
        .await
        .unwrap();
    assert_eq!(s, StatusCode::ACCEPTED, "{out}");
}

/// Reads data frames of `topic` until `done` says so; returns them.
async fn read_until(sse: &mut Sse, mut done: impl FnMut(&[Frame]) -> bool) -> Vec<Frame> {
    let mut frames = Vec::new();
    while !done(&frames) {
        let f = match sse.next_within(WAIT).await {
            Ok(f) => f.expect("stream ended early"),
            Err(e) => panic!("{e}; got so far: {frames:#?}"),
        };
        frames.push(f);
    }
    frames
}

fn ns(frames: &[Frame]) -> Vec<u64> {
    frames
        .iter()
        .map(|f| f.json().unwrap()["payload"]["n"].as_u64().unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_client_resumes_with_last_event_id_with_no_gap_or_duplicate() {
    a_restarted_client_resumes_with_last_event_id_with_no_gap_or_duplicate_on(Backend::redb())
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_client_resumes_with_last_event_id_with_no_gap_or_duplicate_on_postgres() {
    a_restarted_client_resumes_with_last_event_id_with_no_gap_or_duplicate_on(Backend::postgres())
        .await;
}

async fn a_restarted_client_resumes_with_last_event_id_with_no_gap_or_duplicate_on(
    backend: Backend,
) {
    let dir = tempfile::tempdir().unwrap();
    let mut gp = Gp::start(dir.path(), &backend.env(&[])).await.unwrap();
    let (_, key) = gp.tenant_with_key().await.unwrap();
    let http = sse::client().unwrap();
    // Matching events interleaved with others the topic filter leaves out.
    for n in 1..=40u64 {
        publish(&gp, &key, "orders.created", json!({"n": n})).await;
        if n % 3 == 0 {
            publish(&gp, &key, "users.created", json!({"n": n})).await;
        }
    }
    let mut s = Sse::connect(
        &http,
        &gp.base,
        &key,
        "?topic=orders.%23&from_cursor=0",
        None,
    )
    .await
    .unwrap();
    assert_eq!(
        s.response_header("cache-control").as_deref(),
        Some("no-cache")
    );
    assert_eq!(
        s.response_header("x-accel-buffering").as_deref(),
        Some("no")
    );
    let mut seen = read_until(&mut s, |f| f.len() == 15).await;
    assert!(s.retry_ms.is_some(), "a retry hint comes first");
    assert!(seen.iter().all(|f| f.event == "orders.created"));
    // The client drops mid-stream; publishing goes on while it is away.
    drop(s);
    for n in 41..=60u64 {
        publish(&gp, &key, "orders.created", json!({"n": n})).await;
    }
    let last = seen.last().unwrap().id.clone().unwrap();
    let mut s = Sse::connect(&http, &gp.base, &key, "?topic=orders.%23", Some(&last))
        .await
        .unwrap();
    // Publishes while connected arrive live.
    let gp_base = gp.base.clone();
    let publisher = {
        let key = key.clone();
        let http = gp.http.clone();
        tokio::spawn(async move {
            for n in 61..=70u64 {
                let r = http
                    .post(format!("{gp_base}/v1/events"))
                    .bearer_auth(&key)
                    .json(&json!({"topic": "orders.created", "payload": {"n": n}}))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), StatusCode::ACCEPTED);
            }
        })
    };
    let more = read_until(&mut s, |f| ns(f).last() == Some(&70)).await;
    publisher.await.unwrap();
    seen.extend(more);
    let last = s.last_event_id.clone().unwrap();
    // The server restarts (graceful: open streams end promptly).
    let code = gp.terminate().unwrap();
    assert_eq!(code, 0);
    assert!(
        s.next_within(WAIT).await.unwrap().is_none(),
        "stream ends on shutdown"
    );
    gp.restart().await.unwrap();
    for n in 71..=80u64 {
        publish(&gp, &key, "orders.created", json!({"n": n})).await;
    }
    let mut s = Sse::connect(&http, &gp.base, &key, "?topic=orders.%23", Some(&last))
        .await
        .unwrap();
    seen.extend(read_until(&mut s, |f| ns(f).last() == Some(&80)).await);
    assert_eq!(
        ns(&seen),
        (1..=80).collect::<Vec<_>>(),
        "exactly the published sequence"
    );
    let cursors: Vec<u64> = seen.iter().map(|f| f.cursor().unwrap()).collect();
    assert!(cursors.windows(2).all(|w| w[0] < w[1]));
    // The ids are the cursors of GET /v1/events.
    let events = gp
        .list_all(&key, "/v1/events?topic=orders.%23")
        .await
        .unwrap();
    let listed: Vec<u64> = events
        .iter()
        .map(|e| e["cursor"].as_u64().unwrap())
        .collect();
    assert_eq!(listed, cursors);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publishes_racing_with_backfill_arrive_once_and_in_order() {
    publishes_racing_with_backfill_arrive_once_and_in_order_on(Backend::redb()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publishes_racing_with_backfill_arrive_once_and_in_order_on_postgres() {
    publishes_racing_with_backfill_arrive_once_and_in_order_on(Backend::postgres()).await;
}

async fn publishes_racing_with_backfill_arrive_once_and_in_order_on(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let gp = Gp::start(dir.path(), &backend.env(&[])).await.unwrap();
    let (_, key) = gp.tenant_with_key().await.unwrap();
    for b in 0..4u64 {
        let events = (0..250u64)
            .map(|i| json!({"topic": "race.old", "payload": {"n": b * 250 + i}}))
            .collect();
        publish_batch(&gp, &key, events).await;
    }
    let http = sse::client().unwrap();
    // Four publishers race with the client's backfill.
    let mut tasks = Vec::new();
    for p in 0..4u64 {
        let (http, base, key) = (gp.http.clone(), gp.base.clone(), key.clone());
        tasks.push(tokio::spawn(async move {
            for i in 0..250u64 {
                let r = http
                    .post(format!("{base}/v1/events"))
                    .bearer_auth(&key)
                    .json(&json!({"topic": "race.new", "payload": {"n": 1000 + p * 250 + i}}))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), StatusCode::ACCEPTED);
            }
        }));
    }
    let mut s = Sse::connect(&http, &gp.base, &key, "?topic=race.%23&from_cursor=0", None)
        .await
        .unwrap();
    let frames = read_until(&mut s, |f| f.len() == 2000).await;
    for t in tasks {
        t.await.unwrap();
    }
    let cursors: Vec<u64> = frames.iter().map(|f| f.cursor().unwrap()).collect();
    assert!(
        cursors.windows(2).all(|w| w[0] < w[1]),
        "in order, no duplicate"
    );
    let got: HashSet<u64> = ns(&frames).into_iter().collect();
    assert_eq!(got.len(), 2000);
    assert_eq!(got, (0..2000).collect());
    // Nothing more than the published events.
    assert!(
        tokio::time::timeout(Duration::from_millis(500), s.next())
            .await
            .is_err()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cursor_out_of_reach_gets_a_reset_frame_first() {
    let dir = tempfile::tempdir().unwrap();
    let gp = Gp::start(
        dir.path(),
        &[("GATEPULSE_STREAM__BACKFILL_MAX_EVENTS", "10")],
    )
    .await
    .unwrap();
    let (_, key) = gp.tenant_with_key().await.unwrap();
    let mut head = 0;
    for n in 1..=30u64 {
        head = publish(&gp, &key, "r.x", json!({"n": n})).await;
    }
    let http = sse::client().unwrap();

    // Far behind the head, over the limit of 10.
    let mut s = Sse::connect(&http, &gp.base, &key, "?from_cursor=5", None)
        .await
        .unwrap();
    let reset = s.next_within(WAIT).await.unwrap().unwrap();
    assert_eq!(reset.event, "gatepulse.reset");
    // The tenant's first positions are audit records (its creation, its key's).
    let base = head - 30;
    assert_eq!(reset.cursor(), Some(base + 20));
    let r = reset.json().unwrap();
    assert_eq!(r["reason"], "backfill_max_events");
    assert_eq!(r["requested_cursor"], 5);
    assert_eq!(r["resumed_after"], base + 20);
    assert_eq!(r["head"], head);
    assert_eq!(r["oldest_available"], 1);
    let frames = read_until(&mut s, |f| f.len() == 10).await;
    assert_eq!(ns(&frames), (21..=30).collect::<Vec<_>>());

    // Within the limit: no reset.
    let query = format!("?from_cursor={}", base + 25);
    let mut s = Sse::connect(&http, &gp.base, &key, &query, None)
        .await
        .unwrap();
    let frames = read_until(&mut s, |f| f.len() == 5).await;
    assert_eq!(ns(&frames), (26..=30).collect::<Vec<_>>());

    // A cursor past the head (a restored or different store): reset to the head.
    let mut s = Sse::connect(&http, &gp.base, &key, "", Some("1000"))
        .await
        .unwrap();
    let reset = s.next_within(WAIT).await.unwrap().unwrap();
    assert_eq!(reset.event, "gatepulse.reset");
    assert_eq!(reset.json().unwrap()["reason"], "cursor_ahead");
    assert_eq!(reset.cursor(), Some(head));
    publish(&gp, &key, "r.x", json!({"n": 31})).await;
    let next = s.next_within(WAIT).await.unwrap().unwrap();
    assert_eq!(next.cursor(), Some(head + 1));

    // Without a cursor: live only.
    let mut s = Sse::connect(&http, &gp.base, &key, "", None).await.unwrap();
    publish(&gp, &key, "r.x", json!({"n": 32})).await;
    let next = s.next_within(WAIT).await.unwrap().unwrap();
    assert_eq!(ns(&[next]), vec![32]);

    // Bad input gets a problem, not a stream.
    let r = http
        .get(format!("{}/v1/stream", gp.base))
        .bearer_auth(&key)
        .header("last-event-id", "abc")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let p: Value = r.json().await.unwrap();
    assert_eq!(p["code"], "invalid_last_event_id");
    let (s, p) = gp
        .call(&key, Method::GET, "/v1/stream?topic=a..b", None)
        .await
        .unwrap();
    assert_eq!(
        (s, p["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("invalid_field"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_attempt_is_a_deliveries_status_item() {
    every_attempt_is_a_deliveries_status_item_on(Backend::redb()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_attempt_is_a_deliveries_status_item_on_postgres() {
    every_attempt_is_a_deliveries_status_item_on(Backend::postgres()).await;
}

async fn every_attempt_is_a_deliveries_status_item_on(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let gp = Gp::start(
        dir.path(),
        &backend.env(&[("GATEPULSE_DELIVERY__RETRY_JITTER", "0")]),
    )
    .await
    .unwrap();
    let (_, key) = gp.tenant_with_key().await.unwrap();
    let ok = Receiver::start(Behaviour::Ok, None).await.unwrap();
    let flaky = Receiver::start(Behaviour::FailFirst(1), None)
        .await
        .unwrap();
    let mut endpoints = Vec::new();
    for rx in [&ok, &flaky] {
        let (ep, _) = gp
            .subscribe(
                &key,
                json!({"url": rx.url(), "retry_schedule_secs": [1]}),
                &["pay.#"],
                None,
            )
            .await
            .unwrap();
        endpoints.push(ep["id"].as_str().unwrap().to_owned());
    }
    // Publishers cannot write the stream's own topics.
    let (s, p) = gp
        .call(
            &key,
            Method::POST,
            "/v1/events",
            Some(json!({"topic": "deliveries.status", "payload": {}})),
        )
        .await
        .unwrap();
    assert_eq!(
        (s, p["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("reserved_topic"))
    );

    let http = sse::client().unwrap();
    let mut all = Sse::connect(&http, &gp.base, &key, "?from_cursor=0", None)
        .await
        .unwrap();
    let cursor = publish(&gp, &key, "pay.done", json!({"n": 1})).await;
    // ok: succeeded; flaky: retrying (500), then succeeded.
    let frames = read_until(&mut all, |f| {
        f.iter().filter(|f| f.event == "deliveries.status").count() == 3
    })
    .await;
    // The tenant's audit records come first in its history.
    let frames: Vec<_> = frames.into_iter().filter(|f| f.event != "audit").collect();
    assert_eq!(frames[0].event, "pay.done");
    assert_eq!(frames[0].cursor(), Some(cursor));
    let statuses: Vec<Value> = frames
        .iter()
        .filter(|f| f.event == "deliveries.status")
        .map(|f| f.json().unwrap())
        .collect();
    let cursors: Vec<u64> = frames.iter().map(|f| f.cursor().unwrap()).collect();
    assert_eq!(
        cursors,
        (cursor..cursor + 4).collect::<Vec<_>>(),
        "one cursor sequence"
    );
    let event_id = frames[0].json().unwrap()["id"].clone();
    for s in &statuses {
        assert_eq!(s["event_id"], event_id);
        for field in ["attempt_id", "delivery_id", "endpoint_id", "status"] {
            assert!(s[field].is_string(), "{field} in {s}");
        }
        assert!(s["latency_ms"].is_u64());
    }
    let of = |ep: &str| -> Vec<(String, u64)> {
        statuses
            .iter()
            .filter(|s| s["endpoint_id"] == ep)
            .map(|s| {
                (
                    s["status"].as_str().unwrap().to_owned(),
                    s["http_code"].as_u64().unwrap(),
                )
            })
            .collect()
    };
    assert_eq!(of(&endpoints[0]), vec![("succeeded".to_owned(), 200)]);
    assert_eq!(
        of(&endpoints[1]),
        vec![("retrying".to_owned(), 500), ("succeeded".to_owned(), 200)]
    );
    // The attempt ids are those of the delivery's attempts.
    let delivery = statuses[0]["delivery_id"].as_str().unwrap();
    let (s, d) = gp
        .call(
            &key,
            Method::GET,
            &format!("/v1/deliveries/{delivery}"),
            None,
        )
        .await
        .unwrap();
    assert_eq!(s, StatusCode::OK);
    let attempt_ids: Vec<&Value> = d["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| &a["id"])
        .collect();
    assert!(attempt_ids.contains(&&statuses[0]["attempt_id"]), "{d}");

    // A stream of statuses only, resumed from the start: history has them too.
    let mut only = Sse::connect(
        &http,
        &gp.base,
        &key,
        "?topic=deliveries.status&from_cursor=0",
        None,
    )
    .await
    .unwrap();
    let again = read_until(&mut only, |f| f.len() == 3).await;
    assert!(again.iter().all(|f| f.event == "deliveries.status"));
    assert_eq!(
        again.iter().map(|f| f.json().unwrap()).collect::<Vec<_>>(),
        statuses
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_client_is_disconnected_and_the_others_are_unaffected() {
    let dir = tempfile::tempdir().unwrap();
    let gp = Gp::start(
        dir.path(),
        &[
            ("GATEPULSE_STREAM__CLIENT_BUFFER_BYTES", "65536"),
            ("GATEPULSE_STREAM__SLOW_CLIENT_TIMEOUT_MS", "300"),
            ("GATEPULSE_API__WRITE_TIMEOUT_SECS", "300"),
        ],
    )
    .await
    .unwrap();
    let (_, key) = gp.tenant_with_key().await.unwrap();
    let http = sse::client().unwrap();
    // The slow client connects and then reads nothing.
    let mut slow = Sse::connect(&http, &gp.base, &key, "?from_cursor=0", None)
        .await
        .unwrap();
    let fast = Sse::connect(&http, &gp.base, &key, "?from_cursor=0", None)
        .await
        .unwrap();
    let reader = tokio::spawn(async move {
        let mut fast = fast;
        let mut cursors = Vec::new();
        while cursors.len() < 3000 {
            match fast.next_within(WAIT).await.unwrap() {
                Some(f) => cursors.push(f.cursor().unwrap()),
                None => panic!("the fast client was disconnected after {}", cursors.len()),
            }
        }
        cursors
    });
    // 3000 events of ~10 KB: far more than socket buffers hold.
    let filler = "x".repeat(10_000);
    for b in 0..30u64 {
        let events = (0..100u64)
            .map(|i| json!({"topic": "bulk.x", "payload": {"n": b * 100 + i, "pad": filler}}))
            .collect();
        publish_batch(&gp, &key, events).await;
    }
    let cursors = reader.await.unwrap();
    assert_eq!(cursors, (1..=3000).collect::<Vec<_>>());
    // The slow one was cut off.
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let text = gp
            .http
            .get(format!("{}/metrics", gp.base))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        if text.contains("gatepulse_stream_disconnects_total{reason=\"slow_client\"} 1") {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no slow_client disconnect:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Reading now, it gets what was buffered, then the notice, then the end.
    let mut got = Vec::new();
    let mut notice = None;
    while let Some(f) = slow.next_within(WAIT).await.unwrap() {
        if f.event == "gatepulse.disconnect" {
            notice = Some(f);
        } else {
            got.push(f.cursor().unwrap());
        }
    }
    assert!(
        got.len() < 3000,
        "the slow client did not get everything live"
    );
    assert_eq!(got, (1..=got.len() as u64).collect::<Vec<_>>());
    let notice = notice.expect("a disconnect notice").json().unwrap();
    assert_eq!(notice["reason"], "slow_client");
    assert_eq!(notice["last_event_id"], *got.last().unwrap());
    // It resumes from the store with no gap.
    let last = got.last().unwrap().to_string();
    let mut again = Sse::connect(&http, &gp.base, &key, "", Some(&last))
        .await
        .unwrap();
    let rest = read_until(&mut again, |f| f.len() as u64 == 3000 - got.len() as u64).await;
    let rest: Vec<u64> = rest.iter().map(|f| f.cursor().unwrap()).collect();
    assert_eq!(rest, (got.len() as u64 + 1..=3000).collect::<Vec<_>>());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gp_tail_shows_one_endpoints_attempts_live() {
    use tokio::io::{AsyncBufReadExt, BufReader};

    let dir = tempfile::tempdir().unwrap();
    let gp = Gp::start(dir.path(), &[]).await.unwrap();
    let (_, key) = gp.tenant_with_key().await.unwrap();
    let ok = Receiver::start(Behaviour::Ok, None).await.unwrap();
    let failing = Receiver::start(Behaviour::Status(503), None).await.unwrap();
    let mut ids = Vec::new();
    for rx in [&ok, &failing] {
        let (ep, _) = gp
            .subscribe(&key, json!({"url": rx.url()}), &["tail.#"], None)
            .await
            .unwrap();
        ids.push(ep["id"].as_str().unwrap().to_owned());
    }
    let mut child = tokio::process::Command::new(gatepulse_e2e::gp_binary().unwrap())
        .args(["tail", "--endpoint", &ids[1]])
        .env("GATEPULSE_URL", &gp.base)
        .env("GATEPULSE_TOKEN", &key)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap()).lines();
    // It says when it follows; publishing before that would be history it skips.
    let hello = tokio::time::timeout(WAIT, stderr.next_line())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(hello.contains("following deliveries.status"), "{hello}");
    publish(&gp, &key, "tail.x", json!({"n": 1})).await;
    let mut stdout = BufReader::new(child.stdout.take().unwrap()).lines();
    let line = tokio::time::timeout(WAIT, stdout.next_line())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(line.contains(&ids[1]), "{line}");
    assert!(
        line.contains("retrying") && line.contains("503") && line.contains("#1"),
        "{line}"
    );
    // The other endpoint's attempt is not shown.
    assert!(!line.contains(&ids[0]));
    ok.wait_for(|l| !l.succeeded_ids.is_empty(), WAIT)
        .await
        .unwrap();
    child.kill().await.unwrap();
}
