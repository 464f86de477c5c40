//! The `stream_fanout` scenario: many Server-Sent Events clients following one
//! tenant's stream (`GET /v1/stream`) while paced publishers post events, and the
//! fan-out latency of every (client, event) receipt.
//!
//! - **Clock**: [`now_ns`], nanoseconds since the first call in this process (a
//!   monotonic `Instant`). A publisher writes `sent_ns` into the payload just before
//!   it sends the publish; a client reads the clock once per body chunk it receives.
//!   Fan-out latency = receipt − publish start, so it includes the publish's own
//!   durable commit (publish → 202 is recorded separately).
//! - **Clients** share the harness's tokio runtime (as many workers as cores); each is
//!   one HTTP/1.1 connection read by [`SseConnection`] (a 64 KiB buffer, chunked
//!   decoding in place, no HTTP client library). The parser only splits lines
//!   (`memchr`) and reads `id:`, `event:` and the payload's leading `sent_ns`; it
//!   never parses the JSON. Per-client counters are
//!   plain atomics written by their own task; latencies go to sharded histograms.
//! - **Counting**: every client connects (and has received the stream's opening
//!   frame, so it is subscribed) before the first publish, so every client must see
//!   every accepted event: expected = clients × published. Cursors are dense and only
//!   our events are on the tenant's stream (no subscriptions, so no delivery
//!   statuses), so a client also sees gaps and repeats directly.
//! - **Server cost**: RSS from `/proc/<pid>/status` (`VmRSS`) sampled every 100 ms;
//!   CPU from `/proc/<pid>/stat` and per thread from `/proc/<pid>/task/*/stat` over the
//!   measured window, next to the harness's own CPU (the clients share the cores).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow};
use hdrhistogram::Histogram;

use crate::receiver::{Timeline, new_histogram};
use crate::sse_client::SseConnection;

/// What every client follows.
const STREAM_PATH: &str = "/v1/stream?topic=bench.%23";
use crate::report::{GroupResult, Latency, STREAM_GROUP, ScenarioResult, Status};
use crate::server::{Server, histogram_count, histogram_over, tenant_key_with};

/// One stream fan-out run.
#[derive(Debug, Clone)]
pub struct StreamSpec {
    /// Concurrent SSE connections, all on the same tenant and topic pattern.
    pub clients: usize,
    /// Events/s offered in total.
    pub rate: u64,
    /// Paced publishers sharing the rate (each `POST /v1/events`, one event per call).
    pub publishers: usize,
    pub payload_bytes: usize,
    pub warmup_secs: u64,
    pub seconds: u64,
    /// After the publishers stop, how long to wait for every client to catch up.
    pub drain_secs: u64,
}

impl StreamSpec {
    /// Publishers for a rate: one per 125 events/s (a publisher waits for its 202,
    /// ~1–2 ms, so each has room), at least 1, at most 32.
    pub fn publishers_for(rate: u64) -> usize {
        (rate.div_ceil(125) as usize).clamp(1, 32)
    }
}

/// Nanoseconds since this process first asked (monotonic; publishers and clients
/// share it).
pub fn now_ns() -> u64 {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    EPOCH.get_or_init(Instant::now).elapsed().as_nanos() as u64
}

// ---------------------------------------------------------------------------------
// The SSE parser.

/// What kind of frame the `event:` line said.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FrameKind {
    /// No `event:` line (the opening `retry:` frame, keepalive comments).
    #[default]
    Other,
    /// An event of the tenant (any other topic).
    Event,
    /// `gatepulse.disconnect`: the server dropped this client.
    Disconnect,
    /// `gatepulse.reset`: the cursor was out of reach.
    Reset,
}

/// One complete frame, reduced to what the benchmark needs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Frame {
    pub cursor: Option<u64>,
    pub kind: FrameKind,
    /// The payload's `sent_ns` (events only).
    pub sent_ns: Option<u64>,
    /// The data of a disconnect or reset frame.
    pub notice: Option<String>,
}

/// A streaming SSE line parser; chunks may split lines and frames anywhere.
#[derive(Debug, Default)]
pub struct SseParser {
    /// The unfinished last line of the previous chunk.
    partial: Vec<u8>,
    frame: Frame,
    /// Lines seen in the current frame (an empty frame is not dispatched).
    lines: usize,
}

const SENT_KEY: &[u8] = b"\"sent_ns\":";

fn parse_u64(digits: &[u8]) -> Option<u64> {
    let mut n: u64 = 0;
    let mut any = false;
    for &b in digits {
        if !b.is_ascii_digit() {
            break;
        }
        n = n.checked_mul(10)?.checked_add(u64::from(b - b'0'))?;
        any = true;
    }
    any.then_some(n)
}

