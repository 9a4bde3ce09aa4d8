//! Issuing and revoking tokens: the rules shared by the HTTP API and the admin CLI.

use hark_core::expiry::Expiry;
use hark_core::scopes::Scopes;
use hark_core::tokens::{self, TokenKind, TokenSecret};
use hark_store::Store;
use hark_store::audit::Actor;
use hark_store::tokens::{NewToken, TokenRecord};
use time::OffsetDateTime;

use crate::error::ApiError;

/// The default lifetime when none is given: long enough to be useful, short enough that a
/// forgotten token dies on its own.
pub const DEFAULT_EXPIRY: &str = "90d";

/// A request for a new personal access token, as typed by a person or sent as JSON.
pub struct IssueRequest<'a> {
    pub owner_user_id: i64,
    pub workspace_id: i64,
    pub name: &'a str,
    pub expires: Option<&'a str>,
    pub scopes: Option<&'a [String]>,
    /// What the requester may hand out; a token cannot mint a more powerful one.
    pub grantable: Scopes,
}

/// Validates, generates, stores (hash only) and audits. The secret is returned to be
/// shown once and dropped.
pub async fn issue(
    store: &Store,
    request: IssueRequest<'_>,
    actor: &Actor,
) -> Result<(TokenSecret, TokenRecord), ApiError> {
    let now = OffsetDateTime::now_utc();
    let name = tokens::validate_name(request.name)?;
    let expires_at = Expiry::parse(request.expires.unwrap_or(DEFAULT_EXPIRY), now)?.resolve(now);
    let scopes = match request.scopes {
        None => Scopes::all(),
        Some(list) => Scopes::parse_list(list)?,
    };
    if scopes.iter().any(|s| !request.grantable.contains(s)) {
        return Err(ApiError::forbidden(
            "a token cannot create a token with scopes it does not have",
        ));
    }
    let generated = tokens::generate(TokenKind::Personal);
    let record = store
        .tokens()
        .create(&NewToken {
            kind: TokenKind::Personal,
            name,
            scopes,
            user_id: request.owner_user_id,
            workspace_id: request.workspace_id,
            project_id: None,
            hint: generated.hint.clone(),
            hash: generated.hash,
            expires_at,
        })
        .await?;
    store
        .audit()
        .record(
            actor,
            "token.created",
            &format!("token:{}", record.id),
            Some(&record.name),
        )
        .await?;
    Ok((generated.secret, record))
}

/// Revokes and audits. Callers holding a verification cache evict from it themselves;
/// other processes learn through the store's change log.
pub async fn revoke(store: &Store, id: i64, actor: &Actor) -> Result<TokenRecord, ApiError> {
    let record = store
        .tokens()
        .revoke(id, actor.user_id)
        .await
        .map_err(|e| match e {
            hark_store::StoreError::NotFound => ApiError::NotFound("token"),
            other => other.into(),
        })?;
    store
        .audit()
        .record(
            actor,
            "token.revoked",
            &format!("token:{id}"),
            Some(&record.name),
        )
        .await?;
    Ok(record)
}
