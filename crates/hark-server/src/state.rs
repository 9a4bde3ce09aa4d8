use std::ops::Deref;
use std::sync::Arc;
use std::time::Duration;

use hark_store::Store;
use hark_store::blobs::BlobStore;

use crate::auth::limits::RequestLimits;
use crate::auth::{LastUsedRecorder, LoginThrottle, TokenAuthenticator};
use crate::config::ServerConfig;
use crate::streams::Streams;
use crate::transcription::{Pipeline, PipelineConfig};

/// What every handler can reach. axum clones the state for every request, so it is one
/// `Arc` rather than a bundle of them.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

pub struct Shared {
    pub store: Store,
    pub blobs: BlobStore,
    pub auth: Arc<TokenAuthenticator>,
    pub last_used: Arc<LastUsedRecorder>,
    pub config: ServerConfig,
    pub pipeline: Pipeline,
    /// Sign-in attempts per client IP.
    pub login_throttle: LoginThrottle,
    /// Requests per token, failed token authentications per client IP.
    pub limits: RequestLimits,
    /// Live transcription sessions.
    pub streams: Streams,
}

impl Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

impl AppState {
    pub async fn new(
        store: Store,
        blobs: BlobStore,
        config: ServerConfig,
        pipeline: PipelineConfig,
    ) -> Result<Self, hark_store::StoreError> {
        let last_used = Arc::new(LastUsedRecorder::default());
        let auth = Arc::new(TokenAuthenticator::new(store.clone(), last_used.clone()).await?);
        let limits = RequestLimits::new(
            config.token_requests_per_minute,
            config.failed_auths_per_minute,
        );
        let streams = Streams::new(config.streams.clone());
        Ok(AppState(Arc::new(Shared {
            streams,
            store,
            blobs,
            auth,
            last_used,
            config,
            pipeline: Pipeline::new(pipeline),
            login_throttle: LoginThrottle::new(10, Duration::from_secs(30)),
            limits,
        })))
    }
}
