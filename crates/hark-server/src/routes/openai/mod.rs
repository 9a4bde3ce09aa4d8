//! OpenAI-compatible transcription, so the official `openai` SDKs work with `base_url`
//! pointed at hark and a hark token as the API key. Synchronous: the answer is the
//! transcript. The audio is not kept. Live sessions (`/v1/realtime`) are in [`realtime`].

pub mod realtime;

use axum::Json;
use axum::extract::State;
use axum::extract::multipart::{Multipart, MultipartRejection};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use hark_core::recordings::Segment;
use hark_core::scopes::Scope;
use hark_core::transcripts;
use hark_speech::SpeechError;
use serde::Serialize;
use utoipa::ToSchema;

use crate::auth::Principal;
use crate::error::{ApiError, ErrorBody};
use crate::routes::uploads::{read_text_field, receive_audio};
use crate::state::AppState;
use crate::transcription::{JobOptions, stored_segment};

/// The model names clients may send; all run hark's configured engine.
const MODELS: [&str; 2] = ["whisper-1", "whisper-tiny.en"];

#[derive(ToSchema)]
#[allow(dead_code)]
pub struct TranscriptionForm {
    #[schema(value_type = String, format = Binary)]
    file: Vec<u8>,
    /// `whisper-1` or `whisper-tiny.en`.
    model: String,
    language: Option<String>,
    /// Text that steers spelling and style (names, jargon) of the first 30 seconds.
    prompt: Option<String>,
    /// `json` (default), `text`, `srt`, `vtt` or `verbose_json`.
    response_format: Option<String>,
    /// 0 to 1; 0 (the default) decodes greedily with fallback to higher temperatures.
    temperature: Option<f64>,
    /// Sent as repeated `timestamp_granularities[]` fields, as the OpenAI SDKs do:
    /// `segment` (the default) and/or `word`, with `verbose_json` only. `word` adds a
    /// top-level `words` list (timed from the model's attention; one more decoder pass per
    /// 30 seconds of audio); asking for `word` alone leaves `segments` out, as OpenAI does.
    timestamp_granularities: Option<Vec<String>>,
}

#[derive(Serialize, ToSchema)]
pub struct TranscriptionJson {
    pub text: String,
}

#[derive(Serialize, ToSchema)]
pub struct VerboseSegment {
    pub id: usize,
    pub start: f64,
    pub end: f64,
    pub text: String,
}

/// A word of `verbose_json`, in OpenAI's shape: the word without its leading space.
#[derive(Serialize, ToSchema)]
pub struct VerboseWord {
    pub word: String,
    pub start: f64,
    pub end: f64,
}

#[derive(Serialize, ToSchema)]
pub struct TranscriptionVerbose {
    pub task: &'static str,
    pub language: String,
    pub duration: f64,
    pub text: String,
    /// Present unless only word timestamps were asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub segments: Option<Vec<VerboseSegment>>,
    /// Present when `timestamp_granularities[]=word` was asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub words: Option<Vec<VerboseWord>>,
}

/// The JSON answers: `json` or `verbose_json` (`text`, `srt` and `vtt` are plain text).
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
pub enum TranscriptionBody {
    Json(TranscriptionJson),
    Verbose(TranscriptionVerbose),
}

/// What `timestamp_granularities[]` asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Granularities {
    segments: bool,
    words: bool,
}

#[derive(Serialize, ToSchema)]
pub struct ModelView {
    pub id: &'static str,
    pub object: &'static str,
    pub created: i64,
    pub owned_by: &'static str,
}

#[derive(Serialize, ToSchema)]
pub struct ModelList {
    pub object: &'static str,
    pub data: Vec<ModelView>,
}

#[utoipa::path(get, path = "/v1/models", tag = "openai",
    responses((status = 200, body = ModelList), (status = 401, body = ErrorBody)))]
