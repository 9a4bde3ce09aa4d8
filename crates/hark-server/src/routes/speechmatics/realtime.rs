//! Speechmatics' real-time protocol over a WebSocket (`/v2`, `/v2/{language}`, and
//! Scriptix-style at `/api/v3/realtime`), so that `speechmatics-rt` and the older
//! `speechmatics-python` stream to hark unmodified with a realtime key.

use axum::extract::State;
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::http::{HeaderMap, Uri};
use axum::response::Response;
use hark_speech::stream_audio::StreamDecoder;
use hark_speech::streaming::StreamSettings;
use serde_json::{Value, json};

use super::messages::{self, ClientMessage, TranscriptionConfig};
use crate::auth::{Caller, Principal};
use crate::state::AppState;
use crate::streams::{self, CredentialWatch, Ending, LiveStream, StreamEvent};

/// Largest audio frame accepted (the clients send 4 KiB by default).
pub const MAX_FRAME_BYTES: usize = 1024 * 1024;
/// Speechmatics' bounds on `max_delay`, in seconds.
const MAX_DELAY_RANGE: std::ops::RangeInclusive<f64> = 0.7..=4.0;

/// Speechmatics' close codes.
mod close {
    pub const NORMAL: u16 = 1000;
    pub const PROTOCOL_ERROR: u16 = 1003;
    pub const INTERNAL_ERROR: u16 = 1011;
    pub const NOT_AUTHORISED: u16 = 4001;
    pub const QUOTA_EXCEEDED: u16 = 4005;
    pub const TIMELIMIT_EXCEEDED: u16 = 4006;
    pub const JOB_ERROR: u16 = 4013;
}

/// The handshake: 401/403 as HTTP answers, then the upgrade. Also served at `/v2/`,
/// `/v2/{language}` and `/api/v3/realtime`.
#[utoipa::path(get, path = "/v2", tag = "realtime",
    description = "WebSocket upgrade to Speechmatics' real-time protocol (also at `/v2/`, \
        `/v2/{language}` and `/api/v3/realtime`). Authenticate with `Authorization: Bearer` or \
        `?jwt=` (a temporary key); the token must be a realtime key, a temporary rt key or a \
        personal token with the `realtime` scope. Then `StartRecognition`, binary audio frames \
        (each acknowledged by `AudioAdded`), `EndOfStream`; the server sends \
        `RecognitionStarted`, `AddPartialTranscript`, `AddTranscript`, `EndOfTranscript`, \
        `Error` and `Warning`.",
    params(("jwt" = Option<String>, Query, description = "A temporary key, for browsers")),
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
        "Speechmatics real-time protocol",
        |opened| Session::new(opened).run(),
    )
    .await
}

struct Session {
    socket: WebSocket,
    state: AppState,
    principal: Principal,
    watch: CredentialWatch,
    stream: Option<Running>,
    /// Binary frames received (Speechmatics' 1-based `seq_no`).
    frames: u64,
    ended: bool,
    last_partial: String,
}

struct Running {
    live: LiveStream,
    decoder: Option<StreamDecoder>,
    partials: bool,
    language: String,
}

