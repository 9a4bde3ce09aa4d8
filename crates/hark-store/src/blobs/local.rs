//! Audio blobs in a local directory.
//!
//! A blob is written to a temporary file, fsynced, then renamed into place (and the
//! directory fsynced), so once [`LocalWriter::commit`] returns the audio survives a crash,
//! and a half-written upload never appears under its final name.

use std::io::SeekFrom;
use std::ops::Range;
use std::path::{Path, PathBuf};

use futures_util::StreamExt;
use tokio::fs::{self, File};
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};

use super::BlobRead;
use crate::{Result, StoreError};

#[derive(Debug, Clone)]
pub(super) struct LocalBlobs {
    root: PathBuf,
}

impl LocalBlobs {
    pub(super) fn new(root: PathBuf) -> std::io::Result<Self> {
        std::fs::create_dir_all(root.join("tmp"))?;
        std::fs::create_dir_all(root.join("recordings"))?;
        Ok(LocalBlobs { root })
    }

    pub(super) fn root(&self) -> &Path {
        &self.root
    }

    pub(super) async fn writer(&self, key: String) -> Result<LocalWriter> {
        let name = key.rsplit('/').next().unwrap_or_default().to_owned();
        let tmp = self.root.join("tmp").join(&name);
        let file = File::create(&tmp).await?;
        Ok(LocalWriter {
            file: Some(file),
            tmp,
            dest: self.root.join(&key),
            key,
            size: 0,
        })
    }

    /// The file behind a key (`None` for a key that could leave the directory).
    pub(super) fn path(&self, key: &str) -> Option<PathBuf> {
        let safe = key
            .split('/')
            .all(|part| !part.is_empty() && part != ".." && part != ".");
        safe.then(|| self.root.join(key))
    }

    pub(super) async fn read(&self, key: &str, range: Option<Range<u64>>) -> Result<BlobRead> {
        let path = self.path(key).ok_or(StoreError::NotFound)?;
        let mut file = match File::open(&path).await {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(StoreError::NotFound);
            }
            other => other?,
        };
        let size = file.metadata().await?.len();
        let range = range.unwrap_or(0..size);
        let range = range.start.min(size)..range.end.min(size);
        file.seek(SeekFrom::Start(range.start)).await?;
        let body = chunks(file.take(range.end - range.start));
        Ok(BlobRead { size, range, body })
    }

    pub(super) async fn size(&self, key: &str) -> Result<u64> {
        let path = self.path(key).ok_or(StoreError::NotFound)?;
        match fs::metadata(path).await {
            Ok(meta) => Ok(meta.len()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(StoreError::NotFound),
            Err(e) => Err(e.into()),
        }
    }

    pub(super) async fn delete(&self, key: &str) -> Result<()> {
        if let Some(path) = self.path(key) {
            match fs::remove_file(path).await {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e.into()),
                _ => {}
            }
        }
        Ok(())
    }
}

/// A reader as a stream of 64 KiB chunks.
fn chunks(
    reader: impl tokio::io::AsyncRead + Unpin + Send + 'static,
) -> futures_util::stream::BoxStream<'static, Result<bytes::Bytes>> {
    futures_util::stream::unfold(reader, |mut reader| async move {
        let mut buf = vec![0; 64 * 1024];
        match reader.read(&mut buf).await {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((Ok(bytes::Bytes::from(buf)), reader))
            }
            Err(e) => Some((Err(StoreError::from(e)), reader)),
        }
    })
    .boxed()
}

/// A local upload in progress; dropped without `commit`, it removes its temp file.
pub(super) struct LocalWriter {
    file: Option<File>,
    tmp: PathBuf,
    dest: PathBuf,
    key: String,
    size: u64,
}

impl LocalWriter {
    pub(super) async fn write(&mut self, chunk: &[u8]) -> Result<()> {
        if let Some(file) = self.file.as_mut() {
            file.write_all(chunk).await?;
            self.size += chunk.len() as u64;
        }
        Ok(())
    }

    pub(super) fn size(&self) -> u64 {
        self.size
    }

    /// Makes the blob durable and visible; returns its key.
    pub(super) async fn commit(mut self) -> Result<String> {
        if let Some(file) = self.file.take() {
            file.sync_all().await?;
        }
        fs::rename(&self.tmp, &self.dest).await?;
        if let Some(dir) = self.dest.parent() {
            sync_dir(dir).await?;
        }
        Ok(std::mem::take(&mut self.key))
    }

    pub(super) async fn abort(mut self) {
        self.file.take();
        let _ = fs::remove_file(&self.tmp).await;
        self.key.clear();
    }
}

impl Drop for LocalWriter {
    fn drop(&mut self) {
        // `commit` takes the key; anything else still owns a temp file.
        if !self.key.is_empty() {
            self.file.take();
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

async fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir).await?.sync_all().await
}

#[cfg(test)]
mod tests {
    use super::super::BlobStore;

    #[tokio::test]
    async fn committed_blobs_are_readable_and_aborted_ones_vanish() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = BlobStore::local(dir.path()).unwrap();
        let mut w = blobs.writer().await.unwrap();
        w.write(b"RIFF").await.unwrap();
        w.write(b"data").await.unwrap();
        assert_eq!(w.size(), 8);
        let key = w.commit().await.unwrap();
        let path = blobs.local_path(&key).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"RIFFdata");
        blobs.delete(&key).await.unwrap();
        assert!(!path.exists());
        blobs.delete(&key).await.unwrap();

        let mut w = blobs.writer().await.unwrap();
        w.write(b"partial").await.unwrap();
        w.abort().await;
        assert_eq!(
            std::fs::read_dir(dir.path().join("tmp")).unwrap().count(),
            0
        );
        let mut dropped = blobs.writer().await.unwrap();
        dropped.write(b"half an upload").await.unwrap();
        drop(dropped);
        assert_eq!(
            std::fs::read_dir(dir.path().join("tmp")).unwrap().count(),
            0,
            "a writer dropped on an error path leaves no temp file"
        );
        assert!(blobs.local_path("../etc/passwd").is_none());
    }

    #[tokio::test]
    async fn ranged_reads_return_the_bytes_asked_for() {
        use futures_util::TryStreamExt;
        let dir = tempfile::tempdir().unwrap();
        let blobs = BlobStore::local(dir.path()).unwrap();
        let mut w = blobs.writer().await.unwrap();
        w.write(b"0123456789").await.unwrap();
        let key = w.commit().await.unwrap();
        let read = blobs.read(&key, Some(2..5)).await.unwrap();
        assert_eq!((read.size, read.range.clone()), (10, 2..5));
        let bytes: Vec<u8> = read.body.map_ok(|b| b.to_vec()).try_concat().await.unwrap();
        assert_eq!(bytes, b"234");
        let copy = blobs.local_copy(&key).await.unwrap();
        assert!(!copy.is_temporary());
        assert!(matches!(
            blobs.read("recordings/missing", None).await,
            Err(crate::StoreError::NotFound)
        ));
    }
}
