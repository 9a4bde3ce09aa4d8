//! Streaming recognition: 16 kHz samples in as they arrive, *partial* words (may still
//! change) and *final* words (never revised) out, timed in the stream.
//!
//! The policy is LocalAgreement-2 (Macháček, Dabre and Bojar 2023, ufal/whisper_streaming):
//! the unconfirmed audio is re-decoded as it grows, and a word becomes final once two
//! consecutive hypotheses agree on it. Two things bound latency where agreement is slow:
//! a pause found by the voice detector finalises everything said before it, and a word
//! still unconfirmed `max_delay` after it ended is finalised as it stands. Silence is never
//! decoded, and the unconfirmed audio never grows past one 30-second window.

use std::sync::Arc;
use std::time::Instant;

use crate::SpeechError;
use crate::audio::SAMPLE_RATE;
use crate::engine::{Engine, Options, Word};
use crate::vad::{Silero, VAD_CHUNK, VadState};

/// Seconds of unconfirmed audio past which confirmed audio is cut off the buffer.
const TRIM_AFTER: f64 = 8.0;
/// The buffer is finalised whole before it reaches Whisper's 30-second window.
const MAX_BUFFER: f64 = 25.0;
/// Words starting this much before the last final's end are taken as already said.
const OVERLAP_TOLERANCE: f64 = 0.1;
/// Characters of final text given to the decoder as context for what follows.
const PROMPT_CHARS: usize = 200;
/// Seconds at the end of the audio whose words agreement does not finalise.
const UNSTABLE_TAIL: f64 = 1.0;
/// Whisper invents text for very short audio: the first decode waits for this much.
const FIRST_DECODE: f64 = 1.0;
/// A chunk is speech when the detector's probability reaches this (OpenAI's server VAD
/// default).
const SPEECH_THRESHOLD: f32 = 0.5;

/// How a stream wants its words.
#[derive(Debug, Clone)]
pub struct StreamSettings {
    /// Most seconds between a word's end in the audio and its final (Speechmatics'
    /// `max_delay`).
    pub max_delay: f64,
    /// Seconds of new audio that make a fresh decode worthwhile.
    pub min_step: f64,
    /// Seconds of silence after speech that end an utterance.
    pub pause: f64,
    pub language: Option<String>,
}

impl Default for StreamSettings {
    fn default() -> Self {
        StreamSettings {
            // Measured at real-time pace (BENCHMARKS.md): 1.5 s gives the lowest WER of
            // 1, 1.5 and 2 s with a median final latency under 1.5 s.
            max_delay: 1.5,
            min_step: 0.5,
            pause: 0.5,
            language: None,
        }
    }
}

/// What one step learned.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Update {
    /// Newly final words, in order; they follow every earlier final.
    pub finals: Vec<Word>,
    /// The current guess at what follows the finals (replaces the previous partial).
    pub partial: Vec<Word>,
    /// The voice detector found the end of an utterance.
    pub end_of_utterance: bool,
}

/// Decides which 32 ms chunks hold speech.
pub enum VoiceDetector {
    /// Silero VAD: a small neural net, robust to noise.
    Silero(Arc<Silero>, Box<VadState>),
    /// Loudness only: used when the Silero weights are not installed.
    Energy,
}

impl VoiceDetector {
    pub fn silero(model: Arc<Silero>) -> Self {
        let state = Box::new(model.state());
        VoiceDetector::Silero(model, state)
    }

    fn is_speech(&mut self, chunk: &[f32]) -> Result<bool, SpeechError> {
        match self {
            VoiceDetector::Silero(model, state) => {
                Ok(model.probability(state, chunk)? >= SPEECH_THRESHOLD)
            }
            VoiceDetector::Energy => {
                let power = chunk.iter().map(|s| s * s).sum::<f32>() / chunk.len() as f32;
                // About -40 dBFS: quiet speech is louder, room noise quieter.
                Ok(power > 1e-4)
            }
        }
    }
}

