//! The load generator: publishers over keep-alive HTTP connections (fixed rate or
//! closed loop at fixed concurrency, single or batch publishes), endpoints and
//! subscriptions set up over the API, and the receiver's counts gathered at the end.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow};
use hdrhistogram::Histogram;
use serde_json::{Value, json};

use crate::receiver::{Receiver, Timeline, new_histogram, now_us};
use crate::report::{GroupResult, Latency};
use crate::server::{Server, histogram_mean, post, tenant_key};

/// A group of identical endpoints, each subscribed to every event (`bench.#`).
#[derive(Debug, Clone)]
pub struct GroupSpec {
    pub name: &'static str,
    pub endpoints: usize,
    /// How long the receiver waits before answering this group's requests.
    pub delay_ms: u64,
    pub max_in_flight: u32,
    /// Disabled endpoints keep their deliveries queued (ingest alone).
    pub enabled: bool,
    /// Wait for this group's deliveries to arrive before counting missing ones.
    pub drain: bool,
}

impl GroupSpec {
    pub fn healthy(endpoints: usize) -> GroupSpec {
        GroupSpec {
            name: "healthy",
            endpoints,
            delay_ms: 0,
            max_in_flight: 64,
            enabled: true,
            drain: true,
        }
    }
}

/// A filter put on every subscription, and the same predicate evaluated by the
/// harness on the event's `n` so the expected
/// deliveries are known exactly.
/// (`amount` is [`amount`]`(n)`.)
#[derive(Debug, Clone, Copy)]
pub struct FilterSpec {
    pub expr: &'static str,
    pub matches: fn(u64) -> bool,
}

/// One load run.
#[derive(Debug, Clone)]
pub struct LoadSpec {
    pub concurrency: usize,
    /// Events/s offered in total; `None`: each publisher publishes again as soon as
    /// its previous publish is answered.
    pub rate: Option<u64>,
    /// Events per `POST /v1/events/batch` (1: `POST /v1/events`).
    pub batch: usize,
    pub payload_bytes: usize,
    pub warmup_secs: u64,
    pub seconds: u64,
    pub groups: Vec<GroupSpec>,
    pub filter: Option<FilterSpec>,
    /// Publishers pause while more than this many deliveries are outstanding
    /// (published but not yet received): finds the sustained delivery rate.
    pub max_backlog: Option<u64>,
    pub drain_secs: u64,
}

impl LoadSpec {
    /// Endpoints in enabled groups, i.e. deliveries per event without a filter.
    pub fn fanout(&self) -> usize {
        self.groups
            .iter()
            .filter(|g| g.enabled)
            .map(|g| g.endpoints)
            .sum()
    }
}

/// What a load run measured.
#[derive(Debug)]
pub struct LoadResult {
    pub published: u64,
    pub publish_errors: u64,
    pub publishes_per_sec: f64,
    pub deliveries_per_sec: f64,
    pub publish_latency: Option<Latency>,
    pub groups: Vec<GroupResult>,
    pub publish_timeline: Vec<u64>,
    pub delivery_timeline: Vec<u64>,
    pub mean_commit_batch: Option<f64>,
    pub mean_commit_ms: Option<f64>,
}

struct Shared {
    stop: AtomicBool,
    measuring: AtomicBool,
    published: AtomicU64,
    /// Expected deliveries per group.
    expected: Vec<AtomicU64>,
    expected_total: AtomicU64,
    timeline: Arc<Timeline>,
}

/// The payload's `amount` for publish `n`: 0–199, spread evenly over any 200
/// consecutive publishes and well mixed within them.
pub fn amount(n: u64) -> u64 {
    n * 37 % 200
}

/// The event body for publish `n` of worker `w`.
pub fn event_json(w: usize, n: u64, filler: &str) -> String {
    format!(
        r#"{{"topic":"bench.created","payload":{{"w":{w},"n":{n},"amount":{},"sent_us":{},"data":"{filler}"}}}}"#,
        amount(n),
        now_us()
    )
}

/// Filler so that the payload is about `payload_bytes` long.
pub fn filler(payload_bytes: usize) -> String {
    "x".repeat(payload_bytes.saturating_sub(75))
}

