//! Web sign-in sessions. The cookie carries a random id; only its SHA-256 is stored.

use time::OffsetDateTime;

use crate::{Db, Result, now_millis, to_millis};

pub struct Sessions<'a> {
    pub(crate) db: &'a Db,
}

impl Sessions<'_> {
    pub async fn create(
        &self,
        id_hash: &[u8],
        user_id: i64,
        expires_at: OffsetDateTime,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO web_sessions (id_hash, user_id, created_at, expires_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(id_hash)
        .bind(user_id)
        .bind(now_millis())
        .bind(to_millis(expires_at))
        .execute(self.db)
        .await?;
        Ok(())
    }

    /// The user a live session belongs to, if any.
    pub async fn user_id(&self, id_hash: &[u8]) -> Result<Option<i64>> {
        Ok(sqlx::query_scalar(
            "SELECT user_id FROM web_sessions WHERE id_hash = $1 AND expires_at > $2",
        )
        .bind(id_hash)
        .bind(now_millis())
        .fetch_optional(self.db)
        .await?)
    }

    pub async fn delete(&self, id_hash: &[u8]) -> Result<()> {
        sqlx::query("DELETE FROM web_sessions WHERE id_hash = $1")
            .bind(id_hash)
            .execute(self.db)
            .await?;
        Ok(())
    }

    pub async fn delete_expired(&self) -> Result<u64> {
        let done = sqlx::query("DELETE FROM web_sessions WHERE expires_at <= $1")
            .bind(now_millis())
            .execute(self.db)
            .await?;
        Ok(done.rows_affected())
    }
}
