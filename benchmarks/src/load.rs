//! The load generator: publishers over keep-alive HTTP connections (fixed rate or
//! closed loop at fixed concurrency, single or batch publishes), endpoints and
//! subscriptions set up over the API, and the receiver's counts gathered at the end.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
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

/// What each published payload looks like.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum PayloadShape {
    /// `w`, `n`, `amount`, `sent_us` and filler ([`event_json`]).
    #[default]
    Filler,
    /// An order ([`order_payload`]): the same fields plus an id, a status, an amount in
    /// cents, a customer (email, name, tier, ssn, address) and three items, then filler.
    Order,
}

/// The plugin the transform scenarios upload (`plugins/redact`).
pub const PLUGIN: (&str, &str) = ("redact", "1.0.0");

/// A transform put on every subscription (docs/mapping.md, docs/plugins.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transform {
    /// [`order_mapping`]: 8 ops.
    Mapping,
    /// The `redact` plugin hashing `customer.email`.
    Plugin,
    /// [`order_mapping`], then `redact` hashing the renamed `customer_name`.
    MappingAndPlugin,
}

impl Transform {
    /// A short description for reports.
    pub fn label(self) -> &'static str {
        match self {
            Transform::Mapping => "mapping (8 ops, sha256 of the email)",
            Transform::Plugin => "plugin `redact` (hash `customer.email`)",
            Transform::MappingAndPlugin => {
                "mapping (8 ops) + plugin `redact` (hash `customer_name`)"
            }
        }
    }

    pub fn uses_plugin(self) -> bool {
        self != Transform::Mapping
    }

    /// The subscription's `transform` field.
    pub fn spec(self) -> Value {
        let redact = |field: &str| {
            json!([{
                "name": PLUGIN.0,
                "version": PLUGIN.1,
                "config": {"fields": [field], "mode": "hash", "salt": "s"},
            }])
        };
        match self {
            Transform::Mapping => json!({"mapping": order_mapping()}),
            Transform::Plugin => json!({"plugins": redact("customer.email")}),
            Transform::MappingAndPlugin => {
                json!({"mapping": order_mapping(), "plugins": redact("customer_name")})
            }
        }
    }

    /// Checks that a delivered body went through this transform.
    pub fn check(self, body: &[u8]) -> Result<()> {
        let v: Value = serde_json::from_slice(body).context("delivered body is not JSON")?;
        let hex64 = |x: &Value| {
            x.as_str()
                .is_some_and(|s| s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit()))
        };
        let mapped = v["customer"].get("email").is_none()
            && v["customer"].get("ssn").is_none()
            && hex64(&v["customer"]["email_hash"])
            && v["order_id"].is_string()
            && v["total"]["cents"].is_number()
            && v["total"]["value"].is_number()
            && v["currency"] == "EUR";
        let ok = match self {
            Transform::Mapping => mapped && v["customer_name"].is_string(),
            Transform::Plugin => hex64(&v["customer"]["email"]) && v["id"].is_string(),
            Transform::MappingAndPlugin => mapped && hex64(&v["customer_name"]),
        };
        if !ok {
            bail!(
                "a delivered body does not show the transform `{}`: {}",
                self.label(),
                String::from_utf8_lossy(body)
            );
        }
        Ok(())
    }
}

/// The mapping of the transform scenarios: pseudonymise the email, drop personal
/// fields, renames (top level and out of a nested object), a computed amount, a
/// default and a guarded set.
pub fn order_mapping() -> Value {
    json!({"version": 1, "ops": [
        {"op": "set", "path": "payload.customer.email_hash", "expr": "sha256(lower(trim(payload.customer.email)))"},
        {"op": "remove", "paths": ["payload.customer.email", "payload.customer.ssn"]},
        {"op": "rename", "from": "payload.id", "to": "payload.order_id"},
        {"op": "rename", "from": "payload.customer.name", "to": "payload.customer_name"},
        {"op": "rename", "from": "payload.amount_cents", "to": "payload.total.cents"},
        {"op": "set", "path": "payload.total.value", "expr": "payload.total.cents / 100"},
        {"op": "default", "path": "payload.currency", "value": "EUR"},
        {"op": "set", "path": "payload.vip", "value": true, "when": "payload.customer.tier == \"gold\""}
    ]})
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
    pub payload: PayloadShape,
    /// A transform on every subscription.
    pub transform: Option<Transform>,
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
    /// The server's user and system CPU seconds over the measured window.
    pub server_cpu_secs: Option<(f64, f64)>,
    /// The harness's (load generator and receiver) CPU seconds, same window.
    pub harness_cpu_secs: Option<(f64, f64)>,
    /// The server's CPU seconds per thread name, same window.
    pub server_threads: Vec<(String, f64)>,
    /// Mean time of each transform stage (`mapping`, `plugin`) per delivery, µs.
    pub stage_mean_us: Vec<(String, f64)>,
    /// Failed transform stages (`gatepulse_transform_errors_total`).
    pub transform_errors: f64,
    /// Length of the measured window, s.
    pub measured_secs: f64,
}

