//! What became of each presented token, and the speech it paid for (Unkey's verification
//! outcomes, for a speech API).

use serde::Serialize;

/// The one outcome of one request that presented a known token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    Ok,
    Expired,
    Revoked,
    ScopeDenied,
    IpDenied,
    RateLimited,
    QuotaExceeded,
}

impl Outcome {
    pub const ALL: [Outcome; 7] = [
        Outcome::Ok,
        Outcome::Expired,
        Outcome::Revoked,
        Outcome::ScopeDenied,
        Outcome::IpDenied,
        Outcome::RateLimited,
        Outcome::QuotaExceeded,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Expired => "expired",
            Outcome::Revoked => "revoked",
            Outcome::ScopeDenied => "scope_denied",
            Outcome::IpDenied => "ip_denied",
            Outcome::RateLimited => "rate_limited",
            Outcome::QuotaExceeded => "quota_exceeded",
        }
    }
}

/// Counts over some period: requests by outcome, and seconds of audio transcribed in
/// batch and streamed live.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct UsageCounts {
    pub ok: u64,
    pub expired: u64,
    pub revoked: u64,
    pub scope_denied: u64,
    pub ip_denied: u64,
    pub rate_limited: u64,
    pub quota_exceeded: u64,
    pub audio_seconds: f64,
    pub stream_seconds: f64,
}

impl UsageCounts {
    pub fn count(&mut self, outcome: Outcome) {
        *self.slot(outcome) += 1;
    }

    pub fn get(&self, outcome: Outcome) -> u64 {
        let mut copy = *self;
        *copy.slot(outcome)
    }

    fn slot(&mut self, outcome: Outcome) -> &mut u64 {
        match outcome {
            Outcome::Ok => &mut self.ok,
            Outcome::Expired => &mut self.expired,
            Outcome::Revoked => &mut self.revoked,
            Outcome::ScopeDenied => &mut self.scope_denied,
            Outcome::IpDenied => &mut self.ip_denied,
            Outcome::RateLimited => &mut self.rate_limited,
            Outcome::QuotaExceeded => &mut self.quota_exceeded,
        }
    }

    pub fn add(&mut self, other: &UsageCounts) {
        for outcome in Outcome::ALL {
            *self.slot(outcome) += other.get(outcome);
        }
        self.audio_seconds += other.audio_seconds;
        self.stream_seconds += other.stream_seconds;
    }

    pub fn requests(&self) -> u64 {
        Outcome::ALL.iter().map(|o| self.get(*o)).sum()
    }
}

/// How finely a usage series is cut.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Granularity {
    Minute,
    Hour,
    Day,
}

impl Granularity {
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "minute" => Some(Granularity::Minute),
            "hour" => Some(Granularity::Hour),
            "day" => Some(Granularity::Day),
            _ => None,
        }
    }

    pub fn millis(self) -> i64 {
        match self {
            Granularity::Minute => 60_000,
            Granularity::Hour => 3_600_000,
            Granularity::Day => 86_400_000,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_add_up_by_outcome() {
        let mut a = UsageCounts::default();
        a.count(Outcome::Ok);
        a.count(Outcome::Ok);
        a.count(Outcome::IpDenied);
        a.audio_seconds = 1.5;
        let mut b = UsageCounts::default();
        b.count(Outcome::QuotaExceeded);
        b.audio_seconds = 2.0;
        a.add(&b);
        assert_eq!((a.ok, a.ip_denied, a.quota_exceeded), (2, 1, 1));
        assert_eq!(a.requests(), 4);
        assert_eq!(a.audio_seconds, 3.5);
        let names: Vec<&str> = Outcome::ALL.iter().map(|o| o.as_str()).collect();
        assert_eq!(names[5], "rate_limited");
    }
}
