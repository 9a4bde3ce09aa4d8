//! Who may open a stream, decided before the WebSocket upgrade so that a refusal is an
//! HTTP status clients understand (401 no or dead credential, 403 a live one without
//! real-time rights).
//!
//! Only tokens open streams: a header (`Authorization: Bearer`, `X-API-Token`,
//! `API-Token`) or, for browsers that cannot set headers on a WebSocket, `?jwt=` (a
//! temporary key, Speechmatics' form) or `?token=`. Session cookies are never accepted
//! here, so another site cannot open a stream in a signed-in user's name.

use std::future::Future;

use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{WebSocket, WebSocketUpgrade};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use hark_core::scopes::Scope;
use hark_core::tokens::{self, TokenHash};

use super::CredentialWatch;
use crate::auth::{Caller, Credential, Principal, presented_token};
use crate::error::ApiError;
use crate::state::AppState;

/// The caller and the hash of the token it presented (kept to re-verify it later).
pub async fn authorize(
    state: &AppState,
    headers: &HeaderMap,
    query: Option<&str>,
    caller: &Caller,
) -> Result<(Principal, TokenHash), ApiError> {
    let ip = caller.ip;
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
    let principal = match state.auth.verify_hash(hash, caller.seen()).await {
        Ok(principal) => principal,
        Err(err) => {
            if matches!(err, ApiError::AuthFailed) {
                state.limits.record_failure(ip);
            }
            return Err(err);
        }
    };
    if let Some(usage_id) = principal.usage_token_id() {
        caller.verified(usage_id);
    }
    principal.require(Scope::Realtime)?;
    if let Credential::Token { record, .. } = &principal.credential {
        state
            .limits
            .check_token(record.id, record.requests_per_minute)
            .await?;
    }
    Ok((principal, hash))
}

/// A stream's opening, whatever its protocol: authorize (401/403 as HTTP answers), refuse a
/// plain request (400, naming `protocol`), then upgrade and run `session` on the socket.
pub async fn accept<F, Fut>(
    state: AppState,
    caller: Caller,
    headers: &HeaderMap,
    query: Option<&str>,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
    protocol: &str,
    session: F,
) -> Response
where
    F: FnOnce(Opened) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let ip = caller.ip;
    let (principal, hash) = match authorize(&state, headers, query, &caller).await {
        Ok(found) => found,
        Err(e) => return e.into_response(),
    };
    let Ok(upgrade) = upgrade else {
        return ApiError::bad_request(format!(
            "this is a WebSocket endpoint ({protocol}): connect with ws://"
        ))
        .into_response();
    };
    upgrade
        .max_message_size(MAX_MESSAGE_BYTES)
        .on_upgrade(move |socket| {
            let watch = CredentialWatch::new(state.auth.clone(), hash, ip, &state.streams.limits);
            session(Opened {
                socket,
                state,
                principal,
                watch,
            })
        })
}

/// Largest WebSocket message either protocol takes (base64 audio events included).
pub const MAX_MESSAGE_BYTES: usize = 2 * 1024 * 1024;

/// An accepted stream: its socket, who opened it, and the watch on their credential.
pub struct Opened {
    pub socket: WebSocket,
    pub state: AppState,
    pub principal: Principal,
    pub watch: CredentialWatch,
}
