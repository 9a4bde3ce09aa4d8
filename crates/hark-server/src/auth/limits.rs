//! Request limits for token callers, in memory (GCRA by `governor`), the per-token budget
//! in Redis instead when the nodes share one (`--redis-url`, [`SharedBudget`]):
//! - per token: so many requests a minute; every answer to a token carries
//!   `RateLimit-Limit` / `RateLimit-Remaining` / `RateLimit-Reset`, and going over is a
//!   `429` with `Retry-After`;
//! - per client IP, failed token authentications: a tighter budget against guessing; once
//!   spent, the address gets `429` before any token is parsed or looked up.

use crate::budgets::BudgetSlot;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;
use dashmap::DashMap;
use governor::NotUntil;
use governor::clock::QuantaInstant;
use governor::clock::{Clock, DefaultClock};
use governor::middleware::{StateInformationMiddleware, StateSnapshot};
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use super::limiter_key;
use super::shared_budget::{SharedBudget, Step};
use crate::error::ApiError;

type TokenLimiter =
    RateLimiter<i64, DefaultKeyedStateStore<i64>, DefaultClock, StateInformationMiddleware>;

/// What a token may still do in the current window, for the response headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Allowance {
    pub limit: u32,
    pub remaining: u32,
    /// Seconds until the allowance is whole again.
    pub reset_secs: u64,
}

type OwnLimiter = RateLimiter<
    governor::state::NotKeyed,
    governor::state::InMemoryState,
    DefaultClock,
    StateInformationMiddleware,
>;

pub struct RequestLimits {
    per_token: Option<(TokenLimiter, u32)>,
    /// Tokens with a budget of their own, each with its own limiter (rebuilt when the
    /// budget changes).
    own: DashMap<i64, (u32, Arc<OwnLimiter>)>,
    failures: Option<DefaultKeyedRateLimiter<IpAddr>>,
    locked_out: DashMap<IpAddr, Instant>,
    /// The per-token budget shared by every node; the in-memory one stands in while it
    /// cannot be reached.
    shared: Option<SharedBudget>,
    /// When an unreachable shared budget was last logged (seconds since `created`).
    shared_warned: std::sync::atomic::AtomicU64,
    created: Instant,
}

fn per_minute(n: u32) -> Option<Quota> {
    NonZeroU32::new(n).map(Quota::per_minute)
}

impl RequestLimits {
    /// `0` turns a limit off.
    pub fn new(token_requests_per_minute: u32, failed_auths_per_minute: u32) -> Self {
        RequestLimits {
            per_token: per_minute(token_requests_per_minute).map(|quota| {
                (
                    RateLimiter::keyed(quota).with_middleware::<StateInformationMiddleware>(),
                    token_requests_per_minute,
                )
            }),
            own: DashMap::new(),
            failures: per_minute(failed_auths_per_minute).map(RateLimiter::keyed),
            locked_out: DashMap::new(),
            shared: None,
            shared_warned: std::sync::atomic::AtomicU64::new(0),
            created: Instant::now(),
        }
    }

    /// Counts token requests in `shared` (every node's budget) instead of in memory.
    pub fn with_shared(mut self, shared: SharedBudget) -> Self {
        self.shared = Some(shared);
        self
    }

    /// Before a presented token is even parsed: is this address locked out?
    pub fn check_address(&self, ip: Option<IpAddr>) -> Result<(), ApiError> {
        let Some(ip) = ip.map(limiter_key) else {
            return Ok(());
        };
        let Some(until) = self.locked_out.get(&ip).map(|u| *u) else {
            return Ok(());
        };
        let now = Instant::now();
        if until <= now {
            self.locked_out.remove(&ip);
            return Ok(());
        }
        Err(ApiError::TooManyRequests {
            retry_after_secs: (until - now).as_secs().max(1),
            limit: None,
        })
    }

