//! End-to-end harness: starts the real `gp` binary on a free port with a temp data dir
//! and talks to it over HTTP only. Nothing here links GatePulse itself.

pub mod cluster;
pub mod plugins;
pub mod receiver;
pub mod sse;
pub mod tooling;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use reqwest::{Client, Method, StatusCode};
use serde_json::{Value, json};

pub const ADMIN_TOKEN: &str = "e2e-admin-token-0123456789abcdef";
/// The master key the test servers seal secrets with (a test-only key: never use it).
pub const MASTER_KEY: &str = "1:Z2F0ZXB1bHNlLXRlc3QtbWFzdGVyLWtleS12MS0zMmI=";

/// The PostgreSQL server end-to-end tests use (`GATEPULSE_TEST_POSTGRES`, else the
/// machine's own).
pub fn pg_url() -> String {
    std::env::var("GATEPULSE_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

/// The store a test's server runs on. A PostgreSQL backend gets a schema of its own,
/// dropped when the value is (declare it before the `Gp`, so the server stops first).
pub struct Backend {
    pub name: &'static str,
    env: Vec<(String, String)>,
    schema: Option<String>,
}

impl Backend {
    pub fn redb() -> Self {
        Self {
            name: "redb",
            env: Vec::new(),
            schema: None,
        }
    }

    pub fn postgres() -> Self {
        let schema = format!("gp_e2e_{:016x}", rand_u64());
        Self {
            name: "postgres",
            env: vec![
                ("GATEPULSE_STORE".into(), pg_url()),
                ("GATEPULSE_POSTGRES__SCHEMA".into(), schema.clone()),
            ],
            schema: Some(schema),
        }
    }

    /// The PostgreSQL schema of this backend.
    pub fn schema(&self) -> Option<&str> {
        self.schema.as_deref()
    }

    /// `extra` plus what selects this backend.
    pub fn env<'a>(&'a self, extra: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
        let mut all: Vec<(&str, &str)> = self
            .env
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        all.extend_from_slice(extra);
        all
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        let Some(schema) = self.schema.take() else {
            return;
        };
        let _ = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async {
                if let Ok((client, conn)) =
                    tokio_postgres::connect(&pg_url(), tokio_postgres::NoTls).await
                {
                    tokio::spawn(conn);
                    let _ = client
                        .batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
                        .await;
                }
            });
        })
        .join();
    }
}

fn rand_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    h.finish()
}

/// Installs rustls' `ring` provider (the workspace builds reqwest without a default
/// one); every test client needs it before a `reqwest::Client` is built.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// The `gp` binary: `$GP_BIN`, or `gp` next to the test executable's `deps/` folder.
pub fn gp_binary() -> Result<PathBuf> {
    if let Some(p) = std::env::var_os("GP_BIN") {
        return Ok(PathBuf::from(p));
    }
    let exe = std::env::current_exe()?;
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .context("test executable has no parent directory")?;
    let bin = dir.join("gp");
    if !bin.exists() {
        bail!(
            "{} not found: build it first (cargo build -p gatepulse --bin gp) or set GP_BIN",
            bin.display()
        );
    }
    Ok(bin)
}

/// The workspace's root directory (the tests read its files: docs, assets, configs).
pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A file of the workspace as text, `relative` to its root; panics naming the path
/// when it cannot be read (tests only).
pub fn workspace_file(relative: &str) -> String {
    let path = workspace_root().join(relative);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

/// A TCP port on 127.0.0.1 nothing listens on right now.
pub fn free_port() -> Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}

/// A running `gp serve`.
pub struct Gp {
    child: Option<Child>,
    pub base: String,
    pub data_dir: PathBuf,
    pub http: Client,
    port: u16,
    extra_env: Vec<(String, String)>,
    /// Where the server's stdout and stderr go (appended), instead of inheriting them.
    log: Option<PathBuf>,
}

impl Gp {
    /// Starts `gp serve` on a free port over `data_dir`; waits until `/readyz` is 200.
    pub async fn start(data_dir: &Path, extra_env: &[(&str, &str)]) -> Result<Self> {
        let mut gp = Self::new(data_dir, extra_env)?;
        gp.spawn().await?;
        Ok(gp)
    }

    /// [`Gp::start`] with the server's stdout and stderr appended to `log`.
    pub async fn start_logged(
        data_dir: &Path,
        extra_env: &[(&str, &str)],
        log: &Path,
    ) -> Result<Self> {
        let mut gp = Self::new(data_dir, extra_env)?;
        gp.log = Some(log.to_path_buf());
        gp.spawn().await?;
        Ok(gp)
    }

