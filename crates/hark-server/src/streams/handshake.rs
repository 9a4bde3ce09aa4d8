//! Who may open a stream, decided before the WebSocket upgrade so that a refusal is an
//! HTTP status clients understand (401 no or dead credential, 403 a live one without
//! real-time rights).
//!
//! Only tokens open streams: a header (`Authorization: Bearer`, `X-API-Token`,
//! `API-Token`) or, for browsers that cannot set headers on a WebSocket, `?jwt=` (a
//! temporary key, Speechmatics' form) or `?token=`. Session cookies are never accepted
//! here, so another site cannot open a stream in a signed-in user's name.

use std::net::IpAddr;

use axum::http::HeaderMap;
use hark_core::scopes::Scope;
use hark_core::tokens::{self, TokenHash};

use crate::auth::{Credential, Principal, presented_token};
use crate::error::ApiError;
use crate::state::AppState;

/// The caller and the hash of the token it presented (kept to re-verify it later).
pub async fn authorize(
    state: &AppState,
    headers: &HeaderMap,
    query: Option<&str>,
    ip: Option<IpAddr>,
) -> Result<(Principal, TokenHash), ApiError> {
    let pairs: Vec<(String, String)> =
        serde_urlencoded::from_str(query.unwrap_or_default()).unwrap_or_default();
    let text = match presented_token(headers, query, state.config.allow_query_token) {
        Some(presented) => presented.text,
        None => pairs
            .into_iter()
            .find(|(k, _)| k == "jwt")
            .map(|(_, v)| v)
            .ok_or(ApiError::AuthFailed)?,
    };
    state.limits.check_address(ip)?;
    let hash = tokens::parse(&text)
        .map_err(|_| {
            state.limits.record_failure(ip);
            ApiError::AuthFailed
        })?
        .hash;
    let principal = match state.auth.verify_hash(hash, ip).await {
        Ok(principal) => principal,
        Err(err) => {
            if matches!(err, ApiError::AuthFailed) {
                state.limits.record_failure(ip);
            }
            return Err(err);
        }
    };
    principal.require(Scope::Realtime)?;
    if let Credential::Token { record, .. } = &principal.credential {
        state
            .limits
            .check_token(record.id, record.requests_per_minute)?;
    }
    Ok((principal, hash))
}
