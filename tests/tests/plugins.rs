//! Transform pipelines end to end (SPEC TR-1..5): plugins built from `plugins/` are
//! uploaded to the real server, run on live deliveries after the mapping, and every
//! hostile plugin is contained: its deliveries fail with a precise error while an
//! unrelated subscription keeps receiving promptly and the server stays healthy.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::time::{Duration, Instant};

use gatepulse_e2e::receiver::{Behaviour, Receiver};
use gatepulse_e2e::{Gp, plugins};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(60);

async fn upload(
    gp: &Gp,
    key: &str,
    crate_name: &str,
    name: &str,
    version: &str,
) -> (StatusCode, Value) {
    let wasm = plugins::wasm(crate_name).unwrap();
    let r = gp
        .http
        .post(format!(
            "{}/v1/plugins?name={name}&version={version}",
            gp.base
        ))
        .bearer_auth(key)
        .header("content-type", "application/wasm")
        .body(wasm)
        .send()
        .await
        .unwrap();
    let s = r.status();
    (s, r.json().await.unwrap_or(Value::Null))
}

/// An endpoint at `rx` subscribed to `topics` with `transform`; returns (endpoint id,
/// subscription id, signing secret).
async fn subscribe(
    gp: &Gp,
    key: &str,
    rx: &Receiver,
    topic: &str,
    transform: Option<Value>,
) -> (String, String, String) {
    let (ep, sub) = gp
        .subscribe(
            key,
            json!({"url": rx.url()}),
            &[topic],
            transform.map(|t| json!({"transform": t})),
        )
        .await
        .unwrap();
    let (_, secret) = gp
        .call(
            key,
            Method::GET,
            &format!("/v1/endpoints/{}/secret", ep["id"].as_str().unwrap()),
            None,
        )
        .await
        .unwrap();
    (
        ep["id"].as_str().unwrap().to_owned(),
        sub["id"].as_str().unwrap().to_owned(),
        secret["secret"].as_str().unwrap().to_owned(),
    )
}

async fn publish(gp: &Gp, key: &str, topic: &str, payload: Value) -> String {
    let out = gp.publish(key, topic, &payload).await.unwrap();
    out["id"].as_str().unwrap().to_owned()
}

