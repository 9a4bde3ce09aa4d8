//! The Speakr-compatible recordings API.

use std::net::SocketAddr;

use axum::Json;
use axum::extract::multipart::{Field, MultipartRejection};
use axum::extract::{ConnectInfo, Multipart, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use hark_core::pagination::{PageRequest, Pagination};
use hark_core::recordings::{Segment, validate_title};
use hark_core::scopes::Scope;
use hark_store::blobs::{BlobStore, BlobWriter};
use hark_store::recordings::{NewRecording, Recording};
use hark_store::tags::Tag;
use hark_store::{DEFAULT_PROJECT_ID, StoreError};
use serde::Serialize;
use time::OffsetDateTime;
use utoipa::ToSchema;

use super::tokens::actor;
use crate::auth::Principal;
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

pub(crate) fn not_found(err: StoreError) -> ApiError {
    match err {
        StoreError::NotFound => ApiError::NotFound("recording"),
        other => other.into(),
    }
}

fn query_value<'a>(pairs: &'a [(String, String)], key: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

#[utoipa::path(get, path = "/api/recordings", tag = "recordings",
    params(("page" = Option<u32>, Query, description = "From 1; default 1"),
        ("per_page" = Option<u32>, Query, description = "1 to 100; default 25")),
    responses((status = 200, body = RecordingPage), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
pub async fn list_recordings(
    State(state): State<AppState>,
    principal: Principal,
    RawQuery(query): RawQuery,
) -> Result<Json<RecordingPage>, ApiError> {
    principal.require(Scope::Read)?;
    let pairs: Vec<(String, String)> =
        serde_urlencoded::from_str(query.as_deref().unwrap_or(""))
            .map_err(|_| ApiError::bad_request("the query string is not valid"))?;
    let page = PageRequest::parse(query_value(&pairs, "page"), query_value(&pairs, "per_page"))?;
    let (recordings, total) = state
        .store
        .recordings()
        .page(principal.user_id, page)
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
    let recording = state
        .store
        .recordings()
        .get(principal.user_id, id)
        .await
        .map_err(not_found)?;
    Ok(Json(RecordingView::from(&recording)))
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
    let recording = state
        .store
        .recordings()
        .get(principal.user_id, id)
        .await
        .map_err(not_found)?;
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
        segments: segments
            .into_iter()
            .map(|s| SegmentView {
                start: s.start,
                end: s.end,
                text: s.text,
            })
            .collect(),
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
    let recording = state
        .store
        .recordings()
        .get(principal.user_id, id)
        .await
        .map_err(not_found)?;
    Ok(Json(SummaryView {
        id,
        status: recording.status.as_str().to_owned(),
        summary: recording.summary,
    }))
}

/// Multipart upload form, for the OpenAPI document.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct UploadForm {
    /// The audio file.
    #[schema(value_type = String, format = Binary)]
    file: Vec<u8>,
    /// Defaults to the file name.
    title: Option<String>,
    /// Language hint, e.g. `en`.
    language: Option<String>,
}

#[utoipa::path(post, path = "/api/recordings", tag = "recordings",
    request_body(content = UploadForm, content_type = "multipart/form-data"),
    responses((status = 201, description = "Stored durably; status PENDING", body = RecordingView),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 413, body = ErrorBody)))]
