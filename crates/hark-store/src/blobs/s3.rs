//! Audio blobs in an S3-compatible bucket, shared by every node of a cluster.
//!
//! Uploads stream as multipart uploads (5 MiB parts, a few in flight, so memory stays
//! bounded) and become visible only when the upload completes: `commit` returns once the
//! bucket holds the whole object. An upload that fails or is dropped is aborted, so no
//! part lingers. Requests are retried briefly; a bucket that stays unreachable surfaces as
//! [`StoreError::Unavailable`] within seconds, not minutes.

use std::ops::Range;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{StreamExt, TryStreamExt};
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::path::Path as ObjectPath;
use object_store::{
    BackoffConfig, ClientOptions, GetOptions, GetRange, ObjectStore, ObjectStoreExt, RetryConfig,
    WriteMultipart,
};
use tokio::io::AsyncWriteExt;

use super::{BlobRead, LocalCopy};
use crate::{Result, StoreError};

/// Where the bucket is and how to reach it. Unset fields fall back to the standard
/// `AWS_*` environment (`AWS_ENDPOINT`, `AWS_REGION`, `AWS_ACCESS_KEY_ID`, …).
#[derive(Debug, Clone, Default)]
pub struct S3Settings {
    /// `s3://bucket` or `s3://bucket/prefix`.
    pub url: String,
    /// e.g. `http://127.0.0.1:9000` for a server other than AWS.
    pub endpoint: Option<String>,
    pub region: Option<String>,
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
}

/// Upload parts in flight per upload (each up to 5 MiB).
const PARTS_IN_FLIGHT: usize = 4;

#[derive(Debug, Clone)]
pub(super) struct S3Blobs {
    store: Arc<AmazonS3>,
    bucket: String,
    prefix: String,
    scratch_dir: PathBuf,
}

