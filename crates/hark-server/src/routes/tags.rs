//! Tags: per-user labels on recordings.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use hark_core::recordings::validate_tag;
use hark_core::scopes::Scope;
use hark_store::StoreError;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::recordings::{RecordingView, TagView, not_found, owned};
use crate::auth::Principal;
use crate::error::{ApiError, ApiJson, ApiPath, ErrorBody};
use crate::state::AppState;

#[derive(Serialize, ToSchema)]
pub struct TagList {
    pub tags: Vec<TagView>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTag {
    pub name: String,
    /// `#rrggbb`; default grey.
    pub color: Option<String>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AttachTag {
    pub tag_id: i64,
}

#[utoipa::path(get, path = "/api/tags", tag = "tags",
    responses((status = 200, body = TagList), (status = 401, body = ErrorBody)))]
pub async fn list_tags(
    State(state): State<AppState>,
    principal: Principal,
) -> Result<Json<TagList>, ApiError> {
    principal.require(Scope::Read)?;
    let tags = state.store.tags().list(principal.user_id).await?;
    Ok(Json(TagList {
        tags: tags.iter().map(TagView::from).collect(),
    }))
}

#[utoipa::path(post, path = "/api/tags", tag = "tags", request_body = CreateTag,
    responses((status = 201, body = TagView), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 409, description = "A tag with that name exists", body = ErrorBody)))]
pub async fn create_tag(
    State(state): State<AppState>,
    principal: Principal,
    ApiJson(body): ApiJson<CreateTag>,
) -> Result<(StatusCode, Json<TagView>), ApiError> {
    principal.require(Scope::Write)?;
    let (name, color) = validate_tag(&body.name, body.color.as_deref())?;
    let tag = state
        .store
        .tags()
        .create(principal.user_id, &name, &color)
        .await?;
    Ok((StatusCode::CREATED, Json(TagView::from(&tag))))
}

#[utoipa::path(delete, path = "/api/tags/{id}", tag = "tags", params(("id" = i64, Path)),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn delete_tag(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<i64>,
) -> Result<StatusCode, ApiError> {
    principal.require(Scope::Write)?;
    state
        .store
        .tags()
        .delete(principal.user_id, id)
        .await
        .map_err(|e| match e {
            StoreError::NotFound => ApiError::NotFound("tag"),
            other => other.into(),
        })?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/api/recordings/{id}/tags", tag = "tags", params(("id" = i64, Path)),
    request_body = AttachTag,
    responses((status = 200, body = RecordingView), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn attach_tag(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<i64>,
    ApiJson(body): ApiJson<AttachTag>,
) -> Result<Json<RecordingView>, ApiError> {
    principal.require(Scope::Write)?;
    state
        .store
        .tags()
        .attach(principal.user_id, id, body.tag_id)
        .await
        .map_err(not_found)?;
    let recording = owned(&state, &principal, id).await?;
    Ok(Json(RecordingView::from(&recording)))
}

#[utoipa::path(delete, path = "/api/recordings/{id}/tags/{tag_id}", tag = "tags",
    params(("id" = i64, Path), ("tag_id" = i64, Path)),
    responses((status = 200, body = RecordingView), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn detach_tag(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath((id, tag_id)): ApiPath<(i64, i64)>,
) -> Result<Json<RecordingView>, ApiError> {
    principal.require(Scope::Write)?;
    state
        .store
        .tags()
        .detach(principal.user_id, id, tag_id)
        .await
        .map_err(not_found)?;
    let recording = owned(&state, &principal, id).await?;
    Ok(Json(RecordingView::from(&recording)))
}
