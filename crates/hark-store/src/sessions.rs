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
        on!(self.db, c => sqlx::query(
            "INSERT INTO web_sessions (id_hash, user_id, created_at, expires_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(id_hash)
        .bind(user_id)
        .bind(now_millis())
        .bind(to_millis(expires_at))
        .execute(c)
        .await
        .map(|done| done.rows_affected()))?;
        Ok(())
    }

    /// The user a live session belongs to, if any.
    pub async fn user_id(&self, id_hash: &[u8]) -> Result<Option<i64>> {
        Ok(on!(self.db, c => sqlx::query_scalar(
            "SELECT user_id FROM web_sessions WHERE id_hash = $1 AND expires_at > $2",
        )
        .bind(id_hash)
        .bind(now_millis())
        .fetch_optional(c)
        .await)?)
    }

    pub async fn delete(&self, id_hash: &[u8]) -> Result<()> {
        on!(self.db, c => sqlx::query("DELETE FROM web_sessions WHERE id_hash = $1")
            .bind(id_hash)
            .execute(c)
            .await
            .map(|done| done.rows_affected()))?;
        Ok(())
    }

    pub async fn delete_expired(&self) -> Result<u64> {
        let done = on!(self.db, c => sqlx::query("DELETE FROM web_sessions WHERE expires_at <= $1")
            .bind(now_millis())
            .execute(c)
            .await
            .map(|done| done.rows_affected()))?;
        Ok(done)
    }
}