/// The `sent_ns` of an event's data line: the server writes
/// `{"id":…,"topic":…,"cursor":…,"payload":{"sent_ns":…` and our payload starts with
/// it, so the second `{` is looked at first; anything else falls back to a search.
pub fn sent_ns(data: &[u8]) -> Option<u64> {
    if let Some(rest) = data.get(1..)
        && let Some(i) = memchr::memchr(b'{', rest)
        && let Some(after) = rest[i + 1..].strip_prefix(SENT_KEY)
    {
        return parse_u64(after);
    }
    let i = memchr::memmem::find(data, SENT_KEY)?;
    parse_u64(&data[i + SENT_KEY.len()..])
}

impl SseParser {
    /// Feeds one chunk; `on_frame` gets every frame it completes.
    pub fn feed(&mut self, mut chunk: &[u8], on_frame: &mut impl FnMut(Frame)) {
        while !chunk.is_empty() {
            let Some(end) = memchr::memchr(b'\n', chunk) else {
                self.partial.extend_from_slice(chunk);
                return;
            };
            if self.partial.is_empty() {
                self.line(&chunk[..end], on_frame);
            } else {
                let mut line = std::mem::take(&mut self.partial);
                line.extend_from_slice(&chunk[..end]);
                self.line(&line, on_frame);
                line.clear();
                self.partial = line;
            }
            chunk = &chunk[end + 1..];
        }
    }

    fn line(&mut self, line: &[u8], on_frame: &mut impl FnMut(Frame)) {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            if self.lines > 0 {
                self.lines = 0;
                on_frame(std::mem::take(&mut self.frame));
            }
            return;
        }
        self.lines += 1;
        if let Some(v) = line.strip_prefix(b"id: ") {
            self.frame.cursor = parse_u64(v);
        } else if let Some(v) = line.strip_prefix(b"event: ") {
            self.frame.kind = match v {
                b"gatepulse.disconnect" => FrameKind::Disconnect,
                b"gatepulse.reset" => FrameKind::Reset,
                _ => FrameKind::Event,
            };
        } else if let Some(v) = line.strip_prefix(b"data: ") {
            match self.frame.kind {
                FrameKind::Event if self.frame.sent_ns.is_none() => {
                    self.frame.sent_ns = sent_ns(v);
                }
                FrameKind::Disconnect | FrameKind::Reset => {
                    self.frame.notice = Some(String::from_utf8_lossy(v).into_owned());
                }
                _ => {}
            }
        }
        // `retry:` and `:` comments: nothing to keep.
    }
}

// ---------------------------------------------------------------------------------
// Clients.

/// One client's counters, written only by its own task (plain stores).
#[derive(Debug, Default)]
struct ClientState {
    connected: AtomicBool,
    /// Event frames received (warm-up included).
    received: AtomicU64,
    /// Event frames whose cursor was not above the previous one.
    duplicates: AtomicU64,
    /// Cursors skipped (a cursor above the previous one + 1).
    gaps: AtomicU64,
    disconnects: AtomicU64,
    resets: AtomicU64,
    /// Set when the stream ended or could not be opened.
    ended: Mutex<Option<String>>,
    notice: Mutex<Option<String>>,
}

impl ClientState {
    fn end(&self, why: String) {
        if let Ok(mut e) = self.ended.lock() {
            e.get_or_insert(why);
        }
    }

    fn ended(&self) -> bool {
        self.ended.lock().map(|e| e.is_some()).unwrap_or(true)
    }
}

const SHARDS: usize = 32;

struct Shared {
    /// Events whose `sent_ns` is at or after this count in the latency histogram.
    measure_from_ns: AtomicU64,
    /// Fan-out latency in µs, sharded by client to keep the locks uncontended.
    shards: Vec<Mutex<Histogram<u64>>>,
    /// Request start → the opening frame, µs.
    connect: Mutex<Histogram<u64>>,
    stop: AtomicBool,
    published: AtomicU64,
    publish_timeline: Arc<Timeline>,
}

