//! OpenAI's Realtime API, transcription sessions (`/v1/realtime?intent=transcription`), so
//! the official `openai` SDK's `client.realtime.connect(...)` streams to hark with a hark
//! realtime key. Each utterance is a conversation item: its final words arrive as
//! `…input_audio_transcription.delta` events and the whole text as `.completed`.

use axum::extract::State;
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::http::{HeaderMap, Uri};
use axum::response::Response;
use base64::Engine as _;
use hark_core::tokens::random_base62;
use hark_speech::stream_audio::{Encoding, StreamDecoder, StreamFormat};
use hark_speech::streaming::StreamSettings;
use serde_json::{Value, json};

use crate::auth::{Caller, Principal};
use crate::state::AppState;
use crate::streams::{self, CredentialWatch, Ending, LiveStream, StreamEvent};

/// OpenAI's default input: 16-bit PCM at 24 kHz.
const DEFAULT_RATE: u32 = 24_000;
/// Policy violation: what OpenAI-compatible servers close with after a refused session.
const POLICY_VIOLATION: u16 = 1008;

#[utoipa::path(get, path = "/v1/realtime", tag = "realtime",
    description = "WebSocket upgrade to OpenAI's Realtime API for transcription sessions \
        (`?intent=transcription`). Bearer auth with a realtime key, a temporary rt key or a \
        personal token with the `realtime` scope. Client events: `session.update` / \
        `transcription_session.update`, `input_audio_buffer.append` (base64 pcm16, 24 kHz), \
        `.commit`, `.clear`; server events: `session.created`, `session.updated`, \
        `input_audio_buffer.speech_started` / `speech_stopped` / `committed` / `cleared`, \
        `conversation.item.input_audio_transcription.delta` / `.completed`, `error`.",
    params(("intent" = Option<String>, Query, description = "`transcription`")),
    responses(
        (status = 101, description = "Switching to the WebSocket protocol"),
        (status = 400, description = "Not a WebSocket upgrade", body = crate::error::ErrorBody),
        (status = 401, description = "No, malformed, expired or revoked credential", body = crate::error::ErrorBody),
        (status = 403, description = "A credential without real-time rights", body = crate::error::ErrorBody)))]
pub async fn realtime(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    uri: Uri,
    upgrade: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
) -> Response {
    let query = uri.query();
    streams::accept(
        state,
        caller,
        &headers,
        query,
        upgrade,
        "OpenAI Realtime API",
        |opened| Session::new(opened).run(),
    )
    .await
}

struct Session {
    socket: WebSocket,
    state: AppState,
    principal: Principal,
    watch: CredentialWatch,
    id: String,
    config: Value,
    /// Opened at the first audio, with the format the session then has.
    stream: Option<(LiveStream, StreamDecoder)>,
    /// Server VAD (the default) commits at pauses; `null` leaves commits to the client.
    server_vad: bool,
    item: Item,
    previous_item: Option<String>,
}

/// The utterance being transcribed.
#[derive(Default)]
struct Item {
    id: String,
    text: String,
    speaking: bool,
}

impl Session {
    fn new(opened: streams::Opened) -> Self {
        let streams::Opened {
            socket,
            state,
            principal,
            watch,
        } = opened;
        Session {
            socket,
            state,
            principal,
            watch,
            id: format!("sess_{}", random_base62(20)),
            config: json!({
                "format": {"type": "audio/pcm", "rate": DEFAULT_RATE},
                "transcription": {"model": "whisper-1", "language": "en", "prompt": ""},
                "turn_detection": {"type": "server_vad", "threshold": 0.5,
                                   "prefix_padding_ms": 300, "silence_duration_ms": 500},
            }),
            stream: None,
            server_vad: true,
            item: Item {
                id: new_item_id(),
                ..Item::default()
            },
            previous_item: None,
        }
    }

    fn session_object(&self) -> Value {
        json!({
            "type": "transcription",
            "object": "realtime.transcription_session",
            "id": self.id,
            "audio": {"input": self.config},
        })
    }

    async fn run(mut self) {
        let created = json!({"type": "session.created", "event_id": event_id(),
                             "session": self.session_object()});
        self.send(created).await;
        let (code, reason) = self.serve().await;
        let frame = CloseFrame {
            code,
            reason: Utf8Bytes::from(reason),
        };
        let _ = self.socket.send(Message::Close(Some(frame))).await;
    }

