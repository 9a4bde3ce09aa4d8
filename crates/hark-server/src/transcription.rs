//! The transcription pipeline: in-process workers that claim queued jobs, run the speech
//! engine off the async threads, keep their lease alive while they work, and write the
//! transcript and summary back — or a readable reason when the audio cannot be used.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use hark_core::recordings::{Segment, Word};
use hark_speech::audio::DecodeLimits;
use hark_speech::remote::RemoteEngine;
use hark_speech::summary::ChatSummarizer;
use hark_speech::{Engine, Options, SpeechError, Transcript};
use hark_store::jobs::{Job, Outcome};
use hark_store::recordings::Recording;
use serde::{Deserialize, Serialize};
use time::Duration;
use tokio::sync::{Notify, OnceCell, Semaphore};

use crate::outbound::OutboundError;
use crate::state::AppState;
use crate::webhooks::{self, Callback};

/// Longest a worker spends fetching audio from a URL.
const FETCH_DEADLINE: std::time::Duration = std::time::Duration::from_secs(15 * 60);

/// How many sentences the embedded summarizer keeps.
const SUMMARY_SENTENCES: usize = 3;

/// Who does the transcribing.
#[derive(Debug)]
pub enum Backend {
    /// The embedded Whisper engine on a local model folder.
    Embedded { model_dir: PathBuf },
    /// An OpenAI-compatible transcription server.
    Remote(RemoteEngine),
}

/// Who writes the summaries.
#[derive(Debug)]
pub enum Summaries {
    /// The embedded extractive summarizer.
    Extractive,
    /// An OpenAI-compatible chat model; the extractive summary stands in when it fails.
    Chat(ChatSummarizer),
}

#[derive(Debug)]
pub struct PipelineConfig {
    pub workers: usize,
    pub backend: Backend,
    pub summaries: Summaries,
    pub lease: Duration,
    pub poll_interval: std::time::Duration,
    pub max_attempts: i64,
    pub beam_size: usize,
    /// What one file may decode to (sample rates, length).
    pub decode_limits: DecodeLimits,
    /// How long a worker waits before trying again when the speech engine cannot load.
    pub model_retry: std::time::Duration,
}

/// What a client asked for when submitting audio, stored with the job.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct JobOptions {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt: Option<String>,
    /// Time every word (one more decoder pass per 30-second window). Background jobs
    /// always do; synchronous requests only when they ask.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub word_timestamps: bool,
    /// Where to report the job's end, in the dialect of the API that took it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub callback: Option<Callback>,
    /// The job's settings exactly as the client sent them, for dialects that echo them
    /// back (Speechmatics' `config`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_config: Option<serde_json::Value>,
    /// The token that submitted the job: its usage is charged the audio transcribed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_id: Option<i64>,
    /// The token whose audio budget the job spends, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget_token_id: Option<i64>,
}

pub struct Pipeline {
    pub config: PipelineConfig,
    engine: OnceCell<Arc<Engine>>,
    wake: Notify,
    /// Bounds synchronous transcriptions (the OpenAI-compatible endpoint) to the worker count.
    sync_slots: Semaphore,
    /// Set while the engine cannot load (no model installed), cleared once it does.
    engine_problem: std::sync::Mutex<Option<String>>,
}

impl Pipeline {
    pub fn new(config: PipelineConfig) -> Self {
        Pipeline {
            sync_slots: Semaphore::new(config.workers.max(1)),
            config,
            engine: OnceCell::new(),
            wake: Notify::new(),
            engine_problem: std::sync::Mutex::new(None),
        }
    }

