//! Delivery: lease due deliveries, send them, record what happened.
//!
//! One engine task owns the scheduling state. Each endpoint has a *lane* (in-flight
//! count, `max_in_flight`, token-bucket rate limit, circuit breaker). Endpoints with
//! due work wait in a round-robin ready queue; each turn leases at most the lane's free
//! capacity from that endpoint's own queue in the store (`Store::claim_due`), so a
//! slow, failing or black-holed endpoint only ever occupies its own lane and never
//! delays another endpoint's deliveries. Sends run as separate tasks on one pooled
//! HTTP client; each writes its attempt and the delivery's next state
//! (`Store::record_outcome`) and reports back to the engine.
//!
//! Wake-ups: the store announces endpoints with new queued work after each commit
//! ([`QueueSignal`]), retries wait on timers, and a reaper returns expired leases.
//! At start every lease left by a previous run of this node is returned to the queue
//! (one node per store file), so a `kill -9` loses nothing: delivery is at least once.

pub mod circuit;
pub mod client;
pub mod retry;
pub mod signing;

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use serde::Serialize;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

use crate::clock::now_ms;
use crate::config::Config;
use crate::crypto::SecretBox;
use crate::ids::{AttemptId, EndpointId, TenantId};
use crate::ingest::Ingest;
use crate::pipeline::{OnError, Pipelines, StageFailure, Transformed};
use crate::store::{
    Attempt, Claim, Claimed, Endpoint, EndpointKind, NextState, Outcome, QueueSignal,
    RECORD_VERSION, Store,
};
use crate::{destination, telemetry};
use circuit::{Breaker, BreakerConfig, CircuitState, Permit};
use retry::{AttemptResult, RetryPolicy, Verdict};
use signing::Signer;

/// How long a lease outlives the endpoint's timeout before the reaper may reclaim it.
const LEASE_MARGIN_MS: i64 = 60_000;
/// How long an endpoint's settings are cached before they are read again.
const RUNTIME_TTL: Duration = Duration::from_secs(1);
/// Outcomes kept per endpoint for the health success rate.
const HEALTH_WINDOW: usize = 100;

/// What the API may ask of the running engine.
#[derive(Debug, Clone)]
pub struct DispatchHandle {
    shared: Arc<Shared>,
    signal: Arc<QueueSignal>,
}

#[derive(Debug, Default)]
struct Shared {
    health: Mutex<HashMap<EndpointId, Health>>,
    /// Endpoints whose settings changed through the API: their cached settings are
    /// dropped before the next claim (secret rotation, URL, headers, enabling).
    changed: Mutex<HashSet<EndpointId>>,
}

/// An endpoint's delivery health as the engine sees it.
#[derive(Debug, Clone, Default, Serialize, utoipa::ToSchema)]
pub struct Health {
    /// `closed`, `open` or `half_open`.
    pub circuit: &'static str,
    pub consecutive_failures: u32,
    /// Share of the last (up to) 100 attempts that succeeded; `null` before any.
    pub success_rate: Option<f64>,
    pub recent_attempts: usize,
    pub last_status_code: Option<u16>,
    pub last_error: Option<String>,
    #[serde(skip)]
    pub last_attempt_at: Option<i64>,
    pub in_flight: u32,
    #[serde(skip)]
    recent: VecDeque<bool>,
}

impl DispatchHandle {
    /// Health of one endpoint; defaults when it was never attempted.
    pub fn health(&self, endpoint: &EndpointId) -> Health {
        self.shared
            .health
            .lock()
            .ok()
            .and_then(|h| h.get(endpoint).cloned())
            .unwrap_or_else(|| Health {
                circuit: CircuitState::Closed.as_str(),
                ..Health::default()
            })
    }

    /// Tells the engine an endpoint's settings changed: the next attempt uses the new
    /// ones (a rotated secret signs at once), and its queue is looked at again.
    pub fn endpoint_changed(&self, tenant: TenantId, endpoint: EndpointId) {
        if let Ok(mut changed) = self.shared.changed.lock() {
            changed.insert(endpoint.clone());
        }
        self.signal.announce([(tenant, endpoint)]);
    }
}

/// Settings the engine needs, from `[delivery]`.
#[derive(Debug, Clone)]
struct Settings {
    allow_private: bool,
    default_timeout: Duration,
    default_policy: RetryPolicy,
    default_max_in_flight: u32,
    max_in_flight_global: usize,
    breaker: BreakerConfig,
    auto_disable_after_ms: i64,
    excerpt_bytes: usize,
    claim_batch: usize,
    reaper_interval: Duration,
    grace: Duration,
}

