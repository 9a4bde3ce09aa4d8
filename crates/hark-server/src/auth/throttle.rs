//! Attempts per client IP at something worth guessing at (sign-in, revoke-by-value), so it
//! cannot be done at speed: a small burst, then a steady trickle (GCRA by `governor`, in memory, nothing stored).

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use super::limiter_key;
use crate::error::ApiError;

pub struct AddressThrottle {
    limiter: DefaultKeyedRateLimiter<IpAddr>,
}

impl AddressThrottle {
    /// `burst` attempts at once, then one more every `period`.
    pub fn new(burst: u32, period: Duration) -> Self {
        let burst = NonZeroU32::new(burst.max(1)).unwrap_or(NonZeroU32::MIN);
        let quota = Quota::with_period(period)
            .unwrap_or_else(|| Quota::per_second(NonZeroU32::MIN))
            .allow_burst(burst);
        AddressThrottle {
            limiter: RateLimiter::keyed(quota),
        }
    }

    /// Counts one attempt from `ip`; a `429` with the wait when there were too many.
    pub fn attempt(&self, ip: Option<IpAddr>) -> Result<(), ApiError> {
        // No peer address (in-process callers) shares one budget.
        let ip = ip.unwrap_or(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED));
        self.limiter
            .check_key(&limiter_key(ip))
            .map_err(|not_until| {
                let wait = not_until.wait_time_from(DefaultClock::default().now());
                ApiError::TooManyRequests {
                    retry_after_secs: wait.as_secs().max(1),
                    limit: None,
                }
            })?;
        if self.limiter.len() > 10_000 {
            self.limiter.retain_recent();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_then_429_per_address() {
        let throttle = AddressThrottle::new(3, Duration::from_secs(60));
        let one: IpAddr = "10.0.0.1".parse().expect("ip");
        let other: IpAddr = "10.0.0.2".parse().expect("ip");
        for _ in 0..3 {
            assert!(throttle.attempt(Some(one)).is_ok());
        }
        match throttle.attempt(Some(one)) {
            Err(ApiError::TooManyRequests {
                retry_after_secs, ..
            }) => {
                assert!((1..=60).contains(&retry_after_secs))
            }
            other => panic!("expected 429, got {other:?}"),
        }
        assert!(
            throttle.attempt(Some(other)).is_ok(),
            "other addresses are not affected"
        );
    }

    #[test]
    fn ipv6_sign_ins_are_counted_per_slash_64() {
        let throttle = AddressThrottle::new(2, Duration::from_secs(60));
        for last in ["::1", "::2"] {
            let ip: IpAddr = format!("2001:db8:5:6{last}").parse().expect("ip");
            assert!(throttle.attempt(Some(ip)).is_ok());
        }
        let walked: IpAddr = "2001:db8:5:6:ffff::3".parse().expect("ip");
        assert!(throttle.attempt(Some(walked)).is_err());
    }
}
