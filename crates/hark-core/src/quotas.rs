//! Audio budgets: a token may transcribe so many seconds of audio a period, refilled at
//! the start of each UTC day or month (Unkey's `remaining` with `refill`).

use time::{Date, OffsetDateTime, Time};

use crate::DomainError;

/// Largest budget one token may carry: a year of audio a period is more than any use.
pub const MAX_QUOTA_MINUTES: u64 = 525_600;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refill {
    Daily,
    Monthly,
}

impl Refill {
    pub fn parse(text: &str) -> Result<Self, DomainError> {
        match text {
            "daily" => Ok(Refill::Daily),
            "monthly" => Ok(Refill::Monthly),
            _ => Err(DomainError::invalid(
                "audio_quota_refill",
                "must be \"daily\" or \"monthly\"",
            )),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Refill::Daily => "daily",
            Refill::Monthly => "monthly",
        }
    }

    /// The start of the period `at` falls in.
    pub fn period_start(self, at: OffsetDateTime) -> OffsetDateTime {
        let at = at.to_offset(time::UtcOffset::UTC);
        let day = match self {
            Refill::Daily => at.date(),
            Refill::Monthly => at.date().replace_day(1).unwrap_or(at.date()),
        };
        day.with_time(Time::MIDNIGHT).assume_utc()
    }

    /// When the period `at` falls in ends and the budget is whole again.
    pub fn next_reset(self, at: OffsetDateTime) -> OffsetDateTime {
        let start = self.period_start(at).date();
        let next: Date = match self {
            Refill::Daily => start.next_day().unwrap_or(start),
            Refill::Monthly => {
                let (year, month) = match start.month() {
                    time::Month::December => (start.year() + 1, time::Month::January),
                    m => (start.year(), m.next()),
                };
                Date::from_calendar_date(year, month, 1).unwrap_or(start)
            }
        };
        next.with_time(Time::MIDNIGHT).assume_utc()
    }
}

/// A token's budget: `seconds` of audio each period.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AudioQuota {
    pub seconds: u64,
    pub refill: Refill,
}

impl AudioQuota {
    /// From the API's fields: minutes (1 to [`MAX_QUOTA_MINUTES`]) and a refill, both
    /// or neither.
    pub fn from_minutes(
        minutes: Option<u64>,
        refill: Option<&str>,
    ) -> Result<Option<Self>, DomainError> {
        match (minutes, refill) {
            (None, None) => Ok(None),
            (Some(minutes), refill) => {
                if !(1..=MAX_QUOTA_MINUTES).contains(&minutes) {
                    return Err(DomainError::invalid(
                        "audio_quota_minutes",
                        format!("must be between 1 and {MAX_QUOTA_MINUTES}"),
                    ));
                }
                Ok(Some(AudioQuota {
                    seconds: minutes * 60,
                    refill: Refill::parse(refill.unwrap_or("monthly"))?,
                }))
            }
            (None, Some(_)) => Err(DomainError::invalid(
                "audio_quota_refill",
                "needs audio_quota_minutes",
            )),
        }
    }

    /// Seconds left at `at`, given what was used in the period starting `period_start`
    /// (a use recorded in an earlier period no longer counts).
    pub fn remaining(
        &self,
        used_seconds: f64,
        period_start: Option<OffsetDateTime>,
        at: OffsetDateTime,
    ) -> f64 {
        let used = match period_start {
            Some(start) if start >= self.refill.period_start(at) => used_seconds,
            _ => 0.0,
        };
        (self.seconds as f64 - used).max(0.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn periods_start_and_end_at_utc_midnight() {
        let at = datetime!(2026-12-31 18:30 UTC);
        assert_eq!(
            Refill::Daily.period_start(at),
            datetime!(2026-12-31 0:00 UTC)
        );
        assert_eq!(Refill::Daily.next_reset(at), datetime!(2027-01-01 0:00 UTC));
        assert_eq!(
            Refill::Monthly.period_start(at),
            datetime!(2026-12-01 0:00 UTC)
        );
        assert_eq!(
            Refill::Monthly.next_reset(at),
            datetime!(2027-01-01 0:00 UTC)
        );
        let feb = datetime!(2026-02-10 3:00 +05:00);
        assert_eq!(
            Refill::Monthly.next_reset(feb),
            datetime!(2026-03-01 0:00 UTC)
        );
    }

    #[test]
    fn use_from_an_earlier_period_is_forgotten() {
        let quota = AudioQuota {
            seconds: 600,
            refill: Refill::Daily,
        };
        let now = datetime!(2026-12-01 12:00 UTC);
        let today = Some(datetime!(2026-12-01 0:00 UTC));
        let yesterday = Some(datetime!(2026-11-30 0:00 UTC));
        assert_eq!(quota.remaining(450.0, today, now), 150.0);
        assert_eq!(quota.remaining(900.0, today, now), 0.0);
        assert_eq!(quota.remaining(900.0, yesterday, now), 600.0);
        assert_eq!(quota.remaining(0.0, None, now), 600.0);
    }

    #[test]
    fn the_api_fields_are_checked() {
        assert_eq!(AudioQuota::from_minutes(None, None), Ok(None));
        let q = AudioQuota::from_minutes(Some(10), Some("daily")).unwrap();
        assert_eq!(q.map(|q| (q.seconds, q.refill)), Some((600, Refill::Daily)));
        assert!(AudioQuota::from_minutes(Some(0), None).is_err());
        assert!(AudioQuota::from_minutes(Some(10), Some("weekly")).is_err());
        assert!(AudioQuota::from_minutes(None, Some("daily")).is_err());
    }
}
