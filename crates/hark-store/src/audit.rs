//! The append-only audit log. Nothing here updates or deletes an event.

use time::OffsetDateTime;

use crate::{Db, Result, from_millis, now_millis};

/// Who did something, from where. Never holds a secret.
#[derive(Debug, Clone, Default)]
pub struct Actor {
    pub workspace_id: i64,
    pub user_id: Option<i64>,
    pub token_id: Option<i64>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
}

#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct AuditEvent {
    pub id: i64,
    #[sqlx(try_from = "i64")]
    pub at: Millis,
    pub workspace_id: i64,
    pub actor_user_id: Option<i64>,
    pub actor_token_id: Option<i64>,
    pub action: String,
    pub target: String,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub details: Option<String>,
}

/// A stored millisecond timestamp, readable as a time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Millis(pub OffsetDateTime);

impl From<i64> for Millis {
    fn from(ms: i64) -> Self {
        Millis(from_millis(ms))
    }
}

pub struct Audit<'a> {
    pub(crate) db: &'a Db,
}

impl Audit<'_> {
    pub async fn record(
        &self,
        actor: &Actor,
        action: &str,
        target: &str,
        details: Option<&str>,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO audit_events (at, workspace_id, actor_user_id, actor_token_id, action, target, ip, user_agent, details)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(now_millis())
        .bind(actor.workspace_id)
        .bind(actor.user_id)
        .bind(actor.token_id)
        .bind(action)
        .bind(target)
        .bind(actor.ip.as_deref())
        .bind(actor.user_agent.as_deref())
        .bind(details)
        .execute(self.db)
        .await?;
        Ok(())
    }

    /// Newest first.
    pub async fn recent(&self, workspace_id: i64, limit: i64) -> Result<Vec<AuditEvent>> {
        Ok(sqlx::query_as(
            "SELECT id, at, workspace_id, actor_user_id, actor_token_id, action, target, ip, user_agent, details
             FROM audit_events WHERE workspace_id = $1 ORDER BY at DESC, id DESC LIMIT $2",
        )
        .bind(workspace_id)
        .bind(limit)
        .fetch_all(self.db)
        .await?)
    }
}