    async fn serve(&mut self) -> (u16, String) {
        loop {
            let event = async {
                match self.stream.as_mut() {
                    Some((live, _)) => live.next_event().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                incoming = self.socket.recv() => {
                    let Some(Ok(message)) = incoming else {
                        return (1000, String::new());
                    };
                    match message {
                        Message::Text(text) => {
                            if let Some(close) = self.on_event(text.as_str()).await {
                                return close;
                            }
                        }
                        Message::Binary(_) => {
                            self.error("invalid_request_error", "binary frames are not part of this protocol: send input_audio_buffer.append").await;
                        }
                        Message::Close(_) => return (1000, String::new()),
                        Message::Ping(_) | Message::Pong(_) => {}
                    }
                }
                event = event => {
                    match event {
                        Some(event) => self.on_stream_event(event).await,
                        None => {
                            self.error("server_error", "the recognizer stopped").await;
                            return (1011, "recognizer stopped".into());
                        }
                    }
                }
                ending = self.watch.ended() => {
                    let (kind, message) = match ending {
                        Ending::NotAuthorised => ("invalid_request_error", "the API key was revoked or has expired"),
                        Ending::IdleTimeout => ("invalid_request_error", "no audio received for too long"),
                        Ending::SessionTimeout => ("invalid_request_error", "the session reached its maximum length"),
                    };
                    self.error(kind, message).await;
                    return (POLICY_VIOLATION, message.into());
                }
            }
        }
    }

    async fn send(&mut self, value: Value) -> bool {
        self.socket
            .send(Message::Text(value.to_string().into()))
            .await
            .is_ok()
    }

    async fn error(&mut self, kind: &str, message: &str) {
        let event = json!({"type": "error", "event_id": event_id(),
                           "error": {"type": kind, "code": kind, "message": message, "param": null}});
        self.send(event).await;
    }

    /// Handles one client event; `Some` closes the session.
    async fn on_event(&mut self, text: &str) -> Option<(u16, String)> {
        self.watch.audio_arrived();
        let Ok(event) = serde_json::from_str::<Value>(text) else {
            self.error("invalid_request_error", "the event is not JSON")
                .await;
            return None;
        };
        let kind = event["type"].as_str().unwrap_or_default().to_owned();
        match kind.as_str() {
            "session.update" | "transcription_session.update" => {
                self.update_session(&event, &kind).await;
                None
            }
            "input_audio_buffer.append" => self.append(&event).await,
            "input_audio_buffer.commit" => {
                if let Some((live, _)) = self.stream.as_mut() {
                    live.flush().await;
                } else {
                    self.error(
                        "invalid_request_error",
                        "the input audio buffer is empty: nothing to commit",
                    )
                    .await;
                }
                None
            }
            "input_audio_buffer.clear" => {
                if let Some((live, _)) = self.stream.as_mut() {
                    live.clear().await;
                }
                self.item.text.clear();
                self.send(json!({"type": "input_audio_buffer.cleared", "event_id": event_id()}))
                    .await;
                None
            }
            other => {
                let message =
                    format!("{other:?} is not supported: hark serves transcription sessions only");
                self.error("invalid_request_error", &message).await;
                None
            }
        }
    }

    /// Takes `audio.input` (GA) or the flat beta fields; answers with the whole session.
    async fn update_session(&mut self, event: &Value, kind: &str) {
        let session = &event["session"];
        let input = &session["audio"]["input"];
        if let Some(format) = input.get("format").filter(|f| f.is_object()) {
            self.config["format"] = format.clone();
        }
        if let Some(format) = session["input_audio_format"].as_str() {
            let (kind, rate) = match format {
                "g711_ulaw" => ("audio/pcmu", 8000),
                _ => ("audio/pcm", DEFAULT_RATE),
            };
            self.config["format"] = json!({"type": kind, "rate": rate});
        }
        for source in [
            &input["transcription"],
            &session["input_audio_transcription"],
        ] {
            if source.is_object() {
                self.config["transcription"] = source.clone();
            }
        }
        for source in [input.get("turn_detection"), session.get("turn_detection")]
            .into_iter()
            .flatten()
        {
            self.config["turn_detection"] = source.clone();
            self.server_vad = !source.is_null();
        }
        let reply = if kind == "transcription_session.update" {
            "transcription_session.updated"
        } else {
            "session.updated"
        };
        let session = self.session_object();
        self.send(json!({"type": reply, "event_id": event_id(), "session": session}))
            .await;
    }

    async fn append(&mut self, event: &Value) -> Option<(u16, String)> {
        let Some(audio) = event["audio"].as_str() else {
            self.error(
                "invalid_request_error",
                "input_audio_buffer.append needs `audio` (base64)",
            )
            .await;
            return None;
        };
        let Ok(bytes) = base64::engine::general_purpose::STANDARD.decode(audio) else {
            self.error("invalid_request_error", "`audio` is not valid base64")
                .await;
            return None;
        };
        if self.stream.is_none()
            && let Some(close) = self.open_stream().await
        {
            return Some(close);
        }
        let (live, decoder) = self.stream.as_mut()?;
        match decoder.push(&bytes) {
            Ok(samples) => {
                live.send_audio(samples).await;
                None
            }
            Err(e) => {
                self.error("invalid_request_error", &e.to_string()).await;
                None
            }
        }
    }

    async fn open_stream(&mut self) -> Option<(u16, String)> {
        let format = &self.config["format"];
        let encoding = match format["type"].as_str() {
            Some("audio/pcmu") => Encoding::Mulaw,
            _ => Encoding::PcmS16le,
        };
        let default_rate = if encoding == Encoding::Mulaw {
            8000
        } else {
            DEFAULT_RATE
        };
        let rate = format["rate"]
            .as_u64()
            .and_then(|r| u32::try_from(r).ok())
            .unwrap_or(default_rate);
        let decoder = match StreamDecoder::new(StreamFormat::Raw { encoding, rate }) {
            Ok(d) => d,
            Err(e) => {
                self.error("invalid_request_error", &e.to_string()).await;
                return None;
            }
        };
        let permit = match self.state.streams.open(&self.state, &self.principal).await {
            Ok(permit) => permit,
            Err(e) => {
                self.state.streams.metrics.stream_refused();
                let message = e.to_string();
                self.error("rate_limit_exceeded", &message).await;
                return Some((POLICY_VIOLATION, message));
            }
        };
        let language = self.config["transcription"]["language"]
            .as_str()
            .filter(|l| !l.is_empty())
            .map(str::to_owned);
        let settings = StreamSettings {
            language,
            ..StreamSettings::default()
        };
        let state = self.state.clone();
        let live = LiveStream::start(
            async move { state.pipeline.embedded_engine().await },
            self.state.streams.silero().await,
            settings,
            permit,
            self.state.streams.metrics.clone(),
        );
        self.stream = Some((live, decoder));
        None
    }

    async fn on_stream_event(&mut self, event: StreamEvent) {
        match event {
            StreamEvent::Update(timed) => {
                let update = timed.update;
                let heard = update.finals.first().or(update.partial.first());
                if !self.item.speaking
                    && let Some(first) = heard
                {
                    self.item.speaking = true;
                    let start_ms = (first.start * 1000.0).round() as u64;
                    self.send(json!({"type": "input_audio_buffer.speech_started",
                                     "event_id": event_id(), "item_id": self.item.id,
                                     "audio_start_ms": start_ms}))
                        .await;
                }
                if !update.finals.is_empty() {
                    let delta: String = update.finals.iter().map(|w| w.text.as_str()).collect();
                    let delta = if self.item.text.is_empty() {
                        delta.trim_start().to_owned()
                    } else {
                        delta
                    };
                    self.item.text.push_str(&delta);
                    self.send(
                        json!({"type": "conversation.item.input_audio_transcription.delta",
                                     "event_id": event_id(), "item_id": self.item.id,
                                     "content_index": 0, "delta": delta}),
                    )
                    .await;
                }
                if update.end_of_utterance && self.server_vad && !self.item.text.is_empty() {
                    let end_ms = (timed.audio_seconds * 1000.0).round() as u64;
                    self.send(json!({"type": "input_audio_buffer.speech_stopped",
                                     "event_id": event_id(), "item_id": self.item.id,
                                     "audio_end_ms": end_ms}))
                        .await;
                    self.complete_item().await;
                }
            }
            StreamEvent::Flushed => self.complete_item().await,
            StreamEvent::Finished => {}
            StreamEvent::Failed(reason) => {
                tracing::warn!(%reason, "an OpenAI realtime stream failed");
                self.error("server_error", &reason).await;
            }
        }
    }

    /// `committed` then `completed` for the current item, and a fresh item after it.
    async fn complete_item(&mut self) {
        let item = std::mem::replace(
            &mut self.item,
            Item {
                id: new_item_id(),
                ..Item::default()
            },
        );
        self.send(
            json!({"type": "input_audio_buffer.committed", "event_id": event_id(),
                         "item_id": item.id, "previous_item_id": self.previous_item}),
        )
        .await;
        self.send(
            json!({"type": "conversation.item.input_audio_transcription.completed",
                         "event_id": event_id(), "item_id": item.id, "content_index": 0,
                         "transcript": item.text}),
        )
        .await;
        self.previous_item = Some(item.id);
    }
}

fn event_id() -> String {
    format!("event_{}", random_base62(20))
}

fn new_item_id() -> String {
    format!("item_{}", random_base62(20))
}
