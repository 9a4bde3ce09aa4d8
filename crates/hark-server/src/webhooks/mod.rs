//! Webhooks: telling receivers that a transcription ended.
//!
//! Two kinds of receiver: a per-job callback (Speakr/Scriptix `callback_url`, Fireflies'
//! `uploadAudio.input.webhook`, Speechmatics' `notification_config`), spoken in the dialect
//! that took the job, and the owner's registered webhooks (`/api/webhooks`), which get
//! hark's own JSON. When a job ends every request it owes is rendered and stored in one go
//! ([`job_ended`], in the transaction that marks the job announced); [`delivery`] sends
//! them, signed, retrying with backoff, and announces jobs a stopped server left unannounced.
//! Token events ([`token_event`]) go to the token owner's webhooks the same way.

pub mod delivery;

use hark_core::recordings::RecordingStatus;
use hark_store::jobs::Job;
use hark_store::recordings::Recording;
use hark_store::tokens::TokenRecord;
use hark_store::webhooks::NewDelivery;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::state::AppState;
use crate::transcription::JobOptions;

pub const COMPLETED: &str = "transcription.completed";
pub const FAILED: &str = "transcription.failed";
/// A token was used from an address new to it.
pub const TOKEN_NEW_IP: &str = "token.new_ip";
/// A token was reported found in public and revoked.
pub const TOKEN_REVOKED_BY_VALUE: &str = "token.revoked_by_value";
/// A token expires within 7 days (sent once per token).
pub const TOKEN_EXPIRING: &str = "token.expiring";
/// Every event a webhook can be sent.
pub const EVENTS: [&str; 5] = [
    COMPLETED,
    FAILED,
    TOKEN_NEW_IP,
    TOKEN_REVOKED_BY_VALUE,
    TOKEN_EXPIRING,
];
/// How long finished deliveries stay listed (their bodies hold transcripts).
pub const KEEP_DELIVERIES: time::Duration = time::Duration::days(30);

/// Where to report one job's end, and how.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Callback {
    pub url: String,
    #[serde(flatten)]
    pub style: CallbackStyle,
}

/// The dialect a callback is spoken in: the one of the API that took the job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "dialect", rename_all = "lowercase")]
pub enum CallbackStyle {
    /// hark's own event (the same body registered webhooks get).
    Hark,
    /// `{meetingId, eventType, clientReferenceId}`.
    Fireflies {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        client_reference_id: Option<String>,
    },
    /// `?id=…&status=success|error` with the requested contents as the body.
    Speechmatics {
        /// `post` or `put`.
        method: String,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        contents: Vec<String>,
        /// `Name: value` lines the receiver wants sent.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        auth_headers: Vec<String>,
    },
}

impl Callback {
    pub fn hark(url: url::Url) -> Self {
        Callback {
            url: url.to_string(),
            style: CallbackStyle::Hark,
        }
    }
}

/// A request to send, before signing.
pub struct Rendered {
    pub url: String,
    pub method: String,
    pub headers: Vec<(String, String)>,
    pub content_type: String,
    pub body: Vec<u8>,
}

impl Rendered {
    /// A JSON POST.
    pub fn json(url: &str, body: &impl Serialize) -> Self {
        Rendered {
            url: url.to_owned(),
            method: "POST".into(),
            headers: Vec::new(),
            content_type: "application/json".into(),
            body: serde_json::to_vec(body).unwrap_or_default(),
        }
    }
}

/// hark's event body.
#[derive(Serialize)]
struct HarkEvent<'a> {
    event: &'a str,
    #[serde(with = "time::serde::rfc3339")]
    occurred_at: OffsetDateTime,
    job_id: i64,
    recording: RecordingSummary<'a>,
}

#[derive(Serialize)]
struct RecordingSummary<'a> {
    id: i64,
    title: &'a str,
    status: &'a str,
    project_id: i64,
    duration_seconds: Option<f64>,
    language: Option<&'a str>,
    error: Option<&'a str>,
    /// Where to read the transcript (with a credential).
    transcript_path: String,
}

fn hark_event(url: &str, event: &str, job: &Job, recording: &Recording) -> Rendered {
    Rendered::json(
        url,
        &HarkEvent {
            event,
            occurred_at: OffsetDateTime::now_utc(),
            job_id: job.id,
            recording: RecordingSummary {
                id: recording.id,
                title: &recording.title,
                status: recording.status.as_str(),
                project_id: recording.project_id,
                duration_seconds: recording.duration_seconds,
                language: recording.language.as_deref(),
                error: recording.error.as_deref(),
                transcript_path: format!("/api/recordings/{}/transcript", recording.id),
            },
        },
    )
}

