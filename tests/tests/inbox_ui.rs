//! The dev inbox page (SPEC INBOX-1) in a real headless browser: a message captured by
//! an inbox endpoint is found by clicking through `/dev/inbox/ui`, and the page's
//! "copy curl replay" command, run with the real `curl`, delivers the same request to a
//! receiver: same body, same headers, a signature that verifies with the endpoint's
//! secret.
//!
//! Needs Node.js (the test installs `tests/browser`'s locked packages itself) and
//! Debian's Chromium at `/usr/bin/chromium` (or `$CHROMIUM`); the test fails, never
//! skips, without them.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use gatepulse_e2e::Gp;
use gatepulse_e2e::receiver::{Behaviour, Receiver};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio::process::Command;

fn browser_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("browser")
}

/// Fails with the instruction to install what the browser test needs.
fn require_browser_tooling() {
    gatepulse_e2e::tooling::ensure_browser();
}

/// Runs a command to completion within `limit`, returning (success, stdout, stderr).
async fn run(cmd: &mut Command, limit: Duration) -> (bool, String, String) {
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawning");
    let out = tokio::time::timeout(limit, child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("{cmd:?} did not finish within {limit:?}"))
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_inbox_page_shows_a_captured_message_and_its_curl_replay_reproduces_it() {
    require_browser_tooling();
    let dir = tempfile::tempdir().unwrap();
    let gp = Gp::start(dir.path(), &[]).await.unwrap();
    let (_, key) = gp.tenant_with_key().await.unwrap();

    // An inbox endpoint whose custom header and payload both need careful shell quoting.
    let (s, ep) = gp
        .call(
            &key,
            Method::POST,
            "/v1/endpoints",
            Some(json!({
                "kind": "inbox",
                "description": "dev inbox",
                "headers": {"X-Note": "it's \"quoted\" $HOME `id` \\"},
            })),
        )
        .await
        .unwrap();
    assert_eq!(s, StatusCode::CREATED, "{ep}");
    let ep_id = ep["id"].as_str().unwrap().to_owned();
    let (s, sub) = gp
        .call(
            &key,
            Method::POST,
            "/v1/subscriptions",
            Some(json!({"endpoint_id": ep_id, "topics": ["ui.#"]})),
        )
        .await
        .unwrap();
    assert_eq!(s, StatusCode::CREATED, "{sub}");
    let payload = json!({"msg": "it's ünïcode", "shell": "$(exit 1) `id` \\ '\"' \n", "n": 1});
    let (s, ev) = gp
        .call(
            &key,
            Method::POST,
            "/v1/events",
            Some(json!({"topic": "ui.test", "payload": payload})),
        )
        .await
        .unwrap();
    assert_eq!(s, StatusCode::ACCEPTED, "{ev}");
    let event_id = ev["id"].as_str().unwrap().to_owned();

    // Wait for the capture through the API.
    let path = format!("/v1/inbox/{ep_id}/messages");
    let deadline = Instant::now() + Duration::from_secs(30);
    let message: Value = loop {
        let (s, page) = gp.call(&key, Method::GET, &path, None).await.unwrap();
        assert_eq!(s, StatusCode::OK, "{page}");
        if let Some(m) = page["data"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["event_id"] == event_id.as_str())
        {
            break m.clone();
        }
        assert!(Instant::now() < deadline, "no inbox message within 30 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let body = message["body"].as_str().unwrap().to_owned();
    assert_eq!(serde_json::from_str::<Value>(&body).unwrap(), payload);

    // The page itself: no auth, HTML, a strict policy, revalidated on every load.
    let page = gp
        .http
        .get(format!("{}/dev/inbox/ui", gp.base))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let header = |name: &str| {
        page.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    assert_eq!(header("content-type"), "text/html; charset=utf-8");
    assert_eq!(header("cache-control"), "no-cache");
    let csp = header("content-security-policy");
    assert!(
        csp.starts_with("default-src 'none'; script-src 'sha256-"),
        "{csp}"
    );
    assert!(!csp.contains("unsafe"), "{csp}");

    // The replay goes to a receiver that verifies signatures with the endpoint secret.
    let (s, secret) = gp
        .call(
            &key,
            Method::GET,
            &format!("/v1/endpoints/{ep_id}/secret"),
            None,
        )
        .await
        .unwrap();
    assert_eq!(s, StatusCode::OK, "{secret}");
    let secret = secret["secret"].as_str().unwrap().to_owned();
    let rx = Receiver::start(Behaviour::Ok, Some(secret.clone()))
        .await
        .unwrap();

    // Click through the page in headless Chromium.
    let curl_file = dir.path().join("replay.sh");
    let (ok, stdout, stderr) = run(
        Command::new("node")
            .arg(browser_dir().join("inbox_ui.mjs"))
            .env("BASE", &gp.base)
            .env("TOKEN", &key)
            .env("ENDPOINT_ID", &ep_id)
            .env("EVENT_ID", &event_id)
            .env("TARGET_URL", rx.url())
            .env("CURL_OUT", &curl_file)
            .env("SCREENSHOT", dir.path().join("inbox_ui.png")),
        Duration::from_secs(120),
    )
    .await;
    assert!(
        ok,
        "the browser test failed\n--- stdout\n{stdout}\n--- stderr\n{stderr}"
    );

    // Run the copied command as a person would paste it into a shell.
    let curl = std::fs::read_to_string(&curl_file).unwrap();
    let (ok, stdout, stderr) = run(
        Command::new("sh").arg("-c").arg(&curl),
        Duration::from_secs(30),
    )
    .await;
    assert!(
        ok,
        "the curl replay failed\n--- command\n{curl}\n--- stdout\n{stdout}\n--- stderr\n{stderr}"
    );
    rx.wait_for(|l| !l.requests.is_empty(), Duration::from_secs(10))
        .await
        .unwrap();
    let reqs = rx.requests();
    assert_eq!(reqs.len(), 1);
    let got = &reqs[0];
    assert_eq!((got.method.as_str(), got.path.as_str()), ("POST", "/hook"));
    assert_eq!(
        std::str::from_utf8(&got.body).unwrap(),
        body,
        "the replayed body differs"
    );
    for pair in message["headers"].as_array().unwrap() {
        let (name, value) = (pair[0].as_str().unwrap(), pair[1].as_str().unwrap());
        assert_eq!(got.header(name), Some(value), "header {name}");
    }
    assert_eq!(
        got.signature_ok,
        Some(true),
        "the replay's signature does not verify: {:?}",
        got.signature_error
    );
    assert!(got.verify_with(&secret).is_ok());
}
