//! Speechmatics' `notification_config`: the request a job owes its receiver when it ends.

use hark_core::recordings::RecordingStatus;
use hark_store::jobs::Job;
use hark_store::recordings::Recording;

use super::batch_format::{self, JobEnvelope, TEXT_PLAIN, details, transcript_json};
use crate::state::AppState;
use crate::webhooks::Rendered;

/// The request a job's `notification_config` asks for when the job ends: the URL with
/// `id` and `status` added, the requested method and headers, and the `contents` as the
/// body — nothing for none, the item itself for one (with its content type), named file
/// parts of a `multipart/form-data` body for several. Items a failed job does not have
/// (its transcript) are left out, the body keeping the shape asked for.
pub async fn notification(
    state: &AppState,
    url: &str,
    method: &str,
    contents: &[String],
    auth_headers: &[String],
    job: &Job,
    recording: &Recording,
) -> Rendered {
    let status = if recording.status == RecordingStatus::Completed {
        "success"
    } else {
        "error"
    };
    let url = match url::Url::parse(url) {
        Ok(mut parsed) => {
            parsed
                .query_pairs_mut()
                .append_pair("id", &job.id.to_string())
                .append_pair("status", status);
            parsed.to_string()
        }
        Err(_) => url.to_owned(),
    };
    let headers = auth_headers
        .iter()
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_owned(), value.trim().to_owned()))
        .collect();
    let parts = notification_parts(state, contents, job, recording).await;
    let (content_type, body) = match (contents.len(), parts.as_slice()) {
        (1, [part]) => (part.content_type.clone(), part.body.clone()),
        (0 | 1, _) => (TEXT_PLAIN.to_owned(), Vec::new()),
        _ => multipart(&parts),
    };
    Rendered {
        url,
        method: method.to_ascii_uppercase(),
        headers,
        content_type,
        body,
    }
}

async fn notification_parts(
    state: &AppState,
    contents: &[String],
    job: &Job,
    recording: &Recording,
) -> Vec<Part> {
    let segments = if recording.status == RecordingStatus::Completed {
        match state
            .store
            .recordings()
            .transcript(recording.user_id, recording.id)
            .await
        {
            Ok(segments) => segments,
            Err(e) => {
                tracing::warn!(job = job.id, error = %e, "the transcript could not be read for a notification");
                None
            }
        }
    } else {
        None
    };
    let mut parts = Vec::new();
    for item in contents {
        let rendered = match (item.as_str(), &segments) {
            ("jobinfo", _) => {
                let info = details(
                    job,
                    &recording.original_filename,
                    recording.duration_seconds,
                );
                Some((
                    "application/json",
                    "json",
                    serde_json::to_vec(&JobEnvelope { job: info }).unwrap_or_default(),
                ))
            }
            ("transcript" | "transcript.json-v2", Some(segments)) => Some((
                "application/json",
                "json",
                serde_json::to_vec(&transcript_json(job, recording, segments)).unwrap_or_default(),
            )),
            ("transcript.txt", Some(segments)) => {
                Some((TEXT_PLAIN, "txt", batch_format::txt(segments).into_bytes()))
            }
            ("transcript.srt", Some(segments)) => {
                Some((TEXT_PLAIN, "srt", batch_format::srt(segments).into_bytes()))
            }
            _ => None,
        };
        if let Some((content_type, extension, body)) = rendered {
            parts.push(Part {
                name: item.clone(),
                filename: format!("{}.{extension}", job.id),
                content_type: content_type.to_owned(),
                body,
            });
        }
    }
    parts
}

/// One item of a notification body.
pub struct Part {
    /// The `contents` item it answers (the part's name).
    pub name: String,
    pub filename: String,
    pub content_type: String,
    pub body: Vec<u8>,
}

/// Several items as `multipart/form-data`, each a named file: the content type and body.
pub fn multipart(parts: &[Part]) -> (String, Vec<u8>) {
    let boundary = format!("hark-{}", hark_core::tokens::random_base62(24));
    let mut body = Vec::new();
    for part in parts {
        body.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"{}\"; filename=\"{}\"\r\nContent-Type: {}\r\n\r\n",
                part.name, part.filename, part.content_type
            )
            .as_bytes(),
        );
        body.extend_from_slice(&part.body);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn several_items_are_named_files() {
        let (content_type, body) = multipart(&[
            Part {
                name: "transcript.txt".into(),
                filename: "7.txt".into(),
                content_type: TEXT_PLAIN.into(),
                body: b"hi".to_vec(),
            },
            Part {
                name: "jobinfo".into(),
                filename: "7.json".into(),
                content_type: "application/json".into(),
                body: b"{}".to_vec(),
            },
        ]);
        let boundary = content_type.split("boundary=").nth(1).unwrap();
        let text = String::from_utf8(body).unwrap();
        assert!(text.starts_with(&format!("--{boundary}\r\n")));
        assert!(text.contains("name=\"transcript.txt\"; filename=\"7.txt\""));
        assert!(text.ends_with(&format!("--{boundary}--\r\n")));
    }
}
