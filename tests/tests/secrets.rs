//! Secrets at rest (SPEC SEC-2), against the real binary: endpoint secrets and custom
//! header values never appear in the store file, a snapshot or the logs; a store from
//! before encryption at rest is sealed on first start; a missing key version stops the
//! server with its number; rotation re-encrypts under traffic while every delivery
//! keeps verifying with the official Standard Webhooks library, and afterwards the old
//! key can be removed.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use gatepulse_e2e::receiver::{Behaviour, Receiver};
use gatepulse_e2e::{ADMIN_TOKEN, Backend, Gp, MASTER_KEY, pg_url};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// A second test-only key (version 2).
const KEY_2: &str = "2:c2Vjb25kLXRlc3QtbWFzdGVyLWtleS12ZXJzaW9uLTI=";
const SECRET: &str = "whsec_c2VjcmV0cy1lMmUta25vd24tc2lnbmluZy1zZWNyZXQh";
const SECRET_BODY: &str = "c2VjcmV0cy1lMmUta25vd24tc2lnbmluZy1zZWNyZXQh";
const HEADER_VALUE: &str = "Bearer e2e-header-token-5b1f9c";

/// How a secret was stored before encryption at rest (`0x00 | plaintext`, base64):
/// a needle too, so that the old form cannot pass for sealed.
fn legacy_form(secret: &str) -> String {
    use base64::Engine;
    let mut bytes = vec![0u8];
    bytes.extend_from_slice(secret.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Every file under `dir`, recursively.
fn files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let p = entry.path();
        if p.is_dir() {
            out.extend(files(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// Files under `dir` whose bytes contain `needle`.
fn holding(dir: &Path, needle: &str) -> Vec<String> {
    files(dir)
        .into_iter()
        .filter(|p| {
            let bytes = std::fs::read(p).unwrap_or_default();
            bytes.windows(needle.len()).any(|w| w == needle.as_bytes())
        })
        .map(|p| p.display().to_string())
        .collect()
}

async fn admin(gp: &Gp, method: Method, path: &str) -> Value {
    let (s, v) = gp.call(ADMIN_TOKEN, method, path, None).await.unwrap();
    assert!(s.is_success(), "{path}: {s} {v}");
    v
}

async fn wait_rotation(gp: &Gp) -> Value {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let v = admin(gp, Method::GET, "/v1/admin/secrets").await;
        match v["rotation"]["state"].as_str() {
            Some("running") => {}
            Some("succeeded") => return v,
            other => panic!("rotation ended {other:?}: {v}"),
        }
        assert!(Instant::now() < deadline, "rotation did not finish: {v}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_never_reach_the_store_file_a_snapshot_or_the_logs() {
    let dir = tempfile::tempdir().unwrap();
    let logs = tempfile::tempdir().unwrap();
    let log = logs.path().join("gp.log");
    let gp = Gp::start_logged(dir.path(), &[("RUST_LOG", "debug")], &log)
        .await
        .unwrap();
    let rx = Receiver::start(Behaviour::Ok, Some(SECRET.into()))
        .await
        .unwrap();
    let (_, key) = gp.tenant_with_key().await.unwrap();
    let (ep, _) = gp
        .subscribe(
            &key,
            json!({"url": format!("{}/hook", rx.url()), "secret": SECRET,
                   "headers": {"Authorization": HEADER_VALUE}}),
            &["secret.#"],
            None,
        )
        .await
        .unwrap();
    let id = ep["id"].as_str().unwrap();
    assert_eq!(ep["headers"]["Authorization"], HEADER_VALUE);
    // A rotated-out secret is stored too, sealed like the current one.
    let (s, rotated) = gp
        .call(
            &key,
            Method::POST,
            &format!("/v1/endpoints/{id}/secret/rotate"),
            None,
        )
        .await
        .unwrap();
    assert_eq!(s, StatusCode::OK);
    let new_secret = rotated["secret"].as_str().unwrap().to_owned();
    let new_body = new_secret.trim_start_matches("whsec_").to_owned();
    for i in 0..3 {
        gp.publish(&key, "secret.created", &json!({"i": i}))
            .await
            .unwrap();
    }
    rx.wait_for(|l| l.requests.len() >= 3, Duration::from_secs(30))
        .await
        .unwrap();
    for r in rx.requests() {
        assert_eq!(r.header("authorization"), Some(HEADER_VALUE));
        // Signed with both secrets during the grace period: the old one verifies.
        assert_eq!(r.signature_ok, Some(true), "{:?}", r.signature_error);
        r.verify_with(&new_secret).unwrap();
    }
    let snap = tempfile::tempdir().unwrap();
    let snap_dir = snap.path().join("snap");
    gp.snapshot(&snap_dir).await.unwrap();
    let status = admin(&gp, Method::GET, "/v1/admin/secrets").await;
    assert_eq!(status["stored"]["plaintext"], 0, "{status}");
    assert_eq!(status["stored"]["by_key_version"]["1"], 3, "{status}");
    drop(gp);

    for needle in [
        SECRET,
        SECRET_BODY,
        &legacy_form(SECRET),
        new_secret.as_str(),
        new_body.as_str(),
        &legacy_form(&new_secret),
        HEADER_VALUE,
        "e2e-header-token-5b1f9c",
    ] {
        for place in [dir.path(), snap_dir.as_path(), logs.path()] {
            let found = holding(place, needle);
            assert!(found.is_empty(), "{needle:?} found in {found:?}");
        }
    }
    // The log is there and did talk about the endpoint.
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("master keys ready"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_from_before_encryption_at_rest_is_sealed_on_first_start() {
    // Written by store version 2 (tests/fixtures/README.md): secrets and headers plain.
    const KEY: &str = "gpk_RhIJpNYDMcDWoQy8l2mBW2hsdP6WMocPQnR6fkeD5yw";
    const ENDPOINT: &str = "ep_01M8X8HYAFZ5DPEDKF7T9Y08KW";
    const CURRENT: &str = "whsec_Zml4dHVyZS12Mi1uZXctc2VjcmV0LTMyLWJ5dGVzISE=";
    let dir = tempfile::tempdir().unwrap();
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/store-v2-secrets.redb");
    std::fs::copy(src, dir.path().join("gatepulse.redb")).unwrap();

    let mut gp = Gp::start(dir.path(), &[]).await.unwrap();
    let status = admin(&gp, Method::GET, "/v1/admin/secrets").await;
    assert_eq!(status["stored"]["plaintext"], 0, "{status}");
    // Two secrets (current and rotated-out) and two header values.
    assert_eq!(status["stored"]["by_key_version"]["1"], 4, "{status}");
    let (_, secret) = gp
        .call(
            KEY,
            Method::GET,
            &format!("/v1/endpoints/{ENDPOINT}/secret"),
            None,
        )
        .await
        .unwrap();
    assert_eq!(secret["secret"], CURRENT);
    let (_, ep) = gp
        .call(KEY, Method::GET, &format!("/v1/endpoints/{ENDPOINT}"), None)
        .await
        .unwrap();
    assert_eq!(
        ep["headers"],
        json!({"Authorization": "Bearer fixture-header-token-7f3a",
               "X-Api-Key": "fixture-api-key-91c2"})
    );
    // Sealed values now go out as they were: point the endpoint at a receiver.
    let rx = Receiver::start(Behaviour::Ok, Some(CURRENT.into()))
        .await
        .unwrap();
    let (s, _) = gp
        .call(
            KEY,
            Method::PATCH,
            &format!("/v1/endpoints/{ENDPOINT}"),
            Some(json!({"url": format!("{}/hook", rx.url())})),
        )
        .await
        .unwrap();
    assert_eq!(s, StatusCode::OK);
    gp.publish(KEY, "fixture.migrated", &json!({"n": 1}))
        .await
        .unwrap();
    rx.wait_for(|l| !l.requests.is_empty(), Duration::from_secs(30))
        .await
        .unwrap();
    let r = &rx.requests()[0];
    assert_eq!(r.signature_ok, Some(true), "{:?}", r.signature_error);
    assert_eq!(
        r.header("authorization"),
        Some("Bearer fixture-header-token-7f3a")
    );
    assert_eq!(r.header("x-api-key"), Some("fixture-api-key-91c2"));
    // Freed pages of the live file may still hold the old plaintext until reused
    // (docs/security.md); a snapshot holds only live records, all sealed.
    let snap = tempfile::tempdir().unwrap();
    let snap_dir = snap.path().join("after-migration");
    gp.snapshot(&snap_dir).await.unwrap();
    for needle in [
        "fixture-header-token-7f3a",
        "fixture-api-key-91c2",
        &legacy_form(CURRENT),
        &legacy_form("whsec_Zml4dHVyZS12Mi1vbGQtc2VjcmV0LTMyLWJ5dGVzISE="),
    ] {
        let found = holding(&snap_dir, needle);
        assert!(found.is_empty(), "{needle:?} found in {found:?}");
    }
    // The migration is done once: a restart finds nothing in plain form.
    gp.terminate().unwrap();
    gp.restart().await.unwrap();
    let status = admin(&gp, Method::GET, "/v1/admin/secrets").await;
    assert_eq!(status["stored"]["plaintext"], 0, "{status}");
    // And recorded once, as GatePulse's own act on the node's chain.
    let records = admin(&gp, Method::GET, "/v1/audit?action=master_key.migrate").await;
    let records = records["data"].as_array().unwrap();
    assert_eq!(records.len(), 1, "{records:?}");
    assert_eq!(records[0]["actor"]["kind"], "system");
    assert_eq!(records[0]["tenant_id"], Value::Null);
    assert!(records[0]["details"]["endpoints"].as_u64().unwrap() >= 1);
}

/// Runs `gp serve` on `dir` expecting it to refuse to start; returns its stderr.
fn refused_start(dir: &Path, key: &str) -> String {
    refused_start_on(&Backend::redb(), dir, key)
}

/// [`refused_start`] on `backend`.
fn refused_start_on(backend: &Backend, dir: &Path, key: &str) -> String {
    let out = std::process::Command::new(gatepulse_e2e::gp_binary().unwrap())
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir)
        .env("GATEPULSE_ADMIN_TOKEN", ADMIN_TOKEN)
        .env("GATEPULSE_MASTER_KEY", key)
        .env("RUST_LOG", "warn")
        .envs(backend.env(&[]))
        .output()
        .unwrap();
    assert!(!out.status.success(), "gp started without the key it needs");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_under_traffic_keeps_signatures_valid_and_the_old_key_can_go() {
    rotation(&Backend::redb()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_under_traffic_on_postgres() {
    rotation(&Backend::postgres()).await;
}

async fn rotation(backend: &Backend) {
    let dir = tempfile::tempdir().unwrap();
    let mut gp = Gp::start(dir.path(), &backend.env(&[])).await.unwrap();
    let rx = Receiver::start(Behaviour::Ok, Some(SECRET.into()))
        .await
        .unwrap();
    let (_, key) = gp.tenant_with_key().await.unwrap();
    gp.subscribe(
        &key,
        json!({"url": format!("{}/hook", rx.url()), "secret": SECRET,
               "headers": {"Authorization": HEADER_VALUE}}),
        &["rotate.#"],
        None,
    )
    .await
    .unwrap();
    // Enough endpoints for several batches of the job (100 each).
    for i in 0..240 {
        let (s, v) = gp
            .call(
                &key,
                Method::POST,
                "/v1/endpoints",
                Some(json!({"kind": "inbox", "headers": {"X-Token": format!("t-{i}")}})),
            )
            .await
            .unwrap();
        assert_eq!(s, StatusCode::CREATED, "{v}");
    }
    gp.terminate().unwrap();

    // Key 2 joins: new secrets are sealed with it, old ones still open with key 1.
    let both = format!("{KEY_2},{MASTER_KEY}");
    gp.set_env("GATEPULSE_MASTER_KEY", &both);
    gp.restart().await.unwrap();
    let status = admin(&gp, Method::GET, "/v1/admin/secrets").await;
    assert_eq!(status["current_key_version"], 2);
    assert_eq!(status["configured_key_versions"], json!([1, 2]));
    assert_eq!(status["stored"]["by_key_version"]["1"], 482, "{status}");

    // Traffic while the job runs.
    let gp = Arc::new(gp);
    let stop = Arc::new(AtomicBool::new(false));
    let published = Arc::new(AtomicU64::new(0));
    let publisher = {
        let (gp, stop, published, key) = (gp.clone(), stop.clone(), published.clone(), key.clone());
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                gp.publish(
                    &key,
                    "rotate.tick",
                    &json!({"n": published.load(Ordering::Relaxed)}),
                )
                .await
                .unwrap();
                published.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (s, started) = gp
        .call(ADMIN_TOKEN, Method::POST, "/v1/admin/secrets/rotate", None)
        .await
        .unwrap();
    assert_eq!(s, StatusCode::ACCEPTED, "{started}");
    assert_eq!(started["rotation"]["key_version"], 2);
    assert_eq!(started["rotation"]["endpoints_total"], 241);
    let done = wait_rotation(&gp).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::Relaxed);
    publisher.await.unwrap();
    assert_eq!(done["rotation"]["endpoints_done"], 241, "{done}");
    assert_eq!(done["rotation"]["endpoints_resealed"], 241, "{done}");
    assert_eq!(
        done["stored"]["by_key_version"],
        json!({"2": 482}),
        "{done}"
    );
    let total = published.load(Ordering::Relaxed) as usize;
    assert!(total > 0);
    rx.wait_for(|l| l.per_webhook_id.len() >= total, Duration::from_secs(60))
        .await
        .unwrap();
    for r in rx.requests() {
        assert_eq!(r.signature_ok, Some(true), "{:?}", r.signature_error);
        assert_eq!(r.header("authorization"), Some(HEADER_VALUE));
    }
    let mut gp = Arc::into_inner(gp).expect("publisher finished");
    gp.terminate().unwrap();

    // Without key 2 the server refuses to start, and says which version it needs.
    let err = refused_start_on(backend, dir.path(), MASTER_KEY);
    assert!(err.contains("version(s) 2"), "{err}");
    // With key 2 alone it starts: key 1 is no longer needed.
    gp.set_env("GATEPULSE_MASTER_KEY", KEY_2);
    gp.restart().await.unwrap();
    let before = rx.count();
    gp.publish(&key, "rotate.after", &json!({"after": true}))
        .await
        .unwrap();
    rx.wait_for(|l| l.requests.len() > before, Duration::from_secs(30))
        .await
        .unwrap();
    let last = rx.requests().pop().unwrap();
    assert_eq!(last.signature_ok, Some(true), "{:?}", last.signature_error);
    assert_eq!(last.header("authorization"), Some(HEADER_VALUE));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_master_key_the_server_does_not_start() {
    let dir = tempfile::tempdir().unwrap();
    let err = refused_start(dir.path(), "");
    assert!(
        err.contains("master_key") && err.contains("gp secrets generate-key"),
        "{err}"
    );
    let out = std::process::Command::new(gatepulse_e2e::gp_binary().unwrap())
        .args(["secrets", "generate-key", "--version", "7"])
        .output()
        .unwrap();
    let entry = String::from_utf8(out.stdout).unwrap();
    assert!(entry.starts_with("7:"), "{entry}");
    let err = refused_start(dir.path(), "7:c2hvcnQ=");
    assert!(err.contains("32 bytes"), "{err}");
    // Dev mode makes one, keeps it in the data dir (owner-only) and says where.
    let dev = tempfile::tempdir().unwrap();
    let mut child = std::process::Command::new(gatepulse_e2e::gp_binary().unwrap())
        .args(["serve", "--dev", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dev.path())
        .env_remove("GATEPULSE_MASTER_KEY")
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let banner = tokio::task::spawn_blocking(move || {
        use std::io::BufRead;
        let mut seen = Vec::new();
        for l in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            let done = l.contains("master key");
            seen.push(l);
            if done {
                break;
            }
        }
        seen
    })
    .await
    .unwrap();
    // The banner also says where the console is.
    assert!(
        banner
            .iter()
            .any(|l| l.contains("console") && l.contains("/console/")),
        "{banner:?}"
    );
    // The dev tenant and key are in the audit log, as GatePulse's own acts.
    let console = banner.iter().find(|l| l.contains("/console/")).unwrap();
    let base = &console[console.find("http://").unwrap()..console.find("/console/").unwrap()];
    let creds: Value =
        serde_json::from_slice(&std::fs::read(dev.path().join("dev-credentials.json")).unwrap())
            .unwrap();
    gatepulse_e2e::install_crypto_provider();
    let records: Value = reqwest::Client::new()
        .get(format!("{base}/v1/audit"))
        .bearer_auth(creds["admin_token"].as_str().unwrap())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let acts: Vec<(&str, &str)> = records["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["action"].as_str().unwrap(),
                r["actor"]["kind"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        acts,
        [("tenant.create", "system"), ("api_key.create", "system")],
        "{records}"
    );
    let line = banner.into_iter().find(|l| l.contains("master key"));
    let _ = child.kill();
    let _ = child.wait();
    let key_file = dev.path().join("master.key");
    let line = line.expect("the dev banner names the master key");
    assert!(line.contains(&key_file.display().to_string()), "{line}");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&key_file).unwrap().permissions().mode();
    assert_eq!(
        mode & 0o077,
        0,
        "the key file is readable by others: {mode:o}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_rows_hold_the_same_ciphertext_and_no_plaintext() {
    let backend = Backend::postgres();
    let dir = tempfile::tempdir().unwrap();
    let gp = Gp::start(dir.path(), &backend.env(&[])).await.unwrap();
    let (_, key) = gp.tenant_with_key().await.unwrap();
    let (s, ep) = gp
        .call(
            &key,
            Method::POST,
            "/v1/endpoints",
            Some(json!({"kind": "inbox", "secret": SECRET, "headers": {"Authorization": HEADER_VALUE}})),
        )
        .await
        .unwrap();
    assert_eq!(s, StatusCode::CREATED, "{ep}");
    let (client, conn) = tokio_postgres::connect(&pg_url(), tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    let schema = backend.schema().unwrap();
    // Every byte of every table GatePulse wrote, as text.
    let tables = client
        .query(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = $1",
            &[&schema],
        )
        .await
        .unwrap();
    let mut dump = String::new();
    for t in &tables {
        let name: &str = t.get(0);
        let rows = client
            .query(&format!("SELECT t::text FROM {schema}.{name} t"), &[])
            .await
            .unwrap();
        for r in rows {
            dump.push_str(r.get::<_, &str>(0));
        }
    }
    assert!(dump.len() > 100, "nothing dumped");
    // Records are bytea (JSON), which text shows as hex: look for both forms.
    for needle in [SECRET, SECRET_BODY, HEADER_VALUE, &legacy_form(SECRET)] {
        assert!(!dump.contains(needle), "{needle:?} in the database");
        let hex: String = needle.bytes().map(|b| format!("{b:02x}")).collect();
        assert!(!dump.contains(&hex), "{needle:?} (hex) in the database");
    }
    // The check can see plaintext where there is some: the endpoint's id is there.
    let id_hex: String = ep["id"]
        .as_str()
        .unwrap()
        .bytes()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert!(dump.contains(&id_hex) || dump.contains(ep["id"].as_str().unwrap()));
    let (_, secret) = gp
        .call(
            &key,
            Method::GET,
            &format!("/v1/endpoints/{}/secret", ep["id"].as_str().unwrap()),
            None,
        )
        .await
        .unwrap();
    assert_eq!(secret["secret"], SECRET);
}
