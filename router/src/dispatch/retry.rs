//! What an attempt's result means, and when the next attempt happens. Pure functions:
//! time and randomness are arguments.

use std::time::Duration;

use crate::store::NextState;

/// How one attempt ended, as far as retry decisions care.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttemptResult {
    /// The receiver answered with this status (and maybe a `Retry-After`).
    Status {
        code: u16,
        retry_after: Option<Duration>,
    },
    /// No usable answer: timeout, connection refused or reset, TLS, DNS.
    Transport,
    /// Sending is not allowed (forbidden destination, invalid URL, a failed transform
    /// stage): retrying cannot help.
    Refused,
    /// Nothing to send: a plugin dropped the delivery. It is done.
    Skipped,
    /// Nothing may ever be sent: the subscription, endpoint or event is gone.
    Cancelled,
    /// GatePulse itself could not prepare the delivery for now (the store failed while
    /// loading the subscription): nothing was sent; try again later.
    Unavailable,
}

/// The decision for one attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Success,
    /// Try again (at the schedule's time, or later if the receiver asked).
    Retry {
        at_least: Option<Duration>,
    },
    /// Stop now; `disable_endpoint` for `410 Gone`.
    GiveUp {
        disable_endpoint: bool,
    },
    /// Stop without sending: the delivery is cancelled.
    Cancel,
}

/// Classifies an attempt. 2xx succeeds; `410 Gone` gives up and disables the endpoint;
/// everything else (3xx — redirects are not followed —, 4xx, 5xx, transport errors)
/// is retried, honouring `Retry-After` on 429 and 503.
pub fn classify(result: &AttemptResult) -> Verdict {
    match result {
        AttemptResult::Status { code, .. } if (200..300).contains(code) => Verdict::Success,
        AttemptResult::Skipped => Verdict::Success,
        AttemptResult::Status { code: 410, .. } => Verdict::GiveUp {
            disable_endpoint: true,
        },
        AttemptResult::Status {
            code: 429 | 503,
            retry_after,
        } => Verdict::Retry {
            at_least: *retry_after,
        },
        AttemptResult::Status { .. } | AttemptResult::Transport | AttemptResult::Unavailable => {
            Verdict::Retry { at_least: None }
        }
        AttemptResult::Cancelled => Verdict::Cancel,
        AttemptResult::Refused => Verdict::GiveUp {
            disable_endpoint: false,
        },
    }
}

/// Retry timing for one endpoint.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    /// Delay before attempt n+1 after attempt n failed; `len() + 1` attempts in all.
    pub schedule_secs: Vec<u32>,
    /// Each delay is scaled by a random factor in `[1 - jitter, 1 + jitter]`.
    pub jitter: f64,
    /// A receiver's `Retry-After` is honoured up to this long.
    pub max_retry_after: Duration,
}

impl RetryPolicy {
    /// The next state after attempt `number` (1-based) ended with `verdict` at
    /// `now_ms`. `random` is uniform in `[0, 1)`.
    pub fn next(&self, number: u32, verdict: &Verdict, now_ms: i64, random: f64) -> NextState {
        match verdict {
            Verdict::Success => NextState::Succeeded,
            Verdict::GiveUp { .. } => NextState::Dead,
            Verdict::Cancel => NextState::Cancelled,
            Verdict::Retry { at_least } => {
                let Some(base) = self.schedule_secs.get(number.saturating_sub(1) as usize) else {
                    return NextState::Dead;
                };
                let factor = 1.0 + self.jitter * (2.0 * random.clamp(0.0, 1.0) - 1.0);
                let mut delay_ms = (f64::from(*base) * 1000.0 * factor).max(0.0) as i64;
                if let Some(asked) = at_least {
                    let asked = (*asked).min(self.max_retry_after).as_millis() as i64;
                    delay_ms = delay_ms.max(asked);
                }
                NextState::Retry {
                    at: now_ms.saturating_add(delay_ms),
                }
            }
        }
    }
}

