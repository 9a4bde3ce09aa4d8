//! Throwaway PostgreSQL databases for tests and benchmarks: each gets a database of its
//! own on the server at `HARK_TEST_POSTGRES_URL` (default: the local `test` database's
//! server), so tests run in parallel without seeing each other, and it is dropped after.

use sqlx::Connection;

/// The server tests create their databases on, given as the URL of a database to connect
/// to while creating and dropping them.
pub fn postgres_admin_url() -> String {
    std::env::var("HARK_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

/// A database created for one test; dropped (with any connections still open to it) when
/// this value is.
pub struct ScratchDatabase {
    admin_url: String,
    name: String,
    url: String,
}

impl ScratchDatabase {
    pub async fn create() -> Result<Self, sqlx::Error> {
        let admin_url = postgres_admin_url();
        let name = format!(
            "hark_test_{}",
            hark_core::tokens::random_base62(12).to_lowercase()
        );
        let mut admin = sqlx::PgConnection::connect(&admin_url).await?;
        // The name is ours (lowercase letters and digits), never user input.
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut admin)
            .await?;
        admin.close().await?;
        let url = match admin_url.rsplit_once('/') {
            Some((server, _)) => format!("{server}/{name}"),
            None => format!("{admin_url}/{name}"),
        };
        Ok(ScratchDatabase {
            admin_url,
            name,
            url,
        })
    }

    /// The URL to open the database with (`postgres://…/hark_test_…`).
    pub fn url(&self) -> &str {
        &self.url
    }
}

impl Drop for ScratchDatabase {
    fn drop(&mut self) {
        let (admin_url, name) = (self.admin_url.clone(), self.name.clone());
        // Drop runs outside async code (or inside a runtime that must not block): a thread
        // of its own with a small runtime does the drop.
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            runtime.block_on(async {
                let mut admin = sqlx::PgConnection::connect(&admin_url).await.ok()?;
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                )))
                .execute(&mut admin)
                .await
                .ok()
            })
        })
        .join();
        if !matches!(dropped, Ok(Some(_))) {
            eprintln!("could not drop the test database {}", self.name);
        }
    }
}

#[cfg(test)]
pub(crate) async fn temp_store() -> (crate::Store, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = crate::Store::open_data_dir(dir.path())
        .await
        .expect("open store");
    (store, dir)
}

/// Runs a store test on SQLite, then on a scratch PostgreSQL database: the one contract
/// both backends keep.
#[cfg(test)]
pub(crate) async fn on_each_backend(test: impl AsyncFn(crate::Store)) {
    let (sqlite, _dir) = temp_store().await;
    test(sqlite.clone()).await;
    sqlite.close().await;
    let database = ScratchDatabase::create()
        .await
        .expect("a scratch PostgreSQL database (is PostgreSQL running?)");
    let postgres = crate::Store::open_postgres(database.url(), 4)
        .await
        .expect("open the PostgreSQL store");
    test(postgres.clone()).await;
    postgres.close().await;
}
