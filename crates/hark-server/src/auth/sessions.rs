//! Web sessions: a random id in an HttpOnly, SameSite=Lax cookie; its hash in the store.

use axum::http::HeaderMap;
use axum::http::header;
use hark_core::tokens::TokenHash;
use time::{Duration, OffsetDateTime};

use crate::state::AppState;

pub const COOKIE_NAME: &str = "hark_session";

/// A new session id (returned to put in the cookie) after storing its hash.
pub async fn start(state: &AppState, user_id: i64) -> Result<String, hark_store::StoreError> {
    let id = hark_core::tokens::random_base62(43);
    let expires = OffsetDateTime::now_utc() + state.config.session_ttl;
    state
        .store
        .sessions()
        .create(TokenHash::of(&id).as_bytes(), user_id, expires)
        .await?;
    Ok(id)
}

pub async fn end(state: &AppState, id: &str) -> Result<(), hark_store::StoreError> {
    state
        .store
        .sessions()
        .delete(TokenHash::of(id).as_bytes())
        .await
}

pub async fn user_id(state: &AppState, id: &str) -> Result<Option<i64>, hark_store::StoreError> {
    state
        .store
        .sessions()
        .user_id(TokenHash::of(id).as_bytes())
        .await
}

/// The session id from the request's cookies, if any.
pub fn from_headers(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE_NAME)
        .map(|(_, value)| value.to_owned())
        .filter(|v| !v.is_empty())
}

pub fn set_cookie(id: &str, ttl: Duration, secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    format!(
        "{COOKIE_NAME}={id}; Path=/; HttpOnly; SameSite=Lax; Max-Age={}{secure}",
        ttl.whole_seconds()
    )
}

pub fn clear_cookie() -> String {
    format!("{COOKIE_NAME}=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0")
}
