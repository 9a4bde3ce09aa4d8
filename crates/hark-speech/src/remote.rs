//! A remote engine: any OpenAI-compatible transcription server (another hark, a
//! faster-whisper server, OpenAI itself behind a TLS-terminating proxy) does the work.

use std::fmt;
use std::path::Path;

use serde::Deserialize;

use crate::SpeechError;
use crate::engine::{Segment, Transcript};

pub struct RemoteEngine {
    client: reqwest::Client,
    /// Base URL up to and including `/v1`.
    base: String,
    key: String,
    model: String,
}

/// Never shows the key.
impl fmt::Debug for RemoteEngine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RemoteEngine")
            .field("base", &self.base)
            .field("model", &self.model)
            .finish()
    }
}

#[derive(Deserialize)]
struct Verbose {
    #[serde(default)]
    language: Option<String>,
    #[serde(default)]
    duration: Option<f64>,
    text: String,
    #[serde(default)]
    segments: Vec<RemoteSegment>,
}

#[derive(Deserialize)]
struct RemoteSegment {
    start: f64,
    end: f64,
    text: String,
}

impl RemoteEngine {
    pub fn new(base_url: &str, key: &str, model: &str) -> Result<Self, SpeechError> {
        let base = base_url.trim_end_matches('/').to_owned();
        if !base.starts_with("http://") {
            return Err(SpeechError::Model(format!(
                "remote engine URL {base:?} must start with http:// (terminate TLS in front of hark)"
            )));
        }
        let client = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(3600))
            .build()
            .map_err(|e| SpeechError::Model(format!("remote engine client: {e}")))?;
        Ok(RemoteEngine {
            client,
            base,
            key: key.to_owned(),
            model: model.to_owned(),
        })
    }

    pub async fn transcribe(
        &self,
        path: &Path,
        language: Option<&str>,
    ) -> Result<Transcript, SpeechError> {
        let bytes = tokio::fs::read(path)
            .await
            .map_err(|e| SpeechError::Audio(format!("cannot read the audio file: {e}")))?;
        let name = path
            .file_name()
            .map_or("audio".into(), |n| n.to_string_lossy().into_owned());
        let mut form = reqwest::multipart::Form::new()
            .part(
                "file",
                reqwest::multipart::Part::bytes(bytes).file_name(name),
            )
            .text("model", self.model.clone())
            .text("response_format", "verbose_json");
        if let Some(language) = language {
            form = form.text("language", language.to_owned());
        }
        let response = self
            .client
            .post(format!("{}/audio/transcriptions", self.base))
            .bearer_auth(&self.key)
            .multipart(form)
            .send()
            .await
            .map_err(|e| {
                SpeechError::Remote(format!(
                    "the remote engine cannot be reached: {}",
                    e.without_url()
                ))
            })?;
        let status = response.status();
        if !status.is_success() {
            let body: serde_json::Value = response.json().await.unwrap_or_default();
            let message = body["error"]["message"]
                .as_str()
                .unwrap_or("no details")
                .to_owned();
            return Err(if status == reqwest::StatusCode::BAD_REQUEST {
                SpeechError::Audio(message)
            } else {
                SpeechError::Remote(format!("the remote engine answered {status}: {message}"))
            });
        }
        let verbose: Verbose = response.json().await.map_err(|e| {
            SpeechError::Remote(format!(
                "the remote engine's answer is not verbose_json: {e}"
            ))
        })?;
        let duration = verbose
            .duration
            .unwrap_or_else(|| verbose.segments.last().map_or(0.0, |s| s.end));
        let mut segments: Vec<Segment> = verbose
            .segments
            .into_iter()
            .map(|s| Segment {
                start: s.start,
                end: s.end,
                text: s.text,
                words: Vec::new(),
            })
            .collect();
        if segments.is_empty() && !verbose.text.trim().is_empty() {
            segments.push(Segment {
                start: 0.0,
                end: duration,
                text: verbose.text,
                words: Vec::new(),
            });
        }
        Ok(Transcript {
            segments,
            duration,
            language: verbose
                .language
                .unwrap_or_else(|| language.unwrap_or("en").to_owned()),
        })
    }
}