    /// Why jobs wait for the engine, if they do (for `/readyz`).
    pub fn engine_problem(&self) -> Option<String> {
        self.engine_problem
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn set_engine_problem(&self, problem: Option<String>) {
        *self
            .engine_problem
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = problem;
    }

    /// Tells idle workers there is work, so they need not wait for their next poll.
    pub fn wake(&self) {
        self.wake.notify_waiters();
    }

    /// The embedded engine, loaded on first use (a few hundred milliseconds) and shared.
    async fn engine(&self, model_dir: &std::path::Path) -> Result<Arc<Engine>, SpeechError> {
        let dir = model_dir.to_path_buf();
        self.engine
            .get_or_try_init(|| async move {
                tokio::task::spawn_blocking(move || Engine::load(&dir).map(Arc::new))
                    .await
                    .map_err(|e| SpeechError::Model(format!("engine loading stopped: {e}")))?
            })
            .await
            .cloned()
    }

    /// The embedded engine for live streams, which a remote engine cannot serve.
    pub async fn embedded_engine(&self) -> Result<Arc<Engine>, SpeechError> {
        match &self.config.backend {
            Backend::Embedded { model_dir } => self.engine(model_dir).await,
            Backend::Remote(_) => Err(SpeechError::Model(
                "real-time transcription needs the embedded engine; this server sends audio to a remote engine"
                    .into(),
            )),
        }
    }

    pub fn decoding_options(&self, options: &JobOptions) -> Options {
        let mut decoding = Options {
            beam_size: self.config.beam_size,
            language: options.language.clone(),
            initial_prompt: options.prompt.clone(),
            word_timestamps: options.word_timestamps,
            ..Options::default()
        };
        if let Some(t) = options.temperature {
            decoding.temperatures = vec![t];
        }
        decoding
    }

    /// A summary of `text`, by the configured summarizer; never fails (the extractive
    /// summary stands in for a chat model that does not answer).
    pub async fn summarize(&self, text: &str) -> String {
        if let Summaries::Chat(chat) = &self.config.summaries {
            match chat.summarize(text).await {
                Ok(summary) => return summary,
                Err(e) => {
                    tracing::warn!(error = %e, "chat summary failed; using the extractive one")
                }
            }
        }
        hark_speech::summary::summarize(text, SUMMARY_SENTENCES)
    }

    /// Transcribes a file right away (bounded by the worker count), for synchronous APIs.
    pub async fn transcribe_now(
        &self,
        path: PathBuf,
        options: &JobOptions,
    ) -> Result<Transcript, SpeechError> {
        let _slot = self
            .sync_slots
            .acquire()
            .await
            .map_err(|_| SpeechError::Model("the server is shutting down".into()))?;
        self.transcribe(path, options, Arc::new(AtomicU64::new(0)))
            .await
    }

    /// Runs the configured backend; the embedded engine reports progress (0 to 1, as f64
    /// bits) while it works.
    pub async fn transcribe(
        &self,
        path: PathBuf,
        options: &JobOptions,
        progress: Arc<AtomicU64>,
    ) -> Result<Transcript, SpeechError> {
        match &self.config.backend {
            Backend::Remote(remote) => remote.transcribe(&path, options.language.as_deref()).await,
            Backend::Embedded { model_dir } => {
                let engine = self.engine(model_dir).await?;
                let decoding = self.decoding_options(options);
                let limits = self.config.decode_limits;
                tokio::task::spawn_blocking(move || {
                    // The file is the client's: should a decoder bug panic on it, the audio
                    // is at fault, not the server — fail the job rather than requeue it.
                    let decoded =
                        std::panic::catch_unwind(|| hark_speech::audio::load_16k(&path, &limits));
                    let samples = decoded.map_err(|_| {
                        SpeechError::Audio(
                            "the audio could not be decoded (the decoder failed)".into(),
                        )
                    })??;
                    engine.transcribe(&samples, &decoding, &mut |p| {
                        progress.store(p.to_bits(), Ordering::Relaxed)
                    })
                })
                .await
                .map_err(|e| SpeechError::Model(format!("transcription stopped: {e}")))?
            }
        }
    }
}

/// Starts the worker pool; each worker runs until the process ends.
pub fn spawn_workers(state: &AppState) -> Vec<tokio::task::JoinHandle<()>> {
    let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "hark".into());
    (0..state.pipeline.config.workers)
        .map(|n| {
            let state = state.clone();
            let name = format!("{host}-{}-{n}", std::process::id());
            tokio::spawn(async move { work(state, name).await })
        })
        .collect()
}