impl Settings {
    fn from_config(c: &Config) -> Self {
        let d = &c.delivery;
        Self {
            allow_private: d.allow_private_destinations,
            default_timeout: Duration::from_millis(d.default_timeout_ms),
            default_policy: RetryPolicy {
                schedule_secs: d.retry_schedule_secs.clone(),
                jitter: d.retry_jitter,
                max_retry_after: Duration::from_secs(d.max_retry_after_secs),
            },
            default_max_in_flight: d.default_max_in_flight,
            max_in_flight_global: d.max_in_flight_global,
            breaker: BreakerConfig {
                threshold: d.circuit_failure_threshold,
                cooldown_ms: (d.circuit_cooldown_secs as i64).saturating_mul(1000),
                max_cooldown_ms: (d.circuit_max_cooldown_secs as i64).saturating_mul(1000),
            },
            auto_disable_after_ms: (d.auto_disable_after_secs as i64).saturating_mul(1000),
            excerpt_bytes: d.response_excerpt_bytes,
            claim_batch: d.claim_batch,
            reaper_interval: Duration::from_secs(d.reaper_interval_secs),
            grace: c.shutdown_grace(),
        }
    }
}

/// Everything a send task needs, shared.
#[derive(Debug)]
struct Ctx {
    store: Arc<dyn Store>,
    secrets: Arc<dyn SecretBox>,
    ingest: Arc<Ingest>,
    pipelines: Arc<Pipelines>,
    client: reqwest::Client,
    settings: Settings,
    node: String,
    done: mpsc::UnboundedSender<Done>,
}

/// An endpoint's settings prepared for sending.
#[derive(Debug)]
struct Runtime {
    endpoint: Endpoint,
    url: Result<reqwest::Url, String>,
    signer: Result<Signer, String>,
    headers: HeaderMap,
    timeout: Duration,
    max_in_flight: u32,
    policy: RetryPolicy,
}

impl Runtime {
    fn build(endpoint: Endpoint, ctx: &Ctx, now: i64) -> Self {
        let s = &ctx.settings;
        let url = match &endpoint.url {
            Some(u) => {
                destination::validate_url(u, s.allow_private).map_err(|e| format!("url {e}"))
            }
            None => Err("endpoint has no url".to_owned()),
        };
        // Current secret first, then rotated-out ones still in their grace period.
        let secrets: Result<Vec<String>, String> = endpoint
            .secrets
            .iter()
            .filter(|sec| sec.expires_at.is_none_or(|t| t > now))
            .map(|sec| {
                use base64::Engine;
                let sealed = base64::engine::general_purpose::STANDARD
                    .decode(&sec.sealed)
                    .map_err(|e| e.to_string())?;
                let plain = ctx.secrets.open(&sealed).map_err(|e| e.to_string())?;
                String::from_utf8(plain).map_err(|e| e.to_string())
            })
            .collect();
        let signer = secrets.and_then(|list| {
            Signer::new(list.iter().map(String::as_str)).map_err(|e| e.to_string())
        });
        let mut headers = HeaderMap::new();
        for (k, v) in &endpoint.headers {
            if let (Ok(name), Ok(value)) = (
                HeaderName::from_bytes(k.as_bytes()),
                HeaderValue::from_str(v),
            ) {
                headers.insert(name, value);
            }
        }
        Self {
            url,
            signer,
            headers,
            timeout: endpoint
                .timeout_ms
                .map_or(s.default_timeout, Duration::from_millis),
            max_in_flight: endpoint
                .max_in_flight
                .unwrap_or(s.default_max_in_flight)
                .max(1),
            policy: match &endpoint.retry_schedule_secs {
                Some(schedule) => RetryPolicy {
                    schedule_secs: schedule.clone(),
                    ..s.default_policy.clone()
                },
                None => s.default_policy.clone(),
            },
            endpoint,
        }
    }

    /// Disabled endpoints wait; enabled ones send (or, inboxes, capture).
    fn sends(&self) -> bool {
        self.endpoint.enabled
    }
}

/// A token bucket for `rate_limit_per_sec`.
#[derive(Debug, Clone)]
struct Bucket {
    rate: f64,
    tokens: f64,
    at: i64,
}

impl Bucket {
    fn new(rate: u32, now: i64) -> Self {
        Self {
            rate: f64::from(rate),
            tokens: f64::from(rate).max(1.0),
            at: now,
        }
    }

    fn refill(&mut self, now: i64) {
        let elapsed = (now - self.at).max(0) as f64 / 1000.0;
        self.tokens = (self.tokens + elapsed * self.rate).min(self.rate.max(1.0));
        self.at = now;
    }

    /// Whole tokens available now.
    fn available(&mut self, now: i64) -> usize {
        self.refill(now);
        self.tokens.floor().max(0.0) as usize
    }

    fn take(&mut self, n: usize) {
        self.tokens -= n as f64;
    }

    /// When the next whole token exists.
    fn next_token_at(&self) -> i64 {
        let missing = (1.0 - self.tokens).max(0.0);
        self.at + (missing / self.rate * 1000.0).ceil() as i64
    }
}

#[derive(Debug)]
struct Lane {
    runtime: Option<Arc<Runtime>>,
    loaded_at: Option<Instant>,
    in_flight: u32,
    claiming: bool,
    breaker: Breaker,
    bucket: Option<Bucket>,
    disabling: bool,
    /// More deliveries may be due than the last claim took (it was full, or the
    /// store announced new work): a freed slot should trigger another claim. When
    /// false, only an announcement or the next-due timer brings the lane back.
    backlog: bool,
}