pub struct StreamingRecognizer {
    engine: Arc<Engine>,
    detector: VoiceDetector,
    settings: StreamSettings,
    /// Audio not yet behind a final, starting at `buffer_start` seconds into the stream.
    buffer: Vec<f32>,
    buffer_start: f64,
    /// Samples received in all.
    received: usize,
    /// Samples waiting for a whole detector chunk.
    unclassified: Vec<f32>,
    /// Seconds into the stream where the last speech chunk ended (`None`: none in the buffer).
    last_speech_end: Option<f64>,
    /// Buffer length at the last decode.
    decoded_len: usize,
    /// Where the last final word ended.
    final_end: f64,
    /// Finals whose audio is still in the buffer (the decoder hears them again).
    committed: Vec<Word>,
    /// The tail of the final text whose audio has left the buffer: the decoder's context.
    context: String,
    /// The previous hypothesis past the finals.
    previous: Vec<Word>,
    /// Seconds the last decode took: the margin kept to meet `max_delay`.
    last_cost: f64,
}

impl StreamingRecognizer {
    pub fn new(engine: Arc<Engine>, detector: VoiceDetector, settings: StreamSettings) -> Self {
        StreamingRecognizer {
            engine,
            detector,
            settings,
            buffer: Vec::new(),
            buffer_start: 0.0,
            received: 0,
            unclassified: Vec::new(),
            last_speech_end: None,
            decoded_len: 0,
            final_end: 0.0,
            committed: Vec::new(),
            context: String::new(),
            previous: Vec::new(),
            last_cost: 0.3,
        }
    }

    /// Seconds of audio received.
    pub fn received_seconds(&self) -> f64 {
        self.received as f64 / SAMPLE_RATE as f64
    }

    /// Seconds of audio not yet behind a final.
    pub fn pending_seconds(&self) -> f64 {
        (self.buffer.len() + self.unclassified.len()) as f64 / SAMPLE_RATE as f64
    }

    /// Adds audio. Cheap: only the voice detector runs here.
    pub fn push(&mut self, samples: &[f32]) -> Result<(), SpeechError> {
        self.unclassified.extend_from_slice(samples);
        let whole = self.unclassified.len() / VAD_CHUNK * VAD_CHUNK;
        for chunk in self.unclassified[..whole].chunks_exact(VAD_CHUNK) {
            self.received += VAD_CHUNK;
            self.buffer.extend_from_slice(chunk);
            if self.detector.is_speech(chunk)? {
                self.last_speech_end = Some(self.received_seconds());
            }
        }
        self.unclassified.drain(..whole);
        if self.last_speech_end.is_none() {
            // Nothing said yet: keep only a little lead-in, so silence costs neither
            // memory nor decoding.
            let keep = SAMPLE_RATE as usize / 2;
            if self.buffer.len() > 2 * keep {
                let cut = self.buffer.len() - keep;
                self.cut_buffer(cut);
            }
        }
        Ok(())
    }

    /// Is a decode due? False while there is nothing new worth decoding.
    pub fn due(&self) -> bool {
        let Some(speech_end) = self.last_speech_end else {
            return false;
        };
        let fresh = (self.buffer.len() - self.decoded_len.min(self.buffer.len())) as f64
            / SAMPLE_RATE as f64;
        let buffered = self.buffer.len() as f64 / SAMPLE_RATE as f64;
        let enough = buffered >= FIRST_DECODE || !self.committed.is_empty();
        (enough && fresh >= self.settings.min_step) || self.paused_at(speech_end)
    }

    fn paused_at(&self, speech_end: f64) -> bool {
        self.received_seconds() - speech_end >= self.settings.pause
    }

