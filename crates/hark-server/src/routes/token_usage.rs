//! What a token did and where from (`/api/tokens/{id}/usage`, and the management API's
//! view of a project key), and changing where it may be used and what it may spend.

use axum::Json;
use axum::extract::{RawQuery, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use hark_core::networks::IpRules;
use hark_core::quotas::AudioQuota;
use hark_core::roles::Role;
use hark_core::scopes::Scope;
use hark_core::usage::{Granularity, UsageCounts};
use hark_store::tokens::TokenRecord;
use serde::{Deserialize, Serialize};
use time::format_description::well_known::Rfc3339;
use time::{Duration, OffsetDateTime};
use utoipa::ToSchema;

use super::manage::project_here;
use super::tokens::{TokenView, actor, manageable};
use super::{query_pairs, query_value};
use crate::auth::{ClientIp, Principal};
use crate::error::{ApiError, ApiJson, ApiPath, ErrorBody};
use crate::state::AppState;

/// Most periods one answer may hold (a day of minutes, two months of hours).
const MAX_PERIODS: i64 = 1440;

#[derive(Serialize, ToSchema)]
pub struct UsagePoint {
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    #[serde(flatten)]
    #[schema(value_type = Object)]
    pub counts: UsageCounts,
}

#[derive(Serialize, ToSchema)]
pub struct AddressView {
    pub ip: String,
    #[serde(with = "time::serde::rfc3339")]
    pub first_seen: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub last_seen: OffsetDateTime,
    pub user_agent: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct TokenUsage {
    pub token_id: i64,
    /// `minute`, `hour` or `day`.
    pub granularity: &'static str,
    #[serde(with = "time::serde::rfc3339")]
    pub from: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub to: OffsetDateTime,
    /// Requests by outcome (`ok`, `expired`, `revoked`, `scope_denied`, `ip_denied`,
    /// `rate_limited`, `quota_exceeded`), `audio_seconds` transcribed and
    /// `stream_seconds` streamed, over the whole range.
    #[schema(value_type = Object)]
    pub totals: UsageCounts,
    /// The same per period, for periods that saw use, oldest first.
    pub series: Vec<UsagePoint>,
    /// The last distinct client addresses it was used from, most recent first.
    pub addresses: Vec<AddressView>,
}

fn time_param(pairs: &[(String, String)], key: &str) -> Result<Option<OffsetDateTime>, ApiError> {
    query_value(pairs, key)
        .map(|v| {
            OffsetDateTime::parse(v, &Rfc3339)
                .map_err(|_| ApiError::bad_request(format!("{key}: not an RFC 3339 time")))
        })
        .transpose()
}

async fn usage_of(
    state: &AppState,
    token: &TokenRecord,
    query: Option<&str>,
) -> Result<TokenUsage, ApiError> {
    let pairs = query_pairs(query)?;
    let granularity = match query_value(&pairs, "granularity") {
        None => Granularity::Hour,
        Some(text) => Granularity::parse(text).ok_or_else(|| {
            ApiError::bad_request("granularity: one of \"minute\", \"hour\", \"day\"")
        })?,
    };
    let now = OffsetDateTime::now_utc();
    let to = time_param(&pairs, "to")?.unwrap_or(now);
    let default_span = Duration::milliseconds(granularity.millis() * 24);
    let from = time_param(&pairs, "from")?.unwrap_or(to - default_span);
    if from >= to {
        return Err(ApiError::bad_request("from must be before to"));
    }
    if (to - from).whole_milliseconds() > i128::from(granularity.millis() * MAX_PERIODS) {
        return Err(ApiError::bad_request(format!(
            "at most {MAX_PERIODS} periods at once: narrow the range or coarsen the granularity"
        )));
    }
    let series = state
        .store
        .usage()
        .series(token.id, granularity, from, to)
        .await?;
    let mut totals = UsageCounts::default();
    for (_, counts) in &series {
        totals.add(counts);
    }
    let addresses = state.store.usage().addresses(token.id).await?;
    Ok(TokenUsage {
        token_id: token.id,
        granularity: match granularity {
            Granularity::Minute => "minute",
            Granularity::Hour => "hour",
            Granularity::Day => "day",
        },
        from,
        to,
        totals,
        series: series
            .into_iter()
            .map(|(at, counts)| UsagePoint { at, counts })
            .collect(),
        addresses: addresses
            .into_iter()
            .map(|a| AddressView {
                ip: a.ip,
                first_seen: a.first_seen.0,
                last_seen: a.last_seen.0,
                user_agent: a.user_agent,
            })
            .collect(),
    })
}

#[utoipa::path(get, path = "/api/tokens/{id}/usage", tag = "tokens",
    params(("id" = i64, Path, description = "Token id"),
        ("from" = Option<String>, Query, description = "RFC 3339; default: 24 periods before `to`"),
        ("to" = Option<String>, Query, description = "RFC 3339; default: now"),
        ("granularity" = Option<String>, Query, description = "`minute`, `hour` (default) or `day`")),
    responses((status = 200, body = TokenUsage), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn token_usage(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<i64>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    principal.require(Scope::Read)?;
    let token = manageable(&state, &principal, id).await?;
    Ok(Json(usage_of(&state, &token, query.as_deref()).await?).into_response())
}

#[utoipa::path(get, path = "/api/manage/projects/{id}/keys/{key_id}/usage", tag = "manage",
    params(("id" = i64, Path), ("key_id" = i64, Path),
        ("from" = Option<String>, Query), ("to" = Option<String>, Query), ("granularity" = Option<String>, Query)),
    responses((status = 200, body = TokenUsage), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn key_usage(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath((project_id, key_id)): ApiPath<(i64, i64)>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    principal.require_management()?;
    project_here(&state, &principal, project_id).await?;
    let key = state.store.tokens().get(key_id).await?;
    if key.project_id != Some(project_id) || key.workspace_id != principal.workspace_id {
        return Err(ApiError::NotFound("key"));
    }
    Ok(Json(usage_of(&state, &key, query.as_deref()).await?).into_response())
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangeToken {
    /// Networks it may be used from (CIDR or single addresses, at most 32); `[]`: anywhere.
    pub allowed_cidrs: Option<Vec<String>>,
    /// Networks it may never be used from; wins over `allowed_cidrs`.
    pub denied_cidrs: Option<Vec<String>>,
    /// Admins only: minutes of audio a period; `0` lifts the budget.
    pub audio_quota_minutes: Option<u64>,
    /// `daily` or `monthly` (default `monthly`).
    pub audio_quota_refill: Option<String>,
}

#[utoipa::path(patch, path = "/api/tokens/{id}", tag = "tokens",
    params(("id" = i64, Path, description = "Token id")),
    request_body = ChangeToken,
    responses((status = 200, description = "Changed, in effect at once on every node", body = TokenView),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
pub async fn change_token(
    State(state): State<AppState>,
    principal: Principal,
    ClientIp(client_ip): ClientIp,
    headers: HeaderMap,
    ApiPath(id): ApiPath<i64>,
    ApiJson(body): ApiJson<ChangeToken>,
) -> Result<Response, ApiError> {
    principal.require_token_management()?;
    let token = manageable(&state, &principal, id).await?;
    let mut changed = Vec::new();
    if body.allowed_cidrs.is_some() || body.denied_cidrs.is_some() {
        let rules = IpRules::parse(
            &body
                .allowed_cidrs
                .unwrap_or_else(|| token.ip_rules.allowed()),
            &body.denied_cidrs.unwrap_or_else(|| token.ip_rules.denied()),
        )?;
        principal.require_within_own_rules(&rules)?;
        state.store.tokens().set_ip_rules(id, &rules).await?;
        changed.push(format!(
            "ip rules: allowed [{}], denied [{}]",
            rules.allowed().join(", "),
            rules.denied().join(", ")
        ));
    }
    if body.audio_quota_minutes.is_some() || body.audio_quota_refill.is_some() {
        if principal.role != Role::Admin {
            return Err(ApiError::forbidden("only admins change audio budgets"));
        }
        let quota = match body.audio_quota_minutes {
            Some(0) => None,
            minutes => AudioQuota::from_minutes(
                minutes.or(token.audio_quota.map(|q| q.seconds / 60)),
                body.audio_quota_refill.as_deref(),
            )?,
        };
        state.store.tokens().set_audio_quota(id, quota).await?;
        changed.push(match quota {
            Some(q) => format!("audio budget: {} min {}", q.seconds / 60, q.refill.as_str()),
            None => "audio budget lifted".into(),
        });
    }
    if changed.is_empty() {
        return Err(ApiError::bad_request("nothing to change"));
    }
    state.auth.evict(id);
    state
        .store
        .audit()
        .record(
            &actor(&principal, &headers, client_ip),
            "token.changed",
            &format!("token:{id}"),
            Some(&changed.join("; ")),
        )
        .await?;
    let record = state.store.tokens().get(id).await?;
    Ok(Json(TokenView::of(&record, OffsetDateTime::now_utc())).into_response())
}
