//! Speechmatics' batch API at `/v2/jobs`, translated to hark's recordings and jobs, so
//! the official `speechmatics-batch` client works with `url=http://HOST/v2`.
//!
//! A Speechmatics job is a hark job (its id in decimal); its recording holds the audio and
//! the transcript. Batch project keys see what their project's keys submitted, personal
//! tokens with the `batch` scope their owner's jobs. Errors have Speechmatics' shape.
//! `batch_config` reads the submitted config, `batch_format` renders jobs and transcripts,
//! `batch_notify` the `notification_config` callbacks.

use axum::Json;
use axum::body::Body;
use axum::extract::multipart::MultipartRejection;
use axum::extract::{Multipart, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use hark_core::scopes::Scope;
use hark_store::StoreError;
use hark_store::jobs::{Job, JobOwner, JobStatus};
use hark_store::recordings::Recording;
use serde::Serialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use utoipa::ToSchema;

use super::batch_config::{self, JobConfig};
use super::batch_format::{
    self, JobEnvelope, JobList, TEXT_PLAIN, details, status_of, transcript_json,
};
pub use super::batch_notify::notification;
use crate::auth::{ClientIp, Principal};
use crate::error::{ApiError, ApiPath};
use crate::routes::batch::visible_recording;
use crate::routes::query_pairs;
use crate::routes::recordings::delete_owned;
use crate::routes::tokens::actor;
use crate::routes::uploads::{Audio, Submission, checked_url, read_text_field, receive_audio};
use crate::state::AppState;
use crate::transcription::{Backend, JobOptions};
use crate::webhooks::{Callback, CallbackStyle};

/// Most jobs one listing returns (Speechmatics' own cap).
const MAX_LIST: i64 = 100;

/// An error in Speechmatics' shape: `{"code": 404, "error": "Not Found", "detail": "…"}`,
/// with the status and headers hark would send.
pub struct SmError(ApiError);

impl<E: Into<ApiError>> From<E> for SmError {
    fn from(e: E) -> Self {
        SmError(e.into())
    }
}

impl IntoResponse for SmError {
    fn into_response(self) -> Response {
        let detail = self.0.to_string();
        let mut response = self.0.into_response();
        let status = response.status();
        let body = SmErrorBody {
            code: status.as_u16(),
            error: status.canonical_reason().unwrap_or("Error").to_owned(),
            detail,
        };
        response.headers_mut().remove(header::CONTENT_LENGTH);
        *response.body_mut() = Body::from(serde_json::to_vec(&body).unwrap_or_default());
        response
    }
}

/// Speechmatics' error body.
#[derive(Serialize, ToSchema)]
pub struct SmErrorBody {
    /// The HTTP status.
    pub code: u16,
    pub error: String,
    pub detail: String,
}

/// The multipart form of `POST /v2/jobs`, for the OpenAPI document.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct JobForm {
    /// JSON: `{"type": "transcription", "transcription_config": {"language": "en"}, …}`,
    /// optionally with `fetch_data: {url}` (then no `data_file`), `notification_config`
    /// and `tracking: {title}`.
    config: String,
    /// The audio (any format hark reads, judged by content).
    #[schema(value_type = Option<String>, format = Binary)]
    data_file: Option<Vec<u8>>,
}

#[derive(Serialize, ToSchema)]
pub struct JobCreated {
    /// The job id (hark's job id, in decimal).
    pub id: String,
}

fn json_reply(status: StatusCode, body: &impl Serialize) -> Response {
    (status, Json(body)).into_response()
}

/// The job `id` names and its recording, when this caller may see them (404 otherwise).
async fn visible_job(
    state: &AppState,
    principal: &Principal,
    id: &str,
) -> Result<(Job, Recording), SmError> {
    let id: i64 = id.parse().map_err(|_| ApiError::NotFound("job"))?;
    let job = state.store.jobs().get(id).await.map_err(|e| match e {
        StoreError::NotFound => ApiError::NotFound("job"),
        other => other.into(),
    })?;
    let recording = visible_recording(state, principal, job.recording_id, "job").await?;
    Ok((job, recording))
}

