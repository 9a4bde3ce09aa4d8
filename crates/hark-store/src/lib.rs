//! hark's persistence. Repositories speak domain types; SQL stays in this crate.
//!
//! Two backends, one API: SQLite (a file in the data dir, the default) and PostgreSQL (many
//! nodes sharing one database). The SQL is written to run on both (`$n` placeholders,
//! BIGINT millisecond times, `RETURNING`); [`on!`] compiles each statement once per backend
//! with that backend's own driver types, so there is no `sqlx::Any` and no translation at
//! run time. The few statements that differ (JSON search, `SKIP LOCKED` claims) say so where
//! they are. Each backend has its own migrations folder, with the same version numbers.

/// Builds a query from `const` fragments of this crate (column lists, shared SELECTs).
/// Only compile-time text goes in; every value is bound, never formatted in.
macro_rules! sql {
    ($($fmt:tt)*) => {
        sqlx::AssertSqlSafe(format!($($fmt)*))
    };
}

/// Runs `$body` with `$c` bound to the executor of whichever backend `$handle` (a `&Db` or
/// a `&mut Tx`) is on. The body is compiled once per backend.
macro_rules! on {
    ($handle:expr, $c:ident => $body:expr) => {
        match $handle.backend() {
            $crate::Backend::Sqlite($c) => $body,
            $crate::Backend::Postgres($c) => $body,
        }
    };
}

pub mod audit;
pub mod blobs;
pub mod changes;
mod error;
pub mod jobs;
pub mod projects;
pub mod recordings;
pub mod sessions;
pub mod tags;
pub mod tokens;
pub mod transfer;
pub mod usage;
pub mod users;
pub mod webhooks;

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use time::OffsetDateTime;

pub use error::StoreError;

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// A value per backend: pools, connections, or anything else that differs by engine.
pub(crate) enum Backend<S, P> {
    Sqlite(S),
    Postgres(P),
}

/// The connection pool, on whichever engine the store was opened.
#[derive(Clone)]
pub(crate) enum Db {
    Sqlite(sqlx::SqlitePool),
    Postgres(sqlx::PgPool),
}

impl Db {
    pub(crate) fn backend(&self) -> Backend<&sqlx::SqlitePool, &sqlx::PgPool> {
        match self {
            Db::Sqlite(pool) => Backend::Sqlite(pool),
            Db::Postgres(pool) => Backend::Postgres(pool),
        }
    }

    pub(crate) async fn begin(&self) -> Result<Tx, sqlx::Error> {
        Ok(match self {
            Db::Sqlite(pool) => Tx::Sqlite(pool.begin().await?),
            Db::Postgres(pool) => Tx::Postgres(pool.begin().await?),
        })
    }

    /// A transaction that reads, then writes: on SQLite it takes the write lock up front
    /// (a deferred one that reads first cannot wait its turn when it then writes: SQLite
    /// answers "busy" at once if another writer committed in between). PostgreSQL locks
    /// rows as they are written and needs nothing more.
    pub(crate) async fn begin_writing(&self) -> Result<Tx, sqlx::Error> {
        Ok(match self {
            Db::Sqlite(pool) => Tx::Sqlite(pool.begin_with("BEGIN IMMEDIATE").await?),
            Db::Postgres(pool) => Tx::Postgres(pool.begin().await?),
        })
    }
}

/// A transaction on either backend; dropped without [`Tx::commit`], it rolls back.
pub(crate) enum Tx {
    Sqlite(sqlx::Transaction<'static, sqlx::Sqlite>),
    Postgres(sqlx::Transaction<'static, sqlx::Postgres>),
}

impl Tx {
    pub(crate) fn backend(
        &mut self,
    ) -> Backend<&mut sqlx::SqliteConnection, &mut sqlx::PgConnection> {
        match self {
            Tx::Sqlite(tx) => Backend::Sqlite(&mut **tx),
            Tx::Postgres(tx) => Backend::Postgres(&mut **tx),
        }
    }

    pub(crate) async fn commit(self) -> Result<(), sqlx::Error> {
        match self {
            Tx::Sqlite(tx) => tx.commit().await,
            Tx::Postgres(tx) => tx.commit().await,
        }
    }
}

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
        Ok(Store { db: Db::Sqlite(db) })
    }

    /// Connects to PostgreSQL (`postgres://…`) and applies its migrations. Every node of a
    /// cluster opens the same database; migrations take an advisory lock, so nodes
    /// starting together apply them once.
    pub async fn open_postgres(url: &str, max_connections: u32) -> Result<Self> {
        let db = sqlx::postgres::PgPoolOptions::new()
            .max_connections(max_connections.max(2))
            .min_connections(1)
            .acquire_timeout(Duration::from_secs(10))
            .connect(url)
            .await?;
        sqlx::migrate!("./migrations/postgres").run(&db).await?;
        Ok(Store {
            db: Db::Postgres(db),
        })
    }

    /// Which engine the store is on, for logs and `/readyz`.
    pub fn engine(&self) -> &'static str {
        match self.db {
            Db::Sqlite(_) => "sqlite",
            Db::Postgres(_) => "postgres",
        }
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

    pub fn usage(&self) -> usage::Usage<'_> {
        usage::Usage { db: &self.db }
    }

    pub fn audit(&self) -> audit::Audit<'_> {
        audit::Audit { db: &self.db }
    }

    /// Readiness: can we run a query right now?
    pub async fn ping(&self) -> Result<()> {
        on!(self.db, c => sqlx::query("SELECT 1").execute(c).await.map(|done| done.rows_affected()))?;
        Ok(())
    }

    pub async fn close(&self) {
        match &self.db {
            Db::Sqlite(pool) => pool.close().await,
            Db::Postgres(pool) => pool.close().await,
        }
    }
}

pub(crate) fn to_millis(t: OffsetDateTime) -> i64 {
    (t.unix_timestamp_nanos() / 1_000_000) as i64
}

pub(crate) fn from_millis(ms: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub(crate) fn now_millis() -> i64 {
    to_millis(OffsetDateTime::now_utc())
}

/// Rounds to the stored precision, so values read back compare equal to values written.
pub fn truncate_to_millis(t: OffsetDateTime) -> OffsetDateTime {
    from_millis(to_millis(t))
}

pub mod testing;
