//! `hark listen FILE`: stream an audio file to a hark server over the Speechmatics
//! real-time protocol (`ws://HOST/v2`) and print the transcript as it comes: partials
//! overwritten in place on a terminal, finals as `[mm:ss.s] text` lines, or with `--json`
//! every server message as one JSON line.

use std::io::{IsTerminal, Write};
use std::time::Duration;

use anyhow::{Context, bail};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::error::UrlError;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::{self, Message};

use crate::cli::ListenArgs;

/// The audio's rate on the wire.
const SAMPLE_RATE: usize = 16_000;
/// 100 ms of audio a frame.
const FRAME_SAMPLES: usize = SAMPLE_RATE / 10;
/// Frames sent but not yet acknowledged by `AudioAdded` (5 s of audio): a file sent as
/// fast as possible waits for the server rather than piling up in socket buffers.
const MAX_IN_FLIGHT: u64 = 50;
/// Speechmatics' bounds on `max_delay`.
const MAX_DELAY_RANGE: std::ops::RangeInclusive<f64> = 0.7..=4.0;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;
type Sink = futures_util::stream::SplitSink<Socket, Message>;
type Source = futures_util::stream::SplitStream<Socket>;

pub async fn run(args: ListenArgs) -> anyhow::Result<()> {
    let token = args.token.clone().context(
        "--token (or HARK_TOKEN) is needed: a realtime key or a token with the realtime scope",
    )?;
    if !MAX_DELAY_RANGE.contains(&args.max_delay) {
        bail!("--max-delay must be between 0.7 and 4 seconds");
    }
    let url = websocket_url(&args.server)?;
    let file = args.file.clone();
    let samples = tokio::task::spawn_blocking(move || {
        hark_speech::audio::load_16k(&file, &hark_speech::audio::DecodeLimits::default())
    })
    .await?
    .with_context(|| format!("reading {}", args.file.display()))?;
    let audio = pcm_s16le(&samples);

    let stdout = std::io::stdout();
    let tty = stdout.is_terminal();
    let mut printer = Printer::new(stdout, args.json, tty, terminal_width());
    let socket = connect(&url, &token).await?;
    let (mut sink, mut source) = socket.split();

    let start = json!({
        "message": "StartRecognition",
        "audio_format": {"type": "raw", "encoding": "pcm_s16le", "sample_rate": SAMPLE_RATE},
        "transcription_config": {
            "language": args.language,
            // Partials are only worth asking for when something shows them.
            "enable_partials": args.json || tty,
            "max_delay": args.max_delay,
        },
    });
    sink.send(Message::text(start.to_string()))
        .await
        .context("sending StartRecognition")?;
    // Audio waits for RecognitionStarted: a refused start (quota, bad config) is then
    // reported as the server's Error rather than as a failed write.
    let (acked_tx, acked_rx) = watch::channel(0u64);
    let mut receiver = Receiver {
        printer: &mut printer,
        acked: acked_tx,
        error: None,
    };
    receiver.until_started(&mut source).await?;

    let result = {
        let sending = send_audio(&mut sink, &audio, args.realtime_pace, acked_rx);
        tokio::pin!(sending);
        let receiving = receiver.until_end(&mut source);
        tokio::pin!(receiving);
        let mut sent = false;
        loop {
            tokio::select! {
                outcome = &mut sending, if !sent => {
                    sent = true;
                    // A failed write means the server closed: what it said is read below.
                    if let Err(e) = outcome {
                        tracing::debug!("sending stopped: {e:#}");
                    }
                }
                outcome = &mut receiving => break outcome,
                // While audio goes, the first Ctrl-C ends it early (see send_audio); once
                // it is all sent, Ctrl-C quits without waiting for the last finals.
                _ = tokio::signal::ctrl_c(), if sent => break Err(anyhow::anyhow!("interrupted")),
            }
        }
    };
    let cleared = printer.clear_partial();
    result?;
    Ok(cleared?)
}

/// Sends the audio in 100 ms frames (paced at 1x with `pace`), then `EndOfStream`. The
/// first Ctrl-C ends the audio early so that what was sent is still finalised.
async fn send_audio(
    sink: &mut Sink,
    audio: &[u8],
    pace: bool,
    mut acked: watch::Receiver<u64>,
) -> anyhow::Result<()> {
    let started = Instant::now();
    let mut seq_no = 0u64;
    let frames = audio.chunks(FRAME_SAMPLES * 2);
    let interrupt = tokio::signal::ctrl_c();
    tokio::pin!(interrupt);
    for frame in frames {
        let ready = async {
            if acked
                .wait_for(|a| seq_no.saturating_sub(*a) < MAX_IN_FLIGHT)
                .await
                .is_err()
            {
                return false;
            }
            if pace {
                let due = Duration::from_millis(100 * seq_no);
                tokio::time::sleep_until(started + due).await;
            }
            true
        };
        tokio::select! {
            go = ready => {
                if !go {
                    // The receiver has finished: nothing more to send.
                    return Ok(());
                }
            }
            _ = &mut interrupt => {
                eprintln!("stopping: finishing what was sent (Ctrl-C again to quit)");
                break;
            }
        }
        sink.send(Message::binary(frame.to_vec()))
            .await
            .context("sending audio")?;
        seq_no += 1;
    }
    let end = json!({"message": "EndOfStream", "last_seq_no": seq_no});
    sink.send(Message::text(end.to_string()))
        .await
        .context("sending EndOfStream")?;
    Ok(())
}

