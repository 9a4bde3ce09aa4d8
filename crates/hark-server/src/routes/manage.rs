//! The management API (`/api/manage/…`): members and their roles, projects. Reached with a
//! management token (`hark_mgt_`) or an admin's web session; never with personal tokens.

use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use hark_core::roles::Role;
use hark_core::scopes::Scopes;
use hark_core::tokens::TokenKind;
use hark_store::StoreError;
use hark_store::audit::Actor;
use hark_store::projects::Project;
use hark_store::users::User;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;

use super::tokens::{TokenCreated, TokenList, TokenView, actor};
use crate::auth::{ClientIp, Principal};
use crate::error::{ApiError, ApiJson, ApiPath, ErrorBody};
use crate::state::AppState;
use crate::tokens::IssueRequest;

#[derive(Serialize, ToSchema)]
pub struct MemberView {
    pub id: i64,
    pub username: String,
    /// `admin`, `developer`, `member` or `viewer`.
    pub role: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

impl From<User> for MemberView {
    fn from(u: User) -> Self {
        MemberView {
            id: u.id,
            username: u.username,
            role: u.role.as_str().to_owned(),
            created_at: u.created_at,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct MemberList {
    pub members: Vec<MemberView>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangeRole {
    /// `admin`, `developer`, `member` or `viewer`. A viewer's tokens stop at once.
    pub role: String,
}

#[derive(Serialize, ToSchema)]
pub struct ProjectView {
    pub id: i64,
    pub name: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

impl From<Project> for ProjectView {
    fn from(p: Project) -> Self {
        ProjectView {
            id: p.id,
            name: p.name,
            created_at: p.created_at,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct ProjectList {
    pub projects: Vec<ProjectView>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateProject {
    /// 1 to 100 characters, unique in the workspace.
    pub name: String,
}

/// A member of the caller's workspace (others' are as good as missing).
pub(crate) async fn member_here(
    state: &AppState,
    principal: &Principal,
    id: i64,
) -> Result<User, ApiError> {
    let member = state.store.users().by_id(id).await.map_err(|e| match e {
        StoreError::NotFound => ApiError::NotFound("member"),
        other => other.into(),
    })?;
    if member.workspace_id != principal.workspace_id {
        return Err(ApiError::NotFound("member"));
    }
    Ok(member)
}

/// Refuses to let the workspace's last admin `what` (step down, be removed).
async fn keep_an_admin(
    state: &AppState,
    principal: &Principal,
    member: &User,
    what: &str,
) -> Result<(), ApiError> {
    if member.role != Role::Admin {
        return Ok(());
    }
    let admins = state
        .store
        .users()
        .list(principal.workspace_id)
        .await?
        .iter()
        .filter(|u| u.role == Role::Admin)
        .count();
    if admins <= 1 {
        return Err(ApiError::Conflict(format!(
            "the last admin cannot {what}; make someone else admin first"
        )));
    }
    Ok(())
}

#[utoipa::path(get, path = "/api/manage/members", tag = "manage",
    responses((status = 200, body = MemberList), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn list_members(
    State(state): State<AppState>,
    principal: Principal,
) -> Result<Json<MemberList>, ApiError> {
    principal.require_management()?;
    let members = state.store.users().list(principal.workspace_id).await?;
    Ok(Json(MemberList {
        members: members.into_iter().map(MemberView::from).collect(),
    }))
}

#[utoipa::path(patch, path = "/api/manage/members/{id}", tag = "manage",
    params(("id" = i64, Path)), request_body = ChangeRole,
    responses((status = 200, body = MemberView), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, description = "The last admin cannot step down", body = ErrorBody)))]
pub async fn change_role(
    State(state): State<AppState>,
    principal: Principal,
    ClientIp(client_ip): ClientIp,
    headers: HeaderMap,
    ApiPath(id): ApiPath<i64>,
    ApiJson(body): ApiJson<ChangeRole>,
) -> Result<Json<MemberView>, ApiError> {
    principal.require_management()?;
    let role: Role = body.role.parse()?;
    let actor = actor(&principal, &headers, client_ip);
    let member = set_member_role(&state, &principal, &actor, id, role).await?;
    Ok(Json(MemberView::from(member)))
}

/// Gives a member of the caller's workspace `role`, as every API does it: the last admin
/// cannot step down, the member's tokens are re-verified at once (this server drops its
/// cached verifications now; others follow the change log), and it is audited. Rights are
/// the caller's to check.
pub(crate) async fn set_member_role(
    state: &AppState,
    principal: &Principal,
    actor: &Actor,
    id: i64,
    role: Role,
) -> Result<User, ApiError> {
    let users = state.store.users();
    let member = member_here(state, principal, id).await?;
    if role != Role::Admin {
        keep_an_admin(state, principal, &member, "step down").await?;
    }
    users.set_role(id, role).await?;
    state.auth.poll_changes().await?;
    let details = format!("{} → {}", member.role.as_str(), role.as_str());
    state
        .store
        .audit()
        .record(
            actor,
            "member.role_changed",
            &format!("user:{id}"),
            Some(&details),
        )
        .await?;
    Ok(users.by_id(id).await?)
}

#[utoipa::path(get, path = "/api/manage/projects", tag = "manage",
    responses((status = 200, body = ProjectList), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn list_projects(
    State(state): State<AppState>,
    principal: Principal,
) -> Result<Json<ProjectList>, ApiError> {
    principal.require_management()?;
    let projects = state.store.projects().list(principal.workspace_id).await?;
    Ok(Json(ProjectList {
        projects: projects.into_iter().map(ProjectView::from).collect(),
    }))
}

#[utoipa::path(get, path = "/api/projects", tag = "projects",
    responses((status = 200, description = "The workspace's projects, for anyone signed in to it (e.g. to pick one for a project key)", body = ProjectList),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn projects_for_members(
    State(state): State<AppState>,
    principal: Principal,
) -> Result<Json<ProjectList>, ApiError> {
    principal.require(hark_core::scopes::Scope::Read)?;
    let projects = state.store.projects().list(principal.workspace_id).await?;
    Ok(Json(ProjectList {
        projects: projects.into_iter().map(ProjectView::from).collect(),
    }))
}

#[utoipa::path(post, path = "/api/manage/projects", tag = "manage", request_body = CreateProject,
    responses((status = 201, body = ProjectView), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn create_project(
    State(state): State<AppState>,
    principal: Principal,
    ClientIp(client_ip): ClientIp,
    headers: HeaderMap,
    ApiJson(body): ApiJson<CreateProject>,
) -> Result<Response, ApiError> {
    principal.require_management()?;
    let name = body.name.trim();
    if name.is_empty() || name.chars().count() > 100 {
        return Err(ApiError::bad_request("name must be 1 to 100 characters"));
    }
    let project = state
        .store
        .projects()
        .create(principal.workspace_id, name)
        .await?;
    state
        .store
        .audit()
        .record(
            &actor(&principal, &headers, client_ip),
            "project.created",
            &format!("project:{}", project.id),
            Some(&project.name),
        )
        .await?;
    let location = format!("/api/manage/projects/{}", project.id);
    Ok(super::created(&location, ProjectView::from(project)))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateKey {
    pub name: String,
    /// `batch` or `realtime`.
    #[serde(rename = "type")]
    pub key_type: String,
    /// As for personal tokens: `1y`, `2y`, `5y`, `never`, `30d`, `90d`, a date. Default `90d`.
    pub expires: Option<String>,
    /// The key's own budget, requests a minute. Default: the server's.
    pub requests_per_minute: Option<u32>,
}

/// The project, if it is in the caller's workspace.
pub(crate) async fn project_here(
    state: &AppState,
    principal: &Principal,
    id: i64,
) -> Result<Project, ApiError> {
    state
        .store
        .projects()
        .get(principal.workspace_id, id)
        .await
        .map_err(|e| match e {
            StoreError::NotFound => ApiError::NotFound("project"),
            other => other.into(),
        })
}

#[utoipa::path(get, path = "/api/manage/projects/{id}/keys", tag = "manage", params(("id" = i64, Path)),
    responses((status = 200, body = TokenList), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
pub async fn list_keys(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<i64>,
) -> Result<Response, ApiError> {
    principal.require_management()?;
    project_here(&state, &principal, id).await?;
    let keys = state.store.tokens().list_for_project(id).await?;
    let now = OffsetDateTime::now_utc();
    Ok(Json(TokenList {
        tokens: keys.iter().map(|k| TokenView::of(k, now)).collect(),
    })
    .into_response())
}

#[utoipa::path(post, path = "/api/manage/projects/{id}/keys", tag = "manage", params(("id" = i64, Path)),
    request_body = CreateKey,
    responses((status = 201, description = "`token` holds the key, shown only here", body = TokenCreated),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn create_key(
    State(state): State<AppState>,
    principal: Principal,
    ClientIp(client_ip): ClientIp,
    headers: HeaderMap,
    ApiPath(id): ApiPath<i64>,
    ApiJson(body): ApiJson<CreateKey>,
) -> Result<Response, ApiError> {
    principal.require_management()?;
    project_here(&state, &principal, id).await?;
    let scopes = [body.key_type.clone()];
    let (secret, record) = crate::tokens::issue(
        &state.store,
        IssueRequest {
            kind: TokenKind::Project,
            project_id: Some(id),
            owner_user_id: principal.user_id,
            workspace_id: principal.workspace_id,
            name: &body.name,
            expires: body.expires.as_deref(),
            scopes: Some(&scopes),
            // Management is the authority over keys; the key's type is its only power.
            grantable: Scopes::all(),
            limits: state.config.token_limits,
            requests_per_minute: body.requests_per_minute,
            default_requests_per_minute: state.config.token_requests_per_minute,
            requester_is_admin: true,
            ip_rules: Default::default(),
            audio_quota: None,
        },
        &actor(&principal, &headers, client_ip),
    )
    .await?;
    let location = format!("/api/manage/projects/{id}/keys/{}", record.id);
    let created = TokenCreated {
        token: secret.into_exposed(),
        details: TokenView::of(&record, OffsetDateTime::now_utc()),
    };
    Ok(super::created(&location, created))
}

#[utoipa::path(delete, path = "/api/manage/projects/{id}/keys/{key_id}", tag = "manage",
    params(("id" = i64, Path), ("key_id" = i64, Path)),
    responses((status = 200, description = "Revoked (twice is harmless)", body = TokenView),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn revoke_key(
    State(state): State<AppState>,
    principal: Principal,
    ClientIp(client_ip): ClientIp,
    headers: HeaderMap,
    ApiPath((id, key_id)): ApiPath<(i64, i64)>,
) -> Result<Response, ApiError> {
    principal.require_management()?;
    project_here(&state, &principal, id).await?;
    let key = state
        .store
        .tokens()
        .get(key_id)
        .await
        .map_err(|e| match e {
            StoreError::NotFound => ApiError::NotFound("key"),
            other => other.into(),
        })?;
    if key.kind != TokenKind::Project || key.project_id != Some(id) {
        return Err(ApiError::NotFound("key"));
    }
    let record = crate::tokens::revoke(
        &state.store,
        key_id,
        &actor(&principal, &headers, client_ip),
    )
    .await?;
    state.auth.evict(key_id);
    Ok(Json(TokenView::of(&record, OffsetDateTime::now_utc())).into_response())
}

#[utoipa::path(delete, path = "/api/manage/projects/{id}", tag = "manage", params(("id" = i64, Path)),
    responses((status = 204, description = "Deleted; its keys are revoked"), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, description = "The default project, or one that still holds recordings", body = ErrorBody)))]
pub async fn delete_project(
    State(state): State<AppState>,
    principal: Principal,
    ClientIp(client_ip): ClientIp,
    headers: HeaderMap,
    ApiPath(id): ApiPath<i64>,
) -> Result<axum::http::StatusCode, ApiError> {
    principal.require_management()?;
    let project = project_here(&state, &principal, id).await?;
    let revoked = state
        .store
        .projects()
        .delete(principal.workspace_id, id)
        .await?;
    for key in &revoked {
        state.auth.evict(*key);
    }
    let details = format!("{}; {} key(s) revoked", project.name, revoked.len());
    state
        .store
        .audit()
        .record(
            &actor(&principal, &headers, client_ip),
            "project.deleted",
            &format!("project:{id}"),
            Some(&details),
        )
        .await?;
    Ok(axum::http::StatusCode::NO_CONTENT)
}

#[utoipa::path(delete, path = "/api/manage/members/{id}", tag = "manage", params(("id" = i64, Path)),
    responses((status = 204, description = "Removed: their tokens are revoked and their sessions ended"),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, description = "The last admin cannot be removed", body = ErrorBody)))]
pub async fn remove_member(
    State(state): State<AppState>,
    principal: Principal,
    ClientIp(client_ip): ClientIp,
    headers: HeaderMap,
    ApiPath(id): ApiPath<i64>,
) -> Result<axum::http::StatusCode, ApiError> {
    principal.require_management()?;
    let member = member_here(&state, &principal, id).await?;
    keep_an_admin(&state, &principal, &member, "be removed").await?;
    let revoked = state.store.users().remove(id).await?;
    for token in &revoked {
        state.auth.evict(*token);
    }
    let details = format!("{}; {} token(s) revoked", member.username, revoked.len());
    state
        .store
        .audit()
        .record(
            &actor(&principal, &headers, client_ip),
            "member.removed",
            &format!("user:{id}"),
            Some(&details),
        )
        .await?;
    Ok(axum::http::StatusCode::NO_CONTENT)
}