/// A send task's report.
#[derive(Debug)]
struct Done {
    tenant: TenantId,
    endpoint: EndpointId,
    /// `None` when nothing was attempted (the task was cut short).
    success: Option<bool>,
    status: Option<u16>,
    error: Option<String>,
    at: i64,
    disable: Option<String>,
    /// The delivery was rescheduled for this time (Unix ms): the lane must wake then.
    retry_at: Option<i64>,
}

/// The result of one claim task.
struct ClaimResult {
    tenant: TenantId,
    endpoint: EndpointId,
    runtime: Option<Arc<Runtime>>,
    /// Runtime was (re)loaded by this claim.
    reloaded: bool,
    claimed: Vec<Claimed>,
    limit: usize,
    next_due: Option<i64>,
    error: Option<String>,
}

/// Starts the engine. It stops when `shutdown` turns true, after in-flight sends finish
/// (bounded by `shutdown_grace_secs`).
pub fn start(
    config: &Config,
    store: Arc<dyn Store>,
    secrets: Arc<dyn SecretBox>,
    ingest: Arc<Ingest>,
    pipelines: Arc<Pipelines>,
    shutdown: watch::Receiver<bool>,
) -> Result<(DispatchHandle, tokio::task::JoinHandle<()>), reqwest::Error> {
    let settings = Settings::from_config(config);
    let client = client::build(settings.allow_private, 64)?;
    let (done_tx, done_rx) = mpsc::unbounded_channel();
    let signal = store.queue_signal();
    let shared = Arc::new(Shared::default());
    let ctx = Arc::new(Ctx {
        store,
        secrets,
        ingest,
        pipelines,
        client,
        settings,
        node: format!("node-{:08x}", rand::random::<u32>()),
        done: done_tx,
    });
    let engine = Engine {
        ctx,
        shared: shared.clone(),
        signal: signal.clone(),
        lanes: HashMap::new(),
        ready: VecDeque::new(),
        in_ready: HashSet::new(),
        timers: BTreeMap::new(),
        timer_of: HashMap::new(),
        in_flight_total: 0,
        claims: JoinSet::new(),
    };
    let task = tokio::spawn(engine.run(done_rx, shutdown));
    Ok((DispatchHandle { shared, signal }, task))
}

struct Engine {
    ctx: Arc<Ctx>,
    shared: Arc<Shared>,
    signal: Arc<QueueSignal>,
    lanes: HashMap<EndpointId, Lane>,
    ready: VecDeque<(TenantId, EndpointId)>,
    in_ready: HashSet<EndpointId>,
    timers: BTreeMap<i64, Vec<(TenantId, EndpointId)>>,
    /// The earliest pending timer of each endpoint.
    timer_of: HashMap<EndpointId, i64>,
    in_flight_total: usize,
    claims: JoinSet<ClaimResult>,
}

