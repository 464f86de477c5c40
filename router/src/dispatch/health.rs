//! Endpoint health as the engine sees it: circuit state, consecutive failures and
//! the success rate of the last attempts, shown by `/v1/stats` and
//! `/v1/endpoints/{id}/health`.

use std::collections::VecDeque;

use serde::Serialize;

use super::circuit::CircuitState;

/// Outcomes kept per endpoint for the health success rate.
pub(super) const HEALTH_WINDOW: usize = 100;

/// An endpoint's delivery health as the engine sees it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
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
    /// While the circuit is open: until when (ms).
    #[serde(skip)]
    pub(super) open_until: Option<i64>,
    #[serde(skip)]
    recent: VecDeque<bool>,
}

impl Default for Health {
    /// An endpoint never attempted: circuit closed, no history.
    fn default() -> Self {
        Self {
            circuit: CircuitState::Closed.as_str(),
            consecutive_failures: 0,
            success_rate: None,
            recent_attempts: 0,
            last_status_code: None,
            last_error: None,
            last_attempt_at: None,
            in_flight: 0,
            open_until: None,
            recent: VecDeque::new(),
        }
    }
}

impl Health {
    /// Adds one attempt's result to the window of recent attempts.
    pub(super) fn record(&mut self, ok: bool, status: Option<u16>, error: Option<String>, at: i64) {
        self.recent.push_back(ok);
        if self.recent.len() > HEALTH_WINDOW {
            self.recent.pop_front();
        }
        self.recent_attempts = self.recent.len();
        let good = self.recent.iter().filter(|b| **b).count();
        self.success_rate = Some(good as f64 / self.recent.len() as f64);
        self.last_status_code = status;
        self.last_error = error;
        self.last_attempt_at = Some(at);
    }
}

/// How a node's report travels through the store: its `Health` with the fields the
/// API does not show but a merge needs.
#[derive(Debug, Serialize, serde::Deserialize)]
struct Shared {
    circuit: String,
    consecutive_failures: u32,
    success_rate: Option<f64>,
    recent_attempts: usize,
    last_status_code: Option<u16>,
    last_error: Option<String>,
    last_attempt_at: Option<i64>,
    in_flight: u32,
    #[serde(default)]
    open_until: Option<i64>,
}

/// A report counts towards the circuit, failures and success rate this long after it
/// was written; its in-flight count only for [`IN_FLIGHT_FRESH_MS`] (a node writes
/// while it has sends in flight, about once a second).
const RECENT_MS: i64 = 60_000;
const IN_FLIGHT_FRESH_MS: i64 = 5_000;

impl Health {
    /// The report a node shares.
    pub(super) fn encode(&self) -> String {
        serde_json::to_string(&Shared {
            circuit: self.circuit.to_owned(),
            consecutive_failures: self.consecutive_failures,
            success_rate: self.success_rate,
            recent_attempts: self.recent_attempts,
            last_status_code: self.last_status_code,
            last_error: self.last_error.clone(),
            last_attempt_at: self.last_attempt_at,
            in_flight: self.in_flight,
            open_until: self.open_until,
        })
        .unwrap_or_default()
    }

    fn decode(data: &str) -> Option<Self> {
        let s: Shared = serde_json::from_str(data).ok()?;
        Some(Self {
            circuit: circuit_name(&s.circuit),
            consecutive_failures: s.consecutive_failures,
            success_rate: s.success_rate,
            recent_attempts: s.recent_attempts,
            last_status_code: s.last_status_code,
            last_error: s.last_error,
            last_attempt_at: s.last_attempt_at,
            in_flight: s.in_flight,
            open_until: s.open_until,
            recent: VecDeque::new(),
        })
    }

