//! Token records and their secrets (hashes only).

use std::str::FromStr;

use hark_core::networks::IpRules;
use hark_core::quotas::{AudioQuota, Refill};
use hark_core::roles::Role;
use hark_core::scopes::Scopes;
use hark_core::tokens::{TokenHash, TokenKind, TokenStatus};
use time::{Duration, OffsetDateTime};

use crate::{Db, Result, StoreError, Tx, from_millis, now_millis, to_millis};

/// What is needed to store a new token. The plaintext is not here: only its hash.
#[derive(Debug, Clone)]
pub struct NewToken {
    pub kind: TokenKind,
    pub name: String,
    pub scopes: Scopes,
    pub user_id: i64,
    pub workspace_id: i64,
    pub project_id: Option<i64>,
    pub hint: String,
    pub hash: TokenHash,
    pub expires_at: Option<OffsetDateTime>,
    /// Its own request budget; `None`: the server's default.
    pub requests_per_minute: Option<u32>,
    /// The token that minted this temporary key (`None`: a person did, or not temporary).
    pub parent_id: Option<i64>,
    /// A short-lived key for one stream or browser session: not listed, not counted
    /// against token caps (its TTL bounds it).
    pub temporary: bool,
    pub ip_rules: IpRules,
    pub audio_quota: Option<AudioQuota>,
}

/// A token as listings show it.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenRecord {
    pub id: i64,
    pub kind: TokenKind,
    pub name: String,
    pub scopes: Scopes,
    pub user_id: i64,
    pub owner_username: String,
    pub workspace_id: i64,
    pub project_id: Option<i64>,
    pub hint: String,
    pub created_at: OffsetDateTime,
    pub expires_at: Option<OffsetDateTime>,
    pub last_used_at: Option<OffsetDateTime>,
    pub last_used_ip: Option<String>,
    pub revoked_at: Option<OffsetDateTime>,
    pub revoked_by: Option<i64>,
    /// Its own request budget; `None`: the server's default.
    pub requests_per_minute: Option<u32>,
    pub parent_id: Option<i64>,
    pub temporary: bool,
    /// Where it may be used from (a temporary key: its parent's rules apply too).
    pub ip_rules: IpRules,
    pub audio_quota: Option<AudioQuota>,
    /// Set when it was revoked for a reason other than a person's choice (`leaked`).
    pub revoked_reason: Option<String>,
}

impl TokenRecord {
    pub fn status(&self, now: OffsetDateTime) -> TokenStatus {
        TokenStatus::at(now, self.expires_at, self.revoked_at)
    }
}

/// Everything authentication needs to decide about one presented secret, in one query.
#[derive(Debug, Clone, PartialEq)]
pub struct SecretMatch {
    pub record: TokenRecord,
    /// The owner's current role.
    pub role: Role,
    /// Set on the old secret of a token rotated with a grace period.
    pub secret_retires_at: Option<OffsetDateTime>,
    /// A temporary key's parent token, as it stands: the key works only while it does.
    pub parent: Option<ParentState>,
}

/// What decides whether a temporary key's parent still works, and where it may be used.
#[derive(Debug, Clone, PartialEq)]
pub struct ParentState {
    pub revoked_at: Option<OffsetDateTime>,
    pub expires_at: Option<OffsetDateTime>,
    pub ip_rules: IpRules,
    /// A temporary key spends its parent's audio budget.
    pub audio_quota: Option<AudioQuota>,
}

/// One observed use, buffered in memory and written in batches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenUse {
    pub token_id: i64,
    pub at: OffsetDateTime,
    pub ip: Option<String>,
}

#[derive(sqlx::FromRow)]
struct TokenRow {
    id: i64,
    kind: String,
    name: String,
    scopes: String,
    user_id: i64,
    owner_username: String,
    workspace_id: i64,
    project_id: Option<i64>,
    hint: String,
    created_at: i64,
    expires_at: Option<i64>,
    last_used_at: Option<i64>,
    last_used_ip: Option<String>,
    revoked_at: Option<i64>,
    revoked_by: Option<i64>,
    requests_per_minute: Option<i64>,
    parent_id: Option<i64>,
    temporary: bool,
    allowed_cidrs: String,
    denied_cidrs: String,
    audio_quota_seconds: Option<i64>,
    audio_quota_refill: Option<String>,
    revoked_reason: Option<String>,
}

