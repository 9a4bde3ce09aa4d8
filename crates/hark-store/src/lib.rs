//! hark's persistence. Repositories speak domain types; SQL stays in this crate.
//!
//! The SQL is written to run on SQLite and PostgreSQL alike (`$n` placeholders, BIGINT
//! millisecond times, `RETURNING`), so adding the PostgreSQL pool is a matter of a second
//! migrations folder and a connection type, not a rewrite.

/// Builds a query from `const` fragments of this crate (column lists, shared SELECTs).
/// Only compile-time text goes in; every value is bound, never formatted in.
macro_rules! sql {
    ($($fmt:tt)*) => {
        sqlx::AssertSqlSafe(format!($($fmt)*))
    };
}

pub mod audit;
pub mod blobs;
mod error;
pub mod jobs;
pub mod projects;
pub mod recordings;
pub mod sessions;
pub mod tags;
pub mod tokens;
pub mod users;
pub mod webhooks;

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use time::OffsetDateTime;

pub use error::StoreError;

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

pub(crate) type Db = sqlx::SqlitePool;

/// The id of the workspace and project a fresh install creates.
pub const DEFAULT_WORKSPACE_ID: i64 = 1;
pub const DEFAULT_PROJECT_ID: i64 = 1;

/// A handle to the database; cheap to clone.
#[derive(Clone)]
pub struct Store {
    db: Db,
}

impl Store {
    /// Opens (creating if needed) `hark.db` in the data dir, in WAL mode so a CLI process
    /// can write while a server reads, and applies the embedded migrations.
    pub async fn open_data_dir(data_dir: &Path) -> Result<Self> {
        std::fs::create_dir_all(data_dir)?;
        Self::open_sqlite_file(&data_dir.join("hark.db")).await
    }

    pub async fn open_sqlite_file(path: &Path) -> Result<Self> {
        let options = SqliteConnectOptions::from_str("sqlite:")?
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10))
            // Token lookups are random reads: keep hot pages in memory and read the rest
            // through a memory map rather than a syscall per page.
            .pragma("cache_size", "-65536")
            .pragma("mmap_size", "1073741824");
        let db = SqlitePoolOptions::new()
            .max_connections(8)
            .min_connections(1)
            // A connection is checked when it fails, not with an extra round trip before
            // every query.
            .test_before_acquire(false)
            .connect_with(options)
            .await?;
        sqlx::migrate!("./migrations/sqlite").run(&db).await?;
        Ok(Store { db })
    }

    pub fn users(&self) -> users::Users<'_> {
        users::Users { db: &self.db }
    }

    pub fn sessions(&self) -> sessions::Sessions<'_> {
        sessions::Sessions { db: &self.db }
    }

    pub fn tokens(&self) -> tokens::Tokens<'_> {
        tokens::Tokens { db: &self.db }
    }

    pub fn jobs(&self) -> jobs::Jobs<'_> {
        jobs::Jobs { db: &self.db }
    }

    pub fn recordings(&self) -> recordings::Recordings<'_> {
        recordings::Recordings { db: &self.db }
    }

    pub fn tags(&self) -> tags::Tags<'_> {
        tags::Tags { db: &self.db }
    }

    pub fn projects(&self) -> projects::Projects<'_> {
        projects::Projects { db: &self.db }
    }

    pub fn webhooks(&self) -> webhooks::Webhooks<'_> {
        webhooks::Webhooks { db: &self.db }
    }

    pub fn audit(&self) -> audit::Audit<'_> {
        audit::Audit { db: &self.db }
    }

    /// Readiness: can we run a query right now?
    pub async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.db).await?;
        Ok(())
    }

    pub async fn close(&self) {
        self.db.close().await;
    }
}

pub(crate) fn to_millis(t: OffsetDateTime) -> i64 {
    (t.unix_timestamp_nanos() / 1_000_000) as i64
}

pub(crate) fn from_millis(ms: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

pub(crate) fn now_millis() -> i64 {
    to_millis(OffsetDateTime::now_utc())
}

/// Rounds to the stored precision, so values read back compare equal to values written.
pub fn truncate_to_millis(t: OffsetDateTime) -> OffsetDateTime {
    from_millis(to_millis(t))
}

#[cfg(test)]
pub(crate) mod testing {
    use super::Store;

    pub async fn temp_store() -> (Store, tempfile::TempDir) {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = Store::open_data_dir(dir.path()).await.expect("open store");
        (store, dir)
    }
}
