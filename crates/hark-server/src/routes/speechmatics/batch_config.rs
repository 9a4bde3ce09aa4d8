//! The `config` of a Speechmatics batch job: checked and read into what hark acts on,
//! while the JSON itself is kept exactly as submitted (the job echoes it back).

use axum::http::{HeaderName, HeaderValue};
use serde_json::Value;

use crate::error::ApiError;

/// Whisper's languages (the codes its tokenizer knows), which a multilingual model or a
/// Whisper-based remote engine can be asked for.
const WHISPER_LANGUAGES: [&str; 100] = [
    "en", "zh", "de", "es", "ru", "ko", "fr", "ja", "pt", "tr", "pl", "ca", "nl", "ar", "sv", "it",
    "id", "hi", "fi", "vi", "he", "uk", "el", "ms", "cs", "ro", "da", "hu", "ta", "no", "th", "ur",
    "hr", "bg", "lt", "la", "mi", "ml", "cy", "sk", "te", "fa", "lv", "bn", "sr", "az", "sl", "kn",
    "et", "mk", "br", "eu", "is", "hy", "ne", "mn", "bs", "kk", "sq", "sw", "gl", "mr", "pa", "si",
    "km", "sn", "yo", "so", "af", "oc", "ka", "be", "tg", "sd", "gu", "am", "yi", "lo", "uz", "fo",
    "ht", "ps", "tk", "nn", "mt", "sa", "lb", "my", "bo", "tl", "mg", "as", "tt", "haw", "ln",
    "ha", "ba", "jw", "su", "yue",
];

/// The notification contents hark can render.
pub const CONTENTS: [&str; 5] = [
    "jobinfo",
    "transcript",
    "transcript.json-v2",
    "transcript.txt",
    "transcript.srt",
];

/// Headers a notification's `auth_headers` may not set: hark's own, the signatures and
/// those that frame the request.
const RESERVED_HEADERS: [&str; 8] = [
    "content-type",
    "content-length",
    "host",
    "transfer-encoding",
    "connection",
    "x-hark-event",
    "x-hark-delivery",
    "x-hub-signature",
];

/// A submitted job config, checked.
#[derive(Debug)]
pub struct JobConfig {
    /// Exactly what was submitted.
    pub raw: Value,
    /// `transcription_config.language`, `None` for `auto` (the engine detects it).
    pub language: Option<String>,
    /// `fetch_data.url`, still to go through the outbound guard.
    pub fetch_url: Option<String>,
    /// `tracking.title`.
    pub title: Option<String>,
    pub notification: Option<Notification>,
}

/// One `notification_config` entry.
#[derive(Debug, PartialEq)]
pub struct Notification {
    pub url: String,
    /// `post` or `put`.
    pub method: String,
    pub contents: Vec<String>,
    pub auth_headers: Vec<String>,
}

fn bad(message: impl Into<String>) -> ApiError {
    ApiError::bad_request(message)
}

/// Reads the `config` form field: a JSON object with `type: "transcription"` and a
/// `transcription_config` naming a `language`.
pub fn parse(text: &str) -> Result<JobConfig, ApiError> {
    let raw: Value =
        serde_json::from_str(text).map_err(|e| bad(format!("config: not valid JSON ({e})")))?;
    let object = raw
        .as_object()
        .ok_or_else(|| bad("config: must be a JSON object"))?;
    match object.get("type").and_then(Value::as_str) {
        Some("transcription") => {}
        Some(other) => {
            return Err(bad(format!(
                "config.type: {other:?} jobs are not supported (only \"transcription\")"
            )));
        }
        None => return Err(bad("config.type: required (\"transcription\")")),
    }
    let transcription = object
        .get("transcription_config")
        .and_then(Value::as_object)
        .ok_or_else(|| bad("config.transcription_config: required (an object)"))?;
    let language = transcription
        .get("language")
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .ok_or_else(|| bad("config.transcription_config.language: required, e.g. \"en\""))?;
    let language = (language != "auto").then(|| language.to_owned());
    let fetch_url = match object.get("fetch_data") {
        None | Some(Value::Null) => None,
        Some(Value::Object(fetch)) => {
            if fetch.get("auth_headers").is_some_and(|h| !h.is_null()) {
                return Err(bad(
                    "config.fetch_data.auth_headers: not supported; use a URL that needs no headers",
                ));
            }
            Some(
                fetch
                    .get("url")
                    .and_then(Value::as_str)
                    .ok_or_else(|| bad("config.fetch_data.url: required"))?
                    .to_owned(),
            )
        }
        Some(_) => return Err(bad("config.fetch_data: must be an object with a url")),
    };
    let title = object
        .get("tracking")
        .and_then(|t| t.get("title"))
        .and_then(Value::as_str)
        .map(str::to_owned);
    let notification = match object.get("notification_config") {
        None | Some(Value::Null) => None,
        Some(Value::Array(entries)) => match entries.as_slice() {
            [] => None,
            [entry] => Some(notification(entry)?),
            _ => {
                return Err(bad(
                    "config.notification_config: hark sends one notification per job; list one",
                ));
            }
        },
        Some(_) => return Err(bad("config.notification_config: must be a list")),
    };
    Ok(JobConfig {
        raw,
        language,
        fetch_url,
        title,
        notification,
    })
}

