//! `GET /api/audit`: the workspace's audit log for admins, filtered and paged.

use std::collections::HashMap;

use axum::Json;
use axum::extract::{RawQuery, State};
use hark_core::pagination::PageRequest;
use hark_core::roles::Role;
use hark_core::scopes::Scope;
use hark_core::tokens::TokenHash;
use hark_store::audit::{AuditEvent, AuditFilter};
use serde::Serialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use utoipa::ToSchema;

use super::recordings::PaginationView;
use super::{query_pairs, query_value};
use crate::auth::Principal;
use crate::error::{ApiError, ErrorBody};
use crate::state::AppState;

#[derive(Serialize, ToSchema)]
pub struct AuditEventView {
    pub id: i64,
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    /// e.g. `token.created`, `token.revoked`, `token.rotated`, `recording.deleted`.
    pub action: String,
    /// What it was done to, e.g. `token:12`, `recording:3`.
    pub target: String,
    pub actor_user_id: Option<i64>,
    pub actor_username: Option<String>,
    /// The token the actor used, if any (its id; never the token).
    pub actor_token_id: Option<i64>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub details: Option<String>,
    /// SHA-256 (hex) of the token secret the event was done with (GitHub's
    /// `hashed_token`): `sha256sum` of a leaked token finds its events.
    pub hashed_token: Option<String>,
    /// SHA-256 (hex) of the token secret the event is about (created, rotated, leaked).
    pub subject_hashed_token: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct AuditPage {
    pub pagination: PaginationView,
    pub events: Vec<AuditEventView>,
}

fn parse_time(value: Option<&str>, name: &str) -> Result<Option<OffsetDateTime>, ApiError> {
    value
        .map(|v| {
            OffsetDateTime::parse(v, &Rfc3339)
                .map_err(|_| ApiError::bad_request(format!("{name} must be an RFC 3339 time")))
        })
        .transpose()
}

#[utoipa::path(get, path = "/api/audit", tag = "audit",
    params(("page" = Option<u32>, Query, description = "From 1; default 1"),
        ("per_page" = Option<u32>, Query, description = "1 to 100; default 25"),
        ("action" = Option<String>, Query, description = "Exact action, e.g. token.revoked"),
        ("actor" = Option<i64>, Query, description = "Actor user id"),
        ("target" = Option<String>, Query, description = "Exact target, e.g. token:12"),
        ("since" = Option<String>, Query, description = "RFC 3339; events at or after"),
        ("until" = Option<String>, Query, description = "RFC 3339; events before"),
        ("token_hash" = Option<String>, Query, description = "SHA-256 (hex) of a token: what it did, and what was done to it")),
    responses((status = 200, body = AuditPage), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, description = "Admins only", body = ErrorBody)))]
pub async fn list_events(
    State(state): State<AppState>,
    principal: Principal,
    RawQuery(query): RawQuery,
) -> Result<Json<AuditPage>, ApiError> {
    principal.require(Scope::Read)?;
    if principal.role != Role::Admin {
        return Err(ApiError::forbidden("only admins can read the audit log"));
    }
    let pairs = query_pairs(query.as_deref())?;
    let page = PageRequest::parse(query_value(&pairs, "page"), query_value(&pairs, "per_page"))?;
    let actor_user_id = query_value(&pairs, "actor")
        .map(|v| {
            v.parse::<i64>()
                .map_err(|_| ApiError::bad_request("actor must be a user id"))
        })
        .transpose()?;
    let filter = AuditFilter {
        action: query_value(&pairs, "action").map(str::to_owned),
        actor_user_id,
        target: query_value(&pairs, "target").map(str::to_owned),
        since: parse_time(query_value(&pairs, "since"), "since")?,
        until: parse_time(query_value(&pairs, "until"), "until")?,
        token_hash: query_value(&pairs, "token_hash")
            .map(|v| {
                TokenHash::from_hex(v.trim())
                    .map(|h| h.to_hex())
                    .ok_or_else(|| {
                        ApiError::bad_request("token_hash must be 64 hex digits (SHA-256)")
                    })
            })
            .transpose()?,
    };
    let (events, total) = state
        .store
        .audit()
        .page(principal.workspace_id, &filter, page)
        .await?;
    let mut names: HashMap<i64, String> = HashMap::new();
    for id in events.iter().filter_map(|e| e.actor_user_id) {
        if !names.contains_key(&id)
            && let Ok(user) = state.store.users().by_id(id).await
        {
            names.insert(id, user.username);
        }
    }
    Ok(Json(AuditPage {
        pagination: page.describe(total).into(),
        events: events
            .into_iter()
            .map(|e: AuditEvent| AuditEventView {
                id: e.id,
                at: e.at.0,
                actor_username: e.actor_user_id.and_then(|id| names.get(&id).cloned()),
                action: e.action,
                target: e.target,
                actor_user_id: e.actor_user_id,
                actor_token_id: e.actor_token_id,
                ip: e.ip,
                user_agent: e.user_agent,
                details: e.details,
                hashed_token: e.token_hash,
                subject_hashed_token: e.subject_hash,
            })
            .collect(),
    }))
}
