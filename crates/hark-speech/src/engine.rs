//! The embedded engine: a Whisper model loaded once, shared by every worker, turning
//! 16 kHz samples into timed segments. Long audio is walked in 30-second windows, each
//! starting where the last confidently timed segment ended.

use std::io::Write;
use std::ops::Range;
use std::path::Path;

use candle_core::{Device, Tensor};
use serde::Deserialize;

use crate::SpeechError;
use crate::ct2::Ct2Model;
pub use crate::decode::EncoderContext;
use crate::decode::{
    Decoder, Suppression, WindowRequest, WindowResult, repeats, trimmed_token_cap,
};
use crate::hf::HfWhisper;
use crate::mel::{HOP, Spectrogram, WINDOW_FRAMES, filterbank};
use crate::timing::{Aligner, add_word_timestamps, settle};
use crate::tokenizer::Tokenizer;
use crate::whisper::Whisper;

/// Seconds per timestamp step.
const TIME_PRECISION: f64 = 0.02;
/// Mel frames per timestamp step (the encoder halves the time resolution).
const FRAMES_PER_STEP: usize = 2;

/// How to decode. The defaults are faster-whisper's.
#[derive(Debug, Clone)]
pub struct Options {
    /// 1 for greedy decoding.
    pub beam_size: usize,
    /// Tried in order while a window's result looks unreliable.
    pub temperatures: Vec<f64>,
    pub language: Option<String>,
    /// Text that steers the first window (spellings, names, style), as OpenAI's `prompt`.
    pub initial_prompt: Option<String>,
    pub timestamps: bool,
    pub condition_on_previous_text: bool,
    pub compression_ratio_threshold: f64,
    pub logprob_threshold: f64,
    pub no_speech_threshold: f64,
    /// Times each word from the cross-attention of the model's alignment heads (one more
    /// decoder pass per window); off by default because most callers want segments only.
    pub word_timestamps: bool,
    /// How much of the encoder's 30-second context a window shorter than 30 s is encoded
    /// over; the full window by default, as the model was trained.
    pub encoder_context: EncoderContext,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            beam_size: 5,
            temperatures: vec![0.0, 0.2, 0.4, 0.6, 0.8, 1.0],
            language: None,
            initial_prompt: None,
            timestamps: true,
            condition_on_previous_text: true,
            compression_ratio_threshold: 2.4,
            logprob_threshold: -1.0,
            no_speech_threshold: 0.6,
            word_timestamps: false,
            encoder_context: EncoderContext::Full,
        }
    }
}