fn notification(entry: &Value) -> Result<Notification, ApiError> {
    let url = entry
        .get("url")
        .and_then(Value::as_str)
        .ok_or_else(|| bad("config.notification_config.url: required"))?
        .to_owned();
    let method = match entry.get("method") {
        None | Some(Value::Null) => "post".to_owned(),
        Some(Value::String(m)) if m.eq_ignore_ascii_case("post") => "post".to_owned(),
        Some(Value::String(m)) if m.eq_ignore_ascii_case("put") => "put".to_owned(),
        Some(_) => return Err(bad("config.notification_config.method: post or put")),
    };
    let contents = strings(entry.get("contents"), "contents")?;
    if let Some(unknown) = contents.iter().find(|c| !CONTENTS.contains(&c.as_str())) {
        return Err(bad(format!(
            "config.notification_config.contents: {unknown:?} is not available (hark sends {})",
            CONTENTS.join(", ")
        )));
    }
    let auth_headers = strings(entry.get("auth_headers"), "auth_headers")?;
    for line in &auth_headers {
        check_header(line)?;
    }
    Ok(Notification {
        url,
        method,
        contents,
        auth_headers,
    })
}

fn strings(value: Option<&Value>, field: &str) -> Result<Vec<String>, ApiError> {
    match value {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .iter()
            .map(|item| {
                item.as_str().map(str::to_owned).ok_or_else(|| {
                    bad(format!(
                        "config.notification_config.{field}: a list of strings"
                    ))
                })
            })
            .collect(),
        Some(_) => Err(bad(format!(
            "config.notification_config.{field}: a list of strings"
        ))),
    }
}

/// `Name: value`, a valid header that hark does not set itself.
fn check_header(line: &str) -> Result<(), ApiError> {
    let invalid =
        || bad("config.notification_config.auth_headers: each entry is \"Name: value\"".to_owned());
    let (name, value) = line.split_once(':').ok_or_else(invalid)?;
    let name = HeaderName::from_bytes(name.trim().as_bytes()).map_err(|_| invalid())?;
    HeaderValue::from_str(value.trim()).map_err(|_| invalid())?;
    if RESERVED_HEADERS.contains(&name.as_str()) || name.as_str().starts_with("x-hark-") {
        return Err(bad(format!(
            "config.notification_config.auth_headers: {name} is set by hark"
        )));
    }
    Ok(())
}

/// Refuses a language the server cannot transcribe: an English-only model takes `en`
/// alone, anything else Whisper's languages. `english_only` is `None` when the engine
/// is not known (a remote engine, or a model that has not loaded).
pub fn check_language(language: &str, english_only: Option<bool>) -> Result<(), ApiError> {
    let base = language.split(['-', '_']).next().unwrap_or(language);
    let base = base.to_ascii_lowercase();
    let known = if english_only == Some(true) {
        base == "en"
    } else {
        WHISPER_LANGUAGES.contains(&base.as_str())
    };
    if known {
        Ok(())
    } else if english_only == Some(true) {
        Err(bad(format!(
            "config.transcription_config.language: {language:?} is not available; this server's model transcribes English (en) only"
        )))
    } else {
        Err(bad(format!(
            "config.transcription_config.language: {language:?} is not a language hark transcribes"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_config_is_read_and_kept_as_sent() {
        let text = r#"{"type":"transcription","transcription_config":{"language":"en","operating_point":"enhanced"},
            "tracking":{"title":"call"},
            "notification_config":[{"url":"https://example.com/hook","contents":["transcript.txt"],"method":"put",
                                    "auth_headers":["Authorization: Bearer x"]}]}"#;
        let config = parse(text).unwrap();
        assert_eq!(config.raw, serde_json::from_str::<Value>(text).unwrap());
        assert_eq!(config.language.as_deref(), Some("en"));
        assert_eq!(config.title.as_deref(), Some("call"));
        assert_eq!(
            config.notification,
            Some(Notification {
                url: "https://example.com/hook".into(),
                method: "put".into(),
                contents: vec!["transcript.txt".into()],
                auth_headers: vec!["Authorization: Bearer x".into()],
            })
        );
    }

    #[test]
    fn bad_configs_are_refused() {
        for text in [
            "not json",
            "[]",
            r#"{"transcription_config":{"language":"en"}}"#,
            r#"{"type":"alignment","alignment_config":{"language":"en"}}"#,
            r#"{"type":"transcription"}"#,
            r#"{"type":"transcription","transcription_config":{}}"#,
            r#"{"type":"transcription","transcription_config":{"language":"en"},"fetch_data":{}}"#,
            r#"{"type":"transcription","transcription_config":{"language":"en"},
                "notification_config":[{"url":"https://e.com","contents":["data"]}]}"#,
            r#"{"type":"transcription","transcription_config":{"language":"en"},
                "notification_config":[{"url":"https://e.com","auth_headers":["X-Hub-Signature: forged"]}]}"#,
            r#"{"type":"transcription","transcription_config":{"language":"en"},
                "notification_config":[{"url":"https://e.com","method":"get"}]}"#,
        ] {
            assert!(parse(text).is_err(), "{text}");
        }
    }

    #[test]
    fn languages_follow_the_model() {
        assert!(check_language("en", Some(true)).is_ok());
        assert!(check_language("en-US", Some(true)).is_ok());
        assert!(check_language("de", Some(true)).is_err());
        assert!(check_language("de", Some(false)).is_ok());
        assert!(check_language("de", None).is_ok());
        assert!(check_language("xx", None).is_err());
        assert!(
            parse(r#"{"type":"transcription","transcription_config":{"language":"auto"}}"#)
                .unwrap()
                .language
                .is_none()
        );
    }
}