impl Engine {
    async fn run(
        mut self,
        mut done_rx: mpsc::UnboundedReceiver<Done>,
        mut shutdown: watch::Receiver<bool>,
    ) {
        // One node per store: every lease still recorded is from a previous run.
        match self.ctx.store.reclaim_leases(None).await {
            Ok(n) if n > 0 => tracing::info!(
                deliveries = n,
                "returned leases of the previous run to the queue"
            ),
            Ok(_) => {}
            Err(e) => tracing::error!(error = %e, "reclaiming leases at start failed"),
        }
        match self.ctx.store.queued_endpoints().await {
            Ok(list) => {
                for (t, e) in list {
                    self.make_ready(t, e);
                }
            }
            Err(e) => tracing::error!(error = %e, "listing queued endpoints failed"),
        }
        let mut reaper = tokio::time::interval(self.ctx.settings.reaper_interval);
        reaper.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            // Settings changes first: a publish announced after a rotation must be
            // signed with the new secret.
            let changed: Vec<EndpointId> = self
                .shared
                .changed
                .lock()
                .map(|mut c| c.drain().collect())
                .unwrap_or_default();
            for endpoint in changed {
                if let Some(lane) = self.lanes.get_mut(&endpoint) {
                    lane.loaded_at = None;
                }
            }
            for (t, e) in self.signal.take() {
                self.make_ready(t, e);
            }
            self.fire_timers(now_ms());
            self.schedule();
            let next_timer = self.timers.keys().next().copied();
            let sleep = async move {
                match next_timer {
                    Some(at) => {
                        let wait = u64::try_from(at - now_ms()).unwrap_or(0);
                        tokio::time::sleep(Duration::from_millis(wait)).await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                biased;
                changed = shutdown.changed() => {
                    if changed.is_err() || *shutdown.borrow() {
                        break;
                    }
                }
                Some(done) = done_rx.recv() => self.on_done(done),
                Some(joined) = self.claims.join_next(), if !self.claims.is_empty() => {
                    match joined {
                        Ok(result) => self.on_claimed(result),
                        Err(e) => tracing::error!(error = %e, "claim task failed"),
                    }
                }
                () = self.signal.notified() => {}
                () = sleep => {}
                _ = reaper.tick() => self.reap().await,
            }
        }
        self.drain(done_rx).await;
    }

    /// Stops claiming and waits for in-flight sends, at most the grace period.
    async fn drain(mut self, mut done_rx: mpsc::UnboundedReceiver<Done>) {
        let deadline = tokio::time::Instant::now() + self.ctx.settings.grace;
        // Claims already running finish and their deliveries are sent.
        while let Ok(Some(joined)) =
            tokio::time::timeout_at(deadline, self.claims.join_next()).await
        {
            if let Ok(result) = joined {
                self.start_sends(result);
            }
        }
        while self.in_flight_total > 0 {
            match tokio::time::timeout_at(deadline, done_rx.recv()).await {
                Ok(Some(done)) => self.on_done(done),
                _ => break,
            }
        }
        if self.in_flight_total > 0 {
            tracing::warn!(
                in_flight = self.in_flight_total,
                "grace period over with attempts in flight; their leases return them to the queue at next start"
            );
        }
    }

    /// Marks an endpoint as possibly having due work and queues it for a turn.
    fn make_ready(&mut self, tenant: TenantId, endpoint: EndpointId) {
        if let Some(lane) = self.lanes.get_mut(&endpoint) {
            lane.backlog = true;
        }
        if self.in_ready.insert(endpoint.clone()) {
            self.ready.push_back((tenant, endpoint));
        }
    }

    /// Makes the endpoint ready at `at`. One pending timer per endpoint: an earlier
    /// one already brings it back to be looked at again, so a later one is dropped
    /// (an open circuit seeing thousands of publishes keeps one timer, not thousands).
    fn add_timer(&mut self, at: i64, tenant: TenantId, endpoint: EndpointId) {
        if self.timer_of.get(&endpoint).is_some_and(|t| *t <= at) {
            return;
        }
        self.timer_of.insert(endpoint.clone(), at);
        self.timers.entry(at).or_default().push((tenant, endpoint));
    }

    fn fire_timers(&mut self, now: i64) {
        while let Some(entry) = self.timers.first_entry() {
            if *entry.key() > now {
                break;
            }
            let at = *entry.key();
            for (t, e) in entry.remove() {
                if self.timer_of.get(&e) == Some(&at) {
                    self.timer_of.remove(&e);
                }
                self.make_ready(t, e);
            }
        }
    }

    /// One round-robin turn over the ready endpoints.
    fn schedule(&mut self) {
        let now = now_ms();
        let turns = self.ready.len();
        for _ in 0..turns {
            let Some((tenant, endpoint)) = self.ready.pop_front() else {
                break;
            };
            self.in_ready.remove(&endpoint);
            self.try_claim(tenant, endpoint, now);
        }
    }

    fn try_claim(&mut self, tenant: TenantId, endpoint: EndpointId, now: i64) {
        let settings = &self.ctx.settings;
        let global_free = settings
            .max_in_flight_global
            .saturating_sub(self.in_flight_total);
        let lane = self.lanes.entry(endpoint.clone()).or_insert_with(|| Lane {
            runtime: None,
            loaded_at: None,
            in_flight: 0,
            claiming: false,
            breaker: Breaker::new(settings.breaker),
            bucket: None,
            disabling: false,
            backlog: true,
        });
        if lane.claiming {
            return; // the claim in progress looks again when it returns
        }
        let stale = lane.loaded_at.is_none_or(|t| t.elapsed() > RUNTIME_TTL);
        if let Some(rt) = &lane.runtime
            && !stale
            && !rt.sends()
        {
            return; // disabled or inbox: waits until woken again
        }
        let max = lane
            .runtime
            .as_ref()
            .map_or(settings.default_max_in_flight, |r| r.max_in_flight);
        let free = max.saturating_sub(lane.in_flight) as usize;
        // Let a busy lane drain a little so claims come in batches, not one by one.
        if free == 0 || (lane.in_flight > 0 && free < (max as usize / 4).max(1)) {
            return;
        }
        let mut limit = free.min(global_free).min(settings.claim_batch);
        match lane.breaker.permit(now) {
            Permit::Any => {}
            Permit::One => {
                if lane.in_flight > 0 {
                    return;
                }
                limit = limit.min(1);
            }
            Permit::None { until } => {
                self.add_timer(until, tenant, endpoint);
                return;
            }
        }
        if let Some(bucket) = lane.bucket.as_mut() {
            let tokens = bucket.available(now);
            if tokens == 0 {
                let at = bucket.next_token_at();
                self.add_timer(at, tenant, endpoint);
                return;
            }
            limit = limit.min(tokens);
        }
        if limit == 0 {
            return;
        }
        lane.claiming = true;
        let runtime = if stale { None } else { lane.runtime.clone() };
        let ctx = self.ctx.clone();
        self.claims
            .spawn(claim(ctx, tenant, endpoint, runtime, limit, now));
    }

    fn on_claimed(&mut self, r: ClaimResult) {
        if let Some(e) = &r.error {
            tracing::warn!(tenant_id = %r.tenant, endpoint_id = %r.endpoint, error = %e, "claim failed; retrying shortly");
            if let Some(lane) = self.lanes.get_mut(&r.endpoint) {
                lane.claiming = false;
            }
            self.add_timer(now_ms() + 1000, r.tenant.clone(), r.endpoint.clone());
            return;
        }
        let (tenant, endpoint) = (r.tenant.clone(), r.endpoint.clone());
        let full = r.claimed.len() >= r.limit;
        let next_due = r.next_due;
        let sends = r.runtime.as_ref().is_none_or(|rt| rt.sends());
        self.start_sends(r);
        if !sends {
            return;
        }
        let now = now_ms();
        if full {
            self.make_ready(tenant, endpoint);
            return;
        }
        if let Some(lane) = self.lanes.get_mut(&endpoint) {
            lane.backlog = false;
        }
        if let Some(at) = next_due {
            if at <= now {
                self.make_ready(tenant, endpoint);
            } else {
                self.add_timer(at, tenant, endpoint);
            }
        }
    }

    fn start_sends(&mut self, r: ClaimResult) {
        let Some(lane) = self.lanes.get_mut(&r.endpoint) else {
            return;
        };
        lane.claiming = false;
        if r.reloaded {
            lane.loaded_at = Some(Instant::now());
            lane.runtime = r.runtime.clone();
            let rate = r
                .runtime
                .as_ref()
                .and_then(|rt| rt.endpoint.rate_limit_per_sec);
            match (rate, lane.bucket.as_mut()) {
                (None, _) => lane.bucket = None,
                (Some(rate), Some(b)) if (b.rate - f64::from(rate)).abs() < f64::EPSILON => {}
                (Some(rate), _) => lane.bucket = Some(Bucket::new(rate, now_ms())),
            }
        }
        if let Some(bucket) = lane.bucket.as_mut() {
            bucket.take(r.claimed.len());
        }
        for claimed in r.claimed {
            lane.in_flight += 1;
            self.in_flight_total += 1;
            let ctx = self.ctx.clone();
            let runtime = r.runtime.clone();
            tokio::spawn(send(ctx, runtime, r.tenant.clone(), claimed));
        }
        telemetry::set_in_flight(self.in_flight_total);
    }

    fn on_done(&mut self, done: Done) {
        self.in_flight_total = self.in_flight_total.saturating_sub(1);
        telemetry::set_in_flight(self.in_flight_total);
        let auto_disable_after = self.ctx.settings.auto_disable_after_ms;
        let Some(lane) = self.lanes.get_mut(&done.endpoint) else {
            return;
        };
        lane.in_flight = lane.in_flight.saturating_sub(1);
        match done.success {
            Some(true) => lane.breaker.on_success(),
            Some(false) => lane.breaker.on_failure(done.at),
            None => {}
        }
        let circuit = lane.breaker.state();
        telemetry::set_circuit(done.endpoint.as_str(), circuit.gauge());
        let mut disable = done.disable.clone();
        if disable.is_none()
            && auto_disable_after > 0
            && lane
                .breaker
                .failing_since()
                .is_some_and(|since| done.at - since >= auto_disable_after)
        {
            disable = Some(format!(
                "auto-disabled: every attempt failed for {} s",
                auto_disable_after / 1000
            ));
        }
        if let Some(reason) = disable
            && !lane.disabling
        {
            lane.disabling = true;
            lane.loaded_at = None; // re-read: the endpoint is about to be disabled
            tokio::spawn(disable_endpoint(
                self.ctx.clone(),
                done.tenant.clone(),
                done.endpoint.clone(),
                reason,
            ));
        }
        if let Ok(mut health) = self.shared.health.lock() {
            let h = health.entry(done.endpoint.clone()).or_default();
            h.circuit = circuit.as_str();
            h.consecutive_failures = lane.breaker.consecutive_failures();
            h.in_flight = lane.in_flight;
            if let Some(ok) = done.success {
                h.recent.push_back(ok);
                if h.recent.len() > HEALTH_WINDOW {
                    h.recent.pop_front();
                }
                h.recent_attempts = h.recent.len();
                let good = h.recent.iter().filter(|b| **b).count();
                h.success_rate = Some(good as f64 / h.recent.len() as f64);
                h.last_status_code = done.status;
                h.last_error = done.error.clone();
                h.last_attempt_at = Some(done.at);
            }
        }
        // A retry is due later: nothing else may wake the lane by then.
        if let Some(at) = done.retry_at {
            self.add_timer(at, done.tenant.clone(), done.endpoint.clone());
        }
        // A freed slot matters only if work may be waiting for it.
        let Some(lane) = self.lanes.get_mut(&done.endpoint) else {
            return;
        };
        let backlog = lane.backlog;
        if backlog {
            self.make_ready(done.tenant, done.endpoint);
        }
    }

    async fn reap(&mut self) {
        match self.ctx.store.reclaim_leases(Some(now_ms())).await {
            Ok(n) if n > 0 => tracing::warn!(deliveries = n, "reclaimed expired leases"),
            Ok(_) => {}
            Err(e) => tracing::error!(error = %e, "reaper failed"),
        }
        if let Ok(c) = self.ctx.store.queue_counts(None).await {
            telemetry::set_queue(c.pending, c.retrying, c.dead);
        }
    }
}

/// Loads the endpoint (when not cached) and leases its due deliveries.
async fn claim(
    ctx: Arc<Ctx>,
    tenant: TenantId,
    endpoint: EndpointId,
    cached: Option<Arc<Runtime>>,
    limit: usize,
    now: i64,
) -> ClaimResult {
    let mut result = ClaimResult {
        tenant: tenant.clone(),
        endpoint: endpoint.clone(),
        runtime: cached.clone(),
        reloaded: cached.is_none(),
        claimed: Vec::new(),
        limit,
        next_due: None,
        error: None,
    };
    if cached.is_none() {
        match ctx.store.get_endpoint(&tenant, &endpoint).await {
            Ok(Some(ep)) => result.runtime = Some(Arc::new(Runtime::build(ep, &ctx, now))),
            // Deleted: its remaining deliveries are claimed and settled as dead.
            Ok(None) => result.runtime = None,
            Err(e) => {
                result.error = Some(e.to_string());
                return result;
            }
        }
    }
    if result.runtime.as_ref().is_some_and(|rt| !rt.sends()) {
        return result;
    }
    let timeout_ms = result
        .runtime
        .as_ref()
        .map_or(ctx.settings.default_timeout, |rt| rt.timeout)
        .as_millis() as i64;
    let claim = Claim {
        node: ctx.node.clone(),
        tenant,
        endpoint: endpoint.clone(),
        now,
        lease_until: now + timeout_ms + LEASE_MARGIN_MS,
        limit,
    };
    match ctx.store.claim_due(claim).await {
        Ok(claimed) => result.claimed = claimed,
        Err(e) => {
            result.error = Some(e.to_string());
            return result;
        }
    }
    if result.claimed.len() < limit {
        match ctx.store.next_due(&endpoint).await {
            Ok(next) => result.next_due = next,
            Err(e) => tracing::warn!(error = %e, "next_due failed"),
        }
    }
    result
}

/// Reports to the engine when dropped, so a slot is never leaked.
struct SlotGuard {
    ctx: Arc<Ctx>,
    done: Option<Done>,
}

impl Drop for SlotGuard {
    fn drop(&mut self) {
        if let Some(done) = self.done.take() {
            let _ = self.ctx.done.send(done);
        }
    }
}

/// What one HTTP attempt produced.
struct Response {
    result: AttemptResult,
    status: Option<u16>,
    excerpt: Option<String>,
    error_kind: Option<String>,
}

async fn send(ctx: Arc<Ctx>, runtime: Option<Arc<Runtime>>, tenant: TenantId, claimed: Claimed) {
    let Claimed { delivery, event } = claimed;
    let mut guard = SlotGuard {
        ctx: ctx.clone(),
        done: Some(Done {
            tenant: tenant.clone(),
            endpoint: delivery.endpoint_id.clone(),
            success: None,
            status: None,
            error: None,
            at: now_ms(),
            disable: None,
            retry_at: None,
        }),
    };
    let number = delivery.attempts + 1;
    let started_at = now_ms();
    let started = Instant::now();
    // A transformed body to keep for retries.
    let mut keep: Option<String> = None;
    let response = match &runtime {
        None => Response {
            result: AttemptResult::Refused,
            status: None,
            excerpt: None,
            error_kind: Some("endpoint_deleted".into()),
        },
        Some(rt) => match transform(&ctx, &tenant, &delivery, &event).await {
            Ok(Some((body, transformed))) => {
                keep = transformed;
                attempt(&ctx, rt, &delivery, &event, number, body).await
            }
            Ok(None) => Response {
                result: AttemptResult::Skipped,
                status: None,
                excerpt: Some("dropped by a plugin; nothing was sent".into()),
                error_kind: Some("dropped_by_plugin".into()),
            },
            Err(failure) => Response {
                result: AttemptResult::Refused,
                status: None,
                excerpt: Some(failure.detail),
                error_kind: Some(failure.kind.to_owned()),
            },
        },
    };
    let elapsed = started.elapsed();
    let verdict = retry::classify(&response.result);
    let policy = runtime
        .as_ref()
        .map_or(&ctx.settings.default_policy, |rt| &rt.policy);
    let finished = now_ms();
    let next = policy.next(number, &verdict, finished, rand::random::<f64>());
    let outcome_label = match next {
        NextState::Succeeded => "success",
        NextState::Retry { .. } => "retry",
        NextState::Dead => "dead",
    };
    telemetry::record_attempt(outcome_label, elapsed);
    if next == NextState::Succeeded {
        telemetry::record_delivery_latency((finished - event.created_at) as f64 / 1000.0);
    }
    let attempt = Attempt {
        record_version: RECORD_VERSION,
        id: AttemptId::generate(started_at),
        delivery_id: delivery.id.clone(),
        tenant_id: tenant.clone(),
        number,
        started_at,
        status_code: response.status,
        latency_ms: elapsed.as_millis() as u64,
        response_excerpt: response.excerpt,
        error_kind: response.error_kind.clone(),
    };
    let outcome = Outcome {
        tenant: tenant.clone(),
        delivery: delivery.id.clone(),
        lease_token: delivery.lease_token,
        attempt,
        next,
        body: keep,
    };
    let mut retry_at = None;
    match ctx.store.record_outcome(outcome).await {
        Ok(true) => {
            if let NextState::Retry { at } = next {
                retry_at = Some(at);
            }
        }
        Ok(false) => {
            tracing::warn!(tenant_id = %tenant, delivery_id = %delivery.id, "lease lost before the outcome was recorded")
        }
        Err(e) => {
            tracing::error!(tenant_id = %tenant, delivery_id = %delivery.id, error = %e, "recording outcome failed; the lease will return it to the queue")
        }
    }
    if let Some(done) = guard.done.as_mut() {
        done.success = Some(verdict == Verdict::Success);
        done.status = response.status;
        done.error = response.error_kind;
        done.at = finished;
        done.retry_at = retry_at;
        if let Verdict::GiveUp {
            disable_endpoint: true,
        } = verdict
        {
            done.disable = Some("the endpoint answered 410 Gone".into());
        }
    }
}

/// Sends one attempt over HTTP.
/// The body to send: the payload through the subscription's transform pipeline, with
/// the transformed text when a new one was computed (kept for the retries). A retry
/// sends the body its first attempt computed. `Ok(None)`: a plugin dropped the
/// delivery. `Err`: a stage failed and the subscription fails closed (the delivery
/// goes to the DLQ with the error).
async fn transform(
    ctx: &Ctx,
    tenant: &TenantId,
    delivery: &crate::store::Delivery,
    event: &crate::store::Event,
) -> Result<Option<(bytes::Bytes, Option<String>)>, StageFailure> {
    if let Some(kept) = &delivery.body {
        return Ok(Some((bytes::Bytes::copy_from_slice(kept.as_bytes()), None)));
    }
    let original = || {
        Some((
            bytes::Bytes::copy_from_slice(event.payload.get().as_bytes()),
            None,
        ))
    };
    let pipeline = match ctx
        .pipelines
        .for_subscription(tenant, &delivery.subscription_id)
        .await
    {
        Ok(None) => return Ok(original()),
        Ok(Some(p)) => p,
        Err(e) => {
            return Err(StageFailure {
                stage: "transform".into(),
                kind: "transform_unavailable",
                detail: e.to_string(),
            });
        }
    };
    match ctx.pipelines.run(&pipeline, event, None).await {
        Ok(Transformed::Body(b)) => {
            let text = String::from_utf8(b).map_err(|e| StageFailure {
                stage: "transform".into(),
                kind: "transform_not_utf8",
                detail: format!("the transformed body is not UTF-8: {e}"),
            })?;
            Ok(Some((
                bytes::Bytes::copy_from_slice(text.as_bytes()),
                Some(text),
            )))
        }
        Ok(Transformed::Dropped { .. }) => Ok(None),
        Err(failure) if pipeline.on_error == OnError::DeliverOriginal => {
            tracing::warn!(tenant_id = %tenant, delivery_id = %delivery.id, stage = %failure.stage,
                error = %failure.detail, "transform failed; delivering the original payload (on_error = deliver_original)");
            Ok(original())
        }
        Err(failure) => Err(failure),
    }
}

async fn attempt(
    ctx: &Ctx,
    rt: &Runtime,
    delivery: &crate::store::Delivery,
    event: &crate::store::Event,
    number: u32,
    body: bytes::Bytes,
) -> Response {
    let refused = |kind: &str, detail: String| Response {
        result: AttemptResult::Refused,
        status: None,
        excerpt: Some(detail),
        error_kind: Some(kind.to_owned()),
    };
    let inbox = rt.endpoint.kind == EndpointKind::Inbox;
    let url = match (&rt.url, inbox) {
        (_, true) => None,
        (Ok(u), false) => Some(u.clone()),
        (Err(e), false) => return refused("destination_forbidden", e.clone()),
    };
    let signer = match &rt.signer {
        Ok(s) => s,
        Err(e) => return refused("signing_failed", e.clone()),
    };
    let timestamp = now_ms() / 1000;
    let mut headers = rt.headers.clone();
    let mut put = |name: &'static str, value: &str| {
        if let Ok(v) = HeaderValue::from_str(value) {
            headers.insert(HeaderName::from_static(name), v);
        }
    };
    put("content-type", "application/json");
    put("webhook-id", delivery.id.as_str());
    put("webhook-timestamp", &timestamp.to_string());
    put(
        "webhook-signature",
        &signer.sign(delivery.id.as_str(), timestamp, &body),
    );
    put("gatepulse-event-id", event.id.as_str());
    put("gatepulse-topic", &event.topic);
    put("gatepulse-attempt", &number.to_string());
    let Some(url) = url else {
        return capture(ctx, delivery, event, &headers, &body).await;
    };
    let sent = ctx
        .client
        .post(url)
        .headers(headers)
        .body(body)
        .timeout(rt.timeout)
        .send()
        .await;
    let mut resp = match sent {
        Ok(r) => r,
        Err(e) => {
            let kind = if e.is_timeout() {
                "timeout"
            } else if e.is_connect() {
                "connect"
            } else {
                "transport"
            };
            return Response {
                result: AttemptResult::Transport,
                status: None,
                excerpt: Some(error_chain(&e)),
                error_kind: Some(kind.into()),
            };
        }
    };
    let code = resp.status().as_u16();
    let retry_after = resp
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| retry::parse_retry_after(v, now_ms()));
    // Keep a bounded excerpt; never read an unbounded body.
    let mut excerpt = Vec::new();
    let limit = ctx.settings.excerpt_bytes;
    let mut read_error = None;
    while excerpt.len() < limit {
        match resp.chunk().await {
            Ok(Some(chunk)) => {
                let take = chunk.len().min(limit - excerpt.len());
                excerpt.extend_from_slice(&chunk[..take]);
            }
            Ok(None) => break,
            Err(e) => {
                read_error = Some(e);
                break;
            }
        }
    }
    let error_kind = match (&read_error, code) {
        (Some(e), _) if e.is_timeout() => Some("timeout_reading_body".to_owned()),
        (_, 200..=299) => None,
        _ => Some(format!("http_{code}")),
    };
    Response {
        result: AttemptResult::Status { code, retry_after },
        status: Some(code),
        excerpt: (!excerpt.is_empty()).then(|| String::from_utf8_lossy(&excerpt).into_owned()),
        error_kind,
    }
}