/// Stores every request the end of job `job_id` owes (its callback, the owner's webhooks
/// for the event) and wakes the sender — once per job, however often it is called. Failing
/// to queue is logged, never fatal: the transcript is safe, and the sender's sweep of
/// unannounced jobs tries again.
pub async fn job_ended(state: &AppState, job_id: i64) {
    if let Err(e) = queue_for(state, job_id).await {
        tracing::error!(job = job_id, error = %e, "could not queue the job's webhooks");
    }
}

async fn queue_for(state: &AppState, job_id: i64) -> Result<(), hark_store::StoreError> {
    let job = state.store.jobs().get(job_id).await?;
    let recording = state.store.recordings().by_id(job.recording_id).await?;
    let event = match recording.status {
        RecordingStatus::Completed => COMPLETED,
        RecordingStatus::Failed => FAILED,
        // Not finished after all: nothing to say (and nothing for the sweep to find again).
        _ => {
            state.store.webhooks().announce_job(job_id, &[]).await?;
            return Ok(());
        }
    };
    let options: JobOptions = serde_json::from_str(&job.options).unwrap_or_default();
    let mut owed = Vec::new();
    if let Some(callback) = &options.callback {
        let rendered = match &callback.style {
            CallbackStyle::Hark => hark_event(&callback.url, event, &job, &recording),
            CallbackStyle::Fireflies {
                client_reference_id,
            } => crate::routes::fireflies::webhook(
                &callback.url,
                event,
                &recording,
                client_reference_id.as_deref(),
            ),
            CallbackStyle::Speechmatics {
                method,
                contents,
                auth_headers,
            } => {
                crate::routes::speechmatics::batch::notification(
                    state,
                    &callback.url,
                    method,
                    contents,
                    auth_headers,
                    &job,
                    &recording,
                )
                .await
            }
        };
        owed.push(new_delivery(&recording, None, event, rendered));
    }
    for hook in state.store.webhooks().list(recording.user_id).await? {
        if hook.events.iter().any(|e| e == event) {
            let rendered = hark_event(&hook.url, event, &job, &recording);
            owed.push(new_delivery(&recording, Some(hook.id), event, rendered));
        }
    }
    if state.store.webhooks().announce_job(job_id, &owed).await? && !owed.is_empty() {
        state.webhooks.wake();
    }
    Ok(())
}

/// hark's body for an event about a token: never its secret, only what names it.
#[derive(Serialize)]
struct TokenEvent<'a> {
    event: &'a str,
    #[serde(with = "time::serde::rfc3339")]
    occurred_at: OffsetDateTime,
    token: TokenSummary<'a>,
    details: serde_json::Value,
}

#[derive(Serialize)]
struct TokenSummary<'a> {
    id: i64,
    name: &'a str,
    kind: &'static str,
    hint: &'a str,
}

/// Queues `event` about `token` for each of its owner's webhooks that asked for it.
/// Failing to queue is logged: the audit log holds the event either way.
pub async fn token_event(
    state: &AppState,
    token: &TokenRecord,
    event: &str,
    details: serde_json::Value,
) {
    let queued = async {
        let hooks = state.store.webhooks().list(token.user_id).await?;
        let owed: Vec<NewDelivery> = hooks
            .iter()
            .filter(|hook| hook.events.iter().any(|e| e == event))
            .map(|hook| {
                let rendered = Rendered::json(
                    &hook.url,
                    &TokenEvent {
                        event,
                        occurred_at: OffsetDateTime::now_utc(),
                        token: TokenSummary {
                            id: token.id,
                            name: &token.name,
                            kind: token.kind.as_str(),
                            hint: &token.hint,
                        },
                        details: details.clone(),
                    },
                );
                NewDelivery {
                    user_id: token.user_id,
                    webhook_id: Some(hook.id),
                    recording_id: None,
                    event: event.to_owned(),
                    url: rendered.url,
                    method: rendered.method,
                    headers: rendered.headers,
                    content_type: rendered.content_type,
                    body: rendered.body,
                }
            })
            .collect();
        if !owed.is_empty() {
            state.store.webhooks().queue(&owed).await?;
            state.webhooks.wake();
        }
        Ok::<(), hark_store::StoreError>(())
    };
    if let Err(e) = queued.await {
        tracing::error!(token_id = token.id, event, error = %e, "could not queue the token event's webhooks");
    }
}

fn new_delivery(
    recording: &Recording,
    webhook_id: Option<i64>,
    event: &str,
    rendered: Rendered,
) -> NewDelivery {
    NewDelivery {
        user_id: recording.user_id,
        webhook_id,
        recording_id: Some(recording.id),
        event: event.to_owned(),
        url: rendered.url,
        method: rendered.method,
        headers: rendered.headers,
        content_type: rendered.content_type,
        body: rendered.body,
    }
}
