//! `/api/tokens`: create, list, inspect, revoke and rotate API tokens.

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use hark_core::duration::parse_grace;
use hark_core::networks::IpRules;
use hark_core::quotas::AudioQuota;
use hark_core::roles::Role;
use hark_core::scopes::Scope;
use hark_core::tokens::{self, TokenKind, TokenStatus};
use hark_store::audit::Actor;
use hark_store::tokens::TokenRecord;
use serde::{Deserialize, Serialize};
use std::net::IpAddr;
use time::{Duration, OffsetDateTime};
use utoipa::ToSchema;

use crate::auth::{BudgetHolder, ClientIp, Credential, Principal};
use crate::error::{ApiError, ApiJson, ApiPath, ErrorBody};
use crate::state::AppState;
use crate::tokens::IssueRequest;

/// Tokens expiring within this window are flagged so people renew them in time.
const EXPIRY_WARNING: Duration = Duration::days(7);

/// A token as listed: never its secret. Borrows from the record it shows, so answering
/// `GET /api/tokens/self` from the cache allocates next to nothing.
#[derive(Serialize, ToSchema)]
pub struct TokenView<'a> {
    pub id: i64,
    pub name: &'a str,
    /// `personal`, `project` or `management`.
    pub kind: &'static str,
    pub scopes: Vec<&'static str>,
    /// `active`, `expired` or `revoked`.
    pub status: &'static str,
    /// The prefix and last four characters, e.g. `hark_pat_…a1B2`.
    pub hint: &'a str,
    pub owner: &'a str,
    pub project_id: Option<i64>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_used_at: Option<OffsetDateTime>,
    pub last_used_ip: Option<String>,
    /// Absent when the token never expires.
    #[serde(with = "time::serde::rfc3339::option")]
    pub expires_at: Option<OffsetDateTime>,
    /// True while active and expiring within 7 days.
    pub expires_soon: bool,
    #[serde(with = "time::serde::rfc3339::option")]
    pub revoked_at: Option<OffsetDateTime>,
    /// Its own budget (requests a minute); null: the server's default.
    pub requests_per_minute: Option<u32>,
    /// Networks it may be used from (`[]`: anywhere) and never from.
    #[serde(serialize_with = "networks")]
    #[schema(value_type = Vec<String>)]
    pub allowed_cidrs: &'a [ipnet::IpNet],
    #[serde(serialize_with = "networks")]
    #[schema(value_type = Vec<String>)]
    pub denied_cidrs: &'a [ipnet::IpNet],
    /// Its audio budget, if it has one (remaining minutes are in `GET /api/tokens/{id}/usage`).
    pub audio_quota_minutes: Option<u64>,
    pub audio_quota_refill: Option<&'static str>,
    /// What is left of it this period, in whole seconds (listings only).
    pub audio_quota_remaining_seconds: Option<u64>,
    /// `leaked` when it was revoked because its secret was reported found in public.
    pub revoked_reason: Option<&'a str>,
}

impl<'a> TokenView<'a> {
    pub fn of(record: &'a TokenRecord, now: OffsetDateTime) -> Self {
        let status = record.status(now);
        TokenView {
            id: record.id,
            name: &record.name,
            kind: record.kind.as_str(),
            scopes: record.scopes.names(),
            status: status_name(status),
            hint: &record.hint,
            owner: &record.owner_username,
            project_id: record.project_id,
            created_at: record.created_at,
            last_used_at: record.last_used_at,
            last_used_ip: record.last_used_ip.clone(),
            expires_at: record.expires_at,
            expires_soon: status == TokenStatus::Active
                && record.expires_at.is_some_and(|t| t - now <= EXPIRY_WARNING),
            revoked_at: record.revoked_at,
            requests_per_minute: record.requests_per_minute,
            allowed_cidrs: record.ip_rules.allowed_networks(),
            denied_cidrs: record.ip_rules.denied_networks(),
            audio_quota_minutes: record.audio_quota.map(|q| q.seconds / 60),
            audio_quota_refill: record.audio_quota.map(|q| q.refill.as_str()),
            audio_quota_remaining_seconds: None,
            revoked_reason: record.revoked_reason.as_deref(),
        }
    }
}

