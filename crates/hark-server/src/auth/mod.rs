//! Who is calling: tokens (verified against a cache backed by the store), web sessions,
//! and what each may do.

mod cache;
mod client_address;
mod extract;
pub mod limits;
pub mod passwords;
mod principal;
pub mod sessions;
pub mod shared_budget;
mod throttle;
mod usage;

pub use cache::TokenAuthenticator;
pub use client_address::{ClientIp, ForwardedHeader, limiter_key};
pub use extract::{AccessLogSlot, Caller, presented_token};
pub use principal::{BudgetHolder, Credential, Principal};
pub use throttle::AddressThrottle;
pub use usage::{UsageRecorder, Use};