async fn client(
    i: usize,
    base: Arc<str>,
    key: Arc<str>,
    st: Arc<ClientState>,
    shared: Arc<Shared>,
) {
    let t0 = Instant::now();
    let mut conn = match SseConnection::open(&base, STREAM_PATH, &key).await {
        Ok(c) => c,
        Err(e) => return st.end(format!("connect failed: {e:#}")),
    };
    let shard = &shared.shards[i % SHARDS];
    let mut parser = SseParser::default();
    let mut lat: Vec<u64> = Vec::with_capacity(16);
    let (mut received, mut dups, mut gaps, mut last) = (0u64, 0u64, 0u64, 0u64);
    let (mut disconnects, mut resets) = (0u64, 0u64);
    let mut frames = 0u64;
    let mut notice: Option<String> = None;
    loop {
        let read = conn
            .next(&mut |bytes| {
                let now = now_ns();
                let from = shared.measure_from_ns.load(Ordering::Relaxed);
                parser.feed(bytes, &mut |f: Frame| {
                    frames += 1;
                    match f.kind {
                        FrameKind::Event => {
                            if let Some(c) = f.cursor {
                                if c <= last {
                                    dups += 1;
                                    return;
                                }
                                gaps += c - last - 1;
                                last = c;
                            }
                            received += 1;
                            if let Some(s) = f.sent_ns
                                && s >= from
                            {
                                lat.push((now.saturating_sub(s) / 1000).max(1));
                            }
                        }
                        FrameKind::Disconnect => {
                            disconnects += 1;
                            notice = f.notice;
                        }
                        FrameKind::Reset => {
                            resets += 1;
                            notice = f.notice;
                        }
                        FrameKind::Other => {}
                    }
                });
            })
            .await;
        match read {
            Ok(true) => {}
            Ok(false) => break st.end("the server ended the stream".into()),
            Err(e) => break st.end(format!("stream read failed: {e:#}")),
        }
        if frames > 0 && !st.connected.load(Ordering::Relaxed) {
            if let Ok(mut h) = shared.connect.lock() {
                let _ = h.record((t0.elapsed().as_micros() as u64).max(1));
            }
            st.connected.store(true, Ordering::Release);
        }
        if !lat.is_empty() {
            if let Ok(mut h) = shard.lock() {
                for v in lat.drain(..) {
                    let _ = h.record(v);
                }
            }
            lat.clear();
        }
        st.received.store(received, Ordering::Relaxed);
        st.duplicates.store(dups, Ordering::Relaxed);
        st.gaps.store(gaps, Ordering::Relaxed);
        if disconnects + resets > 0 {
            st.disconnects.store(disconnects, Ordering::Relaxed);
            st.resets.store(resets, Ordering::Relaxed);
            if let Some(n) = notice.take()
                && let Ok(mut slot) = st.notice.lock()
            {
                *slot = Some(n);
            }
        }
    }
}

// ---------------------------------------------------------------------------------
// Publishers.

/// The event body: `sent_ns` first in the payload (see [`sent_ns`]).
fn event_json(w: usize, n: u64, filler: &str) -> String {
    format!(
        r#"{{"topic":"bench.stream","payload":{{"sent_ns":{},"w":{w},"n":{n},"data":"{filler}"}}}}"#,
        now_ns()
    )
}

/// Publishes in flight per publisher at most: past it the publisher waits (and the
/// offered rate is not met, which the result says).
const MAX_IN_FLIGHT: usize = 64;

/// An open-loop pacer: every `interval` (the first tick after `phase`) until `stop`,
/// starts `publish(n)` (n = 1, 2, …) as a task of its own, at most `max_in_flight` at
/// once, so a slow 202 does not lower the offered rate; then waits for the publishes
/// still in flight.
pub async fn open_loop<F, Fut>(
    interval: Duration,
    phase: Duration,
    max_in_flight: usize,
    stop: &AtomicBool,
    mut publish: F,
) -> Result<()>
where
    F: FnMut(u64) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let slots = Arc::new(tokio::sync::Semaphore::new(max_in_flight));
    let mut next = tokio::time::Instant::now() + phase;
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) {
        tokio::time::sleep_until(next).await;
        next += interval;
        let slot = slots.clone().acquire_owned().await?;
        n += 1;
        let task = publish(n);
        tokio::spawn(async move {
            task.await;
            drop(slot);
        });
    }
    let _all = slots.acquire_many(max_in_flight as u32).await?;
    Ok(())
}

/// `POST` one event; whether the server answered 202 (and its body arrived).
pub async fn publish_one(http: &reqwest::Client, url: &str, key: &str, body: String) -> bool {
    match http
        .post(url)
        .bearer_auth(key)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
    {
        Ok(r) if r.status().as_u16() == 202 => r.bytes().await.is_ok(),
        _ => false,
    }
}

/// One paced publisher: open loop (see [`open_loop`]).
async fn publisher(
    w: usize,
    spec: Arc<StreamSpec>,
    shared: Arc<Shared>,
    url: Arc<str>,
    key: Arc<str>,
) -> Result<(Histogram<u64>, u64)> {
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(MAX_IN_FLIGHT)
        .build()?;
    let hist = Arc::new(Mutex::new(new_histogram()?));
    let errors = Arc::new(AtomicU64::new(0));
    let filler: Arc<str> = "x".repeat(spec.payload_bytes.saturating_sub(60)).into();
    let iv = Duration::from_secs_f64(spec.publishers as f64 / spec.rate.max(1) as f64);
    let phase = iv.mul_f64(w as f64 / spec.publishers.max(1) as f64);
    open_loop(iv, phase, MAX_IN_FLIGHT, &shared.stop, |n| {
        let (http, url, key, shared, hist, errors, filler) = (
            http.clone(),
            url.clone(),
            key.clone(),
            shared.clone(),
            hist.clone(),
            errors.clone(),
            filler.clone(),
        );
        async move {
            let body = event_json(w, n, &filler);
            let measuring = shared.measure_from_ns.load(Ordering::Relaxed) != u64::MAX;
            let started = Instant::now();
            if publish_one(&http, &url, &key, body).await {
                if measuring && let Ok(mut h) = hist.lock() {
                    let _ = h.record((started.elapsed().as_micros() as u64).max(1));
                }
                shared.published.fetch_add(1, Ordering::Relaxed);
                shared.publish_timeline.add(1);
            } else {
                errors.fetch_add(1, Ordering::Relaxed);
            }
        }
    })
    .await?;
    let hist = hist.lock().map_err(|_| anyhow!("histogram lock"))?.clone();
    Ok((hist, errors.load(Ordering::Relaxed)))
}

