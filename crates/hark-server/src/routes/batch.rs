//! Scriptix-style batch transcription: upload → session id → poll the session → fetch the
//! document. Needs a token with the `batch` scope (or a signed-in session).

use axum::Json;
use axum::extract::multipart::MultipartRejection;
use axum::extract::{Multipart, RawQuery, State};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use hark_core::recordings::RecordingStatus;
use hark_core::scopes::Scope;
use hark_core::transcripts;
use hark_store::StoreError;
use hark_store::jobs::JobStatus;
use hark_store::recordings::Recording;
use serde::Serialize;
use utoipa::ToSchema;

use super::query_pairs;
use super::recordings::{SegmentView, transcript_file};
use super::tokens::actor;
use super::uploads::{self, UploadForm};
use crate::auth::{ClientIp, Principal};
use crate::error::{ApiError, ApiPath, ErrorBody};
use crate::state::AppState;

#[derive(Serialize, ToSchema)]
pub struct SessionCreated {
    pub session_id: i64,
    /// Where the transcript will be: `GET /api/v3/documents/{document_id}`.
    pub document_id: i64,
}

#[derive(Serialize, ToSchema)]
pub struct SessionView {
    pub session_id: i64,
    pub document_id: i64,
    /// `queued`, `processing`, `summarizing`, `completed` or `failed`.
    pub status: &'static str,
    /// 0 to 100.
    pub progress: u8,
    pub attempts: i64,
    /// Why it failed, when `status` is `failed`.
    pub error: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct DocumentView {
    pub document_id: i64,
    pub status: String,
    pub language: Option<String>,
    pub duration_seconds: Option<f64>,
    pub text: Option<String>,
    pub segments: Vec<SegmentView>,
    pub summary: Option<String>,
}

#[utoipa::path(post, path = "/api/v3/speech-to-text", tag = "batch",
    request_body(content = UploadForm, content_type = "multipart/form-data"),
    responses((status = 201, description = "Stored and queued", body = SessionCreated),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 413, body = ErrorBody),
        (status = 415, description = "Not audio (judged by content)", body = ErrorBody)))]
pub async fn submit(
    State(state): State<AppState>,
    principal: Principal,
    ClientIp(client_ip): ClientIp,
    headers: HeaderMap,
    multipart: Result<Multipart, MultipartRejection>,
) -> Result<Response, ApiError> {
    principal.require(Scope::Batch)?;
    let (recording, job) = uploads::accept(
        &state,
        &principal,
        &actor(&principal, &headers, client_ip),
        multipart,
    )
    .await?;
    let body = SessionCreated {
        session_id: job.id,
        document_id: recording.id,
    };
    Ok(super::created(
        &format!("/api/v3/sessions/{}", job.id),
        body,
    ))
}

/// The recording behind a session or document as this caller may see it: a project key
/// sees what its project's keys submitted (Speechmatics: a key "can access only the
/// transcripts produced within that project"), never a person's own uploads; everyone
/// else sees their own. Anything else is "not found", so ids reveal nothing.
pub(crate) async fn visible_recording(
    state: &AppState,
    principal: &Principal,
    id: i64,
    what: &'static str,
) -> Result<Recording, ApiError> {
    let recordings = state.store.recordings();
    let found = match principal.project_id() {
        Some(project) => recordings.submitted_to_project(project, id).await,
        None => recordings.get(principal.user_id, id).await,
    };
    found.map_err(|e| match e {
        StoreError::NotFound => ApiError::NotFound(what),
        other => other.into(),
    })
}

#[utoipa::path(get, path = "/api/v3/sessions/{id}", tag = "batch", params(("id" = i64, Path)),
    responses((status = 200, body = SessionView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
pub async fn session(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<SessionView>, ApiError> {
    principal.require(Scope::Batch)?;
    let missing = |e: StoreError| match e {
        StoreError::NotFound => ApiError::NotFound("session"),
        other => other.into(),
    };
    let job = state.store.jobs().get(id).await.map_err(missing)?;
    let recording = visible_recording(&state, &principal, job.recording_id, "session").await?;
    let status = match (job.status, recording.status) {
        (JobStatus::Queued, _) => "queued",
        (JobStatus::Running, RecordingStatus::Summarizing) => "summarizing",
        (JobStatus::Running, _) => "processing",
        (JobStatus::Done, _) => "completed",
        (JobStatus::Failed, _) => "failed",
    };
    Ok(Json(SessionView {
        session_id: job.id,
        document_id: recording.id,
        status,
        progress: (job.progress.clamp(0.0, 1.0) * 100.0).round() as u8,
        attempts: job.attempts,
        error: job.error.filter(|_| job.status == JobStatus::Failed),
    }))
}

#[utoipa::path(get, path = "/api/v3/documents/{id}", tag = "batch",
    params(("id" = i64, Path), ("format" = Option<String>, Query, description = "json (default), txt, srt or vtt")),
    responses((status = 200, description = "The transcript", body = DocumentView),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, description = "Not transcribed yet", body = ErrorBody)))]
pub async fn document(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<i64>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    principal.require(Scope::Batch)?;
    let pairs = query_pairs(query.as_deref())?;
    let format = pairs
        .iter()
        .find(|(k, _)| k == "format")
        .map_or("json", |(_, v)| v.as_str());
    let missing = |e: StoreError| match e {
        StoreError::NotFound => ApiError::NotFound("document"),
        other => other.into(),
    };
    let recording = visible_recording(&state, &principal, id, "document").await?;
    let segments = state
        .store
        .recordings()
        .transcript(recording.user_id, id)
        .await
        .map_err(missing)?;
    let text_response = |content_type: &'static str, body: String| {
        ([(header::CONTENT_TYPE, content_type)], body).into_response()
    };
    if format != "json" && segments.is_none() {
        return Err(ApiError::Conflict(format!(
            "the document is not ready: its status is {}",
            recording.status
        )));
    }
    let segments = segments.unwrap_or_default();
    Ok(match format {
        "json" => Json(DocumentView {
            document_id: recording.id,
            status: recording.status.as_str().to_owned(),
            language: recording.language.clone(),
            duration_seconds: recording.duration_seconds,
            text: (recording.status == RecordingStatus::Completed)
                .then(|| transcripts::plain_text(&segments)),
            segments: segments.iter().map(SegmentView::from).collect(),
            summary: recording.summary.clone(),
        })
        .into_response(),
        other => match transcript_file(other, &segments) {
            Some((content_type, body)) => text_response(content_type, body),
            None => {
                return Err(ApiError::bad_request(format!(
                    "format: {other:?} is not one of json, txt, srt, vtt"
                )));
            }
        },
    })
}
