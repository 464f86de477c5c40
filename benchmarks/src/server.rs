//! Building and running the `gp` binary on a temporary store.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

/// The admin token every benchmark server is started with.
pub const ADMIN: &str = "bench-admin-token-0123456789abcdef";

/// The workspace root (this crate lives in `<root>/benchmarks`).
pub fn workspace_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().unwrap_or(manifest).to_path_buf()
}

/// `target/release/gp` next to this binary, unless given explicitly.
pub fn gp_path(explicit: Option<&Path>) -> Result<PathBuf> {
    if let Some(p) = explicit {
        return Ok(p.to_path_buf());
    }
    let exe = std::env::current_exe()?;
    Ok(exe.parent().context("no parent directory")?.join("gp"))
}

/// Runs `cargo build --release -p gatepulse --bin gp` in the workspace (cargo decides
/// whether the binary is older than its sources). Without cargo on the PATH an
/// existing binary is used as is.
pub fn build_gp(gp: &Path) -> Result<()> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    eprintln!("building gp: cargo build --release -p gatepulse --bin gp");
    let status = Command::new(&cargo)
        .args(["build", "--release", "-p", "gatepulse", "--bin", "gp"])
        .current_dir(workspace_root())
        .status();
    match status {
        Ok(s) if s.success() => Ok(()),
        Ok(s) => bail!("building gp failed: {s}"),
        Err(e) if gp.exists() => {
            eprintln!(
                "cannot run cargo ({e}); using the existing {}",
                gp.display()
            );
            Ok(())
        }
        Err(e) => Err(e).context("running cargo to build gp"),
    }
}

/// `gp --version`.
pub fn gp_version(gp: &Path) -> String {
    Command::new(gp)
        .arg("--version")
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_else(|| "unknown".into())
}

/// Whether servers run on PostgreSQL (`--store postgres`).
static POSTGRES: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Chooses the store of every server started later.
pub fn use_store(store: &str) -> Result<()> {
    match store {
        "redb" => POSTGRES.store(false, std::sync::atomic::Ordering::Relaxed),
        "postgres" => POSTGRES.store(true, std::sync::atomic::Ordering::Relaxed),
        other => bail!("--store {other}: expected redb or postgres"),
    }
    Ok(())
}

/// Extra environment of every server (`--server-env`).
static EXTRA_ENV: std::sync::OnceLock<Vec<(String, String)>> = std::sync::OnceLock::new();

/// Sets the `KEY=VALUE` pairs every server started later gets in its environment.
pub fn use_env(pairs: &[String]) -> Result<()> {
    let parsed = pairs
        .iter()
        .map(|p| match p.split_once('=') {
            Some((k, v)) if !k.is_empty() => Ok((k.to_owned(), v.to_owned())),
            _ => bail!("--server-env {p}: expected KEY=VALUE"),
        })
        .collect::<Result<Vec<_>>>()?;
    let _ = EXTRA_ENV.set(parsed);
    Ok(())
}

/// The `--server-env` pairs, as `KEY=VALUE` (for reports).
pub fn extra_env() -> Vec<String> {
    EXTRA_ENV
        .get()
        .map(|v| v.iter().map(|(k, v)| format!("{k}={v}")).collect())
        .unwrap_or_default()
}

/// How many nodes each server is (`--nodes`, PostgreSQL only) and their cluster mode.
static NODES: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(1);
static ACTIVE_ACTIVE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Runs every server as `nodes` nodes on one PostgreSQL schema, in `mode` (`leader`
/// or `active-active`).
pub fn use_cluster(nodes: usize, mode: &str) -> Result<()> {
    if nodes == 0 {
        bail!("--nodes 0: at least one");
    }
    if nodes > 1 && !POSTGRES.load(std::sync::atomic::Ordering::Relaxed) {
        bail!("--nodes {nodes} needs --store postgres (the embedded store has one node)");
    }
    let active = match mode {
        "leader" => false,
        "active-active" => true,
        other => bail!("--cluster-mode {other}: expected leader or active-active"),
    };
    NODES.store(nodes, std::sync::atomic::Ordering::Relaxed);
    ACTIVE_ACTIVE.store(active, std::sync::atomic::Ordering::Relaxed);
    Ok(())
}

/// The cluster the servers run as, for reports (`1 node`, `3 nodes, leader`).
pub fn cluster_name() -> String {
    match NODES.load(std::sync::atomic::Ordering::Relaxed) {
        1 => "1 node".to_owned(),
        n if ACTIVE_ACTIVE.load(std::sync::atomic::Ordering::Relaxed) => {
            format!("{n} nodes, active-active")
        }
        n => format!("{n} nodes, leader"),
    }
}

/// The store servers run on, for reports.
pub fn store_name() -> &'static str {
    if POSTGRES.load(std::sync::atomic::Ordering::Relaxed) {
        "postgres"
    } else {
        "redb"
    }
}

