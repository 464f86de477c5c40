//! The `snapshot` and `compaction` scenarios: how an online snapshot
//! (`POST /v1/admin/snapshots`) or a retention pass (the scheduled job that deletes
//! expired events) affects publish latency.
//!
//! For `compaction` the server runs with `events_max_age_secs = 10` and the job every
//! minute; the store is filled with events that have no deliveries (so they expire),
//! at the start of a minute, and the measured operation is the next pass after the
//! baseline: it starts on the minute and ends when `gatepulse_compaction_duration_seconds`
//! counts one more pass.
//!
//! `gp` starts on a temporary store, which [`fill_store`] fills (endpoint disabled, so
//! every delivery stays pending). Then open-loop publishers ([`open_loop`]) post one
//! event per `POST /v1/events` at a fixed rate and record, for every publish, when it
//! was sent and how long its 202 took. After the warm-up and a baseline window the
//! harness asks for a snapshot into a directory under the temporary dir, times the
//! call, keeps publishing for a few seconds after it returns, then stops. The
//! publishes are split into windows ([`split`]): before, during and after the
//! snapshot; every publish over [`LIMIT_MS`] is printed with when it was sent
//! relative to the snapshot's start.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::json;

use crate::load::{event_json, filler};
use crate::receiver::new_histogram;
use crate::report::{
    Latency, PublishWindow, ScenarioResult, SnapshotRun, Spike, Status, snapshot_phases,
};
use crate::scenarios::{fill_store, mib, r3};
use crate::server::{ADMIN, Server, dir_size, post};
use crate::stream::{open_loop, publish_one};

/// The latency target: a snapshot should never hold a publish longer than this.
pub const LIMIT_MS: f64 = 50.0;

/// The store file's name (the server's `REDB_FILE`); a snapshot writes it as
/// `<name>.partial` first and renames it when the copy is committed.
const STORE_FILE: &str = "gatepulse.redb";

/// Publishes in flight per publisher at most (20 s of a 50 events/s publisher): high
/// enough that a stalled server does not pause the publishers.
const MAX_IN_FLIGHT: usize = 1024;

/// What runs while the publishers publish.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    Snapshot,
    RetentionPass,
}

impl Operation {
    fn label(self) -> &'static str {
        match self {
            Operation::Snapshot => "snapshot",
            Operation::RetentionPass => "retention pass",
        }
    }
}

/// Events older than this are deleted by the `compaction` scenario's passes.
const RETENTION_AGE_SECS: u64 = 10;

/// One snapshot (or retention pass) run.
#[derive(Debug, Clone)]
pub struct SnapshotSpec {
    pub operation: Operation,
    /// Payload MiB the store is filled with before publishing starts.
    pub target_mb: u64,
    /// Open-loop publishers, each at `rate_each` events/s (one event per call).
    pub publishers: usize,
    pub rate_each: u64,
    pub payload_bytes: usize,
    /// Publishing before the measured windows (not counted).
    pub warmup_secs: u64,
    /// Measured publishing before the snapshot starts.
    pub baseline_secs: u64,
    /// Publishing after the snapshot call returns.
    pub after_secs: u64,
}

/// One publish: when it was sent (since the publishers started) and how long until
/// its 202 (`None`: refused or failed).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    pub sent: Duration,
    pub latency: Option<Duration>,
}

impl Sample {
    fn done(&self) -> Option<Duration> {
        self.latency.map(|l| self.sent + l)
    }

    fn ms(&self) -> Option<f64> {
        self.latency.map(|l| l.as_secs_f64() * 1000.0)
    }
}

/// The measured phases, as offsets since the publishers started.
#[derive(Debug, Clone, Copy)]
pub struct Phases {
    /// End of the warm-up: earlier publishes are not counted.
    pub measure_from: Duration,
    /// When the snapshot call was sent, and when its answer arrived.
    pub start: Duration,
    pub end: Duration,
}

/// Which window a publish belongs to: 0 before (answered before the snapshot
/// started), 1 during (in flight at some moment of the snapshot), 2 after (sent after
/// it returned); `None` during the warm-up. A failed publish counts by when it was
/// sent.
fn window_of(s: &Sample, p: &Phases) -> Option<usize> {
    if s.sent < p.measure_from {
        None
    } else if s.done().unwrap_or(s.sent) < p.start {
        Some(0)
    } else if s.sent < p.end {
        Some(1)
    } else {
        Some(2)
    }
}

