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