struct Receiver<'a, W: Write> {
    printer: &'a mut Printer<W>,
    acked: watch::Sender<u64>,
    /// The server's `Error`, reported when the connection closes.
    error: Option<String>,
}

/// What one server message means for the session.
enum Step {
    Continue,
    Started,
    Finished,
}

impl<W: Write> Receiver<'_, W> {
    async fn until_started(&mut self, source: &mut Source) -> anyhow::Result<()> {
        loop {
            match self.next(source).await? {
                Step::Started => return Ok(()),
                Step::Finished => bail!("the server ended the session before it started"),
                Step::Continue => {}
            }
        }
    }

    async fn until_end(&mut self, source: &mut Source) -> anyhow::Result<()> {
        loop {
            if let Step::Finished = self.next(source).await? {
                break;
            }
        }
        // Let the server's close arrive (tungstenite answers it), without waiting long.
        let _ = tokio::time::timeout(Duration::from_secs(2), async {
            while let Some(Ok(_)) = source.next().await {}
        })
        .await;
        Ok(())
    }

    async fn next(&mut self, source: &mut Source) -> anyhow::Result<Step> {
        let message = match source.next().await {
            Some(Ok(message)) => message,
            Some(Err(e)) => {
                if let Some(error) = self.error.take() {
                    bail!(error);
                }
                return Err(e).context("the connection to the server failed");
            }
            None => {
                bail!(self.error.take().unwrap_or_else(|| {
                    "the connection closed before the transcript ended".into()
                }))
            }
        };
        match message {
            Message::Text(text) => {
                let value: Value = serde_json::from_str(text.as_str())
                    .context("the server sent a message that is not JSON")?;
                self.printer.message(&value).context("writing the output")?;
                Ok(self.on_message(&value))
            }
            Message::Close(frame) => {
                let code = frame.as_ref().map(|f| u16::from(f.code));
                if let Some(error) = self.error.take() {
                    bail!(error);
                }
                bail!(closed_early(code))
            }
            Message::Binary(_) | Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => {
                Ok(Step::Continue)
            }
        }
    }

    fn on_message(&mut self, value: &Value) -> Step {
        let text = |key: &str| value[key].as_str().unwrap_or("").to_owned();
        match value["message"].as_str() {
            Some("RecognitionStarted") => Step::Started,
            Some("AudioAdded") => {
                if let Some(seq_no) = value["seq_no"].as_u64() {
                    self.acked.send_if_modified(|a| {
                        let newer = seq_no > *a;
                        *a = (*a).max(seq_no);
                        newer
                    });
                }
                Step::Continue
            }
            Some("EndOfTranscript") => Step::Finished,
            Some("Error") => {
                self.error = Some(server_error(&text("type"), &text("reason")));
                Step::Continue
            }
            _ => Step::Continue,
        }
    }
}

/// The server's `Error` as one sentence.
fn server_error(kind: &str, reason: &str) -> String {
    match kind {
        "not_authorised" => format!("the server stopped the stream: not authorised ({reason})"),
        "quota_exceeded" => format!("the server refused the stream: over quota ({reason})"),
        _ => format!("the server reported an error ({kind}): {reason}"),
    }
}

/// A close before `EndOfTranscript` and without an `Error`, by Speechmatics' codes.
fn closed_early(code: Option<u16>) -> String {
    let meaning = match code {
        Some(1000) | None => "",
        Some(1003) => ": protocol error",
        Some(1011) => ": internal server error",
        Some(4001) => ": not authorised",
        Some(4005) => ": quota exceeded",
        Some(4006) => ": time limit exceeded",
        Some(4013) => ": job error",
        Some(_) => "",
    };
    match code {
        Some(code) => format!(
            "the server closed the stream before the transcript ended (code {code}{meaning})"
        ),
        None => "the server closed the stream before the transcript ended".into(),
    }
}

