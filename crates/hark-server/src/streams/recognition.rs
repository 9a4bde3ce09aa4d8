//! One live stream's recognizer, on a blocking thread of its own: audio goes in through a
//! bounded channel (a client sending faster than we decode is slowed by TCP, never
//! buffered without end), updates come out as they are decided.
//!
//! The thread takes whatever audio has arrived before each decode, so when the machine is
//! busy decodes simply come less often, over more audio, rather than queueing up.

use std::collections::VecDeque;
use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use hark_speech::streaming::{StreamSettings, StreamingRecognizer, Update, VoiceDetector};
use hark_speech::vad::Silero;
use hark_speech::{Engine, SpeechError};
use tokio::sync::mpsc;

use super::StreamPermit;
use super::metrics::StreamMetrics;

/// Audio messages that may wait for the recognizer (a few seconds of typical frames).
const INPUT_QUEUE: usize = 64;
/// The recognizer stops taking queued audio past this much unconfirmed audio, so one
/// burst cannot push its buffer past Whisper's window.
const MAX_PENDING_SECONDS: f64 = 20.0;
/// Arrival times remembered for latency metrics.
const MAX_ARRIVALS: usize = 4096;

enum Input {
    Audio(Vec<f32>),
    /// Finalise what was received, then go on listening.
    Flush,
    /// Forget what is not final yet.
    Clear,
    End,
}

/// What the recognizer tells the connection.
#[derive(Debug)]
pub enum StreamEvent {
    Update(TimedUpdate),
    /// Everything received so far is final (after [`LiveStream::flush`]).
    Flushed,
    /// Everything received has been finalised (after [`LiveStream::end`]).
    Finished,
    /// The recognizer stopped; the message is fit for the client.
    Failed(String),
}

#[derive(Debug)]
pub struct TimedUpdate {
    pub update: Update,
    /// Seconds of audio received when this was decided.
    pub audio_seconds: f64,
}

pub struct LiveStream {
    input: mpsc::Sender<Input>,
    events: mpsc::UnboundedReceiver<StreamEvent>,
    /// (stream seconds received, when) per piece of audio, for final latency.
    arrivals: VecDeque<(f64, Instant)>,
    received_samples: usize,
    metrics: Arc<StreamMetrics>,
    _permit: StreamPermit,
}

impl Drop for LiveStream {
    fn drop(&mut self) {
        self._permit
            .streamed(self.received_samples as f64 / 16_000.0);
    }
}