/// One word, timed by aligning the decoder's cross-attention with the audio (never by
/// spreading a segment's span over its words).
#[derive(Debug, Clone, PartialEq)]
pub struct Word {
    /// Seconds from the start of the audio.
    pub start: f64,
    pub end: f64,
    /// The word as Whisper's tokens spell it, leading space included (faster-whisper's
    /// convention), so that joining a segment's words gives its text.
    pub text: String,
    /// The mean probability of the word's tokens.
    pub probability: f32,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Segment {
    pub start: f64,
    pub end: f64,
    pub text: String,
    /// Empty unless `Options::word_timestamps` asked for them.
    pub words: Vec<Word>,
}

#[derive(Debug, Clone)]
pub struct Transcript {
    pub segments: Vec<Segment>,
    pub duration: f64,
    pub language: String,
}

impl Transcript {
    pub fn text(&self) -> String {
        self.segments
            .iter()
            .map(|s| s.text.trim())
            .filter(|t| !t.is_empty())
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// The `config.json` fields decoding needs, under CTranslate2's names or Hugging Face's
/// (which may keep them in `generation_config.json` instead).
#[derive(Deserialize, Default)]
struct SuppressionConfig {
    #[serde(default, alias = "suppress_tokens")]
    suppress_ids: Vec<u32>,
    #[serde(default, alias = "begin_suppress_tokens")]
    suppress_ids_begin: Vec<u32>,
    /// `[layer, head]` pairs of the decoder's cross-attention heads that follow the audio
    /// (for word timestamps).
    #[serde(default)]
    alignment_heads: Vec<(usize, usize)>,
}

impl SuppressionConfig {
    fn read(dir: &Path) -> Result<Self, SpeechError> {
        let mut config = SuppressionConfig::default();
        for file in ["config.json", "generation_config.json"] {
            let Ok(text) = std::fs::read_to_string(dir.join(file)) else {
                continue;
            };
            let found: SuppressionConfig = serde_json::from_str(&text)
                .map_err(|e| SpeechError::Model(format!("{file}: {e}")))?;
            if config.suppress_ids.is_empty() {
                config.suppress_ids = found.suppress_ids;
            }
            if config.suppress_ids_begin.is_empty() {
                config.suppress_ids_begin = found.suppress_ids_begin;
            }
            if config.alignment_heads.is_empty() {
                config.alignment_heads = found.alignment_heads;
            }
        }
        Ok(config)
    }
}

pub struct Engine {
    model: Whisper,
    tokenizer: Tokenizer,
    filters: Vec<f32>,
    suppression: Suppression,
    english_only: bool,
    /// `(decoder layer, head)` pairs whose cross-attention times words.
    alignment_heads: Vec<(usize, usize)>,
}

impl Engine {
    /// Loads a Whisper folder: CTranslate2 (`model.bin`, `config.json`, `tokenizer.json`)
    /// or Hugging Face (`model.safetensors`, `config.json`, `tokenizer.json`).
    pub fn load(dir: &Path) -> Result<Self, SpeechError> {
        let device = Device::Cpu;
        let model = if dir.join("model.bin").is_file() {
            let ct2 = Ct2Model::open(&dir.join("model.bin"))?;
            Whisper::from_ct2(&ct2, &device)?
        } else if dir.join("model.safetensors").is_file() {
            Whisper::from_weights(&HfWhisper::open(dir)?, &device)?
        } else {
            return Err(SpeechError::Model(format!(
                "no model.bin (CTranslate2) or model.safetensors (Hugging Face) in {} \
                 (run scripts/fetch-model.sh to get the bundled model)",
                dir.display()
            )));
        };
        let tokenizer = Tokenizer::open(&dir.join("tokenizer.json"))?;
        let config = SuppressionConfig::read(dir)?;
        let special = tokenizer.tokens;
        let mut always = config.suppress_ids;
        always.extend(
            [
                special.transcribe,
                special.translate,
                special.start_of_prev,
                special.start_of_lm,
                special.no_speech,
            ]
            .into_iter()
            .flatten(),
        );
        always.push(special.sot);
        let mut at_begin = config.suppress_ids_begin;
        at_begin.push(special.eot);
        // Multilingual Whisper vocabularies hold 51,865 tokens or more (language and task
        // tokens); the English-only ones (`*.en`) 51,864.
        let english_only = model.dims.vocab < 51865;
        // Without a list, OpenAI's default: every head of the upper half of the layers.
        let mut alignment_heads = config.alignment_heads;
        if alignment_heads.is_empty() {
            let (layers, heads) = (model.dims.decoder_layers, model.dims.decoder_heads);
            alignment_heads = (layers / 2..layers)
                .flat_map(|l| (0..heads).map(move |h| (l, h)))
                .collect();
        }
        Ok(Engine {
            alignment_heads,
            filters: filterbank(model.dims.n_mels),
            model,
            tokenizer,
            suppression: Suppression { always, at_begin },
            english_only,
        })
    }

    pub fn english_only(&self) -> bool {
        self.english_only
    }

    /// Transcribes 16 kHz mono samples; `progress` hears the fraction done after each window.
    pub fn transcribe(
        &self,
        samples: &[f32],
        options: &Options,
        progress: &mut dyn FnMut(f64),
    ) -> Result<Transcript, SpeechError> {
        let language = self.language(options)?;
        let special = self.tokenizer.tokens;
        let mut sot_sequence = vec![special.sot];
        if !self.english_only {
            if let Some(id) = self.tokenizer.language(&language) {
                sot_sequence.push(id);
            }
            sot_sequence.extend(special.transcribe);
        }
        // Word alignment reads the text after the bare start sequence, as timing.py does.
        let align_sequence = sot_sequence.clone();
        let aligner = Aligner {
            model: &self.model,
            tokenizer: &self.tokenizer,
            heads: &self.alignment_heads,
        };
        let mut last_speech = 0.0;
        if !options.timestamps {
            sot_sequence.push(special.no_timestamps);
        }
        let spectrogram = Spectrogram::compute(samples, &self.filters, self.model.dims.n_mels);
        let content = spectrogram.content_frames;
        let decoder = Decoder {
            model: &self.model,
            special,
            suppression: &self.suppression,
        };
        let max_tokens = self.model.dims.text_ctx / 2;
        let mut segments = Vec::new();
        let mut history: Vec<u32> = match options.initial_prompt.as_deref().map(str::trim) {
            Some(prompt) if !prompt.is_empty() => self.tokenizer.encode(&format!(" {prompt}"))?,
            _ => Vec::new(),
        };
        let mut seek = 0usize;
        'windows: while seek < content {
            let window_frames = (content - seek).min(WINDOW_FRAMES);
            let offset = (seek * HOP) as f64 / 16_000.0;
            let window_seconds = (window_frames * HOP) as f64 / 16_000.0;
            // Encoder positions (and timestamp steps) this window is encoded over. A trimmed
            // context that sends the decoder into a loop is given the full window instead.
            let full = self
                .model
                .dims
                .audio_ctx
                .min(WINDOW_FRAMES / FRAMES_PER_STEP);
            let mut positions = options.encoder_context.positions(window_frames, full);
            let (audio, result, temperature) = loop {
                let mel_frames = positions * FRAMES_PER_STEP;
                let mel = Tensor::from_vec(
                    spectrogram.window(seek, mel_frames),
                    (1, self.model.dims.n_mels, mel_frames),
                    self.model.device(),
                )?;
                let audio = self.model.encode(&mel)?;
                let trimmed = positions < full;
                let cap = if trimmed {
                    max_tokens.min(trimmed_token_cap(window_seconds))
                } else {
                    max_tokens
                };
                let mut chosen: Option<(WindowResult, f64)> = None;
                for (attempt, &temperature) in options.temperatures.iter().enumerate() {
                    let mut prompt = Vec::new();
                    let condition =
                        !history.is_empty() && (options.condition_on_previous_text || seek == 0);
                    if let Some(prev) = special.start_of_prev.filter(|_| condition) {
                        prompt.push(prev);
                        let keep = history.len().min(max_tokens - 1);
                        prompt.extend_from_slice(&history[history.len() - keep..]);
                    }
                    let sot_index = prompt.len();
                    prompt.extend_from_slice(&sot_sequence);
                    let request = WindowRequest {
                        prompt: &prompt,
                        sot_index,
                        temperature,
                        beam_size: options.beam_size.max(1),
                        timestamps: options.timestamps,
                        max_tokens: cap,
                        last_timestamp: positions as u32,
                        seed: (seek as u64) << 8 | attempt as u64,
                    };
                    let result = decoder.decode(&audio, &request)?;
                    let text = self.tokenizer.decode(&result.tokens);
                    let ratio = compression_ratio(&text);
                    let too_repetitive = ratio > options.compression_ratio_threshold;
                    let unsure = result.avg_logprob < options.logprob_threshold;
                    let silent = result.no_speech_prob > options.no_speech_threshold && unsure;
                    let last = attempt + 1 == options.temperatures.len();
                    if trimmed
                        && (too_repetitive
                            || result.tokens.len() >= cap
                            || repeats(&result.tokens, special.eot))
                    {
                        break;
                    }
                    if silent || !(too_repetitive || unsure) || last {
                        chosen = Some((result, temperature));
                        break;
                    }
                }
                match chosen {
                    Some((result, temperature)) => break (audio, result, temperature),
                    None if trimmed => positions = full,
                    None => break 'windows,
                }
            };
            if result.no_speech_prob > options.no_speech_threshold
                && result.avg_logprob < options.logprob_threshold
            {
                seek += window_frames;
                progress((seek.min(content)) as f64 / content as f64);
                continue;
            }
            let (mut window_segments, pieces, advance) =
                self.split_segments(&result.tokens, offset, window_seconds, window_frames);
            if options.word_timestamps {
                let texts: Vec<Vec<u32>> = pieces
                    .into_iter()
                    .map(|piece| {
                        result.tokens[piece]
                            .iter()
                            .copied()
                            .filter(|t| *t < special.eot)
                            .collect()
                    })
                    .collect();
                let alignment = aligner.align(
                    &audio,
                    &align_sequence,
                    &texts.concat(),
                    window_frames,
                    &language,
                )?;
                add_word_timestamps(
                    &mut window_segments,
                    &texts,
                    alignment,
                    offset,
                    &mut last_speech,
                );
            }
            segments.append(&mut window_segments);
            if temperature > 0.5 {
                history.clear();
            } else {
                history.extend(result.tokens.iter().copied());
            }
            seek += advance.max(1);
            progress((seek.min(content)) as f64 / content as f64);
        }
        segments.retain(|s| !s.text.trim().is_empty());
        let duration = samples.len() as f64 / 16_000.0;
        settle(&mut segments, duration);
        Ok(Transcript {
            segments,
            duration,
            language,
        })
    }

    fn language(&self, options: &Options) -> Result<String, SpeechError> {
        let requested = options
            .language
            .as_deref()
            .map(|l| l.trim().to_ascii_lowercase());
        match requested.as_deref() {
            None | Some("") => Ok("en".into()),
            Some(code) if self.english_only => {
                if code == "en" || code.starts_with("en-") {
                    Ok("en".into())
                } else {
                    Err(SpeechError::Audio(format!(
                        "this model transcribes English only; language {code:?} is not available"
                    )))
                }
            }
            Some(code) => {
                let base = code.split('-').next().unwrap_or(code);
                self.tokenizer
                    .language(base)
                    .map(|_| base.to_owned())
                    .ok_or_else(|| SpeechError::Audio(format!("unknown language {code:?}")))
            }
        }
    }

    /// Cuts a window's tokens into segments at consecutive timestamps; returns them, the
    /// range of `tokens` each came from, and how many mel frames to advance.
    fn split_segments(
        &self,
        tokens: &[u32],
        offset: f64,
        window_seconds: f64,
        window_frames: usize,
    ) -> (Vec<Segment>, Vec<Range<usize>>, usize) {
        let ts_begin = self.tokenizer.tokens.timestamp_begin;
        let is_ts = |t: &u32| *t >= ts_begin;
        let time = |t: u32| offset + f64::from(t - ts_begin) * TIME_PRECISION;
        let single_ending = tokens.len() >= 2
            && !is_ts(&tokens[tokens.len() - 2])
            && is_ts(&tokens[tokens.len() - 1]);
        let mut cuts: Vec<usize> = (1..tokens.len())
            .filter(|&i| is_ts(&tokens[i - 1]) && is_ts(&tokens[i]))
            .collect();
        let mut segments = Vec::new();
        let mut pieces = Vec::new();
        if !cuts.is_empty() {
            if single_ending {
                cuts.push(tokens.len());
            }
            let mut last = 0;
            for &cut in &cuts {
                let piece = &tokens[last..cut];
                if let (Some(&first), Some(&end)) = (piece.first(), piece.last())
                    && is_ts(&first)
                    && is_ts(&end)
                {
                    segments.push(Segment {
                        start: time(first),
                        end: time(end),
                        text: self.tokenizer.decode(piece),
                        words: Vec::new(),
                    });
                    pieces.push(last..cut);
                }
                last = cut;
            }
            let advance = if single_ending {
                window_frames
            } else {
                let last_ts = tokens[last - 1];
                (last_ts - ts_begin) as usize * FRAMES_PER_STEP
            };
            (segments, pieces, advance)
        } else {
            let mut duration = window_seconds;
            if let Some(&last) = tokens.iter().rev().find(|t| is_ts(t))
                && last != ts_begin
            {
                duration = f64::from(last - ts_begin) * TIME_PRECISION;
            }
            let text = self.tokenizer.decode(tokens);
            if !text.trim().is_empty() {
                segments.push(Segment {
                    start: offset,
                    end: offset + duration,
                    text,
                    words: Vec::new(),
                });
                pieces.push(0..tokens.len());
            }
            (segments, pieces, window_frames)
        }
    }
}

/// How well the text compresses: Whisper's sign of a decoder stuck repeating itself.
pub fn compression_ratio(text: &str) -> f64 {
    if text.is_empty() {
        return 0.0;
    }
    let mut encoder = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    if encoder.write_all(text.as_bytes()).is_err() {
        return 0.0;
    }
    match encoder.finish() {
        Ok(compressed) if !compressed.is_empty() => text.len() as f64 / compressed.len() as f64,
        _ => 0.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repetition_compresses_well() {
        let normal = "The marketing team finished the new landing page yesterday.";
        let stuck = "thank you ".repeat(40);
        assert!(compression_ratio(normal) < 2.4);
        assert!(compression_ratio(&stuck) > 2.4);
        assert_eq!(compression_ratio(""), 0.0);
    }

    fn bundled() -> Option<Engine> {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models/whisper-tiny.en");
        let engine = Engine::load(&dir);
        assert!(
            engine.is_ok() || !dir.exists(),
            "the bundled model does not load"
        );
        engine.ok()
    }

    #[test]
    fn the_encoder_takes_fewer_positions_and_no_more_than_its_own() -> Result<(), SpeechError> {
        let Some(engine) = bundled() else {
            return Ok(());
        };
        let dims = engine.model.dims;
        let mel = Tensor::zeros(
            (1, dims.n_mels, 2 * 314),
            candle_core::DType::F32,
            &Device::Cpu,
        )?;
        assert_eq!(engine.model.encode(&mel)?.dims(), &[1, 314, dims.d_model]);
        let mel = Tensor::zeros(
            (1, dims.n_mels, 3002),
            candle_core::DType::F32,
            &Device::Cpu,
        )?;
        assert!(engine.model.encode(&mel).is_err());
        Ok(())
    }

    #[test]
    fn a_short_clip_reads_the_same_with_a_trimmed_context() -> Result<(), SpeechError> {
        let Some(engine) = bundled() else {
            return Ok(());
        };
        let clip =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/audio/support_02.wav");
        let samples = crate::audio::load_16k(&clip, &Default::default())?;
        let mut options = Options {
            beam_size: 1,
            temperatures: vec![0.0],
            word_timestamps: true,
            ..Options::default()
        };
        let full = engine.transcribe(&samples, &options, &mut |_| {})?;
        options.encoder_context = EncoderContext::STREAMING;
        let trimmed = engine.transcribe(&samples, &options, &mut |_| {})?;
        // The same words (punctuation may differ: a comma more or less).
        let norm = crate::eval::normalize;
        assert_eq!(norm(&trimmed.text()), norm(&full.text()));
        let words = |t: &Transcript| {
            t.segments
                .iter()
                .flat_map(|s| s.words.clone())
                .collect::<Vec<_>>()
        };
        let (a, b) = (words(&full), words(&trimmed));
        assert_eq!(a.len(), b.len());
        // Timed alike: a comma more or less can move a word's start by half a second
        // (timing.py's caps at sentence and segment edges), the times overall hardly move.
        let mut moved = 0.0;
        for (a, b) in a.iter().zip(&b) {
            assert_eq!(norm(&a.text), norm(&b.text));
            let gap = (a.start - b.start).abs().max((a.end - b.end).abs());
            assert!(gap <= 0.6 && b.end <= full.duration, "{a:?} {b:?}");
            moved += gap;
        }
        assert!(moved / a.len().max(1) as f64 <= 0.1, "{moved}");
        Ok(())
    }
}
