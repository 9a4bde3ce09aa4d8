use std::ops::Deref;
use std::sync::Arc;
use std::time::Duration;

use hark_store::Store;
use hark_store::blobs::BlobStore;

use crate::auth::limits::RequestLimits;
use crate::auth::shared_budget::SharedBudget;
use crate::auth::{AddressThrottle, TokenAuthenticator, UsageRecorder};
use crate::config::ServerConfig;
use crate::outbound::Outbound;
use crate::streams::Streams;
use crate::transcription::{Pipeline, PipelineConfig};
use crate::webhooks::delivery::Sender;

/// Why the server's state could not be built.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error(transparent)]
    Store(#[from] hark_store::StoreError),
    #[error(transparent)]
    Outbound(#[from] crate::outbound::OutboundError),
    #[error("the shared rate limits' Redis (--redis-url) cannot be reached: {0}")]
    Redis(#[from] redis::RedisError),
}

/// What every handler can reach. axum clones the state for every request, so it is one
/// `Arc` rather than a bundle of them.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

pub struct Shared {
    pub store: Store,
    pub blobs: BlobStore,
    pub auth: Arc<TokenAuthenticator>,
    /// Token use noted in memory, written by the background flush.
    pub usage: Arc<UsageRecorder>,
    pub config: ServerConfig,
    pub pipeline: Pipeline,
    /// Sign-in attempts per client IP.
    pub login_throttle: AddressThrottle,
    /// Revoke-by-value reports per client IP.
    pub revocation_throttle: AddressThrottle,
    /// Recent reads of what audio budgets spent.
    pub spent_reads: crate::budgets::SpentReads,
    /// Requests per token, failed token authentications per client IP.
    pub limits: RequestLimits,
    /// Live transcription sessions.
    pub streams: Streams,
    /// The SSRF-guarded client for URLs users give (audio to fetch, webhooks to call).
    pub outbound: Outbound,
    /// Wakes the webhook sender.
    pub webhooks: Sender,
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
    ) -> Result<Self, StateError> {
        let usage = Arc::new(UsageRecorder::default());
        let auth = Arc::new(
            TokenAuthenticator::new(store.clone(), usage.clone(), config.token_cache_max_silence)
                .await?,
        );
        let mut limits = RequestLimits::new(
            config.token_requests_per_minute,
            config.failed_auths_per_minute,
        );
        if let Some(url) = &config.redis_url {
            limits = limits.with_shared(SharedBudget::connect(url, &config.redis_prefix).await?);
        }
        let streams = Streams::new(config.streams.clone(), usage.clone());
        let outbound = Outbound::new(config.fetch_allow_private)?;
        Ok(AppState(Arc::new(Shared {
            streams,
            store,
            blobs,
            auth,
            usage,
            config,
            pipeline: Pipeline::new(pipeline),
            login_throttle: AddressThrottle::new(10, Duration::from_secs(30)),
            revocation_throttle: AddressThrottle::new(10, Duration::from_secs(6)),
            spent_reads: Default::default(),
            limits,
            outbound,
            webhooks: Sender::default(),
        })))
    }
}
