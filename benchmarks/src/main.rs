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
    /// End to end: publish → deliver to a local receiver; latency and deliveries/s.
    Deliver(DeliverArgs),
}

#[derive(Debug, clap::Args)]
struct DeliverArgs {
    /// Concurrent publishers (each waits for its 202 before publishing again).
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// Publish at this many events/s in total instead of as fast as possible.
    #[arg(long)]
    rate: Option<u64>,
    /// Measured duration, after a 2-second warm-up.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    #[arg(long, default_value_t = 1024)]
    payload_bytes: usize,
    /// Endpoints subscribed to every event (fan-out).
    #[arg(long, default_value_t = 1)]
    fanout: usize,
    /// Publish through POST /v1/events/batch with this many events per call.
    #[arg(long, default_value_t = 1)]
    batch: usize,
    #[arg(long)]
    gp: Option<PathBuf>,
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
    spawn_gp(args.gp.clone()).await
}

async fn spawn_gp(gp: Option<PathBuf>) -> Result<Server> {
    let dir = tempfile::tempdir()?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let child = Command::new(gp_path(gp)?)
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
/// A tenant and a key that may publish and manage endpoints.
async fn tenant_key(http: &reqwest::Client, base: &str) -> Result<String> {
    let t = post(
        http,
        format!("{base}/v1/tenants"),
        ADMIN,
        json!({"name": "bench"}),
    )
    .await?;
    let tid = t["id"].as_str().context("tenant id")?;
    let k = post(
        http,
        format!("{base}/v1/tenants/{tid}/keys"),
        ADMIN,
        json!({"name": "bench", "scopes": ["events:write", "endpoints:manage"]}),
    )
    .await?;
    Ok(k["key"].as_str().context("key")?.to_owned())
}

async fn setup(base: &str, subscriptions: usize) -> Result<String> {
    let http = reqwest::Client::new();
    let key = tenant_key(&http, base).await?;
    for _ in 0..subscriptions {
        // Disabled: deliveries are stored and queued but not attempted, so this
        // measures ingest alone.
        let ep = post(
            &http,
            format!("{base}/v1/endpoints"),
            &key,
            json!({"url": "http://127.0.0.1:9/sink", "enabled": false}),
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

/// Microseconds since the Unix epoch (publisher and receiver share this clock).
fn now_us() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

/// What the receiver saw.
#[derive(Default)]
struct Received {
    hist: Option<Histogram<u64>>,
    seen: std::collections::HashSet<String>,
    duplicates: u64,
    count: u64,
    measuring: bool,
}

/// A minimal webhook receiver: answers 204 and records publish→receipt latency from
/// the `sent_us` the publisher put in the payload.
async fn start_receiver(state: Arc<std::sync::Mutex<Received>>) -> Result<String> {
    use axum::body::Bytes;
    use axum::http::HeaderMap;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let app = axum::Router::new().route(
        "/hook/{n}",
        axum::routing::post(move |headers: HeaderMap, body: Bytes| {
            let state = state.clone();
            async move {
                let now = now_us();
                let sent = std::str::from_utf8(&body)
                    .ok()
                    .and_then(|b| b.split("\"sent_us\":").nth(1))
                    .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
                    .and_then(|n| n.parse::<u64>().ok());
                let id = headers
                    .get("webhook-id")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .to_owned();
                if let Ok(mut r) = state.lock() {
                    r.count += 1;
                    if !r.seen.insert(id) {
                        r.duplicates += 1;
                    }
                    if r.measuring
                        && let (Some(sent), Some(h)) = (sent, r.hist.as_mut())
                    {
                        let _ = h.record(now.saturating_sub(sent).max(1));
                    }
                }
                axum::http::StatusCode::NO_CONTENT
            }
        }),
    );
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok(format!("http://{addr}"))
}

async fn deliver(args: DeliverArgs) -> Result<()> {
    let server = spawn_gp(args.gp.clone()).await?;
    let received = Arc::new(std::sync::Mutex::new(Received {
        hist: Some(Histogram::<u64>::new_with_bounds(1, 600_000_000, 3)?),
        ..Received::default()
    }));
    let receiver = start_receiver(received.clone()).await?;
    let base = server.base.clone();
    let http = reqwest::Client::new();
    let key = Arc::new(tenant_key(&http, &base).await?);
    for n in 0..args.fanout {
        let ep = post(
            &http,
            format!("{base}/v1/endpoints"),
            &key,
            json!({"url": format!("{receiver}/hook/{n}"), "max_in_flight": 64}),
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
    let filler = Arc::new("x".repeat(args.payload_bytes.saturating_sub(80)));
    let stop = Arc::new(AtomicBool::new(false));
    let published = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let per_worker_interval = args.rate.map(|r| {
        Duration::from_secs_f64(args.concurrency as f64 * args.batch as f64 / r.max(1) as f64)
    });
    let mut workers = Vec::new();
    for w in 0..args.concurrency {
        let (key, stop, published, filler, base) = (
            key.clone(),
            stop.clone(),
            published.clone(),
            filler.clone(),
            base.clone(),
        );
        let batch = args.batch;
        workers.push(tokio::spawn(async move {
            let http = reqwest::Client::builder().pool_max_idle_per_host(1).build()?;
            let mut next = tokio::time::Instant::now();
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                if let Some(iv) = per_worker_interval {
                    tokio::time::sleep_until(next).await;
                    next += iv;
                }
                let mut items = Vec::with_capacity(batch);
                for _ in 0..batch {
                    n += 1;
                    items.push(format!(
                        r#"{{"topic":"bench.created","payload":{{"w":{w},"n":{n},"sent_us":{},"data":"{filler}"}}}}"#,
                        now_us()
                    ));
                }
                let (url, body) = if batch == 1 {
                    (format!("{base}/v1/events"), items.remove(0))
                } else {
                    (format!("{base}/v1/events/batch"), format!(r#"{{"events":[{}]}}"#, items.join(",")))
                };
                let ok = http
                    .post(url)
                    .bearer_auth(key.as_str())
                    .header("content-type", "application/json")
                    .body(body)
                    .send()
                    .await
                    .map(|r| r.status().as_u16() == 202)
                    .unwrap_or(false);
                if ok {
                    published.fetch_add(batch as u64, Ordering::Relaxed);
                }
            }
            anyhow::Ok(())
        }));
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (p0, r0) = {
        let mut r = received.lock().map_err(|_| anyhow::anyhow!("lock"))?;
        r.measuring = true;
        (published.load(Ordering::Relaxed), r.count)
    };
    let started = Instant::now();
    tokio::time::sleep(Duration::from_secs(args.seconds)).await;
    let elapsed = started.elapsed().as_secs_f64();
    let (p1, r1) = {
        let mut r = received.lock().map_err(|_| anyhow::anyhow!("lock"))?;
        r.measuring = false;
        (published.load(Ordering::Relaxed), r.count)
    };
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.await??;
    }
    // Let the tail drain, then count what never arrived.
    let expected_total = published.load(Ordering::Relaxed) * args.fanout as u64;
    let drain_deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let count = received
            .lock()
            .map_err(|_| anyhow::anyhow!("lock"))?
            .seen
            .len() as u64;
        if count >= expected_total || Instant::now() > drain_deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let r = received.lock().map_err(|_| anyhow::anyhow!("lock"))?;
    let h = r.hist.as_ref().context("histogram")?;
    let ms = |q: f64| h.value_at_quantile(q) as f64 / 1000.0;
    let missing = expected_total.saturating_sub(r.seen.len() as u64);
    println!("## deliver: publish → receiver\n");
    println!(
        "concurrency {}, {}, batch {}, payload ~{} B, fan-out {}, {} s measured\n",
        args.concurrency,
        args.rate.map_or("unthrottled".to_owned(), |r| format!(
            "{r} events/s offered"
        )),
        args.batch,
        args.payload_bytes,
        args.fanout,
        args.seconds
    );
    println!(
        "| publishes/s | deliveries/s | p50 ms | p95 ms | p99 ms | max ms | published | missing | duplicates |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    println!(
        "| {:.0} | {:.0} | {:.2} | {:.2} | {:.2} | {:.2} | {} | {} | {} |",
        (p1 - p0) as f64 / elapsed,
        (r1 - r0) as f64 / elapsed,
        ms(0.50),
        ms(0.95),
        ms(0.99),
        h.max() as f64 / 1000.0,
        published.load(Ordering::Relaxed),
        missing,
        r.duplicates
    );
    drop(server);
    Ok(())
}

#[tokio::main]
async fn main() -> Result<()> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    match Cli::parse().scenario {
        Scenario::Ingest(args) => ingest(args).await,
        Scenario::Deliver(args) => deliver(args).await,
    }
}