async fn work(state: AppState, name: String) {
    let (lease, poll) = (
        state.pipeline.config.lease,
        state.pipeline.config.poll_interval,
    );
    loop {
        // Registered before looking for work, so a wake-up during the claim is not missed.
        let wake = state.pipeline.wake.notified();
        tokio::pin!(wake);
        wake.as_mut().enable();
        match state.store.jobs().fail_exhausted().await {
            Ok(closed) => {
                for job in closed {
                    webhooks::job_ended(&state, job).await;
                }
            }
            Err(e) => tracing::warn!(error = %e, "could not close exhausted jobs"),
        }
        match state.store.jobs().claim(&name, lease).await {
            Ok(Some(job)) => process(&state, &name, job).await,
            Ok(None) => {
                tokio::select! {
                    () = wake => {}
                    () = tokio::time::sleep(poll) => {}
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "could not claim a job; retrying");
                tokio::time::sleep(poll).await;
            }
        }
    }
}

async fn process(state: &AppState, worker: &str, job: Job) {
    let jobs = state.store.jobs();
    tracing::info!(
        job = job.id,
        recording = job.recording_id,
        attempt = job.attempts,
        "transcription started"
    );
    let recording = match state.store.recordings().by_id(job.recording_id).await {
        Ok(r) => r,
        Err(hark_store::StoreError::NotFound) => {
            let _ = jobs.fail(&job, worker, "the recording is gone").await;
            return;
        }
        Err(e) => return retry_or_fail(state, worker, &job, &e.to_string()).await,
    };
    // The lease is kept alive from here on: fetching a URL can take minutes too.
    let progress = Arc::new(AtomicU64::new(0f64.to_bits()));
    let _heartbeat = Heartbeat(spawn_heartbeat(
        state.clone(),
        worker.to_owned(),
        job.clone(),
        progress.clone(),
    ));
    let blob_key = if recording.blob_key.is_empty() {
        match fetch_source(state, &recording).await {
            Ok(key) => key,
            Err(e @ (OutboundError::Failed(_) | OutboundError::Storage(_))) => {
                let reason = format!("the audio could not be fetched: {e}");
                return retry_or_fail(state, worker, &job, &reason).await;
            }
            Err(e) => {
                let reason = format!("the audio could not be fetched: {e}");
                tracing::info!(job = job.id, %reason, "the audio URL cannot be used");
                return fail(state, worker, &job, &reason).await;
            }
        }
    } else {
        recording.blob_key.clone()
    };
    let audio = match state.blobs.local_copy(&blob_key).await {
        Ok(audio) => audio,
        Err(hark_store::StoreError::NotFound) => {
            return fail(state, worker, &job, "the stored audio cannot be found").await;
        }
        Err(e) => {
            // The detail (the bucket's address, the key) is for the log, not the uploader.
            tracing::warn!(job = job.id, error = %e, "the stored audio could not be read");
            let reason = "the stored audio could not be read (storage unavailable)";
            return retry_or_fail(state, worker, &job, reason).await;
        }
    };
    // Stored transcripts keep their words, whatever the submitter asked: the documents API
    // serves them, and the decoder pass they cost is small beside the decoding.
    let options = JobOptions {
        word_timestamps: true,
        ..serde_json::from_str(&job.options).unwrap_or_default()
    };
    let result = state
        .pipeline
        .transcribe(audio.path().to_owned(), &options, progress)
        .await;
    let outcome = match result {
        Ok(transcript) => {
            state.pipeline.set_engine_problem(None);
            transcript
        }
        Err(SpeechError::Audio(reason)) => {
            tracing::info!(job = job.id, %reason, "the audio cannot be transcribed");
            return fail(state, worker, &job, &reason).await;
        }
        Err(SpeechError::Model(reason)) => {
            // The server is misconfigured, not the audio bad: the job waits for a fixed
            // server without losing the attempt, and says so.
            tracing::error!(job = job.id, %reason, "the speech engine is unavailable; the job stays queued");
            let waiting = format!("waiting for the server's speech engine: {reason}");
            if let Err(e) = jobs.give_back(&job, worker, &waiting).await {
                tracing::error!(job = job.id, error = %e, "could not hand the job back");
            }
            state.pipeline.set_engine_problem(Some(reason));
            tokio::time::sleep(state.pipeline.config.model_retry).await;
            return;
        }
        Err(e) => return retry_or_fail(state, worker, &job, &e.to_string()).await,
    };
    match jobs.mark_summarizing(&job, worker).await {
        Ok(true) => {}
        Ok(false) => {
            tracing::warn!(
                job = job.id,
                "lease lost before summarizing; another worker owns the job"
            );
            return;
        }
        Err(e) => return retry_or_fail(state, worker, &job, &e.to_string()).await,
    }
    let summary = state.pipeline.summarize(&outcome.text()).await;
    let stored = Outcome {
        segments: outcome.segments.iter().map(stored_segment).collect(),
        summary,
        duration_seconds: outcome.duration,
        language: outcome.language.clone(),
    };
    match jobs.complete(&job, worker, &stored).await {
        Ok(true) => {
            if let Some(token_id) = options.token_id {
                state.usage.add_audio(token_id, outcome.duration);
            }
            if let Some(holder) = options.budget_token_id {
                state.usage.spend(holder, outcome.duration);
            }
            tracing::info!(
                job = job.id,
                recording = job.recording_id,
                "transcription completed"
            );
            webhooks::job_ended(state, job.id).await;
        }
        Ok(false) => tracing::warn!(
            job = job.id,
            "lease lost before completion; another worker owns the job"
        ),
        Err(e) => retry_or_fail(state, worker, &job, &e.to_string()).await,
    }
}