async fn connect(url: &str, token: &str) -> anyhow::Result<Socket> {
    let mut request = url
        .into_client_request()
        .with_context(|| format!("{url} is not a WebSocket URL"))?;
    let mut auth = HeaderValue::from_str(&format!("Bearer {token}"))
        .ok()
        .context("the token holds characters that cannot go in a header")?;
    auth.set_sensitive(true);
    request.headers_mut().insert("authorization", auth);
    let connecting = tokio_tungstenite::connect_async(request);
    let outcome = tokio::time::timeout(CONNECT_TIMEOUT, connecting)
        .await
        .ok()
        .with_context(|| format!("no answer from {url} within 30 seconds"))?;
    match outcome {
        Ok((socket, _)) => Ok(socket),
        Err(tungstenite::Error::Http(response)) => {
            let status = response.status();
            let message = response
                .body()
                .as_deref()
                .and_then(|b| serde_json::from_slice::<Value>(b).ok())
                .and_then(|v| v["error"]["message"].as_str().map(str::to_owned));
            bail!(refused(status.as_u16(), message.as_deref()))
        }
        Err(tungstenite::Error::Url(UrlError::TlsFeatureNotEnabled)) => bail!(
            "{url} needs TLS, which this build of hark does not include: connect to the server over http:// (e.g. directly or through an SSH tunnel)"
        ),
        Err(tungstenite::Error::Io(e)) => bail!("cannot connect to {url}: {e}"),
        Err(e) => Err(e).with_context(|| format!("cannot connect to {url}")),
    }
}

/// The handshake's HTTP refusal as one sentence.
fn refused(status: u16, message: Option<&str>) -> String {
    let details = message.map(|m| format!(": {m}")).unwrap_or_default();
    match status {
        401 => "the server refused the token (401)".into(),
        403 => format!("the token may not stream live transcription (403){details}"),
        404 => format!("the server has no live transcription at /v2 (404){details}"),
        429 => format!("too many attempts: the server asks to wait (429){details}"),
        _ => format!("the server answered {status} instead of opening the stream{details}"),
    }
}

/// `http://host:port[/prefix]` → `ws://host:port[/prefix]/v2` (`https` → `wss`); a
/// `ws://`/`wss://` URL with a path is taken as it is.
fn websocket_url(server: &str) -> anyhow::Result<String> {
    let server = server.trim();
    let (scheme, rest) = server.split_once("://").unwrap_or(("http", server));
    let rest = rest.trim_end_matches('/');
    let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
    if host.is_empty() {
        bail!("--server {server:?} names no host (e.g. http://127.0.0.1:8080)");
    }
    let scheme = match scheme.to_ascii_lowercase().as_str() {
        "http" => "ws",
        "https" => "wss",
        "ws" | "wss" if !path.is_empty() => return Ok(format!("{scheme}://{rest}")),
        "ws" => "ws",
        "wss" => "wss",
        other => bail!("--server must be an http:// or https:// URL, not {other}://"),
    };
    if path.is_empty() {
        Ok(format!("{scheme}://{host}/v2"))
    } else {
        Ok(format!("{scheme}://{host}/{path}/v2"))
    }
}

/// 16 kHz float samples as pcm_s16le bytes.
fn pcm_s16le(samples: &[f32]) -> Vec<u8> {
    samples
        .iter()
        .flat_map(|s| {
            let v = (s.clamp(-1.0, 1.0) * f32::from(i16::MAX)).round() as i16;
            v.to_le_bytes()
        })
        .collect()
}

/// `[mm:ss.s]` (minutes go past 59 for long files).
fn timestamp(seconds: f64) -> String {
    let tenths = (seconds.max(0.0) * 10.0).round() as u64;
    format!(
        "[{:02}:{:02}.{}]",
        tenths / 600,
        tenths % 600 / 10,
        tenths % 10
    )
}

fn terminal_width() -> usize {
    std::env::var("COLUMNS")
        .ok()
        .and_then(|c| c.parse::<usize>().ok())
        .filter(|c| *c >= 20)
        .unwrap_or(80)
}

/// Turns server messages into output.
struct Printer<W: Write> {
    out: W,
    json: bool,
    tty: bool,
    width: usize,
    /// A partial is on the current line (terminal only).
    partial_shown: bool,
}

impl<W: Write> Printer<W> {
    fn new(out: W, json: bool, tty: bool, width: usize) -> Self {
        Printer {
            out,
            json,
            tty,
            width,
            partial_shown: false,
        }
    }

    fn message(&mut self, value: &Value) -> std::io::Result<()> {
        if self.json {
            writeln!(self.out, "{value}")?;
            return self.out.flush();
        }
        let text = value["metadata"]["transcript"]
            .as_str()
            .unwrap_or("")
            .trim();
        let start = value["metadata"]["start_time"].as_f64().unwrap_or(0.0);
        match value["message"].as_str() {
            Some("AddPartialTranscript") if self.tty => {
                self.clear_partial()?;
                if !text.is_empty() {
                    let line = format!("{} {text}", timestamp(start));
                    write!(self.out, "{}", tail(&line, self.width - 1))?;
                    self.partial_shown = true;
                }
                self.out.flush()?;
            }
            Some("AddTranscript") if !text.is_empty() => {
                self.clear_partial()?;
                writeln!(self.out, "{} {text}", timestamp(start))?;
                self.out.flush()?;
            }
            Some("Warning") => {
                self.clear_partial()?;
                self.out.flush()?;
                let kind = value["type"].as_str().unwrap_or("warning");
                let reason = value["reason"].as_str().unwrap_or("");
                eprintln!("warning ({kind}): {reason}");
            }
            _ => {}
        }
        Ok(())
    }

