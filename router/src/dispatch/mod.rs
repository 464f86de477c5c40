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
//! At start every lease left by a previous run of this node is returned to the queue,
//! so a `kill -9` loses nothing: delivery is at least once.
//!
//! In a cluster (`crate::cluster`) the engine claims only while the node may dispatch:
//! in mode `leader` while it is the trusted leader, each claim fenced by its term; in
//! `active-active` always. Taking over returns the leases of nodes that went silent
//! (a killed leader's) and reads which endpoints have queued work. The reaper and the
//! parked sweep run on the leader alone.

pub mod circuit;
pub mod client;
mod health;
pub use health::Health;
pub use lane::is_reserved_header;
pub use send::REDACTED;
mod lane;
pub mod retry;
mod send;

use lane::{Bucket, CircuitCounts, Lane};
use send::{ClaimResult, Done, Recorded, Report, claim, disable_endpoint, send};
pub mod signing;

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

use crate::clock::now_ms;
use crate::config::Config;
use crate::crypto::Keyring;
use crate::ids::{EndpointId, TenantId};
use crate::pipeline::Pipelines;
use crate::store::feed::{Change, Committed, FeedListener};
use crate::store::{QueueSignal, Store};
use crate::telemetry;
use circuit::{Breaker, BreakerConfig, CircuitState, Permit};
use retry::RetryPolicy;

/// How long a lease outlives the endpoint's timeout before the reaper may reclaim it.
const LEASE_MARGIN_MS: i64 = 60_000;
/// How often, at most apart, queued deliveries are checked for having waited too long.
const PARKED_SWEEP_EVERY: Duration = Duration::from_secs(60);
/// A lane unused this long (and with nothing to remember) is dropped.
const LANE_IDLE: Duration = Duration::from_secs(600);
/// How long an endpoint's settings are cached before they are read again.
const TARGET_TTL: Duration = Duration::from_secs(1);

/// What the API may ask of the running engine.
#[derive(Debug, Clone)]
pub struct DispatchHandle {
    shared: Arc<Shared>,
    signal: Arc<QueueSignal>,
    /// Where nodes share their endpoints' health, and this node's id in it: a store
    /// that several nodes use (PostgreSQL). `None`: this node's health is the whole.
    cluster: Option<(Arc<dyn Store>, String)>,
}

#[derive(Debug, Default)]
struct Shared {
    health: Mutex<HashMap<EndpointId, Health>>,
    /// Endpoints whose settings changed through the API: their cached settings are
    /// dropped before the next claim (secret rotation, URL, headers, enabling).
    changed: Mutex<HashSet<EndpointId>>,
    /// Endpoints whose health changed since this node last shared it, with their
    /// tenant (only when nodes share health).
    unshared: Mutex<HashMap<EndpointId, TenantId>>,
}

/// How often a node shares the health of endpoints it attempted (and of those with
/// sends in flight) when nodes share a store.
const HEALTH_SHARE_EVERY: Duration = Duration::from_secs(1);

