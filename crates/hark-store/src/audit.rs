//! The append-only audit log. Nothing here updates or deletes an event.

use hark_core::pagination::PageRequest;
use time::OffsetDateTime;

use crate::{Db, Result, from_millis, now_millis, to_millis};

/// Who did something, from where. Never holds a secret.
#[derive(Debug, Clone, Default)]
pub struct Actor {
    pub workspace_id: i64,
    pub user_id: Option<i64>,
    pub token_id: Option<i64>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    /// The SHA-256 (hex) of the token secret used, when a token was.
    pub token_hash: Option<String>,
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
    pub token_hash: Option<String>,
    pub subject_hash: Option<String>,
}

/// A stored millisecond timestamp, readable as a time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Millis(pub OffsetDateTime);

impl From<i64> for Millis {
    fn from(ms: i64) -> Self {
        Millis(from_millis(ms))
    }
}

/// What an audit listing is narrowed to; every field is optional.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    /// Exact action, e.g. `token.revoked`.
    pub action: Option<String>,
    pub actor_user_id: Option<i64>,
    /// Exact target, e.g. `token:12`.
    pub target: Option<String>,
    pub since: Option<OffsetDateTime>,
    pub until: Option<OffsetDateTime>,
    /// Events done with the token secret of this SHA-256 (hex), or about its token.
    pub token_hash: Option<String>,
}

const COLUMNS: &str = "id, at, workspace_id, actor_user_id, actor_token_id, action, target, ip, \
                       user_agent, details, token_hash, subject_hash";

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
        self.record_about(actor, action, target, details, None)
            .await
    }

    /// [`record`](Self::record) for an event about a token secret (its creation, rotation
    /// or leak): `subject_hash` names that secret, beside the actor's own.
    pub async fn record_about(
        &self,
        actor: &Actor,
        action: &str,
        target: &str,
        details: Option<&str>,
        subject_hash: Option<&str>,
    ) -> Result<()> {
        on!(self.db, c => sqlx::query(
            "INSERT INTO audit_events (at, workspace_id, actor_user_id, actor_token_id, action, target, ip, user_agent, details, token_hash, subject_hash)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
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
        .bind(actor.token_hash.as_deref())
        .bind(subject_hash)
        .execute(c)
        .await
        .map(|done| done.rows_affected()))?;
        Ok(())
    }

    /// One page of a workspace's events matching `filter`, newest first, and how many
    /// match in all.
    pub async fn page(
        &self,
        workspace_id: i64,
        filter: &AuditFilter,
        page: PageRequest,
    ) -> Result<(Vec<AuditEvent>, u64)> {
        // Only fixed clause texts are formatted in; every value is bound.
        let mut clauses = String::from("workspace_id = $1");
        let mut n = 1;
        let mut next = |column: &str, op: &str| {
            n += 1;
            format!(" AND {column} {op} ${n}")
        };
        if filter.action.is_some() {
            clauses.push_str(&next("action", "="));
        }
        if filter.actor_user_id.is_some() {
            clauses.push_str(&next("actor_user_id", "="));
        }
        if filter.target.is_some() {
            clauses.push_str(&next("target", "="));
        }
        if filter.since.is_some() {
            clauses.push_str(&next("at", ">="));
        }
        if filter.until.is_some() {
            clauses.push_str(&next("at", "<"));
        }
        if filter.token_hash.is_some() {
            // What the secret did (it is the actor's), what was said of it (its creation,
            // rotation, leak), and everything about the token those events name.
            n += 1;
            clauses.push_str(&format!(
                " AND (token_hash = ${n} OR subject_hash = ${n} OR target IN (
                     SELECT target FROM audit_events WHERE subject_hash = ${n}))"
            ));
        }
        let (limit, offset) = (n + 1, n + 2);
        macro_rules! bind_filter {
            ($query:expr) => {{
                let mut q = $query.bind(workspace_id);
                if let Some(v) = &filter.action {
                    q = q.bind(v.clone());
                }
                if let Some(v) = filter.actor_user_id {
                    q = q.bind(v);
                }
                if let Some(v) = &filter.target {
                    q = q.bind(v.clone());
                }
                if let Some(v) = filter.since {
                    q = q.bind(to_millis(v));
                }
                if let Some(v) = filter.until {
                    q = q.bind(to_millis(v));
                }
                if let Some(v) = &filter.token_hash {
                    q = q.bind(v.clone());
                }
                q
            }};
        }
        let total: i64 = on!(self.db, c => bind_filter!(sqlx::query_scalar(sql!(
            "SELECT COUNT(*) FROM audit_events WHERE {clauses}"
        )))
        .fetch_one(c)
        .await)?;
        let events: Vec<AuditEvent> = on!(self.db, c => bind_filter!(sqlx::query_as(sql!(
            "SELECT {COLUMNS} FROM audit_events WHERE {clauses}
             ORDER BY at DESC, id DESC LIMIT ${limit} OFFSET ${offset}"
        )))
        .bind(page.limit())
        .bind(page.offset())
        .fetch_all(c)
        .await)?;
        Ok((events, u64::try_from(total).unwrap_or(0)))
    }

    /// Newest first.
    pub async fn recent(&self, workspace_id: i64, limit: i64) -> Result<Vec<AuditEvent>> {
        Ok(on!(self.db, c => sqlx::query_as(
            "SELECT id, at, workspace_id, actor_user_id, actor_token_id, action, target, ip, user_agent, details, token_hash, subject_hash
             FROM audit_events WHERE workspace_id = $1 ORDER BY at DESC, id DESC LIMIT $2",
        )
        .bind(workspace_id)
        .bind(limit)
        .fetch_all(c)
        .await)?)
    }
}
