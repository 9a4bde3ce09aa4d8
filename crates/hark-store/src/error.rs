use thiserror::Error;

#[derive(Debug, Error)]
pub enum StoreError {
    #[error("not found")]
    NotFound,
    /// A uniqueness rule was hit; the message names what already exists.
    #[error("{0}")]
    Conflict(String),
    #[error("stored data is invalid: {0}")]
    Corrupt(String),
    #[error("database error: {0}")]
    Database(sqlx::Error),
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("file storage error: {0}")]
    Io(#[from] std::io::Error),
    /// Storage that lives elsewhere (the bucket) cannot be reached or refused the request.
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    /// A setting cannot work (a malformed database or blob URL).
    #[error("{0}")]
    Config(String),
}

impl From<sqlx::Error> for StoreError {
    /// A database that did not answer (down, restarting, out of connections, failing over)
    /// is [`StoreError::Unavailable`], worth retrying; one that refused a statement is not.
    fn from(err: sqlx::Error) -> Self {
        let lost = matches!(
            err,
            sqlx::Error::Io(_)
                | sqlx::Error::PoolTimedOut
                | sqlx::Error::PoolClosed
                | sqlx::Error::Tls(_)
                | sqlx::Error::WorkerCrashed
        ) || matches!(&err, sqlx::Error::Database(db)
        // 57P: shutting down or restarting; 08: the connection failed; 53: out of
        // resources (too many connections); 25006: a read-only standby (failover);
        // 40001/40P01: serialization failure or deadlock — all worth a retry.
        if db.code().is_some_and(|c| {
            ["57P", "08", "53"].iter().any(|class| c.starts_with(class))
                || ["25006", "40001", "40P01"].contains(&c.as_ref())
        }));
        if lost {
            StoreError::Unavailable(format!("database: {err}"))
        } else {
            StoreError::Database(err)
        }
    }
}

impl StoreError {
    pub(crate) fn corrupt(what: impl std::fmt::Display) -> Self {
        StoreError::Corrupt(what.to_string())
    }

    /// Maps a unique-constraint violation to [`StoreError::Conflict`].
    pub(crate) fn conflict_on_unique(err: sqlx::Error, message: &str) -> Self {
        match &err {
            sqlx::Error::Database(db) if db.is_unique_violation() => {
                StoreError::Conflict(message.to_owned())
            }
            _ => StoreError::from(err),
        }
    }
}