    /// A presented token failed to authenticate; too many from one address lock it out.
    pub fn record_failure(&self, ip: Option<IpAddr>) {
        let (Some(ip), Some(failures)) = (ip.map(limiter_key), &self.failures) else {
            return;
        };
        if let Err(not_until) = failures.check_key(&ip) {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            self.locked_out
                .insert(ip, Instant::now() + wait.max(Duration::from_secs(1)));
        }
        if failures.len() > 100_000 {
            failures.retain_recent();
            self.locked_out.retain(|_, until| *until > Instant::now());
        }
    }

    /// Addresses locked out right now, for `/metrics`.
    pub fn locked_out_addresses(&self) -> usize {
        let now = Instant::now();
        self.locked_out.iter().filter(|e| *e.value() > now).count()
    }

    /// Counts one request by `token_id`, against its own budget when it has one — in the
    /// shared budget when there is one and it answers, else on this node.
    pub async fn check_token(
        &self,
        token_id: i64,
        own_budget: Option<u32>,
    ) -> Result<Option<Allowance>, ApiError> {
        if let Some(shared) = &self.shared {
            let limit = own_budget
                .filter(|b| *b > 0)
                .or(self.per_token.as_ref().map(|(_, limit)| *limit));
            let Some(limit) = limit else {
                return Ok(None);
            };
            match shared.step(token_id, limit).await {
                Ok(step) => return shared_allowance(step, limit),
                Err(e) => self.warn_unshared(&e),
            }
        }
        self.check_token_here(token_id, own_budget)
    }

    /// Logs (at most every 10 s) that the shared budget is unreachable.
    fn warn_unshared(&self, error: &redis::RedisError) {
        use std::sync::atomic::Ordering;
        let now = self.created.elapsed().as_secs() + 10;
        let last = self.shared_warned.load(Ordering::Relaxed);
        if now >= last + 10
            && self
                .shared_warned
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            tracing::warn!(error = %error, "the shared rate limit (Redis) does not answer; limiting on this node meanwhile");
        }
    }

    fn check_token_here(
        &self,
        token_id: i64,
        own_budget: Option<u32>,
    ) -> Result<Option<Allowance>, ApiError> {
        if let Some(budget) = own_budget.filter(|b| *b > 0) {
            let limiter = {
                let mut entry = self
                    .own
                    .entry(token_id)
                    .or_insert_with(|| (budget, Arc::new(own_limiter(budget))));
                if entry.0 != budget {
                    *entry = (budget, Arc::new(own_limiter(budget)));
                }
                entry.1.clone()
            };
            return allowance(limiter.check(), budget);
        }
        let Some((limiter, limit)) = &self.per_token else {
            return Ok(None);
        };
        allowance(limiter.check_key(&token_id), *limit)
    }
}

fn own_limiter(budget: u32) -> OwnLimiter {
    let quota = per_minute(budget).unwrap_or_else(|| Quota::per_minute(NonZeroU32::MIN));
    RateLimiter::direct(quota).with_middleware::<StateInformationMiddleware>()
}

/// The allowance a shared step left, or its 429.
fn shared_allowance(step: Step, limit: u32) -> Result<Option<Allowance>, ApiError> {
    let secs = step.wait_ms.div_ceil(1000);
    if step.allowed {
        Ok(Some(Allowance {
            limit,
            remaining: step.remaining,
            reset_secs: secs,
        }))
    } else {
        Err(ApiError::TooManyRequests {
            retry_after_secs: secs.max(1),
            limit: Some(limit),
        })
    }
}

/// The allowance left after a check, or the 429 that says when to come back.
fn allowance(
    outcome: Result<StateSnapshot, NotUntil<QuantaInstant>>,
    limit: u32,
) -> Result<Option<Allowance>, ApiError> {
    match outcome {
        Ok(state) => {
            let remaining = state.remaining_burst_capacity();
            let period = state.quota().replenish_interval();
            let missing = limit.saturating_sub(remaining);
            Ok(Some(Allowance {
                limit,
                remaining,
                reset_secs: (period * missing).as_secs(),
            }))
        }
        Err(not_until) => Err(ApiError::TooManyRequests {
            retry_after_secs: not_until
                .wait_time_from(DefaultClock::default().now())
                .as_secs()
                .max(1),
            limit: Some(limit),
        }),
    }
}