pub async fn models(principal: Principal) -> Result<Json<ModelList>, ApiError> {
    principal.require(Scope::Batch)?;
    Ok(Json(ModelList {
        object: "list",
        data: MODELS
            .iter()
            .map(|id| ModelView {
                id,
                object: "model",
                created: 0,
                owned_by: "hark",
            })
            .collect(),
    }))
}

#[utoipa::path(post, path = "/v1/audio/transcriptions", tag = "openai",
    request_body(content = TranscriptionForm, content_type = "multipart/form-data"),
    responses((status = 200, description = "The transcript in the requested format (text, srt and vtt as text/plain)", body = TranscriptionBody),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 413, body = ErrorBody),
        (status = 415, description = "Not audio (judged by content)", body = ErrorBody)))]
pub async fn transcriptions(
    State(state): State<AppState>,
    principal: Principal,
    multipart: Result<Multipart, MultipartRejection>,
) -> Result<Response, ApiError> {
    principal.require(Scope::Batch)?;
    crate::budgets::require_audio(&state, &principal).await?;
    let mut multipart = multipart.map_err(|r| ApiError::Rejected {
        status: r.status(),
        message: r.body_text(),
    })?;
    let limit = state.config.max_upload_bytes as u64;
    let mut file = None;
    let mut model = None;
    let mut language = None;
    let mut format = String::from("json");
    let mut temperature = None;
    let mut prompt = None;
    let mut granularities = Vec::new();
    while let Some(mut field) = multipart.next_field().await? {
        match field.name().unwrap_or_default() {
            "file" => {
                let received = receive_audio(&state.blobs, &mut field, limit).await?;
                if let Some(previous) = file.replace(received.writer) {
                    previous.abort().await;
                }
            }
            "model" => model = Some(read_text_field(&mut field).await?),
            "language" => {
                language = Some(read_text_field(&mut field).await?).filter(|l| !l.trim().is_empty())
            }
            "response_format" => format = read_text_field(&mut field).await?,
            "prompt" => prompt = Some(read_text_field(&mut field).await?),
            "temperature" => temperature = Some(read_text_field(&mut field).await?),
            "timestamp_granularities[]" | "timestamp_granularities" => {
                granularities.push(read_text_field(&mut field).await?)
            }
            _ => {}
        }
    }
    let Some(file) = file else {
        return Err(ApiError::bad_request(
            "file: a multipart field named `file` is required",
        ));
    };
    let checked = check_request(model.as_deref(), &format, temperature.as_deref())
        .and_then(|temperature| Ok((temperature, check_granularities(&granularities, &format)?)));
    let (temperature, granularities) = match checked {
        Ok(t) => t,
        Err(e) => {
            file.abort().await;
            return Err(e);
        }
    };
    let key = file.commit().await?;
    let audio = match state.blobs.local_copy(&key).await {
        Ok(audio) => audio,
        Err(e) => {
            let _ = state.blobs.delete(&key).await;
            return Err(e.into());
        }
    };
    let options = JobOptions {
        language,
        temperature,
        prompt: prompt.filter(|p| !p.trim().is_empty()),
        word_timestamps: granularities.words,
        ..JobOptions::default()
    };
    let result = state
        .pipeline
        .transcribe_now(audio.path().to_owned(), &options)
        .await;
    drop(audio);
    let _ = state.blobs.delete(&key).await;
    let transcript = result.map_err(|e| match e {
        SpeechError::Audio(message) => ApiError::bad_request(format!("file: {message}")),
        other => ApiError::Internal(other.to_string()),
    })?;
    if let Some(token_id) = principal.usage_token_id() {
        state.usage.add_audio(token_id, transcript.duration);
    }
    if let Some(holder) = principal.budget() {
        state.usage.spend(holder.token_id, transcript.duration);
    }
    let segments: Vec<Segment> = transcript.segments.iter().map(stored_segment).collect();
    let text = transcripts::plain_text(&segments);
    let plain = |content_type: &'static str, body: String| {
        ([(header::CONTENT_TYPE, content_type)], body).into_response()
    };
    Ok(match format.as_str() {
        "text" => plain("text/plain; charset=utf-8", text),
        "srt" => plain("text/plain; charset=utf-8", transcripts::srt(&segments)),
        "vtt" => plain("text/plain; charset=utf-8", transcripts::vtt(&segments)),
        "verbose_json" => Json(TranscriptionBody::Verbose(TranscriptionVerbose {
            task: "transcribe",
            language: transcript.language.clone(),
            duration: transcript.duration,
            text,
            words: granularities.words.then(|| {
                segments
                    .iter()
                    .flat_map(|s| &s.words)
                    .map(|w| VerboseWord {
                        word: w.word.trim().to_owned(),
                        start: w.start,
                        end: w.end,
                    })
                    .collect()
            }),
            segments: granularities.segments.then(|| {
                segments
                    .into_iter()
                    .enumerate()
                    .map(|(id, s)| VerboseSegment {
                        id,
                        start: s.start,
                        end: s.end,
                        text: s.text,
                    })
                    .collect()
            }),
        }))
        .into_response(),
        _ => Json(TranscriptionBody::Json(TranscriptionJson { text })).into_response(),
    })
}

