//! Outbound proxies (SPEC CORE-9): the proxy variables of the server's environment are
//! never used for deliveries (a proxy resolves the destination where GatePulse never
//! checks it); a proxy is used only when `delivery.proxy_url` names it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use gatepulse_e2e::Gp;
use gatepulse_e2e::receiver::{Behaviour, Receiver};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A stand-in forward proxy: counts connections, records each request's first line
/// and answers `200 OK` to everything, delivering nothing anywhere.
struct FakeProxy {
    url: String,
    connections: Arc<AtomicUsize>,
    first_lines: Arc<std::sync::Mutex<Vec<String>>>,
}

impl FakeProxy {
    async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let connections = Arc::new(AtomicUsize::new(0));
        let first_lines = Arc::new(std::sync::Mutex::new(Vec::new()));
        let (c, lines) = (connections.clone(), first_lines.clone());
        tokio::spawn(async move {
            while let Ok((mut io, _)) = listener.accept().await {
                c.fetch_add(1, Ordering::SeqCst);
                let lines = lines.clone();
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 64 * 1024];
                    let n = io.read(&mut buf).await.unwrap_or(0);
                    let head = String::from_utf8_lossy(&buf[..n]);
                    if let Some(line) = head.lines().next() {
                        lines.lock().unwrap().push(line.to_owned());
                    }
                    let _ = io
                        .write_all(
                            b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                        )
                        .await;
                });
            }
        });
        Self {
            url,
            connections,
            first_lines,
        }
    }
}

/// Publishes one event to an endpoint at `url`; returns its delivery once final.
async fn deliver_one(gp: &Gp, url: &str) -> serde_json::Value {
    let (_, key) = gp.tenant_with_key().await.unwrap();
    let (ep, _) = gp
        .subscribe(&key, json!({"url": url}), &["p.#"], None)
        .await
        .unwrap();
    gp.publish(&key, "p.x", &json!({"n": 1})).await.unwrap();
    let ep = ep["id"].as_str().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let ds = gp
            .list_all(&key, &format!("/v1/deliveries?endpoint_id={ep}"))
            .await
            .unwrap();
        if let Some(d) = ds.first()
            && matches!(
                d["status"].as_str(),
                Some("succeeded" | "retrying" | "dead")
            )
        {
            return d.clone();
        }
        assert!(Instant::now() < deadline, "{ds:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_variables_in_the_environment_are_ignored() {
    let proxy = FakeProxy::start().await;
    let rx = Receiver::start(Behaviour::Ok, None).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let gp = Gp::start(
        dir.path(),
        &[
            ("HTTP_PROXY", &proxy.url),
            ("http_proxy", &proxy.url),
            ("HTTPS_PROXY", &proxy.url),
            ("https_proxy", &proxy.url),
            ("ALL_PROXY", &proxy.url),
            ("all_proxy", &proxy.url),
        ],
    )
    .await
    .unwrap();
    // A host name, as an attacker would use: the proxy would resolve it unchecked.
    let url = rx.url().replace("127.0.0.1", "localhost");
    let d = deliver_one(&gp, &url).await;
    assert_eq!(d["status"], "succeeded", "{d}");
    assert_eq!(rx.count(), 1, "delivered directly");
    assert_eq!(
        proxy.connections.load(Ordering::SeqCst),
        0,
        "the environment's proxy was used: {:?}",
        proxy.first_lines.lock().unwrap()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_explicit_proxy_url_carries_every_delivery() {
    let proxy = FakeProxy::start().await;
    let rx = Receiver::start(Behaviour::Ok, None).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let gp = Gp::start(dir.path(), &[("GATEPULSE_DELIVERY__PROXY_URL", &proxy.url)])
        .await
        .unwrap();
    let url = format!("{}/via-proxy", rx.url().trim_end_matches('/'));
    let d = deliver_one(&gp, &url).await;
    assert_eq!(d["status"], "succeeded", "{d}");
    assert_eq!(rx.count(), 0, "the proxy answered, not the receiver");
    let lines = proxy.first_lines.lock().unwrap().clone();
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("POST http://") && l.contains("/via-proxy")),
        "{lines:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_proxy_url_is_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(gatepulse_e2e::gp_binary().unwrap())
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        .env("GATEPULSE_ADMIN_TOKEN", gatepulse_e2e::ADMIN_TOKEN)
        .env("GATEPULSE_MASTER_KEY", gatepulse_e2e::MASTER_KEY)
        .env("GATEPULSE_DELIVERY__PROXY_URL", "socks9://nowhere")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("delivery.proxy_url"), "{err}");
}