// ---------------------------------------------------------------------------------
// The server process: RSS and CPU.

/// `VmRSS` of a process in MiB.
pub fn rss_mib(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kib: f64 = crate::machine::field(&status, "VmRSS")?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    Some(kib / 1024.0)
}

/// `(comm, utime, stime)` from a `/proc/.../stat` line.
fn stat_ticks(stat: &str) -> Option<(String, u64, u64)> {
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let comm = stat.get(open + 1..close)?.to_owned();
    // After ")": state(3) ppid … utime is field 14, stime 15 (1-based).
    let rest: Vec<&str> = stat.get(close + 2..)?.split_whitespace().collect();
    let utime: u64 = rest.get(11)?.parse().ok()?;
    let stime: u64 = rest.get(12)?.parse().ok()?;
    Some((comm, utime, stime))
}

/// A process's user and system CPU ticks.
pub(crate) fn process_ticks(pid: &str) -> Option<(u64, u64)> {
    stat_ticks(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?).map(|(_, u, s)| (u, s))
}

/// CPU ticks per thread name of a process.
pub(crate) fn thread_ticks(pid: u32) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    if let Ok(entries) = std::fs::read_dir(format!("/proc/{pid}/task")) {
        for e in entries.flatten() {
            if let Ok(s) = std::fs::read_to_string(e.path().join("stat"))
                && let Some((comm, u, st)) = stat_ticks(&s)
            {
                *out.entry(comm).or_insert(0) += u + st;
            }
        }
    }
    out
}

/// Machine-wide TCP counters from `/proc/net/netstat` (`TcpExt`).
pub fn tcp_counters(names: &[&str]) -> Vec<Option<u64>> {
    let text = std::fs::read_to_string("/proc/net/netstat").unwrap_or_default();
    let mut lines = text.lines().filter(|l| l.starts_with("TcpExt:"));
    let (Some(head), Some(vals)) = (lines.next(), lines.next()) else {
        return names.iter().map(|_| None).collect();
    };
    let pairs: BTreeMap<&str, u64> = head
        .split_whitespace()
        .zip(vals.split_whitespace())
        .skip(1)
        .filter_map(|(k, v)| Some((k, v.parse().ok()?)))
        .collect();
    names.iter().map(|n| pairs.get(n).copied()).collect()
}

const TCP_COUNTERS: [&str; 3] = ["ListenOverflows", "TCPSynRetrans", "SyncookiesSent"];

/// Busy and total jiffies of the whole machine (`/proc/stat`, first line).
fn machine_ticks() -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().next()?;
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    let total: u64 = v.iter().take(8).sum();
    let idle = v.get(3).copied().unwrap_or(0) + v.get(4).copied().unwrap_or(0);
    Some((total - idle, total))
}

pub(crate) fn clock_ticks_per_sec() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0)
}

/// CPU readings at one moment.
struct CpuSnapshot {
    at: Instant,
    server: Option<(u64, u64)>,
    bench: Option<(u64, u64)>,
    threads: BTreeMap<String, u64>,
    machine: Option<(u64, u64)>,
}

impl CpuSnapshot {
    fn take(pid: u32) -> CpuSnapshot {
        CpuSnapshot {
            at: Instant::now(),
            server: process_ticks(&pid.to_string()),
            bench: process_ticks("self"),
            threads: thread_ticks(pid),
            machine: machine_ticks(),
        }
    }
}

/// Event frames received by all clients so far.
fn received_total(states: &[Arc<ClientState>]) -> u64 {
    states
        .iter()
        .map(|s| s.received.load(Ordering::Relaxed))
        .sum()
}

/// Lines of the server's `/metrics` that start with `prefix` (no comments).
fn metric_lines(metrics: &str, prefix: &str) -> Vec<String> {
    metrics
        .lines()
        .filter(|l| l.starts_with(prefix))
        .map(str::to_owned)
        .collect()
}

/// Percentile `q` of a histogram in ms.
fn q_ms(h: &Histogram<u64>, q: f64) -> f64 {
    h.value_at_quantile(q) as f64 / 1000.0
}

