//! The Speechmatics dialect: its real-time WebSocket protocol, its batch API and its temporary keys,
//! translated to hark's streams and tokens.

pub mod api_keys;
pub mod batch;
mod batch_config;
mod batch_format;
mod batch_notify;
mod messages;
pub mod realtime;
