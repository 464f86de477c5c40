//! The scenario catalog and how each kind of scenario runs.
//!
//! A scenario is a name, a description and a [`Kind`]. Most are a [`LoadSpec`]
//! (publishers, endpoint groups, an optional filter or transform, the payload shape)
//! run by [`crate::load`]. Stages the server does not have yet are
//! [`Kind::NotAvailable`]; when one ships, give [`LoadSpec`] the field that configures
//! it (set up in `load::setup`, as `transform` is) and turn its entry into a
//! `Kind::Load`.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Result;
use serde_json::json;

use crate::load::{
    FilterSpec, GroupSpec, LoadResult, LoadSpec, PayloadShape, Transform, filler, run_load,
};
use crate::receiver::now_us;
use crate::report::{ScenarioResult, Status};
use crate::server::{Server, dir_size, post, tenant_key};
use crate::snapshot::{Operation, SnapshotSpec, run_snapshot};
use crate::stream::{StreamSpec, run_stream};

/// Run-wide knobs.
#[derive(Debug, Clone)]
pub struct Options {
    pub payload_bytes: usize,
    pub seconds: u64,
    pub warmup_secs: u64,
    pub drain_secs: u64,
    /// Store size the recovery scenario fills before restarting.
    pub recovery_mb: u64,
    /// Store size the snapshot scenario fills before publishing and snapshotting.
    pub snapshot_mb: u64,
    /// SSE clients of the `stream_fanout` scenario.
    pub stream_clients: usize,
    /// Events/s the `stream_fanout` publishers offer.
    pub stream_rate: u64,
    /// Pending deliveries the `pending-1m` scenario builds up.
    pub backlog_events: u64,
}

impl Options {
    pub fn new(
        payload_bytes: usize,
        seconds: Option<u64>,
        quick: bool,
        recovery_mb: Option<u64>,
        snapshot_mb: Option<u64>,
    ) -> Options {
        Options {
            payload_bytes,
            seconds: seconds.unwrap_or(if quick { 2 } else { 10 }),
            warmup_secs: if quick { 1 } else { 2 },
            drain_secs: if quick { 10 } else { 30 },
            recovery_mb: recovery_mb.unwrap_or(if quick { 16 } else { 1024 }),
            snapshot_mb: snapshot_mb.unwrap_or(if quick { 16 } else { 1024 }),
            stream_clients: 1000,
            stream_rate: 1000,
            backlog_events: if quick { 20_000 } else { 1_000_000 },
        }
    }
}

