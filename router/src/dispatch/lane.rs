//! An endpoint's lane: its settings prepared for sending ([`Target`]), its token
//! bucket for `rate_limit_per_sec`, and the lane state the engine schedules by.

use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::header::{HeaderMap, HeaderName, HeaderValue};

use super::Ctx;
use super::circuit::{Breaker, CircuitState};
use super::retry::RetryPolicy;
use super::signing::Signer;
use crate::destination;
use crate::secrets;
use crate::store::{Endpoint, SealedSecret, SignatureScheme};

/// Header names an endpoint's custom headers may not use: the ones GatePulse sets
/// itself, and the hop-by-hop and proxy headers (RFC 9110 §7.6.1), which would change
/// how the request travels rather than what it says (`expect` stalls a request,
/// `upgrade` and `te` change the protocol, `proxy-authorization` leaks to proxies).
const RESERVED_HEADERS: &[&str] = &[
    "content-type",
    "content-length",
    "host",
    "user-agent",
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "te",
    "trailer",
    "upgrade",
    "expect",
    "proxy-authorization",
    "proxy-authenticate",
];
const RESERVED_PREFIXES: &[&str] = &["webhook-", "gatepulse-"];

/// Whether `lower` (a lowercase header name) may not be a custom endpoint header.
pub fn is_reserved_header(lower: &str) -> bool {
    RESERVED_HEADERS.contains(&lower) || RESERVED_PREFIXES.iter().any(|p| lower.starts_with(p))
}

/// An endpoint's settings prepared for sending.
#[derive(Debug)]
pub(super) struct Target {
    pub(super) endpoint: Endpoint,
    pub(super) url: Result<reqwest::Url, String>,
    pub(super) signer: Result<Signer, String>,
    pub(super) headers: HeaderMap,
    pub(super) timeout: Duration,
    pub(super) max_in_flight: u32,
    pub(super) policy: RetryPolicy,
}

