//! Jobs and transcripts in the shapes Speechmatics' batch API serves: job details, json-v2
//! (word-level results from the engine's word timings), plain text and SubRip.

use hark_core::recordings::Segment;
use hark_core::transcripts;
use hark_store::jobs::{Job, JobStatus};
use hark_store::recordings::Recording;
use serde::Serialize;
use serde_json::{Value, json};
use time::OffsetDateTime;
use utoipa::ToSchema;

use super::messages::{self, TimedWord};
use crate::transcription::JobOptions;

/// Both text formats are `text/plain`: the client hands anything else back as JSON-less text.
pub const TEXT_PLAIN: &str = "text/plain; charset=utf-8";

#[derive(Serialize, ToSchema)]
pub struct JobDetails {
    pub id: String,
    /// `running`, `done`, `rejected` or `deleted`.
    pub status: &'static str,
    pub created_at: String,
    pub data_name: String,
    /// Seconds of audio (0 until it has been decoded).
    pub duration: u64,
    /// The config exactly as submitted (absent for jobs submitted through another API).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub config: Option<Value>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<JobError>,
}

#[derive(Serialize, ToSchema)]
pub struct JobError {
    pub message: String,
    pub timestamp: String,
}

#[derive(Serialize, ToSchema)]
pub struct JobEnvelope {
    pub job: JobDetails,
}

#[derive(Serialize, ToSchema)]
pub struct JobList {
    pub jobs: Vec<JobDetails>,
}

pub fn status_of(job: &Job) -> &'static str {
    match job.status {
        JobStatus::Queued | JobStatus::Running => "running",
        JobStatus::Done => "done",
        JobStatus::Failed => "rejected",
    }
}

fn options_of(job: &Job) -> JobOptions {
    serde_json::from_str(&job.options).unwrap_or_default()
}

pub fn details(job: &Job, data_name: &str, duration: Option<f64>) -> JobDetails {
    let errors = match (job.status, &job.error) {
        (JobStatus::Failed, Some(message)) => vec![JobError {
            message: message.clone(),
            timestamp: timestamp(job.updated_at),
        }],
        _ => Vec::new(),
    };
    JobDetails {
        id: job.id.to_string(),
        status: status_of(job),
        created_at: timestamp(job.created_at),
        data_name: data_name.to_owned(),
        duration: duration.map_or(0, |d| d.max(0.0).ceil() as u64),
        config: options_of(job).client_config.map(redacted),
        errors,
    }
}

/// The submitted config with the values of `notification_config`'s `auth_headers` hidden:
/// they are the receiver's credentials, and every key of the project reads this config.
fn redacted(mut config: Value) -> Value {
    let hide = |entry: &mut Value| {
        if let Some(headers) = entry.get_mut("auth_headers").and_then(Value::as_array_mut) {
            for header in headers {
                if let Some(line) = header.as_str() {
                    let name = line.split_once(':').map_or(line, |(name, _)| name);
                    *header = Value::String(format!("{name}: [redacted]"));
                }
            }
        }
    };
    match config.get_mut("notification_config") {
        Some(Value::Array(entries)) => entries.iter_mut().for_each(hide),
        Some(entry @ Value::Object(_)) => hide(entry),
        _ => {}
    }
    config
}

/// The json-v2 transcript of a finished job.
pub fn transcript_json(job: &Job, recording: &Recording, segments: &[Segment]) -> Value {
    let options = options_of(job);
    let language = recording
        .language
        .clone()
        .or_else(|| options.language.clone())
        .unwrap_or_else(|| "en".into());
    let transcription_config = options
        .client_config
        .as_ref()
        .and_then(|c| c.get("transcription_config"))
        .cloned()
        .unwrap_or_else(|| json!({"language": language}));
    let info = details(
        job,
        &recording.original_filename,
        recording.duration_seconds,
    );
    json_v2(
        json!({"id": info.id, "created_at": info.created_at, "data_name": info.data_name,
               "duration": info.duration}),
        recording.updated_at,
        transcription_config,
        &language,
        segments,
    )
}

