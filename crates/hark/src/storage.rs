//! Opens the database and the audio store a command was pointed at.

use std::path::Path;

use anyhow::Context;
use hark_store::Store;
use hark_store::blobs::{BlobStore, S3Settings};

use crate::cli::StorageArgs;

/// PostgreSQL when `--database-url` names it, else SQLite in the data dir.
pub async fn open_store(data_dir: &Path, args: &StorageArgs) -> anyhow::Result<Store> {
    match args
        .database_url
        .as_deref()
        .filter(|u| !u.trim().is_empty())
    {
        Some(url) => {
            if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
                anyhow::bail!("--database-url must be a postgres:// URL");
            }
            // The URL may carry a password: it is never printed.
            Store::open_postgres(url, args.database_max_connections)
                .await
                .context("connecting to PostgreSQL (--database-url)")
        }
        None => Store::open_data_dir(data_dir)
            .await
            .with_context(|| format!("opening the database in {}", data_dir.display())),
    }
}

/// The bucket when `--blob-url` names one, else the data dir's `blobs` folder.
pub fn open_blobs(data_dir: &Path, args: &StorageArgs) -> anyhow::Result<BlobStore> {
    match args.blob_url.as_deref().filter(|u| !u.trim().is_empty()) {
        Some(url) => {
            let settings = S3Settings {
                url: url.to_owned(),
                endpoint: args.s3_endpoint.clone(),
                region: args.s3_region.clone(),
                access_key_id: args.s3_access_key_id.clone(),
                secret_access_key: args.s3_secret_access_key.clone(),
            };
            BlobStore::s3(&settings, std::env::temp_dir().join("hark-audio")).context("--blob-url")
        }
        None => BlobStore::local(data_dir.join("blobs")).context("preparing the audio directory"),
    }
}