impl TryFrom<TokenRow> for TokenRecord {
    type Error = StoreError;

    fn try_from(r: TokenRow) -> Result<Self> {
        Ok(TokenRecord {
            id: r.id,
            kind: parse_kind(&r.kind)?,
            name: r.name,
            scopes: Scopes::from_str(&r.scopes).map_err(StoreError::corrupt)?,
            user_id: r.user_id,
            owner_username: r.owner_username,
            workspace_id: r.workspace_id,
            project_id: r.project_id,
            hint: r.hint,
            created_at: from_millis(r.created_at),
            expires_at: r.expires_at.map(from_millis),
            last_used_at: r.last_used_at.map(from_millis),
            last_used_ip: r.last_used_ip,
            revoked_at: r.revoked_at.map(from_millis),
            revoked_by: r.revoked_by,
            requests_per_minute: r
                .requests_per_minute
                .map(u32::try_from)
                .transpose()
                .map_err(StoreError::corrupt)?,
            parent_id: r.parent_id,
            temporary: r.temporary,
            ip_rules: ip_rules(&r.allowed_cidrs, &r.denied_cidrs)?,
            audio_quota: audio_quota(r.audio_quota_seconds, r.audio_quota_refill.as_deref())?,
            revoked_reason: r.revoked_reason,
        })
    }
}

#[derive(sqlx::FromRow)]
struct SecretRow {
    #[sqlx(flatten)]
    token: TokenRow,
    role: String,
    retires_at: Option<i64>,
    parent_revoked_at: Option<i64>,
    parent_expires_at: Option<i64>,
    parent_allowed_cidrs: Option<String>,
    parent_denied_cidrs: Option<String>,
    parent_quota_seconds: Option<i64>,
    parent_quota_refill: Option<String>,
}

/// A budget as stored: both columns or neither.
fn audio_quota(seconds: Option<i64>, refill: Option<&str>) -> Result<Option<AudioQuota>> {
    match (seconds, refill) {
        (Some(seconds), Some(refill)) => Ok(Some(AudioQuota {
            seconds: u64::try_from(seconds).map_err(StoreError::corrupt)?,
            refill: Refill::parse(refill).map_err(StoreError::corrupt)?,
        })),
        _ => Ok(None),
    }
}

/// Rules as stored: comma-separated canonical networks.
fn ip_rules(allowed: &str, denied: &str) -> Result<IpRules> {
    let split = |text: &str| -> Vec<String> {
        text.split(',')
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect()
    };
    IpRules::parse(&split(allowed), &split(denied)).map_err(StoreError::corrupt)
}

fn parse_kind(s: &str) -> Result<TokenKind> {
    TokenKind::from_name(s).ok_or_else(|| StoreError::corrupt(format!("token kind {s:?}")))
}

/// The columns of [`TokenRow`]; `t` is `tokens`, `u` the owner in `users`.
const TOKEN_COLUMNS: &str =
    "t.id, t.kind, t.name, t.scopes, t.user_id, u.username AS owner_username,
        t.workspace_id, t.project_id, t.hint, t.created_at, t.expires_at, t.last_used_at,
        t.last_used_ip, t.revoked_at, t.revoked_by, t.requests_per_minute, t.parent_id,
        t.temporary, t.allowed_cidrs, t.denied_cidrs, t.audio_quota_seconds,
        t.audio_quota_refill, t.revoked_reason";

pub struct Tokens<'a> {
    pub(crate) db: &'a Db,
}

