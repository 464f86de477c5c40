//! Results (`results.json`), the markdown report and the side-by-side comparison.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use anyhow::{Context, Result};
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// The group name of a stream scenario's clients.
pub const STREAM_GROUP: &str = "SSE clients";

/// Version of the `results.json` layout.
pub const SCHEMA: u32 = 1;

/// Latency percentiles in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Latency {
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    pub samples: u64,
}

impl Latency {
    /// Percentiles of a histogram of microseconds; `None` when it is empty.
    pub fn from_histogram(h: &Histogram<u64>) -> Option<Latency> {
        if h.is_empty() {
            return None;
        }
        let ms = |q: f64| h.value_at_quantile(q) as f64 / 1000.0;
        Some(Latency {
            p50_ms: ms(0.50),
            p95_ms: ms(0.95),
            p99_ms: ms(0.99),
            max_ms: h.max() as f64 / 1000.0,
            samples: h.len(),
        })
    }
}

/// What one group of endpoints received.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupResult {
    pub name: String,
    pub endpoints: usize,
    pub delay_ms: u64,
    pub max_in_flight: u32,
    pub enabled: bool,
    /// Whether the run waited for this group's deliveries before counting.
    pub drained: bool,
    pub expected: u64,
    /// Unique deliveries (by `webhook-id`).
    pub received: u64,
    pub missing: u64,
    /// Deliveries nobody expected (e.g. a publish that timed out but was stored).
    pub unexpected: u64,
    pub duplicates: u64,
    /// Publish → receipt, deliveries received in the measured window.
    pub latency: Option<Latency>,
}

/// Publish → 202 over one window of the snapshot scenario.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PublishWindow {
    pub name: String,
    /// Publishes answered 202.
    pub publishes: u64,
    /// Publishes refused or failed.
    pub errors: u64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
    /// Publishes slower than [`SnapshotRun::limit_ms`].
    pub over_limit: u64,
    /// When the slowest publish was sent, in seconds since the snapshot started.
    pub worst_at_s: Option<f64>,
}

/// One publish slower than the limit: when it was sent (seconds since the snapshot
/// started; negative: before) and its publish → 202 latency.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Spike {
    pub at_s: f64,
    pub ms: f64,
}

/// What the snapshot scenario measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SnapshotRun {
    /// Wall time of `POST /v1/admin/snapshots`.
    pub snapshot_secs: f64,
    /// The live store before the snapshot: allocated on disk and file length.
    pub store_mib: f64,
    pub store_file_mib: f64,
    /// The snapshot's store file (the manifest's `bytes`).
    pub snapshot_mib: f64,
    /// The latency target a snapshot should not push a publish over.
    pub limit_ms: f64,
    /// Before, during and after the snapshot.
    pub windows: Vec<PublishWindow>,
    /// Every publish over the limit, in the order they were sent.
    pub spikes: Vec<Spike>,
    /// The snapshot's progress as the harness saw its directory (polled every
    /// 50 ms), s from the snapshot's start: when the partial file first had its final
    /// length, and when it was renamed (the copy committed; then the server hashes the
    /// file and writes the manifest).
    #[serde(default)]
    pub file_full_s: Option<f64>,
    #[serde(default)]
    pub renamed_s: Option<f64>,
    /// What was measured: `snapshot` (`POST /v1/admin/snapshots`) or `retention
    /// pass` (the scheduled job deleting expired events).
    #[serde(default = "default_operation")]
    pub operation: String,
    /// Events the retention pass deleted.
    #[serde(default)]
    pub deleted_events: Option<u64>,
}

fn default_operation() -> String {
    "snapshot".into()
}

/// Slow publishes sent back to back: one stall of the server.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Stall {
    /// When the first of them was sent, s from the snapshot's start.
    pub from_s: f64,
    /// When the last of them was answered.
    pub until_s: f64,
    pub publishes: u64,
    pub worst_ms: f64,
}

impl SnapshotRun {
    /// Spikes by when they were sent: before the snapshot, in its first, middle and
    /// last third, after it ended.
    pub fn spikes_by_position(&self) -> [u64; 5] {
        let mut out = [0u64; 5];
        let len = self.snapshot_secs.max(1e-9);
        for sp in &self.spikes {
            let i = if sp.at_s < 0.0 {
                0
            } else if sp.at_s >= self.snapshot_secs {
                4
            } else {
                1 + ((sp.at_s / len * 3.0) as usize).min(2)
            };
            out[i] += 1;
        }
        out
    }

    /// The spikes grouped into stalls. Within a stall the slow publishes are sent back
    /// to back (one publish interval apart); between two stalls lie at least the
    /// publishes answered within the limit, so a gap over half the limit starts a new
    /// one.
    pub fn stalls(&self) -> Vec<Stall> {
        let gap = self.limit_ms / 2000.0;
        let mut out: Vec<Stall> = Vec::new();
        let mut last_sent = f64::NEG_INFINITY;
        for sp in &self.spikes {
            let done = sp.at_s + sp.ms / 1000.0;
            match out.last_mut() {
                Some(st) if sp.at_s - last_sent <= gap => {
                    st.until_s = st.until_s.max(done);
                    st.publishes += 1;
                    st.worst_ms = st.worst_ms.max(sp.ms);
                }
                _ => out.push(Stall {
                    from_s: sp.at_s,
                    until_s: done,
                    publishes: 1,
                    worst_ms: sp.ms,
                }),
            }
            last_sent = sp.at_s;
        }
        out
    }
}

