//! Speechmatics' real-time messages as JSON, and hark's words in their result format.

use hark_speech::Word;
use hark_speech::stream_audio::{Encoding, StreamFormat};
use serde::Deserialize;
use serde_json::{Value, json};

/// What a client may send as text.
#[derive(Debug, Deserialize)]
#[serde(tag = "message")]
pub enum ClientMessage {
    StartRecognition {
        audio_format: AudioFormat,
        #[serde(default)]
        transcription_config: TranscriptionConfig,
    },
    /// `last_seq_no` is only a hint: everything received is finalised.
    EndOfStream {},
    /// Finalise now what has been heard (nothing to do: pauses finalise already).
    ForceEndOfUtterance {},
    /// Accepted; the settings of a running session stay as they started.
    SetRecognitionConfig {},
}

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum AudioFormat {
    Raw { encoding: String, sample_rate: u32 },
    File {},
}

impl AudioFormat {
    pub fn stream_format(&self) -> Result<StreamFormat, String> {
        match self {
            AudioFormat::File {} => Ok(StreamFormat::Wav),
            AudioFormat::Raw {
                encoding,
                sample_rate,
            } => {
                let encoding = match encoding.as_str() {
                    "pcm_s16le" => Encoding::PcmS16le,
                    "pcm_f32le" => Encoding::PcmF32le,
                    "mulaw" => Encoding::Mulaw,
                    other => {
                        return Err(format!(
                            "encoding {other:?} is not supported (pcm_s16le, pcm_f32le, mulaw)"
                        ));
                    }
                };
                Ok(StreamFormat::Raw {
                    encoding,
                    rate: *sample_rate,
                })
            }
        }
    }
}

/// The settings hark acts on; every other key (diarization, vocabularies, …) is accepted
/// and ignored, as the clients send many.
#[derive(Debug, Default, Deserialize)]
pub struct TranscriptionConfig {
    #[serde(default)]
    pub language: Option<String>,
    #[serde(default)]
    pub enable_partials: Option<bool>,
    #[serde(default)]
    pub max_delay: Option<f64>,
}

pub fn error(kind: &str, reason: &str) -> Value {
    json!({"message": "Error", "type": kind, "reason": reason})
}

pub fn warning(kind: &str, reason: &str) -> Value {
    json!({"message": "Warning", "type": kind, "reason": reason})
}

/// `AddTranscript` or `AddPartialTranscript`: words as `word` results, punctuation split
/// off as `punctuation` results attached to the word before, metadata spanning them all.
pub fn transcript(message: &str, words: &[Word], language: &str) -> Value {
    let (results, text) = results(
        words.iter().map(|w| TimedWord {
            text: &w.text,
            start: w.start,
            end: w.end,
            probability: w.probability,
        }),
        language,
    );
    let start = words.first().map_or(0.0, |w| w.start);
    let end = words.last().map_or(0.0, |w| w.end);
    json!({
        "message": message,
        "format": "2.9",
        "metadata": {"start_time": round(start), "end_time": round(end), "transcript": text},
        "results": results,
    })
}

/// One timed word as the engine spells it (leading space, punctuation attached).
pub(crate) struct TimedWord<'a> {
    pub text: &'a str,
    pub start: f64,
    pub end: f64,
    pub probability: f32,
}

/// Words as Speechmatics results (`word` items, trailing punctuation split off as
/// `punctuation` items attached to the word before) and the text they spell. Shared by the
/// real-time messages and the batch API's json-v2 transcripts.
pub(crate) fn results<'a>(
    words: impl IntoIterator<Item = TimedWord<'a>>,
    language: &str,
) -> (Vec<Value>, String) {
    let mut results = Vec::new();
    let mut text = String::new();
    for word in words {
        let trimmed = word.text.trim();
        let body = trimmed.trim_end_matches(is_punctuation);
        let marks = &trimmed[body.len()..];
        let confidence = f64::from(word.probability).clamp(0.0, 1.0);
        if !body.is_empty() {
            if !text.is_empty() {
                text.push(' ');
            }
            text.push_str(body);
            results.push(json!({
                "type": "word",
                "start_time": round(word.start),
                "end_time": round(word.end),
                "alternatives": [{"content": body, "confidence": confidence, "language": language}],
            }));
        }
        for mark in marks.chars() {
            text.push(mark);
            results.push(json!({
                "type": "punctuation",
                "start_time": round(word.end),
                "end_time": round(word.end),
                "attaches_to": "previous",
                "is_eos": matches!(mark, '.' | '?' | '!'),
                "alternatives": [{"content": mark.to_string(), "confidence": 1.0, "language": language}],
            }));
        }
    }
    (results, text)
}

fn is_punctuation(c: char) -> bool {
    matches!(c, '.' | ',' | '?' | '!' | ';' | ':')
}

/// Times to the millisecond, as Speechmatics sends them.
pub(crate) fn round(seconds: f64) -> f64 {
    (seconds * 1000.0).round() / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn word(text: &str, start: f64, end: f64) -> Word {
        Word {
            start,
            end,
            text: text.into(),
            probability: 0.9,
        }
    }

    #[test]
    fn punctuation_becomes_its_own_result() {
        let v = transcript(
            "AddTranscript",
            &[word(" Hello,", 0.1, 0.5), word(" world.", 0.6, 1.0)],
            "en",
        );
        assert_eq!(v["metadata"]["transcript"], "Hello, world.");
        let results = v["results"].as_array().unwrap();
        assert_eq!(results.len(), 4);
        assert_eq!(results[1]["type"], "punctuation");
        assert_eq!(results[3]["is_eos"], true);
        assert_eq!(results[2]["alternatives"][0]["content"], "world");
    }

    #[test]
    fn unknown_config_keys_are_ignored() {
        let m: ClientMessage = serde_json::from_str(
            r#"{"message":"StartRecognition","audio_format":{"type":"raw","encoding":"pcm_s16le","sample_rate":16000},
                "transcription_config":{"language":"en","operating_point":"enhanced","diarization":"none"}}"#,
        )
        .unwrap();
        assert!(matches!(m, ClientMessage::StartRecognition { .. }));
    }
}
