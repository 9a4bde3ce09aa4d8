//! The Speechmatics dialect: its real-time WebSocket protocol and its temporary keys,
//! translated to hark's streams and tokens.

pub mod api_keys;
mod messages;
pub mod realtime;