    /// Erases a partial shown on the current line.
    fn clear_partial(&mut self) -> std::io::Result<()> {
        if self.partial_shown {
            write!(self.out, "\r\x1b[2K")?;
            self.out.flush()?;
            self.partial_shown = false;
        }
        Ok(())
    }
}

/// The last `width` characters of `line` (`…` marking a cut), so a partial never wraps:
/// `\r` + clear line only reaches the cursor's row.
fn tail(line: &str, width: usize) -> String {
    let count = line.chars().count();
    if count <= width {
        return line.to_owned();
    }
    let skip = count - width.saturating_sub(1);
    std::iter::once('…')
        .chain(line.chars().skip(skip))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let ok = |s: &str| websocket_url(s).unwrap();
        assert_eq!(ok("http://127.0.0.1:8080"), "ws://127.0.0.1:8080/v2");
        assert_eq!(ok("http://127.0.0.1:8080/"), "ws://127.0.0.1:8080/v2");
        assert_eq!(ok("https://hark.example"), "wss://hark.example/v2");
        assert_eq!(ok("HTTPS://hark.example/stt/"), "wss://hark.example/stt/v2");
        assert_eq!(ok("localhost:8080"), "ws://localhost:8080/v2");
        assert_eq!(ok("ws://h:1"), "ws://h:1/v2");
        assert_eq!(ok("wss://h/api/v3/realtime"), "wss://h/api/v3/realtime");
        assert!(websocket_url("ftp://h").is_err());
        assert!(websocket_url("http://").is_err());
    }

    #[test]
    fn timestamps() {
        assert_eq!(timestamp(0.0), "[00:00.0]");
        assert_eq!(timestamp(3.12), "[00:03.1]");
        assert_eq!(timestamp(59.96), "[01:00.0]");
        assert_eq!(timestamp(3725.25), "[62:05.3]");
    }

    #[test]
    fn samples_become_s16le() {
        let bytes = pcm_s16le(&[0.0, 1.0, -1.0, 2.0, 0.5]);
        let values: Vec<i16> = bytes
            .chunks(2)
            .map(|c| i16::from_le_bytes([c[0], c[1]]))
            .collect();
        assert_eq!(values, [0, 32767, -32767, 32767, 16384]);
    }

    fn transcript(message: &str, text: &str, start: f64) -> Value {
        json!({"message": message, "metadata": {"transcript": text, "start_time": start, "end_time": start + 1.0}})
    }

    fn printed(json: bool, tty: bool, messages: &[Value]) -> String {
        let mut out = Vec::new();
        let mut printer = Printer::new(&mut out, json, tty, 40);
        for m in messages {
            printer.message(m).unwrap();
        }
        printer.clear_partial().unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn terminal_output_overwrites_partials() {
        let messages = [
            transcript("AddPartialTranscript", "hello", 0.5),
            transcript("AddPartialTranscript", "hello wor", 0.5),
            transcript("AddTranscript", "Hello world.", 0.5),
            transcript("AddPartialTranscript", "", 0.0),
            json!({"message": "EndOfTranscript"}),
        ];
        assert_eq!(
            printed(false, true, &messages),
            "[00:00.5] hello\r\x1b[2K[00:00.5] hello wor\r\x1b[2K[00:00.5] Hello world.\n"
        );
        assert_eq!(printed(false, false, &messages), "[00:00.5] Hello world.\n");
    }

    #[test]
    fn json_output_is_one_line_a_message() {
        let messages = [
            json!({"message": "AudioAdded", "seq_no": 1}),
            transcript("AddTranscript", "Hi.", 0.0),
        ];
        let out = printed(true, true, &messages);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 2);
        let first: Value = serde_json::from_str(lines[0]).unwrap();
        assert_eq!(first["seq_no"], 1);
    }

    #[test]
    fn long_partials_keep_their_end() {
        assert_eq!(tail("abcdef", 10), "abcdef");
        assert_eq!(tail("abcdef", 4), "…def");
    }

    #[test]
    fn refusals_read_clearly() {
        assert_eq!(refused(401, None), "the server refused the token (401)");
        assert!(refused(403, Some("needs the realtime scope")).contains("realtime scope"));
        assert!(closed_early(Some(4005)).contains("quota"));
    }
}
