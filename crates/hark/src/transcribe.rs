//! `hark transcribe FILE`: with `--server`, upload to a hark server (progress bar),
//! wait for the session, print the document; without, run the embedded engine here.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, bail};
use bytes::Bytes;
use futures_util::StreamExt;
use hark_core::recordings::Segment;
use hark_core::transcripts;
use indicatif::{ProgressBar, ProgressStyle};
use serde::Deserialize;

use crate::cli::{TranscribeArgs, TranscriptFormat};

pub async fn run(data_dir: &Path, args: TranscribeArgs) -> anyhow::Result<()> {
    match args.server.clone() {
        Some(server) => remote(&server, args).await,
        None => local(data_dir, args).await,
    }
}

fn bar(len: u64, template: &str) -> ProgressBar {
    let bar = ProgressBar::new(len);
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style);
    }
    bar
}

async fn local(data_dir: &Path, args: TranscribeArgs) -> anyhow::Result<()> {
    let model_dir = args.engine.model_dir(data_dir);
    let options = hark_speech::Options {
        beam_size: args.engine.beam_size.clamp(1, 16),
        language: args.language.clone(),
        ..Default::default()
    };
    let file = args.file.clone();
    let limits = args.engine.decode_limits()?;
    let progress = bar(
        1000,
        "{spinner} transcribing [{bar:40}] {percent}% {elapsed}",
    );
    let reporter = progress.clone();
    let transcript =
        tokio::task::spawn_blocking(move || -> anyhow::Result<hark_speech::Transcript> {
            let engine = hark_speech::Engine::load(&model_dir).context("loading the model")?;
            let samples = hark_speech::audio::load_16k(&file, &limits)?;
            Ok(engine.transcribe(&samples, &options, &mut |p| {
                reporter.set_position((p * 1000.0) as u64)
            })?)
        })
        .await??;
    progress.finish_and_clear();
    let segments: Vec<Segment> = transcript
        .segments
        .iter()
        .map(|s| Segment {
            start: s.start,
            end: s.end,
            text: s.text.trim().to_owned(),
            words: Vec::new(),
        })
        .collect();
    print!("{}", render(&segments, args.format, &transcript.language)?);
    Ok(())
}

#[derive(Deserialize)]
struct Created {
    session_id: i64,
    document_id: i64,
}

#[derive(Deserialize)]
struct Session {
    status: String,
    progress: u8,
    error: Option<String>,
}

async fn remote(server: &str, args: TranscribeArgs) -> anyhow::Result<()> {
    let token = args
        .token
        .clone()
        .context("--token (or HARK_TOKEN) is needed with --server")?;
    let base = server.trim_end_matches('/');
    let client = reqwest::Client::new();
    let data = tokio::fs::read(&args.file)
        .await
        .with_context(|| format!("reading {}", args.file.display()))?;
    let total = data.len() as u64;
    let upload = bar(
        total,
        "uploading [{bar:40}] {bytes}/{total_bytes} {elapsed}",
    );
    let counter = upload.clone();
    let chunks: Vec<Result<Bytes, std::io::Error>> = data
        .chunks(64 * 1024)
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    let stream = futures_util::stream::iter(chunks).inspect(move |c| {
        if let Ok(c) = c {
            counter.inc(c.len() as u64);
        }
    });
    let name = args
        .file
        .file_name()
        .map_or("audio".into(), |n| n.to_string_lossy().into_owned());
    let part =
        reqwest::multipart::Part::stream_with_length(reqwest::Body::wrap_stream(stream), total)
            .file_name(name);
    let mut form = reqwest::multipart::Form::new().part("file", part);
    if let Some(language) = &args.language {
        form = form.text("language", language.clone());
    }
    let response = client
        .post(format!("{base}/api/v3/speech-to-text"))
        .bearer_auth(&token)
        .multipart(form)
        .send()
        .await
        .context("sending the file")?;
    upload.finish_and_clear();
    let created: Created = checked(response).await?.json().await?;

    let waiting = bar(100, "transcribing [{bar:40}] {pos}% {msg} {elapsed}");
    loop {
        let session: Session = checked(
            client
                .get(format!("{base}/api/v3/sessions/{}", created.session_id))
                .bearer_auth(&token)
                .send()
                .await?,
        )
        .await?
        .json()
        .await?;
        waiting.set_position(u64::from(session.progress));
        waiting.set_message(session.status.clone());
        match session.status.as_str() {
            "completed" => break,
            "failed" => {
                waiting.finish_and_clear();
                bail!(
                    "transcription failed: {}",
                    session.error.unwrap_or_default()
                );
            }
            _ => tokio::time::sleep(Duration::from_millis(500)).await,
        }
    }
    waiting.finish_and_clear();
    let format = match args.format {
        TranscriptFormat::Txt => "txt",
        TranscriptFormat::Srt => "srt",
        TranscriptFormat::Vtt => "vtt",
        TranscriptFormat::Json => "json",
    };
    let body = checked(
        client
            .get(format!(
                "{base}/api/v3/documents/{}?format={format}",
                created.document_id
            ))
            .bearer_auth(&token)
            .send()
            .await?,
    )
    .await?
    .text()
    .await?;
    print!("{body}");
    if !body.ends_with('\n') {
        println!();
    }
    Ok(())
}

/// Turns an error response into an error carrying the server's message.
async fn checked(response: reqwest::Response) -> anyhow::Result<reqwest::Response> {
    if response.status().is_success() {
        return Ok(response);
    }
    let status = response.status();
    let body: serde_json::Value = response.json().await.unwrap_or_default();
    let message = body["error"]["message"].as_str().unwrap_or("no details");
    bail!("the server answered {status}: {message}")
}

fn render(
    segments: &[Segment],
    format: TranscriptFormat,
    language: &str,
) -> anyhow::Result<String> {
    Ok(match format {
        TranscriptFormat::Txt => format!("{}\n", transcripts::plain_text(segments)),
        TranscriptFormat::Srt => transcripts::srt(segments),
        TranscriptFormat::Vtt => transcripts::vtt(segments),
        TranscriptFormat::Json => format!(
            "{}\n",
            serde_json::to_string_pretty(&serde_json::json!({
                "language": language,
                "text": transcripts::plain_text(segments),
                "segments": segments,
            }))?
        ),
    })
}
