//! An endpoint's lane: its settings prepared for sending ([`Target`]), its token
//! bucket for `rate_limit_per_sec`, and the lane state the engine schedules by.

use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::header::{HeaderMap, HeaderName, HeaderValue};

use super::Ctx;
use super::circuit::Breaker;
use super::retry::RetryPolicy;
use super::signing::Signer;
use crate::destination;
use crate::store::Endpoint;

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
    pub(super) fn sends(&self) -> bool {
        self.endpoint.enabled
    }
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