/// Networks as text, written straight into the answer (no `String` per network).
fn networks<S: serde::Serializer>(list: &&[ipnet::IpNet], out: S) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeSeq;
    let mut seq = out.serialize_seq(Some(list.len()))?;
    for net in list.iter() {
        seq.serialize_element(&format_args!("{net}"))?;
    }
    seq.end()
}

fn status_name(status: TokenStatus) -> &'static str {
    match status {
        TokenStatus::Active => "active",
        TokenStatus::Expired => "expired",
        TokenStatus::Revoked => "revoked",
    }
}

/// The creation (or rotation) response: the only time the plaintext is ever shown.
#[derive(Serialize, ToSchema)]
pub struct TokenCreated<'a> {
    /// The token itself. Store it now: it cannot be shown again.
    pub token: String,
    #[serde(flatten)]
    pub details: TokenView<'a>,
}

#[derive(Serialize, ToSchema)]
pub struct TokenList<'a> {
    pub tokens: Vec<TokenView<'a>>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateToken {
    /// 1 to 100 characters, e.g. "n8n automation".
    pub name: String,
    /// `never`, `30d`, `90d`, `1y`, `2y`, `5y`, a date `YYYY-MM-DD` or an RFC 3339 time. Default `90d`.
    pub expires: Option<String>,
    /// Any of `read`, `write`, `batch`, `realtime`. Default: all four.
    pub scopes: Option<Vec<String>>,
    /// `personal` (the default), `project` (admins and developers: one project's batch or
    /// realtime key) or `management` (admins only: the management API, no scopes).
    pub kind: Option<String>,
    /// Project keys: the project the key is bound to.
    pub project_id: Option<i64>,
    /// Project keys: `batch` (upload, sessions, documents) or `realtime` (streaming).
    #[serde(rename = "type")]
    pub key_type: Option<String>,
    /// This token's own budget, requests a minute (1 to 1,000,000). Default: the server's
    /// (`--token-rate-per-minute`). Only admins may set more than that.
    pub requests_per_minute: Option<u32>,
    /// Networks it may be used from (CIDR or single addresses, IPv4 or IPv6, at most 32).
    /// Default: anywhere.
    pub allowed_cidrs: Option<Vec<String>>,
    /// Networks it may never be used from; wins over `allowed_cidrs`.
    pub denied_cidrs: Option<Vec<String>>,
    /// Minutes of audio it may transcribe or stream a period. Default: no budget.
    pub audio_quota_minutes: Option<u64>,
    /// When the budget refills: `daily` or `monthly` (the default), at 00:00 UTC.
    pub audio_quota_refill: Option<String>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RotateToken {
    /// How long the old secret keeps working, e.g. `1h`. Default: it stops at once.
    pub grace: Option<String>,
}

pub(crate) fn actor(principal: &Principal, headers: &HeaderMap, ip: Option<IpAddr>) -> Actor {
    Actor {
        workspace_id: principal.workspace_id,
        user_id: Some(principal.user_id),
        token_id: principal.token_id(),
        ip: ip.map(|ip| ip.to_string()),
        user_agent: headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(|s| s.chars().take(200).collect()),
        token_hash: match &principal.credential {
            Credential::Token { hash, .. } => Some(hash.to_hex()),
            Credential::Session => None,
        },
    }
}