impl DispatchHandle {
    /// The cluster's health of `endpoints` of `tenant`: on a store several nodes share,
    /// this node's own merged with every other node's latest report (a report is at
    /// most about [`HEALTH_SHARE_EVERY`] old; see `Health::merge`); otherwise this
    /// node's. A store error falls back to this node's own.
    pub async fn cluster_health(
        &self,
        tenant: &TenantId,
        endpoints: &[EndpointId],
    ) -> HashMap<EndpointId, Health> {
        let local = || {
            endpoints
                .iter()
                .map(|e| (e.clone(), self.health(e)))
                .collect::<HashMap<_, _>>()
        };
        let Some((store, node)) = &self.cluster else {
            return local();
        };
        let one = match endpoints {
            [e] => Some(e),
            _ => None,
        };
        let reports = match store.health_reports(tenant, one).await {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(error = %e, "reading other nodes' endpoint health failed; answering with this node's");
                return local();
            }
        };
        let mut by_endpoint: HashMap<&EndpointId, Vec<(i64, &str)>> = HashMap::new();
        for r in reports.iter().filter(|r| &r.node != node) {
            by_endpoint
                .entry(&r.endpoint)
                .or_default()
                .push((r.at, r.data.as_str()));
        }
        let now = now_ms();
        endpoints
            .iter()
            .map(|e| {
                let own = self.health(e);
                let others = by_endpoint.remove(e).unwrap_or_default();
                if others.is_empty() {
                    return (e.clone(), own);
                }
                // This node's report is its live state, when it has one.
                let own =
                    (own.last_attempt_at.is_some() || own.in_flight > 0).then(|| own.encode());
                let all = others.into_iter().chain(own.as_deref().map(|d| (now, d)));
                (e.clone(), Health::merge(all, now))
            })
            .collect()
    }

    /// Health of one endpoint; defaults when it was never attempted.
    pub fn health(&self, endpoint: &EndpointId) -> Health {
        self.shared
            .health
            .lock()
            .ok()
            .and_then(|h| h.get(endpoint).cloned())
            .unwrap_or_default()
    }

    /// Forgets a deleted endpoint's health; its lane learns of the deletion at its next
    /// claim (its queued deliveries are then cancelled).
    pub fn endpoint_removed(&self, tenant: TenantId, endpoint: EndpointId) {
        if let Ok(mut health) = self.shared.health.lock() {
            health.remove(&endpoint);
        }
        self.endpoint_changed(tenant, endpoint);
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

/// The engine follows endpoint changes from the commit feed, whichever node made them.
impl FeedListener for DispatchHandle {
    fn committed(&self, batch: &Committed) {
        for change in &batch.changes {
            if let Change::Endpoint {
                tenant,
                id,
                deleted,
            } = change
            {
                if *deleted {
                    self.endpoint_removed(tenant.clone(), id.clone());
                } else {
                    self.endpoint_changed(tenant.clone(), id.clone());
                }
            }
        }
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
    /// Queued deliveries due longer ago than this go to the DLQ (0: never).
    parked_max_age_ms: i64,
    /// A node without a heartbeat this long is gone: its leases return to the queue
    /// (`cluster.leader_ttl_ms`: by then a leader it was has lost its leadership).
    node_silence_ms: u64,
    /// The store is reached over a network (PostgreSQL): outcome writes that fail
    /// on the connection are tried again.
    remote_store: bool,
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
            parked_max_age_ms: (d.parked_max_age_secs as i64).saturating_mul(1000),
            node_silence_ms: c.cluster.leader_ttl_ms,
            remote_store: c.postgres_url().is_some(),
        }
    }
}

/// Everything a send task needs, shared.
#[derive(Debug)]
struct Ctx {
    store: Arc<dyn Store>,
    keys: Arc<Keyring>,
    pipelines: Arc<Pipelines>,
    client: reqwest::Client,
    settings: Settings,
    /// This node (its id is what its leases carry) and whether it may dispatch.
    leadership: Arc<crate::cluster::Leadership>,
    done: mpsc::UnboundedSender<Report>,
    /// Spans of delivery attempts (off unless tracing is configured).
    tracer: crate::otel::Tracer,
}

/// What the engine works with.
pub struct Parts {
    pub store: Arc<dyn Store>,
    pub keys: Arc<Keyring>,
    pub pipelines: Arc<Pipelines>,
    /// Endpoints with new work, as the store announces them.
    pub signal: Arc<QueueSignal>,
    pub tracer: crate::otel::Tracer,
    /// This node (`cluster.node_id`: what its leases carry) and its part in the
    /// leadership: in mode `leader` it claims only while it may act as leader.
    pub leadership: Arc<crate::cluster::Leadership>,
}

/// Starts the engine. It stops when `shutdown` turns true, after in-flight sends finish
/// (bounded by `shutdown_grace_secs`).
pub fn start(
    config: &Config,
    parts: Parts,
    shutdown: watch::Receiver<bool>,
) -> Result<(DispatchHandle, tokio::task::JoinHandle<()>), reqwest::Error> {
    let Parts {
        store,
        keys,
        pipelines,
        signal,
        tracer,
        leadership,
    } = parts;
    let settings = Settings::from_config(config);
    let client = client::build(settings.allow_private, 64, &config.delivery.proxy_url)?;
    let (done_tx, done_rx) = mpsc::unbounded_channel();
    let shared = Arc::new(Shared::default());
    let ctx = Arc::new(Ctx {
        store,
        keys,
        pipelines,
        client,
        settings,
        leadership,
        done: done_tx,
        tracer,
    });
    let cluster = ctx
        .settings
        .remote_store
        .then(|| (ctx.store.clone(), ctx.leadership.node().to_owned()));
    let view = ctx.leadership.subscribe();
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
        unsettled_total: 0,
        claims: JoinSet::new(),
        circuits: CircuitCounts::default(),
        parked_sweep: None,
        parked_swept_at: None,
        view,
        dispatching: false,
    };
    if let Some((store, node)) = cluster.clone() {
        tokio::spawn(share_health(store, node, shared.clone(), shutdown.clone()));
    }
    let task = tokio::spawn(engine.run(done_rx, shutdown));
    Ok((
        DispatchHandle {
            shared,
            signal,
            cluster,
        },
        task,
    ))
}