impl Target {
    pub(super) fn build(endpoint: Endpoint, ctx: &Ctx, now: i64) -> Self {
        let s = &ctx.settings;
        let url = match &endpoint.url {
            Some(u) => {
                destination::validate_url(u, s.allow_private).map_err(|e| format!("url {e}"))
            }
            None => Err("endpoint has no url".to_owned()),
        };
        let mut signer = signer(&endpoint, ctx, now);
        let mut headers = HeaderMap::new();
        match secrets::open_headers(&ctx.keys, &endpoint) {
            Ok(plain) => {
                for (k, v) in &plain {
                    // Stored before the rule existed, perhaps: never send one of these.
                    if is_reserved_header(&k.to_ascii_lowercase()) {
                        continue;
                    }
                    if let (Ok(name), Ok(value)) = (
                        HeaderName::from_bytes(k.as_bytes()),
                        HeaderValue::from_str(v),
                    ) {
                        headers.insert(name, value);
                    }
                }
            }
            // Never send without the headers the receiver expects: the attempt fails
            // with the reason, like an endpoint without a usable secret.
            Err(e) => {
                tracing::error!(tenant_id = %endpoint.tenant_id, endpoint_id = %endpoint.id,
                    error = %e, "cannot open the endpoint's header values");
                signer = Err(format!("header values: {e}"));
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
    pub(super) fn sends(&self) -> bool {
        self.endpoint.enabled
    }
}

/// The endpoint's signer for the schemes it uses: for each, the current secret or key
/// first, then rotated-out ones still in their grace period.
fn signer(endpoint: &Endpoint, ctx: &Ctx, now: i64) -> Result<Signer, String> {
    let live = |s: &&SealedSecret| s.expires_at.is_none_or(|t| t > now);
    let uses = |scheme| endpoint.signature_schemes.contains(&scheme);
    let secrets = if uses(SignatureScheme::V1) {
        endpoint
            .secrets
            .iter()
            .filter(live)
            .map(|sec| {
                secrets::open_secret(&ctx.keys, endpoint, sec).map_err(|e| format!("secret: {e}"))
            })
            .collect::<Result<Vec<_>, _>>()?
    } else {
        Vec::new()
    };
    let signing_keys = if uses(SignatureScheme::V1a) {
        let keys = endpoint
            .signing_keys
            .iter()
            .filter(live)
            .map(|k| {
                secrets::open_signing_key(&ctx.keys, endpoint, k)
                    .map_err(|e| format!("signing key: {e}"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        if keys.is_empty() {
            return Err("signature scheme v1a has no signing key".to_owned());
        }
        keys
    } else {
        Vec::new()
    };
    Signer::with_keys(
        secrets.iter().map(String::as_str),
        signing_keys.iter().map(String::as_str),
    )
    .map_err(|e| e.to_string())
}

/// A token bucket for `rate_limit_per_sec`.
#[derive(Debug, Clone)]
pub(super) struct Bucket {
    pub(super) rate: f64,
    pub(super) tokens: f64,
    pub(super) at: i64,
}

impl Bucket {
    pub(super) fn new(rate: u32, now: i64) -> Self {
        Self {
            rate: f64::from(rate),
            tokens: f64::from(rate).max(1.0),
            at: now,
        }
    }

    pub(super) fn refill(&mut self, now: i64) {
        let elapsed = (now - self.at).max(0) as f64 / 1000.0;
        self.tokens = (self.tokens + elapsed * self.rate).min(self.rate.max(1.0));
        self.at = now;
    }

    /// Whole tokens available now.
    pub(super) fn available(&mut self, now: i64) -> usize {
        self.refill(now);
        self.tokens.floor().max(0.0) as usize
    }

    pub(super) fn take(&mut self, n: usize) {
        self.tokens -= n as f64;
    }

    /// When the next whole token exists.
    pub(super) fn next_token_at(&self) -> i64 {
        let missing = (1.0 - self.tokens).max(0.0);
        self.at + (missing / self.rate * 1000.0).ceil() as i64
    }
}

#[derive(Debug)]
pub(super) struct Lane {
    pub(super) target: Option<Arc<Target>>,
    pub(super) loaded_at: Option<Instant>,
    pub(super) in_flight: u32,
    pub(super) claiming: bool,
    pub(super) breaker: Breaker,
    pub(super) bucket: Option<Bucket>,
    pub(super) disabling: bool,
    /// More deliveries may be due than the last claim took (it was full, or the
    /// store announced new work): a freed slot should trigger another claim. When
    /// false, only an announcement or the next-due timer brings the lane back.
    pub(super) backlog: bool,
    /// The store announced new work while a claim was in flight. That claim may
    /// have read the queue (and the next due time) before the commit announced, so
    /// when it returns short the lane claims once more instead of going quiet
    /// ([`Lane::claim_returned`]). Freed slots and timers do not set it: they bring
    /// no work that the claim's reads could have missed.
    pub(super) announced_while_claiming: bool,
    /// The circuit state last counted in [`CircuitCounts`].
    pub(super) circuit: &'static str,
    /// Last claim or outcome: an idle lane is dropped after a while.
    pub(super) last_used: Instant,
}

impl Lane {
    pub(super) fn new(breaker: Breaker) -> Self {
        Self {
            target: None,
            loaded_at: None,
            in_flight: 0,
            claiming: false,
            breaker,
            bucket: None,
            disabling: false,
            backlog: true,
            announced_while_claiming: false,
            circuit: CircuitState::Closed.as_str(),
            last_used: Instant::now(),
        }
    }

    /// A claim returned with `full` (it got all it asked for) or short: whether the
    /// lane should claim again now. A full claim may have left more behind; a short
    /// one saw the whole queue, unless new work was announced while it ran. Otherwise
    /// only an announcement or the next-due timer brings the lane back.
    pub(super) fn claim_returned(&mut self, full: bool) -> bool {
        let woken = std::mem::take(&mut self.announced_while_claiming);
        self.backlog = full || woken;
        self.backlog
    }

    /// Nothing in flight, nothing known to wait, a closed circuit without failures
    /// and unused for `idle`: dropping the lane loses nothing (the next announcement
    /// or timer makes a new one).
    pub(super) fn is_idle(&self, idle: Duration) -> bool {
        self.in_flight == 0
            && !self.claiming
            && !self.backlog
            && !self.disabling
            && self.breaker.state() == CircuitState::Closed
            && self.breaker.consecutive_failures() == 0
            && self.last_used.elapsed() >= idle
    }
}

/// Lanes per circuit state, for the `gatepulse_endpoint_circuits` gauge.
#[derive(Debug, Default)]
pub(super) struct CircuitCounts {
    closed: u64,
    half_open: u64,
    open: u64,
}

impl CircuitCounts {
    fn slot(&mut self, state: &str) -> &mut u64 {
        match state {
            "open" => &mut self.open,
            "half_open" => &mut self.half_open,
            _ => &mut self.closed,
        }
    }

    /// A lane was created (`from` None), changed state or was dropped (`to` None).
    pub(super) fn moved(&mut self, from: Option<&str>, to: Option<&str>) {
        if from == to {
            return;
        }
        if let Some(f) = from {
            let n = self.slot(f);
            *n = n.saturating_sub(1);
        }
        if let Some(t) = to {
            *self.slot(t) += 1;
        }
        crate::telemetry::set_circuits(self.closed, self.half_open, self.open);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_short_claim_claims_again_only_when_work_was_announced_while_it_ran() {
        let mut lane = Lane::new(Breaker::new(super::super::circuit::BreakerConfig {
            threshold: 3,
            cooldown_ms: 1_000,
            max_cooldown_ms: 3_000,
        }));
        lane.claiming = true;
        assert!(!lane.claim_returned(false), "nothing woke it: quiet");
        assert!(!lane.backlog);
        // An announcement arrives while the claim reads the queue: that claim may
        // not see what was announced.
        lane.announced_while_claiming = true;
        assert!(lane.claim_returned(false));
        assert!(lane.backlog);
        // Consumed: the next short claim goes quiet again.
        assert!(!lane.claim_returned(false));
        assert!(lane.claim_returned(true), "a full claim may have left more");
    }

    #[test]
    fn circuit_counts_follow_lanes() {
        let mut c = CircuitCounts::default();
        c.moved(None, Some("closed"));
        c.moved(None, Some("closed"));
        c.moved(Some("closed"), Some("open"));
        assert_eq!((c.closed, c.half_open, c.open), (1, 0, 1));
        c.moved(Some("open"), Some("half_open"));
        c.moved(Some("closed"), None);
        assert_eq!((c.closed, c.half_open, c.open), (0, 1, 0));
    }

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
