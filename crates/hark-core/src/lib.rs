//! hark's domain rules. Nothing here knows about HTTP, SQL or audio: the server and the
//! store translate their inputs into these types and their failures into [`DomainError`].

pub mod duration;
pub mod error;
pub mod expiry;
pub mod networks;
pub mod pagination;
pub mod quotas;
pub mod recordings;
pub mod roles;
pub mod scopes;
pub mod tokens;
pub mod transcripts;
pub mod usage;

pub use error::DomainError;