impl LiveStream {
    /// Starts a recognizer once `engine` is ready; audio sent meanwhile waits in the queue,
    /// so a session can be acknowledged before the model has loaded.
    pub fn start<F>(
        engine: F,
        silero: Option<Arc<Silero>>,
        settings: StreamSettings,
        permit: StreamPermit,
        metrics: Arc<StreamMetrics>,
    ) -> Self
    where
        F: Future<Output = Result<Arc<Engine>, SpeechError>> + Send + 'static,
    {
        let (input, inbox) = mpsc::channel(INPUT_QUEUE);
        let (outbox, events) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            let engine = match engine.await {
                Ok(engine) => engine,
                Err(e) => {
                    let _ = outbox.send(StreamEvent::Failed(e.to_string()));
                    return;
                }
            };
            let detector = silero.map_or(VoiceDetector::Energy, VoiceDetector::silero);
            let recognizer = StreamingRecognizer::new(engine, detector, settings);
            let fail = outbox.clone();
            let run = tokio::task::spawn_blocking(move || recognize(recognizer, inbox, &outbox));
            match run.await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    let _ = fail.send(StreamEvent::Failed(e.to_string()));
                }
                Err(_) => {
                    let _ = fail.send(StreamEvent::Failed("the recognizer stopped".into()));
                }
            }
        });
        LiveStream {
            input,
            events,
            arrivals: VecDeque::new(),
            received_samples: 0,
            metrics,
            _permit: permit,
        }
    }

    /// Queues 16 kHz samples; waits while the recognizer is behind. `false` once the
    /// recognizer has stopped.
    pub async fn send_audio(&mut self, samples: Vec<f32>) -> bool {
        if samples.is_empty() {
            return true;
        }
        self.received_samples += samples.len();
        self.metrics.audio_received(samples.len());
        if self.arrivals.len() == MAX_ARRIVALS {
            self.arrivals.pop_front();
        }
        self.arrivals
            .push_back((self.received_seconds(), Instant::now()));
        self.input.send(Input::Audio(samples)).await.is_ok()
    }

    pub fn received_seconds(&self) -> f64 {
        self.received_samples as f64 / 16_000.0
    }

    /// No more audio: finalise what was received, then [`StreamEvent::Finished`].
    pub async fn end(&mut self) {
        let _ = self.input.send(Input::End).await;
    }

    /// Finalise what was received, then [`StreamEvent::Flushed`]; audio may follow.
    pub async fn flush(&mut self) {
        let _ = self.input.send(Input::Flush).await;
    }

    /// Drop the audio that is not final yet.
    pub async fn clear(&mut self) {
        let _ = self.input.send(Input::Clear).await;
    }

    /// The next event; `None` once the recognizer is gone. Notes final latencies.
    pub async fn next_event(&mut self) -> Option<StreamEvent> {
        let event = self.events.recv().await?;
        if let StreamEvent::Update(timed) = &event {
            let now = Instant::now();
            for word in &timed.update.finals {
                let arrived = self
                    .arrivals
                    .iter()
                    .find(|(seconds, _)| *seconds + 1e-6 >= word.end)
                    .map(|(_, at)| *at);
                if let Some(at) = arrived {
                    self.metrics
                        .final_latency(now.duration_since(at).as_secs_f64());
                }
            }
            if let Some(last) = timed.update.finals.last() {
                let keep_from = last.end - 1.0;
                while self.arrivals.len() > 1
                    && self.arrivals.get(1).is_some_and(|(s, _)| *s < keep_from)
                {
                    self.arrivals.pop_front();
                }
            }
        }
        Some(event)
    }
}

/// The recognizer's loop: take the audio that is there, decode when due, repeat.
fn recognize(
    mut recognizer: StreamingRecognizer,
    mut inbox: mpsc::Receiver<Input>,
    outbox: &mpsc::UnboundedSender<StreamEvent>,
) -> Result<(), SpeechError> {
    let mut ended = false;
    let send = |update: Update, seconds: f64| {
        outbox
            .send(StreamEvent::Update(TimedUpdate {
                update,
                audio_seconds: seconds,
            }))
            .is_ok()
    };
    // Handles one input; `false` when it asks to stop taking more before deciding.
    let take = |recognizer: &mut StreamingRecognizer,
                input: Input,
                ended: &mut bool|
     -> Result<bool, SpeechError> {
        match input {
            Input::Audio(samples) => {
                recognizer.push(&samples)?;
                Ok(true)
            }
            Input::Flush => {
                let update = recognizer.finish()?;
                send(update, recognizer.received_seconds());
                let _ = outbox.send(StreamEvent::Flushed);
                Ok(false)
            }
            Input::Clear => {
                recognizer.clear();
                Ok(true)
            }
            Input::End => {
                *ended = true;
                Ok(false)
            }
        }
    };
    loop {
        if !recognizer.due() && !ended {
            match inbox.blocking_recv() {
                Some(input) => {
                    take(&mut recognizer, input, &mut ended)?;
                }
                None => return Ok(()),
            }
        }
        while !ended && recognizer.pending_seconds() < MAX_PENDING_SECONDS {
            match inbox.try_recv() {
                Ok(input) => {
                    if !take(&mut recognizer, input, &mut ended)? {
                        break;
                    }
                }
                Err(mpsc::error::TryRecvError::Empty) => break,
                Err(mpsc::error::TryRecvError::Disconnected) => return Ok(()),
            }
        }
        if ended {
            let last = recognizer.finish()?;
            let seconds = recognizer.received_seconds();
            if !last.finals.is_empty() {
                send(last, seconds);
            }
            let _ = outbox.send(StreamEvent::Finished);
            return Ok(());
        }
        if recognizer.due() {
            let update = recognizer.step()?;
            if !send(update, recognizer.received_seconds()) {
                return Ok(());
            }
        }
    }
}
