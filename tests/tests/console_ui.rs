//! The operator console (SPEC UI-1, issue 19) in a real headless browser, against the
//! real `gp` with the console built into it: `tests/browser/console.mjs` does every
//! task through the page, at 1280 and at 390 px wide (sign in, endpoint and
//! subscription with a live preview, publish and watch it arrive, break the endpoint,
//! see the failure and its attempts, fix it, requeue from the DLQ, retry, replay a
//! range and one event, rotate the secret, send a test event, pause and resume, a
//! scoped key whose missing scopes are disabled, revoke it, delete an endpoint, sign
//! out), failing on any console error, CSP violation or request to another origin.
//! Midway the script asks for a server restart (it prints `@@restart-gp`): the live
//! view must reconnect and resume from its cursor by itself.
//! Afterwards this test checks, at the receivers and through the API, that what the
//! page said happened did happen.
//!
//! Needs Node.js, `npm ci --prefix tests/browser` (playwright-core) and Debian's
//! Chromium at `/usr/bin/chromium` (or `$CHROMIUM`); the test fails, never skips,
//! without them. Screenshots of every step go to `$CONSOLE_SCREENSHOT_DIR` (default
//! `target/console-ui/`); with `UPDATE_SCREENSHOTS=1` the run also rewrites the
//! documentation's screenshots in `docs/console/`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashSet;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use gatepulse_e2e::receiver::{Behaviour, Receiver};
use gatepulse_e2e::{ADMIN_TOKEN, Gp, plugins};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::process::Command;

/// The secret the page types into the new endpoint's form; the receiver verifies
/// every delivery with it (after the page rotates it, the old secret keeps signing
/// alongside the new one for the grace period).
const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

fn browser_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("browser")
}

/// Fails with the instruction to install what the browser test needs.
fn require_browser_tooling() {
    gatepulse_e2e::tooling::ensure_browser();
}

/// Runs the browser script within `limit`, returning (success, stdout, stderr). When
/// the script prints `@@restart-gp` the server is restarted (SIGTERM, a clean exit,
/// then started again on the same port and data), so the page's event stream ends and
/// the live view must reconnect and resume by itself.
async fn run_console(gp: &mut Gp, cmd: &mut Command, limit: Duration) -> (bool, String, String) {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawning node: install Node.js (>= 20) to run this test");
    let stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let errors = tokio::spawn(async move {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text).await;
        text
    });
    let mut lines = BufReader::new(stdout).lines();
    let mut seen = String::new();
    let drive = async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if line.trim() == "@@restart-gp" {
                let code = gp.terminate().unwrap();
                assert_eq!(code, 0, "gp did not exit cleanly on SIGTERM");
                gp.restart().await.unwrap();
                seen.push_str("(gp restarted)\n");
                continue;
            }
            seen.push_str(&line);
            seen.push('\n');
        }
        child.wait().await.unwrap()
    };
    let status = tokio::time::timeout(limit, drive)
        .await
        .unwrap_or_else(|_| panic!("the browser test did not finish within {limit:?}"));
    let stderr = errors.await.unwrap();
    (status.success(), seen, stderr)
}

fn ids(out: &Value, key: &str) -> Vec<String> {
    out[key]
        .as_array()
        .unwrap_or_else(|| panic!("the browser run wrote no {key}: {out}"))
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect()
}

