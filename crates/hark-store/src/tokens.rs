//! Token records and their secrets (hashes only).

use std::str::FromStr;

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

/// What decides whether a temporary key's parent still works.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ParentState {
    pub revoked_at: Option<OffsetDateTime>,
    pub expires_at: Option<OffsetDateTime>,
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
}

fn parse_kind(s: &str) -> Result<TokenKind> {
    TokenKind::from_name(s).ok_or_else(|| StoreError::corrupt(format!("token kind {s:?}")))
}

/// The columns of [`TokenRow`]; `t` is `tokens`, `u` the owner in `users`.
const TOKEN_COLUMNS: &str =
    "t.id, t.kind, t.name, t.scopes, t.user_id, u.username AS owner_username,
        t.workspace_id, t.project_id, t.hint, t.created_at, t.expires_at, t.last_used_at,
        t.last_used_ip, t.revoked_at, t.revoked_by, t.requests_per_minute, t.parent_id,
        t.temporary";

pub struct Tokens<'a> {
    pub(crate) db: &'a Db,
}

impl Tokens<'_> {
    pub async fn create(&self, new: &NewToken) -> Result<TokenRecord> {
        let mut tx = self.db.begin().await?;
        let id: i64 = on!(tx, c => sqlx::query_scalar(
            "INSERT INTO tokens (kind, name, scopes, user_id, workspace_id, project_id, hint, created_at, expires_at, requests_per_minute, parent_id, temporary)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) RETURNING id",
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
                    p.revoked_at AS parent_revoked_at, p.expires_at AS parent_expires_at
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
            Ok(SecretMatch {
                role: Role::from_str(&r.role).map_err(StoreError::corrupt)?,
                secret_retires_at: r.retires_at.map(from_millis),
                parent: r.token.parent_id.map(|_| ParentState {
                    revoked_at: r.parent_revoked_at.map(from_millis),
                    expires_at: r.parent_expires_at.map(from_millis),
                }),
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
        let mut tx = self.db.begin().await?;
        let now = now_millis();
        let updated = on!(tx, c => sqlx::query(
            "UPDATE tokens SET revoked_at = $1, revoked_by = $2 WHERE id = $3 AND revoked_at IS NULL",
        )
        .bind(now)
        .bind(by_user)
        .bind(id)
        .execute(c)
        .await
        .map(|done| done.rows_affected()))?;
        if updated == 1 {
            record_change(&mut tx, id, now).await?;
        }
        tx.commit().await?;
        self.get(id).await
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::on_each_backend;
    use hark_core::tokens::generate;

    /// A personal token's secret and the request to store it; tests adjust fields.
    fn token_request(
        user_id: i64,
        kind: TokenKind,
    ) -> (hark_core::tokens::GeneratedToken, NewToken) {
        let generated = generate(kind);
        let request = NewToken {
            kind,
            name: "ci".into(),
            scopes: Scopes::all(),
            user_id,
            workspace_id: 1,
            project_id: None,
            hint: generated.hint.clone(),
            hash: generated.hash,
            expires_at: None,
            requests_per_minute: None,
            parent_id: None,
            temporary: false,
        };
        (generated, request)
    }

    async fn new_token(
        store: &crate::Store,
        user_id: i64,
    ) -> (hark_core::tokens::GeneratedToken, TokenRecord) {
        let (generated, request) = token_request(user_id, TokenKind::Personal);
        let record = store.tokens().create(&request).await.unwrap();
        (generated, record)
    }

    #[tokio::test]
    async fn a_temporary_key_reports_its_parent_and_is_not_listed() {
        on_each_backend(async |store| {
            let user = store
                .users()
                .create("ada", "x", Role::Member)
                .await
                .unwrap();
            let (_, parent) = new_token(&store, user.id).await;
            let (generated, request) = token_request(user.id, TokenKind::Project);
            let child = store
                .tokens()
                .create(&NewToken {
                    name: "temporary".into(),
                    scopes: [hark_core::scopes::Scope::Realtime].into_iter().collect(),
                    expires_at: Some(OffsetDateTime::now_utc() + Duration::minutes(1)),
                    parent_id: Some(parent.id),
                    temporary: true,
                    ..request
                })
                .await
                .unwrap();
            assert!(child.temporary);
            let found = store.tokens().find_secret(&generated.hash).await.unwrap();
            let state = found.unwrap().parent.unwrap();
            assert_eq!(state.revoked_at, None);
            store
                .tokens()
                .revoke(parent.id, Some(user.id))
                .await
                .unwrap();
            let found = store.tokens().find_secret(&generated.hash).await.unwrap();
            assert!(found.unwrap().parent.unwrap().revoked_at.is_some());
            let listed = store.tokens().list_for_user(user.id).await.unwrap();
            assert!(listed.iter().all(|t| t.id != child.id));
            assert_eq!(
                store.tokens().count_active(user.id, 1).await.unwrap(),
                (0, 0)
            );
        })
        .await;
    }

    #[tokio::test]
    async fn create_find_revoke_and_change_log() {
        on_each_backend(async |store| {
            let user = store
                .users()
                .create("ada", "x", Role::Member)
                .await
                .unwrap();
            let (generated, record) = new_token(&store, user.id).await;
            assert_eq!(record.owner_username, "ada");
            let found = store
                .tokens()
                .find_secret(&generated.hash)
                .await
                .unwrap()
                .unwrap();
            assert_eq!((&found.record, found.role), (&record, Role::Member));
            assert_eq!(store.tokens().latest_change().await.unwrap(), 0);

            let revoked = store
                .tokens()
                .revoke(record.id, Some(user.id))
                .await
                .unwrap();
            assert_eq!(
                revoked.status(OffsetDateTime::now_utc()),
                TokenStatus::Revoked
            );
            let again = store.tokens().revoke(record.id, None).await.unwrap();
            assert_eq!(
                again.revoked_at, revoked.revoked_at,
                "second revoke keeps the first"
            );
            assert_eq!(
                store.tokens().changes_since(0).await.unwrap(),
                vec![(1, record.id)]
            );
            assert!(matches!(
                store.tokens().revoke(999, None).await,
                Err(StoreError::NotFound)
            ));
        })
        .await;
    }

    #[tokio::test]
    async fn rotation_keeps_the_old_secret_only_for_the_grace() {
        on_each_backend(async |store| {
            let user = store
                .users()
                .create("bo", "x", Role::Developer)
                .await
                .unwrap();
            let (first, record) = new_token(&store, user.id).await;
            let second = generate(TokenKind::Personal);
            let rotated = store
                .tokens()
                .rotate(record.id, &second.hash, &second.hint, Duration::hours(1))
                .await
                .unwrap();
            assert_eq!(rotated.hint, second.hint);
            let old = store
                .tokens()
                .find_secret(&first.hash)
                .await
                .unwrap()
                .unwrap();
            assert!(old.secret_retires_at.is_some());
            assert!(
                store
                    .tokens()
                    .find_secret(&second.hash)
                    .await
                    .unwrap()
                    .unwrap()
                    .secret_retires_at
                    .is_none()
            );

            let third = generate(TokenKind::Personal);
            store
                .tokens()
                .rotate(record.id, &third.hash, &third.hint, Duration::ZERO)
                .await
                .unwrap();
            assert!(
                store
                    .tokens()
                    .find_secret(&first.hash)
                    .await
                    .unwrap()
                    .is_none()
            );
            assert!(
                store
                    .tokens()
                    .find_secret(&second.hash)
                    .await
                    .unwrap()
                    .is_none()
            );
            assert!(
                store
                    .tokens()
                    .find_secret(&third.hash)
                    .await
                    .unwrap()
                    .is_some()
            );
        })
        .await;
    }

    #[tokio::test]
    async fn change_log_entries_become_visible_in_their_order() {
        // A reader follows the log by seq: a later seq committed before an earlier one would
        // move it past the earlier change for good. So a second writer waits for the first.
        on_each_backend(async |store| {
            let mut first = store.db.begin().await.unwrap();
            record_change(&mut first, 1, 0).await.unwrap();
            let second = tokio::spawn({
                let store = store.clone();
                async move {
                    let mut tx = store.db.begin().await.unwrap();
                    record_change(&mut tx, 2, 0).await.unwrap();
                    tx.commit().await.unwrap();
                }
            });
            tokio::time::sleep(std::time::Duration::from_millis(300)).await;
            assert!(
                !second.is_finished(),
                "the second writer waits for the first"
            );
            assert!(store.tokens().changes_since(0).await.unwrap().is_empty());
            first.commit().await.unwrap();
            second.await.unwrap();
            let changes = store.tokens().changes_since(0).await.unwrap();
            let tokens: Vec<i64> = changes.iter().map(|(_, token)| *token).collect();
            assert_eq!(tokens, [1, 2]);
        })
        .await;
    }

    #[tokio::test]
    async fn uses_never_move_backwards() {
        on_each_backend(async |store| {
            let user = store.users().create("cy", "x", Role::Admin).await.unwrap();
            let (_, record) = new_token(&store, user.id).await;
            let later = crate::truncate_to_millis(OffsetDateTime::now_utc());
            let earlier = later - Duration::minutes(5);
            let uses = [
                TokenUse {
                    token_id: record.id,
                    at: later,
                    ip: Some("127.0.0.1".into()),
                },
                TokenUse {
                    token_id: record.id,
                    at: earlier,
                    ip: Some("10.0.0.1".into()),
                },
            ];
            store.tokens().record_uses(&uses).await.unwrap();
            let got = store.tokens().get(record.id).await.unwrap();
            assert_eq!(got.last_used_at, Some(later));
            assert_eq!(got.last_used_ip.as_deref(), Some("127.0.0.1"));
        })
        .await;
    }
}
