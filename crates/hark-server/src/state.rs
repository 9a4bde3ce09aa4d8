use std::sync::Arc;

use hark_store::Store;
use hark_store::blobs::BlobStore;

use crate::auth::{LastUsedRecorder, TokenAuthenticator};
use crate::config::ServerConfig;

/// What every handler can reach. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    pub blobs: BlobStore,
    pub auth: Arc<TokenAuthenticator>,
    pub last_used: Arc<LastUsedRecorder>,
    pub config: Arc<ServerConfig>,
}

impl AppState {
    pub async fn new(
        store: Store,
        blobs: BlobStore,
        config: ServerConfig,
    ) -> Result<Self, hark_store::StoreError> {
        let last_used = Arc::new(LastUsedRecorder::default());
        let auth = Arc::new(TokenAuthenticator::new(store.clone(), last_used.clone()).await?);
        Ok(AppState {
            store,
            blobs,
            auth,
            last_used,
            config: Arc::new(config),
        })
    }
}
