//! Audio intake shared by `POST /api/recordings` and `POST /api/v3/speech-to-text`: the
//! multipart form is streamed to a durable blob, validated, and the recording and its
//! transcription job are stored together before the client hears back.

use axum::extract::Multipart;
use axum::extract::multipart::{Field, MultipartRejection};
use axum::http::StatusCode;
use hark_core::recordings::validate_title;
use hark_speech::sniff::{SNIFF_BYTES, audio_content_type};
use hark_store::DEFAULT_PROJECT_ID;
use hark_store::audit::Actor;
use hark_store::blobs::{BlobStore, BlobWriter};
use hark_store::jobs::Job;
use hark_store::recordings::{NewRecording, Recording};
use utoipa::ToSchema;

use crate::auth::Principal;
use crate::error::ApiError;
use crate::state::AppState;
use crate::transcription::JobOptions;
use crate::webhooks::Callback;

/// How much of an oversized upload is read (and discarded) before giving up on the client.
const DRAIN_ALLOWANCE: u64 = 64 * 1024 * 1024;

/// Most bytes a form field other than the file may hold (titles, languages, prompts): the
/// upload routes have no body limit, so each text field needs its own.
pub const MAX_TEXT_FIELD_BYTES: usize = 8 * 1024;

/// The multipart form, for the OpenAPI document.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct UploadForm {
    /// The audio file (WAV, MP3, FLAC, Ogg/Vorbis, M4A/AAC, …); or send `url` instead.
    #[schema(value_type = Option<String>, format = Binary)]
    file: Option<Vec<u8>>,
    /// An http(s) URL hark fetches the audio from (instead of `file`). Internal addresses
    /// are refused unless the server runs with `--fetch-allow-private`.
    url: Option<String>,
    /// Called (POST, JSON, signed) when the transcription completes or fails.
    callback_url: Option<String>,
    /// Defaults to the file name.
    title: Option<String>,
    /// Language code, e.g. `en`.
    language: Option<String>,
    /// Accepted for Scriptix compatibility; hark makes one kind of document.
    document_type: Option<String>,
    /// The project to file it in, one of the workspace's (the default project when absent).
    /// A project key's uploads are in its own project; naming another is 403.
    project_id: Option<i64>,
}

/// Audio for a new recording: received already, or a URL a worker will fetch (the fetch
/// is part of the job, so its failure fails the job with a readable reason).
pub enum Audio {
    Received {
        audio: ReceivedAudio,
        filename: String,
    },
    Url(url::Url),
}

/// A new recording as any dialect describes it.
pub struct Submission {
    pub audio: Audio,
    pub title: Option<String>,
    pub language: Option<String>,
    /// A `project_id` as the client wrote it.
    pub project: Option<String>,
    /// Decoding options and callbacks; its `language` is replaced by the checked one.
    pub options: JobOptions,
}

/// Reads the Speakr/Scriptix multipart form (`file` or `url`, `title`, `language`,
/// `project_id`, `callback_url`) and submits it.
pub async fn accept(
    state: &AppState,
    principal: &Principal,
    actor: &Actor,
    multipart: Result<Multipart, MultipartRejection>,
) -> Result<(Recording, Job), ApiError> {
    // Refused before the upload is read; `submit` checks again for the other dialects.
    crate::budgets::require_audio(state, principal).await?;
    let mut multipart = multipart.map_err(|r| ApiError::Rejected {
        status: r.status(),
        message: r.body_text(),
    })?;
    let mut fields = FormFields::default();
    let mut audio: Option<Audio> = None;
    let limit = state.config.max_upload_bytes as u64;
    let read: Result<(), ApiError> = async {
        while let Some(mut field) = multipart.next_field().await? {
            match field.name().unwrap_or_default() {
                "file" => {
                    if audio.is_some() {
                        return Err(ApiError::bad_request(
                            "file: send exactly one file or one url",
                        ));
                    }
                    // The client's Content-Type is ignored: the content says what it is.
                    let filename = field.file_name().unwrap_or("upload").to_owned();
                    let received = receive_audio(&state.blobs, &mut field, limit).await?;
                    audio = Some(Audio::Received {
                        audio: received,
                        filename,
                    });
                }
                "url" => fields.url = Some(read_text_field(&mut field).await?),
                "title" => fields.title = Some(read_text_field(&mut field).await?),
                "language" => fields.language = Some(read_text_field(&mut field).await?),
                "project_id" => fields.project = Some(read_text_field(&mut field).await?),
                "callback_url" => fields.callback = Some(read_text_field(&mut field).await?),
                _ => {}
            }
        }
        Ok(())
    }
    .await;
    let checked = read.and_then(|()| fields.checked(state, audio.is_some()));
    let (url, callback) = match checked {
        Ok(found) => found,
        Err(e) => {
            if let Some(Audio::Received { audio, .. }) = audio {
                audio.writer.abort().await;
            }
            return Err(e);
        }
    };
    let audio = match (url, audio) {
        (Some(url), _) => Audio::Url(url),
        (None, Some(received)) => received,
        (None, None) => return Err(ApiError::bad_request(NO_AUDIO)),
    };
    let submission = Submission {
        audio,
        title: fields.title,
        language: fields.language,
        project: fields.project,
        options: JobOptions {
            callback,
            ..JobOptions::default()
        },
    };
    submit(state, principal, actor, submission).await
}