/// Value at quantile `q` of sorted values (nearest rank); 0 when empty.
fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = (q * sorted.len() as f64).ceil().max(1.0) as usize;
    sorted[rank.min(sorted.len()) - 1]
}

/// Splits the samples into the before, during and after windows (see [`window_of`]).
pub fn split(samples: &[Sample], p: &Phases, limit_ms: f64, op: &str) -> [PublishWindow; 3] {
    let names = [
        format!("before {op}"),
        format!("during {op}"),
        format!("after {op}"),
    ];
    let mut ms: [Vec<f64>; 3] = Default::default();
    let mut errors = [0u64; 3];
    let mut worst: [Option<(f64, Duration)>; 3] = [None; 3];
    for s in samples {
        let Some(w) = window_of(s, p) else { continue };
        match s.ms() {
            Some(v) => {
                ms[w].push(v);
                if worst[w].is_none_or(|(m, _)| v > m) {
                    worst[w] = Some((v, s.sent));
                }
            }
            None => errors[w] += 1,
        }
    }
    std::array::from_fn(|w| {
        let v = &mut ms[w];
        v.sort_by(f64::total_cmp);
        PublishWindow {
            name: names[w].clone(),
            publishes: v.len() as u64,
            errors: errors[w],
            p50_ms: quantile(v, 0.50),
            p99_ms: quantile(v, 0.99),
            p999_ms: quantile(v, 0.999),
            max_ms: v.last().copied().unwrap_or(0.0),
            over_limit: v.iter().filter(|m| **m > limit_ms).count() as u64,
            worst_at_s: worst[w].map(|(_, sent)| offset_s(sent, p.start)),
        }
    })
}

/// `at` in seconds relative to `start` (negative: before it).
fn offset_s(at: Duration, start: Duration) -> f64 {
    at.as_secs_f64() - start.as_secs_f64()
}

/// Every measured publish over `limit_ms`, in the order they were sent, with when
/// relative to the snapshot's start.
pub fn spikes(samples: &[Sample], p: &Phases, limit_ms: f64) -> Vec<Spike> {
    let mut out: Vec<(Duration, Spike)> = samples
        .iter()
        .filter(|s| window_of(s, p).is_some())
        .filter_map(|s| {
            let ms = s.ms().filter(|m| *m > limit_ms)?;
            Some((
                s.sent,
                Spike {
                    at_s: offset_s(s.sent, p.start),
                    ms,
                },
            ))
        })
        .collect();
    out.sort_by_key(|(sent, _)| *sent);
    out.into_iter().map(|(_, s)| s).collect()
}

/// What the harness saw of the snapshot's directory while the call ran.
#[derive(Debug, Default)]
struct Progress {
    /// (since the snapshot's start, length of the partial file)
    partial: Vec<(Duration, u64)>,
    /// When the final file first existed (the copy committed and renamed).
    renamed: Option<Duration>,
}

impl Progress {
    /// When the partial file first had `bytes` (its final length).
    fn full_at(&self, bytes: u64) -> Option<Duration> {
        self.partial
            .iter()
            .find(|(_, len)| *len >= bytes)
            .map(|(t, _)| *t)
    }
}

