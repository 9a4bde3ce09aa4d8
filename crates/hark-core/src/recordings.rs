//! Recording lifecycle states, spelled as Speakr spells them.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::DomainError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum RecordingStatus {
    Pending,
    Processing,
    Summarizing,
    Completed,
    Failed,
}

impl RecordingStatus {
    pub const ALL: [RecordingStatus; 5] = [
        RecordingStatus::Pending,
        RecordingStatus::Processing,
        RecordingStatus::Summarizing,
        RecordingStatus::Completed,
        RecordingStatus::Failed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RecordingStatus::Pending => "PENDING",
            RecordingStatus::Processing => "PROCESSING",
            RecordingStatus::Summarizing => "SUMMARIZING",
            RecordingStatus::Completed => "COMPLETED",
            RecordingStatus::Failed => "FAILED",
        }
    }
}

impl fmt::Display for RecordingStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for RecordingStatus {
    type Err = DomainError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        RecordingStatus::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| DomainError::invalid("status", format!("unknown status {s:?}")))
    }
}

/// Titles are shown in lists; keep them to one readable line.
pub fn validate_title(title: &str) -> Result<String, DomainError> {
    let t = title.trim();
    if t.is_empty() || t.chars().count() > 200 || t.chars().any(char::is_control) {
        return Err(DomainError::invalid(
            "title",
            "must be 1 to 200 characters on one line",
        ));
    }
    Ok(t.to_owned())
}

/// Tag names are per user; colours are `#rrggbb`.
pub fn validate_tag(name: &str, color: Option<&str>) -> Result<(String, String), DomainError> {
    let n = name.trim();
    if n.is_empty() || n.chars().count() > 50 || n.chars().any(char::is_control) {
        return Err(DomainError::invalid("name", "must be 1 to 50 characters"));
    }
    let color = color.unwrap_or("#6b7280").trim();
    let valid_color = color.len() == 7
        && color.starts_with('#')
        && color[1..].bytes().all(|b| b.is_ascii_hexdigit());
    if !valid_color {
        return Err(DomainError::invalid("color", "must look like #1a2b3c"));
    }
    Ok((n.to_owned(), color.to_ascii_lowercase()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_round_trip() {
        for s in RecordingStatus::ALL {
            assert_eq!(s.as_str().parse::<RecordingStatus>().unwrap(), s);
        }
        assert!("done".parse::<RecordingStatus>().is_err());
    }

    #[test]
    fn titles_and_tags_are_validated() {
        assert_eq!(validate_title(" Weekly sync ").unwrap(), "Weekly sync");
        assert!(validate_title("").is_err());
        assert!(validate_title("a\nb").is_err());
        assert_eq!(
            validate_tag("work", Some("#ABCDEF")).unwrap(),
            ("work".into(), "#abcdef".into())
        );
        assert!(validate_tag("work", Some("red")).is_err());
        assert!(validate_tag("", None).is_err());
    }
}

/// One stretch of transcript, with times in seconds from the start of the audio.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Segment {
    pub start: f64,
    pub end: f64,
    pub text: String,
    /// Word timings where the engine made them; transcripts stored before words existed
    /// (and remote engines' ones) have none, so the field is optional both ways.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub words: Vec<Word>,
}

/// One timed word of a segment, in OpenAI's and faster-whisper's shape.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Word {
    /// The word with its leading space, as Whisper spells it.
    pub word: String,
    pub start: f64,
    pub end: f64,
    /// The mean probability of the word's tokens (0 to 1).
    #[serde(default)]
    pub probability: f32,
}
