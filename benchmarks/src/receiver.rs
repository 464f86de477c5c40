//! The local webhook receiver: answers 204 (optionally after a delay), measures
//! publish → receipt latency from the `sent_us` the publisher put in the payload
//! (same machine, same clock) and counts every delivery by `webhook-id`.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Result;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use hdrhistogram::Histogram;

/// Microseconds since the Unix epoch (publisher and receiver share this clock).
pub fn now_us() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

/// A new latency histogram in microseconds (1 µs – 10 min, 3 significant digits).
pub fn new_histogram() -> Result<Histogram<u64>> {
    Ok(Histogram::<u64>::new_with_bounds(1, 600_000_000, 3)?)
}

/// Counts per second since a start instant (lock-free, fixed length).
#[derive(Debug)]
pub struct Timeline {
    base: Instant,
    /// Microseconds from `base` to the start (see [`Timeline::restart`]).
    offset_us: AtomicU64,
    buckets: Vec<AtomicU64>,
}

impl Timeline {
    pub fn new(seconds: usize) -> Timeline {
        Timeline {
            base: Instant::now(),
            offset_us: AtomicU64::new(0),
            buckets: (0..seconds).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    /// Starts counting from now (drops nothing: counts before this go to second 0).
    pub fn restart(&self) {
        self.offset_us
            .store(self.base.elapsed().as_micros() as u64, Ordering::Relaxed);
    }

    pub fn add(&self, n: u64) {
        let i = (self.elapsed().as_micros() / 1_000_000) as usize;
        if let Some(b) = self.buckets.get(i) {
            b.fetch_add(n, Ordering::Relaxed);
        }
    }

    /// The first `seconds` buckets.
    pub fn snapshot(&self, seconds: usize) -> Vec<u64> {
        self.buckets
            .iter()
            .take(seconds)
            .map(|b| b.load(Ordering::Relaxed))
            .collect()
    }

    pub fn elapsed(&self) -> Duration {
        self.base.elapsed().saturating_sub(Duration::from_micros(
            self.offset_us.load(Ordering::Relaxed),
        ))
    }
}

/// What one group of endpoints received.
#[derive(Debug)]
pub struct GroupRecv {
    pub hist: Histogram<u64>,
    pub seen: HashSet<String>,
    pub duplicates: u64,
    /// Requests during the measured window.
    pub measured: u64,
    /// The first body received in the measured window.
    pub sample: Option<Vec<u8>>,
}

/// Receiver state shared with the scenario.
#[derive(Debug)]
pub struct Receiver {
    pub groups: Vec<Mutex<GroupRecv>>,
    delays: Vec<Duration>,
    pub measuring: AtomicBool,
    /// Every request, all groups (for backlog control).
    pub total: AtomicU64,
    /// While set, every request is answered `503` and not counted: the endpoints
    /// are down.
    pub down: AtomicBool,
    pub timeline: Arc<Timeline>,
}

impl Receiver {
    /// One group per entry of `delays` (the time each group's endpoints take to answer).
    pub fn new(delays: Vec<Duration>, timeline: Arc<Timeline>) -> Result<Arc<Receiver>> {
        let groups = delays
            .iter()
            .map(|_| {
                Ok(Mutex::new(GroupRecv {
                    hist: new_histogram()?,
                    seen: HashSet::new(),
                    duplicates: 0,
                    measured: 0,
                    sample: None,
                }))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Arc::new(Receiver {
            groups,
            delays,
            measuring: AtomicBool::new(false),
            total: AtomicU64::new(0),
            down: AtomicBool::new(false),
            timeline,
        }))
    }

    /// Unique deliveries received by group `g`.
    pub fn unique(&self, g: usize) -> u64 {
        self.groups
            .get(g)
            .and_then(|m| m.lock().ok().map(|r| r.seen.len() as u64))
            .unwrap_or(0)
    }

    /// Serves `POST /hook/{group}/{n}` on a free local port; returns its base URL and
    /// a guard that stops the server when dropped.
    pub async fn serve(self: &Arc<Self>) -> Result<(String, ServeGuard)> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let app = axum::Router::new()
            .route("/hook/{group}/{n}", axum::routing::post(hook))
            .with_state(self.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok((format!("http://{addr}"), ServeGuard(task)))
    }
}

/// Stops the receiver's server (and its in-flight slow answers) when dropped.
#[derive(Debug)]
pub struct ServeGuard(tokio::task::JoinHandle<()>);

impl Drop for ServeGuard {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Extracts the `sent_us` number from a payload without parsing all of it.
pub fn sent_us(body: &[u8]) -> Option<u64> {
    std::str::from_utf8(body)
        .ok()?
        .split("\"sent_us\":")
        .nth(1)?
        .split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()
}

async fn hook(
    State(rx): State<Arc<Receiver>>,
    Path((group, _n)): Path<(usize, usize)>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    if rx.down.load(Ordering::Relaxed) {
        return StatusCode::SERVICE_UNAVAILABLE;
    }
    let now = now_us();
    rx.total.fetch_add(1, Ordering::Relaxed);
    rx.timeline.add(1);
    let measuring = rx.measuring.load(Ordering::Relaxed);
    let id = headers
        .get("webhook-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    if let Some(Ok(mut g)) = rx.groups.get(group).map(|m| m.lock()) {
        if !g.seen.insert(id) {
            g.duplicates += 1;
        }
        if measuring {
            g.measured += 1;
            if g.sample.is_none() {
                g.sample = Some(body.to_vec());
            }
            if let Some(sent) = sent_us(&body) {
                let _ = g.hist.record(now.saturating_sub(sent).max(1));
            }
        }
    }
    if let Some(d) = rx.delays.get(group)
        && !d.is_zero()
    {
        tokio::time::sleep(*d).await;
    }
    StatusCode::NO_CONTENT
}
