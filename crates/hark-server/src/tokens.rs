//! Issuing and revoking tokens: the rules shared by the HTTP API and the admin CLI.

use hark_core::expiry::Expiry;
use hark_core::networks::IpRules;
use hark_core::quotas::AudioQuota;
use hark_core::scopes::{Scope, Scopes};
use hark_core::tokens::{self, TokenKind, TokenSecret};
use hark_store::audit::Actor;
use hark_store::tokens::{NewToken, TokenRecord};
use hark_store::{DEFAULT_PROJECT_ID, Store};
use time::OffsetDateTime;

use crate::auth::{Credential, Principal};
use crate::error::ApiError;

/// The default lifetime when none is given: long enough to be useful, short enough that a
/// forgotten token dies on its own.
pub const DEFAULT_EXPIRY: &str = "90d";

/// Most tokens that may work at once, so a leaked session or a runaway script cannot
/// mint tokens without end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenLimits {
    pub per_user: u32,
    pub per_workspace: u32,
}

impl Default for TokenLimits {
    fn default() -> Self {
        TokenLimits {
            per_user: 50,
            per_workspace: 1000,
        }
    }
}

/// A request for a new token, as typed by a person or sent as JSON.
pub struct IssueRequest<'a> {
    /// `Personal` (scoped), `Project` (one project; `batch` or `realtime`) or `Management`
    /// (workspace administration; no scopes).
    pub kind: TokenKind,
    /// Project keys only: the project the key is bound to.
    pub project_id: Option<i64>,
    pub owner_user_id: i64,
    pub workspace_id: i64,
    pub name: &'a str,
    pub expires: Option<&'a str>,
    pub scopes: Option<&'a [String]>,
    /// What the requester may hand out; a token cannot mint a more powerful one.
    pub grantable: Scopes,
    pub limits: TokenLimits,
    /// The token's own request budget (`None`: the server's default).
    pub requests_per_minute: Option<u32>,
    /// Where the token may be used from.
    pub ip_rules: IpRules,
    /// Its audio budget (admins only).
    pub audio_quota: Option<AudioQuota>,
    /// The server's default budget: only admins may give a token more than this.
    pub default_requests_per_minute: u32,
    pub requester_is_admin: bool,
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
    let scopes = match (request.kind, request.scopes) {
        (TokenKind::Management, None) => Scopes::default(),
        (TokenKind::Management, Some(_)) => {
            return Err(ApiError::bad_request(
                "management tokens have no scopes: they reach the management API only",
            ));
        }
        (TokenKind::Personal, None) => Scopes::all(),
        (TokenKind::Personal, Some(list)) => Scopes::parse_list(list)?,
        (TokenKind::Project, list) => {
            let scopes = Scopes::parse_list(list.unwrap_or_default())?;
            let batch: Scopes = [Scope::Batch].into_iter().collect();
            let realtime: Scopes = [Scope::Realtime].into_iter().collect();
            if scopes != batch && scopes != realtime {
                return Err(ApiError::bad_request(
                    "type must be \"batch\" or \"realtime\"",
                ));
            }
            scopes
        }
    };
    let project_id = match (request.kind, request.project_id) {
        (TokenKind::Project, Some(id)) => {
            store
                .projects()
                .get(request.workspace_id, id)
                .await
                .map_err(|e| match e {
                    hark_store::StoreError::NotFound => ApiError::NotFound("project"),
                    other => other.into(),
                })?;
            Some(id)
        }
        (TokenKind::Project, None) => {
            return Err(ApiError::bad_request("project keys need a project_id"));
        }
        (_, Some(_)) => {
            return Err(ApiError::bad_request(
                "project_id belongs to project keys only",
            ));
        }
        (_, None) => None,
    };
    if scopes.iter().any(|s| !request.grantable.contains(s)) {
        return Err(ApiError::forbidden(
            "a token cannot create a token with scopes it does not have",
        ));
    }
    if let Some(rate) = request.requests_per_minute {
        if !(1..=1_000_000).contains(&rate) {
            return Err(ApiError::bad_request(
                "requests_per_minute must be between 1 and 1000000",
            ));
        }
        let above_default =
            request.default_requests_per_minute != 0 && rate > request.default_requests_per_minute;
        if above_default && !request.requester_is_admin {
            return Err(ApiError::forbidden(format!(
                "only admins can allow more than the default {} requests a minute",
                request.default_requests_per_minute
            )));
        }
    }
    // Counted before the insert: two racing requests may both pass the last free place,
    // overshooting by one at worst.
    let (of_user, of_workspace) = store
        .tokens()
        .count_active(request.owner_user_id, request.workspace_id)
        .await?;
    if of_user >= i64::from(request.limits.per_user) {
        return Err(ApiError::Conflict(format!(
            "token limit reached: {} active tokens per user; revoke one first",
            request.limits.per_user
        )));
    }
    if of_workspace >= i64::from(request.limits.per_workspace) {
        return Err(ApiError::Conflict(format!(
            "token limit reached: {} active tokens in this workspace; revoke one first",
            request.limits.per_workspace
        )));
    }
    let generated = tokens::generate(request.kind);
    let record = store
        .tokens()
        .create(&NewToken {
            kind: request.kind,
            name,
            scopes,
            user_id: request.owner_user_id,
            workspace_id: request.workspace_id,
            project_id,
            hint: generated.hint.clone(),
            hash: generated.hash,
            expires_at,
            requests_per_minute: request.requests_per_minute,
            parent_id: None,
            temporary: false,
            ip_rules: request.ip_rules,
            audio_quota: request.audio_quota,
        })
        .await?;
    store
        .audit()
        .record_about(
            actor,
            if record.kind == TokenKind::Project {
                "key.created"
            } else {
                "token.created"
            },
            &format!("token:{}", record.id),
            Some(&record.name),
            Some(&generated.hash.to_hex()),
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
            if record.kind == TokenKind::Project {
                "key.revoked"
            } else {
                "token.revoked"
            },
            &format!("token:{id}"),
            Some(&record.name),
        )
        .await?;
    Ok(record)
}