/// The json-v2 version this shape follows.
const FORMAT: &str = "2.9";

/// `2026-01-31T12:00:00.123Z`, as Speechmatics writes times.
pub fn timestamp(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.millisecond()
    )
}

/// The json-v2 transcript. `job` is the transcript's job block (`id`, `created_at`,
/// `data_name`, `duration`); `transcription_config` the one submitted.
pub fn json_v2(
    job: Value,
    created_at: OffsetDateTime,
    transcription_config: Value,
    language: &str,
    segments: &[Segment],
) -> Value {
    let (results, _) = messages::results(timed_words(segments), language);
    json!({
        "format": FORMAT,
        "job": job,
        "metadata": {
            "created_at": timestamp(created_at),
            "type": "transcription",
            "transcription_config": transcription_config,
            "language_pack_info": {
                "language_description": language,
                "word_delimiter": " ",
                "writing_direction": "left-to-right",
                "itn": false,
                "adapted": false,
            },
        },
        "results": results,
    })
}

/// The engine's words with their own timings. A segment stored without words (a remote
/// engine's) becomes one item spanning the segment: its times are all that is known.
fn timed_words(segments: &[Segment]) -> impl Iterator<Item = TimedWord<'_>> {
    segments.iter().flat_map(|segment| {
        let whole = segment.words.is_empty().then(|| TimedWord {
            text: &segment.text,
            start: segment.start,
            end: segment.end,
            probability: 1.0,
        });
        let words = segment.words.iter().map(|w| TimedWord {
            text: &w.word,
            start: w.start,
            end: w.end,
            probability: w.probability,
        });
        whole.into_iter().chain(words)
    })
}

pub fn txt(segments: &[Segment]) -> String {
    let mut text = transcripts::plain_text(segments);
    if !text.is_empty() {
        text.push('\n');
    }
    text
}

pub fn srt(segments: &[Segment]) -> String {
    transcripts::srt(segments)
}

#[cfg(test)]
mod tests {
    use hark_core::recordings::Word;

    use super::*;

    fn word(text: &str, start: f64, end: f64) -> Word {
        Word {
            word: text.into(),
            start,
            end,
            probability: 0.75,
        }
    }

    #[test]
    fn words_keep_their_own_times_and_punctuation_is_its_own_item() {
        let segments = [Segment {
            start: 0.0,
            end: 2.0,
            text: " Hello there, world.".into(),
            words: vec![
                word(" Hello", 0.12, 0.4),
                word(" there,", 0.5, 0.61),
                word(" world.", 1.3, 1.9),
            ],
        }];
        let v = json_v2(
            json!({"id": "1"}),
            OffsetDateTime::UNIX_EPOCH,
            json!({"language": "en"}),
            "en",
            &segments,
        );
        assert_eq!(v["format"], "2.9");
        assert_eq!(v["metadata"]["created_at"], "1970-01-01T00:00:00.000Z");
        let results = v["results"].as_array().unwrap();
        let kinds: Vec<&str> = results
            .iter()
            .map(|r| r["type"].as_str().unwrap())
            .collect();
        assert_eq!(
            kinds,
            ["word", "word", "punctuation", "word", "punctuation"]
        );
        assert_eq!(results[3]["start_time"], 1.3);
        assert_eq!(results[3]["alternatives"][0]["content"], "world");
        assert_eq!(results[3]["alternatives"][0]["confidence"], 0.75);
        assert_eq!(results[3]["alternatives"][0]["language"], "en");
        assert_eq!(results[2]["attaches_to"], "previous");
    }

    #[test]
    fn segments_without_words_are_one_item_each() {
        let segments = [Segment {
            start: 1.0,
            end: 3.0,
            text: " Two words.".into(),
            words: Vec::new(),
        }];
        let v = json_v2(
            json!({}),
            OffsetDateTime::UNIX_EPOCH,
            json!({}),
            "en",
            &segments,
        );
        assert_eq!(v["results"][0]["alternatives"][0]["content"], "Two words");
        assert_eq!(v["results"][0]["end_time"], 3.0);
        assert_eq!(txt(&segments), "Two words.\n");
    }
}
