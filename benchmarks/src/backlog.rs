//! The `pending-1m` scenario: a large backlog for an endpoint that is down, then back.
//!
//! The endpoint answers `503` ("down": its circuit opens after
//! `delivery.circuit_failure_threshold` failures and the deliveries wait, pending),
//! `events` small events are published in batches, and the server's RSS is sampled all
//! along. Then the store's size per pending event, a clean restart's time to
//! `/readyz`, and, once the endpoint answers `200` again ("back"), the drain:
//! deliveries/s from the first receipt until the receiver has every one (the wait for
//! the circuit's probe is reported apart), RSS sampled again.
//! (A disabled endpoint would not do: publishes create no deliveries for it.)

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::json;

use crate::load::{event_json, filler};
use crate::receiver::{Receiver, Timeline};
use crate::report::{ScenarioResult, Status};
use crate::scenarios::{mib, r3};
use crate::server::{Server, dir_size, post, tenant_key};
use crate::stream::rss_mib;

/// Payload bytes of each event (~230, as in the issue's measurement).
const PAYLOAD: usize = 230;
/// Events per `POST /v1/events/batch` and concurrent publishers.
const BATCH: usize = 500;
const PUBLISHERS: usize = 4;

/// The peak RSS of one process, sampled every 100 ms until stopped.
struct RssPeak {
    peak_kib: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl RssPeak {
    fn start(pid: Option<u32>) -> RssPeak {
        let peak_kib = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (p, s) = (peak_kib.clone(), stop.clone());
        let task = tokio::spawn(async move {
            while !s.load(Ordering::Relaxed) {
                if let Some(mib) = pid.and_then(rss_mib) {
                    p.fetch_max((mib * 1024.0) as u64, Ordering::Relaxed);
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        });
        RssPeak {
            peak_kib,
            stop,
            task,
        }
    }

    /// Stops sampling; the peak in MiB.
    async fn finish(self) -> f64 {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.task.await;
        (self.peak_kib.load(Ordering::Relaxed) as f64 / 1024.0).round()
    }
}

/// Publishes `events` events of [`PAYLOAD`] bytes in batches; the number stored.
async fn publish_all(base: &str, key: &str, events: u64) -> Result<u64> {
    let next = Arc::new(AtomicU64::new(0));
    let stored = Arc::new(AtomicU64::new(0));
    let fill = filler(PAYLOAD);
    let mut workers = Vec::new();
    for w in 0..PUBLISHERS {
        let (next, stored, fill) = (next.clone(), stored.clone(), fill.clone());
        let url = format!("{base}/v1/events/batch");
        let key = key.to_owned();
        workers.push(tokio::spawn(async move {
            let http = reqwest::Client::new();
            loop {
                let first = next.fetch_add(BATCH as u64, Ordering::Relaxed);
                if first >= events {
                    return anyhow::Ok(());
                }
                let n = (events - first).min(BATCH as u64);
                let items: Vec<String> = (first..first + n)
                    .map(|i| event_json(w, i + 1, &fill))
                    .collect();
                let r = http
                    .post(&url)
                    .bearer_auth(&key)
                    .header("content-type", "application/json")
                    .body(format!(r#"{{"events":[{}]}}"#, items.join(",")))
                    .send()
                    .await?;
                let status = r.status();
                let text = r.text().await?;
                if status.as_u16() != 202 {
                    bail!("batch publish answered {status}: {text}");
                }
                let accepted = text.matches(r#""id":"#).count() as u64;
                stored.fetch_add(accepted, Ordering::Relaxed);
            }
        }));
    }
    for w in workers {
        w.await??;
    }
    Ok(stored.load(Ordering::Relaxed))
}

/// Runs the scenario with `events` pending deliveries.
pub async fn run_backlog(
    gp: &std::path::Path,
    name: &str,
    description: &str,
    events: u64,
) -> Result<ScenarioResult> {
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data)?;
    let (server, _) = Server::start_on(gp, &data).await?;
    let http = reqwest::Client::new();
    let key = tenant_key(&http, &server.base).await?;
    let rx = Receiver::new(vec![Duration::ZERO], Arc::new(Timeline::new(3600)))?;
    let (rx_url, _rx_guard) = rx.serve().await?;
    let ep = post(
        &http,
        format!("{}/v1/endpoints", server.base),
        &key,
        json!({"url": format!("{rx_url}/hook/0/0"), "max_in_flight": 64}),
    )
    .await
    .context("creating the endpoint")?;
    let ep_id = ep["id"].as_str().context("endpoint id")?.to_owned();
    post(
        &http,
        format!("{}/v1/subscriptions", server.base),
        &key,
        json!({"endpoint_id": ep_id, "topics": ["bench.#"]}),
    )
    .await
    .context("creating the subscription")?;
    let rss_idle = server.pid().and_then(rss_mib).unwrap_or(0.0);
    rx.down.store(true, Ordering::Relaxed);

    let sampler = RssPeak::start(server.pid());
    let started = Instant::now();
    let stored = publish_all(&server.base, &key, events).await?;
    let ingest_secs = started.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss_after_ingest = server.pid().and_then(rss_mib).unwrap_or(0.0);
    let rss_peak_ingest = sampler.finish().await;
    server.stop(true)?;
    let (apparent, allocated) = dir_size(&data);

    let (server, ready) = Server::start_on(gp, &data).await?;
    let rss_after_restart = server.pid().and_then(rss_mib).unwrap_or(0.0);
    let sampler = RssPeak::start(server.pid());
    // Let the restarted server find the endpoint down again (its circuit reopens).
    tokio::time::sleep(Duration::from_secs(3)).await;
    rx.down.store(false, Ordering::Relaxed);
    let back = Instant::now();
    let deadline = Duration::from_secs(events / 500 + 300);
    while rx.unique(0) == 0 && back.elapsed() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let first_receipt_secs = back.elapsed().as_secs_f64();
    let drain_started = Instant::now();
    while rx.unique(0) < stored && back.elapsed() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let drain_secs = drain_started.elapsed().as_secs_f64();
    let delivered = rx.unique(0);
    let rss_peak_drain = sampler.finish().await;
    server.stop(true)?;
    let (apparent_after, allocated_after) = dir_size(&data);

    let mut out = ScenarioResult::new(name, description, Status::Ok);
    out.payload_bytes = PAYLOAD;
    out.concurrency = PUBLISHERS;
    out.batch = BATCH;
    out.fanout = 1;
    out.published = stored;
    out.publishes_per_sec = stored as f64 / ingest_secs.max(1e-9);
    out.deliveries_per_sec = Some(delivered as f64 / drain_secs.max(1e-9));
    let m = &mut out.metrics;
    m.insert("pending deliveries".into(), stored as f64);
    m.insert("ingest s".into(), r3(ingest_secs));
    m.insert("server RSS MiB, idle".into(), rss_idle.round());
    m.insert(
        "server RSS MiB, peak while accepting".into(),
        rss_peak_ingest,
    );
    m.insert("server RSS MiB, 2 s after".into(), rss_after_ingest.round());
    m.insert("store MiB on disk (allocated)".into(), mib(allocated));
    m.insert("store MiB (file length)".into(), mib(apparent));
    m.insert(
        "store bytes per pending event (allocated)".into(),
        (allocated as f64 / stored.max(1) as f64).round(),
    );
    m.insert(
        "ready s, restart with the backlog".into(),
        r3(ready.as_secs_f64()),
    );
    m.insert(
        "server RSS MiB, after restart".into(),
        rss_after_restart.round(),
    );
    m.insert(
        "s from back to the first receipt (circuit probe)".into(),
        r3(first_receipt_secs),
    );
    m.insert("drain s (first receipt to the last)".into(), r3(drain_secs));
    m.insert("server RSS MiB, peak while draining".into(), rss_peak_drain);
    m.insert("delivered".into(), delivered as f64);
    m.insert(
        "store MiB after the drain (allocated)".into(),
        mib(allocated_after),
    );
    m.insert(
        "store MiB after the drain (file length)".into(),
        mib(apparent_after),
    );
    out.notes.push(format!(
        "{stored} events of ~{PAYLOAD} B published in batches of {BATCH} by {PUBLISHERS} publishers to one endpoint answering 503 (max_in_flight 64); restarted (SIGTERM, then `gp serve` until /readyz); 3 s later the endpoint answers 200 and the receiver waits until it has every delivery; RSS sampled every 100 ms"
    ));
    if delivered < stored {
        out.notes.push(format!(
            "{} deliveries had not arrived after {:.0} s",
            stored - delivered,
            drain_secs
        ));
    }
    Ok(out)
}