#[utoipa::path(post, path = "/v2/jobs", tag = "speechmatics",
    description = "Submits a Speechmatics batch job: the multipart fields `config` (JSON) and \
        `data_file`, or `config` alone with `fetch_data.url`. Needs a batch key or a token with \
        the `batch` scope.",
    request_body(content = JobForm, content_type = "multipart/form-data"),
    responses((status = 201, description = "Stored and queued", body = JobCreated),
        (status = 400, body = SmErrorBody), (status = 401, body = SmErrorBody),
        (status = 403, body = SmErrorBody), (status = 413, body = SmErrorBody),
        (status = 415, description = "Not audio (judged by content)", body = SmErrorBody)))]
pub async fn create_job(
    State(state): State<AppState>,
    principal: Result<Principal, ApiError>,
    ClientIp(client_ip): ClientIp,
    headers: HeaderMap,
    multipart: Result<Multipart, MultipartRejection>,
) -> Result<Response, SmError> {
    let principal = principal?;
    principal.require(Scope::Batch)?;
    let (config, audio) = read_form(&state, multipart).await?;
    let checked = check_submission(&state, &config, audio.is_some()).await;
    let (fetch, callback) = match checked {
        Ok(found) => found,
        Err(e) => {
            if let Some(Audio::Received { audio, .. }) = audio {
                audio.writer.abort().await;
            }
            return Err(e.into());
        }
    };
    let audio = match (fetch, audio) {
        (Some(url), _) => Audio::Url(url),
        (None, Some(received)) => received,
        (None, None) => return Err(ApiError::bad_request(NO_AUDIO).into()),
    };
    let submission = Submission {
        audio,
        title: config.title,
        language: config.language,
        project: None,
        options: JobOptions {
            client_config: Some(config.raw),
            callback,
            ..JobOptions::default()
        },
    };
    let (_, job) = crate::routes::uploads::submit(
        &state,
        &principal,
        &actor(&principal, &headers, client_ip),
        submission,
    )
    .await?;
    Ok(crate::routes::created(
        &format!("/v2/jobs/{}", job.id),
        JobCreated {
            id: job.id.to_string(),
        },
    ))
}

const NO_AUDIO: &str = "data_file: send the audio as `data_file`, or give config.fetch_data.url";

/// The `config` field, parsed, and the `data_file` streamed into a blob (aborted if the
/// form turns out bad).
async fn read_form(
    state: &AppState,
    multipart: Result<Multipart, MultipartRejection>,
) -> Result<(JobConfig, Option<Audio>), ApiError> {
    let mut multipart = multipart.map_err(|r| ApiError::Rejected {
        status: r.status(),
        message: r.body_text(),
    })?;
    let mut config_text: Option<String> = None;
    let mut audio: Option<Audio> = None;
    let limit = state.config.max_upload_bytes as u64;
    let read: Result<(), ApiError> = async {
        while let Some(mut field) = multipart.next_field().await? {
            match field.name().unwrap_or_default() {
                "config" if config_text.is_some() => {
                    return Err(ApiError::bad_request("config: send it once"));
                }
                // A text field (aiohttp) or an application/json part (httpx): the same text.
                "config" => config_text = Some(read_text_field(&mut field).await?),
                "data_file" if audio.is_some() => {
                    return Err(ApiError::bad_request("data_file: send one file"));
                }
                "data_file" => {
                    let filename = field.file_name().unwrap_or("data_file").to_owned();
                    let received = receive_audio(&state.blobs, &mut field, limit).await?;
                    audio = Some(Audio::Received {
                        audio: received,
                        filename,
                    });
                }
                _ => {}
            }
        }
        Ok(())
    }
    .await;
    let parsed = read.and_then(|()| match &config_text {
        Some(text) => batch_config::parse(text),
        None => Err(ApiError::bad_request(
            "config: a multipart field named `config` (JSON) is required",
        )),
    });
    match parsed {
        Ok(config) => Ok((config, audio)),
        Err(e) => {
            if let Some(Audio::Received { audio, .. }) = audio {
                audio.writer.abort().await;
            }
            Err(e)
        }
    }
}