    /// The cluster's health of one endpoint from every node's report `(written at,
    /// data)` as of `now`: the worst circuit, the most consecutive failures and the
    /// success rate weighted by attempts among recent reports (the latest alone when
    /// none is recent), the last attempt of any, and the in-flight sends of fresh
    /// reports summed. A report that cannot be read is left out.
    pub fn merge<'a>(reports: impl IntoIterator<Item = (i64, &'a str)>, now: i64) -> Self {
        let mut all: Vec<(i64, Health)> = reports
            .into_iter()
            .filter_map(|(at, data)| Some((at, Self::decode(data)?)))
            .collect();
        all.sort_by_key(|(at, _)| std::cmp::Reverse(*at));
        let mut recent: Vec<&Health> = all
            .iter()
            .filter(|(at, _)| now - *at <= RECENT_MS)
            .map(|(_, h)| h)
            .collect();
        if recent.is_empty() {
            recent.extend(all.first().map(|(_, h)| h));
        }
        let mut out = Self::default();
        let rank = |c: &str| match c {
            "open" => 2,
            "half_open" => 1,
            _ => 0,
        };
        let (mut good, mut weight) = (0.0, 0usize);
        for h in &recent {
            if rank(h.circuit) > rank(out.circuit) {
                out.circuit = h.circuit;
            }
            if h.circuit == "open" {
                out.open_until = out.open_until.max(h.open_until);
            }
            out.consecutive_failures = out.consecutive_failures.max(h.consecutive_failures);
            if let Some(rate) = h.success_rate {
                good += rate * h.recent_attempts as f64;
                weight += h.recent_attempts;
            }
        }
        out.recent_attempts = weight;
        out.success_rate = (weight > 0).then(|| good / weight as f64);
        if let Some((_, last)) = all
            .iter()
            .filter(|(_, h)| h.last_attempt_at.is_some())
            .max_by_key(|(_, h)| h.last_attempt_at)
        {
            out.last_attempt_at = last.last_attempt_at;
            out.last_status_code = last.last_status_code;
            out.last_error = last.last_error.clone();
        }
        out.in_flight = all
            .iter()
            .filter(|(at, _)| now - *at <= IN_FLIGHT_FRESH_MS)
            .map(|(_, h)| h.in_flight)
            .sum();
        out
    }
}

fn circuit_name(name: &str) -> &'static str {
    match name {
        "open" => CircuitState::Open { until: 0 }.as_str(),
        "half_open" => CircuitState::HalfOpen.as_str(),
        _ => CircuitState::Closed.as_str(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn report(
        circuit: &'static str,
        failures: u32,
        rate: f64,
        n: usize,
        last: i64,
        in_flight: u32,
    ) -> String {
        Health {
            circuit,
            consecutive_failures: failures,
            success_rate: Some(rate),
            recent_attempts: n,
            last_status_code: Some(if rate > 0.5 { 200 } else { 500 }),
            last_error: None,
            last_attempt_at: Some(last),
            in_flight,
            open_until: (circuit == "open").then_some(last + 30_000),
            recent: VecDeque::new(),
        }
        .encode()
    }

    #[test]
    fn reports_of_several_nodes_merge_into_the_clusters_health() {
        let now = 1_000_000;
        let a = report("closed", 0, 1.0, 100, now - 10, 4);
        let b = report("open", 7, 0.5, 50, now - 500, 2);
        let stale = report("closed", 0, 1.0, 100, now - 200_000, 9);
        let h = Health::merge(
            [
                (now - 10, a.as_str()),
                (now - 500, b.as_str()),
                (now - 200_000, stale.as_str()),
            ],
            now,
        );
        assert_eq!(h.circuit, "open", "the worst recent circuit");
        assert_eq!(h.open_until, Some(now - 500 + 30_000));
        assert_eq!(h.consecutive_failures, 7);
        assert_eq!(h.recent_attempts, 150);
        let rate = h.success_rate.unwrap();
        assert!(
            (rate - 125.0 / 150.0).abs() < 1e-9,
            "weighted by attempts: {rate}"
        );
        assert_eq!(h.in_flight, 6, "fresh reports only");
        assert_eq!(
            (h.last_attempt_at, h.last_status_code),
            (Some(now - 10), Some(200))
        );
        // Only old reports: the latest one speaks.
        let h = Health::merge([(now - 200_000, stale.as_str())], now);
        assert_eq!(
            (h.circuit, h.recent_attempts, h.in_flight),
            ("closed", 100, 0)
        );
        assert_eq!(Health::merge([(now, "not json")], now).success_rate, None);
    }
}