/// A running `gp serve` (with `--nodes`, its first node and the others beside it);
/// killed when dropped.
pub struct Server {
    child: Option<Child>,
    pub base: String,
    /// Every node's base URL, the first one's first: publishers spread over them.
    pub bases: Vec<String>,
    /// The other nodes, with their data dirs.
    others: Vec<(Child, tempfile::TempDir)>,
    _dir: Option<tempfile::TempDir>,
    /// Declared after `child`: the schema is dropped once the server is gone.
    _backend: gatepulse_e2e::Backend,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server").field("base", &self.base).finish()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        for (mut c, _) in self.others.drain(..) {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Server {
    /// Starts `gp serve` on a fresh temporary store and waits for `/readyz`.
    pub async fn start(gp: &Path) -> Result<Server> {
        let dir = tempfile::tempdir()?;
        let mut s = Server::start_on(gp, dir.path()).await?.0;
        s._dir = Some(dir);
        Ok(s)
    }

    /// Starts `gp serve` on `data_dir` and returns it with the time to `/readyz` 200.
    pub async fn start_on(gp: &Path, data_dir: &Path) -> Result<(Server, Duration)> {
        Server::start_with(gp, data_dir, &[]).await
    }

    /// [`Server::start_on`] with extra environment (configuration overrides).
    pub async fn start_with(
        gp: &Path,
        data_dir: &Path,
        env: &[(&str, &str)],
    ) -> Result<(Server, Duration)> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let backend = if POSTGRES.load(std::sync::atomic::Ordering::Relaxed) {
            gatepulse_e2e::Backend::postgres()
        } else {
            gatepulse_e2e::Backend::redb()
        };
        let started = Instant::now();
        let nodes = NODES.load(std::sync::atomic::Ordering::Relaxed);
        let mode = if ACTIVE_ACTIVE.load(std::sync::atomic::Ordering::Relaxed) {
            "active-active"
        } else {
            "leader"
        };
        let mut env: Vec<(String, String)> = backend
            .env(env)
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        env.extend(EXTRA_ENV.get().into_iter().flatten().cloned());
        // Only when asked for: a binary from before the cluster refuses the key
        // (`--compare` runs against older builds).
        if nodes > 1 || mode != "leader" {
            env.push(("GATEPULSE_CLUSTER__MODE".into(), mode.into()));
        }
        let spawn = |port: u16, dir: &Path, node: &str| {
            let mut cmd = Command::new(gp);
            if nodes > 1 {
                cmd.env("GATEPULSE_CLUSTER__NODE_ID", node);
            }
            cmd.args([
                "serve",
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--data-dir",
            ])
            .arg(dir)
            .env("GATEPULSE_ADMIN_TOKEN", ADMIN)
            // A benchmark-only key: the store is thrown away after the run.
            .env(
                "GATEPULSE_MASTER_KEY",
                "1:Z2F0ZXB1bHNlLXRlc3QtbWFzdGVyLWtleS12MS0zMmI=",
            )
            .env("GATEPULSE_DELIVERY__ALLOW_PRIVATE_DESTINATIONS", "true")
            .env("RUST_LOG", "warn")
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdout(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {}", gp.display()))
        };
        let child = spawn(port, data_dir, "bench-0")?;
        let mut server = Server {
            child: Some(child),
            base: format!("http://127.0.0.1:{port}"),
            bases: vec![format!("http://127.0.0.1:{port}")],
            others: Vec::new(),
            _dir: None,
            _backend: backend,
        };
        for i in 1..nodes {
            let port = std::net::TcpListener::bind("127.0.0.1:0")?
                .local_addr()?
                .port();
            let dir = tempfile::tempdir()?;
            let child = spawn(port, dir.path(), &format!("bench-{i}"))?;
            server.others.push((child, dir));
            server.bases.push(format!("http://127.0.0.1:{port}"));
        }
        let http = reqwest::Client::new();
        let deadline = started + Duration::from_secs(600);
        for base in server.bases.clone() {
            loop {
                if let Ok(r) = http.get(format!("{base}/readyz")).send().await
                    && r.status().is_success()
                {
                    break;
                }
                if let Some(c) = server.child.as_mut()
                    && let Some(status) = c.try_wait()?
                {
                    bail!("gp exited before it was ready ({status})");
                }
                if Instant::now() > deadline {
                    bail!("gp at {base} did not become ready within 600 s");
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
        Ok((server, started.elapsed()))
    }

    /// Stops the server: SIGTERM and wait (a clean shutdown), or SIGKILL.
    pub fn stop(mut self, graceful: bool) -> Result<()> {
        if let Some(mut c) = self.child.take() {
            if graceful {
                let _ = Command::new("kill")
                    .args(["-TERM", &c.id().to_string()])
                    .status();
                let deadline = Instant::now() + Duration::from_secs(60);
                while Instant::now() < deadline {
                    if c.try_wait()?.is_some() {
                        return Ok(());
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
            c.kill()?;
            c.wait()?;
        }
        Ok(())
    }

    /// The server's process id (while it runs); with `--nodes`, the first node's.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Every node's process id.
    pub fn pids(&self) -> Vec<u32> {
        self.pid()
            .into_iter()
            .chain(self.others.iter().map(|(c, _)| c.id()))
            .collect()
    }

    /// Reads `/metrics` (Prometheus text).
    pub async fn metrics(&self) -> Result<String> {
        Ok(reqwest::get(format!("{}/metrics", self.base))
            .await?
            .text()
            .await?)
    }
}

/// `POST` with a bearer token; the JSON answer or an error with the status and body.
pub async fn post(http: &reqwest::Client, url: String, token: &str, body: Value) -> Result<Value> {
    let r = http.post(url).bearer_auth(token).json(&body).send().await?;
    let status = r.status();
    let v: Value = r.json().await?;
    if !status.is_success() {
        bail!("{status}: {v}");
    }
    Ok(v)
}

/// Creates a tenant and a key that may publish and manage endpoints.
pub async fn tenant_key(http: &reqwest::Client, base: &str) -> Result<String> {
    tenant_key_with(http, base, "bench", &["events:write", "endpoints:manage"]).await
}

/// Creates a tenant named `name` and a key with `scopes`.
pub async fn tenant_key_with(
    http: &reqwest::Client,
    base: &str,
    name: &str,
    scopes: &[&str],
) -> Result<String> {
    let t = post(
        http,
        format!("{base}/v1/tenants"),
        ADMIN,
        json!({ "name": name }),
    )
    .await?;
    let tid = t["id"].as_str().context("tenant id")?;
    let k = post(
        http,
        format!("{base}/v1/tenants/{tid}/keys"),
        ADMIN,
        json!({"name": "bench", "scopes": scopes}),
    )
    .await?;
    Ok(k["key"].as_str().context("key")?.to_owned())
}

/// Reads a histogram's mean (`_sum / _count`) from the Prometheus text.
pub fn histogram_mean(metrics: &str, name: &str) -> Option<f64> {
    let sum = series_value(metrics, &format!("{name}_sum"))?;
    let count = series_value(metrics, &format!("{name}_count"))?;
    (count > 0.0).then(|| sum / count)
}

/// The value of one series in Prometheus text (`series` is the name with its labels
/// exactly as the server prints them, e.g. `c_bucket{le="0.05"}`).
pub fn series_value(metrics: &str, series: &str) -> Option<f64> {
    metrics.lines().find_map(|l| {
        l.strip_prefix(series)?
            .strip_prefix(' ')?
            .trim()
            .parse::<f64>()
            .ok()
    })
}

/// How many observations a histogram has.
pub fn histogram_count(metrics: &str, name: &str) -> Option<u64> {
    series_value(metrics, &format!("{name}_count")).map(|c| c as u64)
}

/// How many observations of a histogram were above the bucket bound `le` (as the
/// exporter writes it, e.g. `"0.05"`): `_count` minus that bucket.
pub fn histogram_over(metrics: &str, name: &str, le: &str) -> Option<u64> {
    let within = series_value(metrics, &format!("{name}_bucket{{le=\"{le}\"}}"))? as u64;
    Some(histogram_count(metrics, name)?.saturating_sub(within))
}

/// Total size of the files under `dir` in bytes: apparent (file lengths) and
/// allocated on disk (`du`; redb grows its file ahead of the data).
pub fn dir_size(dir: &Path) -> (u64, u64) {
    use std::os::unix::fs::MetadataExt;
    let (mut apparent, mut allocated) = (0, 0);
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            match e.metadata() {
                Ok(m) if m.is_dir() => {
                    let (a, b) = dir_size(&e.path());
                    apparent += a;
                    allocated += b;
                }
                Ok(m) => {
                    apparent += m.len();
                    allocated += m.blocks() * 512;
                }
                Err(_) => {}
            }
        }
    }
    (apparent, allocated)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_the_observations_above_a_bucket() {
        let text = "# TYPE c histogram\nc_bucket{le=\"0.025\"} 90\nc_bucket{le=\"0.05\"} 97\n\
                    c_bucket{le=\"+Inf\"} 100\nc_sum 1.5\nc_count 100\n";
        assert_eq!(histogram_over(text, "c", "0.05"), Some(3));
        assert_eq!(histogram_over(text, "c", "0.025"), Some(10));
        assert_eq!(histogram_over(text, "c", "0.1"), None);
        assert_eq!(histogram_over(text, "d", "0.05"), None);
        assert_eq!(histogram_count(text, "c"), Some(100));
        assert_eq!(histogram_mean(text, "c"), Some(0.015));
    }
}