/// The URL to fetch (when no file came) and the notification, checked; exactly one of a
/// file and `fetch_data` must have been sent, and the language must be one the server has.
async fn check_submission(
    state: &AppState,
    config: &JobConfig,
    has_file: bool,
) -> Result<(Option<url::Url>, Option<Callback>), ApiError> {
    if let Some(language) = &config.language {
        batch_config::check_language(language, english_only(state).await)?;
    }
    let fetch = match (has_file, config.fetch_url.as_deref()) {
        (true, Some(_)) => {
            return Err(ApiError::bad_request(
                "send either data_file or config.fetch_data, not both",
            ));
        }
        (false, Some(url)) => Some(checked_url(state, "fetch_data.url", url)?),
        (true, None) => None,
        (false, None) => return Err(ApiError::bad_request(NO_AUDIO)),
    };
    let callback = match &config.notification {
        None => None,
        Some(n) => Some(Callback {
            url: checked_url(state, "notification_config.url", &n.url)?.to_string(),
            style: CallbackStyle::Speechmatics {
                method: n.method.clone(),
                contents: n.contents.clone(),
                auth_headers: n.auth_headers.clone(),
            },
        }),
    };
    Ok((fetch, callback))
}

/// Whether the embedded model is English-only; `None` for a remote engine or a model
/// that cannot load now (its jobs wait for it, and the engine judges the language then).
async fn english_only(state: &AppState) -> Option<bool> {
    match &state.pipeline.config.backend {
        Backend::Embedded { .. } => state
            .pipeline
            .embedded_engine()
            .await
            .ok()
            .map(|engine| engine.english_only()),
        Backend::Remote(_) => None,
    }
}

#[utoipa::path(get, path = "/v2/jobs", tag = "speechmatics",
    params(("limit" = Option<i64>, Query, description = "1 to 100 (default 100)"),
        ("created_before" = Option<String>, Query, description = "RFC 3339 time: only older jobs")),
    responses((status = 200, description = "The caller's jobs, newest first", body = JobList),
        (status = 400, body = SmErrorBody), (status = 401, body = SmErrorBody),
        (status = 403, body = SmErrorBody)))]
pub async fn list_jobs(
    State(state): State<AppState>,
    principal: Result<Principal, ApiError>,
    RawQuery(query): RawQuery,
) -> Result<Response, SmError> {
    let principal = principal?;
    principal.require(Scope::Batch)?;
    let pairs = query_pairs(query.as_deref())?;
    let limit = match crate::routes::query_value(&pairs, "limit") {
        None => MAX_LIST,
        Some(text) => text
            .parse::<i64>()
            .ok()
            .filter(|l| (1..=MAX_LIST).contains(l))
            .ok_or_else(|| ApiError::bad_request("limit: a number from 1 to 100"))?,
    };
    let before = crate::routes::query_value(&pairs, "created_before")
        .map(|text| {
            OffsetDateTime::parse(text, &Rfc3339).map_err(|_| {
                ApiError::bad_request("created_before: an RFC 3339 time, e.g. 2026-01-31T12:00:00Z")
            })
        })
        .transpose()?;
    let owner = match principal.project_id() {
        Some(project) => JobOwner::Project(project),
        None => JobOwner::User(principal.user_id),
    };
    let listed = state.store.jobs().list(owner, before, limit).await?;
    let jobs = listed
        .iter()
        .map(|l| details(&l.job, &l.original_filename, l.duration_seconds))
        .collect();
    Ok(json_reply(StatusCode::OK, &JobList { jobs }))
}

#[utoipa::path(get, path = "/v2/jobs/{id}", tag = "speechmatics", params(("id" = String, Path)),
    responses((status = 200, body = JobEnvelope), (status = 401, body = SmErrorBody),
        (status = 403, body = SmErrorBody), (status = 404, body = SmErrorBody)))]
pub async fn get_job(
    State(state): State<AppState>,
    principal: Result<Principal, ApiError>,
    ApiPath(id): ApiPath<String>,
) -> Result<Response, SmError> {
    let principal = principal?;
    principal.require(Scope::Batch)?;
    let (job, recording) = visible_job(&state, &principal, &id).await?;
    let job = details(
        &job,
        &recording.original_filename,
        recording.duration_seconds,
    );
    Ok(json_reply(StatusCode::OK, &JobEnvelope { job }))
}

