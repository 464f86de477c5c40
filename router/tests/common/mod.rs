//! The real server (`gatepulse::run`) on 127.0.0.1:0 with a temp data dir, and a
//! small HTTP client for it: shared by the router's API-level integration tests.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use gatepulse::config::Config;
use reqwest::{Client, Method, StatusCode};
use serde_json::{Value, json};

pub const ADMIN: &str = "test-admin-token-0123456789";

pub struct TestServer {
    pub base: String,
    pub http: Client,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
    _dir: tempfile::TempDir,
}

impl TestServer {
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    pub async fn start_with(tweak: impl FnOnce(&mut Config)) -> Self {
        gatepulse::dispatch::client::install_crypto_provider();
        let dir = tempfile::tempdir().unwrap();
        let mut config = Config::defaults_for_dev(dir.path().to_path_buf(), ADMIN.into()).unwrap();
        config.dev = false;
        config.master_key = "1:Z2F0ZXB1bHNlLXRlc3QtbWFzdGVyLWtleS12MS0zMmI=".into();
        config.delivery.allow_private_destinations = false;
        tweak(&mut config);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            gatepulse::run(config, listener, async {
                let _ = stopped.await;
            })
            .await
            .unwrap();
        });
        let http = Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .unwrap();
        let server = Self {
            base,
            http,
            stop: Some(stop),
            task: Some(task),
            _dir: dir,
        };
        for _ in 0..200 {
            if let Ok(r) = server
                .http
                .get(format!("{}/readyz", server.base))
                .send()
                .await
                && r.status() == StatusCode::OK
            {
                return server;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("server did not become ready");
    }

    /// Whether `/readyz` answers 200.
    pub async fn ready(&self) -> bool {
        let r = self.http.get(format!("{}/readyz", self.base)).send().await;
        r.is_ok_and(|r| r.status() == StatusCode::OK)
    }

    pub async fn call(
        &self,
        token: &str,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        self.call_with(token, method, path, body, &[]).await
    }

    pub async fn call_with(
        &self,
        token: &str,
        method: Method,
        path: &str,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> (StatusCode, Value) {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(token);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status();
        let text = resp.text().await.unwrap();
        let value = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap()
        };
        (status, value)
    }

    /// A tenant and an API key with the given scopes.
    pub async fn tenant_with_key(&self, scopes: &[&str]) -> (String, String) {
        let (s, t) = self
            .call(
                ADMIN,
                Method::POST,
                "/v1/tenants",
                Some(json!({"name": "acme"})),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{t}");
        let tid = t["id"].as_str().unwrap().to_owned();
        let (s, k) = self
            .call(
                ADMIN,
                Method::POST,
                &format!("/v1/tenants/{tid}/keys"),
                Some(json!({"name": "k", "scopes": scopes})),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{k}");
        (tid, k["key"].as_str().unwrap().to_owned())
    }

    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.unwrap();
        }
    }
}