/// The engine's segment as stored and served: text trimmed, words kept as they are (their
/// leading spaces are how they join back into the text).
pub fn stored_segment(s: &hark_speech::Segment) -> Segment {
    Segment {
        start: s.start,
        end: s.end,
        text: s.text.trim().to_owned(),
        words: s
            .words
            .iter()
            .map(|w| Word {
                word: w.text.clone(),
                start: w.start,
                end: w.end,
                probability: w.probability,
            })
            .collect(),
    }
}

/// Fetches a URL recording's audio into a blob and records it on the recording.
async fn fetch_source(state: &AppState, recording: &Recording) -> Result<String, OutboundError> {
    let Some(url) = recording.source_url.as_deref() else {
        return Err(OutboundError::Unacceptable(
            "the recording has neither audio nor a URL".into(),
        ));
    };
    let limit = state.config.max_upload_bytes as u64;
    let fetched = state
        .outbound
        .fetch_audio(&state.blobs, url, limit, FETCH_DEADLINE)
        .await?;
    let size = fetched.writer.size() as i64;
    let key = fetched.writer.commit().await?;
    if let Err(e) = state
        .store
        .recordings()
        .attach_audio(recording.id, &key, fetched.content_type, size)
        .await
    {
        let _ = state.blobs.delete(&key).await;
        return Err(e.into());
    }
    Ok(key)
}

/// Ends a job for good and tells its receivers.
async fn fail(state: &AppState, worker: &str, job: &Job, reason: &str) {
    match state.store.jobs().fail(job, worker, reason).await {
        Ok(true) => webhooks::job_ended(state, job.id).await,
        Ok(false) => {}
        Err(e) => tracing::error!(job = job.id, error = %e, "could not record the failure"),
    }
}

async fn retry_or_fail(state: &AppState, worker: &str, job: &Job, reason: &str) {
    tracing::warn!(job = job.id, attempt = job.attempts, %reason, "transcription attempt failed");
    if job.attempts >= job.max_attempts {
        return fail(state, worker, job, reason).await;
    }
    if let Err(e) = state.store.jobs().release(job, worker, reason).await {
        tracing::error!(job = job.id, error = %e, "could not record the failure");
    }
}

/// Stops a job's heartbeat when the worker is done with the job, whichever way.
struct Heartbeat(tokio::task::JoinHandle<()>);

impl Drop for Heartbeat {
    fn drop(&mut self) {
        self.0.abort();
    }
}

fn spawn_heartbeat(
    state: AppState,
    worker: String,
    job: Job,
    progress: Arc<AtomicU64>,
) -> tokio::task::JoinHandle<()> {
    let job_id = job.id;
    tokio::spawn(async move {
        let lease = state.pipeline.config.lease;
        let every =
            std::time::Duration::from_millis((lease.whole_milliseconds() / 3).max(100) as u64);
        loop {
            tokio::time::sleep(every).await;
            let done = f64::from_bits(progress.load(Ordering::Relaxed));
            match state
                .store
                .jobs()
                .heartbeat(&job, &worker, lease, done)
                .await
            {
                Ok(true) => {}
                Ok(false) => {
                    tracing::warn!(job = job_id, "lease lost");
                    return;
                }
                Err(e) => tracing::warn!(job = job_id, error = %e, "heartbeat failed"),
            }
        }
    })
}