fn round3(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

fn round1(v: f64) -> f64 {
    (v * 10.0).round() / 10.0
}

/// Runs the scenario: `gp` on a fresh store, the clients, the publishers.
pub async fn run_stream(
    gp: &std::path::Path,
    name: &str,
    description: &str,
    spec: StreamSpec,
) -> Result<ScenarioResult> {
    now_ns();
    let server = Server::start(gp).await?;
    let pid = server.pid().context("server pid")?;
    let http = reqwest::Client::new();
    let key: Arc<str> = tenant_key_with(
        &http,
        &server.base,
        "bench-stream",
        &["events:write", "events:read"],
    )
    .await?
    .into();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let rss_idle = rss_mib(pid).unwrap_or(0.0);
    let secs = (spec.warmup_secs + spec.seconds + spec.drain_secs + 5) as usize;
    let shared = Arc::new(Shared {
        measure_from_ns: AtomicU64::new(u64::MAX),
        shards: (0..SHARDS)
            .map(|_| new_histogram().map(Mutex::new))
            .collect::<Result<_>>()?,
        connect: Mutex::new(new_histogram()?),
        stop: AtomicBool::new(false),
        published: AtomicU64::new(0),
        publish_timeline: Arc::new(Timeline::new(secs)),
    });

    // RSS sampler (every 100 ms, for the whole run).
    let sampling = Arc::new(AtomicBool::new(true));
    let rss_samples: Arc<Mutex<Vec<(Instant, f64)>>> = Arc::default();
    let sampler = {
        let (sampling, samples) = (sampling.clone(), rss_samples.clone());
        tokio::spawn(async move {
            while sampling.load(Ordering::Relaxed) {
                if let Some(r) = rss_mib(pid)
                    && let Ok(mut v) = samples.lock()
                {
                    v.push((Instant::now(), r));
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    };

    // Connect every client, all at once.
    let base: Arc<str> = server.base.as_str().into();
    let states: Vec<Arc<ClientState>> = (0..spec.clients)
        .map(|_| Arc::new(ClientState::default()))
        .collect();
    let tcp_before = tcp_counters(&TCP_COUNTERS);
    let connect_started = Instant::now();
    let tasks: Vec<_> = states
        .iter()
        .enumerate()
        .map(|(i, st)| {
            tokio::spawn(client(
                i,
                base.clone(),
                key.clone(),
                st.clone(),
                shared.clone(),
            ))
        })
        .collect();
    let connect_deadline = connect_started + Duration::from_secs(120);
    let mut connected;
    loop {
        connected = states
            .iter()
            .filter(|s| s.connected.load(Ordering::Acquire))
            .count();
        let failed = states
            .iter()
            .filter(|s| !s.connected.load(Ordering::Acquire) && s.ended())
            .count();
        if connected + failed >= spec.clients || Instant::now() > connect_deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let connect_all = connect_started.elapsed();
    let tcp_after = tcp_counters(&TCP_COUNTERS);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let rss_connected = rss_mib(pid).unwrap_or(0.0);

    // Publish: warm-up, then the measured window.
    let spec = Arc::new(spec);
    shared.publish_timeline.restart();
    let publish_url: Arc<str> = format!("{}/v1/events", server.base).into();
    let mut workers = Vec::new();
    for w in 0..spec.publishers {
        workers.push(tokio::spawn(publisher(
            w,
            spec.clone(),
            shared.clone(),
            publish_url.clone(),
            key.clone(),
        )));
    }
    // Receipts per second, on their own task so that nothing here delays a sample.
    let publish_started = Instant::now();
    let counting = Arc::new(AtomicBool::new(true));
    let timeline_task = {
        let (states, counting) = (states.clone(), counting.clone());
        tokio::spawn(async move {
            let (mut out, mut last, mut k) = (Vec::new(), 0u64, 1u64);
            while counting.load(Ordering::Relaxed) {
                let at = publish_started + Duration::from_secs(k);
                tokio::time::sleep_until(at.into()).await;
                let t = received_total(&states);
                out.push(t.saturating_sub(last));
                last = t;
                k += 1;
            }
            out
        })
    };
    let warm_end = publish_started + Duration::from_secs(spec.warmup_secs);
    let measure_end = warm_end + Duration::from_secs(spec.seconds);
    let mut window: Option<(Instant, u64, u64, CpuSnapshot)> = None;
    let mut window_end: Option<(f64, u64, u64, CpuSnapshot)> = None;
    loop {
        let now = Instant::now();
        if window.is_none() && now >= warm_end {
            shared.measure_from_ns.store(now_ns(), Ordering::Relaxed);
            window = Some((
                now,
                shared.published.load(Ordering::Relaxed),
                received_total(&states),
                CpuSnapshot::take(pid),
            ));
        }
        if window_end.is_none()
            && now >= measure_end
            && let Some((start, ..)) = &window
        {
            window_end = Some((
                start.elapsed().as_secs_f64(),
                shared.published.load(Ordering::Relaxed),
                received_total(&states),
                CpuSnapshot::take(pid),
            ));
            shared.stop.store(true, Ordering::Relaxed);
            break;
        }
        let next = if window.is_none() {
            warm_end
        } else {
            measure_end
        };
        tokio::time::sleep_until(next.into()).await;
    }
    let mut publish_hist = new_histogram()?;
    let mut publish_errors = 0;
    for w in workers {
        let (h, e) = w.await??;
        publish_hist.add(h)?;
        publish_errors += e;
    }
    let published = shared.published.load(Ordering::Relaxed);
    // Drain: every live client catches up with every accepted event.
    let drain_started = Instant::now();
    let deadline = drain_started + Duration::from_secs(spec.drain_secs);
    loop {
        let behind = states.iter().any(|s| {
            s.connected.load(Ordering::Relaxed)
                && !s.ended()
                && s.received.load(Ordering::Relaxed) < published
        });
        if !behind || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let drain_secs = drain_started.elapsed().as_secs_f64();
    counting.store(false, Ordering::Relaxed);
    let receipt_timeline = timeline_task.await?;
    let rss_end = rss_mib(pid).unwrap_or(0.0);
    let metrics = server.metrics().await.unwrap_or_default();
    for t in &tasks {
        t.abort();
    }
    for t in tasks {
        let _ = t.await;
    }
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let rss_after = rss_mib(pid).unwrap_or(0.0);
    sampling.store(false, Ordering::Relaxed);
    let _ = sampler.await;
    let rss_samples = rss_samples.lock().map_err(|_| anyhow!("rss lock"))?.clone();
    let rss_peak = rss_samples.iter().fold(rss_idle, |a, (_, r)| a.max(*r));
    // The highest sample of each second since publishing started.
    let mut rss_per_sec: Vec<f64> = Vec::new();
    for (at, r) in &rss_samples {
        if let Some(d) = at.checked_duration_since(publish_started) {
            let i = d.as_secs() as usize;
            if rss_per_sec.len() <= i {
                rss_per_sec.resize(i + 1, 0.0);
            }
            rss_per_sec[i] = rss_per_sec[i].max(*r);
        }
    }
    drop(server);

    // Gather.
    let mut hist = new_histogram()?;
    for s in &shared.shards {
        hist.add(&*s.lock().map_err(|_| anyhow!("histogram lock"))?)?;
    }
    let connect = shared
        .connect
        .lock()
        .map_err(|_| anyhow!("histogram lock"))?
        .clone();
    let live: Vec<&Arc<ClientState>> = states
        .iter()
        .filter(|s| s.connected.load(Ordering::Relaxed))
        .collect();
    let sum = |f: fn(&ClientState) -> u64| -> u64 { live.iter().map(|s| f(s)).sum() };
    let received = sum(|s| s.received.load(Ordering::Relaxed));
    let duplicates = sum(|s| s.duplicates.load(Ordering::Relaxed));
    let gaps = sum(|s| s.gaps.load(Ordering::Relaxed));
    let disconnects = sum(|s| s.disconnects.load(Ordering::Relaxed));
    let resets = sum(|s| s.resets.load(Ordering::Relaxed));
    let expected = connected as u64 * published;
    let mut ended: BTreeMap<String, usize> = BTreeMap::new();
    for s in &states {
        if let Ok(e) = s.ended.lock()
            && let Some(why) = e.as_ref()
        {
            let why = if s.connected.load(Ordering::Relaxed) {
                format!("ended early: {why}")
            } else {
                format!("never connected: {why}")
            };
            *ended.entry(why).or_insert(0) += 1;
        }
    }
    let notice = states
        .iter()
        .find_map(|s| s.notice.lock().ok().and_then(|n| n.clone()));
    let clients_behind = live
        .iter()
        .filter(|s| s.received.load(Ordering::Relaxed) < published)
        .count();

    let (_, p0, r0, cpu0) = window.context("the measured window never started")?;
    let (elapsed, p1, r1, cpu1) = window_end.context("the measured window never ended")?;
    let tck = clock_ticks_per_sec();
    let cpu_secs = cpu1.at.duration_since(cpu0.at).as_secs_f64().max(1e-9);
    let pct = |a: u64, b: u64| round1(b.saturating_sub(a) as f64 / tck / cpu_secs * 100.0);

    let mut out = ScenarioResult::new(name, description, Status::Ok);
    out.concurrency = spec.publishers;
    out.rate = Some(spec.rate);
    out.batch = 1;
    out.fanout = spec.clients;
    out.payload_bytes = spec.payload_bytes;
    out.seconds = spec.seconds;
    out.published = published;
    out.publish_errors = publish_errors;
    out.publishes_per_sec = (p1 - p0) as f64 / elapsed;
    out.deliveries_per_sec = Some((r1 - r0) as f64 / elapsed);
    out.publish_latency = Latency::from_histogram(&publish_hist);
    out.delivery_latency = Latency::from_histogram(&hist);
    out.groups.push(GroupResult {
        name: STREAM_GROUP.into(),
        endpoints: spec.clients,
        delay_ms: 0,
        max_in_flight: 0,
        enabled: true,
        drained: true,
        expected,
        received,
        missing: expected.saturating_sub(received),
        unexpected: received.saturating_sub(expected),
        duplicates,
        latency: out.delivery_latency,
    });
    let run_secs = shared.publish_timeline.elapsed().as_secs() as usize;
    out.publish_timeline = shared.publish_timeline.snapshot(run_secs);
    out.delivery_timeline = receipt_timeline;

    let m = &mut out.metrics;
    m.insert("clients".into(), spec.clients as f64);
    m.insert("clients connected".into(), connected as f64);
    m.insert(
        "connect: all clients s".into(),
        round3(connect_all.as_secs_f64()),
    );
    if !connect.is_empty() {
        m.insert("connect p50 ms".into(), round3(q_ms(&connect, 0.5)));
        m.insert("connect p99 ms".into(), round3(q_ms(&connect, 0.99)));
        m.insert(
            "connect max ms".into(),
            round3(connect.max() as f64 / 1000.0),
        );
    }
    if !hist.is_empty() {
        for (label, q) in [("p50", 0.5), ("p90", 0.9), ("p99", 0.99), ("p99.9", 0.999)] {
            m.insert(format!("fan-out {label} ms"), round3(q_ms(&hist, q)));
        }
        m.insert("fan-out max ms".into(), round3(hist.max() as f64 / 1000.0));
        m.insert("fan-out mean ms".into(), round3(hist.mean() / 1000.0));
    }
    m.insert("receipts measured".into(), hist.len() as f64);
    m.insert("receipts expected".into(), expected as f64);
    m.insert("receipts received".into(), received as f64);
    m.insert(
        "receipts missing".into(),
        expected.saturating_sub(received) as f64,
    );
    for ((name, a), b) in TCP_COUNTERS.iter().zip(&tcp_before).zip(&tcp_after) {
        if let (Some(a), Some(b)) = (a, b) {
            m.insert(
                format!("connect: TCP {name} (machine-wide)"),
                b.saturating_sub(*a) as f64,
            );
        }
    }
    m.insert("cursor gaps seen".into(), gaps as f64);
    m.insert("gatepulse.disconnect frames".into(), disconnects as f64);
    m.insert("gatepulse.reset frames".into(), resets as f64);
    m.insert(
        "streams ended early or failed".into(),
        ended.values().sum::<usize>() as f64,
    );
    m.insert("drain s".into(), round3(drain_secs));
    m.insert("server RSS MiB, idle".into(), round1(rss_idle));
    m.insert(
        "server RSS MiB, clients connected".into(),
        round1(rss_connected),
    );
    m.insert("server RSS MiB, peak".into(), round1(rss_peak));
    m.insert("server RSS MiB, end".into(), round1(rss_end));
    m.insert(
        "server RSS MiB, 1 s after clients left".into(),
        round1(rss_after),
    );
    for (who, a, b) in [
        ("server", cpu0.server, cpu1.server),
        ("harness", cpu0.bench, cpu1.bench),
    ] {
        if let (Some((u0, s0)), Some((u1, s1))) = (a, b) {
            m.insert(format!("{who} CPU % (of one core)"), pct(u0 + s0, u1 + s1));
            m.insert(format!("{who} CPU % user"), pct(u0, u1));
            m.insert(format!("{who} CPU % system"), pct(s0, s1));
        }
    }
    if let (Some((b0, t0)), Some((b1, t1))) = (cpu0.machine, cpu1.machine)
        && t1 > t0
    {
        m.insert(
            "machine CPU busy %".into(),
            round1((b1 - b0) as f64 / (t1 - t0) as f64 * 100.0),
        );
    }

    let n = &mut out.notes;
    n.push(format!(
        "{} SSE clients on one tenant (`GET /v1/stream?topic=bench.%23`, live only), {} paced publishers at {} events/s in total, one event per `POST /v1/events`, {}-byte payloads; fan-out latency is the publisher's `sent_ns` (taken just before it sends the publish, so it includes the publish's durable commit) to the client's receipt of the chunk, over every (client, event) receipt of events published in the measured window; deliveries/s here are receipts/s",
        spec.clients, spec.publishers, spec.rate, spec.payload_bytes
    ));
    n.push("the clients run in the harness process (same tokio runtime, one lean HTTP/1.1 connection each (`sse_client.rs`), a line parser that reads only `id:`, `event:` and the payload's `sent_ns`) and share the machine's cores with the server: see the CPU numbers".into());
    if publish_errors > 0 {
        n.push(format!("{publish_errors} publishes failed or were refused"));
    }
    if spec.rate > 0 && out.publishes_per_sec < spec.rate as f64 * 0.95 {
        n.push(format!(
            "offered {} events/s but only {:.0}/s were published",
            spec.rate, out.publishes_per_sec
        ));
    }
    if let Some(p) = out.publish_latency {
        n.push(format!(
            "publish → 202: p50 {:.2} ms, p95 {:.2} ms, p99 {:.2} ms, max {:.1} ms",
            p.p50_ms, p.p95_ms, p.p99_ms, p.max_ms
        ));
    }
    if expected > received {
        n.push(format!(
            "**{} of {} receipts missing** ({} clients had not received every event when the {} s drain ended)",
            expected - received,
            expected,
            clients_behind,
            spec.drain_secs
        ));
    }
    for (why, count) in &ended {
        n.push(format!("**{count} clients {why}**"));
    }
    if let Some(text) = notice {
        n.push(format!("a disconnect/reset notice: `{text}`"));
    }
    if connected < spec.clients {
        n.push(format!(
            "**only {connected} of {} clients connected**",
            spec.clients
        ));
    }
    let threads: Vec<String> = {
        let mut v: Vec<(String, f64)> = cpu1
            .threads
            .iter()
            .map(|(k, b)| {
                let a = cpu0.threads.get(k).copied().unwrap_or(0);
                (
                    k.clone(),
                    b.saturating_sub(a) as f64 / tck / cpu_secs * 100.0,
                )
            })
            .filter(|(_, p)| *p >= 0.5)
            .collect();
        v.sort_by(|a, b| b.1.total_cmp(&a.1));
        v.into_iter()
            .map(|(k, p)| format!("`{k}` {p:.0} %"))
            .collect()
    };
    if !threads.is_empty() {
        n.push(format!(
            "server CPU by thread name over the measured window (% of one core): {}",
            threads.join(", ")
        ));
    }
    if !rss_per_sec.is_empty() {
        n.push(format!(
            "server RSS MiB, each second from the first publish (warm-up {} s, then {} s measured, then the drain): {}",
            spec.warmup_secs,
            spec.seconds,
            rss_per_sec
                .iter()
                .map(|r| format!("{r:.0}"))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    // A publish waits for its durable commit, so a slow disk flush delays every event
    // committed behind it, whatever the stream does: say how many there were.
    let commits = "gatepulse_store_commit_duration_seconds";
    let over = |le| histogram_over(&metrics, commits, le).unwrap_or(0);
    if let Some(total) = histogram_count(&metrics, commits) {
        n.push(format!(
            "store commits over the whole run (`{commits}`): {total}, of which over 25 ms: {}, \
             over 50 ms: {}, over 100 ms: {} (each delays the events committed with it and behind it)",
            over("0.025"),
            over("0.05"),
            over("0.1"),
        ));
    }
    let stream_metrics = metric_lines(&metrics, "gatepulse_stream_");
    if !stream_metrics.is_empty() {
        n.push(format!(
            "server stream metrics at the end: {}",
            stream_metrics
                .iter()
                .map(|l| format!("`{l}`"))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(chunks: &[&[u8]]) -> Vec<Frame> {
        let mut p = SseParser::default();
        let mut out = Vec::new();
        for c in chunks {
            p.feed(c, &mut |f| out.push(f));
        }
        out
    }

    const EVENT: &[u8] = b"id: 7\nevent: bench.stream\ndata: {\"id\":\"evt_1\",\"topic\":\"bench.stream\",\"cursor\":7,\"payload\":{\"sent_ns\":123456,\"w\":0,\"n\":1,\"data\":\"xx\"},\"idempotency_key\":null,\"created_at\":\"2026-01-01T00:00:00Z\"}\n\n";

    #[test]
    fn parses_events_in_one_chunk() {
        let hello: &[u8] = b"retry: 2100\n: gatepulse stream\n\n";
        let f = frames(&[hello, EVENT]);
        assert_eq!(f.len(), 2);
        assert_eq!(f[0].kind, FrameKind::Other);
        assert_eq!(
            f[1],
            Frame {
                cursor: Some(7),
                kind: FrameKind::Event,
                sent_ns: Some(123_456),
                notice: None,
            }
        );
    }

    #[test]
    fn frames_split_anywhere_and_joined() {
        let whole = frames(&[EVENT, EVENT]);
        for cut in 0..EVENT.len() {
            let two = [EVENT, EVENT].concat();
            let (a, b) = two.split_at(cut + 3);
            assert_eq!(frames(&[a, b]), whole, "cut at {cut}");
        }
        let bytes: Vec<&[u8]> = EVENT.chunks(1).collect();
        assert_eq!(frames(&bytes), frames(&[EVENT]));
    }

    #[test]
    fn notices_and_fallback_search() {
        let f = frames(&[
            b"event: gatepulse.disconnect\ndata: {\"reason\":\"slow_client\",\"last_event_id\":9}\n\n",
            b": keepalive\n\n",
            b"id: 3\nevent: x\ndata: {\"a\":{\"b\":1},\"payload\":{\"q\":1,\"sent_ns\":42}}\r\n\r\n",
        ]);
        assert_eq!(f.len(), 3);
        assert_eq!(f[0].kind, FrameKind::Disconnect);
        assert!(f[0].notice.as_deref().unwrap().contains("slow_client"));
        assert_eq!(f[1].kind, FrameKind::Other);
        assert_eq!(f[2].sent_ns, Some(42));
        assert_eq!(f[2].cursor, Some(3));
    }

    #[test]
    fn proc_stat_fields() {
        let line = "1234 (tokio-runtime-w) S 1 2 3 4 5 6 7 8 9 10 150 25 0 0 20 0 4";
        assert_eq!(stat_ticks(line), Some(("tokio-runtime-w".into(), 150, 25)));
        let odd = "1 (a) b (c)) R 1 2 3 4 5 6 7 8 9 10 1 2 0";
        assert_eq!(stat_ticks(odd), Some(("a) b (c)".into(), 1, 2)));
        assert!(rss_mib(std::process::id()).unwrap() > 0.0);
        assert!(tcp_counters(&["ListenOverflows"])[0].is_some());
    }
}