    /// Re-decodes the unconfirmed audio and moves what is settled to the finals.
    pub fn step(&mut self) -> Result<Update, SpeechError> {
        let Some(speech_end) = self.last_speech_end else {
            return Ok(Update::default());
        };
        let started = Instant::now();
        let hypothesis = self.decode()?;
        self.last_cost = started.elapsed().as_secs_f64();
        let pause = self.paused_at(speech_end);
        let full = self.buffer.len() as f64 / SAMPLE_RATE as f64 >= MAX_BUFFER;
        let mut update = if pause || full {
            // An utterance ended (or the window is full): everything heard is final.
            self.previous.clear();
            let finals = hypothesis;
            self.finalize(&finals);
            self.cut_buffer_at(if pause { speech_end } else { self.final_end });
            if pause {
                self.last_speech_end = None;
            }
            Update {
                finals,
                partial: Vec::new(),
                end_of_utterance: pause,
            }
        } else {
            self.agree(hypothesis)
        };
        if self.buffer.len() as f64 / SAMPLE_RATE as f64 > TRIM_AFTER {
            self.cut_buffer_at(self.final_end);
        }
        update.partial.retain(|w| !w.text.trim().is_empty());
        Ok(update)
    }

    /// Decodes whatever is left and makes it final: the stream (or, for a client that
    /// commits its own turns, the utterance) has ended. Audio may follow.
    pub fn finish(&mut self) -> Result<Update, SpeechError> {
        self.push_remainder();
        if self.last_speech_end.is_none() {
            return Ok(Update {
                finals: Vec::new(),
                partial: Vec::new(),
                end_of_utterance: false,
            });
        }
        let finals = self.decode()?;
        self.finalize(&finals);
        self.previous.clear();
        let all = self.buffer.len();
        self.cut_buffer(all);
        self.last_speech_end = None;
        Ok(Update {
            finals,
            partial: Vec::new(),
            end_of_utterance: true,
        })
    }

    /// Forgets the audio not yet behind a final (OpenAI's `input_audio_buffer.clear`).
    pub fn clear(&mut self) {
        self.received += self.unclassified.len();
        self.unclassified.clear();
        let all = self.buffer.len();
        self.cut_buffer(all);
        self.previous.clear();
        self.last_speech_end = None;
    }

    /// The samples short of a detector chunk count as speech at the end of a stream.
    fn push_remainder(&mut self) {
        if self.unclassified.is_empty() {
            return;
        }
        let rest = std::mem::take(&mut self.unclassified);
        self.received += rest.len();
        self.buffer.extend_from_slice(&rest);
    }

    /// LocalAgreement-2: the common prefix of this and the previous hypothesis is final;
    /// so is anything that has waited as long as `max_delay` allows.
    fn agree(&mut self, hypothesis: Vec<Word>) -> Update {
        // The last second of audio is where hypotheses are least stable (a word may be cut
        // off mid-way): agreement there is not yet trusted.
        let settled_before = self.received_seconds() - UNSTABLE_TAIL;
        let agreed = self
            .previous
            .iter()
            .zip(&hypothesis)
            .take_while(|(a, b)| same_word(&a.text, &b.text) && b.end <= settled_before)
            .count();
        // A word that falls due just after a decode starts waits for that decode and the
        // next: two decodes' time is the margin.
        let deadline =
            self.received_seconds() - (self.settings.max_delay - 2.0 * self.last_cost).max(0.2);
        let overdue = hypothesis
            .iter()
            .rposition(|w| w.end <= deadline)
            .map_or(0, |i| i + 1);
        let settled = agreed.max(overdue).min(hypothesis.len());
        let mut rest = hypothesis;
        let finals: Vec<Word> = rest.drain(..settled).collect();
        self.finalize(&finals);
        self.previous = rest.clone();
        Update {
            finals,
            partial: rest,
            end_of_utterance: false,
        }
    }

    fn finalize(&mut self, words: &[Word]) {
        if let Some(last) = words.last() {
            self.final_end = self.final_end.max(last.end);
        }
        self.committed.extend_from_slice(words);
    }

    /// Finals whose audio is cut away become the decoder's context.
    fn retire_committed(&mut self) {
        let cut = self.buffer_start + 0.01;
        let gone = self.committed.iter().take_while(|w| w.end <= cut).count();
        for w in self.committed.drain(..gone) {
            self.context.push_str(&w.text);
        }
        let excess = self.context.len().saturating_sub(PROMPT_CHARS);
        if excess > 0 {
            let at = (excess..=self.context.len())
                .find(|&i| self.context.is_char_boundary(i))
                .unwrap_or(self.context.len());
            self.context.drain(..at);
        }
    }

