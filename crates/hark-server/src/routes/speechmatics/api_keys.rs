//! Speechmatics' temporary keys: `POST /v1/api_keys?type=rt|batch` with `{"ttl": …}`, as
//! `speechmatics.rt.JWTAuth` and the batch client's temporary-key flow ask for them.

use axum::Json;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use hark_core::scopes::Scope;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::auth::{ClientIp, Principal};
use crate::error::{ApiError, ApiJson, ErrorBody};
use crate::routes::tokens::actor;
use crate::state::AppState;
use crate::tokens::{TemporaryRequest, issue_temporary};

#[derive(Deserialize, IntoParams)]
pub struct KeyType {
    /// `rt` (real-time streaming) or `batch`.
    #[serde(rename = "type")]
    key_type: Option<String>,
}

#[derive(Deserialize, ToSchema)]
pub struct TemporaryKeyRequest {
    /// Seconds the key works: 60 to 86400.
    ttl: i64,
    /// hark only: the project the key streams into, for people and personal tokens
    /// (default project when absent). A project key's are in its own project.
    /// Speechmatics' `region` and `client_ref` are accepted and ignored (hark has one
    /// region; batch temporary keys see their project's jobs).
    #[serde(default)]
    project_id: Option<i64>,
}

#[derive(Serialize, ToSchema)]
pub struct TemporaryKeyCreated {
    /// The key's id (revoke it with `DELETE /api/tokens/{id}`).
    apikey_id: String,
    /// The key itself: shown only here, never stored.
    key_value: String,
}

#[utoipa::path(post, path = "/v1/api_keys", tag = "realtime",
    params(KeyType),
    request_body = TemporaryKeyRequest,
    responses(
        (status = 201, description = "A temporary key; `key_value` is shown only here", body = TemporaryKeyCreated),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn create_temporary_key(
    State(state): State<AppState>,
    principal: Principal,
    ClientIp(client_ip): ClientIp,
    headers: HeaderMap,
    Query(query): Query<KeyType>,
    ApiJson(body): ApiJson<TemporaryKeyRequest>,
) -> Result<Response, ApiError> {
    let scope = match query.key_type.as_deref() {
        Some("rt" | "realtime") => Scope::Realtime,
        Some("batch") => Scope::Batch,
        other => {
            return Err(ApiError::bad_request(format!(
                "type must be \"rt\" or \"batch\", not {:?}",
                other.unwrap_or("")
            )));
        }
    };
    let request = TemporaryRequest {
        scope,
        ttl_seconds: body.ttl,
        project_id: body.project_id,
    };
    let actor = actor(&principal, &headers, client_ip);
    let (secret, record) = issue_temporary(&state.store, &principal, request, &actor).await?;
    let body = TemporaryKeyCreated {
        apikey_id: record.id.to_string(),
        key_value: secret.into_exposed(),
    };
    Ok((StatusCode::CREATED, Json(body)).into_response())
}
