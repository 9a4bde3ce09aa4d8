//! Transcript renderings: plain text, SubRip (SRT) and WebVTT.

use std::fmt::Write;

use crate::recordings::Segment;

/// The segments' text joined by single spaces.
pub fn plain_text(segments: &[Segment]) -> String {
    segments
        .iter()
        .map(|s| s.text.trim())
        .filter(|t| !t.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

pub fn srt(segments: &[Segment]) -> String {
    let mut out = String::new();
    for (i, s) in segments.iter().enumerate() {
        let _ = write!(
            out,
            "{}\n{} --> {}\n{}\n\n",
            i + 1,
            timestamp(s.start, ','),
            timestamp(s.end, ','),
            s.text.trim()
        );
    }
    out
}

pub fn vtt(segments: &[Segment]) -> String {
    let mut out = String::from("WEBVTT\n\n");
    for s in segments {
        let _ = write!(
            out,
            "{} --> {}\n{}\n\n",
            timestamp(s.start, '.'),
            timestamp(s.end, '.'),
            s.text.trim()
        );
    }
    out
}

/// `HH:MM:SS,mmm` (SRT) or `HH:MM:SS.mmm` (WebVTT).
fn timestamp(seconds: f64, separator: char) -> String {
    let total_ms = (seconds.max(0.0) * 1000.0).round() as u64;
    let (h, rest) = (total_ms / 3_600_000, total_ms % 3_600_000);
    let (m, rest) = (rest / 60_000, rest % 60_000);
    let (s, ms) = (rest / 1000, rest % 1000);
    format!("{h:02}:{m:02}:{s:02}{separator}{ms:03}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn segments() -> Vec<Segment> {
        vec![
            Segment {
                start: 0.0,
                end: 2.5,
                text: " Hello there.".into(),
                words: Vec::new(),
            },
            Segment {
                start: 3661.0,
                end: 3662.042,
                text: " Bye.".into(),
                words: Vec::new(),
            },
        ]
    }

    #[test]
    fn renders_every_format() {
        assert_eq!(plain_text(&segments()), "Hello there. Bye.");
        assert_eq!(
            srt(&segments()),
            "1\n00:00:00,000 --> 00:00:02,500\nHello there.\n\n2\n01:01:01,000 --> 01:01:02,042\nBye.\n\n"
        );
        assert!(
            vtt(&segments()).starts_with("WEBVTT\n\n00:00:00.000 --> 00:00:02.500\nHello there.\n")
        );
    }
}