/// How a scenario ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "detail")]
pub enum Status {
    Ok,
    NotAvailable(String),
    Failed(String),
}

/// One scenario's numbers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScenarioResult {
    pub name: String,
    pub description: String,
    pub status: Status,
    pub concurrency: usize,
    /// Offered events/s (`None`: closed loop).
    pub rate: Option<u64>,
    pub batch: usize,
    pub fanout: usize,
    pub payload_bytes: usize,
    pub seconds: u64,
    pub filter: Option<String>,
    /// The transform on every subscription, if any.
    #[serde(default)]
    pub transform: Option<String>,
    pub published: u64,
    pub publish_errors: u64,
    pub publishes_per_sec: f64,
    pub deliveries_per_sec: Option<f64>,
    /// Publish → 202 as the publisher saw it.
    pub publish_latency: Option<Latency>,
    /// Publish → receipt at the receiver (the first group, i.e. the healthy endpoints).
    pub delivery_latency: Option<Latency>,
    pub groups: Vec<GroupResult>,
    pub publish_timeline: Vec<u64>,
    pub delivery_timeline: Vec<u64>,
    /// Scenario-specific numbers (commit batch, recovery times, …).
    pub metrics: BTreeMap<String, f64>,
    pub notes: Vec<String>,
    /// The snapshot scenario's windows and spikes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<SnapshotRun>,
}

impl ScenarioResult {
    /// An empty result with a name, description and status.
    pub fn new(name: &str, description: &str, status: Status) -> ScenarioResult {
        ScenarioResult {
            name: name.to_owned(),
            description: description.to_owned(),
            status,
            concurrency: 0,
            rate: None,
            batch: 1,
            fanout: 0,
            payload_bytes: 0,
            seconds: 0,
            filter: None,
            transform: None,
            published: 0,
            publish_errors: 0,
            publishes_per_sec: 0.0,
            deliveries_per_sec: None,
            publish_latency: None,
            delivery_latency: None,
            groups: Vec::new(),
            publish_timeline: Vec::new(),
            delivery_timeline: Vec::new(),
            metrics: BTreeMap::new(),
            notes: Vec::new(),
            snapshot: None,
        }
    }

    /// Expected, missing and duplicate deliveries over the drained groups.
    pub fn counts(&self) -> (u64, u64, u64) {
        self.groups
            .iter()
            .filter(|g| g.enabled && g.drained)
            .fold((0, 0, 0), |(e, m, d), g| {
                (e + g.expected, m + g.missing, d + g.duplicates)
            })
    }

    /// A stream scenario: its "deliveries" are (client, event) receipts.
    pub fn is_stream(&self) -> bool {
        self.groups.iter().any(|g| g.name == STREAM_GROUP)
    }

    /// The latency shown for this scenario: delivery if any, else publish → 202.
    pub fn headline_latency(&self) -> Option<(Latency, &'static str)> {
        self.delivery_latency
            .map(|l| (l, "publish→receipt"))
            .or(self.publish_latency.map(|l| (l, "publish→202")))
    }
}

/// The machine the run happened on.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Machine {
    pub cpu_model: String,
    pub cores: usize,
    pub memory: String,
    pub disk: String,
    pub kernel: String,
    pub os: String,
    pub rustc: String,
    pub gp: String,
}

/// Run parameters.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Params {
    pub payload_bytes: usize,
    pub seconds: u64,
    pub quick: bool,
    pub scenarios: Vec<String>,
}

/// Everything a run produced: what `results.json` holds and `--compare` reads.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Results {
    pub schema: u32,
    pub started_utc: String,
    pub duration_secs: f64,
    pub params: Params,
    pub machine: Machine,
    pub scenarios: Vec<ScenarioResult>,
}

impl Results {
    pub fn to_json(&self) -> Result<String> {
        Ok(serde_json::to_string_pretty(self)?)
    }

    pub fn from_json(s: &str) -> Result<Results> {
        Ok(serde_json::from_str(s)?)
    }

    /// Reads `<dir>/results.json`.
    pub fn load(dir: &Path) -> Result<Results> {
        let path = dir.join("results.json");
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        Results::from_json(&text).with_context(|| format!("parsing {}", path.display()))
    }
}

/// `12,345` style thousands separators.
pub fn thousands(v: f64) -> String {
    let n = v.round() as i64;
    let digits = n.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 { format!("-{out}") } else { out }
}