    /// Sets (or replaces) an environment variable for the next [`Gp::restart`].
    pub fn set_env(&mut self, key: &str, value: &str) {
        self.extra_env.retain(|(k, _)| k != key);
        self.extra_env.push((key.to_owned(), value.to_owned()));
    }

    /// Starts `gp serve` and waits only until it answers HTTP (any status), for nodes
    /// that are up but not ready (e.g. a read-only store).
    pub async fn start_unready(data_dir: &Path, extra_env: &[(&str, &str)]) -> Result<Self> {
        let mut gp = Self::new(data_dir, extra_env)?;
        gp.spawn_until(|_| true, Duration::from_secs(30)).await?;
        Ok(gp)
    }

    /// A handle for a server not started yet, on a free port.
    fn new(data_dir: &Path, extra_env: &[(&str, &str)]) -> Result<Self> {
        install_crypto_provider();
        Ok(Self {
            child: None,
            base: String::new(),
            data_dir: data_dir.to_path_buf(),
            http: Client::builder().timeout(Duration::from_secs(30)).build()?,
            port: free_port()?,
            extra_env: extra_env
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            log: None,
        })
    }

    async fn spawn(&mut self) -> Result<()> {
        self.spawn_until(|s| s == StatusCode::OK, Duration::from_secs(30))
            .await
    }

    /// Spawns and polls `/readyz` until `ready(status)`.
    async fn spawn_until(
        &mut self,
        ready: impl Fn(StatusCode) -> bool,
        wait: Duration,
    ) -> Result<()> {
        self.base = format!("http://127.0.0.1:{}", self.port);
        let mut cmd = Command::new(gp_binary()?);
        cmd.arg("serve")
            .arg("--listen")
            .arg(format!("127.0.0.1:{}", self.port))
            .arg("--data-dir")
            .arg(&self.data_dir)
            .env("GATEPULSE_ADMIN_TOKEN", ADMIN_TOKEN)
            .env("GATEPULSE_MASTER_KEY", MASTER_KEY)
            .env("GATEPULSE_DELIVERY__ALLOW_PRIVATE_DESTINATIONS", "true")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        for (k, v) in &self.extra_env {
            cmd.env(k, v);
        }
        if let Some(path) = &self.log {
            let file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)?;
            cmd.stdout(file.try_clone()?).stderr(file);
        }
        let child = cmd.spawn().context("spawning gp")?;
        self.child = Some(child);
        let deadline = Instant::now() + wait;
        loop {
            if let Some(child) = self.child.as_mut()
                && let Some(status) = child.try_wait()?
            {
                bail!("gp exited early with {status}");
            }
            if let Ok(r) = self.http.get(format!("{}/readyz", self.base)).send().await
                && ready(r.status())
            {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("gp did not become ready in {wait:?}");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The server's process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Resident memory of the server process, in KiB (Linux `/proc`).
    pub fn rss_kib(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()?)).ok()?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
    }

    /// `kill -9`: no shutdown work at all.
    pub fn kill9(&mut self) -> Result<()> {
        if let Some(mut child) = self.child.take() {
            child.kill()?; // SIGKILL on Unix
            child.wait()?;
        }
        Ok(())
    }

    /// `GET /metrics` (Prometheus text).
    pub async fn metrics(&self) -> Result<String> {
        let resp = self
            .http
            .get(format!("{}/metrics", self.base))
            .send()
            .await?;
        Ok(resp.text().await?)
    }

    /// Sends a signal by name (`STOP`, `CONT`, …) to the running server.
    pub fn signal(&self, name: &str) -> Result<()> {
        let pid = self.pid().context("gp is not running")?;
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(pid.to_string())
            .status()?;
        if !status.success() {
            bail!("kill -{name} {pid} failed");
        }
        Ok(())
    }