/// Mean of a labeled histogram (`name_sum{labels}` / `name_count{labels}`).
pub fn labeled_mean(metrics: &str, name: &str, labels: &str) -> Option<f64> {
    let find = |suffix: &str| {
        metrics.lines().find_map(|l| {
            l.strip_prefix(&format!("{name}{suffix}{{{labels}}} "))
                .and_then(|v| v.trim().parse::<f64>().ok())
        })
    };
    let (sum, count) = (find("_sum")?, find("_count")?);
    (count > 0.0).then(|| sum / count)
}

/// Sum of every series of a counter.
fn counter_total(metrics: &str, name: &str) -> f64 {
    metrics
        .lines()
        .filter(|l| l.starts_with(name) && !l.starts_with('#'))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
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

/// The order payload (the JSON object) for publish `n` of worker `w`.
pub fn order_payload(w: usize, n: u64, filler: &str) -> String {
    let a = amount(n);
    let tier = if n.is_multiple_of(4) {
        "gold"
    } else {
        "silver"
    };
    format!(
        r#"{{"w":{w},"n":{n},"amount":{a},"sent_us":{},"id":"ord_{w}_{n}","status":"paid","amount_cents":{},"customer":{{"id":"cus_{w}_{n}","email":" Customer.{n}@Example.COM ","name":"Customer {n}","tier":"{tier}","ssn":"123-45-6789","address":{{"street":"1 Main Street","city":"Springfield","zip":"12345","country":"US"}}}},"items":[{{"sku":"SKU-1","qty":1,"price":1250}},{{"sku":"SKU-2","qty":2,"price":800}},{{"sku":"PROMO","qty":0,"price":0}}],"data":"{filler}"}}"#,
        now_us(),
        a * 100 + 99
    )
}

/// Filler so that an order payload is about `payload_bytes` long.
pub fn order_filler(payload_bytes: usize) -> String {
    "x".repeat(payload_bytes.saturating_sub(order_payload(10, 100_000, "").len()))
}

/// The event body of an order publish.
pub fn order_json(w: usize, n: u64, filler: &str) -> String {
    format!(
        r#"{{"topic":"bench.created","payload":{}}}"#,
        order_payload(w, n, filler)
    )
}

/// Creates the tenant, endpoints and subscriptions; returns the publishing key.
async fn setup(base: &str, receiver: &str, spec: &LoadSpec) -> Result<String> {
    let http = reqwest::Client::new();
    let key = tenant_key(&http, base).await?;
    if spec.transform.is_some_and(Transform::uses_plugin) {
        let wasm = tokio::task::spawn_blocking(|| crate::plugins::wasm(PLUGIN.0)).await??;
        let r = http
            .post(format!(
                "{base}/v1/plugins?name={}&version={}",
                PLUGIN.0, PLUGIN.1
            ))
            .bearer_auth(&key)
            .header("content-type", "application/wasm")
            .body(wasm)
            .send()
            .await?;
        let status = r.status();
        if !status.is_success() {
            bail!("uploading the plugin: {status}: {}", r.text().await?);
        }
    }
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
            if let Some(t) = spec.transform {
                sub["transform"] = t.spec();
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
    let filler = match spec.payload {
        PayloadShape::Filler => filler(spec.payload_bytes),
        PayloadShape::Order => order_filler(spec.payload_bytes),
    };
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
            items.push(match spec.payload {
                PayloadShape::Filler => event_json(w, n, &filler),
                PayloadShape::Order => order_json(w, n, &filler),
            });
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
            format!("{}/v1/events", server.bases[w % server.bases.len()]),
            format!("{}/v1/events/batch", server.bases[w % server.bases.len()]),
            key.clone(),
        )));
    }
    tokio::time::sleep(Duration::from_secs(spec.warmup_secs)).await;
    let p0 = shared.published.load(Ordering::Relaxed);
    let r0 = rx.total.load(Ordering::Relaxed);
    shared.measuring.store(true, Ordering::Relaxed);
    rx.measuring.store(true, Ordering::Relaxed);
    let started = Instant::now();
    // Every node's CPU (with --nodes); threads are the first node's.
    let pids: Vec<String> = server.pids().iter().map(u32::to_string).collect();
    let server_ticks = || {
        pids.iter().try_fold((0, 0), |(u, s), pid| {
            crate::stream::process_ticks(pid).map(|(u1, s1)| (u + u1, s + s1))
        })
    };
    let cpu0 = (
        server_ticks(),
        crate::stream::process_ticks("self"),
        server.pid().map(crate::stream::thread_ticks),
    );
    tokio::time::sleep(Duration::from_secs(spec.seconds)).await;
    shared.measuring.store(false, Ordering::Relaxed);
    rx.measuring.store(false, Ordering::Relaxed);
    let cpu1 = (
        server_ticks(),
        crate::stream::process_ticks("self"),
        server.pid().map(crate::stream::thread_ticks),
    );
    let elapsed = started.elapsed().as_secs_f64();
    let tck = crate::stream::clock_ticks_per_sec();
    let cpu_secs = |a: Option<(u64, u64)>, b: Option<(u64, u64)>| {
        let ((u0, s0), (u1, s1)) = (a?, b?);
        Some((
            u1.saturating_sub(u0) as f64 / tck,
            s1.saturating_sub(s0) as f64 / tck,
        ))
    };
    let server_cpu_secs = cpu_secs(cpu0.0, cpu1.0);
    let harness_cpu_secs = cpu_secs(cpu0.1, cpu1.1);
    let mut server_threads: Vec<(String, f64)> = match (&cpu0.2, &cpu1.2) {
        (Some(a), Some(b)) => b
            .iter()
            .map(|(name, t)| {
                let before = a.get(name).copied().unwrap_or(0);
                (name.clone(), t.saturating_sub(before) as f64 / tck)
            })
            .filter(|(_, s)| *s > 0.0)
            .collect(),
        _ => Vec::new(),
    };
    server_threads.sort_by(|a, b| b.1.total_cmp(&a.1));
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
        if let Some(t) = spec.transform
            && group.enabled
        {
            t.check(
                r.sample
                    .as_deref()
                    .context("no delivery arrived to check")?,
            )?;
        }
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
        server_cpu_secs,
        harness_cpu_secs,
        server_threads,
        stage_mean_us: ["mapping", "plugin"]
            .iter()
            .filter_map(|stage| {
                labeled_mean(
                    &metrics,
                    "gatepulse_transform_stage_duration_seconds",
                    &format!("stage=\"{stage}\""),
                )
                .map(|m| ((*stage).to_owned(), m * 1e6))
            })
            .collect(),
        transform_errors: counter_total(&metrics, "gatepulse_transform_errors_total"),
        measured_secs: elapsed,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::receiver::sent_us;

    #[test]
    fn order_payloads_have_the_requested_size_and_fields() {
        for bytes in [512, 1024, 4096] {
            // `n` has fewer digits early in a run.
            let p = order_payload(3, 7, &order_filler(bytes));
            assert!(p.len().abs_diff(bytes) <= 32, "{bytes}: {}", p.len());
            let late = order_payload(3, 123_456, &order_filler(bytes));
            assert!(late.len().abs_diff(bytes) <= 8, "{bytes}: {}", late.len());
            let v: Value = serde_json::from_str(&p).unwrap();
            assert!(v["customer"]["email"].as_str().unwrap().contains('@'));
            assert_eq!(v["amount"], amount(7));
        }
        let e = order_json(0, 1, "xx");
        let v: Value = serde_json::from_str(&e).unwrap();
        assert_eq!(v["topic"], "bench.created");
        assert!(sent_us(e.as_bytes()).is_some_and(|t| t > 0));
    }

    #[test]
    fn the_mapping_compiles_and_its_output_passes_the_check() {
        use gatepulse_transform::{Context, Mapping, MappingLimits};
        let mapping = Mapping::compile(&order_mapping(), &MappingLimits::default()).unwrap();
        assert_eq!(order_mapping()["ops"].as_array().unwrap().len(), 8);
        let payload: Value = serde_json::from_str(&order_payload(1, 4, "xxx")).unwrap();
        let body = mapping
            .apply_to_vec(payload, &Context::new("bench.created"))
            .unwrap();
        Transform::Mapping.check(&body).unwrap();
        let v: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["vip"], true);
        assert!(sent_us(&body).is_some());
        // The untransformed payload fails every check.
        let raw = order_payload(1, 4, "xxx");
        for t in [
            Transform::Mapping,
            Transform::Plugin,
            Transform::MappingAndPlugin,
        ] {
            assert!(t.check(raw.as_bytes()).is_err(), "{t:?}");
        }
        // The plugin hashes the email in place.
        let mut v: Value = serde_json::from_str(&raw).unwrap();
        v["customer"]["email"] = json!("ab".repeat(32));
        Transform::Plugin
            .check(&serde_json::to_vec(&v).unwrap())
            .unwrap();
    }

    #[test]
    fn transform_specs_name_the_plugin() {
        assert!(Transform::Mapping.spec().get("plugins").is_none());
        let p = Transform::MappingAndPlugin.spec();
        assert_eq!(p["plugins"][0]["name"], PLUGIN.0);
        assert_eq!(p["plugins"][0]["config"]["mode"], "hash");
        assert!(p["mapping"]["ops"].is_array());
    }

    #[test]
    fn labeled_histogram_means() {
        let m = "gatepulse_transform_stage_duration_seconds_sum{stage=\"plugin\"} 0.5\n\
                 gatepulse_transform_stage_duration_seconds_count{stage=\"plugin\"} 1000\n\
                 gatepulse_transform_errors_total{stage=\"plugin\",kind=\"plugin_trap\"} 2\n";
        let mean = labeled_mean(
            m,
            "gatepulse_transform_stage_duration_seconds",
            "stage=\"plugin\"",
        );
        assert_eq!(mean, Some(0.0005));
        assert_eq!(
            labeled_mean(
                m,
                "gatepulse_transform_stage_duration_seconds",
                "stage=\"mapping\""
            ),
            None
        );
        assert_eq!(counter_total(m, "gatepulse_transform_errors_total"), 2.0);
    }
}
