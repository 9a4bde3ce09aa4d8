//! Who is calling: tokens (verified against a cache backed by the store), web sessions,
//! and what each may do.

mod cache;
mod client_address;
mod extract;
mod last_used;
pub mod limits;
pub mod passwords;
mod principal;
pub mod sessions;
pub mod shared_budget;
mod throttle;

pub use cache::TokenAuthenticator;
pub use client_address::limiter_key;
pub use extract::{AccessLogSlot, presented_token};
pub use last_used::LastUsedRecorder;
pub use principal::{Credential, Principal};
pub use throttle::LoginThrottle;
