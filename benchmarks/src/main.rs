//! `gp-bench`: the GatePulse load harness.
//!
//! Starts the real `gp` binary (release build) on a temp store, creates a tenant, key,
//! endpoint and subscription, then drives load over HTTP with keep-alive connections
//! and reports throughput and latency percentiles as a markdown table.
//!
//! ```text
//! cargo build --release -p gatepulse -p gatepulse-bench
//! target/release/gp-bench ingest --concurrency 64 --seconds 10 --payload-bytes 1024
//! ```

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use hdrhistogram::Histogram;
use serde_json::{Value, json};

const ADMIN: &str = "bench-admin-token-0123456789abcdef";

#[derive(Debug, Parser)]
#[command(name = "gp-bench", about = "GatePulse load harness")]
struct Cli {
    #[command(subcommand)]
    scenario: Scenario,
}

#[derive(Debug, Subcommand)]
enum Scenario {
    /// Durable publishes: POST /v1/events at fixed concurrency.
    Ingest(IngestArgs),
}

#[derive(Debug, clap::Args)]
struct IngestArgs {
    /// Concurrent publishers (each with its own keep-alive connection).
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Measured duration, after a 2-second warm-up.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Approximate payload size in bytes.
    #[arg(long, default_value_t = 1024)]
    payload_bytes: usize,
    /// Subscriptions matching every event (each adds one delivery per event).
    #[arg(long, default_value_t = 1)]
    subscriptions: usize,
    /// The gp binary (default: target/release/gp next to this binary).
    #[arg(long)]
    gp: Option<PathBuf>,
    /// Benchmark a server that is already running instead (with this admin token).
    #[arg(long)]
    url: Option<String>,
}

