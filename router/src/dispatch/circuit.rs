//! A per-endpoint circuit breaker. Pure: time is an argument.
//!
//! Closed → (threshold consecutive failures) → Open for a cooldown → HalfOpen, where a
//! single probe is allowed: success closes the circuit, failure reopens it with the
//! cooldown doubled (up to a maximum). While open, the endpoint's deliveries wait in
//! the queue; no attempt is spent on them.

/// Breaker settings; `threshold == 0` disables the breaker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakerConfig {
    pub threshold: u32,
    pub cooldown_ms: i64,
    pub max_cooldown_ms: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CircuitState {
    Closed,
    Open { until: i64 },
    HalfOpen,
}

impl CircuitState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Closed => "closed",
            Self::Open { .. } => "open",
            Self::HalfOpen => "half_open",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Breaker {
    config: BreakerConfig,
    state: CircuitState,
    consecutive_failures: u32,
    cooldown_ms: i64,
    /// When the current run of failures began (for auto-disable).
    failing_since: Option<i64>,
}

/// How many attempts the breaker allows right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permit {
    Any,
    /// Half-open: one probe at a time.
    One,
    /// Open until this time.
    None {
        until: i64,
    },
}

impl Breaker {
    pub fn new(config: BreakerConfig) -> Self {
        Self {
            config,
            state: CircuitState::Closed,
            consecutive_failures: 0,
            cooldown_ms: config.cooldown_ms,
            failing_since: None,
        }
    }

    /// A breaker carried over from another node's report (a new leader taking over an
    /// endpoint whose circuit was open): open until `open_until`, or half-open when
    /// that has passed, with the failures counted so far. Auto-disable counts afresh.
    pub fn resume(
        config: BreakerConfig,
        consecutive_failures: u32,
        open_until: Option<i64>,
        now: i64,
    ) -> Self {
        let mut b = Self::new(config);
        b.consecutive_failures = consecutive_failures;
        b.state = match open_until {
            Some(until) if until > now => CircuitState::Open { until },
            Some(_) => CircuitState::HalfOpen,
            None => CircuitState::Closed,
        };
        b
    }

    pub fn state(&self) -> CircuitState {
        self.state
    }

    pub fn consecutive_failures(&self) -> u32 {
        self.consecutive_failures
    }

    pub fn failing_since(&self) -> Option<i64> {
        self.failing_since
    }

    pub fn permit(&mut self, now: i64) -> Permit {
        match self.state {
            CircuitState::Closed => Permit::Any,
            CircuitState::HalfOpen => Permit::One,
            CircuitState::Open { until } if now >= until => {
                self.state = CircuitState::HalfOpen;
                Permit::One
            }
            CircuitState::Open { until } => Permit::None { until },
        }
    }

    pub fn on_success(&mut self) {
        self.state = CircuitState::Closed;
        self.consecutive_failures = 0;
        self.cooldown_ms = self.config.cooldown_ms;
        self.failing_since = None;
    }

    pub fn on_failure(&mut self, now: i64) {
        self.consecutive_failures = self.consecutive_failures.saturating_add(1);
        self.failing_since.get_or_insert(now);
        if self.config.threshold == 0 {
            return;
        }
        match self.state {
            CircuitState::HalfOpen => {
                self.cooldown_ms = (self.cooldown_ms * 2).min(self.config.max_cooldown_ms);
                self.state = CircuitState::Open {
                    until: now + self.cooldown_ms,
                };
            }
            CircuitState::Closed if self.consecutive_failures >= self.config.threshold => {
                self.state = CircuitState::Open {
                    until: now + self.cooldown_ms,
                };
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CFG: BreakerConfig = BreakerConfig {
        threshold: 3,
        cooldown_ms: 1_000,
        max_cooldown_ms: 3_000,
    };

    #[test]
    fn a_resumed_breaker_stays_open_until_its_time_then_probes() {
        let mut b = Breaker::resume(CFG, 5, Some(2_000), 1_000);
        assert_eq!(b.permit(1_500), Permit::None { until: 2_000 });
        assert_eq!(b.permit(2_000), Permit::One);
        assert_eq!(b.consecutive_failures(), 5);
        let mut late = Breaker::resume(CFG, 5, Some(500), 1_000);
        assert_eq!(late.permit(1_000), Permit::One);
        let mut closed = Breaker::resume(CFG, 0, None, 1_000);
        assert_eq!(closed.permit(1_000), Permit::Any);
    }

    #[test]
    fn opens_after_threshold_probes_and_recovers() {
        let mut b = Breaker::new(CFG);
        for t in 0..2 {
            b.on_failure(t);
            assert_eq!(b.permit(t), Permit::Any);
        }
        b.on_failure(10);
        assert_eq!(b.permit(500), Permit::None { until: 1_010 });
        assert_eq!(b.permit(1_010), Permit::One);
        assert_eq!(b.state(), CircuitState::HalfOpen);
        b.on_failure(1_020);
        assert_eq!(
            b.state(),
            CircuitState::Open { until: 3_020 },
            "cooldown doubles"
        );
        assert_eq!(b.permit(3_020), Permit::One);
        b.on_failure(3_030);
        assert_eq!(
            b.state(),
            CircuitState::Open { until: 6_030 },
            "capped at max"
        );
        assert_eq!(b.failing_since(), Some(0));
        b.permit(7_000);
        b.on_success();
        assert_eq!(b.state(), CircuitState::Closed);
        assert_eq!(b.permit(7_001), Permit::Any);
        assert_eq!(b.failing_since(), None);
    }

    #[test]
    fn threshold_zero_never_opens() {
        let mut b = Breaker::new(BreakerConfig {
            threshold: 0,
            ..CFG
        });
        for t in 0..100 {
            b.on_failure(t);
        }
        assert_eq!(b.permit(100), Permit::Any);
        assert_eq!(b.consecutive_failures(), 100);
    }
}