/// An inbox endpoint keeps the request it would have sent.
async fn capture(
    ctx: &Ctx,
    delivery: &crate::store::Delivery,
    event: &crate::store::Event,
    headers: &HeaderMap,
    body: &[u8],
) -> Response {
    let now = now_ms();
    let message = crate::store::InboxMessage {
        record_version: RECORD_VERSION,
        id: AttemptId::generate(now),
        tenant_id: delivery.tenant_id.clone(),
        endpoint_id: delivery.endpoint_id.clone(),
        delivery_id: delivery.id.clone(),
        event_id: event.id.clone(),
        topic: event.topic.clone(),
        received_at: now,
        headers: headers
            .iter()
            .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or("").to_owned()))
            .collect(),
        body: String::from_utf8_lossy(body).into_owned(),
    };
    match ctx.store.capture_inbox(message).await {
        Ok(()) => Response {
            result: AttemptResult::Status {
                code: 200,
                retry_after: None,
            },
            status: None,
            excerpt: Some("captured by the inbox".into()),
            error_kind: None,
        },
        Err(e) => Response {
            result: AttemptResult::Transport,
            status: None,
            excerpt: Some(e.to_string()),
            error_kind: Some("inbox_store_failed".into()),
        },
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(inner) = source {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        source = inner.source();
    }
    s
}

