//! What ends a live session besides its client: the credential stopping (revoked,
//! expired, its parent revoked, its owner demoted or removed), silence past the idle
//! timeout, or the session's maximum length.
//!
//! A connection outlives the request that authenticated it, so the watch re-verifies its
//! token whenever any token changes (the authenticator announces evictions, within one
//! change-log poll for changes made by other processes) and once a second regardless.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hark_core::tokens::TokenHash;
use tokio::sync::broadcast;
use tokio::time::{Interval, MissedTickBehavior};

use super::StreamLimits;
use crate::auth::TokenAuthenticator;

/// Why the server ends a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// The credential no longer works.
    NotAuthorised,
    /// No audio for the idle timeout.
    IdleTimeout,
    /// The session reached its maximum length.
    SessionTimeout,
}

pub struct CredentialWatch {
    auth: Arc<TokenAuthenticator>,
    hash: TokenHash,
    ip: Option<IpAddr>,
    changes: broadcast::Receiver<i64>,
    tick: Interval,
    opened: Instant,
    last_audio: Instant,
    idle_timeout: Duration,
    max_session: Duration,
}

impl CredentialWatch {
    pub fn new(
        auth: Arc<TokenAuthenticator>,
        hash: TokenHash,
        ip: Option<IpAddr>,
        limits: &StreamLimits,
    ) -> Self {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let now = Instant::now();
        CredentialWatch {
            changes: auth.changes(),
            auth,
            hash,
            ip,
            tick,
            opened: now,
            last_audio: now,
            idle_timeout: limits.idle_timeout,
            max_session: limits.max_session,
        }
    }

    pub fn audio_arrived(&mut self) {
        self.last_audio = Instant::now();
    }

    /// Resolves when the session must end. Cancel-safe: use it in `select!`.
    pub async fn ended(&mut self) -> Ending {
        loop {
            tokio::select! {
                changed = self.changes.recv() => {
                    if matches!(changed, Err(broadcast::error::RecvError::Closed)) {
                        return Ending::NotAuthorised;
                    }
                }
                _ = self.tick.tick() => {
                    if self.opened.elapsed() >= self.max_session {
                        return Ending::SessionTimeout;
                    }
                    if self.last_audio.elapsed() >= self.idle_timeout {
                        return Ending::IdleTimeout;
                    }
                }
            }
            if !self.auth.still_valid(self.hash, self.ip).await {
                return Ending::NotAuthorised;
            }
        }
    }
}