/// The text fields of the upload form.
#[derive(Default)]
struct FormFields {
    url: Option<String>,
    title: Option<String>,
    language: Option<String>,
    project: Option<String>,
    callback: Option<String>,
}

const NO_AUDIO: &str = "file: a multipart field named `file` (or `url`) is required";

impl FormFields {
    /// The URL to fetch (when no file came) and the callback, checked; exactly one of a
    /// file and a URL must have been sent.
    fn checked(
        &self,
        state: &AppState,
        has_file: bool,
    ) -> Result<(Option<url::Url>, Option<Callback>), ApiError> {
        let callback = match self.callback.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(url) => Some(Callback::hark(checked_url(state, "callback_url", url)?)),
        };
        let url = self.url.as_deref().map(str::trim).filter(|u| !u.is_empty());
        let url = match (has_file, url) {
            (true, Some(_)) => {
                return Err(ApiError::bad_request(
                    "send either a file or a url, not both",
                ));
            }
            (true, None) => None,
            (false, Some(url)) => Some(checked_url(state, "url", url)?),
            (false, None) => return Err(ApiError::bad_request(NO_AUDIO)),
        };
        Ok((url, callback))
    }
}

/// A user's URL through the outbound guard's up-front checks, as a 400 naming the field.
pub fn checked_url(state: &AppState, field: &str, raw: &str) -> Result<url::Url, ApiError> {
    state
        .outbound
        .parse(raw)
        .map_err(|e| ApiError::bad_request(format!("{field}: {e}")))
}

/// Validates a submission, stores the recording and its job together, wakes a worker and
/// audits it. A received blob is committed only once everything checked out (and deleted
/// if storing fails), so nothing is left behind by a refused submission.
pub async fn submit(
    state: &AppState,
    principal: &Principal,
    actor: &Actor,
    submission: Submission,
) -> Result<(Recording, Job), ApiError> {
    let Submission {
        audio,
        title,
        language,
        project,
        options,
    } = submission;
    let fallback_title = match &audio {
        Audio::Received { filename, .. } => filename.clone(),
        Audio::Url(url) => url_title(url),
    };
    let checked = crate::budgets::require_audio(state, principal)
        .await
        .and_then(|()| validate(title.as_deref(), &fallback_title, language));
    let validated = match checked {
        Ok(v) => target_project(state, principal, project.as_deref())
            .await
            .map(|project_id| (v, project_id)),
        Err(e) => Err(e),
    };
    let ((title, language), project_id) = match validated {
        Ok(v) => v,
        Err(e) => {
            if let Audio::Received { audio, .. } = audio {
                audio.writer.abort().await;
            }
            return Err(e);
        }
    };
    let options = serde_json::to_string(&JobOptions {
        language: language.clone(),
        token_id: principal.usage_token_id(),
        budget_token_id: principal.budget().map(|b| b.token_id),
        ..options
    })
    .map_err(|e| ApiError::Internal(e.to_string()))?;
    let (filename, mime_type, size, blob_key, source_url) = match audio {
        Audio::Received { audio, filename } => {
            let size = audio.writer.size() as i64;
            let key = audio.writer.commit().await?;
            (filename, audio.content_type.to_owned(), size, key, None)
        }
        Audio::Url(url) => (
            url_title(&url),
            String::new(),
            0,
            String::new(),
            Some(url.to_string()),
        ),
    };
    let new = NewRecording {
        user_id: principal.user_id,
        project_id,
        title,
        // Control characters (a `%00` in a URL, say) are dropped: no database stores NUL.
        original_filename: filename
            .chars()
            .filter(|c| !c.is_control())
            .take(255)
            .collect(),
        mime_type,
        size_bytes: size,
        blob_key: blob_key.clone(),
        language,
        submitted_by_key: principal.project_id().and(principal.token_id()),
        source_url,
    };
    let max_attempts = state.pipeline.config.max_attempts;
    let (recording, job) = match state
        .store
        .jobs()
        .submit(&new, &options, max_attempts)
        .await
    {
        Ok(submitted) => submitted,
        Err(e) => {
            if !blob_key.is_empty() {
                let _ = state.blobs.delete(&blob_key).await;
            }
            return Err(e.into());
        }
    };
    state.pipeline.wake();
    state
        .store
        .audit()
        .record(
            actor,
            "recording.created",
            &format!("recording:{}", recording.id),
            None,
        )
        .await?;
    Ok((recording, job))
}

/// The last path segment of a URL (what a download would be called), else its host.
fn url_title(url: &url::Url) -> String {
    url.path_segments()
        .and_then(|mut s| s.next_back().map(str::to_owned))
        .filter(|s| !s.is_empty())
        .map(|s| {
            percent_encoding::percent_decode_str(&s)
                .decode_utf8_lossy()
                .into_owned()
        })
        .or_else(|| url.host_str().map(str::to_owned))
        .unwrap_or_else(|| "download".to_owned())
}

