//! Token lifetimes as people choose them: the presets the seeds list, or a date.

use time::format_description::well_known::Rfc3339;
use time::macros::format_description;
use time::{Date, Duration, OffsetDateTime, Time};

use crate::DomainError;

/// A lifetime choice; resolve it against "now" to get the expiry instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expiry {
    Never,
    Days(i64),
    At(OffsetDateTime),
}

/// The preset names, in the order a UI offers them.
pub const PRESETS: [(&str, Expiry); 6] = [
    ("never", Expiry::Never),
    ("30d", Expiry::Days(30)),
    ("90d", Expiry::Days(90)),
    ("1y", Expiry::Days(365)),
    ("2y", Expiry::Days(730)),
    ("5y", Expiry::Days(1825)),
];

impl Expiry {
    /// Accepts a preset, a date (`YYYY-MM-DD`, meaning the end of that day in UTC) or an
    /// RFC 3339 instant. An explicit moment must lie in the future.
    pub fn parse(input: &str, now: OffsetDateTime) -> Result<Self, DomainError> {
        let input = input.trim();
        if let Some((_, preset)) = PRESETS.iter().find(|(name, _)| *name == input) {
            return Ok(*preset);
        }
        let at = if let Ok(date) = Date::parse(input, format_description!("[year]-[month]-[day]")) {
            date.with_time(Time::MAX).assume_utc()
        } else if let Ok(instant) = OffsetDateTime::parse(input, &Rfc3339) {
            instant
        } else {
            return Err(DomainError::invalid(
                "expires",
                "use never, 30d, 90d, 1y, 2y, 5y, a date (YYYY-MM-DD) or an RFC 3339 time",
            ));
        };
        if at <= now {
            return Err(DomainError::invalid("expires", "must be in the future"));
        }
        Ok(Expiry::At(at))
    }

    pub fn resolve(self, now: OffsetDateTime) -> Option<OffsetDateTime> {
        match self {
            Expiry::Never => None,
            Expiry::Days(days) => Some(now + Duration::days(days)),
            Expiry::At(at) => Some(at),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    const NOW: OffsetDateTime = datetime!(2026-11-24 10:00 UTC);

    #[test]
    fn presets_resolve_to_day_offsets() {
        let cases = [
            ("never", None),
            ("30d", Some(datetime!(2026-12-24 10:00 UTC))),
            ("90d", Some(datetime!(2027-02-22 10:00 UTC))),
            ("1y", Some(datetime!(2027-11-24 10:00 UTC))),
            ("2y", Some(datetime!(2028-11-23 10:00 UTC))),
            ("5y", Some(datetime!(2031-11-23 10:00 UTC))),
        ];
        for (input, want) in cases {
            assert_eq!(
                Expiry::parse(input, NOW).unwrap().resolve(NOW),
                want,
                "{input}"
            );
        }
    }

    #[test]
    fn dates_mean_end_of_day_utc() {
        let at = Expiry::parse("2027-01-31", NOW)
            .unwrap()
            .resolve(NOW)
            .unwrap();
        assert_eq!(at.date(), time::macros::date!(2027 - 01 - 31));
        assert_eq!(at.hour(), 23);
        let exact = Expiry::parse("2027-01-31T12:00:00Z", NOW).unwrap();
        assert_eq!(exact.resolve(NOW), Some(datetime!(2027-01-31 12:00 UTC)));
    }

    #[test]
    fn past_and_garbage_are_refused() {
        for bad in [
            "2020-01-01",
            "2026-11-24T09:59:59Z",
            "7",
            "forever",
            "2027-13-01",
            "",
        ] {
            assert!(Expiry::parse(bad, NOW).is_err(), "{bad}");
        }
        assert!(
            Expiry::parse("2026-11-24", NOW).is_ok(),
            "end of today is still ahead"
        );
    }
}