/// Reads `timestamp_granularities[]`: none means segments; words need `verbose_json`,
/// the only format with room for them (OpenAI refuses them elsewhere too).
fn check_granularities(values: &[String], format: &str) -> Result<Granularities, ApiError> {
    let mut asked = Granularities {
        segments: values.is_empty(),
        words: false,
    };
    for value in values {
        match value.trim() {
            "segment" => asked.segments = true,
            "word" => asked.words = true,
            _ => {
                return Err(ApiError::bad_request(
                    "timestamp_granularities[]: use word and/or segment",
                ));
            }
        }
    }
    if asked.words && format != "verbose_json" {
        return Err(ApiError::bad_request(
            "timestamp_granularities[]: word timestamps need response_format=verbose_json",
        ));
    }
    Ok(asked)
}

fn check_request(
    model: Option<&str>,
    format: &str,
    temperature: Option<&str>,
) -> Result<Option<f64>, ApiError> {
    match model {
        None => return Err(ApiError::bad_request("model: required (use whisper-1)")),
        Some(m) if !MODELS.contains(&m.trim()) => {
            return Err(ApiError::bad_request(format!(
                "model: {m:?} is not available; use whisper-1"
            )));
        }
        Some(_) => {}
    }
    if !["json", "text", "srt", "vtt", "verbose_json"].contains(&format) {
        return Err(ApiError::bad_request(
            "response_format: use json, text, srt, vtt or verbose_json",
        ));
    }
    match temperature.map(|t| t.trim().parse::<f64>()) {
        None => Ok(None),
        Some(Ok(t)) if (0.0..=1.0).contains(&t) => Ok((t > 0.0).then_some(t)),
        Some(_) => Err(ApiError::bad_request("temperature: a number from 0 to 1")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn asked(values: &[&str], format: &str) -> Result<Granularities, ApiError> {
        let values: Vec<String> = values.iter().map(|v| (*v).to_owned()).collect();
        check_granularities(&values, format)
    }

    #[test]
    fn granularities_default_to_segments_and_words_need_verbose_json() {
        let only = |segments, words| Granularities { segments, words };
        assert_eq!(asked(&[], "json").ok(), Some(only(true, false)));
        assert_eq!(
            asked(&["word"], "verbose_json").ok(),
            Some(only(false, true))
        );
        assert_eq!(
            asked(&["segment", " word "], "verbose_json").ok(),
            Some(only(true, true))
        );
        assert_eq!(asked(&["segment"], "srt").ok(), Some(only(true, false)));
        assert!(asked(&["word"], "json").is_err());
        assert!(asked(&["letter"], "verbose_json").is_err());
    }
}