/// Where an upload goes: a project key's own project; else the form's `project_id` if it
/// names a project of the uploader's workspace (404 otherwise); else the default project.
async fn target_project(
    state: &AppState,
    principal: &Principal,
    asked: Option<&str>,
) -> Result<i64, ApiError> {
    let asked = match asked.map(str::trim).filter(|a| !a.is_empty()) {
        None => None,
        Some(text) => Some(
            text.parse::<i64>()
                .map_err(|_| ApiError::bad_request("project_id: a project's numeric id"))?,
        ),
    };
    match (principal.project_id(), asked) {
        (Some(own), Some(asked)) if own != asked => Err(ApiError::forbidden(
            "a project key uploads into its own project only",
        )),
        (Some(own), _) => Ok(own),
        (None, None) => Ok(DEFAULT_PROJECT_ID),
        (None, Some(asked)) => {
            state
                .store
                .projects()
                .get(principal.workspace_id, asked)
                .await
                .map_err(|e| match e {
                    hark_store::StoreError::NotFound => ApiError::NotFound("project"),
                    other => other.into(),
                })?;
            Ok(asked)
        }
    }
}

fn validate(
    title: Option<&str>,
    filename: &str,
    language: Option<String>,
) -> Result<(String, Option<String>), ApiError> {
    let title = validate_title(title.unwrap_or(filename))?;
    let language = language
        .map(|l| l.trim().to_owned())
        .filter(|l| !l.is_empty());
    let well_formed =
        |l: &String| l.len() <= 16 && l.chars().all(|c| c.is_ascii_alphabetic() || c == '-');
    if language.as_ref().is_some_and(|l| !well_formed(l)) {
        return Err(ApiError::bad_request(
            "language: use a code such as en or en-US",
        ));
    }
    Ok((title, language))
}

/// A file field streamed into a blob, and the audio type its content turned out to be.
pub struct ReceivedAudio {
    pub writer: BlobWriter,
    pub content_type: &'static str,
}

/// Streams one file field into a new blob, refusing more than `limit` bytes, an empty
/// file, and anything whose first bytes are not audio hark decodes (`415`, whatever the
/// client labelled it). An oversized upload is still read on (up to [`DRAIN_ALLOWANCE`]
/// more, then the connection is dropped), so that clients which send the whole body
/// before reading the answer still get the 413.
pub async fn receive_audio(
    blobs: &BlobStore,
    field: &mut Field<'_>,
    limit: u64,
) -> Result<ReceivedAudio, ApiError> {
    let mut writer = blobs.writer().await?;
    let mut head = Vec::with_capacity(SNIFF_BYTES);
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
            let wanted = SNIFF_BYTES.saturating_sub(head.len()).min(chunk.len());
            head.extend_from_slice(&chunk[..wanted]);
            writer.write(&chunk).await?;
        }
        Ok(())
    }
    .await;
    let checked = outcome.and_then(|()| {
        if received > limit {
            return Err(ApiError::Rejected {
                status: StatusCode::PAYLOAD_TOO_LARGE,
                message: format!("file: larger than the {limit}-byte upload limit"),
            });
        }
        if received == 0 {
            return Err(ApiError::bad_request("file: the file is empty"));
        }
        audio_content_type(&head).ok_or_else(|| ApiError::Rejected {
            status: StatusCode::UNSUPPORTED_MEDIA_TYPE,
            message: "file: not audio hark can read (WAV, MP3, FLAC, Ogg, M4A/MP4, WebM, AAC, \
                      AIFF); judged by its content, not its name or type"
                .into(),
        })
    });
    match checked {
        Ok(content_type) => Ok(ReceivedAudio {
            writer,
            content_type,
        }),
        Err(e) => {
            writer.abort().await;
            Err(e)
        }
    }
}

/// A form field other than the file, as text of at most [`MAX_TEXT_FIELD_BYTES`]. A longer
/// one is read on (and dropped) up to [`DRAIN_ALLOWANCE`] so the client hears the 400.
pub async fn read_text_field(field: &mut Field<'_>) -> Result<String, ApiError> {
    let name = field.name().unwrap_or_default().to_owned();
    let mut bytes = Vec::new();
    let mut received = 0usize;
    while let Some(chunk) = field.chunk().await? {
        received = received.saturating_add(chunk.len());
        if received > MAX_TEXT_FIELD_BYTES {
            if received as u64 > DRAIN_ALLOWANCE {
                break;
            }
            continue;
        }
        bytes.extend_from_slice(&chunk);
    }
    if received > MAX_TEXT_FIELD_BYTES {
        return Err(ApiError::bad_request(format!(
            "{name}: longer than {MAX_TEXT_FIELD_BYTES} bytes"
        )));
    }
    String::from_utf8(bytes).map_err(|_| ApiError::bad_request(format!("{name}: not UTF-8 text")))
}
