//! Audio blobs: in a local directory (the default) or in an S3-compatible bucket that
//! every node of a cluster shares. One API for both: a writer that streams an upload and
//! makes it durable on `commit` (never visible half-written), ranged reads, a local copy
//! for the decoder, and deletion.

mod local;
mod s3;

use std::ops::Range;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use futures_util::stream::BoxStream;

pub use s3::S3Settings;

use crate::Result;

#[derive(Debug, Clone)]
pub struct BlobStore {
    backend: Backend,
}

#[derive(Debug, Clone)]
enum Backend {
    Local(local::LocalBlobs),
    S3(s3::S3Blobs),
}

impl BlobStore {
    pub fn local(root: impl Into<PathBuf>) -> std::io::Result<Self> {
        Ok(BlobStore {
            backend: Backend::Local(local::LocalBlobs::new(root.into())?),
        })
    }

    /// A bucket (`s3://bucket/prefix`) on any S3-compatible server; the decoder's copies
    /// of its audio are downloaded into `scratch_dir`. Nothing is contacted until the first
    /// upload or read.
    pub fn s3(settings: &S3Settings, scratch_dir: impl Into<PathBuf>) -> Result<Self> {
        let scratch_dir = scratch_dir.into();
        std::fs::create_dir_all(&scratch_dir)?;
        Ok(BlobStore {
            backend: Backend::S3(s3::S3Blobs::new(settings, scratch_dir)?),
        })
    }

    /// Where blobs live, for logs (never credentials).
    pub fn describe(&self) -> String {
        match &self.backend {
            Backend::Local(local) => local.root().display().to_string(),
            Backend::S3(s3) => s3.describe(),
        }
    }

    /// Starts a new blob under a fresh random key.
    pub async fn writer(&self) -> Result<BlobWriter> {
        let key = format!("recordings/{}", hark_core::tokens::random_base62(24));
        self.writer_at(key).await
    }

    async fn writer_at(&self, key: String) -> Result<BlobWriter> {
        Ok(BlobWriter {
            inner: match &self.backend {
                Backend::Local(local) => Writer::Local(local.writer(key).await?),
                Backend::S3(s3) => Writer::S3(s3.writer(key).await?),
            },
        })
    }

    /// The file behind a key, when blobs are local files (`None` for a bucket, or a key
    /// that could escape the directory).
    pub fn local_path(&self, key: &str) -> Option<PathBuf> {
        match &self.backend {
            Backend::Local(local) => local.path(key),
            Backend::S3(_) => None,
        }
    }

    /// A file holding the blob, for the decoder: the blob itself when local, else a
    /// download that is removed when the copy is dropped.
    pub async fn local_copy(&self, key: &str) -> Result<LocalCopy> {
        match &self.backend {
            Backend::Local(local) => local
                .path(key)
                .filter(|path| path.is_file())
                .map(|path| LocalCopy { path, temp: None })
                .ok_or(crate::StoreError::NotFound),
            Backend::S3(s3) => s3.download(key).await,
        }
    }

    /// Bytes `range` of a blob (all of it when `None`) as a stream, with the blob's size.
    pub async fn read(&self, key: &str, range: Option<Range<u64>>) -> Result<BlobRead> {
        match &self.backend {
            Backend::Local(local) => local.read(key, range).await,
            Backend::S3(s3) => s3.read(key, range).await,
        }
    }

    /// A blob's size in bytes.
    pub async fn size(&self, key: &str) -> Result<u64> {
        match &self.backend {
            Backend::Local(local) => local.size(key).await,
            Backend::S3(s3) => s3.size(key).await,
        }
    }

    /// Removes a blob; removing one that is not there is not an error.
    pub async fn delete(&self, key: &str) -> Result<()> {
        match &self.backend {
            Backend::Local(local) => local.delete(key).await,
            Backend::S3(s3) => s3.delete(key).await,
        }
    }
}

impl BlobStore {
    /// Whether any recording's audio is stored here (a migration's target must hold none).
    pub async fn holds_recordings(&self) -> Result<bool> {
        match &self.backend {
            Backend::Local(local) => Ok(std::fs::read_dir(local.root().join("recordings"))?
                .next()
                .is_some()),
            Backend::S3(s3) => s3.holds_any("recordings").await,
        }
    }

    /// Copies the blob under `key` to `target` under the same key, then reads it back
    /// there; returns its size and SHA-256, which both copies were checked to share.
    pub async fn copy_to(&self, key: &str, target: &BlobStore) -> Result<(u64, String)> {
        use futures_util::StreamExt;
        use sha2::{Digest, Sha256};
        let mut read = self.read(key, None).await?;
        let mut writer = target.writer_at(key.to_owned()).await?;
        let mut hash = Sha256::new();
        while let Some(chunk) = read.body.next().await {
            let chunk = chunk?;
            hash.update(&chunk);
            writer.write(&chunk).await?;
        }
        let size = writer.size();
        writer.commit().await?;
        let written = crate::hex(&hash.finalize());
        let mut back = target.read(key, None).await?;
        let mut check = Sha256::new();
        while let Some(chunk) = back.body.next().await {
            check.update(&chunk?);
        }
        if crate::hex(&check.finalize()) != written || back.size != size {
            return Err(crate::StoreError::Corrupt(format!(
                "{key} reads back differently from where it was copied"
            )));
        }
        Ok((size, written))
    }
}

/// A blob's bytes on their way out.
pub struct BlobRead {
    /// The whole blob's size.
    pub size: u64,
    /// Which bytes `body` holds.
    pub range: Range<u64>,
    pub body: BoxStream<'static, Result<Bytes>>,
}

/// A blob as a file on this machine, for as long as this value lives.
pub struct LocalCopy {
    path: PathBuf,
    temp: Option<tempfile::TempPath>,
}

impl LocalCopy {
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether dropping this removes the file (a download, not the blob itself).
    pub fn is_temporary(&self) -> bool {
        self.temp.is_some()
    }
}

/// An upload in progress. Dropping it without `commit` (an error on the way, a client that
/// went away) removes what was written, like `abort`: a refused upload leaves nothing.
pub struct BlobWriter {
    inner: Writer,
}

enum Writer {
    Local(local::LocalWriter),
    S3(s3::S3Writer),
}

impl BlobWriter {
    pub async fn write(&mut self, chunk: &[u8]) -> Result<()> {
        match &mut self.inner {
            Writer::Local(w) => w.write(chunk).await,
            Writer::S3(w) => w.write(chunk).await,
        }
    }

    pub fn size(&self) -> u64 {
        match &self.inner {
            Writer::Local(w) => w.size(),
            Writer::S3(w) => w.size(),
        }
    }

    /// Makes the blob durable and visible; returns its key.
    pub async fn commit(self) -> Result<String> {
        match self.inner {
            Writer::Local(w) => w.commit().await,
            Writer::S3(w) => w.commit().await,
        }
    }

    pub async fn abort(self) {
        match self.inner {
            Writer::Local(w) => w.abort().await,
            Writer::S3(w) => w.abort().await,
        }
    }
}