impl Tokens<'_> {
    pub async fn create(&self, new: &NewToken) -> Result<TokenRecord> {
        let mut tx = self.db.begin().await?;
        let id: i64 = on!(tx, c => sqlx::query_scalar(
            "INSERT INTO tokens (kind, name, scopes, user_id, workspace_id, project_id, hint, created_at, expires_at, requests_per_minute, parent_id, temporary, allowed_cidrs, denied_cidrs, audio_quota_seconds, audio_quota_refill)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16) RETURNING id",
        )
        .bind(new.kind.as_str())
        .bind(&new.name)
        .bind(new.scopes.to_string())
        .bind(new.user_id)
        .bind(new.workspace_id)
        .bind(new.project_id)
        .bind(&new.hint)
        .bind(now_millis())
        .bind(new.expires_at.map(to_millis))
        .bind(new.requests_per_minute.map(i64::from))
        .bind(new.parent_id)
        .bind(new.temporary)
        .bind(new.ip_rules.allowed().join(","))
        .bind(new.ip_rules.denied().join(","))
        .bind(new.audio_quota.map(|q| q.seconds as i64))
        .bind(new.audio_quota.map(|q| q.refill.as_str()))
        .fetch_one(c)
        .await)?;
        on!(tx, c => sqlx::query("INSERT INTO token_secrets (hash, token_id) VALUES ($1, $2)")
            .bind(new.hash.as_bytes())
            .bind(id)
            .execute(c)
            .await
            .map(|done| done.rows_affected()))?;
        tx.commit().await?;
        self.get(id).await
    }

    /// Looks a presented secret up by its hash. Callers decide what expiry, revocation and
    /// retirement mean; this only reports them.
    pub async fn find_secret(&self, hash: &TokenHash) -> Result<Option<SecretMatch>> {
        let row: Option<SecretRow> = on!(self.db, c => sqlx::query_as(sql!(
            "SELECT {TOKEN_COLUMNS}, u.role, s.retires_at,
                    p.revoked_at AS parent_revoked_at, p.expires_at AS parent_expires_at,
                    p.allowed_cidrs AS parent_allowed_cidrs, p.denied_cidrs AS parent_denied_cidrs,
                    p.audio_quota_seconds AS parent_quota_seconds,
                    p.audio_quota_refill AS parent_quota_refill
             FROM token_secrets s
             JOIN tokens t ON t.id = s.token_id
             JOIN users u ON u.id = t.user_id
             LEFT JOIN tokens p ON p.id = t.parent_id
             WHERE s.hash = $1"
        ))
        .bind(hash.as_bytes())
        .fetch_optional(c)
        .await)?;
        row.map(|r| {
            let parent = match r.token.parent_id {
                Some(_) => Some(ParentState {
                    revoked_at: r.parent_revoked_at.map(from_millis),
                    expires_at: r.parent_expires_at.map(from_millis),
                    ip_rules: ip_rules(
                        r.parent_allowed_cidrs.as_deref().unwrap_or_default(),
                        r.parent_denied_cidrs.as_deref().unwrap_or_default(),
                    )?,
                    audio_quota: audio_quota(
                        r.parent_quota_seconds,
                        r.parent_quota_refill.as_deref(),
                    )?,
                }),
                None => None,
            };
            Ok(SecretMatch {
                role: Role::from_str(&r.role).map_err(StoreError::corrupt)?,
                secret_retires_at: r.retires_at.map(from_millis),
                parent,
                record: r.token.try_into()?,
            })
        })
        .transpose()
    }

    pub async fn get(&self, id: i64) -> Result<TokenRecord> {
        let row: Option<TokenRow> = on!(self.db, c => sqlx::query_as(sql!(
            "SELECT {TOKEN_COLUMNS} FROM tokens t JOIN users u ON u.id = t.user_id WHERE t.id = $1"
        ))
        .bind(id)
        .fetch_optional(c)
        .await)?;
        row.ok_or(StoreError::NotFound)?.try_into()
    }

    /// Newest first.
    pub async fn list_for_user(&self, user_id: i64) -> Result<Vec<TokenRecord>> {
        let rows: Vec<TokenRow> = on!(self.db, c => sqlx::query_as(sql!(
            "SELECT {TOKEN_COLUMNS} FROM tokens t JOIN users u ON u.id = t.user_id WHERE t.user_id = $1 AND NOT t.temporary ORDER BY t.created_at DESC, t.id DESC"
        ))
        .bind(user_id)
        .fetch_all(c)
        .await)?;
        rows.into_iter().map(TryInto::try_into).collect()
    }

    /// Tokens that still work (not revoked, not expired): of one user, and of the whole
    /// workspace.
    pub async fn count_active(&self, user_id: i64, workspace_id: i64) -> Result<(i64, i64)> {
        let now = now_millis();
        let active =
            "NOT temporary AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > $2)";
        let of_user: i64 = on!(self.db, c => sqlx::query_scalar(sql!(
            "SELECT COUNT(*) FROM tokens WHERE user_id = $1 AND {active}"
        ))
        .bind(user_id)
        .bind(now)
        .fetch_one(c)
        .await)?;
        let of_workspace: i64 = on!(self.db, c => sqlx::query_scalar(sql!(
            "SELECT COUNT(*) FROM tokens WHERE workspace_id = $1 AND {active}"
        ))
        .bind(workspace_id)
        .bind(now)
        .fetch_one(c)
        .await)?;
        Ok((of_user, of_workspace))
    }

    /// A project's keys, newest first.
    pub async fn list_for_project(&self, project_id: i64) -> Result<Vec<TokenRecord>> {
        let rows: Vec<TokenRow> = on!(self.db, c => sqlx::query_as(sql!(
            "SELECT {TOKEN_COLUMNS} FROM tokens t JOIN users u ON u.id = t.user_id
             WHERE t.kind = 'project' AND t.project_id = $1 AND NOT t.temporary ORDER BY t.created_at DESC, t.id DESC"
        ))
        .bind(project_id)
        .fetch_all(c)
        .await)?;
        rows.into_iter().map(TryInto::try_into).collect()
    }

    pub async fn list_all(&self) -> Result<Vec<TokenRecord>> {
        let rows: Vec<TokenRow> = on!(self.db, c => sqlx::query_as(sql!(
            "SELECT {TOKEN_COLUMNS} FROM tokens t JOIN users u ON u.id = t.user_id ORDER BY t.created_at DESC, t.id DESC"
        ))
        .fetch_all(c)
        .await)?;
        rows.into_iter().map(TryInto::try_into).collect()
    }

    /// Idempotent: revoking a revoked token keeps the first revocation's time and actor.
    pub async fn revoke(&self, id: i64, by_user: Option<i64>) -> Result<TokenRecord> {
        self.revoke_for(id, by_user, None).await?;
        self.get(id).await
    }

    /// Revokes a token whose secret was reported found in public (nobody's choice, so no
    /// `revoked_by`). Whether this call revoked it (false: it already was).
    pub async fn revoke_as_leaked(&self, id: i64) -> Result<bool> {
        self.revoke_for(id, None, Some("leaked")).await
    }

    async fn revoke_for(
        &self,
        id: i64,
        by_user: Option<i64>,
        reason: Option<&str>,
    ) -> Result<bool> {
        let mut tx = self.db.begin().await?;
        let now = now_millis();
        let updated = on!(tx, c => sqlx::query(
            "UPDATE tokens SET revoked_at = $1, revoked_by = $2, revoked_reason = $3
             WHERE id = $4 AND revoked_at IS NULL",
        )
        .bind(now)
        .bind(by_user)
        .bind(reason)
        .bind(id)
        .execute(c)
        .await
        .map(|done| done.rows_affected()))?;
        if updated == 1 {
            record_change(&mut tx, id, now).await?;
        }
        tx.commit().await?;
        Ok(updated == 1)
    }

    /// Gives the token a new secret. The old secret keeps working for `grace` (zero: stops now).
    pub async fn rotate(
        &self,
        id: i64,
        new_hash: &TokenHash,
        new_hint: &str,
        grace: Duration,
    ) -> Result<TokenRecord> {
        let mut tx = self.db.begin().await?;
        let now = OffsetDateTime::now_utc();
        let now_ms = to_millis(now);
        let retire_ms = to_millis(now + grace);
        if grace.is_zero() {
            on!(tx, c => sqlx::query("DELETE FROM token_secrets WHERE token_id = $1")
                .bind(id)
                .execute(c)
                .await
                .map(|done| done.rows_affected()))?;
        } else {
            on!(tx, c => sqlx::query(
                "UPDATE token_secrets SET retires_at = $1
                 WHERE token_id = $2 AND (retires_at IS NULL OR retires_at > $1)",
            )
            .bind(retire_ms)
            .bind(id)
            .execute(c)
            .await
            .map(|done| done.rows_affected()))?;
        }
        on!(tx, c => sqlx::query("DELETE FROM token_secrets WHERE token_id = $1 AND retires_at <= $2")
            .bind(id)
            .bind(now_ms)
            .execute(c)
            .await
            .map(|done| done.rows_affected()))?;
        on!(tx, c => sqlx::query("INSERT INTO token_secrets (hash, token_id) VALUES ($1, $2)")
            .bind(new_hash.as_bytes())
            .bind(id)
            .execute(c)
            .await
            .map(|done| done.rows_affected()))?;
        on!(tx, c => sqlx::query("UPDATE tokens SET hint = $1 WHERE id = $2")
            .bind(new_hint)
            .bind(id)
            .execute(c)
            .await
            .map(|done| done.rows_affected()))?;
        record_change(&mut tx, id, now_ms).await?;
        tx.commit().await?;
        self.get(id).await
    }

    /// Writes a batch of observed uses; never moves `last_used_at` backwards.
    pub async fn record_uses(&self, uses: &[TokenUse]) -> Result<()> {
        if uses.is_empty() {
            return Ok(());
        }
        // Rows are locked in id order, so nodes flushing overlapping batches at once queue
        // behind each other instead of deadlocking.
        let mut ordered: Vec<&TokenUse> = uses.iter().collect();
        ordered.sort_by_key(|u| u.token_id);
        let mut tx = self.db.begin().await?;
        for u in ordered {
            on!(tx, c => sqlx::query(
                "UPDATE tokens SET last_used_at = $1, last_used_ip = $2
                 WHERE id = $3 AND (last_used_at IS NULL OR last_used_at < $1)",
            )
            .bind(to_millis(u.at))
            .bind(u.ip.as_deref())
            .bind(u.token_id)
            .execute(c)
            .await
            .map(|done| done.rows_affected()))?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// The newest change sequence number (0 when none): where a fresh cache starts watching.
    pub async fn latest_change(&self) -> Result<i64> {
        Ok(
            on!(self.db, c => sqlx::query_scalar::<_, Option<i64>>("SELECT MAX(seq) FROM token_changes")
                .fetch_one(c)
                .await)?
                .unwrap_or(0),
        )
    }

    /// Changes after `seq`, oldest first, as (seq, token id); at most
    /// [`CHANGES_PER_READ`], so a reader that gets that many reads again.
    pub async fn changes_since(&self, seq: i64) -> Result<Vec<(i64, i64)>> {
        Ok(on!(self.db, c => sqlx::query_as(sql!(
            "SELECT seq, token_id FROM token_changes WHERE seq > $1 ORDER BY seq
             LIMIT {CHANGES_PER_READ}"
        ))
        .bind(seq)
        .fetch_all(c)
        .await)?)
    }
}

/// The most changes [`Tokens::changes_since`] returns at once.
pub const CHANGES_PER_READ: usize = 10_000;

async fn record_change(tx: &mut Tx, token_id: i64, at_ms: i64) -> Result<()> {
    on!(tx, c => sqlx::query("INSERT INTO token_changes (token_id, changed_at) VALUES ($1, $2)")
        .bind(token_id)
        .bind(at_ms)
        .execute(c)
        .await
        .map(|done| done.rows_affected()))?;
    Ok(())
}

mod limits;

pub use limits::AudioUse;

#[cfg(test)]
mod tests;