    /// Words of the buffer past the finals, timed in the stream.
    fn decode(&mut self) -> Result<Vec<Word>, SpeechError> {
        self.decoded_len = self.buffer.len();
        let options = Options {
            beam_size: 1,
            // Greedy first; a repetitive or unsure hypothesis (Whisper stuck in a loop on
            // looping audio) is decoded once more with sampling, as batch decoding does.
            temperatures: vec![0.0, 0.5],
            language: self.settings.language.clone(),
            initial_prompt: Some(self.context.clone()).filter(|t| !t.trim().is_empty()),
            condition_on_previous_text: false,
            word_timestamps: true,
            encoder_context: crate::engine::EncoderContext::STREAMING,
            ..Options::default()
        };
        let transcript = self
            .engine
            .transcribe(&self.buffer, &options, &mut |_| {})?;
        let offset = self.buffer_start;
        let mut words: Vec<Word> = transcript
            .segments
            .into_iter()
            .flat_map(|s| s.words)
            .map(|mut w| {
                w.start += offset;
                w.end += offset;
                w
            })
            .filter(|w| w.start >= self.final_end - OVERLAP_TOLERANCE)
            .collect();
        // Whisper may repeat the last final words at the start of its hypothesis.
        let tail: Vec<&str> = if self.committed.is_empty() {
            self.context.split_whitespace().collect()
        } else {
            self.committed.iter().map(|w| w.text.as_str()).collect()
        };
        for n in (1..=5.min(words.len()).min(tail.len())).rev() {
            let repeated = words[..n]
                .iter()
                .zip(&tail[tail.len() - n..])
                .all(|(w, t)| same_word(&w.text, t));
            if repeated {
                words.drain(..n);
                break;
            }
        }
        // A word straddling the last final is that final heard again ("Drive" / "Driver").
        if let (Some(first), Some(last)) = (words.first(), tail.last())
            && first.start < self.final_end
            && overlapping_word(&first.text, last)
        {
            words.remove(0);
        }
        // Finals never go back in time, even by the aligner's 20 ms.
        for w in &mut words {
            w.start = w.start.max(self.final_end);
            w.end = w.end.max(w.start);
        }
        Ok(words)
    }

    fn cut_buffer_at(&mut self, seconds: f64) {
        let samples = ((seconds - self.buffer_start) * SAMPLE_RATE as f64).max(0.0) as usize;
        self.cut_buffer(samples.min(self.buffer.len()));
    }

    fn cut_buffer(&mut self, samples: usize) {
        self.buffer.drain(..samples);
        self.buffer_start += samples as f64 / SAMPLE_RATE as f64;
        self.decoded_len = self.decoded_len.saturating_sub(samples);
        self.retire_committed();
    }
}

/// Words compared as a listener would: case and punctuation aside.
fn same_word(a: &str, b: &str) -> bool {
    let norm = |s: &str| {
        s.chars()
            .filter(|c| c.is_alphanumeric())
            .flat_map(char::to_lowercase)
            .collect::<String>()
    };
    norm(a) == norm(b)
}

/// One word is the other with an ending added or lost.
fn overlapping_word(a: &str, b: &str) -> bool {
    let norm = |s: &str| {
        s.chars()
            .filter(|c| c.is_alphanumeric())
            .flat_map(char::to_lowercase)
            .collect::<String>()
    };
    let (a, b) = (norm(a), norm(b));
    !a.is_empty() && !b.is_empty() && (a.starts_with(&b) || b.starts_with(&a))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_match_whatever_their_case_and_punctuation() {
        assert!(same_word(" Hello,", "hello"));
        assert!(!same_word(" hello", "help"));
        assert!(overlapping_word(" Driver", " Drive"));
        assert!(!overlapping_word(" the", " a"));
    }
}