/// Parses a `Retry-After` value: delta seconds, or an HTTP date.
pub fn parse_retry_after(value: &str, now_ms: i64) -> Option<Duration> {
    let v = value.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let format = time::format_description::well_known::Rfc2822;
    let at = time::OffsetDateTime::parse(v, &format).ok()?;
    let at_ms = (at.unix_timestamp_nanos() / 1_000_000) as i64;
    Some(Duration::from_millis(
        u64::try_from(at_ms - now_ms).unwrap_or(0),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> RetryPolicy {
        RetryPolicy {
            schedule_secs: vec![5, 300],
            jitter: 0.0,
            max_retry_after: Duration::from_secs(3600),
        }
    }

    #[test]
    fn classification_table() {
        let s = |code, ra: Option<u64>| AttemptResult::Status {
            code,
            retry_after: ra.map(Duration::from_secs),
        };
        assert_eq!(classify(&s(200, None)), Verdict::Success);
        assert_eq!(classify(&s(204, None)), Verdict::Success);
        assert_eq!(classify(&s(301, None)), Verdict::Retry { at_least: None });
        assert_eq!(classify(&s(400, None)), Verdict::Retry { at_least: None });
        assert_eq!(
            classify(&s(500, Some(9))),
            Verdict::Retry { at_least: None }
        );
        assert_eq!(
            classify(&s(429, Some(9))),
            Verdict::Retry {
                at_least: Some(Duration::from_secs(9))
            }
        );
        assert_eq!(
            classify(&s(410, None)),
            Verdict::GiveUp {
                disable_endpoint: true
            }
        );
        assert_eq!(
            classify(&AttemptResult::Transport),
            Verdict::Retry { at_least: None }
        );
        assert_eq!(
            classify(&AttemptResult::Refused),
            Verdict::GiveUp {
                disable_endpoint: false
            }
        );
        assert_eq!(classify(&AttemptResult::Cancelled), Verdict::Cancel);
        assert_eq!(
            classify(&AttemptResult::Unavailable),
            Verdict::Retry { at_least: None },
            "our own transient failure is retried, never dead-lettered"
        );
    }

    #[test]
    fn retry_stops_after_last_attempt() {
        let p = policy();
        let retry = Verdict::Retry { at_least: None };
        assert_eq!(
            p.next(1, &retry, 1_000, 0.5),
            NextState::Retry { at: 6_000 }
        );
        assert_eq!(
            p.next(2, &retry, 1_000, 0.5),
            NextState::Retry { at: 301_000 }
        );
        assert_eq!(p.next(3, &retry, 1_000, 0.5), NextState::Dead);
        assert_eq!(
            p.next(1, &Verdict::Success, 1_000, 0.5),
            NextState::Succeeded
        );
        assert_eq!(
            p.next(1, &Verdict::Cancel, 1_000, 0.5),
            NextState::Cancelled
        );
    }

    #[test]
    fn retry_after_is_honoured_within_bounds_and_jitter_stays_in_range() {
        let mut p = policy();
        let asked = Verdict::Retry {
            at_least: Some(Duration::from_secs(60)),
        };
        assert_eq!(p.next(1, &asked, 0, 0.5), NextState::Retry { at: 60_000 });
        let greedy = Verdict::Retry {
            at_least: Some(Duration::from_secs(999_999)),
        };
        assert_eq!(
            p.next(1, &greedy, 0, 0.5),
            NextState::Retry { at: 3_600_000 }
        );
        p.jitter = 0.2;
        for r in [0.0, 0.25, 0.5, 0.99] {
            let NextState::Retry { at } = p.next(2, &Verdict::Retry { at_least: None }, 0, r)
            else {
                panic!("retry expected");
            };
            assert!((240_000..=360_000).contains(&at), "{at}");
        }
    }

    #[test]
    fn retry_after_parses_seconds_and_dates() {
        assert_eq!(parse_retry_after("120", 0), Some(Duration::from_secs(120)));
        let now = 1_445_412_480_000; // Wed, 21 Oct 2015 07:28:00 GMT
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:29:00 GMT", now),
            Some(Duration::from_secs(60))
        );
        assert_eq!(parse_retry_after("soon", 0), None);
    }
}
