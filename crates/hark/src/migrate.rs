//! `hark admin migrate`: a single-node data dir into a cluster's PostgreSQL and bucket.

use std::path::Path;

use anyhow::{Context, bail};
use hark_store::Store;
use hark_store::blobs::BlobStore;

use crate::cli::StorageArgs;

pub async fn run(
    data_dir: &Path,
    storage: &StorageArgs,
    to_database_url: &str,
    to_blob_url: Option<String>,
) -> anyhow::Result<()> {
    if !data_dir.join("hark.db").is_file() {
        bail!("{} holds no hark database to migrate", data_dir.display());
    }
    let source = Store::open_data_dir(data_dir)
        .await
        .with_context(|| format!("opening the database in {}", data_dir.display()))?;
    let target_args = StorageArgs {
        database_url: Some(to_database_url.to_owned()),
        blob_url: to_blob_url.clone(),
        ..storage.clone()
    };
    let target = crate::storage::open_store(data_dir, &target_args).await?;
    // The target bucket is checked before any row moves, so a refusal leaves both empty.
    let blobs = match &to_blob_url {
        Some(_) => {
            let target_blobs = crate::storage::open_blobs(data_dir, &target_args)?;
            if target_blobs
                .holds_recordings()
                .await
                .context("reading the target bucket")?
            {
                bail!(
                    "the target bucket is not empty (it holds recordings); migrate into an empty one"
                );
            }
            let local =
                BlobStore::local(data_dir.join("blobs")).context("opening the audio folder")?;
            Some((local, target_blobs))
        }
        None => None,
    };
    source
        .ensure_empty_target(&target)
        .await
        .context("checking the target database")?;
    // The audio goes first: if anything fails, what was copied is removed again and both
    // targets are as empty as they were, so the command can simply be run again.
    let mut copied = Vec::new();
    if let Some((local, target_blobs)) = &blobs {
        let keys = source.recordings().blob_keys().await?;
        let mut bytes = 0;
        for key in &keys {
            match local.copy_to(key, target_blobs).await {
                Ok((size, _)) => {
                    bytes += size;
                    copied.push(key.clone());
                }
                Err(e) => {
                    remove(target_blobs, &copied).await;
                    return Err(e).with_context(|| format!("copying the audio {key}"));
                }
            }
        }
        println!(
            "{:<20} {:>8} files ({bytes} bytes), each read back and checked",
            "audio",
            keys.len()
        );
    }
    let tables = match source.copy_into(&target).await {
        Ok(tables) => tables,
        Err(e) => {
            if let Some((_, target_blobs)) = &blobs {
                remove(target_blobs, &copied).await;
            }
            return Err(e).context("copying the database");
        }
    };
    for table in &tables {
        println!(
            "{:<20} {:>8} rows  sha256 {}",
            table.table,
            table.rows,
            &table.checksum[..16]
        );
    }
    println!(
        "migrated {}: start every node with the same --database-url{}",
        data_dir.display(),
        if to_blob_url.is_some() {
            " and --blob-url"
        } else {
            " (the audio stays in this data dir)"
        }
    );
    source.close().await;
    target.close().await;
    Ok(())
}

/// Takes back the audio a failed migration copied.
async fn remove(blobs: &BlobStore, keys: &[String]) {
    for key in keys {
        if let Err(e) = blobs.delete(key).await {
            eprintln!("could not remove {key} from the target bucket: {e}");
        }
    }
}
