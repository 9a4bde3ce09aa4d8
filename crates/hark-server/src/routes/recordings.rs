//! The Speakr-compatible recordings API.

use axum::Json;
use axum::body::Body;
use axum::extract::Request;
use axum::extract::multipart::MultipartRejection;
use axum::extract::{Multipart, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use hark_core::pagination::{PageRequest, Pagination};
use hark_core::recordings::Segment;
use hark_core::scopes::Scope;
use hark_core::transcripts;
use hark_speech::sniff::SERVED_TYPES;
use hark_store::StoreError;
use hark_store::audit::Actor;
use hark_store::recordings::{Recording, RecordingFilter};
use hark_store::tags::Tag;
use serde::Serialize;
use time::OffsetDateTime;
use tower::ServiceExt;
use tower_http::services::ServeFile;
use utoipa::ToSchema;

use super::tokens::actor;
use super::uploads::{self, UploadForm};
use super::{query_pairs, query_value};
use crate::auth::{ClientIp, Principal};
use crate::error::{ApiError, ApiPath, ErrorBody};
use crate::state::AppState;

#[derive(Serialize, ToSchema)]
pub struct TagView {
    pub id: i64,
    pub name: String,
    pub color: String,
}

impl From<&Tag> for TagView {
    fn from(t: &Tag) -> Self {
        TagView {
            id: t.id,
            name: t.name.clone(),
            color: t.color.clone(),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct RecordingView {
    pub id: i64,
    pub title: String,
    /// `PENDING`, `PROCESSING`, `SUMMARIZING`, `COMPLETED` or `FAILED`.
    pub status: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
    pub project_id: i64,
    pub original_filename: String,
    pub mime_type: String,
    pub size_bytes: i64,
    pub duration_seconds: Option<f64>,
    pub language: Option<String>,
    /// Why processing failed, when `status` is `FAILED`.
    pub error: Option<String>,
    pub tags: Vec<TagView>,
}

impl From<&Recording> for RecordingView {
    fn from(r: &Recording) -> Self {
        RecordingView {
            id: r.id,
            title: r.title.clone(),
            status: r.status.as_str().to_owned(),
            created_at: r.created_at,
            updated_at: r.updated_at,
            project_id: r.project_id,
            original_filename: r.original_filename.clone(),
            mime_type: r.mime_type.clone(),
            size_bytes: r.size_bytes,
            duration_seconds: r.duration_seconds,
            language: r.language.clone(),
            error: r.error.clone(),
            tags: r.tags.iter().map(TagView::from).collect(),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct PaginationView {
    pub page: u32,
    pub per_page: u32,
    pub total: u64,
    pub total_pages: u64,
    pub has_next: bool,
    pub has_prev: bool,
}

impl From<Pagination> for PaginationView {
    fn from(p: Pagination) -> Self {
        PaginationView {
            page: p.page,
            per_page: p.per_page,
            total: p.total,
            total_pages: p.total_pages,
            has_next: p.has_next,
            has_prev: p.has_prev,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct RecordingPage {
    pub pagination: PaginationView,
    pub recordings: Vec<RecordingView>,
}

#[derive(Serialize, ToSchema)]
pub struct SegmentView {
    pub start: f64,
    pub end: f64,
    pub text: String,
    /// The segment's words with their times, where the transcript has them (absent for
    /// transcripts made before word timing, or by a remote engine).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub words: Vec<WordView>,
}

/// One word, timed from the model's attention to the audio.
#[derive(Serialize, ToSchema)]
pub struct WordView {
    /// The word as the model spelled it, with its leading space: a segment's words joined
    /// give its text.
    pub word: String,
    /// Seconds from the start of the audio.
    pub start: f64,
    pub end: f64,
    /// 0 to 1: the mean probability of the word's tokens.
    pub probability: f32,
}

impl From<&Segment> for SegmentView {
    fn from(s: &Segment) -> Self {
        SegmentView {
            start: s.start,
            end: s.end,
            text: s.text.clone(),
            words: s
                .words
                .iter()
                .map(|w| WordView {
                    word: w.word.clone(),
                    start: w.start,
                    end: w.end,
                    probability: w.probability,
                })
                .collect(),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct TranscriptView {
    pub id: i64,
    pub status: String,
    /// The whole transcript as text; null until transcription completes.
    pub transcript: Option<String>,
    pub segments: Vec<SegmentView>,
}

#[derive(Serialize, ToSchema)]
pub struct SummaryView {
    pub id: i64,
    pub status: String,
    /// Null until the summary is made.
    pub summary: Option<String>,
}

/// One of the caller's recordings; anyone else's is "not found".
pub(crate) async fn owned(
    state: &AppState,
    principal: &Principal,
    id: i64,
) -> Result<Recording, ApiError> {
    state
        .store
        .recordings()
        .get(principal.user_id, id)
        .await
        .map_err(not_found)
}

pub(crate) fn not_found(err: StoreError) -> ApiError {
    match err {
        StoreError::NotFound => ApiError::NotFound("recording"),
        other => other.into(),
    }
}

#[utoipa::path(get, path = "/api/recordings", tag = "recordings",
    params(("page" = Option<u32>, Query, description = "From 1; default 1"),
        ("per_page" = Option<u32>, Query, description = "1 to 100; default 25"),
        ("q" = Option<String>, Query, description = "Only titles containing this (any case)"),
        ("tag" = Option<i64>, Query, description = "Only recordings with this tag id")),
    responses((status = 200, body = RecordingPage), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
pub async fn list_recordings(
    State(state): State<AppState>,
    principal: Principal,
    RawQuery(query): RawQuery,
) -> Result<Json<RecordingPage>, ApiError> {
    principal.require(Scope::Read)?;
    let pairs = query_pairs(query.as_deref())?;
    let page = PageRequest::parse(query_value(&pairs, "page"), query_value(&pairs, "per_page"))?;
    let tag_id = match query_value(&pairs, "tag").filter(|t| !t.is_empty()) {
        Some(tag) => Some(
            tag.parse::<i64>()
                .map_err(|_| ApiError::bad_request("tag must be a tag id"))?,
        ),
        None => None,
    };
    let filter = RecordingFilter {
        title: query_value(&pairs, "q").map(str::to_owned),
        tag_id,
    };
    let (recordings, total) = state
        .store
        .recordings()
        .page(principal.user_id, &filter, page)
        .await?;
    Ok(Json(RecordingPage {
        pagination: page.describe(total).into(),
        recordings: recordings.iter().map(RecordingView::from).collect(),
    }))
}

#[utoipa::path(get, path = "/api/recordings/{id}", tag = "recordings",
    params(("id" = i64, Path)),
    responses((status = 200, body = RecordingView), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn get_recording(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<RecordingView>, ApiError> {
    principal.require(Scope::Read)?;
    let recording = owned(&state, &principal, id).await?;
    Ok(Json(RecordingView::from(&recording)))
}

/// A transcript as a text file format (`txt`, `srt`, `vtt`): its content type and body.
pub(crate) fn transcript_file(
    format: &str,
    segments: &[Segment],
) -> Option<(&'static str, String)> {
    match format {
        "txt" => Some((
            "text/plain; charset=utf-8",
            transcripts::plain_text(segments),
        )),
        "srt" => Some((
            "application/x-subrip; charset=utf-8",
            transcripts::srt(segments),
        )),
        "vtt" => Some(("text/vtt; charset=utf-8", transcripts::vtt(segments))),
        _ => None,
    }
}

#[utoipa::path(get, path = "/api/recordings/{id}/transcript/{format}", tag = "recordings",
    params(("id" = i64, Path), ("format" = String, Path, description = "txt, srt or vtt")),
    responses((status = 200, description = "The transcript as a file to save (Content-Disposition: attachment)"),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, description = "Not transcribed yet", body = ErrorBody)))]
pub async fn download_transcript(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath((id, format)): ApiPath<(i64, String)>,
) -> Result<Response, ApiError> {
    principal.require(Scope::Read)?;
    let recording = owned(&state, &principal, id).await?;
    let segments = state
        .store
        .recordings()
        .transcript(principal.user_id, id)
        .await
        .map_err(not_found)?
        .ok_or_else(|| {
            ApiError::Conflict(format!(
                "the transcript is not ready: the status is {}",
                recording.status
            ))
        })?;
    let (content_type, body) = transcript_file(&format, &segments).ok_or_else(|| {
        ApiError::bad_request(format!("format: {format:?} is not one of txt, srt, vtt"))
    })?;
    let disposition = format!(
        "attachment; filename=\"{}.{format}\"",
        file_stem(&recording.title)
    );
    Ok((
        [
            (header::CONTENT_TYPE, content_type.to_owned()),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        body,
    )
        .into_response())
}

/// A title as a safe file name: ASCII letters, digits, `-` and `_`, at most 80.
fn file_stem(title: &str) -> String {
    title
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .take(80)
        .collect()
}

#[utoipa::path(get, path = "/api/recordings/{id}/audio", tag = "recordings",
    params(("id" = i64, Path)),
    responses((status = 200, description = "The uploaded audio as stored; honours `Range` (206) so players can seek"),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn get_audio(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<i64>,
    request: Request,
) -> Result<Response, ApiError> {
    principal.require(Scope::Read)?;
    let recording = owned(&state, &principal, id).await?;
    // Only a type found by sniffing at upload is served as such; user bytes are never
    // served as a page (the security-headers layer adds `nosniff` and a sandboxing CSP).
    let content_type = SERVED_TYPES
        .iter()
        .find(|t| **t == recording.mime_type)
        .copied()
        .unwrap_or("application/octet-stream");
    let mime: mime::Mime = content_type
        .parse()
        .unwrap_or(mime::APPLICATION_OCTET_STREAM);
    // Played by the page's own <audio>, it is inline; opened any other way (a link, a
    // navigation), it is a download.
    let played = request
        .headers()
        .get("sec-fetch-dest")
        .is_some_and(|dest| dest == "audio" || dest == "video");
    let disposition = if played {
        "inline".to_owned()
    } else {
        format!("attachment; filename=\"{}\"", file_stem(&recording.title))
    };
    let mut response = match state.blobs.local_path(&recording.blob_key) {
        Some(path) => ServeFile::new_with_mime(path, &mime)
            .oneshot(request)
            .await
            .map_err(|e| ApiError::Internal(format!("reading audio: {e}")))?
            .map(Body::new),
        None if recording.blob_key.is_empty() => return Err(ApiError::NotFound("audio")),
        None => {
            super::audio::serve_blob(&state, &recording.blob_key, request.headers(), content_type)
                .await?
        }
    };
    if let Ok(value) = HeaderValue::from_str(&disposition) {
        response
            .headers_mut()
            .insert(header::CONTENT_DISPOSITION, value);
    }
    Ok(response)
}

#[utoipa::path(get, path = "/api/recordings/{id}/transcript", tag = "recordings",
    params(("id" = i64, Path)),
    responses((status = 200, body = TranscriptView), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn get_transcript(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<TranscriptView>, ApiError> {
    principal.require(Scope::Read)?;
    let recording = owned(&state, &principal, id).await?;
    let segments: Vec<Segment> = state
        .store
        .recordings()
        .transcript(principal.user_id, id)
        .await
        .map_err(not_found)?
        .unwrap_or_default();
    let transcript = (!segments.is_empty()).then(|| {
        segments
            .iter()
            .map(|s| s.text.trim())
            .collect::<Vec<_>>()
            .join(" ")
    });
    Ok(Json(TranscriptView {
        id,
        status: recording.status.as_str().to_owned(),
        transcript,
        segments: segments.iter().map(SegmentView::from).collect(),
    }))
}

#[utoipa::path(get, path = "/api/recordings/{id}/summary", tag = "recordings",
    params(("id" = i64, Path)),
    responses((status = 200, body = SummaryView), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn get_summary(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<SummaryView>, ApiError> {
    principal.require(Scope::Read)?;
    let recording = owned(&state, &principal, id).await?;
    Ok(Json(SummaryView {
        id,
        status: recording.status.as_str().to_owned(),
        summary: recording.summary,
    }))
}

#[utoipa::path(post, path = "/api/recordings", tag = "recordings",
    request_body(content = UploadForm, content_type = "multipart/form-data"),
    responses((status = 201, description = "Stored durably and queued for transcription; status PENDING", body = RecordingView),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 413, body = ErrorBody),
        (status = 415, description = "Not audio (judged by content)", body = ErrorBody)))]
pub async fn upload_recording(
    State(state): State<AppState>,
    principal: Principal,
    ClientIp(client_ip): ClientIp,
    headers: HeaderMap,
    multipart: Result<Multipart, MultipartRejection>,
) -> Result<Response, ApiError> {
    principal.require(Scope::Write)?;
    let (recording, _job) = uploads::accept(
        &state,
        &principal,
        &actor(&principal, &headers, client_ip),
        multipart,
    )
    .await?;
    let location = format!("/api/recordings/{}", recording.id);
    Ok(super::created(&location, RecordingView::from(&recording)))
}

#[utoipa::path(delete, path = "/api/recordings/{id}", tag = "recordings",
    params(("id" = i64, Path)),
    responses((status = 204, description = "Deleted with its audio"), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn delete_recording(
    State(state): State<AppState>,
    principal: Principal,
    ClientIp(client_ip): ClientIp,
    headers: HeaderMap,
    ApiPath(id): ApiPath<i64>,
) -> Result<StatusCode, ApiError> {
    principal.require(Scope::Write)?;
    let actor = actor(&principal, &headers, client_ip);
    delete_owned(&state, principal.user_id, id, &actor).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Deletes `owner_id`'s recording `id` with its audio, audited as `actor`: the one way a
/// recording goes (this route and Fireflies' `deleteTranscript`). Returns what it was.
pub(crate) async fn delete_owned(
    state: &AppState,
    owner_id: i64,
    id: i64,
    actor: &Actor,
) -> Result<Recording, ApiError> {
    let recording = state
        .store
        .recordings()
        .delete(owner_id, id)
        .await
        .map_err(not_found)?;
    if let Err(e) = state.blobs.delete(&recording.blob_key).await {
        tracing::warn!(recording = id, error = %e, "audio file could not be removed");
    }
    state
        .store
        .audit()
        .record(actor, "recording.deleted", &format!("recording:{id}"), None)
        .await?;
    Ok(recording)
}