#[utoipa::path(post, path = "/api/tokens", tag = "tokens",
    request_body = CreateToken,
    responses(
        (status = 201, description = "Created; `token` holds the plaintext, shown only here", body = TokenCreated),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn create_token(
    State(state): State<AppState>,
    principal: Principal,
    ClientIp(client_ip): ClientIp,
    headers: HeaderMap,
    ApiJson(body): ApiJson<CreateToken>,
) -> Result<Response, ApiError> {
    let kind = match body.kind.as_deref().unwrap_or("personal") {
        "personal" => TokenKind::Personal,
        "management" => TokenKind::Management,
        "project" => TokenKind::Project,
        other => {
            return Err(ApiError::bad_request(format!(
                "kind: {other:?} is not one of \"personal\", \"project\", \"management\""
            )));
        }
    };
    match kind {
        // Never from a personal token, even an admin's: a leaked PAT must not become a
        // management token.
        TokenKind::Management => principal.require_management().map_err(|_| {
            ApiError::forbidden(
                "management tokens are made by an admin signed in to the web UI, or with a \
                 management token",
            )
        })?,
        TokenKind::Project => {
            principal.require_token_management()?;
            if !matches!(principal.role, Role::Admin | Role::Developer) {
                return Err(ApiError::forbidden(
                    "only admins and developers can create project keys",
                ));
            }
        }
        TokenKind::Personal => principal.require_token_management()?,
    }
    // A project key's scope is its type.
    let scopes = match (kind, body.key_type.as_deref()) {
        (TokenKind::Project, Some(key_type)) => Some(vec![key_type.to_owned()]),
        (TokenKind::Project, None) => {
            return Err(ApiError::bad_request(
                "project keys need a type: \"batch\" or \"realtime\"",
            ));
        }
        (_, Some(_)) => {
            return Err(ApiError::bad_request("type belongs to project keys only"));
        }
        (_, None) => body.scopes.clone(),
    };
    if kind == TokenKind::Project && body.scopes.is_some() {
        return Err(ApiError::bad_request(
            "project keys take a type, not scopes",
        ));
    }
    // A budget is the admins' to give: a budgeted token cannot mint an unbudgeted one.
    if matches!(principal.credential, Credential::Token { .. }) && principal.budget().is_some() {
        return Err(ApiError::forbidden(
            "a token with an audio budget cannot create tokens: sign in to the web UI",
        ));
    }
    let (secret, record) = crate::tokens::issue(
        &state.store,
        IssueRequest {
            kind,
            project_id: body.project_id,
            owner_user_id: principal.user_id,
            workspace_id: principal.workspace_id,
            name: &body.name,
            expires: body.expires.as_deref(),
            scopes: scopes.as_deref(),
            grantable: principal.grantable_scopes(),
            limits: state.config.token_limits,
            requests_per_minute: body.requests_per_minute,
            default_requests_per_minute: state.config.token_requests_per_minute,
            requester_is_admin: principal.role == Role::Admin,
            ip_rules: principal.grantable_rules(IpRules::parse(
                body.allowed_cidrs.as_deref().unwrap_or_default(),
                body.denied_cidrs.as_deref().unwrap_or_default(),
            )?)?,
            audio_quota: AudioQuota::from_minutes(
                body.audio_quota_minutes,
                body.audio_quota_refill.as_deref(),
            )?,
        },
        &actor(&principal, &headers, client_ip),
    )
    .await?;
    let created = TokenCreated {
        token: secret.into_exposed(),
        details: TokenView::of(&record, OffsetDateTime::now_utc()),
    };
    Ok((StatusCode::CREATED, Json(created)).into_response())
}

#[utoipa::path(get, path = "/api/tokens", tag = "tokens",
    responses((status = 200, body = TokenList), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn list_tokens(
    State(state): State<AppState>,
    principal: Principal,
) -> Result<Response, ApiError> {
    principal.require(Scope::Read)?;
    let now = OffsetDateTime::now_utc();
    let tokens = state
        .store
        .tokens()
        .list_for_user(principal.user_id)
        .await?;
    let mut views: Vec<TokenView> = tokens.iter().map(|t| TokenView::of(t, now)).collect();
    for (view, token) in views.iter_mut().zip(&tokens) {
        if let Some(quota) = token.audio_quota {
            let holder = BudgetHolder {
                token_id: token.id,
                quota,
            };
            let budget = crate::budgets::of(&state, holder).await?;
            view.audio_quota_remaining_seconds = Some(budget.remaining_seconds.floor() as u64);
        }
    }
    Ok(Json(TokenList { tokens: views }).into_response())
}

#[utoipa::path(get, path = "/api/tokens/self", tag = "tokens",
    responses((status = 200, description = "The token this request was made with", body = TokenView),
        (status = 400, description = "Signed in with a session, not a token", body = ErrorBody),
        (status = 401, body = ErrorBody)))]