/// Writes this node's health of the endpoints whose health changed (and of those
/// with sends in flight, so their count stays fresh) every [`HEALTH_SHARE_EVERY`].
async fn share_health(
    store: Arc<dyn Store>,
    node: String,
    shared: Arc<Shared>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(HEALTH_SHARE_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.changed() => return,
            _ = tick.tick() => {}
        }
        let due: Vec<(EndpointId, TenantId)> = match shared.unshared.lock() {
            Ok(mut u) => u.drain().collect(),
            Err(_) => return,
        };
        if due.is_empty() {
            continue;
        }
        let at = now_ms();
        let mut reports = Vec::with_capacity(due.len());
        let mut busy = Vec::new();
        if let Ok(health) = shared.health.lock() {
            for (endpoint, tenant) in &due {
                let Some(h) = health.get(endpoint) else {
                    continue; // deleted
                };
                if h.in_flight > 0 {
                    busy.push((endpoint.clone(), tenant.clone()));
                }
                reports.push(crate::store::HealthReport {
                    tenant: tenant.clone(),
                    endpoint: endpoint.clone(),
                    node: node.clone(),
                    at,
                    data: h.encode(),
                });
            }
        }
        let failed = match store.put_health(reports).await {
            Ok(()) => None,
            Err(e) => {
                tracing::debug!(error = %e, "sharing endpoint health failed; trying again");
                Some(due)
            }
        };
        if let Ok(mut u) = shared.unshared.lock() {
            u.extend(busy);
            u.extend(failed.into_iter().flatten());
        }
    }
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
    /// Requests in flight, over every endpoint.
    in_flight_total: usize,
    /// Deliveries sent or being sent whose outcome is not written yet (at least
    /// `in_flight_total`): what `max_in_flight_global` bounds.
    unsettled_total: usize,
    claims: JoinSet<ClaimResult>,
    circuits: CircuitCounts,
    /// The running sweep of parked deliveries, and when the last one started.
    parked_sweep: Option<tokio::task::JoinHandle<()>>,
    parked_swept_at: Option<Instant>,
    /// The leadership as last seen, and whether this node was dispatching then.
    view: watch::Receiver<crate::cluster::View>,
    dispatching: bool,
}