/// Creates the tenant, endpoints and subscriptions; returns the publishing key.
async fn setup(base: &str, receiver: &str, spec: &LoadSpec) -> Result<String> {
    let http = reqwest::Client::new();
    let key = tenant_key(&http, base).await?;
    for (g, group) in spec.groups.iter().enumerate() {
        for i in 0..group.endpoints {
            let ep = post(
                &http,
                format!("{base}/v1/endpoints"),
                &key,
                json!({
                    "url": format!("{receiver}/hook/{g}/{i}"),
                    "max_in_flight": group.max_in_flight,
                    "enabled": group.enabled,
                }),
            )
            .await
            .context("creating an endpoint")?;
            let mut sub = json!({"endpoint_id": ep["id"], "topics": ["bench.#"]});
            if let Some(f) = &spec.filter {
                sub["filter"] = Value::String(f.expr.to_owned());
            }
            post(&http, format!("{base}/v1/subscriptions"), &key, sub)
                .await
                .context("creating a subscription")?;
        }
    }
    Ok(key)
}

async fn publisher(
    w: usize,
    spec: Arc<LoadSpec>,
    shared: Arc<Shared>,
    rx: Arc<Receiver>,
    url_single: String,
    url_batch: String,
    key: Arc<String>,
) -> Result<(Histogram<u64>, u64)> {
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(1)
        .build()?;
    let mut hist = new_histogram()?;
    let mut errors = 0u64;
    let filler = filler(spec.payload_bytes);
    let interval = spec.rate.map(|r| {
        Duration::from_secs_f64(spec.concurrency as f64 * spec.batch as f64 / r.max(1) as f64)
    });
    // Spread the publishers' first ticks over one interval.
    let mut next = tokio::time::Instant::now()
        + interval.map_or(Duration::ZERO, |iv| {
            iv.mul_f64(w as f64 / spec.concurrency.max(1) as f64)
        });
    let mut n = 0u64;
    while !shared.stop.load(Ordering::Relaxed) {
        if let Some(iv) = interval {
            tokio::time::sleep_until(next).await;
            next += iv;
        }
        if let Some(max) = spec.max_backlog {
            let outstanding = shared
                .expected_total
                .load(Ordering::Relaxed)
                .saturating_sub(rx.total.load(Ordering::Relaxed));
            if outstanding > max {
                tokio::time::sleep(Duration::from_millis(2)).await;
                continue;
            }
        }
        let first = n + 1;
        let mut items = Vec::with_capacity(spec.batch);
        for _ in 0..spec.batch {
            n += 1;
            items.push(event_json(w, n, &filler));
        }
        let (url, body) = if spec.batch == 1 {
            (url_single.as_str(), items.remove(0))
        } else {
            (
                url_batch.as_str(),
                format!(r#"{{"events":[{}]}}"#, items.join(",")),
            )
        };
        let measuring = shared.measuring.load(Ordering::Relaxed);
        let started = Instant::now();
        let resp = http
            .post(url)
            .bearer_auth(key.as_str())
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await;
        // Which of this call's events were stored.
        let accepted: Vec<bool> = match resp {
            Ok(r) if r.status().as_u16() == 202 => {
                if spec.batch == 1 {
                    vec![r.bytes().await.is_ok()]
                } else {
                    match r.json::<Value>().await {
                        Ok(v) => v["data"]
                            .as_array()
                            .map(|a| a.iter().map(|i| i.get("id").is_some()).collect())
                            .unwrap_or_default(),
                        Err(_) => Vec::new(),
                    }
                }
            }
            _ => Vec::new(),
        };
        let elapsed = started.elapsed();
        let ok = accepted.iter().filter(|a| **a).count() as u64;
        errors += spec.batch as u64 - ok;
        if measuring && ok > 0 {
            hist.record((elapsed.as_micros() as u64).max(1))?;
        }
        for (i, a) in accepted.iter().enumerate() {
            if !*a {
                continue;
            }
            let event_n = first + i as u64;
            let matched = spec.filter.is_none_or(|f| (f.matches)(event_n));
            if matched {
                for (g, group) in spec.groups.iter().enumerate() {
                    if group.enabled
                        && let Some(e) = shared.expected.get(g)
                    {
                        e.fetch_add(group.endpoints as u64, Ordering::Relaxed);
                        shared
                            .expected_total
                            .fetch_add(group.endpoints as u64, Ordering::Relaxed);
                    }
                }
            }
        }
        shared.published.fetch_add(ok, Ordering::Relaxed);
        shared.timeline.add(ok);
    }
    Ok((hist, errors))
}

/// Starts `gp` on a fresh store and the receiver, runs the load, drains, counts.
pub async fn run_load(gp: &std::path::Path, spec: LoadSpec) -> Result<LoadResult> {
    let server = Server::start(gp).await?;
    let secs = (spec.warmup_secs + spec.seconds + spec.drain_secs + 5) as usize;
    let pub_timeline = Arc::new(Timeline::new(secs));
    let del_timeline = Arc::new(Timeline::new(secs));
    let delays = spec
        .groups
        .iter()
        .map(|g| Duration::from_millis(g.delay_ms))
        .collect();
    let rx = Receiver::new(delays, del_timeline.clone())?;
    let (rx_url, _rx_guard) = rx.serve().await?;
    let key = Arc::new(setup(&server.base, &rx_url, &spec).await?);
    // Second 0 of the timelines is when publishing starts.
    pub_timeline.restart();
    del_timeline.restart();
    let shared = Arc::new(Shared {
        stop: AtomicBool::new(false),
        measuring: AtomicBool::new(false),
        published: AtomicU64::new(0),
        expected: spec.groups.iter().map(|_| AtomicU64::new(0)).collect(),
        expected_total: AtomicU64::new(0),
        timeline: pub_timeline.clone(),
    });
    let spec = Arc::new(spec);
    let mut workers = Vec::new();
    for w in 0..spec.concurrency {
        workers.push(tokio::spawn(publisher(
            w,
            spec.clone(),
            shared.clone(),
            rx.clone(),
            format!("{}/v1/events", server.base),
            format!("{}/v1/events/batch", server.base),
            key.clone(),
        )));
    }
    tokio::time::sleep(Duration::from_secs(spec.warmup_secs)).await;
    let p0 = shared.published.load(Ordering::Relaxed);
    let r0 = rx.total.load(Ordering::Relaxed);
    shared.measuring.store(true, Ordering::Relaxed);
    rx.measuring.store(true, Ordering::Relaxed);
    let started = Instant::now();
    tokio::time::sleep(Duration::from_secs(spec.seconds)).await;
    shared.measuring.store(false, Ordering::Relaxed);
    rx.measuring.store(false, Ordering::Relaxed);
    let elapsed = started.elapsed().as_secs_f64();
    let p1 = shared.published.load(Ordering::Relaxed);
    let r1 = rx.total.load(Ordering::Relaxed);
    shared.stop.store(true, Ordering::Relaxed);
    let mut publish_hist = new_histogram()?;
    let mut publish_errors = 0;
    for w in workers {
        let (h, e) = w.await??;
        publish_hist.add(h)?;
        publish_errors += e;
    }
    // Let the tail drain, then count what never arrived.
    let deadline = Instant::now() + Duration::from_secs(spec.drain_secs);
    loop {
        let done = spec.groups.iter().enumerate().all(|(g, group)| {
            !group.drain
                || !group.enabled
                || rx.unique(g) >= shared.expected[g].load(Ordering::Relaxed)
        });
        if done || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Whole seconds only: a partial last second would look like a drop.
    let run_secs = pub_timeline.elapsed().as_secs() as usize;
    let metrics = server.metrics().await.unwrap_or_default();
    drop(server);
    let mut groups = Vec::new();
    for (g, group) in spec.groups.iter().enumerate() {
        let r = rx.groups[g].lock().map_err(|_| anyhow!("receiver lock"))?;
        let expected = shared.expected[g].load(Ordering::Relaxed);
        let received = r.seen.len() as u64;
        groups.push(GroupResult {
            name: group.name.to_owned(),
            endpoints: group.endpoints,
            delay_ms: group.delay_ms,
            max_in_flight: group.max_in_flight,
            enabled: group.enabled,
            drained: group.drain,
            expected,
            received,
            missing: expected.saturating_sub(received),
            unexpected: received.saturating_sub(expected),
            duplicates: r.duplicates,
            latency: Latency::from_histogram(&r.hist),
        });
    }
    Ok(LoadResult {
        published: shared.published.load(Ordering::Relaxed),
        publish_errors,
        publishes_per_sec: (p1 - p0) as f64 / elapsed,
        deliveries_per_sec: (r1 - r0) as f64 / elapsed,
        publish_latency: Latency::from_histogram(&publish_hist),
        groups,
        publish_timeline: pub_timeline.snapshot(run_secs),
        delivery_timeline: del_timeline.snapshot(run_secs),
        mean_commit_batch: histogram_mean(&metrics, "gatepulse_store_commit_batch_size"),
        mean_commit_ms: histogram_mean(&metrics, "gatepulse_store_commit_duration_seconds")
            .map(|s| s * 1000.0),
    })
}