#[utoipa::path(delete, path = "/v2/jobs/{id}", tag = "speechmatics",
    params(("id" = String, Path),
        ("force" = Option<bool>, Query, description = "Delete a job that is still running")),
    responses((status = 200, description = "Deleted with its recording and audio", body = JobEnvelope),
        (status = 401, body = SmErrorBody), (status = 403, body = SmErrorBody),
        (status = 404, body = SmErrorBody),
        (status = 423, description = "Still running and `force` not given", body = SmErrorBody)))]
pub async fn delete_job(
    State(state): State<AppState>,
    principal: Result<Principal, ApiError>,
    ClientIp(client_ip): ClientIp,
    headers: HeaderMap,
    ApiPath(id): ApiPath<String>,
    RawQuery(query): RawQuery,
) -> Result<Response, SmError> {
    let principal = principal?;
    principal.require(Scope::Batch)?;
    let pairs = query_pairs(query.as_deref())?;
    let force = crate::routes::query_value(&pairs, "force").is_some_and(|v| v == "true");
    let (job, recording) = visible_job(&state, &principal, &id).await?;
    if status_of(&job) == "running" && !force {
        return Err(ApiError::Rejected {
            status: StatusCode::LOCKED,
            message: "the job is still running; delete it with force=true".into(),
        }
        .into());
    }
    let mut view = details(
        &job,
        &recording.original_filename,
        recording.duration_seconds,
    );
    // The recording goes, its job with it (cascade), then its audio, as every API deletes.
    let actor = actor(&principal, &headers, client_ip);
    delete_owned(&state, recording.user_id, recording.id, &actor)
        .await
        .map_err(|e| match e {
            ApiError::NotFound(_) => ApiError::NotFound("job"),
            other => other,
        })?;
    view.status = "deleted";
    Ok(json_reply(StatusCode::OK, &JobEnvelope { job: view }))
}

#[utoipa::path(get, path = "/v2/jobs/{id}/transcript", tag = "speechmatics",
    params(("id" = String, Path),
        ("format" = Option<String>, Query, description = "json-v2 (default), txt or srt")),
    responses((status = 200, description = "json-v2 (application/json) or text/plain"),
        (status = 400, body = SmErrorBody), (status = 401, body = SmErrorBody),
        (status = 403, body = SmErrorBody),
        (status = 404, description = "No such job, or not transcribed yet", body = SmErrorBody)))]
pub async fn get_transcript(
    State(state): State<AppState>,
    principal: Result<Principal, ApiError>,
    ApiPath(id): ApiPath<String>,
    RawQuery(query): RawQuery,
) -> Result<Response, SmError> {
    let principal = principal?;
    principal.require(Scope::Batch)?;
    let pairs = query_pairs(query.as_deref())?;
    let format = crate::routes::query_value(&pairs, "format").unwrap_or("json-v2");
    if !matches!(format, "json-v2" | "txt" | "srt") {
        return Err(ApiError::bad_request(format!(
            "format: {format:?} is not one of json-v2, txt, srt"
        ))
        .into());
    }
    let (job, recording) = visible_job(&state, &principal, &id).await?;
    let not_ready = || {
        SmError(ApiError::Rejected {
            status: StatusCode::NOT_FOUND,
            message: format!(
                "the transcript is not ready: the job is {}",
                status_of(&job)
            ),
        })
    };
    if job.status != JobStatus::Done {
        return Err(not_ready());
    }
    let segments = state
        .store
        .recordings()
        .transcript(recording.user_id, recording.id)
        .await?
        .ok_or_else(not_ready)?;
    Ok(match format {
        "txt" => text_reply(batch_format::txt(&segments)),
        "srt" => text_reply(batch_format::srt(&segments)),
        _ => Json(transcript_json(&job, &recording, &segments)).into_response(),
    })
}

fn text_reply(body: String) -> Response {
    ([(header::CONTENT_TYPE, TEXT_PLAIN)], body).into_response()
}