pub async fn upload_recording(
    State(state): State<AppState>,
    principal: Principal,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    multipart: Result<Multipart, MultipartRejection>,
) -> Result<Response, ApiError> {
    principal.require(Scope::Write)?;
    let mut multipart = multipart.map_err(|r| ApiError::Rejected {
        status: r.status(),
        message: r.body_text(),
    })?;
    let mut title = None;
    let mut language = None;
    let mut stored: Option<(BlobWriter, String, String)> = None;
    let limit = state.config.max_upload_bytes as u64;
    let result: Result<(), ApiError> = async {
        while let Some(mut field) = multipart.next_field().await? {
            match field.name().unwrap_or_default() {
                "file" => {
                    if stored.is_some() {
                        return Err(ApiError::bad_request("file: send exactly one file"));
                    }
                    let filename = field.file_name().unwrap_or("upload").to_owned();
                    let mime = field
                        .content_type()
                        .unwrap_or("application/octet-stream")
                        .to_owned();
                    let writer = receive_file(&state.blobs, &mut field, limit).await?;
                    stored = Some((writer, filename, mime));
                }
                "title" => title = Some(field.text().await?),
                "language" => language = Some(field.text().await?),
                _ => {}
            }
        }
        Ok(())
    }
    .await;
    let Some((writer, filename, mime)) = stored else {
        result?;
        return Err(ApiError::bad_request(
            "file: a multipart field named `file` is required",
        ));
    };
    let validated = result.and_then(|()| {
        if writer.size() == 0 {
            return Err(ApiError::bad_request("file: the file is empty"));
        }
        let title = validate_title(title.as_deref().unwrap_or(&filename))?;
        let language = language
            .map(|l| l.trim().to_owned())
            .filter(|l| !l.is_empty());
        if language.as_ref().is_some_and(|l| {
            l.len() > 16 || !l.chars().all(|c| c.is_ascii_alphabetic() || c == '-')
        }) {
            return Err(ApiError::bad_request(
                "language: use a code such as en or en-US",
            ));
        }
        Ok((title, language))
    });
    let (title, language) = match validated {
        Ok(v) => v,
        Err(e) => {
            writer.abort().await;
            return Err(e);
        }
    };
    let size = writer.size() as i64;
    let blob_key = writer.commit().await?;
    let created = state
        .store
        .recordings()
        .create(&NewRecording {
            user_id: principal.user_id,
            project_id: DEFAULT_PROJECT_ID,
            title,
            original_filename: filename.chars().take(255).collect(),
            mime_type: mime,
            size_bytes: size,
            blob_key: blob_key.clone(),
            language,
        })
        .await;
    let recording = match created {
        Ok(r) => r,
        Err(e) => {
            let _ = state.blobs.delete(&blob_key).await;
            return Err(e.into());
        }
    };
    state
        .store
        .audit()
        .record(
            &actor(&principal, &headers, Some(peer)),
            "recording.created",
            &format!("recording:{}", recording.id),
            None,
        )
        .await?;
    let mut response = (StatusCode::CREATED, Json(RecordingView::from(&recording))).into_response();
    if let Ok(location) = HeaderValue::from_str(&format!("/api/recordings/{}", recording.id)) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    Ok(response)
}

/// How much of an oversized upload is read (and discarded) before giving up on the client.
const DRAIN_ALLOWANCE: u64 = 64 * 1024 * 1024;

/// Streams one file field into a new blob, refusing more than `limit` bytes. An oversized
/// upload is still read on (up to [`DRAIN_ALLOWANCE`] more, then the connection is dropped),
/// so that clients which send the whole body before reading the answer still get the 413.
async fn receive_file(
    blobs: &BlobStore,
    field: &mut Field<'_>,
    limit: u64,
) -> Result<BlobWriter, ApiError> {
    let mut writer = blobs.writer().await?;
    let mut received: u64 = 0;
    let outcome: Result<(), ApiError> = async {
        while let Some(chunk) = field.chunk().await? {
            received += chunk.len() as u64;
            if received > limit {
                if received > limit.saturating_add(DRAIN_ALLOWANCE) {
                    break;
                }
                continue;
            }
            writer.write(&chunk).await?;
        }
        Ok(())
    }
    .await;
    if let Err(e) = outcome {
        writer.abort().await;
        return Err(e);
    }
    if received > limit {
        writer.abort().await;
        return Err(ApiError::Rejected {
            status: StatusCode::PAYLOAD_TOO_LARGE,
            message: format!("file: larger than the {limit}-byte upload limit"),
        });
    }
    Ok(writer)
}

#[utoipa::path(delete, path = "/api/recordings/{id}", tag = "recordings",
    params(("id" = i64, Path)),
    responses((status = 204, description = "Deleted with its audio"), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn delete_recording(
    State(state): State<AppState>,
    principal: Principal,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    ApiPath(id): ApiPath<i64>,
) -> Result<StatusCode, ApiError> {
    principal.require(Scope::Write)?;
    let recording = state
        .store
        .recordings()
        .delete(principal.user_id, id)
        .await
        .map_err(not_found)?;
    if let Err(e) = state.blobs.delete(&recording.blob_key).await {
        tracing::warn!(recording = id, error = %e, "audio file could not be removed");
    }
    state
        .store
        .audit()
        .record(
            &actor(&principal, &headers, Some(peer)),
            "recording.deleted",
            &format!("recording:{id}"),
            None,
        )
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