/// Milliseconds with precision that suits the magnitude.
pub fn ms(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

fn load_shape(s: &ScenarioResult) -> String {
    let rate = s.rate.map_or("closed loop".to_owned(), |r| {
        format!("{}/s", thousands(r as f64))
    });
    format!("{} × {rate}", s.concurrency)
}

/// The results table (one row per scenario that ran, one line per unavailable one).
pub fn table(results: &Results) -> String {
    let mut out = String::new();
    out.push_str("| scenario | publishers × offered rate | batch | fan-out | payload B | N published | publishes/s | deliveries/s | latency | p50 ms | p95 ms | p99 ms | max ms | expected deliveries | missing | duplicates |\n");
    out.push_str(
        "|---|---|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    let mut unavailable = Vec::new();
    for s in &results.scenarios {
        match &s.status {
            Status::NotAvailable(why) => {
                unavailable.push(format!(
                    "- `{}`: not available in this build ({why})",
                    s.name
                ));
                continue;
            }
            Status::Failed(e) => {
                unavailable.push(format!("- `{}`: **failed**: {e}", s.name));
                continue;
            }
            Status::Ok => {}
        }
        if s.concurrency == 0 {
            continue; // not a load scenario (recovery)
        }
        let (expected, missing, dups) = s.counts();
        let (lat, kind) = match s.headline_latency() {
            Some((l, k)) => (Some(l), k),
            None => (None, "-"),
        };
        let cell = |f: fn(&Latency) -> f64| lat.as_ref().map_or("-".to_owned(), |l| ms(f(l)));
        let _ = writeln!(
            out,
            "| `{}` | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            s.name,
            load_shape(s),
            s.batch,
            s.fanout,
            s.payload_bytes,
            thousands(s.published as f64),
            thousands(s.publishes_per_sec),
            s.deliveries_per_sec.map_or("-".to_owned(), thousands),
            kind,
            cell(|l| l.p50_ms),
            cell(|l| l.p95_ms),
            cell(|l| l.p99_ms),
            cell(|l| l.max_ms),
            if s.fanout == 0 {
                "-".to_owned()
            } else {
                thousands(expected as f64)
            },
            if s.fanout == 0 {
                "-".to_owned()
            } else {
                missing.to_string()
            },
            if s.fanout == 0 {
                "-".to_owned()
            } else {
                dups.to_string()
            },
        );
    }
    for u in unavailable {
        out.push('\n');
        out.push_str(&u);
    }
    if out.ends_with(|c| c != '\n') {
        out.push('\n');
    }
    out
}

/// Healthy endpoints' latency without and with the slow endpoint next to them.
pub fn isolation_section(results: &Results) -> String {
    let find = |n: &str| {
        results
            .scenarios
            .iter()
            .find(|s| s.name == n && s.status == Status::Ok)
            .and_then(|s| s.delivery_latency.map(|l| (s, l)))
    };
    let (Some((_, base)), Some((slow, with))) =
        (find("slow-endpoint-baseline"), find("slow-endpoint"))
    else {
        return String::new();
    };
    let mut out = String::from(
        "## Healthy endpoints next to a slow one

",
    );
    out.push_str("| healthy endpoints' publish → receipt | p50 ms | p95 ms | p99 ms |\n|---|---:|---:|---:|\n");
    let _ = writeln!(
        out,
        "| without the slow endpoint (`slow-endpoint-baseline`) | {} | {} | {} |",
        ms(base.p50_ms),
        ms(base.p95_ms),
        ms(base.p99_ms)
    );
    let _ = writeln!(
        out,
        "| next to the slow endpoint (`slow-endpoint`) | {} | {} | {} |",
        ms(with.p50_ms),
        ms(with.p95_ms),
        ms(with.p99_ms)
    );
    let d = |a: f64, b: f64| delta_pct(a, b).map_or("-".to_owned(), |d| format!("{d:+.0} %"));
    let _ = writeln!(
        out,
        "| change | {} | {} | {} |",
        d(base.p50_ms, with.p50_ms),
        d(base.p95_ms, with.p95_ms),
        d(base.p99_ms, with.p99_ms)
    );
    if let Some(g) = slow.groups.iter().find(|g| !g.drained && g.enabled) {
        let _ = writeln!(
            out,
            "\nMeanwhile the slow endpoint (answers after {} ms, `max_in_flight` {}) received {} of its {} deliveries; the rest were still queued when the run ended.",
            g.delay_ms,
            g.max_in_flight,
            thousands(g.received as f64),
            thousands(g.expected as f64)
        );
    }
    out.push('\n');
    out
}

/// The name of the transform scenarios' reference (same load, no transform).
pub const TRANSFORM_REFERENCE: &str = "transform-none";

/// Transform scenarios next to their reference: deliveries/s, the throughput cost of
/// the transform, latency and server CPU per delivery.
pub fn transform_section(results: &Results) -> String {
    let ok = |s: &&ScenarioResult| s.status == Status::Ok;
    let Some(base) = results
        .scenarios
        .iter()
        .filter(ok)
        .find(|s| s.name == TRANSFORM_REFERENCE)
    else {
        return String::new();
    };
    let rows: Vec<&ScenarioResult> = results
        .scenarios
        .iter()
        .filter(ok)
        .filter(|s| s.transform.is_some())
        .collect();
    if rows.is_empty() {
        return String::new();
    }
    let mut out = String::from("## Transform pipeline: deliveries/s with and without\n\n");
    out.push_str("| scenario | transform | deliveries/s | vs `transform-none` | throughput cost | p50 ms | p95 ms | p99 ms | server CPU µs per delivery | mean mapping stage µs | mean plugin stage µs | missing |\n");
    out.push_str("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    let base_rate = base.deliveries_per_sec.unwrap_or(0.0);
    for s in std::iter::once(base).chain(rows) {
        let rate = s.deliveries_per_sec.unwrap_or(0.0);
        let ratio = (base_rate > 0.0).then(|| rate / base_rate);
        let cell = |f: fn(&Latency) -> f64| {
            s.delivery_latency
                .as_ref()
                .map_or("-".to_owned(), |l| ms(f(l)))
        };
        let metric = |k: &str| s.metrics.get(k).map_or("-".to_owned(), |v| trim_float(*v));
        let (_, missing, _) = s.counts();
        let _ = writeln!(
            out,
            "| `{}` | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            s.name,
            s.transform.as_deref().unwrap_or("none"),
            thousands(rate),
            ratio.map_or("-".to_owned(), |r| format!("{:.0} %", r * 100.0)),
            if s.name == base.name {
                "-".to_owned()
            } else {
                ratio.map_or("-".to_owned(), |r| format!("{:.1} %", (1.0 - r) * 100.0))
            },
            cell(|l| l.p50_ms),
            cell(|l| l.p95_ms),
            cell(|l| l.p99_ms),
            metric("server CPU µs per delivery"),
            metric("mean mapping stage µs (server)"),
            metric("mean plugin stage µs (server)"),
            missing,
        );
    }
    out.push_str("\nThroughput cost = 1 − deliveries/s ÷ `transform-none`'s. Latency includes the bounded queue of up to 5,000 outstanding deliveries (as in `max-deliveries`). Stage times are the server's `gatepulse_transform_stage_duration_seconds` means (the plugin stage includes the hop to the blocking pool).\n\n");
    out
}

/// Stream fan-out scenarios: latency percentiles, counts, connect time, server cost.
pub fn stream_section(results: &Results) -> String {
    let rows: Vec<&ScenarioResult> = results
        .scenarios
        .iter()
        .filter(|s| s.status == Status::Ok && s.is_stream())
        .collect();
    if rows.is_empty() {
        return String::new();
    }
    let mut out = String::from("## Stream fan-out (SSE)\n\n");
    out.push_str("| scenario | clients | events/s | payload B | receipts/s | p50 ms | p90 ms | p99 ms | p99.9 ms | max ms | expected receipts | missing | disconnects | connect all s | connect p99 ms | RSS MiB idle / connected / peak / end | server CPU % (user + sys) | harness CPU % (user + sys) |\n");
    out.push_str("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|\n");
    for s in rows {
        let m = |k: &str| s.metrics.get(k).copied();
        let msv = |k: &str| m(k).map_or("-".to_owned(), ms);
        let num = |k: &str| m(k).map_or("-".to_owned(), trim_float);
        let cpu = |who: &str| {
            let total = num(&format!("{who} CPU % (of one core)"));
            match (
                m(&format!("{who} CPU % user")),
                m(&format!("{who} CPU % system")),
            ) {
                (Some(u), Some(sys)) => {
                    format!("{total} ({} + {})", trim_float(u), trim_float(sys))
                }
                _ => total,
            }
        };
        let (expected, missing, _) = s.counts();
        let _ = writeln!(
            out,
            "| `{}` | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} / {} / {} / {} | {} | {} |",
            s.name,
            thousands(s.fanout as f64),
            thousands(s.publishes_per_sec),
            s.payload_bytes,
            s.deliveries_per_sec.map_or("-".to_owned(), thousands),
            msv("fan-out p50 ms"),
            msv("fan-out p90 ms"),
            msv("fan-out p99 ms"),
            msv("fan-out p99.9 ms"),
            msv("fan-out max ms"),
            thousands(expected as f64),
            thousands(missing as f64),
            num("gatepulse.disconnect frames"),
            num("connect: all clients s"),
            msv("connect p99 ms"),
            num("server RSS MiB, idle"),
            num("server RSS MiB, clients connected"),
            num("server RSS MiB, peak"),
            num("server RSS MiB, end"),
            cpu("server"),
            cpu("harness"),
        );
    }
    out.push_str("\nLatency: publish start (the publisher's `sent_ns`) → receipt at the client, over every (client, event) receipt; CPU % is of one core (the machine's total is cores × 100 %).\n\n");
    out
}

/// The snapshot's phases as the harness saw them, one sentence.
pub fn snapshot_phases(r: &SnapshotRun) -> Option<String> {
    let at = |v: Option<f64>| v.map_or("-".to_owned(), |v| format!("{v:+.2} s"));
    (r.file_full_s.is_some() || r.renamed_s.is_some()).then(|| {
        format!(
            "Snapshot phases (its directory polled every 50 ms): the copy reached the file's final length by {}, the file was renamed (copy committed) at {}, the call returned at {:+.2} s (after the rename the server hashes the file and writes the manifest).",
            at(r.file_full_s),
            at(r.renamed_s),
            r.snapshot_secs
        )
    })
}

/// Spikes listed in the report at most (all of them are in `results.json`).
const SPIKES_LISTED: usize = 40;

/// Snapshot scenarios: the snapshot's size and time, publish latency before, during
/// and after it, and when the slow publishes were sent.
pub fn snapshot_section(results: &Results) -> String {
    let runs: Vec<(&ScenarioResult, &SnapshotRun)> = results
        .scenarios
        .iter()
        .filter(|s| s.status == Status::Ok)
        .filter_map(|s| s.snapshot.as_ref().map(|r| (s, r)))
        .collect();
    if runs.is_empty() {
        return String::new();
    }
    let mut out = String::from(
        "## Store operations under load (snapshot, retention pass)

",
    );
    for (s, r) in runs {
        let limit = trim_float(r.limit_ms);
        let op = r.operation.as_str();
        let what = match r.deleted_events {
            Some(n) => format!("deleted {} events", thousands(n as f64)),
            None => format!("snapshot file {} MiB", thousands(r.snapshot_mib)),
        };
        let _ = writeln!(
            out,
            "`{}`: {op} of a {} MiB store ({} MiB file length) took **{} s**; {what}. {} publishers, {} events/s in total, {} B payloads. Target: no publish over {limit} ms.
",
            s.name,
            thousands(r.store_mib),
            thousands(r.store_file_mib),
            trim_float(r.snapshot_secs),
            s.concurrency,
            s.rate.map_or("-".to_owned(), |v| thousands(v as f64)),
            s.payload_bytes,
        );
        let _ = writeln!(
            out,
            "| publish → 202 | publishes | errors | p50 ms | p99 ms | p99.9 ms | max ms | > {limit} ms | slowest sent at (s from {op} start) |"
        );
        out.push_str(
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|
",
        );
        for w in &r.windows {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                w.name,
                thousands(w.publishes as f64),
                w.errors,
                ms(w.p50_ms),
                ms(w.p99_ms),
                ms(w.p999_ms),
                ms(w.max_ms),
                w.over_limit,
                w.worst_at_s.map_or("-".to_owned(), |v| format!("{v:+.3}")),
            );
        }
        let [before, first, middle, last, after] = r.spikes_by_position();
        let _ = writeln!(
            out,
            "
Publishes over {limit} ms by when they were sent: {before} before the {op}, {first} in its first third, {middle} in its middle third, {last} in its last third, {after} after it ended.
"
        );
        let stalls = r.stalls();
        if !stalls.is_empty() {
            let listed: Vec<String> = stalls
                .iter()
                .map(|st| {
                    format!(
                        "{:+.3} → {:+.3} s: {} publish{}, worst {} ms",
                        st.from_s,
                        st.until_s,
                        st.publishes,
                        if st.publishes == 1 { "" } else { "es" },
                        ms(st.worst_ms)
                    )
                })
                .collect();
            let _ = writeln!(
                out,
                "Stalls (slow publishes sent back to back; from the first one sent to the last one answered, s from {op} start): {}.\n",
                listed.join("; ")
            );
        }
        if let Some(line) = snapshot_phases(r) {
            let _ = writeln!(out, "{line}\n");
        }
        if !r.spikes.is_empty() {
            let listed: Vec<String> = r
                .spikes
                .iter()
                .take(SPIKES_LISTED)
                .map(|sp| format!("{:+.3} s: {} ms", sp.at_s, ms(sp.ms)))
                .collect();
            let more = r.spikes.len().saturating_sub(SPIKES_LISTED);
            let _ = writeln!(
                out,
                "Slow publishes (sent at, s from {op} start: latency): {}{}
",
                listed.join("; "),
                if more > 0 {
                    format!("; … {more} more in results.json")
                } else {
                    String::new()
                }
            );
        }
    }
    out.push_str("Windows: *before* holds the publishes answered before the operation started (after the warm-up), *during* every publish in flight at some moment of it (sent before it ended, answered after it started), *after* those sent in the seconds after it ended.

");
    out
}

/// Per-group detail for scenarios with more than one group of endpoints.
fn groups_section(results: &Results) -> String {
    let mut out = String::new();
    for s in results.scenarios.iter().filter(|s| s.groups.len() > 1) {
        let _ = writeln!(out, "### `{}` by endpoint group\n", s.name);
        out.push_str("| group | endpoints | answers after | max_in_flight | expected | received (unique) | missing | duplicates | p50 ms | p95 ms | p99 ms | waited to drain |\n");
        out.push_str("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|\n");
        for g in &s.groups {
            let cell =
                |f: fn(&Latency) -> f64| g.latency.as_ref().map_or("-".to_owned(), |l| ms(f(l)));
            let _ = writeln!(
                out,
                "| {} | {} | {} ms | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                g.name,
                g.endpoints,
                g.delay_ms,
                g.max_in_flight,
                thousands(g.expected as f64),
                thousands(g.received as f64),
                g.missing,
                g.duplicates,
                cell(|l| l.p50_ms),
                cell(|l| l.p95_ms),
                cell(|l| l.p99_ms),
                if !g.enabled {
                    "- (disabled)"
                } else if g.drained {
                    "yes"
                } else {
                    "no (backlog by design)"
                },
            );
        }
        out.push('\n');
    }
    out
}

/// The whole `report.md`.
pub fn markdown(results: &Results, charts: &[(String, String)]) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "# GatePulse benchmark report\n");
    let m = &results.machine;
    let _ = writeln!(
        out,
        "Run {} UTC, {:.0} s in total; {} ({} cores), {}, {}; {}; {}.\n",
        results.started_utc,
        results.duration_secs,
        m.cpu_model,
        m.cores,
        m.memory,
        m.kernel,
        m.rustc,
        m.gp
    );
    let _ = writeln!(
        out,
        "Defaults: payload {} B, {} s measured per scenario after a warm-up{}. The server, the load generator and the receiver share this machine. Latency is publish → receipt, from the `sent_us` the publisher writes into each payload to the receiver's clock on the same machine (ingest: publish → 202). Deliveries are counted by `webhook-id` after a drain period; missing and duplicate counts are over the endpoints the run waited for. Machine details: [machine.md](machine.md).\n",
        results.params.payload_bytes,
        results.params.seconds,
        if results.params.quick {
            " (`--quick`)"
        } else {
            ""
        }
    );
    out.push_str("## Results\n\n");
    out.push_str(&table(results));
    out.push('\n');
    out.push_str(&isolation_section(results));
    out.push_str(&transform_section(results));
    out.push_str(&stream_section(results));
    out.push_str(&snapshot_section(results));
    let groups = groups_section(results);
    if !groups.is_empty() {
        out.push_str("## Endpoint groups\n\n");
        out.push_str(&groups);
    }
    let with_notes: Vec<_> = results
        .scenarios
        .iter()
        .filter(|s| !s.notes.is_empty() || !s.metrics.is_empty())
        .collect();
    if !with_notes.is_empty() {
        out.push_str("## Scenario details\n\n");
        for s in with_notes {
            let _ = writeln!(out, "- `{}`: {}", s.name, s.description);
            for (k, v) in &s.metrics {
                let _ = writeln!(out, "  - {k}: {}", trim_float(*v));
            }
            for n in &s.notes {
                let _ = writeln!(out, "  - {n}");
            }
        }
        out.push('\n');
    }
    if !charts.is_empty() {
        out.push_str("## Charts\n\n");
        for (title, file) in charts {
            let _ = writeln!(out, "![{title}]({file})\n");
        }
    }
    out
}

/// At most three decimals, trailing zeros dropped.
pub fn trim_float(v: f64) -> String {
    let s = format!("{v:.3}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" { "0".into() } else { s.to_owned() }
}

/// Percentage change from `a` to `b` (`None` when `a` is 0).
pub fn delta_pct(a: f64, b: f64) -> Option<f64> {
    (a != 0.0).then(|| (b - a) / a * 100.0)
}

fn delta_cell(a: Option<f64>, b: Option<f64>) -> String {
    match (a, b) {
        (Some(a), Some(b)) => match delta_pct(a, b) {
            Some(d) => format!("{d:+.1} %"),
            None => "-".into(),
        },
        _ => "-".into(),
    }
}

fn ok_only(s: Option<&ScenarioResult>) -> Option<&ScenarioResult> {
    s.filter(|s| s.status == Status::Ok)
}

/// Two runs side by side, with deltas (B relative to A).
pub fn compare(a: &Results, b: &Results, name_a: &str, name_b: &str) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "# Benchmark comparison\n");
    let _ = writeln!(
        out,
        "- A: `{name_a}` ({} UTC, {})",
        a.started_utc, a.machine.gp
    );
    let _ = writeln!(
        out,
        "- B: `{name_b}` ({} UTC, {})\n",
        b.started_utc, b.machine.gp
    );
    if a.machine.cpu_model != b.machine.cpu_model || a.machine.cores != b.machine.cores {
        out.push_str("**Different machines**: compare with care.\n\n");
    }
    out.push_str(
        "Δ is B relative to A; for latency lower is better, for throughput higher is better.\n\n",
    );
    out.push_str("| scenario | metric | A | B | Δ |\n|---|---|---:|---:|---:|\n");
    let mut names: Vec<&str> = a.scenarios.iter().map(|s| s.name.as_str()).collect();
    for s in &b.scenarios {
        if !names.contains(&s.name.as_str()) {
            names.push(&s.name);
        }
    }
    for name in names {
        let sa = a.scenarios.iter().find(|s| s.name == name);
        let sb = b.scenarios.iter().find(|s| s.name == name);
        let (sa, sb) = match (ok_only(sa), ok_only(sb)) {
            (None, None) => continue,
            pair => pair,
        };
        let mut rows: Vec<(String, Option<f64>, Option<f64>, bool)> = vec![
            (
                "publishes/s".into(),
                sa.map(|s| s.publishes_per_sec),
                sb.map(|s| s.publishes_per_sec),
                false,
            ),
            (
                "deliveries/s".into(),
                sa.and_then(|s| s.deliveries_per_sec),
                sb.and_then(|s| s.deliveries_per_sec),
                false,
            ),
        ];
        let lat = |s: Option<&ScenarioResult>, f: fn(&Latency) -> f64| {
            s.and_then(|s| s.headline_latency()).map(|(l, _)| f(&l))
        };
        rows.push((
            "p50 ms".into(),
            lat(sa, |l| l.p50_ms),
            lat(sb, |l| l.p50_ms),
            true,
        ));
        rows.push((
            "p95 ms".into(),
            lat(sa, |l| l.p95_ms),
            lat(sb, |l| l.p95_ms),
            true,
        ));
        rows.push((
            "p99 ms".into(),
            lat(sa, |l| l.p99_ms),
            lat(sb, |l| l.p99_ms),
            true,
        ));
        let counts = |s: Option<&ScenarioResult>, i: usize| {
            s.filter(|s| s.fanout > 0).map(|s| {
                let c = s.counts();
                [c.1, c.2][i] as f64
            })
        };
        rows.push(("missing".into(), counts(sa, 0), counts(sb, 0), true));
        rows.push(("duplicates".into(), counts(sa, 1), counts(sb, 1), true));
        let mut keys: Vec<&String> = sa.map(|s| s.metrics.keys().collect()).unwrap_or_default();
        if let Some(s) = sb {
            for k in s.metrics.keys() {
                if !keys.contains(&k) {
                    keys.push(k);
                }
            }
        }
        for k in keys {
            rows.push((
                k.clone(),
                sa.and_then(|s| s.metrics.get(k).copied()),
                sb.and_then(|s| s.metrics.get(k).copied()),
                true,
            ));
        }
        for (metric, va, vb, _lower_better) in rows {
            if va.is_none() && vb.is_none() {
                continue;
            }
            let fmt = |v: Option<f64>| {
                v.map_or("-".to_owned(), |v| {
                    if metric.ends_with("ms") {
                        ms(v)
                    } else if v.abs() >= 100.0 {
                        thousands(v)
                    } else {
                        trim_float(v)
                    }
                })
            };
            let _ = writeln!(
                out,
                "| `{name}` | {metric} | {} | {} | {} |",
                fmt(va),
                fmt(vb),
                delta_cell(va, vb)
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn sample() -> Results {
        let mut s = ScenarioResult::new("e2e-rate", "publish at a fixed rate", Status::Ok);
        s.concurrency = 32;
        s.rate = Some(2000);
        s.fanout = 1;
        s.payload_bytes = 1024;
        s.seconds = 10;
        s.published = 24_000;
        s.publishes_per_sec = 2000.0;
        s.deliveries_per_sec = Some(2000.0);
        let lat = Latency {
            p50_ms: 1.5,
            p95_ms: 3.0,
            p99_ms: 6.0,
            max_ms: 20.0,
            samples: 20_000,
        };
        s.delivery_latency = Some(lat);
        s.groups.push(GroupResult {
            name: "healthy".into(),
            endpoints: 1,
            delay_ms: 0,
            max_in_flight: 64,
            enabled: true,
            drained: true,
            expected: 24_000,
            received: 23_999,
            missing: 1,
            unexpected: 0,
            duplicates: 2,
            latency: Some(lat),
        });
        s.delivery_timeline = vec![1000, 2000, 2000];
        s.metrics.insert("mean commit ms".into(), 0.5);
        Results {
            schema: SCHEMA,
            started_utc: "2026-11-26T12:00:00Z".into(),
            duration_secs: 42.0,
            params: Params {
                payload_bytes: 1024,
                seconds: 10,
                quick: false,
                scenarios: vec!["e2e-rate".into()],
            },
            machine: Machine {
                cpu_model: "Test CPU".into(),
                cores: 2,
                ..Machine::default()
            },
            scenarios: vec![
                s,
                ScenarioResult::new(
                    "mapping",
                    "a mapping",
                    Status::NotAvailable("no mappings yet".into()),
                ),
            ],
        }
    }

    #[test]
    fn percentiles_from_histogram() {
        let mut h = Histogram::<u64>::new_with_bounds(1, 600_000_000, 3).unwrap();
        for us in 1..=1000u64 {
            h.record(us * 1000).unwrap();
        }
        let l = Latency::from_histogram(&h).unwrap();
        assert!((l.p50_ms - 500.0).abs() < 1.0, "{l:?}");
        assert!((l.p95_ms - 950.0).abs() < 1.0, "{l:?}");
        assert!((l.p99_ms - 990.0).abs() < 1.0, "{l:?}");
        assert!((l.max_ms - 1000.0).abs() < 1.0, "{l:?}");
        assert_eq!(l.samples, 1000);
        let empty = Histogram::<u64>::new_with_bounds(1, 600_000_000, 3).unwrap();
        assert!(Latency::from_histogram(&empty).is_none());
    }

    #[test]
    fn number_formatting() {
        assert_eq!(thousands(1234567.4), "1,234,567");
        assert_eq!(thousands(999.0), "999");
        assert_eq!(thousands(-1000.0), "-1,000");
        assert_eq!(ms(1.234), "1.23");
        assert_eq!(ms(12.34), "12.3");
        assert_eq!(ms(1234.6), "1235");
        assert_eq!(trim_float(12.7), "12.7");
        assert_eq!(trim_float(68.0), "68");
        assert_eq!(trim_float(0.2691), "0.269");
    }

    #[test]
    fn table_shows_counts_and_unavailable() {
        let t = table(&sample());
        assert!(t.contains("| `e2e-rate` | 32 × 2,000/s | 1 | 1 | 1024 | 24,000 | 2,000 | 2,000 | publish→receipt | 1.50 | 3.00 | 6.00 | 20.0 | 24,000 | 1 | 2 |"), "{t}");
        assert!(
            t.contains("- `mapping`: not available in this build (no mappings yet)"),
            "{t}"
        );
    }

    #[test]
    fn isolation_compares_healthy_latency() {
        let mut r = sample();
        let mut base = r.scenarios[0].clone();
        base.name = "slow-endpoint-baseline".into();
        let mut slow = base.clone();
        slow.name = "slow-endpoint".into();
        if let Some(l) = slow.delivery_latency.as_mut() {
            l.p95_ms = 3.3;
        }
        let mut g = slow.groups[0].clone();
        g.name = "slow".into();
        g.drained = false;
        g.delay_ms = 2000;
        g.received = 50;
        g.expected = 6000;
        slow.groups.push(g);
        assert_eq!(isolation_section(&r), "");
        r.scenarios.push(base);
        r.scenarios.push(slow);
        let md = isolation_section(&r);
        assert!(
            md.contains(
                "| without the slow endpoint (`slow-endpoint-baseline`) | 1.50 | 3.00 | 6.00 |"
            ),
            "{md}"
        );
        assert!(md.contains("| change | +0 % | +10 % | +0 % |"), "{md}");
        assert!(md.contains("received 50 of its 6,000 deliveries"), "{md}");
    }

    #[test]
    fn stream_section_lists_stream_runs_only() {
        let mut r = sample();
        assert_eq!(stream_section(&r), "");
        let mut s = r.scenarios[0].clone();
        s.name = "stream_fanout".into();
        s.fanout = 1000;
        s.groups[0].name = STREAM_GROUP.into();
        s.groups[0].endpoints = 1000;
        s.deliveries_per_sec = Some(1_000_000.0);
        for (k, v) in [
            ("fan-out p50 ms", 1.5),
            ("fan-out p90 ms", 2.5),
            ("fan-out p99 ms", 40.0),
            ("fan-out p99.9 ms", 120.0),
            ("fan-out max ms", 300.0),
            ("server RSS MiB, idle", 24.0),
            ("server RSS MiB, clients connected", 80.0),
            ("server RSS MiB, peak", 150.0),
            ("server RSS MiB, end", 140.0),
            ("server CPU % (of one core)", 100.0),
            ("server CPU % user", 45.0),
            ("server CPU % system", 55.0),
        ] {
            s.metrics.insert(k.into(), v);
        }
        assert!(s.is_stream() && !r.scenarios[0].is_stream());
        r.scenarios.push(s);
        let md = stream_section(&r);
        assert!(
            md.contains("| `stream_fanout` | 1,000 | 2,000 | 1024 | 1,000,000 | 1.50 | 2.50 | 40.0 | 120 | 300 | 24,000 | 1 | - | - | - | 24 / 80 / 150 / 140 | 100 (45 + 55) | - |"),
            "{md}"
        );
        assert!(!md.contains("`e2e-rate`"), "{md}");
    }

    fn snapshot_sample() -> ScenarioResult {
        let mut s = ScenarioResult::new("snapshot", "snapshot under load", Status::Ok);
        s.concurrency = 4;
        s.rate = Some(200);
        s.payload_bytes = 1024;
        let window = |name: &str, max_ms: f64, over: u64, at: Option<f64>| PublishWindow {
            name: name.into(),
            publishes: 2000,
            errors: 0,
            p50_ms: 1.2,
            p99_ms: 3.4,
            p999_ms: 12.0,
            max_ms,
            over_limit: over,
            worst_at_s: at,
        };
        s.snapshot = Some(SnapshotRun {
            snapshot_secs: 9.0,
            store_mib: 1100.0,
            store_file_mib: 1090.0,
            snapshot_mib: 1050.0,
            limit_ms: 50.0,
            windows: vec![
                window("before snapshot", 20.0, 0, Some(-3.5)),
                window("during snapshot", 180.0, 2, Some(8.9)),
            ],
            spikes: vec![
                Spike {
                    at_s: -0.01,
                    ms: 60.0,
                },
                Spike {
                    at_s: 0.5,
                    ms: 70.0,
                },
                Spike {
                    at_s: 3.0,
                    ms: 51.0,
                },
                Spike {
                    at_s: 8.9,
                    ms: 180.0,
                },
                Spike {
                    at_s: 9.0,
                    ms: 55.0,
                },
            ],
            file_full_s: Some(7.5),
            renamed_s: Some(8.0),
            operation: "snapshot".into(),
            deleted_events: None,
        });
        s
    }

    #[test]
    fn spikes_by_position_in_the_snapshot() {
        let s = snapshot_sample();
        let r = s.snapshot.as_ref().unwrap();
        assert_eq!(r.spikes_by_position(), [1, 1, 1, 1, 1]);
    }

    #[test]
    fn back_to_back_spikes_form_one_stall() {
        let mut s = snapshot_sample();
        let r = s.snapshot.as_mut().unwrap();
        // One stall released at +0.70 s (publishes every 5 ms), then another.
        r.spikes = (0..10)
            .map(|i| {
                let at_s = 0.5 + f64::from(i) * 0.005;
                Spike {
                    at_s,
                    ms: (0.70 - at_s) * 1000.0,
                }
            })
            .chain([Spike {
                at_s: 0.76,
                ms: 80.0,
            }])
            .collect();
        let st = r.stalls();
        assert_eq!(st.len(), 2, "{st:?}");
        assert_eq!((st[0].publishes, st[1].publishes), (10, 1));
        assert!((st[0].from_s - 0.5).abs() < 1e-9 && (st[0].until_s - 0.7).abs() < 1e-9);
        assert!((st[0].worst_ms - 200.0).abs() < 1e-6);
        assert!((st[1].until_s - 0.84).abs() < 1e-9);
    }

    #[test]
    fn snapshot_section_shows_windows_and_spikes() {
        let mut r = sample();
        assert_eq!(snapshot_section(&r), "");
        r.scenarios.push(snapshot_sample());
        let md = snapshot_section(&r);
        assert!(md.contains("took **9 s**"), "{md}");
        assert!(
            md.contains("| during snapshot | 2,000 | 0 | 1.20 | 3.40 | 12.0 | 180 | 2 | +8.900 |"),
            "{md}"
        );
        assert!(md.contains("1 in its middle third"), "{md}");
        assert!(md.contains("+8.900 s: 180 ms"), "{md}");
        assert!(
            md.contains("+8.900 → +9.080 s: 1 publish, worst 180 ms; +9.000 → +9.055 s"),
            "{md}"
        );
        assert!(md.contains("renamed (copy committed) at +8.00 s"), "{md}");
        let back = Results::from_json(&r.to_json().unwrap()).unwrap();
        assert_eq!(r, back);
        // Results written before the field existed still load.
        let old = sample().to_json().unwrap();
        assert!(!old.contains("\"snapshot\""));
        assert!(Results::from_json(&old).is_ok());
    }

    #[test]
    fn results_json_round_trip() {
        let r = sample();
        let back = Results::from_json(&r.to_json().unwrap()).unwrap();
        assert_eq!(r, back);
    }

    #[test]
    fn compare_shows_deltas() {
        let a = sample();
        let mut b = sample();
        b.scenarios[0].publishes_per_sec = 2500.0;
        if let Some(l) = b.scenarios[0].delivery_latency.as_mut() {
            l.p95_ms = 1.5;
        }
        let md = compare(&a, &b, "before", "after");
        assert!(
            md.contains("| `e2e-rate` | publishes/s | 2,000 | 2,500 | +25.0 % |"),
            "{md}"
        );
        assert!(
            md.contains("| `e2e-rate` | p95 ms | 3.00 | 1.50 | -50.0 % |"),
            "{md}"
        );
        assert!(
            md.contains("| `e2e-rate` | missing | 1 | 1 | +0.0 % |"),
            "{md}"
        );
        assert!(!md.contains("`mapping`"), "{md}");
        assert_eq!(delta_pct(0.0, 5.0), None);
    }
}
