//! Live transcription sessions, whatever protocol carries them: who may open one (caps
//! per key, per workspace and per server), the recognizer each runs on its own thread,
//! the watch that ends a session when its credential stops working, and the metrics.
//! The Speechmatics and OpenAI real-time dialects translate their messages to this.

mod handshake;
mod metrics;
mod recognition;
mod watch;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hark_speech::vad::Silero;
use thiserror::Error;
use tokio::sync::OnceCell;

use crate::auth::{Credential, Principal, UsageRecorder};
pub use handshake::{MAX_MESSAGE_BYTES, Opened, accept, authorize};
pub use metrics::StreamMetrics;
pub use recognition::{LiveStream, StreamEvent, TimedUpdate};
pub use watch::{CredentialWatch, Ending};

/// How many streams may be open, and for how long.
#[derive(Debug, Clone)]
pub struct StreamLimits {
    /// Open streams per token (0: no cap).
    pub per_key: u32,
    /// Open streams per workspace (0: no cap).
    pub per_workspace: u32,
    /// Open streams on this server: beyond it new sessions are refused as overloaded
    /// rather than every session falling behind.
    pub per_server: u32,
    /// A session that sends no audio for this long is closed.
    pub idle_timeout: Duration,
    /// Longest session.
    pub max_session: Duration,
    /// Silero VAD weights; without them pauses are found by loudness alone.
    pub vad_model: Option<PathBuf>,
}

impl Default for StreamLimits {
    fn default() -> Self {
        StreamLimits {
            per_key: 4,
            per_workspace: 16,
            per_server: 8,
            idle_timeout: Duration::from_secs(60),
            max_session: Duration::from_secs(4 * 3600),
            vad_model: None,
        }
    }
}

/// Why a stream could not be opened.
#[derive(Debug, Error)]
pub enum StreamError {
    /// A cap on concurrent streams (Speechmatics' `quota_exceeded`).
    #[error("{0}")]
    QuotaExceeded(String),
    /// The server is at capacity.
    #[error("the server is at its real-time capacity ({0} streams); try again shortly")]
    Overloaded(u32),
    /// The audio budget could not be read (storage unavailable).
    #[error("the audio budget cannot be checked right now; try again shortly")]
    Unavailable,
}

#[derive(Default)]
struct OpenCounts {
    by_token: HashMap<i64, u32>,
    by_workspace: HashMap<i64, u32>,
    total: u32,
}

pub struct Streams {
    pub limits: StreamLimits,
    open: Arc<Mutex<OpenCounts>>,
    pub metrics: Arc<StreamMetrics>,
    /// Where streamed seconds are charged to their keys.
    usage: Arc<UsageRecorder>,
    silero: OnceCell<Option<Arc<Silero>>>,
}

/// A place among the open streams, given back when dropped.
pub struct StreamPermit {
    open: Arc<Mutex<OpenCounts>>,
    metrics: Arc<StreamMetrics>,
    usage: Arc<UsageRecorder>,
    /// The token whose audio budget the stream spends, if any.
    budget_token_id: Option<i64>,
    token_id: Option<i64>,
    workspace_id: i64,
}

impl StreamPermit {
    /// Charges the audio a stream carried to its key (a temporary key's: its parent).
    pub fn streamed(&self, seconds: f64) {
        if let Some(id) = self.token_id
            && seconds > 0.0
        {
            self.usage.add_stream(id, seconds);
        }
        if let Some(holder) = self.budget_token_id {
            self.usage.spend(holder, seconds);
        }
    }
}

impl Drop for StreamPermit {
    fn drop(&mut self) {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        open.total = open.total.saturating_sub(1);
        if let Some(id) = self.token_id
            && let Some(n) = open.by_token.get_mut(&id)
        {
            *n = n.saturating_sub(1);
            if *n == 0 {
                open.by_token.remove(&id);
            }
        }
        if let Some(n) = open.by_workspace.get_mut(&self.workspace_id) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                open.by_workspace.remove(&self.workspace_id);
            }
        }
        self.metrics.stream_closed();
    }
}

impl Streams {
    pub fn new(limits: StreamLimits, usage: Arc<UsageRecorder>) -> Self {
        Streams {
            limits,
            usage,
            open: Arc::default(),
            metrics: Arc::default(),
            silero: OnceCell::new(),
        }
    }

    /// Admits a new stream: its audio budget first (read fresh), then the caps.
    pub async fn open(
        &self,
        state: &crate::state::AppState,
        principal: &Principal,
    ) -> Result<StreamPermit, StreamError> {
        match crate::budgets::require_audio(state, principal).await {
            Ok(()) => self.admit(principal),
            // Counted as its handshake was (one outcome a request); the refusal is the
            // stream's first message.
            Err(e @ crate::error::ApiError::QuotaExceeded { .. }) => {
                Err(StreamError::QuotaExceeded(e.to_string()))
            }
            Err(e) => {
                tracing::warn!(error = %e, "a stream's audio budget could not be read");
                Err(StreamError::Unavailable)
            }
        }
    }

    /// Takes a place for `principal`'s new stream, or says which cap is full. A temporary
    /// key counts against its parent too, so minting keys cannot get around the cap.
    pub fn admit(&self, principal: &Principal) -> Result<StreamPermit, StreamError> {
        let token_id = match &principal.credential {
            Credential::Token { record, .. } => Some(record.parent_id.unwrap_or(record.id)),
            Credential::Session => None,
        };
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let limits = &self.limits;
        if limits.per_server != 0 && open.total >= limits.per_server {
            return Err(StreamError::Overloaded(limits.per_server));
        }
        if let Some(id) = token_id
            && limits.per_key != 0
            && open.by_token.get(&id).copied().unwrap_or(0) >= limits.per_key
        {
            return Err(StreamError::QuotaExceeded(format!(
                "this key already has {} open streams, its limit",
                limits.per_key
            )));
        }
        let in_workspace = open
            .by_workspace
            .get(&principal.workspace_id)
            .copied()
            .unwrap_or(0);
        if limits.per_workspace != 0 && in_workspace >= limits.per_workspace {
            return Err(StreamError::QuotaExceeded(format!(
                "this workspace already has {} open streams, its limit",
                limits.per_workspace
            )));
        }
        open.total += 1;
        if let Some(id) = token_id {
            *open.by_token.entry(id).or_default() += 1;
        }
        *open.by_workspace.entry(principal.workspace_id).or_default() += 1;
        self.metrics.stream_opened();
        Ok(StreamPermit {
            open: self.open.clone(),
            metrics: self.metrics.clone(),
            usage: self.usage.clone(),
            budget_token_id: principal.budget().map(|b| b.token_id),
            token_id,
            workspace_id: principal.workspace_id,
        })
    }

    /// The voice detector's weights, loaded once; `None` (loudness only) when absent.
    pub async fn silero(&self) -> Option<Arc<Silero>> {
        self.silero
            .get_or_init(|| async {
                let path = self.limits.vad_model.clone()?;
                let loaded = tokio::task::spawn_blocking(move || Silero::load(&path)).await;
                match loaded {
                    Ok(Ok(model)) => Some(Arc::new(model)),
                    Ok(Err(e)) => {
                        tracing::warn!(error = %e, "no Silero VAD: pauses are found by loudness");
                        None
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "loading Silero VAD stopped");
                        None
                    }
                }
            })
            .await
            .clone()
    }
}
