//! `/api/auth/login` and `/api/auth/logout`: web sign-in with a session cookie.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use hark_store::audit::Actor;
use hark_store::users::User;

use crate::auth::{ClientIp, Principal, passwords, sessions};
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
        (status = 401, body = ErrorBody),
        (status = 429, description = "Too many attempts from this address; see `Retry-After`", body = ErrorBody)))]
pub async fn login(
    State(state): State<AppState>,
    ClientIp(client_ip): ClientIp,
    ApiJson(body): ApiJson<Login>,
) -> Result<Response, ApiError> {
    state.login_throttle.attempt(client_ip)?;
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
    signed_in(&state, credentials.user).await
}

/// The response to a successful sign-in: who, and the session cookie.
async fn signed_in(state: &AppState, user: User) -> Result<Response, ApiError> {
    let session = sessions::start(state, user.id).await?;
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

#[utoipa::path(get, path = "/api/auth/session", tag = "auth",
    responses((status = 200, description = "Who the caller is (session cookie or token)", body = SignedIn),
        (status = 401, body = ErrorBody)))]
pub async fn current(
    State(state): State<AppState>,
    principal: Principal,
) -> Result<Json<SignedIn>, ApiError> {
    let user = state.store.users().by_id(principal.user_id).await?;
    Ok(Json(SignedIn {
        id: user.id,
        username: user.username,
        role: user.role.as_str().to_owned(),
    }))
}

#[derive(Serialize, ToSchema)]
pub struct SetupState {
    /// True while no user exists: the web UI then offers to create the first admin.
    pub needed: bool,
}

#[utoipa::path(get, path = "/api/setup", tag = "auth",
    responses((status = 200, body = SetupState)))]
pub async fn setup_state(State(state): State<AppState>) -> Result<Json<SetupState>, ApiError> {
    Ok(Json(SetupState {
        needed: state.store.users().count().await? == 0,
    }))
}

/// Shortest password the first-run form accepts.
const MIN_PASSWORD_CHARS: usize = 8;

#[utoipa::path(post, path = "/api/setup", tag = "auth", request_body = Login,
    responses((status = 200, description = "The first admin exists and is signed in", body = SignedIn),
        (status = 400, body = ErrorBody),
        (status = 409, description = "Someone already set hark up", body = ErrorBody),
        (status = 429, body = ErrorBody)))]
pub async fn setup(
    State(state): State<AppState>,
    ClientIp(client_ip): ClientIp,
    ApiJson(body): ApiJson<Login>,
) -> Result<Response, ApiError> {
    state.login_throttle.attempt(client_ip)?;
    let username = body.username.trim();
    if username.is_empty() || username.chars().count() > 64 {
        return Err(ApiError::bad_request("username must be 1 to 64 characters"));
    }
    if body.password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(ApiError::bad_request(format!(
            "password must be at least {MIN_PASSWORD_CHARS} characters"
        )));
    }
    let hash = passwords::hash(body.password).await?;
    let Some(user) = state
        .store
        .users()
        .create_first_admin(username, &hash)
        .await?
    else {
        return Err(ApiError::Conflict(
            "hark is already set up; sign in instead".into(),
        ));
    };
    tracing::info!(user_id = user.id, "first admin created from the web");
    let actor = Actor {
        workspace_id: user.workspace_id,
        user_id: Some(user.id),
        token_id: None,
        ip: client_ip.map(|ip| ip.to_string()),
        user_agent: None,
        token_hash: None,
    };
    state
        .store
        .audit()
        .record(
            &actor,
            "member.added",
            &format!("user:{}", user.id),
            Some(&format!("{} as admin (first run)", user.username)),
        )
        .await?;
    signed_in(&state, user).await
}