/// How a session stops: the close code and a reason (after an `Error`, if any).
struct Close(u16, &'static str);

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
            stream: None,
            frames: 0,
            ended: false,
            last_partial: String::new(),
        }
    }

    async fn run(mut self) {
        let close = self.serve().await;
        let frame = CloseFrame {
            code: close.0,
            reason: Utf8Bytes::from_static(close.1),
        };
        let _ = self.socket.send(Message::Close(Some(frame))).await;
    }

    async fn serve(&mut self) -> Close {
        loop {
            let event = async {
                match self.stream.as_mut() {
                    Some(running) => running.live.next_event().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                incoming = self.socket.recv() => {
                    let Some(Ok(message)) = incoming else {
                        return Close(close::NORMAL, "");
                    };
                    if let Err(close) = self.on_message(message).await {
                        return close;
                    }
                }
                event = event => {
                    match event {
                        Some(event) => {
                            if let Some(close) = self.on_event(event).await {
                                return close;
                            }
                        }
                        None => {
                            return self.fail("job_error", "the recognizer stopped", close::JOB_ERROR).await;
                        }
                    }
                }
                ending = self.watch.ended() => {
                    return match ending {
                        Ending::NotAuthorised => {
                            self.fail("not_authorised", "the API key was revoked or has expired", close::NOT_AUTHORISED).await
                        }
                        Ending::IdleTimeout => {
                            self.send(messages::warning("idle_timeout", "no audio received for too long: closing")).await;
                            self.fail("idle_timeout", "no audio received for too long", close::TIMELIMIT_EXCEEDED).await
                        }
                        Ending::SessionTimeout => {
                            self.fail("session_timeout", "the session reached its maximum length", close::TIMELIMIT_EXCEEDED).await
                        }
                    };
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

    /// Sends `Error {type, reason}` and names the close that follows.
    async fn fail(&mut self, kind: &str, reason: &str, code: u16) -> Close {
        self.send(messages::error(kind, reason)).await;
        Close(code, "")
    }

    async fn on_message(&mut self, message: Message) -> Result<(), Close> {
        match message {
            Message::Text(text) => {
                self.watch.audio_arrived();
                let parsed: ClientMessage = match serde_json::from_str(text.as_str()) {
                    Ok(m) => m,
                    Err(e) => {
                        let reason = format!("not a message this protocol knows: {e}");
                        return Err(self
                            .fail("invalid_message", &reason, close::PROTOCOL_ERROR)
                            .await);
                    }
                };
                self.on_client_message(parsed).await
            }
            Message::Binary(bytes) => {
                self.watch.audio_arrived();
                self.on_audio(&bytes).await
            }
            Message::Close(_) => Err(Close(close::NORMAL, "")),
            Message::Ping(_) | Message::Pong(_) => Ok(()),
        }
    }

    async fn on_client_message(&mut self, message: ClientMessage) -> Result<(), Close> {
        match message {
            ClientMessage::StartRecognition {
                audio_format,
                transcription_config,
            } => {
                if self.stream.is_some() {
                    return Err(self
                        .fail(
                            "protocol_error",
                            "StartRecognition was already sent",
                            close::PROTOCOL_ERROR,
                        )
                        .await);
                }
                let format = match audio_format.stream_format() {
                    Ok(f) => f,
                    Err(reason) => {
                        return Err(self
                            .fail("invalid_audio_type", &reason, close::PROTOCOL_ERROR)
                            .await);
                    }
                };
                let decoder = match StreamDecoder::new(format) {
                    Ok(d) => d,
                    Err(e) => {
                        return Err(self
                            .fail("invalid_audio_type", &e.to_string(), close::PROTOCOL_ERROR)
                            .await);
                    }
                };
                self.start(decoder, transcription_config).await
            }
            ClientMessage::EndOfStream {} => {
                if self.ended {
                    return Ok(());
                }
                self.ended = true;
                match self.stream.as_mut() {
                    Some(running) => {
                        let rest = running.decoder.take().map(StreamDecoder::finish);
                        if let Some(Ok(samples)) = rest {
                            running.live.send_audio(samples).await;
                        }
                        running.live.end().await;
                        Ok(())
                    }
                    None => Err(self
                        .fail(
                            "protocol_error",
                            "EndOfStream before StartRecognition",
                            close::PROTOCOL_ERROR,
                        )
                        .await),
                }
            }
            ClientMessage::ForceEndOfUtterance {} => {
                if let Some(running) = self.stream.as_mut() {
                    running.live.flush().await;
                }
                Ok(())
            }
            ClientMessage::SetRecognitionConfig {} => Ok(()),
        }
    }

    async fn start(
        &mut self,
        decoder: StreamDecoder,
        config: TranscriptionConfig,
    ) -> Result<(), Close> {
        let max_delay = config
            .max_delay
            .unwrap_or(StreamSettings::default().max_delay);
        if !MAX_DELAY_RANGE.contains(&max_delay) {
            return Err(self
                .fail(
                    "invalid_config",
                    "max_delay must be between 0.7 and 4 seconds",
                    close::PROTOCOL_ERROR,
                )
                .await);
        }
        let language = config.language.unwrap_or_else(|| "en".into());
        let streams = &self.state.streams;
        let permit = match streams.open(&self.state, &self.principal).await {
            Ok(permit) => permit,
            Err(e) => {
                streams.metrics.stream_refused();
                // Every refusal is a cap (per key, workspace or server).
                let reason = e.to_string();
                return Err(self
                    .fail("quota_exceeded", &reason, close::QUOTA_EXCEEDED)
                    .await);
            }
        };
        let settings = StreamSettings {
            max_delay,
            language: Some(language.clone()),
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
        self.stream = Some(Running {
            live,
            decoder: Some(decoder),
            partials: config.enable_partials.unwrap_or(false),
            language: language.clone(),
        });
        let id = hark_core::tokens::random_base62(16);
        let started = json!({
            "message": "RecognitionStarted",
            "id": id,
            "language_pack_info": {"language_description": language, "word_delimiter": " ",
                                   "writing_direction": "left-to-right", "itn": false, "adapted": false},
        });
        self.send(started).await;
        Ok(())
    }

    async fn on_audio(&mut self, bytes: &[u8]) -> Result<(), Close> {
        if bytes.len() > MAX_FRAME_BYTES {
            return Err(self
                .fail(
                    "protocol_error",
                    "audio frames must be at most 1 MiB",
                    close::PROTOCOL_ERROR,
                )
                .await);
        }
        if self.ended {
            self.send(messages::warning(
                "add_audio_after_eos",
                "audio after EndOfStream is ignored",
            ))
            .await;
            return Ok(());
        }
        let Some(running) = self.stream.as_mut() else {
            return Err(self
                .fail(
                    "protocol_error",
                    "audio before StartRecognition",
                    close::PROTOCOL_ERROR,
                )
                .await);
        };
        let decoded = running.decoder.as_mut().map(|d| d.push(bytes));
        match decoded {
            Some(Ok(samples)) => {
                running.live.send_audio(samples).await;
            }
            Some(Err(e)) => {
                return Err(self
                    .fail("invalid_audio_type", &e.to_string(), close::PROTOCOL_ERROR)
                    .await);
            }
            None => {}
        }
        self.frames += 1;
        let ack = json!({"message": "AudioAdded", "seq_no": self.frames});
        self.send(ack).await;
        Ok(())
    }

    async fn on_event(&mut self, event: StreamEvent) -> Option<Close> {
        let (partials, language) = match self.stream.as_ref() {
            Some(r) => (r.partials, r.language.clone()),
            None => return None,
        };
        match event {
            StreamEvent::Update(timed) => {
                let update = timed.update;
                if !update.finals.is_empty() {
                    let message = messages::transcript("AddTranscript", &update.finals, &language);
                    self.send(message).await;
                }
                if partials {
                    let text: String = update.partial.iter().map(|w| w.text.as_str()).collect();
                    if text != self.last_partial || !update.finals.is_empty() {
                        let message = messages::transcript(
                            "AddPartialTranscript",
                            &update.partial,
                            &language,
                        );
                        self.send(message).await;
                        self.last_partial = text;
                    }
                }
                if update.end_of_utterance {
                    let end = update.finals.last().map_or(0.0, |w| w.end);
                    self.send(json!({"message": "EndOfUtterance",
                                     "metadata": {"start_time": end, "end_time": end}}))
                        .await;
                }
                None
            }
            StreamEvent::Flushed => None,
            StreamEvent::Finished => {
                self.send(json!({"message": "EndOfTranscript"})).await;
                Some(Close(close::NORMAL, ""))
            }
            StreamEvent::Failed(reason) => {
                tracing::warn!(%reason, "a real-time stream failed");
                let code = if reason.starts_with("model") {
                    close::INTERNAL_ERROR
                } else {
                    close::JOB_ERROR
                };
                Some(self.fail("job_error", &reason, code).await)
            }
        }
    }
}