/// Filled by authentication so [`headers`] can describe the caller's allowance.
#[derive(Clone, Default)]
pub struct AllowanceSlot(pub Arc<OnceLock<Allowance>>);

/// Adds the `RateLimit-*` headers to every response to a rate-limited token, and the
/// `Audio-Quota-Remaining` / `Audio-Quota-Reset` (seconds) ones to a budgeted token's.
pub async fn headers(mut request: Request, next: Next) -> Response {
    let slot = AllowanceSlot::default();
    let budget = BudgetSlot::default();
    request.extensions_mut().insert(slot.clone());
    request.extensions_mut().insert(budget.clone());
    let mut response = next.run(request).await;
    if let Some(allowance) = slot.0.get() {
        set_headers(
            response.headers_mut(),
            allowance.limit,
            allowance.remaining,
            allowance.reset_secs,
        );
    }
    if let Some(budget) = budget.0.get() {
        let reset = (budget.resets_at - time::OffsetDateTime::now_utc())
            .whole_seconds()
            .max(0);
        let headers = response.headers_mut();
        headers.insert(
            "audio-quota-remaining",
            HeaderValue::from(budget.remaining_seconds.floor() as u64),
        );
        headers.insert("audio-quota-reset", HeaderValue::from(reset as u64));
    }
    response
}

pub fn set_headers(headers: &mut HeaderMap, limit: u32, remaining: u32, reset_secs: u64) {
    headers.insert("ratelimit-limit", HeaderValue::from(limit));
    headers.insert("ratelimit-remaining", HeaderValue::from(remaining));
    headers.insert("ratelimit-reset", HeaderValue::from(reset_secs));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_token_gets_its_quota_then_429() {
        let limits = RequestLimits::new(3, 0);
        let first = limits
            .check_token(7, None)
            .await
            .expect("ok")
            .expect("limited");
        assert_eq!((first.limit, first.remaining), (3, 2));
        limits.check_token(7, None).await.expect("second");
        let third = limits
            .check_token(7, None)
            .await
            .expect("third")
            .expect("limited");
        assert_eq!(third.remaining, 0);
        assert!(third.reset_secs > 0 && third.reset_secs <= 60);
        match limits.check_token(7, None).await {
            Err(ApiError::TooManyRequests {
                retry_after_secs,
                limit,
            }) => {
                assert!((1..=20).contains(&retry_after_secs));
                assert_eq!(limit, Some(3));
            }
            other => panic!("expected 429, got {other:?}"),
        }
        assert!(
            limits.check_token(8, None).await.is_ok(),
            "other tokens keep theirs"
        );
    }

    #[test]
    fn an_ipv6_client_cannot_walk_its_slash_64_past_the_lock_out() {
        let limits = RequestLimits::new(0, 2);
        for n in 1..=3u16 {
            let ip = IpAddr::V6(std::net::Ipv6Addr::new(0x2001, 0xdb8, 0, 1, n, n, n, n));
            limits.record_failure(Some(ip));
        }
        let fresh: IpAddr = "2001:db8:0:1:dead:beef::99".parse().expect("ip");
        assert!(limits.check_address(Some(fresh)).is_err(), "same /64");
        let neighbour: IpAddr = "2001:db8:0:2::1".parse().expect("ip");
        assert!(limits.check_address(Some(neighbour)).is_ok(), "another /64");
    }

    #[tokio::test]
    async fn failures_lock_an_address_out_and_only_that_address() {
        let limits = RequestLimits::new(0, 2);
        let ip: IpAddr = "192.0.2.1".parse().expect("ip");
        let other: IpAddr = "192.0.2.2".parse().expect("ip");
        for _ in 0..2 {
            limits.record_failure(Some(ip));
            assert!(limits.check_address(Some(ip)).is_ok());
        }
        limits.record_failure(Some(ip));
        assert!(matches!(
            limits.check_address(Some(ip)),
            Err(ApiError::TooManyRequests { limit: None, .. })
        ));
        assert!(limits.check_address(Some(other)).is_ok());
        assert_eq!(
            limits.check_token(1, None).await.expect("off"),
            None,
            "0 turns it off"
        );
    }
}
