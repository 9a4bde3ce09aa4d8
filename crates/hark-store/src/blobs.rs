//! Audio blobs in a local directory.
//!
//! A blob is written to a temporary file, fsynced, then renamed into place (and the
//! directory fsynced), so once [`BlobWriter::commit`] returns the audio survives a crash,
//! and a half-written upload never appears under its final name.

use std::path::{Path, PathBuf};

use tokio::fs::{self, File};
use tokio::io::AsyncWriteExt;

use crate::Result;

#[derive(Debug, Clone)]
pub struct BlobStore {
    root: PathBuf,
}

impl BlobStore {
    pub fn local(root: impl Into<PathBuf>) -> std::io::Result<Self> {
        let root = root.into();
        std::fs::create_dir_all(root.join("tmp"))?;
        std::fs::create_dir_all(root.join("recordings"))?;
        Ok(BlobStore { root })
    }

    /// Starts a new blob under a fresh random key.
    pub async fn writer(&self) -> Result<BlobWriter> {
        let name = hark_core::tokens::random_base62(24);
        let key = format!("recordings/{name}");
        let tmp = self.root.join("tmp").join(&name);
        let file = File::create(&tmp).await?;
        Ok(BlobWriter {
            file: Some(file),
            tmp,
            dest: self.root.join(&key),
            key,
            size: 0,
        })
    }

    /// The file behind a key, for reading.
    pub fn path(&self, key: &str) -> Option<PathBuf> {
        let safe = key
            .split('/')
            .all(|part| !part.is_empty() && part != ".." && part != ".");
        safe.then(|| self.root.join(key))
    }

    pub async fn delete(&self, key: &str) -> Result<()> {
        if let Some(path) = self.path(key) {
            match fs::remove_file(path).await {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e.into()),
                _ => {}
            }
        }
        Ok(())
    }
}

/// An upload in progress. Dropping it without `commit` (an error on the way, a client that
/// went away) removes its temp file, like `abort`: a refused upload leaves nothing behind.
pub struct BlobWriter {
    file: Option<File>,
    tmp: PathBuf,
    dest: PathBuf,
    key: String,
    size: u64,
}

impl BlobWriter {
    pub async fn write(&mut self, chunk: &[u8]) -> Result<()> {
        if let Some(file) = self.file.as_mut() {
            file.write_all(chunk).await?;
            self.size += chunk.len() as u64;
        }
        Ok(())
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    /// Makes the blob durable and visible; returns its key.
    pub async fn commit(mut self) -> Result<String> {
        if let Some(file) = self.file.take() {
            file.sync_all().await?;
        }
        fs::rename(&self.tmp, &self.dest).await?;
        if let Some(dir) = self.dest.parent() {
            sync_dir(dir).await?;
        }
        Ok(std::mem::take(&mut self.key))
    }

    pub async fn abort(mut self) {
        self.file.take();
        let _ = fs::remove_file(&self.tmp).await;
        self.key.clear();
    }
}

impl Drop for BlobWriter {
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
    use super::*;

    #[tokio::test]
    async fn committed_blobs_are_readable_and_aborted_ones_vanish() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = BlobStore::local(dir.path()).unwrap();
        let mut w = blobs.writer().await.unwrap();
        w.write(b"RIFF").await.unwrap();
        w.write(b"data").await.unwrap();
        assert_eq!(w.size(), 8);
        let key = w.commit().await.unwrap();
        let path = blobs.path(&key).unwrap();
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
        assert!(blobs.path("../etc/passwd").is_none());
    }
}