/// `GET path` as the admin token acting in `tenant`; the answer must be 200.
async fn in_tenant(gp: &Gp, tenant: &str, path: &str) -> Value {
    let resp = gp
        .http
        .get(format!("{}{path}", gp.base))
        .bearer_auth(ADMIN_TOKEN)
        .header("GatePulse-Tenant", tenant)
        .send()
        .await
        .unwrap();
    let status = resp.status();
    let text = resp.text().await.unwrap();
    assert_eq!(status, StatusCode::OK, "GET {path}: {text}");
    serde_json::from_str(&text).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_console_task_works_in_a_browser_at_desktop_and_phone_width() {
    require_browser_tooling();
    let dir = tempfile::tempdir().unwrap();
    let mut gp = Gp::start(dir.path(), &[]).await.unwrap();
    let (s, tenant) = gp
        .call(
            ADMIN_TOKEN,
            Method::POST,
            "/v1/tenants",
            Some(json!({"name": "console e2e"})),
        )
        .await
        .unwrap();
    assert_eq!(s, StatusCode::CREATED, "{tenant}");
    let tenant_id = tenant["id"].as_str().unwrap().to_owned();

    // One receiver that works (and verifies signatures), one that always fails.
    let ok = Receiver::start(Behaviour::Ok, Some(SECRET.to_owned()))
        .await
        .unwrap();
    let failing = Receiver::start(Behaviour::Status(500), None).await.unwrap();

    // The page uploads the example `redact` plugin through its form.
    let wasm = dir.path().join("redact.wasm");
    std::fs::write(&wasm, plugins::wasm("redact").unwrap()).unwrap();

    let shots = std::env::var_os("CONSOLE_SCREENSHOT_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("..")
                .join("target")
                .join("console-ui")
        });
    let out_file = dir.path().join("console-out.json");
    let base = gp.base.clone();
    let (success, stdout, stderr) = run_console(
        &mut gp,
        Command::new("node")
            .arg(browser_dir().join("console.mjs"))
            .env("BASE", &base)
            .env("ADMIN_TOKEN", ADMIN_TOKEN)
            .env("TENANT_ID", &tenant_id)
            .env("RECEIVER_URL", ok.url())
            .env("FAILING_URL", failing.url())
            .env("SECRET", SECRET)
            .env("PLUGIN_WASM", &wasm)
            .env("SCREENSHOT_DIR", &shots)
            .env("OUT", &out_file),
        Duration::from_secs(300),
    )
    .await;
    assert!(
        success,
        "the browser test failed (screenshots in {})\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
        shots.display()
    );
    eprintln!("console screenshots: {}", shots.display());
    let out: Value = serde_json::from_str(&std::fs::read_to_string(&out_file).unwrap()).unwrap();

    // What the page showed arriving live, after the pause, and after the requeues
    // really reached the working receiver, signed with the endpoint's secret and
    // carrying its custom header.
    let live = ids(&out, "live_events");
    let broken = ids(&out, "broken_events");
    ok.wait_for(
        |log| {
            live.iter().chain(&broken).all(|e| {
                log.requests
                    .iter()
                    .any(|r| r.event_id() == Some(e.as_str()) && r.answered_2xx())
            })
        },
        Duration::from_secs(30),
    )
    .await
    .unwrap();
    let received = ok.requests();
    for r in &received {
        assert_eq!(
            r.signature_ok,
            Some(true),
            "a delivery's signature does not verify: {:?}",
            r.signature_error
        );
        assert_eq!(
            r.header("x-team"),
            Some("ops"),
            "the custom header is missing"
        );
    }
    // The first event went out four times, each a delivery of its own: published, sent
    // again from its delivery page, in the replayed range, and replayed on its own.
    let first: HashSet<&str> = received
        .iter()
        .filter(|r| r.event_id() == Some(live[0].as_str()))
        .filter_map(|r| r.webhook_id())
        .collect();
    assert!(
        first.len() >= 4,
        "{} deliveries of {} reached the receiver, expected 4 (publish, send again, range \
         replay, event replay)",
        first.len(),
        live[0]
    );

    // While broken, each of the three events was tried three times (retry schedule
    // 1, 1) at the failing receiver, then dead-lettered; the requeues went to the
    // fixed URL only.
    for e in &broken {
        let tries = failing
            .requests()
            .iter()
            .filter(|r| r.event_id() == Some(e.as_str()))
            .count();
        assert_eq!(
            tries, 3,
            "{e} was tried {tries} times at the failing receiver"
        );
    }

    // The server agrees with the page: the endpoint is fixed and enabled, its DLQ is
    // empty, the key the page revoked is revoked.
    let endpoint_id = out["endpoint_id"].as_str().unwrap();
    let ep = in_tenant(&gp, &tenant_id, &format!("/v1/endpoints/{endpoint_id}")).await;
    assert_eq!(ep["url"], ok.url(), "{ep}");
    assert_eq!(ep["enabled"], true, "{ep}");
    let dlq = in_tenant(
        &gp,
        &tenant_id,
        &format!("/v1/dlq?endpoint_id={endpoint_id}"),
    )
    .await;
    assert_eq!(dlq["data"], json!([]), "{dlq}");
    let keys = gp
        .list_all(ADMIN_TOKEN, &format!("/v1/tenants/{tenant_id}/keys"))
        .await
        .unwrap();
    let revoked = out["revoked_key_id"].as_str().unwrap();
    let key = keys
        .iter()
        .find(|k| k["id"] == revoked)
        .unwrap_or_else(|| panic!("no key {revoked} in {keys:?}"));
    assert!(key["revoked_at"].is_string(), "{key}");
}