/// Polls `dir` every 50 ms until `done`: the partial file's length and when the final
/// file appears.
async fn watch(dir: std::path::PathBuf, started: Instant, done: Arc<AtomicBool>) -> Progress {
    let partial = dir.join(format!("{STORE_FILE}.partial"));
    let file = dir.join(STORE_FILE);
    let mut p = Progress::default();
    while !done.load(Ordering::Relaxed) {
        if p.renamed.is_none() {
            if let Ok(m) = std::fs::metadata(&partial) {
                p.partial.push((started.elapsed(), m.len()));
            } else if file.exists() {
                p.renamed = Some(started.elapsed());
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    p
}

/// Accepted publishes per second of completion, from `from` to `to`.
fn per_second(samples: &[Sample], from: Duration, to: Duration) -> Vec<u64> {
    let secs = (to.saturating_sub(from)).as_secs_f64().ceil() as usize;
    let mut out = vec![0u64; secs.max(1)];
    for d in samples.iter().filter_map(Sample::done) {
        if d >= from {
            let i = (d - from).as_secs() as usize;
            if let Some(c) = out.get_mut(i) {
                *c += 1;
            }
        }
    }
    out
}

/// One open-loop publisher: `rate_each` single-event publishes per second.
async fn publisher(
    w: usize,
    spec: Arc<SnapshotSpec>,
    origin: Instant,
    stop: Arc<AtomicBool>,
    url: Arc<str>,
    key: Arc<String>,
    samples: Arc<Mutex<Vec<Sample>>>,
) -> Result<()> {
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(MAX_IN_FLIGHT)
        .build()?;
    let fill: Arc<str> = filler(spec.payload_bytes).into();
    let iv = Duration::from_secs_f64(1.0 / spec.rate_each.max(1) as f64);
    let phase = iv.mul_f64(w as f64 / spec.publishers.max(1) as f64);
    open_loop(iv, phase, MAX_IN_FLIGHT, &stop, |n| {
        let (http, url, key, samples, fill) = (
            http.clone(),
            url.clone(),
            key.clone(),
            samples.clone(),
            fill.clone(),
        );
        async move {
            let body = event_json(w, n, &fill);
            let sent = origin.elapsed();
            let ok = publish_one(&http, &url, &key, body).await;
            let latency = ok.then(|| origin.elapsed().saturating_sub(sent));
            if let Ok(mut v) = samples.lock() {
                v.push(Sample { sent, latency });
            }
        }
    })
    .await
}

fn unix_now() -> Duration {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
}

/// The value of one series (name and labels exactly as the server prints them) in
/// Prometheus text; 0 when absent.
fn metric_value(text: &str, series: &str) -> u64 {
    crate::server::series_value(text, series).map_or(0, |v| v as u64)
}

/// Waits for the next minute's retention pass: it starts on the minute and has ended
/// once the server counts one more pass. Returns its start and end (since `origin`)
/// and the events it deleted.
async fn next_retention_pass(
    server: &Server,
    origin: &Instant,
) -> Result<(Duration, Duration, u64)> {
    const PASSES: &str = "gatepulse_compaction_duration_seconds_count";
    const EVENTS: &str = "gatepulse_retention_rows_deleted_total{kind=\"event\"}";
    let to_minute = Duration::from_secs(60).saturating_sub(Duration::from_millis(
        (unix_now().as_millis() % 60_000) as u64,
    ));
    tokio::time::sleep(to_minute.saturating_sub(Duration::from_millis(300))).await;
    let before = server.metrics().await?;
    let (passes, events) = (metric_value(&before, PASSES), metric_value(&before, EVENTS));
    let to_minute = Duration::from_secs(60).saturating_sub(Duration::from_millis(
        (unix_now().as_millis() % 60_000) as u64,
    ));
    if to_minute < Duration::from_secs(30) {
        tokio::time::sleep(to_minute).await;
    }
    let start = origin.elapsed();
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let now = server.metrics().await?;
        if metric_value(&now, PASSES) > passes {
            let deleted = metric_value(&now, EVENTS).saturating_sub(events);
            return Ok((start, origin.elapsed(), deleted));
        }
        if Instant::now() > deadline {
            bail!("no retention pass ended within 300 s of the minute");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Runs the scenario: fill, publish, snapshot (or wait for a retention pass), publish,
/// report.
pub async fn run_snapshot(
    gp: &std::path::Path,
    name: &str,
    description: &str,
    spec: SnapshotSpec,
) -> Result<ScenarioResult> {
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data)?;
    let snapshot_dir = dir.path().join("snapshot");
    if !snapshot_dir.is_absolute() {
        bail!("temporary dir {} is not absolute", snapshot_dir.display());
    }
    let op = spec.operation;
    let age = RETENTION_AGE_SECS.to_string();
    let env: &[(&str, &str)] = match op {
        // The scheduled job stays off: only the snapshot runs.
        Operation::Snapshot => &[("GATEPULSE_RETENTION__COMPACTION_CRON", "")],
        Operation::RetentionPass => &[
            ("GATEPULSE_RETENTION__COMPACTION_CRON", "* * * * *"),
            ("GATEPULSE_RETENTION__EVENTS_MAX_AGE_SECS", &age),
        ],
    };
    let (server, _) = Server::start_with(gp, &data, env).await?;
    if op == Operation::RetentionPass {
        // Fill right after a minute starts, so that no pass runs before the baseline
        // has been measured; the next one then finds the whole fill expired.
        let into_minute = unix_now().as_secs() % 60;
        if into_minute > 3 {
            eprintln!("  waiting {} s for a minute to start …", 61 - into_minute);
            tokio::time::sleep(Duration::from_secs(61 - into_minute)).await;
        }
    }
    eprintln!("  filling the store with {} MiB …", spec.target_mb);
    let filled = fill_store(&server.base, spec.target_mb, op == Operation::Snapshot).await?;
    let (store_file, store_alloc) = dir_size(&data);
    eprintln!(
        "  filled in {:.1} s: {} events, store {} MiB; publishing",
        filled.secs,
        filled.events,
        mib(store_alloc)
    );

    let spec = Arc::new(spec);
    let stop = Arc::new(AtomicBool::new(false));
    let samples: Arc<Mutex<Vec<Sample>>> = Arc::default();
    let url: Arc<str> = format!("{}/v1/events", server.base).into();
    let origin = Instant::now();
    let workers: Vec<_> = (0..spec.publishers)
        .map(|w| {
            tokio::spawn(publisher(
                w,
                spec.clone(),
                origin,
                stop.clone(),
                url.clone(),
                filled.key.clone(),
                samples.clone(),
            ))
        })
        .collect();
    let measure_from = Duration::from_secs(spec.warmup_secs);
    tokio::time::sleep_until(
        (origin + measure_from + Duration::from_secs(spec.baseline_secs)).into(),
    )
    .await;
    let http = reqwest::Client::new();
    let (start, end, progress, manifest, deleted) = match op {
        Operation::Snapshot => {
            let watching = Arc::new(AtomicBool::new(false));
            let watcher = tokio::spawn(watch(
                snapshot_dir.clone(),
                Instant::now(),
                watching.clone(),
            ));
            let start = origin.elapsed();
            let answer = post(
                &http,
                format!("{}/v1/admin/snapshots", server.base),
                ADMIN,
                json!({"path": snapshot_dir.to_string_lossy()}),
            )
            .await;
            let end = origin.elapsed();
            watching.store(true, Ordering::Relaxed);
            let progress = watcher.await?;
            if answer.is_ok() {
                tokio::time::sleep(Duration::from_secs(spec.after_secs)).await;
            }
            (start, end, progress, answer, None)
        }
        Operation::RetentionPass => {
            let (start, end, deleted) = next_retention_pass(&server, &origin).await?;
            tokio::time::sleep(Duration::from_secs(spec.after_secs)).await;
            (
                start,
                end,
                Progress::default(),
                Ok(json!({})),
                Some(deleted),
            )
        }
    };
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.await??;
    }
    let stopped = origin.elapsed();
    let manifest = manifest.context("POST /v1/admin/snapshots")?;
    server.stop(true)?;

    let samples = std::mem::take(
        &mut *samples
            .lock()
            .map_err(|_| anyhow::anyhow!("samples lock"))?,
    );
    let phases = Phases {
        measure_from,
        start,
        end,
    };
    let windows = split(&samples, &phases, LIMIT_MS, op.label());
    let spikes = spikes(&samples, &phases, LIMIT_MS);
    let snapshot_secs = (end - start).as_secs_f64();
    let snapshot_bytes = manifest["bytes"].as_u64().unwrap_or(0);
    let run = SnapshotRun {
        snapshot_secs: r3(snapshot_secs),
        store_mib: mib(store_alloc),
        store_file_mib: mib(store_file),
        snapshot_mib: mib(snapshot_bytes),
        limit_ms: LIMIT_MS,
        windows: windows.to_vec(),
        spikes,
        file_full_s: progress
            .full_at(snapshot_bytes)
            .map(|t| r3(t.as_secs_f64())),
        renamed_s: progress.renamed.map(|t| r3(t.as_secs_f64())),
        operation: op.label().into(),
        deleted_events: deleted,
    };
    for sp in &run.spikes {
        eprintln!(
            "  slow publish: sent {:+.3} s from snapshot start ({:.0} % of the way through the {:.2} s snapshot): {:.1} ms",
            sp.at_s,
            sp.at_s / snapshot_secs.max(1e-9) * 100.0,
            snapshot_secs,
            sp.ms
        );
    }
    for st in run.stalls() {
        eprintln!(
            "  stall: {:+.3} → {:+.3} s from snapshot start: {} publishes over {LIMIT_MS} ms, worst {:.1} ms",
            st.from_s, st.until_s, st.publishes, st.worst_ms
        );
    }
    if let Some(line) = snapshot_phases(&run) {
        eprintln!("  {line}");
    }

    let mut out = ScenarioResult::new(name, description, Status::Ok);
    out.concurrency = spec.publishers;
    out.rate = Some(spec.rate_each * spec.publishers as u64);
    out.payload_bytes = spec.payload_bytes;
    out.seconds = (stopped.saturating_sub(measure_from)).as_secs();
    let mut hist = new_histogram()?;
    let mut errors = 0u64;
    for s in samples.iter().filter(|s| s.sent >= measure_from) {
        match s.latency {
            Some(l) => hist.record((l.as_micros() as u64).max(1))?,
            None => errors += 1,
        }
    }
    out.published = hist.len();
    out.publish_errors = errors;
    out.publishes_per_sec = hist.len() as f64 / (stopped - measure_from).as_secs_f64().max(1e-9);
    out.publish_latency = Latency::from_histogram(&hist);
    out.publish_timeline = per_second(&samples, measure_from, stopped);

    let m = &mut out.metrics;
    filled.record(m);
    m.insert("snapshot s".into(), r3(snapshot_secs));
    m.insert(
        "store MiB before snapshot (allocated)".into(),
        mib(store_alloc),
    );
    m.insert(
        "store MiB before snapshot (file length)".into(),
        mib(store_file),
    );
    m.insert("snapshot file MiB".into(), mib(snapshot_bytes));
    if let Some(rows) = manifest["tables"]["events"].as_u64() {
        m.insert("snapshot rows: events".into(), rows as f64);
    }
    for (w, key) in windows.iter().zip(["before", "during", "after"]) {
        m.insert(format!("publishes, {key}"), w.publishes as f64);
        m.insert(format!("publish p50 ms, {key}"), r3(w.p50_ms));
        m.insert(format!("publish p99 ms, {key}"), r3(w.p99_ms));
        m.insert(format!("publish p99.9 ms, {key}"), r3(w.p999_ms));
        m.insert(format!("publish max ms, {key}"), r3(w.max_ms));
        m.insert(format!("publishes > 50 ms, {key}"), w.over_limit as f64);
    }
    if let Some(at) = windows[1].worst_at_s {
        m.insert("slowest publish during snapshot, sent at s".into(), r3(at));
    }
    if errors > 0 {
        out.notes
            .push(format!("{errors} publishes were refused or failed"));
    }
    out.notes.push(format!(
        "store filled with {} KiB payloads (endpoint disabled: one pending delivery each); then {} open-loop publishers × {} events/s with {} B payloads, {} s warm-up, {} s baseline, the snapshot, {} s after it; latency is publish → 202; offsets are seconds from the snapshot call's start",
        crate::scenarios::FILL_PAYLOAD / 1024,
        spec.publishers,
        spec.rate_each,
        spec.payload_bytes,
        spec.warmup_secs,
        spec.baseline_secs,
        spec.after_secs,
    ));
    out.snapshot = Some(run);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }

    fn sample(sent_ms: u64, latency_ms: Option<u64>) -> Sample {
        Sample {
            sent: ms(sent_ms),
            latency: latency_ms.map(ms),
        }
    }

    const PHASES: Phases = Phases {
        measure_from: Duration::from_secs(1),
        start: Duration::from_secs(10),
        end: Duration::from_secs(20),
    };

    #[test]
    fn publishes_fall_into_windows() {
        let p = &PHASES;
        // Warm-up: not counted.
        assert_eq!(window_of(&sample(500, Some(1)), p), None);
        assert_eq!(window_of(&sample(1_000, Some(1)), p), Some(0));
        // Answered before the snapshot started.
        assert_eq!(window_of(&sample(9_990, Some(5)), p), Some(0));
        // Sent before, still in flight when the snapshot started: during.
        assert_eq!(window_of(&sample(9_990, Some(30)), p), Some(1));
        assert_eq!(window_of(&sample(19_999, Some(1)), p), Some(1));
        assert_eq!(window_of(&sample(20_000, Some(1)), p), Some(2));
        // A failure counts by when it was sent.
        assert_eq!(window_of(&sample(9_990, None), p), Some(0));
        assert_eq!(window_of(&sample(10_000, None), p), Some(1));
    }

    #[test]
    fn windows_have_percentiles_and_the_worst_publish() {
        let mut samples: Vec<Sample> = (0..1000)
            .map(|i| sample(1_000 + i * 8, Some(1 + i % 10)))
            .collect();
        samples.push(sample(9_995, Some(120))); // in flight at the start: during
        samples.push(sample(12_500, Some(80)));
        samples.push(sample(13_000, None));
        samples.extend((0..100).map(|i| sample(20_000 + i * 10, Some(2))));
        samples.push(sample(200, Some(500))); // warm-up
        let [before, during, after] = split(&samples, &PHASES, 50.0, "snapshot");
        assert_eq!(
            (before.publishes, during.publishes, after.publishes),
            (1000, 2, 100)
        );
        assert_eq!((before.errors, during.errors, after.errors), (0, 1, 0));
        assert_eq!(before.p50_ms, 5.0);
        assert_eq!(before.p99_ms, 10.0);
        assert_eq!(before.max_ms, 10.0);
        assert_eq!(before.over_limit, 0);
        assert_eq!(during.max_ms, 120.0);
        assert_eq!(during.p50_ms, 80.0);
        assert_eq!(during.over_limit, 2);
        let at = during.worst_at_s.unwrap();
        assert!((at + 0.005).abs() < 1e-9, "{at}");
        assert_eq!(after.p999_ms, 2.0);
        let sp = spikes(&samples, &PHASES, 50.0);
        assert_eq!(sp.len(), 2);
        assert!((sp[0].at_s + 0.005).abs() < 1e-9 && sp[0].ms == 120.0);
        assert!((sp[1].at_s - 2.5).abs() < 1e-9 && sp[1].ms == 80.0);
    }

    #[test]
    fn metric_series_are_read_exactly() {
        let text = "# TYPE x counter\n\
            gatepulse_compaction_duration_seconds_bucket{le=\"0.5\"} 1\n\
            gatepulse_compaction_duration_seconds_count 3\n\
            gatepulse_retention_rows_deleted_total{kind=\"delivery\"} 7\n\
            gatepulse_retention_rows_deleted_total{kind=\"event\"} 65900\n";
        assert_eq!(
            metric_value(text, "gatepulse_compaction_duration_seconds_count"),
            3
        );
        assert_eq!(
            metric_value(
                text,
                "gatepulse_retention_rows_deleted_total{kind=\"event\"}"
            ),
            65_900
        );
        assert_eq!(metric_value(text, "gatepulse_missing"), 0);
    }

    #[test]
    fn quantiles_are_nearest_rank() {
        let v: Vec<f64> = (1..=1000).map(f64::from).collect();
        assert_eq!(quantile(&v, 0.5), 500.0);
        assert_eq!(quantile(&v, 0.99), 990.0);
        assert_eq!(quantile(&v, 0.999), 999.0);
        assert_eq!(quantile(&v, 1.0), 1000.0);
        assert_eq!(quantile(&[], 0.5), 0.0);
        assert_eq!(quantile(&[7.0], 0.999), 7.0);
    }

    #[test]
    fn progress_finds_the_full_length() {
        let p = Progress {
            partial: vec![
                (ms(50), 0),
                (ms(100), 4096),
                (ms(150), 8192),
                (ms(200), 8192),
            ],
            renamed: Some(ms(250)),
        };
        assert_eq!(p.full_at(8192), Some(ms(150)));
        assert_eq!(p.full_at(10_000), None);
    }

    #[test]
    fn completions_per_second() {
        let samples = [
            sample(1_000, Some(10)),
            sample(1_500, Some(600)),
            sample(2_999, None),
            sample(500, Some(1)),
        ];
        assert_eq!(per_second(&samples, ms(1_000), ms(3_000)), [1, 1]);
    }
}