pub async fn token_self(
    principal: Principal,
    ClientIp(client_ip): ClientIp,
) -> Result<Response, ApiError> {
    let Credential::Token { record, .. } = &principal.credential else {
        return Err(ApiError::bad_request(
            "this request was not made with an API token",
        ));
    };
    // Served from the verification cache: no storage round trip. This request is the
    // token's latest use, so that is what it reports.
    let now = OffsetDateTime::now_utc();
    let mut view = TokenView::of(record, now);
    view.last_used_at = Some(now);
    view.last_used_ip = client_ip.map(|ip| ip.to_string());
    Ok(Json(view).into_response())
}

/// A token the caller may manage: their own, or any in the workspace for an admin.
/// Others' tokens look missing.
pub(crate) async fn manageable(
    state: &AppState,
    principal: &Principal,
    id: i64,
) -> Result<TokenRecord, ApiError> {
    let record = state.store.tokens().get(id).await.map_err(|e| match e {
        hark_store::StoreError::NotFound => ApiError::NotFound("token"),
        other => other.into(),
    })?;
    let own = record.user_id == principal.user_id;
    let here = record.workspace_id == principal.workspace_id;
    let admin_here = principal.role == Role::Admin && here;
    let developer_key =
        principal.role == Role::Developer && record.kind == TokenKind::Project && here;
    if own || admin_here || developer_key {
        Ok(record)
    } else {
        Err(ApiError::NotFound("token"))
    }
}

#[utoipa::path(delete, path = "/api/tokens/{id}", tag = "tokens",
    params(("id" = i64, Path, description = "Token id")),
    responses((status = 200, description = "Revoked (revoking twice is harmless)", body = TokenView),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn revoke_token(
    State(state): State<AppState>,
    principal: Principal,
    ClientIp(client_ip): ClientIp,
    headers: HeaderMap,
    ApiPath(id): ApiPath<i64>,
) -> Result<Response, ApiError> {
    principal.require_token_management()?;
    manageable(&state, &principal, id).await?;
    let record =
        crate::tokens::revoke(&state.store, id, &actor(&principal, &headers, client_ip)).await?;
    state.auth.evict(id);
    Ok(Json(TokenView::of(&record, OffsetDateTime::now_utc())).into_response())
}

#[utoipa::path(post, path = "/api/tokens/{id}/rotate", tag = "tokens",
    params(("id" = i64, Path, description = "Token id")),
    request_body(content = Option<RotateToken>, description = "Optional; without it the old secret stops at once"),
    responses((status = 200, description = "New secret in `token`, same settings", body = TokenCreated),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, description = "Revoked or expired", body = ErrorBody)))]
pub async fn rotate_token(
    State(state): State<AppState>,
    principal: Principal,
    ClientIp(client_ip): ClientIp,
    headers: HeaderMap,
    ApiPath(id): ApiPath<i64>,
    body: Bytes,
) -> Result<Response, ApiError> {
    // Management credentials may rotate management tokens; everyone else needs the rights
    // to manage tokens at all. The token itself is checked once found.
    if principal.require_management().is_err() {
        principal.require_token_management()?;
    }
    let grace = if body.iter().all(u8::is_ascii_whitespace) {
        Duration::ZERO
    } else {
        let request: RotateToken = serde_json::from_slice(&body)
            .map_err(|e| ApiError::bad_request(format!("invalid JSON body: {e}")))?;
        request
            .grace
            .as_deref()
            .map(parse_grace)
            .transpose()?
            .unwrap_or(Duration::ZERO)
    };
    let existing = manageable(&state, &principal, id).await?;
    principal.require_rotation_of(&existing)?;
    let now = OffsetDateTime::now_utc();
    if existing.status(now) != TokenStatus::Active {
        return Err(ApiError::Conflict(format!(
            "the token is {}; only active tokens can be rotated",
            status_name(existing.status(now))
        )));
    }
    let generated = tokens::generate(existing.kind);
    let record = state
        .store
        .tokens()
        .rotate(id, &generated.hash, &generated.hint, grace)
        .await?;
    state.auth.evict(id);
    state
        .store
        .audit()
        .record_about(
            &actor(&principal, &headers, client_ip),
            "token.rotated",
            &format!("token:{id}"),
            Some(&format!("grace {}s", grace.whole_seconds())),
            Some(&generated.hash.to_hex()),
        )
        .await?;
    let rotated = TokenCreated {
        token: generated.secret.into_exposed(),
        details: TokenView::of(&record, now),
    };
    Ok(Json(rotated).into_response())
}