/// Waits until every delivery of `endpoint` is final; returns them.
async fn settled(gp: &Gp, key: &str, endpoint: &str, n: usize) -> Vec<Value> {
    let deadline = Instant::now() + WAIT;
    loop {
        let ds = gp
            .list_all(key, &format!("/v1/deliveries?endpoint_id={endpoint}"))
            .await
            .unwrap();
        let done = ds
            .iter()
            .filter(|d| d["status"] == "succeeded" || d["status"] == "dead")
            .count();
        if ds.len() == n && done == n {
            return ds;
        }
        assert!(
            Instant::now() < deadline,
            "deliveries of {endpoint} did not settle: {ds:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn attempts(gp: &Gp, key: &str, delivery: &Value) -> Vec<Value> {
    let (_, d) = gp
        .call(
            key,
            Method::GET,
            &format!("/v1/deliveries/{}", delivery["id"].as_str().unwrap()),
            None,
        )
        .await
        .unwrap();
    d["attempts"].as_array().unwrap().clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploaded_plugins_transform_live_deliveries_after_the_mapping() {
    let dir = tempfile::tempdir().unwrap();
    let gp = Gp::start(dir.path(), &[]).await.unwrap();
    let (_, key) = gp.tenant_with_key().await.unwrap();

    let (s, p) = upload(&gp, &key, "redact", "redact", "1.0.0").await;
    assert_eq!(s, StatusCode::CREATED, "{p}");
    assert_eq!(p["abi"], 1);
    assert_eq!(p["sha256"].as_str().unwrap().len(), 64);
    assert!(p["size"].as_u64().unwrap() > 0);
    // Versions are immutable.
    let (s, p) = upload(&gp, &key, "redact", "redact", "1.0.0").await;
    assert_eq!(
        (s, p["code"].as_str()),
        (StatusCode::CONFLICT, Some("already_exists"))
    );
    let (s, _) = upload(&gp, &key, "enrich", "enrich", "1.0.0").await;
    assert_eq!(s, StatusCode::CREATED);
    let (_, list) = gp
        .call(&key, Method::GET, "/v1/plugins", None)
        .await
        .unwrap();
    let names: Vec<&str> = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["enrich", "redact"]);

    let rx = Receiver::start(Behaviour::Ok, None).await.unwrap();
    let transform = json!({
        "mapping": {"version": 1, "ops": [
            {"op": "rename", "from": "payload.amount_cents", "to": "payload.amount.cents"},
            {"op": "set", "path": "payload.currency", "value": "EUR"}
        ]},
        "plugins": [
            {"name": "redact", "version": "1.0.0", "config": {"fields": ["customer.email"], "mode": "mask"}},
            {"name": "enrich", "version": "1.0.0", "config": {"add": {"source_topic": "topic"}}}
        ]
    });
    let (_, _, secret) = subscribe(&gp, &key, &rx, "orders.#", Some(transform.clone())).await;
    let event_id = publish(
        &gp,
        &key,
        "orders.created",
        json!({"amount_cents": 2599, "customer": {"email": "alice@example.com", "name": "Alice"}}),
    )
    .await;
    rx.wait_for(|l| !l.succeeded_ids.is_empty(), WAIT)
        .await
        .unwrap();
    let req = rx.requests().remove(0);
    assert_eq!(req.event_id(), Some(event_id.as_str()));
    let body: Value = serde_json::from_slice(&req.body).unwrap();
    assert_eq!(
        body,
        json!({"amount": {"cents": 2599}, "currency": "EUR",
               "customer": {"email": "****", "name": "Alice"}, "source_topic": "orders.created"})
    );
    // The signature covers the transformed bytes.
    req.verify_with(&secret).unwrap();

    // The preview runs the same stages, each timed.
    let (s, preview) = gp
        .call(
            &key,
            Method::POST,
            "/v1/subscriptions/preview",
            Some(json!({
                "subscription": {"topics": ["orders.#"], "transform": transform},
                "event": {"topic": "orders.created", "payload": {"amount_cents": 1, "customer": {"email": "b@x.io"}}}
            })),
        )
        .await
        .unwrap();
    assert_eq!(s, StatusCode::OK, "{preview}");
    let stages: Vec<&str> = preview["stages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["stage"].as_str().unwrap())
        .collect();
    assert_eq!(
        stages,
        [
            "topic",
            "filter",
            "mapping",
            "plugin:redact@1.0.0",
            "plugin:enrich@1.0.0"
        ]
    );
    assert!(
        preview["stages"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["took_us"].is_u64())
    );
    assert_eq!(preview["body"]["customer"]["email"], "****");

    // A subscription naming a plugin that is not uploaded is refused with its position.
    let (s, p) = gp
        .call(
            &key,
            Method::POST,
            "/v1/subscriptions/preview",
            Some(json!({
                "subscription": {"topics": ["x"], "transform": {"plugins": [{"name": "nope", "version": "1.0.0"}]}},
                "event": {"topic": "x", "payload": {}}
            })),
        )
        .await
        .unwrap();
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        (p["code"].as_str(), p["field"].as_str()),
        (Some("unknown_plugin"), Some("transform/plugins/0"))
    );
    // A bad mapping op is refused with the op's position.
    let (s, p) = gp
        .call(
            &key,
            Method::POST,
            "/v1/subscriptions/preview",
            Some(json!({
                "subscription": {"topics": ["x"], "transform": {"mapping": {"version": 1, "ops": [
                    {"op": "set", "path": "payload.a", "value": 1},
                    {"op": "set", "path": "payload.b", "expr": "lower(payload.x"}]}}},
                "event": {"topic": "x", "payload": {}}
            })),
        )
        .await
        .unwrap();
    assert_eq!(s, StatusCode::BAD_REQUEST, "{p}");
    assert_eq!(p["op"], 1, "{p}");
    assert!(
        p["field"]
            .as_str()
            .unwrap()
            .starts_with("transform/mapping/ops/1"),
        "{p}"
    );

    // A plugin in use cannot be deleted.
    let (s, p) = gp
        .call(&key, Method::DELETE, "/v1/plugins/redact/1.0.0", None)
        .await
        .unwrap();
    assert_eq!(
        (s, p["code"].as_str()),
        (StatusCode::CONFLICT, Some("plugin_in_use"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn modules_outside_the_abi_are_refused_at_upload() {
    let dir = tempfile::tempdir().unwrap();
    let gp = Gp::start(dir.path(), &[]).await.unwrap();
    let (_, key) = gp.tenant_with_key().await.unwrap();
    let (s, p) = upload(&gp, &key, "hostile-wrong-abi", "wrong", "1.0.0").await;
    assert_eq!(
        (s, p["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_plugin")),
        "{p}"
    );
    assert!(p["detail"].as_str().unwrap().contains("ABI"), "{p}");
    let r = gp
        .http
        .post(format!("{}/v1/plugins?name=junk&version=1.0.0", gp.base))
        .bearer_auth(&key)
        .body("not wasm at all")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let (s, p) = upload(&gp, &key, "redact", "Bad Name", "1.0.0").await;
    assert_eq!(
        (s, p["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("name"))
    );
    let (s, p) = upload(&gp, &key, "redact", "redact", "1.0").await;
    assert_eq!(
        (s, p["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("version"))
    );
    // WASI is not refused: its calls get stubs that grant nothing.
    let (s, p) = upload(&gp, &key, "hostile-wasi", "wasi", "1.0.0").await;
    assert_eq!(s, StatusCode::CREATED, "{p}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_plugins_are_contained_and_unrelated_deliveries_flow() {
    let dir = tempfile::tempdir().unwrap();
    let mut gp = Gp::start(dir.path(), &[]).await.unwrap();
    let (_, key) = gp.tenant_with_key().await.unwrap();
    let hostile = [
        (
            "hostile-loop",
            &["plugin_out_of_fuel", "plugin_deadline"][..],
        ),
        ("hostile-membomb", &["plugin_memory_limit"][..]),
        ("hostile-huge-output", &["plugin_output_too_large"][..]),
        ("hostile-panic", &["plugin_error"][..]),
        ("hostile-bad-json", &["plugin_output_not_json"][..]),
        ("hostile-wasi", &["plugin_error", "plugin_trap"][..]),
    ];
    let rss_before = gp.rss_kib();
    let mut endpoints = Vec::new();
    let mut receivers = Vec::new();
    for (crate_name, _) in &hostile {
        let name = crate_name.replace("hostile-", "h-");
        let (s, p) = upload(&gp, &key, crate_name, &name, "1.0.0").await;
        assert_eq!(s, StatusCode::CREATED, "{crate_name}: {p}");
        let rx = Receiver::start(Behaviour::Ok, None).await.unwrap();
        let t = json!({"plugins": [{"name": name, "version": "1.0.0"}]});
        let (ep, _, _) = subscribe(&gp, &key, &rx, "load.#", Some(t)).await;
        endpoints.push(ep);
        receivers.push(rx);
    }
    // The same hostile loop, failing open: the original payload goes out.
    let open_rx = Receiver::start(Behaviour::Ok, None).await.unwrap();
    let (open_ep, _, _) = subscribe(
        &gp,
        &key,
        &open_rx,
        "load.#",
        Some(json!({"plugins": [{"name": "h-loop", "version": "1.0.0"}], "on_error": "deliver_original"})),
    )
    .await;
    // An unrelated subscription without transforms.
    let clean = Receiver::start(Behaviour::Ok, None).await.unwrap();
    let (clean_ep, _, _) = subscribe(&gp, &key, &clean, "load.#", None).await;

    const N: usize = 20;
    let started = Instant::now();
    for i in 0..N {
        publish(&gp, &key, "load.x", json!({"n": i})).await;
    }
    clean
        .wait_for(|l| l.succeeded_ids.len() >= N, WAIT)
        .await
        .unwrap();
    println!(
        "unrelated subscription got {N} deliveries in {:?}",
        started.elapsed()
    );
    settled(&gp, &key, &clean_ep, N).await;

    for ((crate_name, kinds), ep) in hostile.iter().zip(&endpoints) {
        let ds = settled(&gp, &key, ep, N).await;
        for d in &ds {
            assert_eq!(d["status"], "dead", "{crate_name}: {d}");
        }
        let a = attempts(&gp, &key, &ds[0]).await;
        let kind = a[0]["error_kind"].as_str().unwrap_or_default().to_owned();
        assert!(kinds.contains(&kind.as_str()), "{crate_name}: {kind} {a:?}");
        let excerpt = a[0]["response_excerpt"].as_str().unwrap_or_default();
        assert!(
            excerpt.contains(&crate_name.replace("hostile-", "h-")),
            "{crate_name}: {excerpt}"
        );
        println!("{crate_name}: {kind}: {excerpt}");
    }
    for rx in &receivers {
        assert_eq!(rx.count(), 0, "a failed transform sends nothing");
    }
    // Failing open delivers the original payload.
    settled(&gp, &key, &open_ep, N).await;
    let body: Value = serde_json::from_slice(&open_rx.requests()[0].body).unwrap();
    assert!(body["n"].is_u64());
    // The panic's message is on the attempt.
    let ds = settled(&gp, &key, &endpoints[3], N).await;
    let a = attempts(&gp, &key, &ds[0]).await;
    assert!(
        a[0]["response_excerpt"].as_str().unwrap().contains("panic"),
        "{a:?}"
    );

    // Healthy, and memory bounded.
    let (s, _) = gp.call(&key, Method::GET, "/healthz", None).await.unwrap();
    assert_eq!(s, StatusCode::OK);
    if let (Some(before), Some(after)) = (rss_before, gp.rss_kib()) {
        println!("RSS {before} KiB → {after} KiB");
        assert!(
            after < before + 512 * 1024,
            "RSS grew from {before} to {after} KiB"
        );
    }
    assert_eq!(gp.terminate().unwrap(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_plugin_version_takes_over_under_traffic_without_restart() {
    let dir = tempfile::tempdir().unwrap();
    let gp = Gp::start(dir.path(), &[]).await.unwrap();
    let (_, key) = gp.tenant_with_key().await.unwrap();
    // Version 1 tags bodies "v1", version 2 "v2" (the same module, configured per
    // version reference: what changes is the subscription's reference).
    for v in ["1.0.0", "2.0.0"] {
        let (s, p) = upload(&gp, &key, "enrich", "tagger", v).await;
        assert_eq!(s, StatusCode::CREATED, "{p}");
    }
    let tag = |v: &str| {
        let field = if v == "1.0.0" {
            "payload.tags.a"
        } else {
            "payload.tags.b"
        };
        json!({"plugins": [{"name": "tagger", "version": v, "config": {"add": {"tag": {"copy": field}}}}]})
    };
    let rx = Receiver::start(Behaviour::Ok, None).await.unwrap();
    let (ep, sub, _) = subscribe(&gp, &key, &rx, "hot.#", Some(tag("1.0.0"))).await;
    let payload = |n: u64| json!({"n": n, "tags": {"a": "v1", "b": "v2"}});

    // Traffic while the subscription switches versions.
    let publisher = {
        let (http, base, key) = (gp.http.clone(), gp.base.clone(), key.clone());
        tokio::spawn(async move {
            for n in 0..200u64 {
                let r = http
                    .post(format!("{base}/v1/events"))
                    .bearer_auth(&key)
                    .json(&json!({"topic": "hot.x", "payload": {"n": n, "tags": {"a": "v1", "b": "v2"}}}))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), StatusCode::ACCEPTED);
            }
        })
    };
    rx.wait_for(|l| l.succeeded_ids.len() >= 20, WAIT)
        .await
        .unwrap();
    let (s, p) = gp
        .call(
            &key,
            Method::PATCH,
            &format!("/v1/subscriptions/{sub}"),
            Some(json!({"transform": tag("2.0.0")})),
        )
        .await
        .unwrap();
    assert_eq!(s, StatusCode::OK, "{p}");
    publisher.await.unwrap();
    publish(&gp, &key, "hot.x", payload(1000)).await;
    settled(&gp, &key, &ep, 201).await;
    let mut tags: HashMap<String, usize> = HashMap::new();
    let mut last_tag = String::new();
    for r in rx.requests() {
        let body: Value = serde_json::from_slice(&r.body).unwrap();
        let t = body["tag"].as_str().unwrap().to_owned();
        if body["n"] == 1000 {
            last_tag.clone_from(&t);
        }
        *tags.entry(t).or_default() += 1;
    }
    println!("bodies per version: {tags:?}");
    assert!(tags.get("v1").copied().unwrap_or(0) >= 20);
    assert_eq!(
        last_tag, "v2",
        "after the switch, new events use the new version"
    );
    assert_eq!(
        tags.values().sum::<usize>(),
        rx.count(),
        "every body carries a tag"
    );
    // The old version is no longer used and can go.
    let (s, _) = gp
        .call(&key, Method::DELETE, "/v1/plugins/tagger/1.0.0", None)
        .await
        .unwrap();
    assert_eq!(s, StatusCode::NO_CONTENT);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gp_plugins_tests_locally_and_uploads() {
    let dir = tempfile::tempdir().unwrap();
    let gp = Gp::start(dir.path(), &[]).await.unwrap();
    let (_, key) = gp.tenant_with_key().await.unwrap();
    let files = tempfile::tempdir().unwrap();
    let wasm = files.path().join("redact.wasm");
    std::fs::write(&wasm, plugins::wasm("redact").unwrap()).unwrap();
    let event = files.path().join("event.json");
    std::fs::write(
        &event,
        r#"{"topic":"a.b","payload":{"card":{"number":"4242424242424242"}}}"#,
    )
    .unwrap();
    let bin = gatepulse_e2e::gp_binary().unwrap();
    let run = |args: &[&str]| {
        std::process::Command::new(&bin)
            .args(args)
            .env("GATEPULSE_URL", &gp.base)
            .env("GATEPULSE_TOKEN", &key)
            .output()
            .unwrap()
    };
    let wasm_path = wasm.to_str().unwrap();
    // Locally, with the server's limits.
    let out = run(&[
        "plugins",
        "test",
        wasm_path,
        "--event",
        event.to_str().unwrap(),
        "--config",
        r#"{"fields":["card.number"],"mode":"mask","keep_last":4}"#,
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["outcome"], "emit");
    assert_eq!(report["body"]["card"]["number"], "****4242");
    assert!(report["fuel_used"].as_u64().unwrap() > 0);
    // A hostile module fails with its cause and a non-zero exit.
    let looping = files.path().join("loop.wasm");
    std::fs::write(&looping, plugins::wasm("hostile-loop").unwrap()).unwrap();
    let out = run(&[
        "plugins",
        "test",
        looping.to_str().unwrap(),
        "--event",
        event.to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("plugin_out_of_fuel"));
    // Upload and list through the API.
    let out = run(&[
        "plugins",
        "upload",
        wasm_path,
        "--name",
        "redact",
        "--version",
        "0.1.0",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = run(&["plugins", "list"]);
    let list: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(list["data"][0]["version"], "0.1.0");
    let out = run(&["plugins", "delete", "redact", "0.1.0"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_sends_the_bytes_of_the_first_attempt_even_after_the_transform_changed() {
    let dir = tempfile::tempdir().unwrap();
    let gp = Gp::start(dir.path(), &[("GATEPULSE_DELIVERY__RETRY_JITTER", "0")])
        .await
        .unwrap();
    let (_, key) = gp.tenant_with_key().await.unwrap();
    let rx = Receiver::start(Behaviour::FailFirst(1), None)
        .await
        .unwrap();
    let mapping = |v: u64| json!({"mapping": {"version": 1, "ops": [{"op": "set", "path": "payload.v", "value": v}]}});
    let (_, sub) = gp
        .subscribe(
            &key,
            json!({"url": rx.url(), "retry_schedule_secs": [2]}),
            &["r.#"],
            Some(json!({"transform": mapping(1)})),
        )
        .await
        .unwrap();
    publish(&gp, &key, "r.x", json!({"n": 1})).await;
    // The first attempt fails (500); the transform changes before the retry.
    rx.wait_for(|l| !l.requests.is_empty(), WAIT).await.unwrap();
    let (s, _) = gp
        .call(
            &key,
            Method::PATCH,
            &format!("/v1/subscriptions/{}", sub["id"].as_str().unwrap()),
            Some(json!({"transform": mapping(2)})),
        )
        .await
        .unwrap();
    assert_eq!(s, StatusCode::OK);
    rx.wait_for(|l| !l.succeeded_ids.is_empty(), WAIT)
        .await
        .unwrap();
    publish(&gp, &key, "r.x", json!({"n": 2})).await;
    rx.wait_for(|l| l.succeeded_ids.len() >= 2, WAIT)
        .await
        .unwrap();
    let bodies: Vec<Vec<u8>> = rx.requests().iter().map(|r| r.body.to_vec()).collect();
    // Each event: a failed attempt, then its retry (the receiver fails every first try).
    assert_eq!(bodies.len(), 4);
    assert_eq!(bodies[0], bodies[1], "the retry sends the same bytes");
    let first: Value = serde_json::from_slice(&bodies[1]).unwrap();
    let later: Value = serde_json::from_slice(&bodies[3]).unwrap();
    assert_eq!(
        (first["v"].as_u64(), later["v"].as_u64()),
        (Some(1), Some(2))
    );
}

/// A plugin's health belongs to one tenant's plugin version: a tenant that makes a
/// module fail until it is disabled disables it for itself only, even when another
/// tenant runs the very same bytes, and that tenant's upload resets nothing of the
/// first tenant's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_disabled_by_one_tenant_keeps_running_for_another_with_the_same_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let gp = Gp::start(dir.path(), &[]).await.unwrap();
    let (_, bad) = gp.tenant_with_key().await.unwrap();
    let (_, good) = gp.tenant_with_key().await.unwrap();
    let rx_bad = Receiver::start(Behaviour::Ok, None).await.unwrap();
    let rx_good = Receiver::start(Behaviour::Ok, None).await.unwrap();
    let (s, a) = upload(&gp, &bad, "redact", "redact", "1.0.0").await;
    assert_eq!(s, StatusCode::CREATED, "{a}");
    // `redact` refuses an empty field list on every call.
    let (ep_bad, _, _) = subscribe(
        &gp,
        &bad,
        &rx_bad,
        "x.#",
        Some(
            json!({"plugins": [{"name": "redact", "version": "1.0.0", "config": {"fields": []}}]}),
        ),
    )
    .await;
    let failures = 55;
    for n in 0..failures {
        publish(&gp, &bad, "x.y", json!({"n": n})).await;
    }
    let ds = settled(&gp, &bad, &ep_bad, failures).await;
    let mut kinds = HashMap::new();
    for d in &ds {
        let a = attempts(&gp, &bad, d).await;
        *kinds
            .entry(a[0]["error_kind"].as_str().unwrap().to_owned())
            .or_insert(0) += 1;
    }
    assert!(
        kinds.get("plugin_disabled").copied().unwrap_or(0) > 0,
        "the failing plugin was disabled for its tenant: {kinds:?}"
    );
    // The other tenant uploads the same bytes and runs them with a good config.
    let (s, b) = upload(&gp, &good, "redact", "redact", "1.0.0").await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    assert_eq!(a["sha256"], b["sha256"], "the very same module");
    let (ep_good, _, _) = subscribe(
        &gp,
        &good,
        &rx_good,
        "x.#",
        Some(json!({"plugins": [{"name": "redact", "version": "1.0.0", "config": {"fields": ["secret"]}}]})),
    )
    .await;
    publish(&gp, &good, "x.y", json!({"secret": "s3cr3t", "keep": 1})).await;
    let ds = settled(&gp, &good, &ep_good, 1).await;
    assert_eq!(
        ds[0]["status"],
        "succeeded",
        "{:?}",
        attempts(&gp, &good, &ds[0]).await
    );
    let body: Value = serde_json::from_slice(&rx_good.requests()[0].body).unwrap();
    assert_eq!(body["keep"], 1);
    assert!(body.get("secret").is_none(), "{body}");
    // The second upload did not give the first tenant's disabled plugin a new start.
    publish(&gp, &bad, "x.y", json!({"n": "after"})).await;
    let ds = settled(&gp, &bad, &ep_bad, failures + 1).await;
    let last = ds
        .iter()
        .max_by_key(|d| d["id"].as_str().unwrap().to_owned())
        .unwrap();
    assert_eq!(
        attempts(&gp, &bad, last).await[0]["error_kind"],
        "plugin_disabled"
    );
    assert_eq!(rx_bad.count(), 0);
}

/// Plugin storage is bounded per tenant: versions and bytes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plugin_uploads_stop_at_the_tenant_quota() {
    let dir = tempfile::tempdir().unwrap();
    let gp = Gp::start(dir.path(), &[("GATEPULSE_PLUGINS__MAX_PER_TENANT", "2")])
        .await
        .unwrap();
    let (_, key) = gp.tenant_with_key().await.unwrap();
    let (_, other) = gp.tenant_with_key().await.unwrap();
    for v in ["1.0.0", "1.0.1"] {
        let (s, p) = upload(&gp, &key, "redact", "redact", v).await;
        assert_eq!(s, StatusCode::CREATED, "{p}");
    }
    let (s, p) = upload(&gp, &key, "redact", "redact", "1.0.2").await;
    assert_eq!(
        (s, p["code"].as_str()),
        (StatusCode::CONFLICT, Some("limit_reached")),
        "{p}"
    );
    // Another tenant has its own quota.
    let (s, _) = upload(&gp, &other, "redact", "redact", "1.0.0").await;
    assert_eq!(s, StatusCode::CREATED);
    // Deleting a version frees its place.
    let (s, _) = gp
        .call(&key, Method::DELETE, "/v1/plugins/redact/1.0.0", None)
        .await
        .unwrap();
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, _) = upload(&gp, &key, "redact", "redact", "1.0.2").await;
    assert_eq!(s, StatusCode::CREATED);

    // A byte quota below two modules' size refuses the second.
    drop(gp);
    let size = plugins::wasm("redact").unwrap().len();
    let dir = tempfile::tempdir().unwrap();
    let limit = (size * 3 / 2).to_string();
    let module_limit = size.to_string();
    let gp = Gp::start(
        dir.path(),
        &[
            ("GATEPULSE_PLUGINS__MAX_BYTES_PER_TENANT", &limit),
            ("GATEPULSE_PLUGINS__MAX_MODULE_BYTES", &module_limit),
        ],
    )
    .await
    .unwrap();
    let (_, key) = gp.tenant_with_key().await.unwrap();
    let (s, _) = upload(&gp, &key, "redact", "redact", "1.0.0").await;
    assert_eq!(s, StatusCode::CREATED);
    let (s, p) = upload(&gp, &key, "redact", "redact", "1.0.1").await;
    assert_eq!(
        (s, p["code"].as_str()),
        (StatusCode::CONFLICT, Some("limit_reached")),
        "{p}"
    );
}