struct Server {
    child: Option<Child>,
    base: String,
    _dir: Option<tempfile::TempDir>,
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn gp_path(explicit: Option<PathBuf>) -> Result<PathBuf> {
    if let Some(p) = explicit {
        return Ok(p);
    }
    let exe = std::env::current_exe()?;
    let p = exe.parent().context("no parent")?.join("gp");
    if !p.exists() {
        bail!(
            "{} not found; build it with `cargo build --release -p gatepulse`",
            p.display()
        );
    }
    Ok(p)
}

async fn start_server(args: &IngestArgs) -> Result<Server> {
    if let Some(url) = &args.url {
        return Ok(Server {
            child: None,
            base: url.trim_end_matches('/').into(),
            _dir: None,
        });
    }
    let dir = tempfile::tempdir()?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let child = Command::new(gp_path(args.gp.clone())?)
        .args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--data-dir",
        ])
        .arg(dir.path())
        .env("GATEPULSE_ADMIN_TOKEN", ADMIN)
        .env("GATEPULSE_DELIVERY__ALLOW_PRIVATE_DESTINATIONS", "true")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .context("starting gp")?;
    let server = Server {
        child: Some(child),
        base: format!("http://127.0.0.1:{port}"),
        _dir: Some(dir),
    };
    let http = reqwest::Client::new();
    for _ in 0..500 {
        if let Ok(r) = http.get(format!("{}/readyz", server.base)).send().await
            && r.status().is_success()
        {
            return Ok(server);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    bail!("gp did not become ready")
}

async fn post(http: &reqwest::Client, url: String, token: &str, body: Value) -> Result<Value> {
    let r = http.post(url).bearer_auth(token).json(&body).send().await?;
    let status = r.status();
    let v: Value = r.json().await?;
    if !status.is_success() {
        bail!("{status}: {v}");
    }
    Ok(v)
}

/// Tenant, key and `subscriptions` subscriptions to `bench.#` on inbox-less endpoints.
async fn setup(base: &str, subscriptions: usize) -> Result<String> {
    let http = reqwest::Client::new();
    let t = post(
        &http,
        format!("{base}/v1/tenants"),
        ADMIN,
        json!({"name": "bench"}),
    )
    .await?;
    let tid = t["id"].as_str().context("tenant id")?;
    let k = post(
        &http,
        format!("{base}/v1/tenants/{tid}/keys"),
        ADMIN,
        json!({"name": "bench", "scopes": ["events:write", "endpoints:manage"]}),
    )
    .await?;
    let key = k["key"].as_str().context("key")?.to_owned();
    for _ in 0..subscriptions {
        let ep = post(
            &http,
            format!("{base}/v1/endpoints"),
            &key,
            json!({"url": "http://127.0.0.1:9/sink"}),
        )
        .await?;
        post(
            &http,
            format!("{base}/v1/subscriptions"),
            &key,
            json!({"endpoint_id": ep["id"], "topics": ["bench.#"]}),
        )
        .await?;
    }
    Ok(key)
}

/// Reads a histogram's `_sum` and `_count` from the Prometheus text.
fn histogram_mean(metrics: &str, name: &str) -> Option<f64> {
    let find = |suffix: &str| {
        metrics.lines().find_map(|l| {
            l.strip_prefix(&format!("{name}{suffix} "))
                .and_then(|v| v.trim().parse::<f64>().ok())
        })
    };
    let (sum, count) = (find("_sum")?, find("_count")?);
    (count > 0.0).then(|| sum / count)
}

async fn ingest(args: IngestArgs) -> Result<()> {
    let server = start_server(&args).await?;
    let key = Arc::new(setup(&server.base, args.subscriptions).await?);
    let filler = "x".repeat(args.payload_bytes.saturating_sub(60));
    let url = Arc::new(format!("{}/v1/events", server.base));
    let measuring = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let mut workers = Vec::new();
    for w in 0..args.concurrency {
        let (key, url, measuring, stop, filler) = (
            key.clone(),
            url.clone(),
            measuring.clone(),
            stop.clone(),
            filler.clone(),
        );
        workers.push(tokio::spawn(async move {
            let http = reqwest::Client::builder().pool_max_idle_per_host(1).build()?;
            let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
            let mut errors = 0u64;
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                let body = format!(
                    r#"{{"topic":"bench.created","payload":{{"worker":{w},"n":{n},"data":"{filler}"}}}}"#
                );
                let started = Instant::now();
                let resp = http
                    .post(url.as_str())
                    .bearer_auth(key.as_str())
                    .header("content-type", "application/json")
                    .body(body)
                    .send()
                    .await;
                let ok = match resp {
                    Ok(r) => r.status().as_u16() == 202 && r.bytes().await.is_ok(),
                    Err(_) => false,
                };
                if measuring.load(Ordering::Relaxed) {
                    if ok {
                        hist.record(started.elapsed().as_micros() as u64)?;
                    } else {
                        errors += 1;
                    }
                }
            }
            anyhow::Ok((hist, errors))
        }));
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let before = reqwest::get(format!("{}/metrics", server.base))
        .await?
        .text()
        .await?;
    measuring.store(true, Ordering::Relaxed);
    let started = Instant::now();
    tokio::time::sleep(Duration::from_secs(args.seconds)).await;
    measuring.store(false, Ordering::Relaxed);
    let elapsed = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    let mut total = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
    let mut errors = 0;
    for w in workers {
        let (h, e) = w.await??;
        total.add(h)?;
        errors += e;
    }
    let after = reqwest::get(format!("{}/metrics", server.base))
        .await?
        .text()
        .await?;
    let batch = histogram_mean(&after, "gatepulse_store_commit_batch_size");
    let commit = histogram_mean(&after, "gatepulse_store_commit_duration_seconds");
    let _ = before;
    let rate = total.len() as f64 / elapsed.as_secs_f64();
    let ms = |q: f64| total.value_at_quantile(q) as f64 / 1000.0;
    println!("## ingest: durable publishes\n");
    println!(
        "concurrency {}, payload ~{} B, {} subscription(s) matching each event, {} s measured\n",
        args.concurrency, args.payload_bytes, args.subscriptions, args.seconds
    );
    println!(
        "| publishes/s | p50 ms | p95 ms | p99 ms | max ms | errors | mean commit batch | mean commit ms |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|");
    println!(
        "| {:.0} | {:.2} | {:.2} | {:.2} | {:.2} | {} | {} | {} |",
        rate,
        ms(0.50),
        ms(0.95),
        ms(0.99),
        total.max() as f64 / 1000.0,
        errors,
        batch
            .map(|b| format!("{b:.1}"))
            .unwrap_or_else(|| "-".into()),
        commit
            .map(|c| format!("{:.2}", c * 1000.0))
            .unwrap_or_else(|| "-".into()),
    );
    drop(server);
    Ok(())
}

#[tokio::main]
async fn main() -> Result<()> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    match Cli::parse().scenario {
        Scenario::Ingest(args) => ingest(args).await,
    }
}