impl Engine {
    async fn run(
        mut self,
        mut done_rx: mpsc::UnboundedReceiver<Report>,
        mut shutdown: watch::Receiver<bool>,
    ) {
        // This node's leases from its previous run; other nodes' stay theirs.
        match self
            .ctx
            .store
            .reclaim_node_leases(self.ctx.leadership.node())
            .await
        {
            Ok(n) if n > 0 => tracing::info!(
                deliveries = n,
                "returned leases of the previous run to the queue"
            ),
            Ok(_) => {}
            Err(e) => tracing::error!(error = %e, "reclaiming leases at start failed"),
        }
        self.dispatching = self.ctx.leadership.dispatching().is_some();
        if self.dispatching {
            self.take_over().await;
        }
        self.view.mark_unchanged();
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
                self.announced(t, e);
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
                Some(report) = done_rx.recv() => self.on_report(report),
                Some(joined) = self.claims.join_next(), if !self.claims.is_empty() => {
                    match joined {
                        Ok(result) => self.on_claimed(result),
                        Err(e) => tracing::error!(error = %e, "claim task failed"),
                    }
                }
                () = self.signal.notified() => {}
                Ok(()) = self.view.changed() => self.leadership_changed().await,
                () = sleep => {}
                _ = reaper.tick() => self.reap().await,
            }
        }
        self.drain(done_rx).await;
    }

    /// This node starts dispatching (at start, or on becoming the leader): leases of
    /// nodes that went silent for a leadership's length (a leader killed or paused)
    /// return to the queue at once, and every endpoint with queued work gets a turn.
    async fn take_over(&mut self) {
        self.reclaim_silent_leases().await;
        match self.ctx.store.queued_endpoints().await {
            Ok(list) => {
                self.resume_circuits(&list).await;
                for (t, e) in list {
                    self.make_ready(t, e);
                }
            }
            Err(e) => tracing::error!(error = %e, "listing queued endpoints failed"),
        }
    }

    /// On a store nodes share: endpoints this node has no lane for yet, whose circuit
    /// another node (the former leader) reported open or half-open, start with that
    /// breaker, so a failing endpoint is not hit again at once because the leader
    /// changed.
    async fn resume_circuits(&mut self, queued: &[(TenantId, EndpointId)]) {
        if !self.ctx.settings.remote_store {
            return;
        }
        let mut tenants: HashMap<&TenantId, Vec<&EndpointId>> = HashMap::new();
        for (t, e) in queued {
            if !self.lanes.contains_key(e) {
                tenants.entry(t).or_default().push(e);
            }
        }
        let now = now_ms();
        for (tenant, endpoints) in tenants {
            let reports = match self.ctx.store.health_reports(tenant, None).await {
                Ok(r) => r,
                Err(e) => {
                    tracing::warn!(error = %e, "reading other nodes' circuits failed");
                    continue;
                }
            };
            for endpoint in endpoints {
                let mine = reports
                    .iter()
                    .filter(|r| &r.endpoint == endpoint)
                    .map(|r| (r.at, r.data.as_str()));
                let h = Health::merge(mine, now);
                if h.circuit == CircuitState::Closed.as_str() {
                    continue;
                }
                let breaker = Breaker::resume(
                    self.ctx.settings.breaker,
                    h.consecutive_failures,
                    h.open_until.or(Some(now)),
                    now,
                );
                let state = breaker.state().as_str();
                let mut lane = Lane::new(breaker);
                lane.circuit = state;
                self.circuits.moved(None, Some(state));
                self.lanes.insert(endpoint.clone(), lane);
                tracing::info!(endpoint_id = %endpoint, circuit = state, "circuit carried over from the previous leader");
            }
        }
    }

    /// Returns to the queue the leases of nodes without a heartbeat for a leadership's
    /// length (a killed or paused leader, a dead active-active worker).
    async fn reclaim_silent_leases(&self) {
        let node = self.ctx.leadership.node();
        let silence = Some(self.ctx.settings.node_silence_ms);
        match self.ctx.store.reclaim_foreign_leases(node, silence).await {
            Ok(0) => {}
            Ok(n) => tracing::warn!(
                deliveries = n,
                "returned leases of silent nodes to the queue"
            ),
            Err(e) => tracing::error!(error = %e, "reclaiming silent nodes' leases failed"),
        }
    }

    /// The leadership changed: a node that may now dispatch takes over; one that may
    /// not simply stops claiming (`schedule`), its claims' sends finishing under their
    /// leases.
    async fn leadership_changed(&mut self) {
        self.view.mark_unchanged();
        let now = self.ctx.leadership.dispatching().is_some();
        if now && !self.dispatching {
            self.dispatching = true;
            self.take_over().await;
        } else if !now && self.dispatching {
            self.dispatching = false;
            tracing::info!("dispatching stopped: another node leads the cluster");
        }
    }

    /// Stops claiming and waits for in-flight sends, at most the grace period.
    async fn drain(mut self, mut done_rx: mpsc::UnboundedReceiver<Report>) {
        let deadline = tokio::time::Instant::now() + self.ctx.settings.grace;
        // Claims already running finish and their deliveries are sent.
        while let Ok(Some(joined)) =
            tokio::time::timeout_at(deadline, self.claims.join_next()).await
        {
            if let Ok(result) = joined {
                self.start_sends(result);
            }
        }
        // Every attempt's outcome is written, not only its request answered.
        while self.unsettled_total > 0 {
            match tokio::time::timeout_at(deadline, done_rx.recv()).await {
                Ok(Some(report)) => self.on_report(report),
                _ => break,
            }
        }
        if self.unsettled_total > 0 {
            tracing::warn!(
                in_flight = self.unsettled_total,
                "grace period over with attempts in flight; their leases return them to the queue at next start"
            );
        }
    }

    /// The store committed new work for the endpoint.
    fn announced(&mut self, tenant: TenantId, endpoint: EndpointId) {
        if let Some(lane) = self.lanes.get_mut(&endpoint)
            && lane.claiming
        {
            // That claim may have read the queue before this commit.
            lane.announced_while_claiming = true;
        }
        self.make_ready(tenant, endpoint);
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
        // The later timer this one replaces goes, so timers never pile up.
        if let Some(old) = self.timer_of.insert(endpoint.clone(), at)
            && let Some(entries) = self.timers.get_mut(&old)
        {
            entries.retain(|(_, e)| e != &endpoint);
            if entries.is_empty() {
                self.timers.remove(&old);
            }
        }
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
        // Asked at every turn, not only on a change of view: the trust window ends by
        // the clock. Ready endpoints wait for the next turn this node may take.
        let Some(fence) = self.ctx.leadership.dispatching() else {
            return;
        };
        let now = now_ms();
        let turns = self.ready.len();
        for _ in 0..turns {
            let Some((tenant, endpoint)) = self.ready.pop_front() else {
                break;
            };
            self.in_ready.remove(&endpoint);
            self.try_claim(tenant, endpoint, now, fence);
        }
    }

    fn try_claim(&mut self, tenant: TenantId, endpoint: EndpointId, now: i64, fence: Option<u64>) {
        let settings = &self.ctx.settings;
        let global_free = settings
            .max_in_flight_global
            .saturating_sub(self.unsettled_total);
        let lane = match self.lanes.entry(endpoint.clone()) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(e) => {
                self.circuits
                    .moved(None, Some(CircuitState::Closed.as_str()));
                e.insert(Lane::new(Breaker::new(settings.breaker)))
            }
        };
        lane.last_used = Instant::now();
        if lane.claiming {
            return; // the claim in progress looks again when it returns
        }
        let stale = lane.loaded_at.is_none_or(|t| t.elapsed() > TARGET_TTL);
        if let Some(rt) = &lane.target
            && !stale
            && !rt.sends()
        {
            return; // disabled or inbox: waits until woken again
        }
        let max = lane
            .target
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
        let target = if stale { None } else { lane.target.clone() };
        let ctx = self.ctx.clone();
        let in_flight = lane.in_flight;
        self.claims.spawn(claim(
            ctx, tenant, endpoint, target, limit, in_flight, now, fence,
        ));
    }

    fn on_claimed(&mut self, r: ClaimResult) {
        if let Some(e) = &r.error {
            tracing::warn!(tenant_id = %r.tenant, endpoint_id = %r.endpoint, error = %e, "claim failed; retrying shortly");
            if let Some(lane) = self.lanes.get_mut(&r.endpoint) {
                lane.claiming = false;
                lane.announced_while_claiming = false; // the timer looks again
            }
            self.add_timer(now_ms() + 1000, r.tenant.clone(), r.endpoint.clone());
            return;
        }
        let (tenant, endpoint) = (r.tenant.clone(), r.endpoint.clone());
        let full = r.claimed.len() >= r.limit;
        let next_due = r.next_due;
        let sends = r.target.as_ref().is_none_or(|rt| rt.sends());
        self.start_sends(r);
        if !sends {
            return;
        }
        let now = now_ms();
        let again = match self.lanes.get_mut(&endpoint) {
            Some(lane) => lane.claim_returned(full),
            None => full,
        };
        if again {
            self.make_ready(tenant, endpoint);
            return;
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
            lane.target = r.target.clone();
            let rate = r
                .target
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
            self.unsettled_total += 1;
            let ctx = self.ctx.clone();
            let target = r.target.clone();
            tokio::spawn(send(ctx, target, r.tenant.clone(), claimed));
        }
        telemetry::set_in_flight(self.in_flight_total);
    }

    fn on_report(&mut self, report: Report) {
        match report {
            Report::Answered(done) => self.on_done(done),
            Report::Recorded(recorded) => self.on_recorded(recorded),
        }
    }

    /// A delivery's outcome is settled: a retry is due later, and nothing else may
    /// wake the lane by then.
    fn on_recorded(&mut self, recorded: Recorded) {
        self.unsettled_total = self.unsettled_total.saturating_sub(1);
        if let Some(at) = recorded.retry_at {
            self.add_timer(at, recorded.tenant.clone(), recorded.endpoint.clone());
        }
        // Its lane may have been held back by the global bound.
        if self
            .lanes
            .get(&recorded.endpoint)
            .is_some_and(|lane| lane.backlog)
        {
            self.make_ready(recorded.tenant, recorded.endpoint);
        }
    }

    /// An attempt ended: its request slot is free.
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
        lane.last_used = Instant::now();
        let circuit = lane.breaker.state();
        self.circuits
            .moved(Some(lane.circuit), Some(circuit.as_str()));
        lane.circuit = circuit.as_str();
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
        // Marked once per sharing interval, not copied per delivery.
        if self.ctx.settings.remote_store
            && let Ok(mut unshared) = self.shared.unshared.lock()
            && !unshared.contains_key(&done.endpoint)
        {
            unshared.insert(done.endpoint.clone(), done.tenant.clone());
        }
        if let Ok(mut health) = self.shared.health.lock() {
            let h = health.entry(done.endpoint.clone()).or_default();
            h.circuit = circuit.as_str();
            h.open_until = match circuit {
                CircuitState::Open { until } => Some(until),
                _ => None,
            };
            h.consecutive_failures = lane.breaker.consecutive_failures();
            h.in_flight = lane.in_flight;
            if let Some(ok) = done.success {
                h.record(ok, done.status, done.error.clone(), done.at);
            }
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
        // The queue gauges are the cluster's (the store's counts), on every node.
        if let Ok(c) = self.ctx.store.queue_counts(None).await {
            telemetry::set_queue(c.pending, c.retrying, c.dead);
        }
        self.prune_lanes();
        if self.ctx.leadership.acting().is_none() {
            return; // the reaper and the parked sweep are the leader's
        }
        match self.ctx.store.reclaim_leases(Some(now_ms())).await {
            Ok(n) if n > 0 => tracing::warn!(deliveries = n, "reclaimed expired leases"),
            Ok(_) => {}
            Err(e) => tracing::error!(error = %e, "reaper failed"),
        }
        // Nodes that died while dispatching beside the leader (active-active).
        self.reclaim_silent_leases().await;
        self.expire_parked();
    }

    /// Half the parked age, between the reaper's interval and a minute.
    fn parked_sweep_every(&self) -> Duration {
        let s = &self.ctx.settings;
        let half = Duration::from_millis(u64::try_from(s.parked_max_age_ms / 2).unwrap_or(0));
        half.clamp(s.reaper_interval, PARKED_SWEEP_EVERY.max(s.reaper_interval))
    }

    /// Starts a sweep of parked deliveries (see `delivery.parked_max_age_secs`) when
    /// none runs and the last began long enough ago.
    fn expire_parked(&mut self) {
        let max_age = self.ctx.settings.parked_max_age_ms;
        if max_age <= 0
            || self.parked_sweep.as_ref().is_some_and(|t| !t.is_finished())
            || self
                .parked_swept_at
                .is_some_and(|t| t.elapsed() < self.parked_sweep_every())
        {
            return;
        }
        self.parked_swept_at = Some(Instant::now());
        let ctx = self.ctx.clone();
        self.parked_sweep = Some(tokio::spawn(async move {
            let cutoff = now_ms().saturating_sub(max_age);
            match send::expire_parked(&ctx, cutoff).await {
                Ok(0) => {}
                Ok(n) => tracing::warn!(deliveries = n, "parked deliveries moved to the DLQ"),
                Err(e) => tracing::error!(error = %e, "expiring parked deliveries failed"),
            }
        }));
    }

    /// Drops lanes idle for [`LANE_IDLE`], so an engine that saw many endpoints once
    /// does not keep a lane for each forever.
    fn prune_lanes(&mut self) {
        let idle: Vec<EndpointId> = self
            .lanes
            .iter()
            .filter(|(e, lane)| {
                lane.is_idle(LANE_IDLE)
                    && !self.in_ready.contains(*e)
                    && !self.timer_of.contains_key(*e)
            })
            .map(|(e, _)| e.clone())
            .collect();
        for e in idle {
            if let Some(lane) = self.lanes.remove(&e) {
                self.circuits.moved(Some(lane.circuit), None);
            }
        }
        self.lanes.shrink_to(self.lanes.len() * 2);
    }
}