impl S3Blobs {
    pub(super) fn new(settings: &S3Settings, scratch_dir: PathBuf) -> Result<Self> {
        let rest = settings.url.strip_prefix("s3://").ok_or_else(|| {
            StoreError::Config(format!(
                "a blob URL starts with s3:// (got {:?})",
                settings.url
            ))
        })?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(StoreError::Config("the blob URL names no bucket".into()));
        }
        let mut builder = AmazonS3Builder::from_env()
            .with_bucket_name(bucket)
            .with_retry(RetryConfig {
                backoff: BackoffConfig {
                    init_backoff: Duration::from_millis(100),
                    max_backoff: Duration::from_secs(2),
                    base: 2.0,
                },
                max_retries: 3,
                retry_timeout: Duration::from_secs(10),
            })
            .with_client_options(
                ClientOptions::new()
                    .with_connect_timeout(Duration::from_secs(3))
                    .with_timeout(Duration::from_secs(120)),
            );
        if let Some(endpoint) = &settings.endpoint {
            builder = builder
                .with_endpoint(endpoint)
                .with_allow_http(endpoint.starts_with("http://"))
                .with_virtual_hosted_style_request(false);
        }
        if let Some(region) = &settings.region {
            builder = builder.with_region(region);
        }
        if let Some(id) = &settings.access_key_id {
            builder = builder.with_access_key_id(id);
        }
        if let Some(secret) = &settings.secret_access_key {
            builder = builder.with_secret_access_key(secret);
        }
        let store = builder
            .build()
            .map_err(|e| StoreError::Config(e.to_string()))?;
        Ok(S3Blobs {
            store: Arc::new(store),
            bucket: bucket.to_owned(),
            prefix: prefix.trim_matches('/').to_owned(),
            scratch_dir,
        })
    }

    pub(super) fn describe(&self) -> String {
        match self.prefix.as_str() {
            "" => format!("s3://{}", self.bucket),
            prefix => format!("s3://{}/{prefix}", self.bucket),
        }
    }

    fn location(&self, key: &str) -> Result<ObjectPath> {
        let safe = key
            .split('/')
            .all(|part| !part.is_empty() && part != ".." && part != ".");
        if !safe {
            return Err(StoreError::NotFound);
        }
        let full = match self.prefix.as_str() {
            "" => key.to_owned(),
            prefix => format!("{prefix}/{key}"),
        };
        ObjectPath::parse(full).map_err(|_| StoreError::NotFound)
    }

    pub(super) async fn writer(&self, key: String) -> Result<S3Writer> {
        let location = self.location(&key)?;
        let upload = self
            .store
            .put_multipart(&location)
            .await
            .map_err(unavailable)?;
        Ok(S3Writer {
            upload: Some(WriteMultipart::new(upload)),
            key,
            size: 0,
        })
    }

    pub(super) async fn read(&self, key: &str, range: Option<Range<u64>>) -> Result<BlobRead> {
        let location = self.location(key)?;
        let options = GetOptions {
            range: range.filter(|r| r.start < r.end).map(GetRange::Bounded),
            ..GetOptions::default()
        };
        let got = self
            .store
            .get_opts(&location, options)
            .await
            .map_err(unavailable)?;
        let (size, range) = (got.meta.size, got.range.clone());
        let body = got.into_stream().map_err(unavailable).boxed();
        Ok(BlobRead { size, range, body })
    }

    pub(super) async fn download(&self, key: &str) -> Result<LocalCopy> {
        let mut read = self.read(key, None).await?;
        let temp = tempfile::Builder::new()
            .prefix("hark-audio-")
            .tempfile_in(&self.scratch_dir)?
            .into_temp_path();
        let mut file = tokio::fs::File::create(&temp).await?;
        while let Some(chunk) = read.body.next().await {
            file.write_all(&chunk?).await?;
        }
        file.flush().await?;
        Ok(LocalCopy {
            path: temp.to_path_buf(),
            temp: Some(temp),
        })
    }

    pub(super) async fn holds_any(&self, folder: &str) -> Result<bool> {
        let location = self.location(folder)?;
        let mut listing = self.store.list(Some(&location));
        match listing.next().await {
            None => Ok(false),
            Some(entry) => entry.map(|_| true).map_err(unavailable),
        }
    }

    pub(super) async fn size(&self, key: &str) -> Result<u64> {
        let location = self.location(key)?;
        Ok(self.store.head(&location).await.map_err(unavailable)?.size)
    }

    pub(super) async fn delete(&self, key: &str) -> Result<()> {
        let location = self.location(key)?;
        match self.store.delete(&location).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(unavailable(e)),
        }
    }
}

fn unavailable(err: object_store::Error) -> StoreError {
    match err {
        object_store::Error::NotFound { .. } => StoreError::NotFound,
        // The message names the bucket and key, never the credentials.
        other => StoreError::Unavailable(other.to_string()),
    }
}

/// A multipart upload in progress; dropped without `commit`, it is aborted.
pub(super) struct S3Writer {
    upload: Option<WriteMultipart>,
    key: String,
    size: u64,
}

impl S3Writer {
    pub(super) async fn write(&mut self, chunk: &[u8]) -> Result<()> {
        if let Some(upload) = self.upload.as_mut() {
            upload
                .wait_for_capacity(PARTS_IN_FLIGHT)
                .await
                .map_err(unavailable)?;
            upload.write(chunk);
            self.size += chunk.len() as u64;
        }
        Ok(())
    }

    pub(super) fn size(&self) -> u64 {
        self.size
    }

    pub(super) async fn commit(mut self) -> Result<String> {
        let upload = self
            .upload
            .take()
            .ok_or_else(|| StoreError::Unavailable("the upload was already closed".into()))?;
        upload.finish().await.map_err(unavailable)?;
        Ok(std::mem::take(&mut self.key))
    }

    pub(super) async fn abort(mut self) {
        if let Some(upload) = self.upload.take() {
            let _ = upload.abort().await;
        }
    }
}

impl Drop for S3Writer {
    fn drop(&mut self) {
        // Dropped on an error path: abort in the background so no parts are left billed.
        if let Some(upload) = self.upload.take()
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            runtime.spawn(async move {
                let _ = upload.abort().await;
            });
        }
    }
}