    /// SIGTERM and wait for a clean exit; returns the exit code.
    pub fn terminate(&mut self) -> Result<i32> {
        let Some(mut child) = self.child.take() else {
            return Ok(0);
        };
        let status = Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status()?;
        if !status.success() {
            bail!("kill -TERM failed");
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(s) = child.try_wait()? {
                return Ok(s.code().unwrap_or(-1));
            }
            if Instant::now() > deadline {
                child.kill()?;
                bail!("gp did not exit within 30 s of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Starts again on the same port and data dir.
    pub async fn restart(&mut self) -> Result<()> {
        self.spawn().await
    }

    pub async fn call(
        &self,
        token: &str,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<(StatusCode, Value)> {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await?;
        let status = resp.status();
        let text = resp.text().await?;
        let value = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text)?
        };
        Ok((status, value))
    }

    /// Creates a tenant and an all-scopes key; returns (tenant id, key). The key reads
    /// the audit log, so its stream holds every cursor (the tenant's audit records
    /// among them: its creation and the key's own take the first two).
    pub async fn tenant_with_key(&self) -> Result<(String, String)> {
        let (s, t) = self
            .call(
                ADMIN_TOKEN,
                Method::POST,
                "/v1/tenants",
                Some(json!({"name": "e2e"})),
            )
            .await?;
        if s != StatusCode::CREATED {
            bail!("create tenant: {s} {t}");
        }
        let tid = t["id"].as_str().context("tenant id")?.to_owned();
        let scopes = [
            "events:write",
            "events:read",
            "endpoints:manage",
            "replay:write",
            "dlq:manage",
            "audit:read",
        ];
        let (s, k) = self
            .call(
                ADMIN_TOKEN,
                Method::POST,
                &format!("/v1/tenants/{tid}/keys"),
                Some(json!({"name": "e2e", "scopes": scopes})),
            )
            .await?;
        if s != StatusCode::CREATED {
            bail!("create key: {s} {k}");
        }
        Ok((tid, k["key"].as_str().context("key")?.to_owned()))
    }

    /// Publishes one event; the `202` answer (`id`, `cursor`, `deduped`), or an error
    /// naming any other status.
    pub async fn publish(&self, token: &str, topic: &str, payload: &Value) -> Result<Value> {
        let (s, out) = self
            .call(
                token,
                Method::POST,
                "/v1/events",
                Some(json!({"topic": topic, "payload": payload})),
            )
            .await?;
        if s != StatusCode::ACCEPTED {
            bail!("publish: {s} {out}");
        }
        Ok(out)
    }

    /// Creates an endpoint from `endpoint` (its JSON body) and subscribes it to
    /// `topics`, with `extra` fields (a filter, a transform) merged into the
    /// subscription; returns (endpoint, subscription) as the API answered them.
    pub async fn subscribe(
        &self,
        token: &str,
        endpoint: Value,
        topics: &[&str],
        extra: Option<Value>,
    ) -> Result<(Value, Value)> {
        let (s, ep) = self
            .call(token, Method::POST, "/v1/endpoints", Some(endpoint))
            .await?;
        if s != StatusCode::CREATED {
            bail!("create endpoint: {s} {ep}");
        }
        let mut body = json!({"endpoint_id": ep["id"], "topics": topics});
        if let Some(Value::Object(fields)) = extra {
            for (k, v) in fields {
                body[k] = v;
            }
        }
        let (s, sub) = self
            .call(token, Method::POST, "/v1/subscriptions", Some(body))
            .await?;
        if s != StatusCode::CREATED {
            bail!("create subscription: {s} {sub}");
        }
        Ok((ep, sub))
    }

    /// Writes an online snapshot into `dir` (which must not exist yet) with the admin
    /// token; the manifest the server answered.
    pub async fn snapshot(&self, dir: &Path) -> Result<Value> {
        let (s, v) = self
            .call(
                ADMIN_TOKEN,
                Method::POST,
                "/v1/admin/snapshots",
                Some(json!({"path": dir.display().to_string()})),
            )
            .await?;
        if s != StatusCode::CREATED {
            bail!("snapshot: {s} {v}");
        }
        Ok(v)
    }

    /// Follows `next_cursor` through a whole listing.
    pub async fn list_all(&self, token: &str, path: &str) -> Result<Vec<Value>> {
        let sep = if path.contains('?') { '&' } else { '?' };
        let mut out = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let url = match &cursor {
                Some(c) => format!("{path}{sep}limit=1000&cursor={c}"),
                None => format!("{path}{sep}limit=1000"),
            };
            let (s, page) = self.call(token, Method::GET, &url, None).await?;
            if s != StatusCode::OK {
                bail!("list {path}: {s} {page}");
            }
            out.extend(page["data"].as_array().cloned().unwrap_or_default());
            match page["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_owned()),
                None => return Ok(out),
            }
        }
    }
}

impl Drop for Gp {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