/// What a scenario does.
#[derive(Debug, Clone)]
pub enum Kind {
    Load(LoadSpec),
    /// Fill a store with publishes (endpoints disabled), restart, time `/readyz`.
    Recovery {
        target_mb: u64,
    },
    /// Fill a store (endpoint disabled), then take an online snapshot while paced
    /// publishers post events; publish latency before, during and after it.
    Snapshot(SnapshotSpec),
    /// SSE clients following one tenant's stream while publishers post events.
    Stream(StreamSpec),
    /// A backlog of pending deliveries for an endpoint that is down, then back
    /// ([`crate::backlog`]).
    Backlog {
        events: u64,
    },
    /// A stage the server does not have yet: listed, not measured (none at the moment;
    /// kept for the next one).
    #[allow(dead_code)]
    NotAvailable(&'static str),
}

#[derive(Debug, Clone)]
pub struct Scenario {
    pub name: &'static str,
    pub description: &'static str,
    pub kind: Kind,
}

/// `payload.amount > 100` (99 of every 200 events match).
pub const AMOUNT_FILTER: FilterSpec = FilterSpec {
    expr: "payload.amount > 100",
    matches: |n| crate::load::amount(n) > 100,
};

fn disabled_group() -> GroupSpec {
    GroupSpec {
        name: "disabled",
        enabled: false,
        drain: false,
        ..GroupSpec::healthy(1)
    }
}

/// Every scenario, in run order, with the defaults derived from `o`.
pub fn catalog(o: &Options) -> Vec<Scenario> {
    let base = |concurrency: usize, rate: Option<u64>, groups: Vec<GroupSpec>| LoadSpec {
        concurrency,
        rate,
        batch: 1,
        payload_bytes: o.payload_bytes,
        warmup_secs: o.warmup_secs,
        seconds: o.seconds,
        groups,
        filter: None,
        payload: PayloadShape::Filler,
        transform: None,
        max_backlog: None,
        drain_secs: o.drain_secs,
    };
    // `max-deliveries`' shape with order payloads and an optional transform.
    let transformed = |transform: Option<Transform>| LoadSpec {
        batch: 50,
        max_backlog: Some(5000),
        payload: PayloadShape::Order,
        transform,
        ..base(4, None, vec![GroupSpec::healthy(1)])
    };
    let healthy = GroupSpec::healthy;
    let slow = GroupSpec {
        name: "slow (2 s)",
        endpoints: 1,
        delay_ms: 2000,
        max_in_flight: 8,
        enabled: true,
        drain: false,
    };
    let parked = GroupSpec {
        name: "disabled (no deliveries)",
        ..disabled_group()
    };
    let disabled = disabled_group();
    vec![
        Scenario {
            name: "ingest",
            description: "durable publishes alone: POST /v1/events, one subscription whose endpoint is disabled (a disabled endpoint gets no deliveries: events alone are stored); latency is publish → 202",
            kind: Kind::Load(base(32, None, vec![disabled])),
        },
        Scenario {
            name: "e2e-rate",
            description: "end to end at a fixed offered rate: publish → local receiver",
            kind: Kind::Load(base(32, Some(2000), vec![healthy(1)])),
        },
        Scenario {
            name: "e2e-concurrency",
            description: "end to end at fixed concurrency: each publisher publishes again as soon as its 202 arrives",
            kind: Kind::Load(base(4, None, vec![healthy(1)])),
        },
        Scenario {
            name: "closed-loop",
            description: "delivery keeping up with ingest: 32 closed-loop publishers, one healthy endpoint; latency is publish → receipt, so a delivery queue that grows shows as latency",
            kind: Kind::Load(base(32, None, vec![healthy(1)])),
        },
        Scenario {
            name: "max-deliveries",
            description: "maximum sustained deliveries/s: batch publishers that pause while more than 5,000 deliveries are outstanding, so the rate is what delivery sustains (latency includes that queue)",
            kind: Kind::Load(LoadSpec {
                batch: 50,
                max_backlog: Some(5000),
                ..base(4, None, vec![healthy(1)])
            }),
        },
        Scenario {
            name: "batch",
            description: "batch publish: POST /v1/events/batch with 50 events per call at a fixed rate",
            kind: Kind::Load(LoadSpec {
                batch: 50,
                ..base(4, Some(10_000), vec![healthy(1)])
            }),
        },
        Scenario {
            name: "fanout-1",
            description: "fan-out 1 at 3,000 deliveries/s",
            kind: Kind::Load(base(16, Some(3000), vec![healthy(1)])),
        },
        Scenario {
            name: "fanout-10",
            description: "fan-out 10 (ten endpoints, each subscribed to every event) at 3,000 deliveries/s",
            kind: Kind::Load(base(8, Some(300), vec![healthy(10)])),
        },
        Scenario {
            name: "fanout-10-closed",
            description: "fan-out 10 under 32 closed-loop publishers: the most deliveries/s the server makes from single publishes",
            kind: Kind::Load(base(32, None, vec![healthy(10)])),
        },
        Scenario {
            name: "fanout-100",
            description: "fan-out 100 at 3,000 deliveries/s",
            kind: Kind::Load(base(2, Some(30), vec![healthy(100)])),
        },
        Scenario {
            name: "filter",
            description: "fan-out 10 with `payload.amount > 100` on every subscription (99 of 200 events match) at ~3,000 deliveries/s: compare with fanout-10",
            kind: Kind::Load(LoadSpec {
                filter: Some(AMOUNT_FILTER),
                ..base(8, Some(600), vec![healthy(10)])
            }),
        },
        Scenario {
            name: "transform-none",
            description: "the reference for the transform scenarios: max-deliveries' load (batch publishers, ≤ 5,000 outstanding) with ~1 KB order payloads (customer with email, items) and no transform",
            kind: Kind::Load(transformed(None)),
        },
        Scenario {
            name: "mapping",
            description: "transform-none with an 8-op mapping on the subscription (sha256(lower(trim(email))), remove, 3 renames, computed amount, default, guarded set): deliveries/s against transform-none",
            kind: Kind::Load(transformed(Some(Transform::Mapping))),
        },
        Scenario {
            name: "wasm-plugin",
            description: "transform-none with the WASM plugin `redact` (plugins/redact, hash mode on customer.email) on the subscription: deliveries/s against transform-none",
            kind: Kind::Load(transformed(Some(Transform::Plugin))),
        },
        Scenario {
            name: "mapping-plugin",
            description: "transform-none with the 8-op mapping and then `redact` (hashing the mapped customer_name): both stages",
            kind: Kind::Load(transformed(Some(Transform::MappingAndPlugin))),
        },
        Scenario {
            name: "slow-endpoint-baseline",
            description: "four healthy endpoints plus a disabled one (which gets no deliveries, so each publish writes one delivery less than in slow-endpoint): the reference for slow-endpoint",
            kind: Kind::Load(base(8, Some(500), vec![healthy(4), parked])),
        },
        Scenario {
            name: "slow-endpoint",
            description: "the same four healthy endpoints plus one that answers after 2 s (max_in_flight 8, so its queue grows by design): healthy latency should match slow-endpoint-baseline",
            kind: Kind::Load(base(8, Some(500), vec![healthy(4), slow])),
        },
        Scenario {
            name: "stream_fanout",
            description: "stream fan-out over SSE: many clients on one tenant's `GET /v1/stream` while paced publishers post events; latency is publish start → receipt at each client, over every (client, event) pair",
            kind: Kind::Stream(StreamSpec {
                clients: o.stream_clients,
                rate: o.stream_rate,
                publishers: StreamSpec::publishers_for(o.stream_rate),
                payload_bytes: o.payload_bytes,
                warmup_secs: o.warmup_secs,
                seconds: o.seconds,
                drain_secs: o.drain_secs,
            }),
        },
        Scenario {
            name: "recovery",
            description: "store recovery: fill a store with publishes (endpoint disabled), stop, restart, time until /readyz answers 200",
            kind: Kind::Recovery {
                target_mb: o.recovery_mb,
            },
        },
        Scenario {
            name: "pending-1m",
            description: "a million pending deliveries (~230-byte events) for an endpoint that is down (disabled), then back: server RSS while and after they are accepted, store bytes per pending event, restart to /readyz with the backlog, drain deliveries/s once the endpoint is enabled",
            kind: Kind::Backlog {
                events: o.backlog_events,
            },
        },
        Scenario {
            name: "snapshot",
            description: "online snapshot under load: fill a store with publishes (endpoint disabled), publish 200 events/s (4 open-loop publishers × 50/s, one event per call), then POST /v1/admin/snapshots; publish → 202 latency before, during and after the snapshot",
            kind: Kind::Snapshot(store_operation(o, Operation::Snapshot)),
        },
        Scenario {
            name: "compaction",
            description: "retention pass under load: fill a store with events that expire after 10 s (no deliveries), publish 200 events/s (4 open-loop publishers × 50/s), then wait for the scheduled retention job (every minute) to delete them; publish → 202 latency before, during and after the pass",
            kind: Kind::Snapshot(store_operation(o, Operation::RetentionPass)),
        },
    ]
}

/// The `snapshot` and `compaction` runs: a filled store, 4 open-loop publishers ×
/// 50 events/s, the operation after the baseline, 5 s after it.
fn store_operation(o: &Options, operation: Operation) -> SnapshotSpec {
    SnapshotSpec {
        operation,
        target_mb: o.snapshot_mb,
        publishers: 4,
        rate_each: 50,
        payload_bytes: o.payload_bytes,
        warmup_secs: o.warmup_secs,
        baseline_secs: o.seconds,
        after_secs: 5,
    }
}

/// Runs one scenario; failures become a `Failed` result, not an abort.
pub async fn run(gp: &Path, s: &Scenario) -> ScenarioResult {
    let outcome = match &s.kind {
        Kind::NotAvailable(why) => {
            return ScenarioResult::new(s.name, s.description, Status::NotAvailable((*why).into()));
        }
        Kind::Load(spec) => run_load(gp, spec.clone())
            .await
            .map(|r| load_result(s, spec, r)),
        Kind::Recovery { target_mb } => recovery(gp, s, *target_mb).await,
        Kind::Snapshot(spec) => run_snapshot(gp, s.name, s.description, spec.clone()).await,
        Kind::Stream(spec) => run_stream(gp, s.name, s.description, spec.clone()).await,
        Kind::Backlog { events } => {
            crate::backlog::run_backlog(gp, s.name, s.description, *events).await
        }
    };
    outcome.unwrap_or_else(|e| {
        ScenarioResult::new(s.name, s.description, Status::Failed(format!("{e:#}")))
    })
}

/// Turns a load run into a scenario result.
pub fn load_result(s: &Scenario, spec: &LoadSpec, r: LoadResult) -> ScenarioResult {
    let mut out = ScenarioResult::new(s.name, s.description, Status::Ok);
    out.concurrency = spec.concurrency;
    out.rate = spec.rate;
    out.batch = spec.batch;
    out.fanout = spec.fanout();
    out.payload_bytes = spec.payload_bytes;
    out.seconds = spec.seconds;
    out.filter = spec.filter.map(|f| f.expr.to_owned());
    out.transform = spec.transform.map(|t| t.label().to_owned());
    out.published = r.published;
    out.publish_errors = r.publish_errors;
    out.publishes_per_sec = r.publishes_per_sec;
    out.publish_latency = r.publish_latency;
    if out.fanout > 0 {
        out.deliveries_per_sec = Some(r.deliveries_per_sec);
        out.delivery_latency = r.groups.first().and_then(|g| g.latency);
    }
    out.groups = r.groups;
    out.publish_timeline = r.publish_timeline;
    out.delivery_timeline = r.delivery_timeline;
    if let Some(b) = r.mean_commit_batch {
        out.metrics.insert(
            "mean commit batch (operations)".into(),
            (b * 10.0).round() / 10.0,
        );
    }
    if let Some(c) = r.mean_commit_ms {
        out.metrics
            .insert("mean commit ms".into(), (c * 1000.0).round() / 1000.0);
    }
    let r1 = |v: f64| (v * 10.0).round() / 10.0;
    let pct = |secs: f64| r1(secs / r.measured_secs.max(1e-9) * 100.0);
    if let Some((u, sys)) = r.server_cpu_secs {
        let m = &mut out.metrics;
        m.insert("server CPU % (of one core)".into(), pct(u + sys));
        m.insert("server CPU % user".into(), pct(u));
        m.insert("server CPU % system".into(), pct(sys));
        let delivered = r.deliveries_per_sec * r.measured_secs;
        let published = r.publishes_per_sec * r.measured_secs;
        if published > 0.0 {
            m.insert(
                "server CPU µs per event".into(),
                r1((u + sys) * 1e6 / published),
            );
        }
        if out.fanout > 0 && delivered > 0.0 {
            m.insert(
                "server CPU µs per delivery".into(),
                r1((u + sys) * 1e6 / delivered),
            );
        }
    }
    if let Some((u, sys)) = r.harness_cpu_secs {
        out.metrics
            .insert("harness CPU % (of one core)".into(), pct(u + sys));
    }
    for (name, secs) in r.server_threads.iter().take(6) {
        out.metrics
            .insert(format!("server CPU % thread {name}"), pct(*secs));
    }
    for (stage, us) in &r.stage_mean_us {
        out.metrics
            .insert(format!("mean {stage} stage µs (server)"), r1(*us));
    }
    if r.transform_errors > 0.0 {
        out.metrics
            .insert("failed transform stages".into(), r.transform_errors);
    }
    if r.publish_errors > 0 {
        out.notes.push(format!(
            "{} publishes were refused or failed",
            r.publish_errors
        ));
    }
    if let Some(rate) = spec.rate
        && r.publishes_per_sec < rate as f64 * 0.95
    {
        out.notes.push(format!(
            "offered {rate} events/s but only {:.0}/s were published: the server or the load generator is saturated",
            r.publishes_per_sec
        ));
    }
    if out.fanout > 0
        && let Some(p) = r.publish_latency
    {
        out.notes.push(format!(
            "publish → 202: p50 {:.2} ms, p95 {:.2} ms, p99 {:.2} ms",
            p.p50_ms, p.p95_ms, p.p99_ms
        ));
    }
    for g in &out.groups {
        if g.enabled && !g.drained {
            out.notes.push(format!(
                "group `{}` was not waited for: {} of {} deliveries arrived by the end (its queue grows by design)",
                g.name, g.received, g.expected
            ));
        }
        if g.unexpected > 0 {
            out.notes.push(format!(
                "group `{}` received {} deliveries the publishers did not count (publish answered with an error but stored)",
                g.name, g.unexpected
            ));
        }
    }
    out
}

/// Payload of every event [`fill_store`] publishes.
pub const FILL_PAYLOAD: u64 = 16 * 1024;

/// What [`fill_store`] did.
pub struct Filled {
    /// The tenant's key (publishes, manages endpoints).
    pub key: Arc<String>,
    /// Events stored (each with one pending delivery).
    pub events: u64,
    pub secs: f64,
}

impl Filled {
    /// Records the fill in a scenario's metrics.
    pub fn record(&self, m: &mut std::collections::BTreeMap<String, f64>) {
        m.insert("events stored".into(), self.events as f64);
        m.insert("payload MiB stored".into(), mib(self.events * FILL_PAYLOAD));
        m.insert("fill s".into(), r3(self.secs));
    }
}

/// Bytes in MiB, rounded.
pub fn mib(b: u64) -> f64 {
    (b as f64 / 1048576.0).round()
}

/// Three decimals.
pub fn r3(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

/// Creates a tenant, a disabled endpoint and a subscription to `bench.#` on the
/// server at `base`, then publishes [`FILL_PAYLOAD`] payloads (batches of 50 from 4
/// publishers) until `target_mb` MiB of payload are stored (or 600 s have passed).
/// Every event gets one stored delivery that is never attempted.
pub async fn fill_store(base: &str, target_mb: u64, deliveries: bool) -> Result<Filled> {
    let http = reqwest::Client::new();
    let key = Arc::new(tenant_key(&http, base).await?);
    if deliveries {
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
    let target = target_mb * 1024 * 1024;
    let stop = Arc::new(AtomicBool::new(false));
    let published = Arc::new(AtomicU64::new(0));
    let fill = filler(FILL_PAYLOAD as usize);
    let started = Instant::now();
    let mut workers = Vec::new();
    for w in 0..4usize {
        let (stop, published, key, fill) =
            (stop.clone(), published.clone(), key.clone(), fill.clone());
        let url = format!("{base}/v1/events/batch");
        workers.push(tokio::spawn(async move {
            let http = reqwest::Client::new();
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let items: Vec<String> = (0..50)
                    .map(|_| {
                        n += 1;
                        format!(
                            r#"{{"topic":"bench.fill","payload":{{"w":{w},"n":{n},"sent_us":{},"data":"{fill}"}}}}"#,
                            now_us()
                        )
                    })
                    .collect();
                let r = http
                    .post(&url)
                    .bearer_auth(key.as_str())
                    .header("content-type", "application/json")
                    .body(format!(r#"{{"events":[{}]}}"#, items.join(",")))
                    .send()
                    .await?;
                if r.status().as_u16() == 202 {
                    published.fetch_add(50, Ordering::Relaxed);
                }
                let _ = r.bytes().await;
            }
            anyhow::Ok(())
        }));
    }
    while published.load(Ordering::Relaxed) * FILL_PAYLOAD < target
        && started.elapsed() < Duration::from_secs(600)
    {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.await??;
    }
    Ok(Filled {
        key,
        events: published.load(Ordering::Relaxed),
        secs: started.elapsed().as_secs_f64(),
    })
}

/// Fills a store to `target_mb`, then times restarts until `/readyz` answers 200.
async fn recovery(gp: &Path, s: &Scenario, target_mb: u64) -> Result<ScenarioResult> {
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data)?;
    let (server, empty_ready) = Server::start_on(gp, &data).await?;
    let filled = fill_store(&server.base, target_mb, true).await?;
    server.stop(true)?;
    let (apparent, allocated) = dir_size(&data);
    let gb = allocated as f64 / (1024.0 * 1024.0 * 1024.0);
    let (server, clean) = Server::start_on(gp, &data).await?;
    // Then a crash: kill -9 the restarted server and time the next start.
    tokio::time::sleep(Duration::from_millis(500)).await;
    server.stop(false)?;
    let (server, killed) = Server::start_on(gp, &data).await?;
    server.stop(true)?;
    let mut out = ScenarioResult::new(s.name, s.description, Status::Ok);
    let m = &mut out.metrics;
    filled.record(m);
    m.insert("store MiB on disk (allocated)".into(), mib(allocated));
    m.insert("store MiB (file length)".into(), mib(apparent));
    m.insert("ready s, empty store".into(), r3(empty_ready.as_secs_f64()));
    m.insert("ready s, clean restart".into(), r3(clean.as_secs_f64()));
    m.insert(
        "ready s, restart after kill -9".into(),
        r3(killed.as_secs_f64()),
    );
    m.insert(
        "s per GB, clean restart".into(),
        r3(clean.as_secs_f64() / gb.max(1e-9)),
    );
    m.insert(
        "s per GB, after kill -9".into(),
        r3(killed.as_secs_f64() / gb.max(1e-9)),
    );
    out.payload_bytes = FILL_PAYLOAD as usize;
    out.notes.push(
        "filled with 16 KiB payloads (one stored delivery each) in batches of 50 from 4 publishers, stopped with SIGTERM; ready time is from spawning `gp serve` to the first 200 from /readyz (polled every 5 ms), process start included; per GB is over the store's allocated size on disk".into(),
    );
    Ok(out)
}