async fn disable_endpoint(ctx: Arc<Ctx>, tenant: TenantId, endpoint: EndpointId, reason: String) {
    let now = now_ms();
    let why = reason.clone();
    let result = ctx
        .store
        .update_endpoint(
            &tenant,
            &endpoint,
            Box::new(move |e: &mut Endpoint| {
                e.enabled = false;
                e.disabled_reason = Some(why);
                e.updated_at = now;
            }),
        )
        .await;
    match result {
        Ok(_) => {
            ctx.ingest.invalidate(&tenant);
            telemetry::record_auto_disable();
            tracing::warn!(tenant_id = %tenant, endpoint_id = %endpoint, reason = %reason, "endpoint disabled");
        }
        Err(e) => {
            tracing::error!(tenant_id = %tenant, endpoint_id = %endpoint, error = %e, "disabling endpoint failed")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_bucket_refills_at_its_rate_and_caps_at_one_second() {
        let mut b = Bucket::new(10, 0);
        assert_eq!(b.available(0), 10);
        b.take(10);
        assert_eq!(b.available(0), 0);
        assert_eq!(b.next_token_at(), 100, "one token every 100 ms");
        assert_eq!(b.available(250), 2);
        assert_eq!(b.available(60_000), 10, "never more than a second's worth");
        let mut slow = Bucket::new(1, 0);
        slow.take(1);
        assert_eq!(slow.available(999), 0);
        assert_eq!(slow.available(1_000), 1);
    }
}