/// Shortest and longest lifetimes of a temporary key, in seconds (Speechmatics' range).
pub const TEMPORARY_TTL_SECONDS: std::ops::RangeInclusive<i64> = 60..=86_400;

/// What a temporary key is for: one API type, one project, a few minutes or hours.
pub struct TemporaryRequest {
    /// `Batch` or `Realtime`: the key does that and nothing else.
    pub scope: Scope,
    pub ttl_seconds: i64,
    /// For people and personal tokens: the project to bind the key to (default project
    /// when absent). A project key's temporary keys are always in its own project.
    pub project_id: Option<i64>,
}

/// Mints a short-lived project key for a browser or a single stream, so a long-lived key
/// never has to sit in a web page. It can do only what its minter can, for one type; it
/// stops when its parent token is revoked or expires, or its owner is demoted or removed.
pub async fn issue_temporary(
    store: &Store,
    minter: &Principal,
    request: TemporaryRequest,
    actor: &Actor,
) -> Result<(TokenSecret, TokenRecord), ApiError> {
    if !TEMPORARY_TTL_SECONDS.contains(&request.ttl_seconds) {
        return Err(ApiError::bad_request(format!(
            "ttl must be between {} and {} seconds",
            TEMPORARY_TTL_SECONDS.start(),
            TEMPORARY_TTL_SECONDS.end()
        )));
    }
    if !minter.role.may_use_tokens() {
        return Err(ApiError::forbidden("viewers cannot create API keys"));
    }
    minter.refuse_retiring()?;
    minter.require(request.scope)?;
    let parent = match &minter.credential {
        Credential::Token { record, .. } => Some(record.clone()),
        Credential::Session => None,
    };
    let project_id = match (minter.project_id(), request.project_id) {
        (Some(own), Some(asked)) if own != asked => {
            return Err(ApiError::forbidden(
                "a project key mints temporary keys for its own project only",
            ));
        }
        (Some(own), _) => own,
        (None, asked) => asked.unwrap_or(DEFAULT_PROJECT_ID),
    };
    store
        .projects()
        .get(minter.workspace_id, project_id)
        .await
        .map_err(|e| match e {
            hark_store::StoreError::NotFound => ApiError::NotFound("project"),
            other => other.into(),
        })?;
    let now = OffsetDateTime::now_utc();
    let mut expires_at = now + time::Duration::seconds(request.ttl_seconds);
    if let Some(parent_expiry) = parent.as_ref().and_then(|p| p.expires_at) {
        expires_at = expires_at.min(parent_expiry);
    }
    let generated = tokens::generate(TokenKind::Project);
    let type_name = request.scope.as_str();
    let record = store
        .tokens()
        .create(&NewToken {
            kind: TokenKind::Project,
            name: format!("temporary {type_name} key"),
            scopes: [request.scope].into_iter().collect(),
            user_id: minter.user_id,
            workspace_id: minter.workspace_id,
            project_id: Some(project_id),
            hint: generated.hint.clone(),
            hash: generated.hash,
            expires_at: Some(expires_at),
            requests_per_minute: parent.as_ref().and_then(|p| p.requests_per_minute),
            parent_id: parent.as_ref().map(|p| p.id),
            temporary: true,
            // Its parent's rules apply to it at every verification; a member's key from
            // the web has none of its own.
            ip_rules: IpRules::default(),
            audio_quota: None,
        })
        .await?;
    let parent_text = parent
        .as_ref()
        .map_or_else(|| "session".to_owned(), |p| format!("token:{}", p.id));
    store
        .audit()
        .record_about(
            actor,
            "key.temporary_created",
            &format!("token:{}", record.id),
            Some(&format!(
                "type {type_name}, ttl {}s, parent {parent_text}",
                request.ttl_seconds
            )),
            Some(&generated.hash.to_hex()),
        )
        .await?;
    Ok((generated.secret, record))
}
