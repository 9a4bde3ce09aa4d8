//! `/api/auth/login` and `/api/auth/logout`: web sign-in with a session cookie.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::auth::{passwords, sessions};
use crate::error::{ApiError, ApiJson, ErrorBody};
use crate::state::AppState;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Login {
    pub username: String,
    pub password: String,
}

#[derive(Serialize, ToSchema)]
pub struct SignedIn {
    pub id: i64,
    pub username: String,
    /// `admin`, `developer`, `member` or `viewer`.
    pub role: String,
}

#[utoipa::path(post, path = "/api/auth/login", tag = "auth", request_body = Login,
    responses((status = 200, description = "Signed in; sets the `hark_session` cookie", body = SignedIn),
        (status = 401, body = ErrorBody)))]
pub async fn login(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<Login>,
) -> Result<Response, ApiError> {
    let credentials = state
        .store
        .users()
        .credentials(body.username.trim())
        .await?;
    let stored = credentials.as_ref().map(|c| c.password_hash.clone());
    if !passwords::verify(body.password, stored).await {
        return Err(ApiError::AuthFailed);
    }
    let Some(credentials) = credentials else {
        return Err(ApiError::AuthFailed);
    };
    let user = credentials.user;
    let session = sessions::start(&state, user.id).await?;
    let cookie = sessions::set_cookie(
        &session,
        state.config.session_ttl,
        state.config.secure_cookies,
    );
    let mut response = Json(SignedIn {
        id: user.id,
        username: user.username,
        role: user.role.as_str().to_owned(),
    })
    .into_response();
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    Ok(response)
}

#[utoipa::path(post, path = "/api/auth/logout", tag = "auth",
    responses((status = 204, description = "Signed out; the session is deleted and the cookie cleared")))]
pub async fn logout(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    if let Some(id) = sessions::from_headers(&headers) {
        sessions::end(&state, &id).await?;
    }
    let mut response = StatusCode::NO_CONTENT.into_response();
    if let Ok(value) = HeaderValue::from_str(&sessions::clear_cookie()) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    Ok(response)
}
