//! A small cron schedule for maintenance jobs: five fields (minute, hour, day of
//! month, month, day of week), each `*`, a number, a range `a-b`, a list `a,b,c` or a
//! step `*/n` / `a-b/n`, in UTC. Day of month and day of week combine with AND when
//! both are restricted (simpler than classic cron's OR, and documented).

use std::fmt;

use time::{Duration, OffsetDateTime};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cron expression {expr:?}: {reason}")]
pub struct CronError {
    expr: String,
    reason: String,
}

/// A parsed schedule: one bit set per allowed value of each field.
#[derive(Clone, PartialEq, Eq)]
pub struct Cron {
    source: String,
    minutes: u64,
    hours: u64,
    days: u64,
    months: u64,
    weekdays: u64,
}

impl fmt::Debug for Cron {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Cron({:?})", self.source)
    }
}

fn field(text: &str, min: u32, max: u32) -> Result<u64, String> {
    let mut bits = 0u64;
    for part in text.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((r, s)) => (
                r,
                s.parse::<u32>()
                    .map_err(|_| format!("bad step in {part:?}"))?,
            ),
            None => (part, 1),
        };
        if step == 0 {
            return Err(format!("zero step in {part:?}"));
        }
        let (lo, hi) = if range == "*" {
            (min, max)
        } else if let Some((a, b)) = range.split_once('-') {
            let a = a
                .parse::<u32>()
                .map_err(|_| format!("bad number in {part:?}"))?;
            let b = b
                .parse::<u32>()
                .map_err(|_| format!("bad number in {part:?}"))?;
            (a, b)
        } else {
            let v = range
                .parse::<u32>()
                .map_err(|_| format!("bad number in {part:?}"))?;
            (v, v)
        };
        if lo < min || hi > max || lo > hi {
            return Err(format!("{part:?} is outside {min}-{max}"));
        }
        let mut v = lo;
        while v <= hi {
            bits |= 1 << v;
            v += step;
        }
    }
    Ok(bits)
}

impl Cron {
    pub fn parse(expr: &str) -> Result<Self, CronError> {
        let err = |reason: String| CronError {
            expr: expr.to_owned(),
            reason,
        };
        let fields: Vec<&str> = expr.split_whitespace().collect();
        let [m, h, dom, mon, dow] = fields.as_slice() else {
            return Err(err(
                "expected 5 fields: minute hour day-of-month month day-of-week".into(),
            ));
        };
        let weekdays = field(dow, 0, 7).map_err(err)?;
        Ok(Self {
            source: expr.to_owned(),
            minutes: field(m, 0, 59).map_err(err)?,
            hours: field(h, 0, 23).map_err(err)?,
            days: field(dom, 1, 31).map_err(err)?,
            months: field(mon, 1, 12).map_err(err)?,
            // 7 is Sunday too.
            weekdays: (weekdays | (weekdays >> 7)) & 0x7f,
        })
    }

    fn matches(&self, t: OffsetDateTime) -> bool {
        let bit = |set: u64, v: u8| set & (1 << v) != 0;
        bit(self.minutes, t.minute())
            && bit(self.hours, t.hour())
            && bit(self.days, t.day())
            && bit(self.months, u8::from(t.month()))
            && bit(self.weekdays, t.weekday().number_days_from_sunday())
    }

    /// The first matching minute strictly after `after` (UTC), within ~4 years.
    pub fn next_after(&self, after: OffsetDateTime) -> Option<OffsetDateTime> {
        let start =
            after.replace_second(0).ok()?.replace_nanosecond(0).ok()? + Duration::minutes(1);
        let mut t = start;
        // Minute steps are enough: at most 527,040 per year, and a schedule that never
        // matches (e.g. Feb 31) ends the search.
        for _ in 0..(4 * 366 * 24 * 60) {
            if self.matches(t) {
                return Some(t);
            }
            t += Duration::minutes(1);
        }
        None
    }

    pub fn as_str(&self) -> &str {
        &self.source
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn next(expr: &str, after: OffsetDateTime) -> OffsetDateTime {
        Cron::parse(expr).unwrap().next_after(after).unwrap()
    }

    #[test]
    fn schedules_table() {
        let t = datetime!(2026-11-26 10:07:30 UTC);
        assert_eq!(next("*/15 * * * *", t), datetime!(2026-11-26 10:15 UTC));
        assert_eq!(next("0 3 * * *", t), datetime!(2026-11-27 03:00 UTC));
        assert_eq!(next("30 2 1 * *", t), datetime!(2026-12-01 02:30 UTC));
        assert_eq!(
            next("0 0 * * 0", t),
            datetime!(2026-11-29 00:00 UTC),
            "Sunday"
        );
        assert_eq!(
            next("0 0 * * 7", t),
            datetime!(2026-11-29 00:00 UTC),
            "7 is Sunday"
        );
        assert_eq!(next("5,10 10 * * *", t), datetime!(2026-11-26 10:10 UTC));
        assert_eq!(next("0 9-17/4 * * *", t), datetime!(2026-11-26 13:00 UTC));
        assert_eq!(next("* * * * *", t), datetime!(2026-11-26 10:08 UTC));
    }

    #[test]
    fn bad_expressions_say_why() {
        for bad in [
            "",
            "* * * *",
            "60 * * * *",
            "*/0 * * * *",
            "a * * * *",
            "5-1 * * * *",
        ] {
            assert!(Cron::parse(bad).is_err(), "{bad}");
        }
        assert!(
            Cron::parse("0 0 31 2 *")
                .unwrap()
                .next_after(datetime!(2026-01-01 0:00 UTC))
                .is_none()
        );
    }
}
